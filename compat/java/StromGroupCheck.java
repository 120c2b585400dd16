// Consumer groups through the official Java client (kafka-clients, classic group protocol) against
// a running broker.
//
// Usage: StromGroupCheck COMMAND BOOTSTRAP TOPIC GROUP [--partitions N] [--timeout-s S] [--static-leader true|false]
//
// Commands:
//   rebalance  Creates TOPIC with N partitions and fills it. Consumer 1 subscribes (default assignors:
//              partition.assignment.strategy is not set), reads everything and commits; consumer 2
//              subscribes: after the rebalance every partition is owned by exactly one of them, nothing
//              committed is delivered again, and new records reach exactly the owner of their
//              partition, once. Both commit and close.
//   resume     (after rebalance, possibly across a broker restart) The group's committed offsets are
//              the log end offsets; new records are produced, and a new consumer of GROUP (with
//              auto.offset.reset=none) starts exactly at the committed offsets (position() ==
//              committed() on assignment) and reads only the new records.
//   static     Static membership: a member with group.instance.id and session.timeout.ms=10000 and a
//              dynamic member share TOPIC. The static member is closed (no LeaveGroup) and restarted
//              with the same group.instance.id within the session timeout: no rebalance (the dynamic
//              member's ConsumerRebalanceListener is not called, generation ids are unchanged, also
//              after the old session would have expired) and it gets the same partitions back.
//              --static-leader chooses whether the static member joins first (and leads the group).
//   admin      AdminClient: listGroups / listConsumerGroups (with state filters),
//              describeConsumerGroups, listConsumerGroupOffsets, deleteConsumerGroupOffsets,
//              deleteConsumerGroups, on an active group GROUP-active and an empty group GROUP-empty.
//
// Every line printed says what was checked; the first failed check ends the program.
// Exit codes: 0 success, 1 verification failure or client error, 2 usage, 3 timeout.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class StromGroupCheck {
    private StromGroupCheck() {}

    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    static String bootstrap;
    static long deadlineNanos;

    static void check(boolean cond, String message) throws Failure {
        if (!cond) {
            throw new Failure(message);
        }
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static long nanosLeft() {
        return Math.max(1, deadlineNanos - System.nanoTime());
    }

    static Duration timeLeft(long capMillis) {
        return Duration.ofMillis(Math.max(1, Math.min(capMillis, TimeUnit.NANOSECONDS.toMillis(nanosLeft()))));
    }

    static void checkDeadline(String what) throws Failure {
        if (System.nanoTime() > deadlineNanos) {
            throw new Failure("deadline passed while " + what);
        }
    }

    /** The result of a future, within the deadline; an ExecutionException is unwrapped into its cause. */
    static <T> T get(Future<T> future, String what) throws Exception {
        try {
            return future.get(nanosLeft(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw new Failure(what + " failed: " + cause);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new Failure(what + " did not complete before the deadline");
        }
    }

    /** The exception a future fails with (null when it succeeds), within the deadline. */
    static Throwable failureOf(Future<?> future, String what) throws Exception {
        try {
            future.get(nanosLeft(), TimeUnit.NANOSECONDS);
            return null;
        } catch (ExecutionException e) {
            return e.getCause() == null ? e : e.getCause();
        } catch (java.util.concurrent.TimeoutException e) {
            throw new Failure(what + " did not complete before the deadline");
        }
    }

    interface Probe<T> {
        T get() throws Exception;
    }

    /** Polls `probe` until it returns non-null (a Failure thrown by it is retried until the deadline). */
    static <T> T waitFor(String what, long timeoutMs, Probe<T> probe) throws Exception {
        long until = Math.min(deadlineNanos, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs));
        Failure last = null;
        while (true) {
            try {
                T value = probe.get();
                if (value != null) {
                    return value;
                }
            } catch (Failure f) {
                last = f;
            }
            if (System.nanoTime() > until) {
                throw new Failure("timed out waiting for " + what + (last == null ? "" : " (last: " + last.getMessage() + ")"));
            }
            Thread.sleep(200);
        }
    }

    // --- clients ---------------------------------------------------------------------------------

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "strom-group-check-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    static Properties consumerProps(String group, String clientId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        // partition.assignment.strategy deliberately left at its default (range, cooperative-sticky).
        return p;
    }

    static KafkaConsumer<String, String> consumer(Properties p) {
        return new KafkaConsumer<>(p);
    }

    /** Closes with the default group membership operation: a dynamic member leaves, a static one stays. */
    static void close(KafkaConsumer<String, String> c) {
        c.close(CloseOptions.timeout(timeLeft(10_000)));
    }

    static void createTopic(Admin admin, String topic, int partitions) throws Exception {
        get(admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all(),
                "createTopics(" + topic + ", " + partitions + " partitions)");
        say("created topic " + topic + " with " + partitions + " partitions");
    }

    static List<TopicPartition> partitionsOf(String topic, int partitions) {
        List<TopicPartition> out = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            out.add(new TopicPartition(topic, p));
        }
        return out;
    }

    static String where(TopicPartition tp, long offset) {
        return tp.topic() + "-" + tp.partition() + "@" + offset;
    }

    /** Records produced and not yet consumed: "topic-partition@offset" -> value. */
    static final class Expected {
        final Map<String, String> pending = new TreeMap<>();
        final Map<TopicPartition, Long> endOffsets = new HashMap<>();
        final Map<TopicPartition, Long> firstOffsets = new HashMap<>();
        final Set<String> seen = new HashSet<>();
    }

    /**
     * Sends `perPartition` records to each of `tps` (round robin, explicit partition), waits for every
     * acknowledgement and returns what a consumer should read.
     */
    static Expected produce(List<TopicPartition> tps, int perPartition, String prefix) throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, "strom-group-check-producer");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        Expected exp = new Expected();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<String> values = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            int n = 0;
            for (int i = 0; i < perPartition; i++) {
                for (TopicPartition tp : tps) {
                    String value = prefix + "-" + n++;
                    values.add(value);
                    futures.add(producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), "k" + n, value)));
                }
            }
            producer.flush();
            for (int i = 0; i < futures.size(); i++) {
                RecordMetadata md = get(futures.get(i), "produce of " + values.get(i));
                TopicPartition tp = new TopicPartition(md.topic(), md.partition());
                exp.pending.put(where(tp, md.offset()), values.get(i));
                exp.endOffsets.merge(tp, md.offset() + 1, Math::max);
                exp.firstOffsets.merge(tp, md.offset(), Math::min);
            }
        }
        Set<String> topics = new java.util.TreeSet<>();
        for (TopicPartition tp : tps) {
            topics.add(tp.topic());
        }
        List<String> ranges = new ArrayList<>();
        for (TopicPartition tp : tps) {
            ranges.add((topics.size() > 1 ? tp.toString() : Integer.toString(tp.partition())) + ": "
                    + exp.firstOffsets.get(tp) + ".." + (exp.endOffsets.get(tp) - 1));
        }
        say("produced " + futures.size() + " records (" + prefix + ") to " + topics + ", offsets " + ranges);
        return exp;
    }

    /** "topic-partition" -> committed offset (null for none), sorted: for messages. */
    static Map<String, Long> offsetsOf(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<String, Long> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(k.toString(), v == null ? null : v.offset()));
        return out;
    }

    static <V> Map<String, V> toStringKeys(Map<TopicPartition, V> m) {
        Map<String, V> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(k.toString(), v));
        return out;
    }

    /** Polls `consumer` once and checks each record against `exp` (known, not seen before, owned by it). */
    static int pollOnce(KafkaConsumer<String, String> consumer, String name, Expected exp, long millis) throws Failure {
        int n = 0;
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(millis))) {
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            String w = where(tp, r.offset());
            check(!exp.seen.contains(w), name + " received " + w + " (" + r.value() + ") a second time");
            check(exp.pending.containsKey(w), name + " received " + w + " (" + r.value()
                    + "), which is not among the records expected now (already committed, or never produced)");
            check(exp.pending.get(w).equals(r.value()), name + " received " + w + " with value " + r.value()
                    + ", expected " + exp.pending.get(w));
            check(consumer.assignment().contains(tp), name + " received " + w + " but is not assigned " + tp);
            exp.pending.remove(w);
            exp.seen.add(w);
            n++;
        }
        return n;
    }

    static final class RecordingListener implements ConsumerRebalanceListener {
        final String name;
        int assignedCalls;
        int revokedCalls;
        int lostCalls;
        final List<String> events = new ArrayList<>();

        RecordingListener(String name) {
            this.name = name;
        }

        int calls() {
            return assignedCalls + revokedCalls + lostCalls;
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revokedCalls++;
            events.add("revoked " + sorted(partitions));
            say("  " + name + ": onPartitionsRevoked " + sorted(partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            assignedCalls++;
            events.add("assigned " + sorted(partitions));
            say("  " + name + ": onPartitionsAssigned " + sorted(partitions));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            lostCalls++;
            events.add("lost " + sorted(partitions));
            say("  " + name + ": onPartitionsLost " + sorted(partitions));
        }
    }

    static List<String> sorted(Collection<TopicPartition> tps) {
        List<String> out = new ArrayList<>();
        for (TopicPartition tp : tps) {
            out.add(tp.toString());
        }
        Collections.sort(out);
        return out;
    }

    static String describeMember(KafkaConsumer<String, String> c) {
        return "generation " + c.groupMetadata().generationId() + ", member " + c.groupMetadata().memberId()
                + c.groupMetadata().groupInstanceId().map(id -> " (instance " + id + ")").orElse("")
                + ", assigned " + sorted(c.assignment());
    }

    /** Null unless the two consumers together own every partition exactly once, in one generation. */
    static String splitProblem(KafkaConsumer<String, String> a, KafkaConsumer<String, String> b,
            List<TopicPartition> all) {
        Set<TopicPartition> sa = a.assignment();
        Set<TopicPartition> sb = b.assignment();
        if (sa.isEmpty() || sb.isEmpty()) {
            return "a consumer has no partitions yet";
        }
        Set<TopicPartition> both = new HashSet<>(sa);
        both.retainAll(sb);
        if (!both.isEmpty()) {
            return "partitions owned by both: " + sorted(both);
        }
        Set<TopicPartition> union = new HashSet<>(sa);
        union.addAll(sb);
        if (!union.equals(new HashSet<>(all))) {
            return "owned " + sorted(union) + ", expected " + sorted(all);
        }
        int ga = a.groupMetadata().generationId();
        int gb = b.groupMetadata().generationId();
        if (ga != gb || ga < 0) {
            return "generations differ: " + ga + " vs " + gb;
        }
        return null;
    }

    // --- rebalance -------------------------------------------------------------------------------

    static void rebalance(String topic, String group, int partitions) throws Exception {
        List<TopicPartition> all = partitionsOf(topic, partitions);
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions);
        }
        Expected exp = produce(all, 10, "before");

        RecordingListener l1 = new RecordingListener("consumer-1");
        RecordingListener l2 = new RecordingListener("consumer-2");
        KafkaConsumer<String, String> c1 = consumer(consumerProps(group, "strom-group-c1"));
        KafkaConsumer<String, String> c2 = null;
        try {
            c1.subscribe(List.of(topic), l1);
            while (!exp.pending.isEmpty() || !c1.assignment().equals(new HashSet<>(all))) {
                checkDeadline("consumer 1 joins alone and reads " + exp.pending.size() + " more records (assigned "
                        + sorted(c1.assignment()) + ")");
                pollOnce(c1, "consumer 1", exp, 200);
            }
            int gen1 = c1.groupMetadata().generationId();
            say("consumer 1 alone: " + describeMember(c1) + "; read all " + exp.seen.size() + " records");
            c1.commitSync(timeLeft(30_000));
            Map<TopicPartition, OffsetAndMetadata> committed = c1.committed(new HashSet<>(all), timeLeft(30_000));
            for (TopicPartition tp : all) {
                OffsetAndMetadata om = committed.get(tp);
                check(om != null && om.offset() == exp.endOffsets.get(tp), "consumer 1 committed " + om + " for " + tp
                        + ", expected offset " + exp.endOffsets.get(tp));
            }
            say("consumer 1 committed " + offsetsOf(committed));

            int l1Before = l1.calls();
            c2 = consumer(consumerProps(group, "strom-group-c2"));
            c2.subscribe(List.of(topic), l2);
            String problem;
            while ((problem = splitProblem(c1, c2, all)) != null || c1.groupMetadata().generationId() == gen1) {
                checkDeadline("the group rebalances onto two consumers (" + (problem == null
                        ? "consumer 1 still in generation " + gen1 : problem) + ")");
                pollOnce(c1, "consumer 1", exp, 100);
                pollOnce(c2, "consumer 2", exp, 100);
            }
            check(l1.calls() > l1Before, "consumer 1's rebalance listener was not called in the rebalance");
            say("after the rebalance: consumer 1 " + describeMember(c1));
            say("after the rebalance: consumer 2 " + describeMember(c2));
            int gen2 = c1.groupMetadata().generationId();
            check(gen2 > gen1, "generation went from " + gen1 + " to " + gen2);

            Expected more = produce(all, 5, "after");
            while (!more.pending.isEmpty()) {
                checkDeadline("the two consumers read the " + more.pending.size() + " new records left: "
                        + more.pending.keySet());
                pollOnce(c1, "consumer 1", more, 100);
                pollOnce(c2, "consumer 2", more, 100);
            }
            // A little longer: nothing else may arrive (no redelivery of committed records).
            long quietUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            while (System.nanoTime() < quietUntil) {
                pollOnce(c1, "consumer 1", more, 100);
                pollOnce(c2, "consumer 2", more, 100);
            }
            check(c1.groupMetadata().generationId() == gen2 && c2.groupMetadata().generationId() == gen2,
                    "the generation changed while consuming: " + c1.groupMetadata().generationId() + " / "
                            + c2.groupMetadata().generationId() + ", was " + gen2);
            say("each new record reached the owner of its partition exactly once (" + more.seen.size() + " records)");

            c1.commitSync(timeLeft(30_000));
            c2.commitSync(timeLeft(30_000));
            committed = c1.committed(new HashSet<>(all), timeLeft(30_000));
            for (TopicPartition tp : all) {
                OffsetAndMetadata om = committed.get(tp);
                check(om != null && om.offset() == more.endOffsets.get(tp), "committed " + om + " for " + tp
                        + " after both commits, expected offset " + more.endOffsets.get(tp));
            }
            say("both committed: " + offsetsOf(committed));
        } finally {
            close(c1);
            if (c2 != null) {
                close(c2);
            }
        }
        say("closed both consumers");
    }

    // --- resume ----------------------------------------------------------------------------------

    static void resume(String topic, String group) throws Exception {
        Properties props = consumerProps(group, "strom-group-c3");
        // No committed offset must be a failure, not a silent reset.
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        try (KafkaConsumer<String, String> c3 = consumer(props)) {
            int partitions = c3.partitionsFor(topic, timeLeft(30_000)).size();
            List<TopicPartition> all = partitionsOf(topic, partitions);
            Map<TopicPartition, Long> ends = c3.endOffsets(all, timeLeft(30_000));
            Map<TopicPartition, OffsetAndMetadata> before = c3.committed(new HashSet<>(all), timeLeft(30_000));
            for (TopicPartition tp : all) {
                OffsetAndMetadata om = before.get(tp);
                check(om != null, "group " + group + " has no committed offset for " + tp + " (committed: "
                        + offsetsOf(before) + ")");
                check(om.offset() == ends.get(tp), "committed offset " + om.offset() + " for " + tp
                        + ", but the previous consumers read and committed up to the log end " + ends.get(tp));
            }
            say("committed offsets of " + group + " before resuming: " + offsetsOf(before));

            Expected exp = produce(all, 5, "resume");
            for (TopicPartition tp : all) {
                check(exp.firstOffsets.get(tp) == before.get(tp).offset(), "new records on " + tp + " start at "
                        + exp.firstOffsets.get(tp) + ", not at the committed " + before.get(tp).offset());
            }

            Map<TopicPartition, Long> positionsOnAssign = new HashMap<>();
            List<String> listenerErrors = new ArrayList<>();
            c3.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> tps) {}

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                    say("  consumer 3: onPartitionsAssigned " + sorted(tps));
                    for (TopicPartition tp : tps) {
                        try {
                            positionsOnAssign.putIfAbsent(tp, c3.position(tp, timeLeft(30_000)));
                        } catch (RuntimeException e) {
                            listenerErrors.add("position(" + tp + ") on assignment: " + e);
                        }
                    }
                }
            });
            while (!exp.pending.isEmpty()) {
                checkDeadline("consumer 3 reads the " + exp.pending.size() + " new records (assigned "
                        + sorted(c3.assignment()) + ")");
                check(listenerErrors.isEmpty(), String.join("; ", listenerErrors));
                pollOnce(c3, "consumer 3", exp, 200);
            }
            long quietUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            while (System.nanoTime() < quietUntil) {
                pollOnce(c3, "consumer 3", exp, 100);
            }
            check(listenerErrors.isEmpty(), String.join("; ", listenerErrors));
            say("consumer 3: " + describeMember(c3) + "; read exactly the " + exp.seen.size() + " new records");
            for (TopicPartition tp : all) {
                Long pos = positionsOnAssign.get(tp);
                check(pos != null && pos == before.get(tp).offset(), "position of " + tp + " on assignment was " + pos
                        + ", committed() said " + before.get(tp).offset());
            }
            say("position() == committed() on assignment: " + toStringKeys(positionsOnAssign));

            c3.commitSync(timeLeft(30_000));
            Map<TopicPartition, OffsetAndMetadata> after = c3.committed(new HashSet<>(all), timeLeft(30_000));
            for (TopicPartition tp : all) {
                long pos = c3.position(tp, timeLeft(30_000));
                OffsetAndMetadata om = after.get(tp);
                check(pos == exp.endOffsets.get(tp), "position of " + tp + " is " + pos + " after reading, expected "
                        + exp.endOffsets.get(tp));
                check(om != null && om.offset() == pos, "committed " + om + " for " + tp + " after commitSync, position "
                        + pos);
            }
            say("after commitSync: position() == committed() == log end: " + offsetsOf(after));
        }
    }

    // --- static membership ----------------------------------------------------------------------

    static final int STATIC_SESSION_TIMEOUT_MS = 10_000;

    static Properties staticProps(String group) {
        Properties p = consumerProps(group, "strom-group-static");
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "strom-static-member");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, Integer.toString(STATIC_SESSION_TIMEOUT_MS));
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        return p;
    }

    static void staticMembership(String topic, String group, int partitions, boolean staticLeader) throws Exception {
        List<TopicPartition> all = partitionsOf(topic, partitions);
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions);
        }
        Expected none = new Expected(); // no records are produced: any delivery is a failure

        RecordingListener ls = new RecordingListener("static");
        RecordingListener ld = new RecordingListener("dynamic");
        KafkaConsumer<String, String> s1 = null;
        KafkaConsumer<String, String> s2 = null;
        KafkaConsumer<String, String> d = null;
        try {
            KafkaConsumer<String, String> first;
            if (staticLeader) {
                s1 = consumer(staticProps(group));
                s1.subscribe(List.of(topic), ls);
                first = s1;
            } else {
                d = consumer(consumerProps(group, "strom-group-dynamic"));
                d.subscribe(List.of(topic), ld);
                first = d;
            }
            while (!first.assignment().equals(new HashSet<>(all))) {
                checkDeadline("the first member (" + (staticLeader ? "static" : "dynamic") + ") gets all partitions");
                pollOnce(first, "first member", none, 200);
            }
            say("first member (" + (staticLeader ? "static" : "dynamic") + ", the group leader): " + describeMember(first));
            if (staticLeader) {
                d = consumer(consumerProps(group, "strom-group-dynamic"));
                d.subscribe(List.of(topic), ld);
            } else {
                s1 = consumer(staticProps(group));
                s1.subscribe(List.of(topic), ls);
            }
            String problem;
            while ((problem = splitProblem(s1, d, all)) != null) {
                checkDeadline("the group rebalances onto the static and the dynamic member (" + problem + ")");
                pollOnce(s1, "static member", none, 100);
                pollOnce(d, "dynamic member", none, 100);
            }
            // Let the group settle: nothing may change for two seconds.
            int gen = s1.groupMetadata().generationId();
            Set<TopicPartition> staticParts = new HashSet<>(s1.assignment());
            Set<TopicPartition> dynamicParts = new HashSet<>(d.assignment());
            long settleUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            while (System.nanoTime() < settleUntil) {
                pollOnce(s1, "static member", none, 100);
                pollOnce(d, "dynamic member", none, 100);
            }
            check(s1.groupMetadata().generationId() == gen && d.groupMetadata().generationId() == gen
                    && s1.assignment().equals(staticParts) && d.assignment().equals(dynamicParts),
                    "the group did not settle: static " + describeMember(s1) + " / dynamic " + describeMember(d));
            String oldMemberId = s1.groupMetadata().memberId();
            say("stable: static " + describeMember(s1));
            say("stable: dynamic " + describeMember(d));
            int dynamicCalls = ld.calls();

            long closedAt = System.nanoTime();
            close(s1);
            s1 = null;
            say("closed the static member (a static member sends no LeaveGroup)");

            RecordingListener ls2 = new RecordingListener("static, restarted");
            s2 = consumer(staticProps(group));
            s2.subscribe(List.of(topic), ls2);
            while (s2.assignment().isEmpty() || s2.groupMetadata().generationId() < 0) {
                checkDeadline("the restarted static member gets its partitions back");
                pollOnce(s2, "restarted static member", none, 100);
                pollOnce(d, "dynamic member", none, 100);
            }
            long rejoinMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - closedAt);
            say("restarted static member " + rejoinMs + " ms after close: " + describeMember(s2));
            check(rejoinMs < STATIC_SESSION_TIMEOUT_MS, "the restart took " + rejoinMs + " ms, more than the session"
                    + " timeout: the check is void (machine too slow?)");
            check(!s2.groupMetadata().memberId().equals(oldMemberId), "the restarted member kept member id "
                    + oldMemberId + " (expected a new one replacing it)");

            // Keep both polling until well after the old member's session would have expired:
            // neither the restart nor an expiry of the replaced member id may cause a rebalance.
            long watchUntil = Math.max(System.nanoTime() + TimeUnit.SECONDS.toNanos(2),
                    closedAt + TimeUnit.MILLISECONDS.toNanos(STATIC_SESSION_TIMEOUT_MS + 3_000));
            while (System.nanoTime() < watchUntil) {
                checkDeadline("watching for a rebalance after the restart");
                pollOnce(s2, "restarted static member", none, 100);
                pollOnce(d, "dynamic member", none, 100);
                check(ld.calls() == dynamicCalls, "the dynamic member's rebalance listener was called after the static"
                        + " member's restart: " + ld.events.subList(dynamicCalls, ld.events.size())
                        + " (a rebalance happened)");
                check(d.groupMetadata().generationId() == gen, "the dynamic member's generation went from " + gen
                        + " to " + d.groupMetadata().generationId() + " (a rebalance happened)");
                check(s2.groupMetadata().generationId() == gen, "the restarted static member is in generation "
                        + s2.groupMetadata().generationId() + ", the group was in " + gen + " (a rebalance happened)");
            }
            check(s2.assignment().equals(staticParts), "the restarted static member got " + sorted(s2.assignment())
                    + ", before the restart it had " + sorted(staticParts));
            check(d.assignment().equals(dynamicParts), "the dynamic member now has " + sorted(d.assignment())
                    + ", before the restart it had " + sorted(dynamicParts));
            say("no rebalance: generation still " + gen + ", dynamic member's listener not called again, static member"
                    + " got " + sorted(staticParts) + " back (watched "
                    + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - closedAt) + " ms after the close)");
        } finally {
            for (KafkaConsumer<String, String> c : new ArrayList<>(java.util.Arrays.asList(s1, s2, d))) {
                if (c != null) {
                    close(c);
                }
            }
        }
    }

    // --- admin -----------------------------------------------------------------------------------

    static Map<String, GroupListing> listGroups(Admin admin, ListGroupsOptions options, String what) throws Exception {
        Map<String, GroupListing> out = new TreeMap<>();
        for (GroupListing g : get(admin.listGroups(options).all(), what)) {
            out.put(g.groupId(), g);
        }
        return out;
    }

    static Map<TopicPartition, OffsetAndMetadata> groupOffsets(Admin admin, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(),
                "listConsumerGroupOffsets(" + group + ")");
        // Partitions without an offset come back as null values: leave them out.
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        m.forEach((tp, om) -> {
            if (om != null) {
                out.put(tp, om);
            }
        });
        return out;
    }

    static void checkOffsets(Map<TopicPartition, OffsetAndMetadata> got, Map<TopicPartition, Long> want, String what)
            throws Failure {
        Map<TopicPartition, Long> offsets = new HashMap<>();
        got.forEach((tp, om) -> offsets.put(tp, om.offset()));
        check(offsets.equals(want), what + ": " + toStringKeys(offsets) + ", expected " + toStringKeys(want));
    }

    /** Subscribes to `topics`, reads every record in `exp` and commits; the consumer stays open. */
    static KafkaConsumer<String, String> consumeAllAndCommit(String group, String clientId, List<String> topics,
            Expected exp, Set<TopicPartition> all) throws Exception {
        KafkaConsumer<String, String> c = consumer(consumerProps(group, clientId));
        try {
            c.subscribe(topics);
            while (!exp.pending.isEmpty() || !c.assignment().equals(all)) {
                checkDeadline(clientId + " in group " + group + " reads " + exp.pending.size() + " more records");
                pollOnce(c, clientId, exp, 200);
            }
            c.commitSync(timeLeft(30_000));
        } catch (Exception | Error e) {
            close(c);
            throw e;
        }
        say(clientId + " in group " + group + ": " + describeMember(c) + ", read and committed " + exp.seen.size()
                + " records");
        return c;
    }

    /** listConsumerGroups (deprecated since 4.1 for listGroups, still what many tools call): group id -> state. */
    @SuppressWarnings({"deprecation", "removal"})
    static Map<String, Optional<GroupState>> listConsumerGroupsDeprecated(Admin admin, Set<GroupState> states)
            throws Exception {
        ListConsumerGroupsOptions options = new ListConsumerGroupsOptions();
        if (states != null) {
            options.inGroupStates(states);
        }
        Map<String, Optional<GroupState>> out = new TreeMap<>();
        for (ConsumerGroupListing g : get(admin.listConsumerGroups(options).all(), "listConsumerGroups(" + states + ")")) {
            out.put(g.groupId(), g.groupState());
        }
        return out;
    }

    static void adminChecks(String topic, String group) throws Exception {
        String topicB = topic + "-b";
        String active = group + "-active";
        String empty = group + "-empty";
        List<TopicPartition> tpsA = partitionsOf(topic, 3);
        List<TopicPartition> tpsB = partitionsOf(topicB, 2);
        List<TopicPartition> tpsAll = new ArrayList<>(tpsA);
        tpsAll.addAll(tpsB);
        Set<TopicPartition> allSet = new HashSet<>(tpsAll);

        try (Admin admin = admin()) {
            createTopic(admin, topic, 3);
            createTopic(admin, topicB, 2);
            Expected forEmpty = produce(tpsAll, 4, "admin");
            Map<TopicPartition, Long> ends = new HashMap<>(forEmpty.endOffsets);
            Expected forActive = new Expected();
            forActive.pending.putAll(forEmpty.pending);

            // The empty group: a consumer reads everything, commits and leaves.
            close(consumeAllAndCommit(empty, "strom-admin-leaver", List.of(topic, topicB), forEmpty, allSet));
            say("strom-admin-leaver closed: group " + empty + " has no members left");
            // The active group: its member stays.
            KafkaConsumer<String, String> member =
                    consumeAllAndCommit(active, "strom-admin-member", List.of(topic, topicB), forActive, allSet);
            try {
                String memberId = member.groupMetadata().memberId();

                // listGroups (consumer groups), each group in its state.
                Map<String, GroupListing> listed = waitFor(active + " Stable and " + empty + " Empty in listGroups",
                        15_000, () -> {
                            Map<String, GroupListing> l = listGroups(admin, ListGroupsOptions.forConsumerGroups(),
                                    "listGroups(forConsumerGroups)");
                            check(l.containsKey(active) && l.containsKey(empty), "listed " + l.keySet());
                            check(l.get(active).groupState().equals(Optional.of(GroupState.STABLE)),
                                    active + " listed as " + l.get(active));
                            check(l.get(empty).groupState().equals(Optional.of(GroupState.EMPTY)),
                                    empty + " listed as " + l.get(empty));
                            return l;
                        });
                GroupListing activeListing = listed.get(active);
                check(!activeListing.isSimpleConsumerGroup(), active + " listed as a simple consumer group: " + activeListing);
                check(activeListing.type().isEmpty() || activeListing.type().get() == org.apache.kafka.common.GroupType.CLASSIC,
                        active + " listed with type " + activeListing.type() + ", expected classic");
                say("listGroups(forConsumerGroups): " + listed.get(active) + ", " + listed.get(empty));

                Map<String, GroupListing> stable = listGroups(admin,
                        ListGroupsOptions.forConsumerGroups().inGroupStates(Set.of(GroupState.STABLE)), "listGroups(Stable)");
                check(stable.containsKey(active) && !stable.containsKey(empty), "listGroups in state Stable: "
                        + stable.keySet());
                Map<String, GroupListing> emptyOnly = listGroups(admin,
                        ListGroupsOptions.forConsumerGroups().inGroupStates(Set.of(GroupState.EMPTY)), "listGroups(Empty)");
                check(emptyOnly.containsKey(empty) && !emptyOnly.containsKey(active), "listGroups in state Empty: "
                        + emptyOnly.keySet());
                say("listGroups with a state filter: Stable -> " + stable.keySet() + ", Empty -> " + emptyOnly.keySet());

                Map<String, Optional<GroupState>> cgAll = listConsumerGroupsDeprecated(admin, null);
                check(cgAll.containsKey(active) && cgAll.containsKey(empty), "listConsumerGroups: " + cgAll.keySet());
                Map<String, Optional<GroupState>> cgEmpty = listConsumerGroupsDeprecated(admin, Set.of(GroupState.EMPTY));
                check(cgEmpty.containsKey(empty) && !cgEmpty.containsKey(active), "listConsumerGroups(inGroupStates Empty): "
                        + cgEmpty.keySet());
                check(cgEmpty.get(empty).equals(Optional.of(GroupState.EMPTY)),
                        "listConsumerGroups(inGroupStates Empty) lists " + cgEmpty.get(empty));
                say("listConsumerGroups: " + cgAll.keySet() + "; with inGroupStates(Empty): " + cgEmpty.keySet());

                // describeConsumerGroups
                Map<String, ConsumerGroupDescription> described =
                        get(admin.describeConsumerGroups(List.of(active, empty)).all(), "describeConsumerGroups");
                ConsumerGroupDescription da = described.get(active);
                check(da != null, "describeConsumerGroups returned nothing for " + active);
                say("describeConsumerGroups(" + active + "): " + da);
                check(da.groupState() == GroupState.STABLE, active + " described in state " + da.groupState());
                check(!da.isSimpleConsumerGroup(), active + " described as a simple consumer group");
                check("range".equals(da.partitionAssignor()), active + " has partition assignor "
                        + da.partitionAssignor() + ", expected range (the first default assignor)");
                check(da.coordinator() != null, active + " described without a coordinator");
                check(da.members().size() == 1, active + " has " + da.members().size() + " members, expected 1");
                MemberDescription md = da.members().iterator().next();
                check(md.consumerId().equals(memberId), "member id " + md.consumerId() + ", the consumer says " + memberId);
                check(md.clientId().equals("strom-admin-member"), "member client id " + md.clientId());
                check(md.host() != null && !md.host().isEmpty(), "member host is empty");
                check(md.groupInstanceId().isEmpty(), "dynamic member described with instance id " + md.groupInstanceId());
                check(md.assignment().topicPartitions().equals(member.assignment()), "member assignment "
                        + sorted(md.assignment().topicPartitions()) + ", the consumer has " + sorted(member.assignment()));
                ConsumerGroupDescription de = described.get(empty);
                check(de != null, "describeConsumerGroups returned nothing for " + empty);
                say("describeConsumerGroups(" + empty + "): " + de);
                check(de.groupState() == GroupState.EMPTY, empty + " described in state " + de.groupState());
                check(de.members().isEmpty(), empty + " described with members " + de.members());

                // listConsumerGroupOffsets
                checkOffsets(groupOffsets(admin, active), ends, "listConsumerGroupOffsets(" + active + ")");
                checkOffsets(groupOffsets(admin, empty), ends, "listConsumerGroupOffsets(" + empty + ")");
                List<TopicPartition> some = List.of(tpsA.get(0), tpsB.get(1));
                Map<TopicPartition, OffsetAndMetadata> subset = get(admin.listConsumerGroupOffsets(
                        Map.of(active, new ListConsumerGroupOffsetsSpec().topicPartitions(some)))
                        .partitionsToOffsetAndMetadata(active), "listConsumerGroupOffsets(" + active + ", " + some + ")");
                Map<TopicPartition, Long> wantSome = new HashMap<>();
                for (TopicPartition tp : some) {
                    wantSome.put(tp, ends.get(tp));
                }
                checkOffsets(subset, wantSome, "listConsumerGroupOffsets(" + active + ", " + some + ")");
                say("listConsumerGroupOffsets: both groups at the log end " + toStringKeys(ends)
                        + "; a partition subset gives just those");

                // deleteConsumerGroupOffsets: refused while a member is subscribed to the topic...
                Throwable refused = failureOf(admin.deleteConsumerGroupOffsets(active, new HashSet<>(tpsA)).all(),
                        "deleteConsumerGroupOffsets(" + active + ")");
                check(refused instanceof GroupSubscribedToTopicException, "deleteConsumerGroupOffsets(" + active + ", "
                        + topic + ") with a member subscribed to it: expected GroupSubscribedToTopicException, got "
                        + refused);
                checkOffsets(groupOffsets(admin, active), ends, "listConsumerGroupOffsets(" + active
                        + ") after the refused delete");
                say("deleteConsumerGroupOffsets on the active group: " + refused.getClass().getSimpleName()
                        + ", offsets kept");
                // ... and done for the empty group.
                get(admin.deleteConsumerGroupOffsets(empty, new HashSet<>(tpsA)).all(),
                        "deleteConsumerGroupOffsets(" + empty + ", " + topic + ")");
                Map<TopicPartition, Long> onlyB = new HashMap<>();
                for (TopicPartition tp : tpsB) {
                    onlyB.put(tp, ends.get(tp));
                }
                checkOffsets(groupOffsets(admin, empty), onlyB, "listConsumerGroupOffsets(" + empty
                        + ") after deleting the offsets of " + topic);
                say("deleteConsumerGroupOffsets(" + empty + ", " + topic + "): only " + topicB + "'s offsets are left");

                // deleteConsumerGroups: refused for a group with members...
                Throwable notEmpty = failureOf(admin.deleteConsumerGroups(List.of(active)).all(),
                        "deleteConsumerGroups(" + active + ")");
                check(notEmpty instanceof GroupNotEmptyException, "deleteConsumerGroups(" + active + ") with a member:"
                        + " expected GroupNotEmptyException, got " + notEmpty);
                say("deleteConsumerGroups on the active group: " + notEmpty.getClass().getSimpleName());
                // ... and done for the empty group.
                get(admin.deleteConsumerGroups(List.of(empty)).all(), "deleteConsumerGroups(" + empty + ")");
                checkGone(admin, empty);

                checkOffsets(groupOffsets(admin, active), ends, "listConsumerGroupOffsets(" + active
                        + ") after deleting the other group");
            } finally {
                close(member);
            }
            say("strom-admin-member closed");
            waitFor(active + " Empty after its member left", 15_000, () -> {
                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(active)).all(),
                        "describeConsumerGroups(" + active + ")").get(active);
                check(d.groupState() == GroupState.EMPTY && d.members().isEmpty(), "described as " + d);
                return d;
            });
            get(admin.deleteConsumerGroups(List.of(active)).all(), "deleteConsumerGroups(" + active + ") once empty");
            checkGone(admin, active);
        }
    }

    /** After deleteConsumerGroups: not listed, described as Dead (or not found), no offsets. */
    static void checkGone(Admin admin, String group) throws Exception {
        Map<String, GroupListing> listed = listGroups(admin, ListGroupsOptions.forConsumerGroups(), "listGroups");
        check(!listed.containsKey(group), "deleted group " + group + " is still listed: " + listed.get(group));
        Map<String, GroupListing> listedAny = listGroups(admin, new ListGroupsOptions(), "listGroups(all types)");
        check(!listedAny.containsKey(group), "deleted group " + group + " is still listed: " + listedAny.get(group));
        KafkaFuture<ConsumerGroupDescription> f = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group);
        String how;
        Throwable err = failureOf(f, "describeConsumerGroups(" + group + ")");
        if (err == null) {
            ConsumerGroupDescription d = f.get();
            check(d.groupState() == GroupState.DEAD && d.members().isEmpty(), "deleted group " + group
                    + " described as " + d);
            how = "described as Dead";
        } else {
            check(err instanceof GroupIdNotFoundException, "describeConsumerGroups(" + group + ") after deletion: " + err);
            how = "described as not found";
        }
        Map<TopicPartition, OffsetAndMetadata> left = groupOffsets(admin, group);
        check(left.isEmpty(), "deleted group " + group + " still has offsets " + offsetsOf(left));
        say("deleteConsumerGroups(" + group + "): not listed, " + how + ", no offsets");
    }

    // --- main ------------------------------------------------------------------------------------

    public static void main(String[] args) {
        if (args.length < 4) {
            System.err.println("usage: StromGroupCheck rebalance|resume|static|admin BOOTSTRAP TOPIC GROUP"
                    + " [--partitions N] [--timeout-s S] [--static-leader true|false]");
            System.exit(2);
        }
        String command = args[0];
        bootstrap = args[1];
        String topic = args[2];
        String group = args[3];
        int partitions = 4;
        int timeoutSeconds = 90;
        boolean staticLeader = true;
        try {
            for (int a = 4; a < args.length; a += 2) {
                if (a + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value for " + args[a]);
                }
                switch (args[a]) {
                    case "--partitions":
                        partitions = Integer.parseInt(args[a + 1]);
                        break;
                    case "--timeout-s":
                        timeoutSeconds = Integer.parseInt(args[a + 1]);
                        break;
                    case "--static-leader":
                        staticLeader = Boolean.parseBoolean(args[a + 1]);
                        break;
                    default:
                        throw new IllegalArgumentException("unknown option " + args[a]);
                }
            }
            if (partitions < 2) {
                throw new IllegalArgumentException("--partitions must be at least 2");
            }
            if (!List.of("rebalance", "resume", "static", "admin").contains(command)) {
                throw new IllegalArgumentException("unknown command " + command);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("usage error: " + e.getMessage());
            System.exit(2);
            return;
        }

        final int timeout = timeoutSeconds;
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(timeout * 1000L);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("FAIL: timed out after " + timeout + " s");
            Runtime.getRuntime().halt(3);
        });
        watchdog.setDaemon(true);
        watchdog.start();

        // Leave part of the watchdog's budget for closing the clients.
        deadlineNanos = System.nanoTime() + TimeUnit.SECONDS.toNanos(Math.max(1, timeoutSeconds - 10));
        try {
            switch (command) {
                case "rebalance":
                    rebalance(topic, group, partitions);
                    break;
                case "resume":
                    resume(topic, group);
                    break;
                case "static":
                    staticMembership(topic, group, partitions, staticLeader);
                    break;
                default:
                    adminChecks(topic, group);
                    break;
            }
        } catch (Failure e) {
            System.err.println("FAIL: " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.err.println("FAIL: client error: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("OK");
        System.exit(0);
    }
}
