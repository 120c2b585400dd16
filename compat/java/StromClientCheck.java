// A round trip through the official Java client (kafka-clients) against a running broker.
//
// Usage: StromClientCheck BOOTSTRAP TOPIC COUNT [--compression none|gzip|snappy|lz4|zstd] [--timeout-s S]
//
// 1. A KafkaProducer with the client's default settings (idempotence on, acks=all: deliberately
//    not overridden) sends COUNT records with known keys, values and headers to partition 0 and
//    waits for every acknowledgement. The acknowledged offsets must be dense.
// 2. A KafkaConsumer with assign + seekToBeginning reads them back: key, value, headers, timestamp
//    and offset must match byte for byte, in order.
// 3. The consumer seeks to a middle offset and must read from exactly there to the end.
//
// Exit codes: 0 success, 1 verification failure or client error, 2 usage, 3 timeout.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class StromClientCheck {
    private StromClientCheck() {}

    static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    static byte[] key(int i) {
        return ("key-" + i).getBytes(StandardCharsets.UTF_8);
    }

    /** Deterministic value bytes of varying length (0..~300), every byte value represented. */
    static byte[] value(int i) {
        int len = (i * 37) % 301;
        byte[] v = new byte[len];
        long x = 0x9E3779B97F4A7C15L * (i + 1);
        for (int j = 0; j < len; j++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            v[j] = (byte) x;
        }
        return v;
    }

    static List<Header> headers(int i) {
        List<Header> h = new ArrayList<>();
        h.add(new RecordHeader("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
        h.add(new RecordHeader("dup", "a".getBytes(StandardCharsets.UTF_8)));
        h.add(new RecordHeader("dup", "b".getBytes(StandardCharsets.UTF_8)));
        return h;
    }

    static void check(boolean cond, String message) throws Failure {
        if (!cond) {
            throw new Failure(message);
        }
    }

    static void verifyRecord(ConsumerRecord<byte[], byte[]> r, int i, long expectedOffset, long expectedTimestamp)
            throws Failure {
        check(r.offset() == expectedOffset, "record " + i + ": offset " + r.offset() + ", expected " + expectedOffset);
        check(Arrays.equals(r.key(), key(i)), "record " + i + " at offset " + r.offset() + ": key differs");
        check(Arrays.equals(r.value(), value(i)), "record " + i + " at offset " + r.offset() + ": value differs ("
                + (r.value() == null ? "null" : r.value().length + " bytes") + " vs " + value(i).length + " bytes)");
        check(r.timestamp() == expectedTimestamp, "record " + i + ": timestamp " + r.timestamp() + ", expected "
                + expectedTimestamp);
        List<Header> want = headers(i);
        Header[] got = r.headers().toArray();
        check(got.length == want.size(), "record " + i + ": " + got.length + " headers, expected " + want.size());
        for (int h = 0; h < got.length; h++) {
            check(got[h].key().equals(want.get(h).key()) && Arrays.equals(got[h].value(), want.get(h).value()),
                    "record " + i + ": header " + h + " differs (" + got[h].key() + ")");
        }
    }

    /** Reads from the consumer's current position until `count` records (starting at record index `first`) arrived. */
    static void readAndVerify(KafkaConsumer<byte[], byte[]> consumer, int first, int count, long[] offsets,
            long[] timestamps, long deadlineNanos) throws Failure {
        int next = first;
        while (next < count) {
            if (System.nanoTime() > deadlineNanos) {
                throw new Failure("consumer read only " + (next - first) + " of " + (count - first)
                        + " records before the deadline (from record " + first + ")");
            }
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                check(next < count, "unexpected extra record at offset " + r.offset());
                verifyRecord(r, next, offsets[next], timestamps[next]);
                next++;
            }
        }
    }

    static void run(String bootstrap, String topic, int count, String compression, long deadlineNanos)
            throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, "strom-java-check-producer");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        // Small batches so that even a few hundred records span several batches.
        pp.put(ProducerConfig.BATCH_SIZE_CONFIG, "4096");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");

        long[] offsets = new long[count];
        long[] timestamps = new long[count];
        long baseTimestamp = System.currentTimeMillis() - 60_000L;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                long ts = baseTimestamp + i;
                futures.add(producer.send(new ProducerRecord<>(topic, 0, ts, key(i), value(i), headers(i))));
            }
            producer.flush();
            // The address the broker told this client to dial, for the listener tests.
            for (org.apache.kafka.common.PartitionInfo p : producer.partitionsFor(topic)) {
                if (p.partition() == 0) {
                    System.out.println("leader " + p.leader().host() + ":" + p.leader().port());
                }
            }
            for (int i = 0; i < count; i++) {
                long left = Math.max(1, deadlineNanos - System.nanoTime());
                RecordMetadata md = futures.get(i).get(left, TimeUnit.NANOSECONDS);
                check(md.partition() == 0, "record " + i + " acknowledged on partition " + md.partition());
                offsets[i] = md.offset();
                timestamps[i] = md.timestamp();
                check(md.timestamp() == baseTimestamp + i, "record " + i + " acknowledged with timestamp "
                        + md.timestamp() + ", expected CreateTime " + (baseTimestamp + i));
                if (i > 0) {
                    check(offsets[i] == offsets[i - 1] + 1, "acknowledged offsets not dense: record " + (i - 1)
                            + " at " + offsets[i - 1] + ", record " + i + " at " + offsets[i]);
                }
            }
        }
        System.out.println("produced " + count + " records (compression=" + compression + "), offsets "
                + offsets[0] + ".." + offsets[count - 1]);

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "strom-java-check-consumer");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1000");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(Collections.singletonList(tp));

            Long begin = consumer.beginningOffsets(Collections.singletonList(tp), Duration.ofSeconds(15)).get(tp);
            Long end = consumer.endOffsets(Collections.singletonList(tp), Duration.ofSeconds(15)).get(tp);
            check(begin != null && begin == offsets[0], "beginning offset " + begin + ", expected " + offsets[0]);
            check(end != null && end == offsets[count - 1] + 1, "end offset " + end + ", expected "
                    + (offsets[count - 1] + 1));

            consumer.seekToBeginning(Collections.singletonList(tp));
            readAndVerify(consumer, 0, count, offsets, timestamps, deadlineNanos);
            System.out.println("read back all " + count + " records from the beginning");

            int middle = count / 2;
            consumer.seek(tp, offsets[middle]);
            readAndVerify(consumer, middle, count, offsets, timestamps, deadlineNanos);
            System.out.println("read back " + (count - middle) + " records after seek to offset " + offsets[middle]);
        }
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: StromClientCheck BOOTSTRAP TOPIC COUNT [--compression TYPE] [--timeout-s S]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        int count;
        String compression = "none";
        int timeoutSeconds = 90;
        try {
            count = Integer.parseInt(args[2]);
            for (int a = 3; a < args.length; a += 2) {
                if (a + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value for " + args[a]);
                }
                switch (args[a]) {
                    case "--compression":
                        compression = args[a + 1];
                        break;
                    case "--timeout-s":
                        timeoutSeconds = Integer.parseInt(args[a + 1]);
                        break;
                    default:
                        throw new IllegalArgumentException("unknown option " + args[a]);
                }
            }
            if (count < 2) {
                throw new IllegalArgumentException("COUNT must be at least 2");
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

        // Leave a few seconds of the watchdog's budget for closing the clients.
        long deadlineNanos = System.nanoTime() + TimeUnit.SECONDS.toNanos(Math.max(1, timeoutSeconds - 5));
        try {
            run(bootstrap, topic, count, compression, deadlineNanos);
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
