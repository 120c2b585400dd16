// Topic and log administration through the official Java client's AdminClient (kafka-clients)
// against a running broker.
//
// Usage: StromAdminCheck COMMAND BOOTSTRAP TOPIC [--timeout-s S] [--names a,b,c]
//                        [--broker-retention-hours H] [--broker-max-message-bytes N]
//
// Commands (each uses TOPIC and topics named after it):
//   configs     createTopics with configs (retention.ms, cleanup.policy=delete, segment.bytes): the
//               CreateTopics result reports them as DYNAMIC_TOPIC_CONFIG; describeConfigs of that topic
//               and of a topic without overrides: every name of --names is reported, the overrides with
//               DYNAMIC_TOPIC_CONFIG, everything else DEFAULT_CONFIG or STATIC_BROKER_CONFIG with the
//               broker's value (the broker runs with log.retention.hours=H and message.max.bytes=N when
//               given), types, read-only and sensitive flags; includeSynonyms (a synonym named after a
//               broker property has that property's own value) and includeDocumentation (and their
//               absence: no synonyms, null documentation); an unknown topic; the broker resource.
//   alter       incrementalAlterConfigs: SET, APPEND/SUBTRACT on cleanup.policy, DELETE (back to the
//               broker's value); APPEND on a non-list config, a bad value and an unknown name fail with
//               InvalidConfigurationException and change nothing; validateOnly changes nothing; one bad
//               resource does not spoil a good one in the same request.
//   partitions  createPartitions 3 -> 6 (validateOnly first), records produced to partitions 3, 4, 5
//               read back; shrinking, the same count and an unknown topic fail.
//   cluster     describeCluster: cluster id, the one node (at BOOTSTRAP), the controller.
//   delete-records  deleteRecords below an offset: the low watermark, listOffsets earliest, a consumer
//               from the beginning starts there (also one reset from below it); an offset below the
//               log start changes nothing, -1 means the high watermark, past it fails.
//   log-dirs    describeLogDirs: the topic's partitions appear, sizes follow what was produced.
//   producers   describeProducers: the idempotent producers of a partition (the same producer id on
//               each partition it wrote, its last sequence), none for a non-idempotent producer.
//   retention   a topic with a small segment.bytes and many records keeps them; lowering retention.ms
//               with incrementalAlterConfigs makes old segments go (listOffsets earliest advances)
//               within seconds, and a consumer from the beginning starts at the new log start.
//   epoch       OffsetForLeaderEpoch through the consumer's position validation: a seek with the
//               records' leader epoch inside the log passes, one past the log end is detected as a
//               truncation (LogTruncationException with the log end as divergent offset, or a reset
//               to it with auto.offset.reset=earliest).
//
// Every line printed says what was checked; the first failed check ends the program.
// Exit codes: 0 success, 1 verification failure or client error, 2 usage, 3 timeout.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.LogTruncationException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class StromAdminCheck {
    private StromAdminCheck() {}

    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    static String bootstrap;
    static long deadlineNanos;
    static List<String> expectedNames = List.of();
    static String brokerRetentionHours = null;
    static String brokerRetentionMs = null;
    static String brokerMaxMessageBytes = null;

    static void check(boolean cond, String message) throws Failure {
        if (!cond) {
            throw new Failure(message);
        }
    }

    /** Problems found by checks that let the program go on (reported together by `reportProblems`). */
    static final List<String> problems = new ArrayList<>();

    static void soft(boolean cond, String message) {
        if (!cond && !problems.contains(message)) {
            problems.add(message);
            say("PROBLEM: " + message);
        }
    }

    static void reportProblems() throws Failure {
        if (!problems.isEmpty()) {
            throw new Failure(problems.size() + " problem(s):\n  - " + String.join("\n  - ", problems));
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

    /** Checks that `future` fails with `expected`; returns the exception. */
    static Throwable expectFailure(Future<?> future, Class<? extends Throwable> expected, String what) throws Exception {
        Throwable err = failureOf(future, what);
        check(err != null, what + ": succeeded, expected " + expected.getSimpleName());
        check(expected.isInstance(err), what + ": expected " + expected.getSimpleName() + ", got " + err);
        return err;
    }

    interface Probe<T> {
        T get() throws Exception;
    }

    /** Polls `probe` until it returns non-null (a Failure thrown by it is retried until the deadline). */
    static <T> T waitFor(String what, long timeoutMs, long intervalMs, Probe<T> probe) throws Exception {
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
                throw new Failure("timed out after " + timeoutMs + " ms waiting for " + what
                        + (last == null ? "" : " (last: " + last.getMessage() + ")"));
            }
            Thread.sleep(intervalMs);
        }
    }

    // --- clients ---------------------------------------------------------------------------------

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "strom-admin-check");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    static KafkaProducer<String, String> producer(String clientId, Map<String, String> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String clientId, String offsetReset) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, offsetReset);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        return new KafkaConsumer<>(p);
    }

    /**
     * Sends records to `producer` (partition -> count, values "prefix-p-i" padded to `valueBytes`) and
     * returns each partition's acknowledged offsets -> values, in offset order.
     */
    static Map<Integer, TreeMap<Long, String>> produce(KafkaProducer<String, String> producer, String topic,
            Map<Integer, Integer> counts, int valueBytes, String prefix) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<String> values = new ArrayList<>();
        int max = 0;
        for (int c : counts.values()) {
            max = Math.max(max, c);
        }
        for (int i = 0; i < max; i++) {
            for (Map.Entry<Integer, Integer> e : counts.entrySet()) {
                if (i >= e.getValue()) {
                    continue;
                }
                StringBuilder v = new StringBuilder(prefix + "-" + e.getKey() + "-" + i + "-");
                while (v.length() < valueBytes) {
                    v.append((char) ('a' + (v.length() % 26)));
                }
                values.add(v.toString());
                futures.add(producer.send(new ProducerRecord<>(topic, e.getKey(), "k" + i, v.toString())));
            }
        }
        producer.flush();
        Map<Integer, TreeMap<Long, String>> out = new TreeMap<>();
        for (int i = 0; i < futures.size(); i++) {
            RecordMetadata md = get(futures.get(i), "produce of " + values.get(i));
            out.computeIfAbsent(md.partition(), k -> new TreeMap<>()).put(md.offset(), values.get(i));
        }
        List<String> ranges = new ArrayList<>();
        out.forEach((p, m) -> ranges.add(p + ": " + m.firstKey() + ".." + m.lastKey()));
        say("produced " + futures.size() + " records (" + prefix + ") to " + topic + ", offsets " + ranges);
        return out;
    }

    static Map<Integer, TreeMap<Long, String>> produceWith(String clientId, Map<String, String> extra, String topic,
            Map<Integer, Integer> counts, int valueBytes, String prefix) throws Exception {
        try (KafkaProducer<String, String> p = producer(clientId, extra)) {
            return produce(p, topic, counts, valueBytes, prefix);
        }
    }

    /** Reads `tp` from the consumer's current position until `count` records arrived. */
    static List<ConsumerRecord<String, String>> readRecords(KafkaConsumer<String, String> c, TopicPartition tp,
            int count, String what) throws Exception {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        while (out.size() < count) {
            checkDeadline(what + " (" + out.size() + " of " + count + " records read)");
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)).records(tp)) {
                out.add(r);
            }
        }
        return out;
    }

    /** Checks that `got` are exactly the records of `want` from offset `from` on, in order. */
    static void checkRecords(List<ConsumerRecord<String, String>> got, TreeMap<Long, String> want, long from,
            String what) throws Failure {
        List<Long> wantOffsets = new ArrayList<>(want.tailMap(from, true).keySet());
        List<Long> gotOffsets = new ArrayList<>();
        for (ConsumerRecord<String, String> r : got) {
            gotOffsets.add(r.offset());
        }
        check(gotOffsets.equals(wantOffsets), what + ": read offsets " + summary(gotOffsets) + ", expected "
                + summary(wantOffsets));
        for (ConsumerRecord<String, String> r : got) {
            check(want.get(r.offset()).equals(r.value()), what + ": offset " + r.offset() + " has value " + r.value()
                    + ", expected " + want.get(r.offset()));
        }
    }

    static String summary(List<Long> offsets) {
        if (offsets.isEmpty()) {
            return "[]";
        }
        return "[" + offsets.get(0) + ".." + offsets.get(offsets.size() - 1) + "] (" + offsets.size() + " records)";
    }

    static long offsetOf(Admin admin, TopicPartition tp, OffsetSpec spec, String what) throws Exception {
        return get(admin.listOffsets(Map.of(tp, spec)).partitionResult(tp), "listOffsets(" + tp + ", " + what + ")")
                .offset();
    }

    static CreateTopicsResult createTopic(Admin admin, String topic, int partitions, Map<String, String> configs)
            throws Exception {
        NewTopic nt = new NewTopic(topic, partitions, (short) 1);
        if (!configs.isEmpty()) {
            nt.configs(configs);
        }
        CreateTopicsResult r = admin.createTopics(List.of(nt));
        get(r.all(), "createTopics(" + topic + ", " + partitions + " partitions, configs " + configs + ")");
        say("created topic " + topic + " with " + partitions + " partitions" + (configs.isEmpty() ? "" : ", configs "
                + new TreeMap<>(configs)));
        return r;
    }

    static ConfigResource topicResource(String topic) {
        return new ConfigResource(ConfigResource.Type.TOPIC, topic);
    }

    static Config describe(Admin admin, ConfigResource res, boolean synonyms, boolean documentation) throws Exception {
        DescribeConfigsOptions opts = new DescribeConfigsOptions().includeSynonyms(synonyms)
                .includeDocumentation(documentation);
        Map<ConfigResource, Config> all = get(admin.describeConfigs(List.of(res), opts).all(),
                "describeConfigs(" + res + ", includeSynonyms=" + synonyms + ", includeDocumentation=" + documentation + ")");
        Config c = all.get(res);
        check(c != null, "describeConfigs(" + res + ") returned nothing for it: " + all.keySet());
        return c;
    }

    static ConfigEntry entry(Config c, String name, String where) throws Failure {
        ConfigEntry e = c.get(name);
        check(e != null, where + ": " + name + " is not reported");
        return e;
    }

    static String show(ConfigEntry e) {
        return e.name() + "=" + e.value() + " (" + e.source() + ")";
    }

    static void checkEntry(Config c, String name, String value, ConfigEntry.ConfigSource source, String where)
            throws Failure {
        ConfigEntry e = entry(c, name, where);
        check(value.equals(e.value()) && e.source() == source, where + ": " + show(e) + ", expected " + name + "="
                + value + " (" + source + ")");
    }

    static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
        return new AlterConfigOp(new ConfigEntry(name, value), type);
    }

    static Throwable alter(Admin admin, String topic, boolean validateOnly, AlterConfigOp... ops) throws Exception {
        ConfigResource res = topicResource(topic);
        Map<ConfigResource, Collection<AlterConfigOp>> req = Map.of(res, List.of(ops));
        return failureOf(admin.incrementalAlterConfigs(req, new AlterConfigsOptions().validateOnly(validateOnly)).all(),
                "incrementalAlterConfigs(" + topic + ", " + List.of(ops) + ")");
    }

    static void alterOk(Admin admin, String topic, AlterConfigOp... ops) throws Exception {
        Throwable err = alter(admin, topic, false, ops);
        check(err == null, "incrementalAlterConfigs(" + topic + ", " + describeOps(ops) + ") failed: " + err);
    }

    static String describeOps(AlterConfigOp... ops) {
        List<String> out = new ArrayList<>();
        for (AlterConfigOp o : ops) {
            out.add(o.opType() + " " + o.configEntry().name() + (o.configEntry().value() == null ? "" : "="
                    + o.configEntry().value()));
        }
        return out.toString();
    }

    static Node onlyNode(Admin admin) throws Exception {
        Collection<Node> nodes = get(admin.describeCluster().nodes(), "describeCluster().nodes()");
        check(nodes.size() == 1, "describeCluster lists " + nodes.size() + " nodes: " + nodes);
        return nodes.iterator().next();
    }

    // --- configs ---------------------------------------------------------------------------------

    static void configs(String topic) throws Exception {
        String plain = topic + "-plain";
        Map<String, String> overrides = new TreeMap<>(Map.of(
                "retention.ms", "3600000",
                "cleanup.policy", "delete",
                "segment.bytes", "1048576"));
        try (Admin admin = admin()) {
            CreateTopicsResult created = createTopic(admin, topic, 2, overrides);
            check(get(created.numPartitions(topic), "createTopics numPartitions") == 2,
                    "createTopics result: numPartitions " + get(created.numPartitions(topic), "numPartitions"));
            check(get(created.replicationFactor(topic), "createTopics replicationFactor") == 1,
                    "createTopics result: replicationFactor " + get(created.replicationFactor(topic), "replicationFactor"));
            // CreateTopics v5+ returns the topic's configs (KIP-525).
            Config fromCreate = get(created.config(topic), "createTopics config(" + topic + ")");
            for (Map.Entry<String, String> o : overrides.entrySet()) {
                checkEntry(fromCreate, o.getKey(), o.getValue(), ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                        "createTopics result config");
            }
            say("createTopics result: 2 partitions, replication factor 1, configs " + fromCreate.entries().size()
                    + " entries, the overrides as DYNAMIC_TOPIC_CONFIG");
            createTopic(admin, plain, 1, Map.of());

            Config c = describe(admin, topicResource(topic), false, false);
            Config p = describe(admin, topicResource(plain), false, false);
            Set<String> reported = new TreeSet<>();
            for (ConfigEntry e : c.entries()) {
                check(reported.add(e.name()), "describeConfigs(" + topic + ") reports " + e.name() + " twice");
            }
            List<String> missing = new ArrayList<>();
            for (String name : expectedNames) {
                if (!reported.contains(name)) {
                    missing.add(name);
                }
            }
            check(missing.isEmpty(), "describeConfigs(" + topic + ") does not report " + missing + " (reported: "
                    + reported + ")");
            say("describeConfigs(" + topic + "): " + reported.size() + " configs, every one of the " + expectedNames.size()
                    + " names Kafka 3.8 reports among them");
            Set<String> reportedPlain = new TreeSet<>();
            for (ConfigEntry e : p.entries()) {
                reportedPlain.add(e.name());
            }
            check(reportedPlain.equals(reported), "a topic without overrides reports other names: " + reportedPlain
                    + " vs " + reported);

            List<String> documented = new ArrayList<>();
            for (ConfigEntry e : c.entries()) {
                String where = "describeConfigs(" + topic + ")";
                check(!e.isReadOnly() && !e.isSensitive(), where + ": " + show(e) + " read-only " + e.isReadOnly()
                        + ", sensitive " + e.isSensitive());
                check(e.value() != null, where + ": " + e.name() + " has no value");
                check(e.synonyms().isEmpty(), where + " without includeSynonyms: " + e.name() + " has synonyms "
                        + e.synonyms());
                if (e.documentation() != null) {
                    documented.add(e.name() + ": \"" + e.documentation() + "\"");
                }
                if (overrides.containsKey(e.name())) {
                    check(e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG
                            && overrides.get(e.name()).equals(e.value()) && !e.isDefault(),
                            where + ": " + show(e) + " (isDefault " + e.isDefault() + "), expected " + e.name() + "="
                                    + overrides.get(e.name()) + " (DYNAMIC_TOPIC_CONFIG)");
                } else {
                    check(e.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG
                            || e.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                            where + ": " + show(e) + ", not set on the topic: expected DEFAULT_CONFIG or STATIC_BROKER_CONFIG");
                    ConfigEntry same = p.get(e.name());
                    check(same != null && e.value().equals(same.value()) && e.source() == same.source(),
                            where + ": " + show(e) + ", but " + plain + " (no overrides) has " + (same == null ? "nothing"
                                    : show(same)));
                }
            }
            soft(documented.isEmpty(), "describeConfigs(" + topic + ") without includeDocumentation: " + documented.size()
                    + " configs have documentation (Kafka sends null), e.g. "
                    + (documented.isEmpty() ? "" : documented.get(0)));
            say("overrides " + overrides + " reported as DYNAMIC_TOPIC_CONFIG, everything else as on a topic without"
                    + " overrides (DEFAULT_CONFIG or STATIC_BROKER_CONFIG), none read-only or sensitive");

            // Kafka's defaults, and the broker's settings, on the topic without overrides.
            String where = "describeConfigs(" + plain + ")";
            checkEntry(p, "cleanup.policy", "delete", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            checkEntry(p, "segment.bytes", "1073741824", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            checkEntry(p, "compression.type", "producer", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            checkEntry(p, "min.insync.replicas", "1", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            checkEntry(p, "message.timestamp.type", "CreateTime", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            checkEntry(p, "retention.bytes", "-1", ConfigEntry.ConfigSource.DEFAULT_CONFIG, where);
            check(entry(p, "cleanup.policy", where).isDefault(), where + ": cleanup.policy not isDefault()");
            if (brokerMaxMessageBytes != null) {
                checkEntry(p, "max.message.bytes", brokerMaxMessageBytes, ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                        where + " (broker started with message.max.bytes=" + brokerMaxMessageBytes + ")");
                check(!entry(p, "max.message.bytes", where).isDefault(), where + ": max.message.bytes isDefault()");
            }
            if (brokerRetentionMs != null) {
                ConfigEntry r = entry(p, "retention.ms", where);
                check(brokerRetentionMs.equals(r.value()), where + ": " + show(r) + ", expected the broker's "
                        + brokerRetentionMs);
                // Kafka 3.8 answers DEFAULT_CONFIG here when the broker sets log.retention.hours (its
                // synonym list for log.retention.ms drops entries before a log.retention.ms one), a
                // source named after the broker property otherwise: either is Kafka's.
                check(r.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG
                        || r.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG, where + ": " + show(r));
                say(where + ": " + show(r));
            }
            say(where + ": Kafka's defaults as DEFAULT_CONFIG, the broker's message.max.bytes as STATIC_BROKER_CONFIG");

            // Types (DescribeConfigs v3+).
            Map<String, ConfigEntry.ConfigType> types = new LinkedHashMap<>();
            types.put("retention.ms", ConfigEntry.ConfigType.LONG);
            types.put("cleanup.policy", ConfigEntry.ConfigType.LIST);
            types.put("segment.bytes", ConfigEntry.ConfigType.INT);
            types.put("preallocate", ConfigEntry.ConfigType.BOOLEAN);
            types.put("min.cleanable.dirty.ratio", ConfigEntry.ConfigType.DOUBLE);
            types.put("compression.type", ConfigEntry.ConfigType.STRING);
            for (Map.Entry<String, ConfigEntry.ConfigType> t : types.entrySet()) {
                ConfigEntry e = entry(c, t.getKey(), "describeConfigs(" + topic + ")");
                check(e.type() == t.getValue(), "describeConfigs(" + topic + "): " + t.getKey() + " has type " + e.type()
                        + ", expected " + t.getValue());
            }
            say("config types: " + types);

            // includeSynonyms + includeDocumentation.
            Config cs = describe(admin, topicResource(topic), true, true);
            ConfigEntry rs = entry(cs, "retention.ms", "describeConfigs(" + topic + ", includeSynonyms)");
            check(!rs.synonyms().isEmpty(), "retention.ms of " + topic + " with includeSynonyms: no synonyms");
            ConfigEntry.ConfigSynonym first = rs.synonyms().get(0);
            check("retention.ms".equals(first.name()) && "3600000".equals(first.value())
                    && first.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms of " + topic + ": first synonym " + first + ", expected retention.ms=3600000"
                            + " (DYNAMIC_TOPIC_CONFIG)");
            check(rs.documentation() != null && !rs.documentation().isEmpty(),
                    "retention.ms with includeDocumentation has no documentation");
            // Kafka lists no synonyms for some configs (those without a broker property), so only
            // those listed are checked: the first is where the value comes from.
            for (ConfigEntry e : cs.entries()) {
                check(e.synonyms().isEmpty() || e.synonyms().get(0).source() == e.source(), "describeConfigs(" + topic
                        + ", includeSynonyms): " + show(e) + " but its first synonym is " + e.synonyms().get(0));
                if (overrides.containsKey(e.name())) {
                    check(!e.synonyms().isEmpty() && e.name().equals(e.synonyms().get(0).name()), "describeConfigs("
                            + topic + ", includeSynonyms): the override " + show(e) + " has synonyms " + e.synonyms());
                }
            }
            say("includeSynonyms: retention.ms " + rs.synonyms() + "; each config's first synonym has its source");

            Config ps = describe(admin, topicResource(plain), true, false);
            if (brokerMaxMessageBytes != null) {
                ConfigEntry mm = entry(ps, "max.message.bytes", "describeConfigs(" + plain + ", includeSynonyms)");
                List<ConfigEntry.ConfigSynonym> syn = mm.synonyms();
                check(syn.size() >= 1 && "message.max.bytes".equals(syn.get(0).name())
                        && brokerMaxMessageBytes.equals(syn.get(0).value())
                        && syn.get(0).source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                        "max.message.bytes of " + plain + ": synonyms " + syn + ", expected message.max.bytes="
                                + brokerMaxMessageBytes + " (STATIC_BROKER_CONFIG) first");
                ConfigEntry.ConfigSynonym last = syn.get(syn.size() - 1);
                check(syn.size() == 2 && "message.max.bytes".equals(last.name()) && "1048588".equals(last.value())
                        && last.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                        "max.message.bytes of " + plain + ": synonyms " + syn + ", expected the broker's setting then"
                                + " message.max.bytes=1048588 (DEFAULT_CONFIG)");
                say("includeSynonyms on " + plain + ": max.message.bytes " + syn);
            }
            // A synonym is a property with its own value: log.retention.hours=48 is "48", not the
            // 172800000 ms it amounts to.
            Map<String, String> brokerSet = new TreeMap<>();
            if (brokerRetentionHours != null) {
                brokerSet.put("log.retention.hours", brokerRetentionHours);
            }
            if (brokerMaxMessageBytes != null) {
                brokerSet.put("message.max.bytes", brokerMaxMessageBytes);
            }
            for (Config described : List.of(cs, ps)) {
                for (ConfigEntry e : described.entries()) {
                    for (ConfigEntry.ConfigSynonym syn : e.synonyms()) {
                        if (syn.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG) {
                            String want = brokerSet.get(syn.name());
                            soft(want == null || want.equals(syn.value()), e.name() + " has synonym " + syn
                                    + ", but the broker runs with " + syn.name() + "=" + want + " (a synonym carries the"
                                    + " broker property's own value, in its own unit)");
                        }
                    }
                }
            }
            ConfigEntry cp = entry(ps, "cleanup.policy", "describeConfigs(" + plain + ", includeSynonyms)");
            check(cp.synonyms().size() == 1 && "log.cleanup.policy".equals(cp.synonyms().get(0).name())
                    && "delete".equals(cp.synonyms().get(0).value())
                    && cp.synonyms().get(0).source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                    "cleanup.policy of " + plain + ": synonyms " + cp.synonyms() + ", expected log.cleanup.policy=delete"
                            + " (DEFAULT_CONFIG)");
            soft(cp.documentation() == null, "describeConfigs(" + plain + ", includeSynonyms) without"
                    + " includeDocumentation: cleanup.policy has documentation \"" + cp.documentation() + "\" (Kafka sends null)");

            // An unknown topic.
            String unknown = topic + "-does-not-exist";
            expectFailure(admin.describeConfigs(List.of(topicResource(unknown))).all(),
                    UnknownTopicOrPartitionException.class, "describeConfigs(" + unknown + ")");
            say("describeConfigs of an unknown topic: UnknownTopicOrPartitionException");

            // The broker resource.
            Node node = onlyNode(admin);
            ConfigResource brokerRes = new ConfigResource(ConfigResource.Type.BROKER, node.idString());
            Config b = describe(admin, brokerRes, true, false);
            check(!b.entries().isEmpty(), "describeConfigs(broker " + node.idString() + ") is empty");
            if (brokerMaxMessageBytes != null) {
                checkEntry(b, "message.max.bytes", brokerMaxMessageBytes, ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                        "describeConfigs(broker " + node.idString() + ")");
            }
            if (brokerRetentionHours != null) {
                checkEntry(b, "log.retention.hours", brokerRetentionHours, ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                        "describeConfigs(broker " + node.idString() + ")");
            }
            say("describeConfigs(broker " + node.idString() + "): " + b.entries().size() + " entries"
                    + (brokerMaxMessageBytes == null ? "" : ", " + show(b.get("message.max.bytes"))));
            reportProblems();
        }
    }

    // --- alter -----------------------------------------------------------------------------------

    static void alterChecks(String topic) throws Exception {
        String other = topic + "-other";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of("cleanup.policy", "delete"));
            createTopic(admin, other, 1, Map.of());
            ConfigResource res = topicResource(topic);
            String where = "describeConfigs(" + topic + ")";
            Config before = describe(admin, res, false, false);
            ConfigEntry retentionBefore = entry(before, "retention.ms", where);
            check(retentionBefore.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, where + ": " + show(retentionBefore)
                    + " before any change");
            if (brokerRetentionMs != null) {
                check(brokerRetentionMs.equals(retentionBefore.value()), where + ": " + show(retentionBefore)
                        + ", expected the broker's " + brokerRetentionMs);
            }
            say("before: " + show(retentionBefore) + ", " + show(entry(before, "cleanup.policy", where)));

            alterOk(admin, topic, op("retention.ms", "7200000", AlterConfigOp.OpType.SET));
            checkEntry(describe(admin, res, false, false), "retention.ms", "7200000",
                    ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, where + " after SET retention.ms=7200000");
            say("SET retention.ms=7200000: reported as DYNAMIC_TOPIC_CONFIG");

            alterOk(admin, topic, op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND));
            Config c = describe(admin, res, false, false);
            checkEntry(c, "cleanup.policy", "delete,compact", ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    where + " after APPEND cleanup.policy compact");
            checkEntry(c, "retention.ms", "7200000", ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    where + " after APPEND cleanup.policy (retention.ms must be untouched)");
            say("APPEND cleanup.policy compact: delete,compact; retention.ms untouched");

            alterOk(admin, topic, op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND));
            checkEntry(describe(admin, res, false, false), "cleanup.policy", "delete,compact",
                    ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, where + " after APPENDing compact a second time");
            say("APPEND of a value already in the list: unchanged");

            alterOk(admin, topic, op("cleanup.policy", "compact", AlterConfigOp.OpType.SUBTRACT));
            checkEntry(describe(admin, res, false, false), "cleanup.policy", "delete",
                    ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, where + " after SUBTRACT cleanup.policy compact");
            say("SUBTRACT cleanup.policy compact: delete");

            alterOk(admin, topic, op("retention.ms", null, AlterConfigOp.OpType.DELETE));
            c = describe(admin, res, false, false);
            ConfigEntry r = entry(c, "retention.ms", where);
            check(r.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG && r.value().equals(retentionBefore.value())
                    && r.source() == retentionBefore.source(), where + " after DELETE retention.ms: " + show(r)
                            + ", expected " + show(retentionBefore) + " as before the SET");
            checkEntry(c, "cleanup.policy", "delete", ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    where + " after DELETE retention.ms");
            say("DELETE retention.ms: back to " + show(r));

            // Refused operations change nothing.
            Config snapshot = describe(admin, res, false, false);
            List<AlterConfigOp[]> bad = new ArrayList<>();
            bad.add(new AlterConfigOp[] {op("retention.ms", "1000", AlterConfigOp.OpType.APPEND)});
            bad.add(new AlterConfigOp[] {op("segment.bytes", "1000", AlterConfigOp.OpType.SUBTRACT)});
            bad.add(new AlterConfigOp[] {op("retention.ms", "not-a-number", AlterConfigOp.OpType.SET)});
            bad.add(new AlterConfigOp[] {op("no.such.config", "1", AlterConfigOp.OpType.SET)});
            for (AlterConfigOp[] ops : bad) {
                Throwable err = alter(admin, topic, false, ops);
                check(err instanceof InvalidConfigurationException, "incrementalAlterConfigs(" + topic + ", "
                        + describeOps(ops) + "): expected InvalidConfigurationException, got " + err);
                checkUnchanged(admin, res, snapshot, describeOps(ops) + " was refused");
                say("refused " + describeOps(ops) + ": " + err.getClass().getSimpleName() + ": " + err.getMessage());
            }

            // validateOnly: a valid change is accepted but not applied, an invalid one refused.
            Throwable v = alter(admin, topic, true, op("retention.ms", "1", AlterConfigOp.OpType.SET),
                    op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND));
            check(v == null, "incrementalAlterConfigs(validateOnly) of a valid change failed: " + v);
            checkUnchanged(admin, res, snapshot, "a validateOnly change");
            Throwable vbad = alter(admin, topic, true, op("retention.ms", "1000", AlterConfigOp.OpType.APPEND));
            check(vbad instanceof InvalidConfigurationException, "incrementalAlterConfigs(validateOnly, APPEND"
                    + " retention.ms): expected InvalidConfigurationException, got " + vbad);
            checkUnchanged(admin, res, snapshot, "a refused validateOnly change");
            say("validateOnly: a valid change accepted and not applied, an invalid one refused");

            // Two resources in one request: each gets its own result.
            ConfigResource otherRes = topicResource(other);
            Map<ConfigResource, Collection<AlterConfigOp>> two = new HashMap<>();
            two.put(res, List.of(op("retention.ms", "1000", AlterConfigOp.OpType.APPEND)));
            two.put(otherRes, List.of(op("retention.ms", "5400000", AlterConfigOp.OpType.SET)));
            Map<ConfigResource, org.apache.kafka.common.KafkaFuture<Void>> results =
                    admin.incrementalAlterConfigs(two).values();
            Throwable badOne = failureOf(results.get(res), "incrementalAlterConfigs(" + topic + ") in a two-topic request");
            Throwable goodOne = failureOf(results.get(otherRes), "incrementalAlterConfigs(" + other + ") in a two-topic request");
            check(badOne instanceof InvalidConfigurationException, "two-topic request: " + topic
                    + " (APPEND retention.ms) expected InvalidConfigurationException, got " + badOne);
            check(goodOne == null, "two-topic request: " + other + " (SET retention.ms=5400000) failed: " + goodOne);
            checkEntry(describe(admin, otherRes, false, false), "retention.ms", "5400000",
                    ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "describeConfigs(" + other + ") after the two-topic request");
            checkUnchanged(admin, res, snapshot, "its part of a two-topic request was refused");
            say("two topics in one request: the invalid one refused, the valid one applied");

            // An unknown topic.
            String unknown = topic + "-does-not-exist";
            Throwable u = alter(admin, unknown, false, op("retention.ms", "1000", AlterConfigOp.OpType.SET));
            check(u instanceof UnknownTopicOrPartitionException, "incrementalAlterConfigs(" + unknown
                    + "): expected UnknownTopicOrPartitionException, got " + u);
            say("incrementalAlterConfigs of an unknown topic: UnknownTopicOrPartitionException");
        }
    }

    static void checkUnchanged(Admin admin, ConfigResource res, Config snapshot, String after) throws Exception {
        Config now = describe(admin, res, false, false);
        for (ConfigEntry e : snapshot.entries()) {
            ConfigEntry n = now.get(e.name());
            check(n != null && e.value().equals(n.value()) && e.source() == n.source(), res.name() + ": " + show(e)
                    + " became " + (n == null ? "absent" : show(n)) + " although " + after);
        }
    }

    // --- partitions ------------------------------------------------------------------------------

    static int partitionCount(Admin admin, String topic) throws Exception {
        Map<String, TopicDescription> d = get(admin.describeTopics(List.of(topic)).allTopicNames(),
                "describeTopics(" + topic + ")");
        return d.get(topic).partitions().size();
    }

    static void partitions(String topic) throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3, Map.of());
            Map<Integer, TreeMap<Long, String>> old = produceWith("strom-admin-producer", Map.of(), topic,
                    Map.of(0, 10, 1, 10, 2, 10), 20, "before");

            Throwable v = failureOf(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(6)),
                    new CreatePartitionsOptions().validateOnly(true)).all(), "createPartitions(validateOnly)");
            check(v == null, "createPartitions(" + topic + " -> 6, validateOnly) failed: " + v);
            check(partitionCount(admin, topic) == 3, "validateOnly createPartitions changed the partition count to "
                    + partitionCount(admin, topic));
            say("createPartitions(validateOnly): accepted, still 3 partitions");

            get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(6))).all(),
                    "createPartitions(" + topic + " -> 6)");
            int n = waitFor("describeTopics to show 6 partitions", 15_000, 200, () -> {
                int c = partitionCount(admin, topic);
                check(c == 6, "describeTopics shows " + c + " partitions");
                return c;
            });
            say("createPartitions(" + topic + " -> 6): describeTopics shows " + n + " partitions");

            Map<Integer, TreeMap<Long, String>> added = produceWith("strom-admin-producer-2", Map.of(), topic,
                    Map.of(3, 7, 4, 7, 5, 7), 20, "added");
            for (int p = 3; p < 6; p++) {
                TreeMap<Long, String> m = added.get(p);
                check(m != null && m.firstKey() == 0 && m.lastKey() == 6, "partition " + p + " got offsets "
                        + (m == null ? "none" : m.keySet()) + ", expected 0..6");
            }
            try (KafkaConsumer<String, String> c = consumer("strom-admin-reader", "earliest")) {
                for (int p = 0; p < 6; p++) {
                    TopicPartition tp = new TopicPartition(topic, p);
                    TreeMap<Long, String> want = p < 3 ? old.get(p) : added.get(p);
                    c.assign(List.of(tp));
                    c.seekToBeginning(List.of(tp));
                    checkRecords(readRecords(c, tp, want.size(), "reading " + tp), want, 0, "reading " + tp);
                    check(c.position(tp, timeLeft(15_000)) == want.lastKey() + 1, tp + ": position "
                            + c.position(tp, timeLeft(15_000)) + " after reading everything");
                }
            }
            say("records produced to partitions 3, 4, 5 read back, partitions 0-2 intact");

            Throwable shrink = expectFailure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all(),
                    InvalidPartitionsException.class, "createPartitions(" + topic + " -> 4)");
            Throwable same = expectFailure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(6))).all(),
                    InvalidPartitionsException.class, "createPartitions(" + topic + " -> 6 again)");
            check(partitionCount(admin, topic) == 6, "after refused createPartitions: " + partitionCount(admin, topic)
                    + " partitions");
            say("shrinking refused (" + shrink.getMessage() + "), the same count refused (" + same.getMessage() + ")");

            String unknown = topic + "-does-not-exist";
            expectFailure(admin.createPartitions(Map.of(unknown, NewPartitions.increaseTo(2))).all(),
                    UnknownTopicOrPartitionException.class, "createPartitions(" + unknown + ")");
            say("createPartitions of an unknown topic: UnknownTopicOrPartitionException");
        }
    }

    // --- cluster ---------------------------------------------------------------------------------

    static void cluster(String topic) throws Exception {
        try (Admin admin = admin()) {
            DescribeClusterResult r = admin.describeCluster();
            String clusterId = get(r.clusterId(), "describeCluster().clusterId()");
            Collection<Node> nodes = get(r.nodes(), "describeCluster().nodes()");
            Node controller = get(r.controller(), "describeCluster().controller()");
            say("describeCluster: cluster id " + clusterId + ", nodes " + nodes + ", controller " + controller);
            check(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");
            check(nodes.size() == 1, "describeCluster: " + nodes.size() + " nodes, expected 1: " + nodes);
            Node node = nodes.iterator().next();
            String[] hp = bootstrap.split(":");
            check(node.host().equals(hp[0]) && node.port() == Integer.parseInt(hp[1]), "describeCluster: node at "
                    + node.host() + ":" + node.port() + ", expected " + bootstrap);
            check(node.id() >= 0, "describeCluster: node id " + node.id());
            check(controller != null && !controller.isEmpty() && controller.id() == node.id(),
                    "describeCluster: controller " + controller + ", expected node " + node.id());
            String again = get(admin.describeCluster().clusterId(), "describeCluster().clusterId() again");
            check(clusterId.equals(again), "cluster id changed from " + clusterId + " to " + again);
            // The topic metadata agrees about the leader.
            createTopic(admin, topic, 2, Map.of());
            TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames(), "describeTopics").get(topic);
            for (var p : d.partitions()) {
                check(p.leader() != null && p.leader().id() == node.id(), topic + "-" + p.partition() + " led by "
                        + p.leader() + ", expected node " + node.id());
            }
            say("describeCluster: one node at " + bootstrap + " (id " + node.id() + "), it is the controller and leads "
                    + topic + "'s partitions");
        }
    }

    // --- delete-records --------------------------------------------------------------------------

    static void deleteRecords(String topic) throws Exception {
        TopicPartition tp0 = new TopicPartition(topic, 0);
        TopicPartition tp1 = new TopicPartition(topic, 1);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 2, Map.of());
            Map<Integer, TreeMap<Long, String>> produced = produceWith("strom-admin-producer", Map.of(), topic,
                    Map.of(0, 100, 1, 50), 100, "rec");

            DeletedRecords dr = get(admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(40))).lowWatermarks()
                    .get(tp0), "deleteRecords(" + tp0 + " before 40)");
            check(dr.lowWatermark() == 40, "deleteRecords(" + tp0 + " before 40): low watermark " + dr.lowWatermark());
            long earliest = offsetOf(admin, tp0, OffsetSpec.earliest(), "earliest");
            long latest = offsetOf(admin, tp0, OffsetSpec.latest(), "latest");
            check(earliest == 40 && latest == 100, "after deleteRecords(before 40): listOffsets earliest " + earliest
                    + ", latest " + latest + ", expected 40 and 100");
            long earliest1 = offsetOf(admin, tp1, OffsetSpec.earliest(), "earliest");
            check(earliest1 == 0, tp1 + " (not deleted from): earliest " + earliest1);
            say("deleteRecords(" + tp0 + " before 40): low watermark 40; listOffsets earliest 40, latest 100; " + tp1
                    + " untouched");

            try (KafkaConsumer<String, String> c = consumer("strom-admin-reader", "none")) {
                c.assign(List.of(tp0));
                c.seekToBeginning(List.of(tp0));
                List<ConsumerRecord<String, String>> got = readRecords(c, tp0, 60, "reading " + tp0 + " from the beginning");
                checkRecords(got, produced.get(0), 40, "reading " + tp0 + " from the beginning");
            }
            try (KafkaConsumer<String, String> c = consumer("strom-admin-reader-2", "earliest")) {
                c.assign(List.of(tp0));
                c.seek(tp0, 10);
                List<ConsumerRecord<String, String>> got = readRecords(c, tp0, 60, "reading " + tp0 + " from offset 10");
                checkRecords(got, produced.get(0), 40, "reading " + tp0 + " from a deleted offset (10) with"
                        + " auto.offset.reset=earliest");
            }
            say("consumers from the beginning, and from a deleted offset with auto.offset.reset=earliest, start at 40");

            DeletedRecords lower = get(admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(30))).lowWatermarks()
                    .get(tp0), "deleteRecords(" + tp0 + " before 30)");
            check(lower.lowWatermark() == 40, "deleteRecords(" + tp0 + " before 30), below the log start 40: low"
                    + " watermark " + lower.lowWatermark() + ", expected 40 (nothing to delete)");
            say("deleteRecords below the log start: low watermark stays 40");

            DeletedRecords all = get(admin.deleteRecords(Map.of(tp1, RecordsToDelete.beforeOffset(-1))).lowWatermarks()
                    .get(tp1), "deleteRecords(" + tp1 + " before -1 = the high watermark)");
            check(all.lowWatermark() == 50, "deleteRecords(" + tp1 + " before -1): low watermark " + all.lowWatermark()
                    + ", expected the high watermark 50");
            long e1 = offsetOf(admin, tp1, OffsetSpec.earliest(), "earliest");
            long l1 = offsetOf(admin, tp1, OffsetSpec.latest(), "latest");
            check(e1 == 50 && l1 == 50, tp1 + " after deleting everything: earliest " + e1 + ", latest " + l1);
            say("deleteRecords(" + tp1 + " before -1): everything deleted, earliest = latest = 50");

            expectFailure(admin.deleteRecords(Map.of(tp1, RecordsToDelete.beforeOffset(51))).lowWatermarks().get(tp1),
                    OffsetOutOfRangeException.class, "deleteRecords(" + tp1 + " before 51, past the high watermark 50)");
            say("deleteRecords past the high watermark: OffsetOutOfRangeException");

            // The log stays writable at its end, and the new records read from the beginning.
            Map<Integer, TreeMap<Long, String>> more = produceWith("strom-admin-producer-2", Map.of(), topic,
                    Map.of(1, 5), 100, "after");
            check(more.get(1).firstKey() == 50, tp1 + ": new records start at " + more.get(1).firstKey() + ", expected 50");
            try (KafkaConsumer<String, String> c = consumer("strom-admin-reader-3", "none")) {
                c.assign(List.of(tp1));
                c.seekToBeginning(List.of(tp1));
                checkRecords(readRecords(c, tp1, 5, "reading " + tp1), more.get(1), 50, "reading " + tp1
                        + " from the beginning after deleting everything");
            }
            say(tp1 + ": new records at 50..54 read from the beginning");
        }
    }

    // --- log-dirs --------------------------------------------------------------------------------

    static void logDirs(String topic) throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3, Map.of());
            int valueBytes = 200;
            produceWith("strom-admin-producer", Map.of(), topic, Map.of(0, 200, 1, 20), valueBytes, "rec");
            Node node = onlyNode(admin);
            Map<Integer, Map<String, LogDirDescription>> all = get(admin.describeLogDirs(List.of(node.id()))
                    .allDescriptions(), "describeLogDirs(" + node.id() + ")");
            Map<String, LogDirDescription> dirs = all.get(node.id());
            check(dirs != null && !dirs.isEmpty(), "describeLogDirs(" + node.id() + "): no log dirs: " + all);
            Map<TopicPartition, ReplicaInfo> replicas = new HashMap<>();
            for (Map.Entry<String, LogDirDescription> d : dirs.entrySet()) {
                say("log dir " + d.getKey() + ": error " + d.getValue().error() + ", total bytes "
                        + d.getValue().totalBytes() + ", usable bytes " + d.getValue().usableBytes() + ", "
                        + d.getValue().replicaInfos().size() + " partitions");
                check(d.getKey() != null && !d.getKey().isEmpty(), "a log dir without a path");
                check(d.getValue().error() == null, "log dir " + d.getKey() + " has error " + d.getValue().error());
                for (Map.Entry<TopicPartition, ReplicaInfo> r : d.getValue().replicaInfos().entrySet()) {
                    check(replicas.put(r.getKey(), r.getValue()) == null, r.getKey() + " appears in two log dirs");
                }
            }
            Map<Integer, Long> sizes = new TreeMap<>();
            for (int p = 0; p < 3; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                ReplicaInfo r = replicas.get(tp);
                check(r != null, "describeLogDirs does not list " + tp + " (lists " + new TreeSet<>(toStrings(replicas.keySet()))
                        + ")");
                check(!r.isFuture() && r.offsetLag() == 0, tp + ": " + r);
                sizes.put(p, r.size());
            }
            say("describeLogDirs sizes of " + topic + ": " + sizes);
            check(sizes.get(0) >= 200L * valueBytes, topic + "-0 holds 200 records of " + valueBytes + " bytes but its"
                    + " size is " + sizes.get(0));
            check(sizes.get(1) >= 20L * valueBytes, topic + "-1 holds 20 records of " + valueBytes + " bytes but its"
                    + " size is " + sizes.get(1));
            check(sizes.get(0) > sizes.get(1), topic + "-0 (200 records) is not larger than " + topic + "-1 (20): " + sizes);
            check(sizes.get(2) == 0, topic + "-2 holds no records but its size is " + sizes.get(2));

            // The sizes follow new records.
            produceWith("strom-admin-producer-2", Map.of(), topic, Map.of(2, 10), valueBytes, "more");
            long after = waitFor(topic + "-2's size to grow", 10_000, 200, () -> {
                Map<String, LogDirDescription> d = get(admin.describeLogDirs(List.of(node.id())).allDescriptions(),
                        "describeLogDirs").get(node.id());
                for (LogDirDescription l : d.values()) {
                    ReplicaInfo r = l.replicaInfos().get(new TopicPartition(topic, 2));
                    if (r != null && r.size() >= 10L * valueBytes) {
                        return r.size();
                    }
                }
                throw new Failure(topic + "-2 not listed with a size >= " + (10L * valueBytes));
            });
            say("after 10 records: " + topic + "-2 has size " + after);
        }
    }

    static List<String> toStrings(Collection<TopicPartition> tps) {
        List<String> out = new ArrayList<>();
        for (TopicPartition tp : tps) {
            out.add(tp.toString());
        }
        return out;
    }

    // --- producers -------------------------------------------------------------------------------

    static List<ProducerState> producersOf(Admin admin, TopicPartition tp) throws Exception {
        DescribeProducersResult.PartitionProducerState s = get(admin.describeProducers(List.of(tp)).partitionResult(tp),
                "describeProducers(" + tp + ")");
        return s.activeProducers();
    }

    static void producers(String topic) throws Exception {
        TopicPartition tp0 = new TopicPartition(topic, 0);
        TopicPartition tp1 = new TopicPartition(topic, 1);
        TopicPartition tp2 = new TopicPartition(topic, 2);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3, Map.of());
            check(producersOf(admin, tp0).isEmpty(), "describeProducers(" + tp0 + ") before any write: "
                    + producersOf(admin, tp0));
            long t0 = System.currentTimeMillis();
            // Producer A (idempotent: the default) writes to partitions 0 and 2, producer B
            // (idempotent) to 2, producer C (enable.idempotence=false) to 1.
            Map<String, String> idem = Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true",
                    ProducerConfig.ACKS_CONFIG, "all");
            try (KafkaProducer<String, String> a = producer("strom-admin-producer-a", idem);
                 KafkaProducer<String, String> b = producer("strom-admin-producer-b", idem)) {
                produce(a, topic, Map.of(0, 25, 2, 7), 50, "a");
                produce(b, topic, Map.of(2, 4), 50, "b");
            }
            produceWith("strom-admin-producer-c", Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false",
                    ProducerConfig.ACKS_CONFIG, "1"), topic, Map.of(1, 10), 50, "c");
            long t1 = System.currentTimeMillis();

            List<ProducerState> p0 = producersOf(admin, tp0);
            say("describeProducers(" + tp0 + "): " + p0);
            check(p0.size() == 1, tp0 + " was written by one idempotent producer, describeProducers lists " + p0);
            ProducerState a0 = p0.get(0);
            check(a0.producerId() >= 0 && a0.producerEpoch() >= 0, tp0 + ": producer " + a0);
            check(a0.lastSequence() == 24, tp0 + ": 25 records from one producer, last sequence " + a0.lastSequence()
                    + ", expected 24");
            check(a0.lastTimestamp() >= t0 - 5_000 && a0.lastTimestamp() <= t1 + 5_000, tp0 + ": last timestamp "
                    + a0.lastTimestamp() + " is not within the producing time " + t0 + ".." + t1);
            check(a0.coordinatorEpoch().isEmpty() && a0.currentTransactionStartOffset().isEmpty(), tp0
                    + ": a non-transactional producer with coordinator epoch " + a0.coordinatorEpoch()
                    + " / transaction start offset " + a0.currentTransactionStartOffset());

            List<ProducerState> p2 = producersOf(admin, tp2);
            say("describeProducers(" + tp2 + "): " + p2);
            check(p2.size() == 2, tp2 + " was written by two idempotent producers, describeProducers lists " + p2);
            ProducerState a2 = null;
            ProducerState b2 = null;
            for (ProducerState s : p2) {
                if (s.producerId() == a0.producerId()) {
                    a2 = s;
                } else {
                    b2 = s;
                }
            }
            check(a2 != null, tp2 + ": producer id " + a0.producerId() + " (which wrote " + tp0 + " too) not listed: " + p2);
            check(b2 != null && b2.producerId() >= 0 && b2.producerId() != a0.producerId(), tp2
                    + ": the second producer has no distinct producer id: " + p2);
            check(a2.lastSequence() == 6 && a2.producerEpoch() == a0.producerEpoch(), tp2 + ": producer "
                    + a0.producerId() + " wrote 7 records there, described as " + a2);
            check(b2.lastSequence() == 3, tp2 + ": the second producer wrote 4 records, described as " + b2);

            List<ProducerState> p1 = producersOf(admin, tp1);
            say("describeProducers(" + tp1 + "): " + p1);
            check(p1.isEmpty(), tp1 + " was written only by a non-idempotent producer, describeProducers lists " + p1);

            Map<TopicPartition, DescribeProducersResult.PartitionProducerState> both = get(
                    admin.describeProducers(List.of(tp0, tp2)).all(), "describeProducers(" + tp0 + ", " + tp2 + ")");
            check(both.get(tp0).activeProducers().size() == 1 && both.get(tp2).activeProducers().size() == 2,
                    "describeProducers of two partitions at once: " + both);
            say("describeProducers: producer " + a0.producerId() + " on " + tp0 + " and " + tp2 + " with its last"
                    + " sequences, a second producer on " + tp2 + ", none on " + tp1);
        }
    }

    // --- retention -------------------------------------------------------------------------------

    static void retention(String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        int total = 300;
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of("segment.bytes", "16384"));
            TreeMap<Long, String> produced = produceWith("strom-admin-producer",
                    Map.of(ProducerConfig.BATCH_SIZE_CONFIG, "4096"), topic, Map.of(0, total), 1000, "r").get(0);
            check(produced.firstKey() == 0 && produced.lastKey() == total - 1, "produced offsets " + produced.firstKey()
                    + ".." + produced.lastKey());
            // The default retention keeps everything (several retention checks pass meanwhile).
            Thread.sleep(2_000);
            long before = offsetOf(admin, tp, OffsetSpec.earliest(), "earliest");
            check(before == 0, "with the default retention.ms the log start moved to " + before);
            say("2 s after producing " + total + " records of 1000 bytes with segment.bytes=16384: log start 0");

            long changed = System.nanoTime();
            alterOk(admin, topic, op("retention.ms", "1000", AlterConfigOp.OpType.SET));
            say("SET retention.ms=1000");
            long start = waitFor("the log start offset to advance after retention.ms=1000", 20_000, 250, () -> {
                long e = offsetOf(admin, tp, OffsetSpec.earliest(), "earliest");
                check(e > 0, "listOffsets earliest is " + e);
                return e;
            });
            say(String.format("log start offset %d after %.1f s", start,
                    (System.nanoTime() - changed) / 1e9));
            long latest = offsetOf(admin, tp, OffsetSpec.latest(), "latest");
            check(latest == total, "the log end moved to " + latest + " (expected " + total + ")");
            check(start <= total, "log start " + start + " past the log end " + total);

            // A consumer from the beginning starts at the log start (or later: retention goes on).
            try (KafkaConsumer<String, String> c = consumer("strom-admin-reader", "earliest")) {
                c.assign(List.of(tp));
                c.seekToBeginning(List.of(tp));
                long pos = c.position(tp, timeLeft(15_000));
                check(pos >= start, "a consumer from the beginning is at " + pos + ", below the log start " + start);
                if (pos < total) {
                    List<ConsumerRecord<String, String>> got = readRecords(c, tp, (int) (total - pos), "reading " + tp
                            + " from " + pos);
                    check(got.get(0).offset() >= start, "first record read at " + got.get(0).offset()
                            + ", below the log start " + start);
                    checkRecords(got, produced, got.get(0).offset(), "reading " + tp + " from the beginning");
                }
                say("a consumer from the beginning starts at " + pos + " and reads the rest in order");
            }
            say("LOG_START " + start);
        }
    }

    // --- epoch -----------------------------------------------------------------------------------

    static void epoch(String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        TreeMap<Long, String> produced = produceWith("strom-admin-producer", Map.of(), topic, Map.of(0, 20), 30, "e")
                .get(0);
        int epoch;
        try (KafkaConsumer<String, String> c = consumer("strom-admin-reader", "earliest")) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = readRecords(c, tp, 20, "reading " + tp);
            checkRecords(got, produced, 0, "reading " + tp);
            Optional<Integer> e = got.get(got.size() - 1).leaderEpoch();
            check(e.isPresent() && e.get() >= 0, "records of " + tp + " carry leader epoch " + e);
            epoch = e.get();
        }
        say("records carry leader epoch " + epoch);

        // A position inside the log with that epoch validates (OffsetForLeaderEpoch answers the log end).
        try (KafkaConsumer<String, String> c = consumer("strom-admin-validate", "none")) {
            c.assign(List.of(tp));
            c.seek(tp, new OffsetAndMetadata(5, Optional.of(epoch), ""));
            List<ConsumerRecord<String, String>> got = readRecords(c, tp, 15, "reading " + tp + " from 5 (epoch " + epoch + ")");
            checkRecords(got, produced, 5, "reading " + tp + " after seek(5, epoch " + epoch + ")");
        }
        say("seek(5, leader epoch " + epoch + ") with auto.offset.reset=none: validated, read 5..19");

        // A position past the log end in that epoch: truncation detected.
        try (KafkaConsumer<String, String> c = consumer("strom-admin-truncated", "none")) {
            c.assign(List.of(tp));
            c.seek(tp, new OffsetAndMetadata(70, Optional.of(epoch), ""));
            LogTruncationException trunc = null;
            while (trunc == null) {
                checkDeadline("waiting for the consumer to detect the truncation below 70 (position validation with"
                        + " OffsetForLeaderEpoch)");
                try {
                    int n = c.poll(Duration.ofMillis(200)).count();
                    check(n == 0, "seek(70, epoch " + epoch + ") past the log end 20: poll returned " + n + " records");
                } catch (LogTruncationException e) {
                    trunc = e;
                } catch (org.apache.kafka.clients.consumer.OffsetOutOfRangeException e) {
                    throw new Failure("seek(70, epoch " + epoch + "): the consumer fetched past the log end and got "
                            + e + " instead of detecting the truncation by OffsetForLeaderEpoch (was the position not"
                            + " validated?)");
                }
            }
            OffsetAndMetadata div = trunc.divergentOffsets().get(tp);
            say("seek(70, leader epoch " + epoch + "): " + trunc.getClass().getSimpleName() + ": " + trunc.getMessage());
            check(div != null && div.offset() == 20, "LogTruncationException divergent offsets " + trunc.divergentOffsets()
                    + ", expected " + tp + " at 20 (the log end)");
            check(div.leaderEpoch().isEmpty() || div.leaderEpoch().get() == epoch, "divergent offset epoch "
                    + div.leaderEpoch() + ", expected " + epoch);
        }
        // With auto.offset.reset=earliest the consumer resets to the divergent offset instead (a
        // consumer that fetched at 70 unvalidated would be reset to the log start, 0).
        try (KafkaConsumer<String, String> c = consumer("strom-admin-reset", "earliest")) {
            c.assign(List.of(tp));
            c.seek(tp, new OffsetAndMetadata(70, Optional.of(epoch), ""));
            long pos = waitFor("the position after seek(70, epoch " + epoch + ") with auto.offset.reset=earliest to be"
                    + " reset to the divergent offset 20", 15_000, 50, () -> {
                        int n = c.poll(Duration.ofMillis(100)).count();
                        check(n == 0, "poll returned " + n + " records from an empty position");
                        long p = c.position(tp, timeLeft(15_000));
                        check(p == 20, "position " + p);
                        return p;
                    });
            TreeMap<Long, String> more = produceWith("strom-admin-producer-2", Map.of(), topic, Map.of(0, 3), 30, "f")
                    .get(0);
            check(more.firstKey() == 20, "new records start at " + more.firstKey());
            List<ConsumerRecord<String, String>> got = readRecords(c, tp, 3, "reading " + tp + " from " + pos);
            checkRecords(got, more, 20, "reading on after the reset to the divergent offset");
        }
        say("seek(70, leader epoch " + epoch + ") with auto.offset.reset=earliest: reset to the divergent offset 20");
    }

    // --- main ------------------------------------------------------------------------------------

    static final List<String> COMMANDS = List.of("configs", "alter", "partitions", "cluster", "delete-records",
            "log-dirs", "producers", "retention", "epoch");

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: StromAdminCheck " + String.join("|", COMMANDS) + " BOOTSTRAP TOPIC"
                    + " [--timeout-s S] [--names a,b,c] [--broker-retention-hours H] [--broker-max-message-bytes N]");
            System.exit(2);
        }
        String command = args[0];
        bootstrap = args[1];
        String topic = args[2];
        int timeoutSeconds = 90;
        try {
            for (int a = 3; a < args.length; a += 2) {
                if (a + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value for " + args[a]);
                }
                String value = args[a + 1];
                switch (args[a]) {
                    case "--timeout-s":
                        timeoutSeconds = Integer.parseInt(value);
                        break;
                    case "--names":
                        expectedNames = List.of(value.split(","));
                        break;
                    case "--broker-retention-hours":
                        brokerRetentionHours = value;
                        brokerRetentionMs = Long.toString(Long.parseLong(value) * 3_600_000L);
                        break;
                    case "--broker-max-message-bytes":
                        brokerMaxMessageBytes = value;
                        break;
                    default:
                        throw new IllegalArgumentException("unknown option " + args[a]);
                }
            }
            if (!COMMANDS.contains(command)) {
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
                case "configs":
                    configs(topic);
                    break;
                case "alter":
                    alterChecks(topic);
                    break;
                case "partitions":
                    partitions(topic);
                    break;
                case "cluster":
                    cluster(topic);
                    break;
                case "delete-records":
                    deleteRecords(topic);
                    break;
                case "log-dirs":
                    logDirs(topic);
                    break;
                case "producers":
                    producers(topic);
                    break;
                case "retention":
                    retention(topic);
                    break;
                default:
                    epoch(topic);
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
