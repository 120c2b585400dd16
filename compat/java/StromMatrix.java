// The compatibility-matrix program of the official Java client (kafka-clients): see
// compat/matrix/README.md for the contract and what each scenario checks.
//
// Usage: StromMatrix BOOTSTRAP TOPIC_PREFIX SCENARIO [SCENARIO ...]
//
// stdout carries only the JSON lines of the contract (the client line, then one line per scenario);
// everything else, the client's own logging included, goes to stderr. Each scenario runs on its own
// thread with a hard limit of 60 s; its internal waits end a few seconds earlier so that a failure
// says what was being waited for. Exit code 0 when every scenario was reported, 2 on a usage error.

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

public final class StromMatrix {
    private StromMatrix() {}

    /** A check that did not hold: reported as "fail" with its message. */
    static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    static final long SCENARIO_LIMIT_MS = 60_000;
    /** Internal waits of a scenario end this long before its hard limit. */
    static final long INTERNAL_BUDGET_MS = 52_000;
    static final long T0 = 1_600_000_000_000L;

    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(5);

    static String bootstrap;

    // ------------------------------------------------------------------------------------------
    // Output

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }

    static void log(String line) {
        System.err.println("[matrix] " + line);
    }

    // ------------------------------------------------------------------------------------------
    // Helpers

    static void check(boolean cond, String message) throws Failure {
        if (!cond) {
            throw new Failure(message);
        }
    }

    static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static long left(long deadline) throws Failure {
        long ms = deadline - System.currentTimeMillis();
        if (ms <= 0) {
            throw new Failure("scenario deadline passed");
        }
        return ms;
    }

    static <T> T get(KafkaFuture<T> f, long deadline, String what) throws Exception {
        try {
            return f.get(left(deadline), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new Failure(what + " did not complete before the deadline");
        } catch (ExecutionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            throw new Failure(what + " failed: " + c.getClass().getSimpleName() + ": " + c.getMessage());
        }
    }

    static KafkaProducer<byte[], byte[]> producer(Map<String, String> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "strom-matrix-java-producer");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.putAll(extra);
        // close() without a timeout would wait as long as records are pending.
        return new KafkaProducer<byte[], byte[]>(p) {
            @Override
            public void close() {
                close(CLOSE_TIMEOUT);
            }
        };
    }

    static KafkaConsumer<byte[], byte[]> consumer(String groupId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "strom-matrix-java-consumer");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        return new KafkaConsumer<byte[], byte[]>(p) {
            @Override
            public void close() {
                close(CloseOptions.timeout(CLOSE_TIMEOUT));
            }
        };
    }

    /** An Admin whose close() waits at most CLOSE_TIMEOUT for pending calls. */
    static final class AdminHandle implements AutoCloseable {
        final Admin admin;

        AdminHandle(Admin admin) {
            this.admin = admin;
        }

        @Override
        public void close() {
            admin.close(CLOSE_TIMEOUT);
        }
    }

    static AdminHandle admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "strom-matrix-java-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        return new AdminHandle(Admin.create(p));
    }

    /** Sends the records, flushes and returns every acknowledgement (in send order). */
    static List<RecordMetadata> sendAll(KafkaProducer<byte[], byte[]> producer,
            List<ProducerRecord<byte[], byte[]>> records, long deadline) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>(records.size());
        for (ProducerRecord<byte[], byte[]> r : records) {
            Future<RecordMetadata> f = producer.send(r);
            futures.add(f);
            if (f.isDone() || System.currentTimeMillis() > deadline) {
                // A send that failed at once (no metadata within max.block.ms, say) fails the rest too.
                awaitAck(f, futures.size() - 1, deadline);
            }
        }
        producer.flush();
        List<RecordMetadata> out = new ArrayList<>(records.size());
        for (int i = 0; i < futures.size(); i++) {
            out.add(awaitAck(futures.get(i), i, deadline));
        }
        return out;
    }

    static RecordMetadata awaitAck(Future<RecordMetadata> f, int i, long deadline) throws Exception {
        try {
            return f.get(left(deadline), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new Failure("record " + i + " was not acknowledged before the deadline");
        } catch (ExecutionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            throw new Failure("record " + i + " failed: " + c.getClass().getSimpleName() + ": " + c.getMessage());
        }
    }

    static List<TopicPartition> partitions(String topic, int... ids) {
        List<TopicPartition> out = new ArrayList<>();
        for (int id : ids) {
            out.add(new TopicPartition(topic, id));
        }
        return out;
    }

    /**
     * Polls until at least `expected` records arrived, then half a second more (to catch extra
     * deliveries). Fails when fewer arrived by the deadline.
     */
    static List<ConsumerRecord<byte[], byte[]>> pollFor(KafkaConsumer<byte[], byte[]> c, int expected,
            long deadline, String what) throws Failure {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long quietUntil = Long.MAX_VALUE;
        while (System.currentTimeMillis() < quietUntil) {
            if (System.currentTimeMillis() > deadline) {
                throw new Failure(what + ": read " + got.size() + " of " + expected + " records before the deadline");
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                got.add(r);
            }
            if (got.size() >= expected && quietUntil == Long.MAX_VALUE) {
                quietUntil = System.currentTimeMillis() + 500;
            }
        }
        return got;
    }

    /** A fresh consumer (no group) reads the partitions from the beginning. */
    static List<ConsumerRecord<byte[], byte[]>> readBack(String topic, int expected, long deadline)
            throws Failure {
        try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            List<TopicPartition> tps = partitions(topic, 0, 1, 2);
            c.assign(tps);
            c.seekToBeginning(tps);
            return pollFor(c, expected, deadline, "read back");
        }
    }

    /** Every value of `want` exactly once among `got` (and nothing else); returns value -> record. */
    static Map<String, ConsumerRecord<byte[], byte[]>> exactlyOnce(List<ConsumerRecord<byte[], byte[]>> got,
            List<String> want) throws Failure {
        Set<String> wanted = new HashSet<>(want);
        Map<String, ConsumerRecord<byte[], byte[]>> seen = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            String v = str(r.value());
            check(wanted.contains(v), "unexpected value " + abbreviate(v) + " at partition " + r.partition()
                    + " offset " + r.offset());
            ConsumerRecord<byte[], byte[]> before = seen.put(v, r);
            check(before == null, "value " + abbreviate(v) + " read twice (partition " + r.partition() + " offset "
                    + r.offset() + " and partition " + (before == null ? -1 : before.partition()) + " offset "
                    + (before == null ? -1 : before.offset()) + ")");
        }
        for (String w : want) {
            check(seen.containsKey(w), "value " + abbreviate(w) + " missing (" + seen.size() + " of " + want.size()
                    + " read)");
        }
        return seen;
    }

    static String abbreviate(String s) {
        if (s == null) {
            return "null";
        }
        return s.length() <= 24 ? s : s.substring(0, 24) + "...";
    }

    static List<String> values(int from, int to) {
        List<String> out = new ArrayList<>();
        for (int i = from; i < to; i++) {
            out.add("v" + i);
        }
        return out;
    }

    static Map<String, List<PartitionInfo>> listTopics(KafkaConsumer<byte[], byte[]> c) {
        return c.listTopics(Duration.ofSeconds(15));
    }

    static String leaderOf(PartitionInfo p) {
        Node n = p.leader();
        return n == null ? "none" : n.id() + "@" + n.host() + ":" + n.port();
    }

    interface Probe {
        /** null when the wanted state is reached, else a description of what is seen now. */
        String check() throws Exception;
    }

    static void waitUntil(String what, long deadline, Probe probe) throws Exception {
        String last = null;
        while (true) {
            try {
                last = probe.check();
            } catch (Failure e) {
                throw e;
            } catch (Exception e) {
                last = e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            if (last == null) {
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new Failure("timed out waiting for " + what + " (last seen: " + last + ")");
            }
            Thread.sleep(200);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Scenarios. Each returns the detail of a pass or throws.

    static String metadata(String topic, long deadline) throws Exception {
        try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            List<PartitionInfo> parts = c.partitionsFor(topic, Duration.ofMillis(Math.min(20000, left(deadline))));
            check(parts != null && parts.size() == 3, "metadata lists " + (parts == null ? "no" : parts.size())
                    + " partitions of " + topic + ", expected 3");
            Set<Integer> ids = new HashSet<>();
            for (PartitionInfo p : parts) {
                ids.add(p.partition());
                Node leader = p.leader();
                // The client resolves the leader id against the response's broker list: a leader that
                // is not listed comes back as an empty node (no host, port -1).
                check(leader != null && !leader.isEmpty(), "partition " + p.partition()
                        + " has no leader among the listed brokers (" + leaderOf(p) + ")");
                String hostPort = leader.host() + ":" + leader.port();
                check(hostPort.equals(bootstrap), "partition " + p.partition() + " leader " + leader.id() + " is at "
                        + hostPort + ", expected the bootstrap address " + bootstrap);
            }
            check(ids.equals(new HashSet<>(Arrays.asList(0, 1, 2))), "partition ids " + ids + ", expected [0, 1, 2]");
            return "3 partitions, each led by a listed broker at the bootstrap address";
        }
    }

    static String produceKeys(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            records.add(new ProducerRecord<>(topic, bytes("k" + (i % 10)), bytes("v" + i)));
        }
        for (int i = 100; i < 105; i++) {
            records.add(new ProducerRecord<>(topic, null, bytes("v" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        List<ConsumerRecord<byte[], byte[]>> got = readBack(topic, 105, deadline);
        Map<String, ConsumerRecord<byte[], byte[]>> byValue = exactlyOnce(got, values(0, 105));
        Map<String, Integer> partitionOfKey = new TreeMap<>();
        Map<String, Long> lastOffsetOfKey = new HashMap<>();
        for (int i = 0; i < 105; i++) {
            ConsumerRecord<byte[], byte[]> r = byValue.get("v" + i);
            if (i >= 100) {
                check(r.key() == null, "v" + i + " was sent with a null key, read back with key " + str(r.key()));
                continue;
            }
            String k = "k" + (i % 10);
            check(k.equals(str(r.key())), "v" + i + " read back with key " + str(r.key()) + ", expected " + k);
            Integer part = partitionOfKey.putIfAbsent(k, r.partition());
            check(part == null || part == r.partition(), "key " + k + " in partitions " + part + " and "
                    + r.partition());
            Long last = lastOffsetOfKey.put(k, r.offset());
            check(last == null || last < r.offset(), "key " + k + ": v" + i + " at offset " + r.offset()
                    + ", not after the key's previous record at " + last);
        }
        return "105 records each once, 10 keys each in one partition in send order, null keys null";
    }

    static List<Header> wantHeaders() {
        List<Header> h = new ArrayList<>();
        h.add(new RecordHeader("h1", bytes("a")));
        h.add(new RecordHeader("h1", bytes("b")));
        h.add(new RecordHeader("bin", new byte[] {0x00, (byte) 0xff, 0x01}));
        return h;
    }

    static String produceHeaders(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            records.add(new ProducerRecord<>(topic, (Integer) null, (byte[]) null, bytes("v" + i), wantHeaders()));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        List<ConsumerRecord<byte[], byte[]>> got = readBack(topic, 10, deadline);
        exactlyOnce(got, values(0, 10));
        List<Header> want = wantHeaders();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            Header[] h = r.headers().toArray();
            check(h.length == want.size(), str(r.value()) + ": " + h.length + " headers, expected " + want.size());
            for (int j = 0; j < h.length; j++) {
                check(h[j].key().equals(want.get(j).key()) && Arrays.equals(h[j].value(), want.get(j).value()),
                        str(r.value()) + ": header " + j + " is " + h[j].key() + "=" + Arrays.toString(h[j].value())
                        + ", expected " + want.get(j).key() + "=" + Arrays.toString(want.get(j).value()));
            }
        }
        return "10 records, headers h1=a, h1=b, bin=00ff01 in order, byte-exact";
    }

    static String produceTimestamps(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            records.add(new ProducerRecord<>(topic, null, T0 + i * 1000L, null, bytes("v" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        Map<String, ConsumerRecord<byte[], byte[]>> byValue = exactlyOnce(readBack(topic, 10, deadline), values(0, 10));
        for (int i = 0; i < 10; i++) {
            ConsumerRecord<byte[], byte[]> r = byValue.get("v" + i);
            check(r.timestamp() == T0 + i * 1000L, "v" + i + ": timestamp " + r.timestamp() + ", expected "
                    + (T0 + i * 1000L));
            check(r.timestampType() == TimestampType.CREATE_TIME, "v" + i + ": timestamp type " + r.timestampType()
                    + ", expected CreateTime");
        }
        return "10 explicit timestamps read back, type CreateTime";
    }

    /** A compressible 100-byte value that starts with "v<i>-". */
    static String compressibleValue(int i) {
        StringBuilder b = new StringBuilder("v" + i + "-");
        while (b.length() < 100) {
            b.append("abcdefghij".charAt(b.length() % 10));
        }
        return b.toString();
    }

    static String produceCompressed(String topic, String codec, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            String v = compressibleValue(i);
            want.add(v);
            records.add(new ProducerRecord<>(topic, null, bytes(v)));
        }
        Map<String, String> extra = new HashMap<>();
        extra.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        extra.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        try (KafkaProducer<byte[], byte[]> p = producer(extra)) {
            sendAll(p, records, deadline);
        }
        exactlyOnce(readBack(topic, 1000, deadline), want);
        return "1000 records compressed with " + codec + " read back byte-exact";
    }

    static String produceAcks(String topic, String acks, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            records.add(new ProducerRecord<>(topic, null, bytes("v" + i)));
        }
        Map<String, String> extra = new HashMap<>();
        extra.put(ProducerConfig.ACKS_CONFIG, acks);
        extra.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        try (KafkaProducer<byte[], byte[]> p = producer(extra)) {
            List<RecordMetadata> md = sendAll(p, records, deadline);
            if (!acks.equals("0")) {
                for (int i = 0; i < md.size(); i++) {
                    check(md.get(i).hasOffset(), "record " + i + " acknowledged without an offset");
                }
            }
        }
        // With acks=0 nothing confirms the writes: the read back waits (bounded) until all are there.
        exactlyOnce(readBack(topic, 200, deadline), values(0, 200));
        return "200 records with acks=" + acks + " read back";
    }

    static String produceIdempotent(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            records.add(new ProducerRecord<>(topic, i % 3, null, bytes("v" + i)));
        }
        Map<String, String> extra = new HashMap<>();
        extra.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        extra.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> p = producer(extra)) {
            sendAll(p, records, deadline);
        }
        List<ConsumerRecord<byte[], byte[]>> got = readBack(topic, 200, deadline);
        exactlyOnce(got, values(0, 200));
        Map<Integer, List<Long>> offsets = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            offsets.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.offset());
        }
        for (Map.Entry<Integer, List<Long>> e : offsets.entrySet()) {
            List<Long> o = e.getValue();
            Collections.sort(o);
            for (int j = 0; j < o.size(); j++) {
                check(o.get(j) == j, "partition " + e.getKey() + ": offsets not dense from 0 (position " + j
                        + " holds offset " + o.get(j) + ")");
            }
        }
        return "idempotent producer: 200 records each once, offsets dense from 0 in each partition";
    }

    static String assignSeek(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            records.add(new ProducerRecord<>(topic, 0, null, bytes("v" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            c.assign(Collections.singletonList(tp));
            c.seek(tp, 20);
            List<ConsumerRecord<byte[], byte[]>> got = pollFor(c, 30, deadline, "after seek(20)");
            check(got.size() == 30, "read " + got.size() + " records after seek(20), expected 30");
            for (int j = 0; j < got.size(); j++) {
                ConsumerRecord<byte[], byte[]> r = got.get(j);
                check(r.offset() == 20 + j && ("v" + (20 + j)).equals(str(r.value())), "record " + j
                        + " after seek(20): offset " + r.offset() + " value " + str(r.value()) + ", expected offset "
                        + (20 + j) + " value v" + (20 + j));
            }
        }
        return "assign + seek(20): offsets 20..49 with v20..v49 in order";
    }

    static String fromBeginning(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            records.add(new ProducerRecord<>(topic, i % 3, null, bytes("v" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer(topic + "-group")) {
            c.subscribe(Collections.singletonList(topic));
            exactlyOnce(pollFor(c, 30, deadline, "subscribed consumer (auto.offset.reset=earliest)"), values(0, 30));
        }
        return "fresh group with auto.offset.reset=earliest read all 30 records";
    }

    static String fromTimestamp(String topic, long deadline) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            records.add(new ProducerRecord<>(topic, 0, T0 + i * 1000L, null, bytes("v" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            sendAll(p, records, deadline);
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(
                    Collections.singletonMap(tp, T0 + 10_000L), Duration.ofMillis(Math.min(20000, left(deadline))));
            OffsetAndTimestamp ot = found.get(tp);
            check(ot != null, "offsetsForTimes(" + (T0 + 10_000L) + ") found no offset");
            check(ot.offset() == 10, "offsetsForTimes(" + (T0 + 10_000L) + ") gave offset " + ot.offset()
                    + ", expected 10");
            check(ot.timestamp() == T0 + 10_000L, "offsetsForTimes gave timestamp " + ot.timestamp() + ", expected "
                    + (T0 + 10_000L));
            c.assign(Collections.singletonList(tp));
            c.seek(tp, ot.offset());
            List<ConsumerRecord<byte[], byte[]>> got = pollFor(c, 10, deadline, "after seek to offset 10");
            check("v10".equals(str(got.get(0).value())), "first record after the seek: offset "
                    + got.get(0).offset() + " value " + str(got.get(0).value()) + ", expected v10");
        }
        return "offsetsForTimes(T0+10000) = offset 10, first value v10";
    }

    static String groupResume(String topic, long deadline) throws Exception {
        String group = topic + "-group";
        List<TopicPartition> tps = partitions(topic, 0, 1, 2);
        Map<TopicPartition, Long> ends = new HashMap<>();
        try (KafkaProducer<byte[], byte[]> p = producer(Collections.emptyMap())) {
            List<ProducerRecord<byte[], byte[]>> first = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                first.add(new ProducerRecord<>(topic, i % 3, null, bytes("v" + i)));
            }
            for (RecordMetadata md : sendAll(p, first, deadline)) {
                ends.merge(new TopicPartition(md.topic(), md.partition()), md.offset() + 1, Math::max);
            }
            try (KafkaConsumer<byte[], byte[]> a = consumer(group)) {
                a.subscribe(Collections.singletonList(topic));
                exactlyOnce(pollFor(a, 40, deadline, "consumer A"), values(0, 40));
                a.commitSync(Duration.ofMillis(Math.min(20000, left(deadline))));
                Map<TopicPartition, OffsetAndMetadata> committed = a.committed(new HashSet<>(tps),
                        Duration.ofMillis(Math.min(20000, left(deadline))));
                for (TopicPartition tp : tps) {
                    OffsetAndMetadata om = committed.get(tp);
                    check(om != null && om.offset() == ends.get(tp), "consumer A committed " + tp + " at "
                            + (om == null ? "nothing" : om.offset()) + ", expected " + ends.get(tp));
                }
            }
            List<ProducerRecord<byte[], byte[]>> second = new ArrayList<>();
            for (int i = 40; i < 50; i++) {
                second.add(new ProducerRecord<>(topic, i % 3, null, bytes("v" + i)));
            }
            sendAll(p, second, deadline);
        }
        try (KafkaConsumer<byte[], byte[]> b = consumer(group)) {
            b.subscribe(Collections.singletonList(topic));
            List<ConsumerRecord<byte[], byte[]>> got = pollFor(b, 10, deadline, "consumer B");
            for (ConsumerRecord<byte[], byte[]> r : got) {
                check(r.offset() >= ends.get(new TopicPartition(r.topic(), r.partition())), "consumer B read "
                        + str(r.value()) + " at partition " + r.partition() + " offset " + r.offset()
                        + ", below the committed offset");
            }
            exactlyOnce(got, values(40, 50));
        }
        return "consumer A read 40 and committed; consumer B of the group read exactly the 10 new records";
    }

    static String adminTopics(String topic, long deadline) throws Exception {
        String created = topic + "-new";
        try (AdminHandle h = admin(); KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            Admin admin = h.admin;
            get(admin.createTopics(Collections.singletonList(new NewTopic(created, 2, (short) 1))).all(), deadline,
                    "createTopics(" + created + ")");
            waitUntil("metadata to list " + created + " with 2 partitions", deadline, () -> {
                List<PartitionInfo> parts = listTopics(c).get(created);
                return parts != null && parts.size() == 2 ? null
                        : parts == null ? "not listed" : parts.size() + " partitions";
            });
            get(admin.deleteTopics(Collections.singletonList(created)).all(), deadline, "deleteTopics(" + created + ")");
            waitUntil("metadata to stop listing " + created, deadline,
                    () -> listTopics(c).containsKey(created) ? "still listed" : null);
        }
        return "created with 2 partitions, listed, deleted, no longer listed";
    }

    static String retentionMs(Admin admin, ConfigResource res, long deadline) throws Exception {
        Map<ConfigResource, Config> described = get(admin.describeConfigs(Collections.singletonList(res)).all(),
                deadline, "describeConfigs");
        Config config = described.get(res);
        check(config != null, "describeConfigs returned no entry for " + res);
        ConfigEntry e = config.get("retention.ms");
        check(e != null, "describeConfigs has no retention.ms");
        return e.value();
    }

    static String adminConfigs(String topic, long deadline) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (AdminHandle h = admin()) {
            Admin admin = h.admin;
            String before = retentionMs(admin, res, deadline);
            check("604800000".equals(before), "retention.ms is " + before + ", expected 604800000");
            Map<ConfigResource, java.util.Collection<AlterConfigOp>> ops = new LinkedHashMap<>();
            ops.put(res, Collections.singletonList(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET)));
            get(admin.incrementalAlterConfigs(ops).all(), deadline, "incrementalAlterConfigs(retention.ms=3600000)");
            String after = retentionMs(admin, res, deadline);
            check("3600000".equals(after), "retention.ms is " + after + " after setting 3600000");
        }
        return "retention.ms 604800000, set to 3600000 (incrementalAlterConfigs), described as 3600000";
    }

    static String adminPartitions(String topic, long deadline) throws Exception {
        try (AdminHandle h = admin(); KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            Admin admin = h.admin;
            get(admin.createPartitions(Collections.singletonMap(topic, NewPartitions.increaseTo(5))).all(), deadline,
                    "createPartitions(" + topic + " -> 5)");
            waitUntil("metadata to show 5 partitions", deadline, () -> {
                List<PartitionInfo> parts = listTopics(c).get(topic);
                return parts != null && parts.size() == 5 ? null
                        : parts == null ? "not listed" : parts.size() + " partitions";
            });
        }
        return "grown from 3 to 5 partitions, metadata shows 5";
    }

    static String run(String scenario, String topic, long deadline) throws Exception {
        switch (scenario) {
            case "metadata": return metadata(topic, deadline);
            case "produce.keys": return produceKeys(topic, deadline);
            case "produce.headers": return produceHeaders(topic, deadline);
            case "produce.timestamps": return produceTimestamps(topic, deadline);
            case "produce.gzip": return produceCompressed(topic, "gzip", deadline);
            case "produce.snappy": return produceCompressed(topic, "snappy", deadline);
            case "produce.lz4": return produceCompressed(topic, "lz4", deadline);
            case "produce.zstd": return produceCompressed(topic, "zstd", deadline);
            case "produce.acks0": return produceAcks(topic, "0", deadline);
            case "produce.acks1": return produceAcks(topic, "1", deadline);
            case "produce.acksall": return produceAcks(topic, "all", deadline);
            case "produce.idempotent": return produceIdempotent(topic, deadline);
            case "consume.assign_seek": return assignSeek(topic, deadline);
            case "consume.from_beginning": return fromBeginning(topic, deadline);
            case "consume.from_timestamp": return fromTimestamp(topic, deadline);
            case "group.subscribe_commit_resume": return groupResume(topic, deadline);
            case "admin.topics": return adminTopics(topic, deadline);
            case "admin.configs": return adminConfigs(topic, deadline);
            case "admin.partitions": return adminPartitions(topic, deadline);
            default: throw new Failure("unknown scenario " + scenario);
        }
    }

    public static void main(String[] args) throws Exception {
        // The contract's lines go to the real stdout; anything else that writes to System.out (the
        // client's logging included) lands on stderr.
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 3) {
            System.err.println("usage: StromMatrix BOOTSTRAP TOPIC_PREFIX SCENARIO [SCENARIO ...]");
            System.exit(2);
        }
        bootstrap = args[0];
        String prefix = args[1];
        out.println("{\"client\": \"java\", \"version\": " + json(AppInfoParser.getVersion()) + "}");
        for (int i = 2; i < args.length; i++) {
            String scenario = args[i];
            String topic = prefix + scenario.replace('.', '-');
            long start = System.currentTimeMillis();
            long deadline = start + INTERNAL_BUDGET_MS;
            ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "matrix-" + scenario);
                t.setDaemon(true);
                return t;
            });
            String status;
            String detail;
            Future<String> f = ex.submit(() -> run(scenario, topic, deadline));
            try {
                detail = f.get(SCENARIO_LIMIT_MS - 1000, TimeUnit.MILLISECONDS);
                status = "pass";
            } catch (TimeoutException e) {
                f.cancel(true);
                status = "fail";
                detail = "timed out after " + (SCENARIO_LIMIT_MS / 1000) + " s";
            } catch (ExecutionException e) {
                Throwable c = e.getCause() == null ? e : e.getCause();
                status = "fail";
                detail = c instanceof Failure ? c.getMessage()
                        : c.getClass().getSimpleName() + ": " + c.getMessage();
            }
            ex.shutdownNow();
            log(scenario + ": " + status + " in " + (System.currentTimeMillis() - start) + " ms: " + detail);
            out.println("{\"scenario\": " + json(scenario) + ", \"status\": \"" + status + "\", \"detail\": "
                    + json(detail) + "}");
        }
        out.flush();
        System.exit(0);
    }
}
