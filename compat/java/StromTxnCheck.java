// Transactions through the official Java client (kafka-clients 4.3) against a running broker:
// exactly-once consume-transform-produce as Kafka Streams and Spring do it.
//
// Usage: StromTxnCheck BOOTSTRAP TOPIC [--timeout-s S]
//
// Creates TOPIC-in (3 partitions, 300 records) and TOPIC-out (3 partitions). A consumer of group
// TOPIC-group (subscribe, read_committed, no auto commit) and a transactional producer run rounds:
// each reads a batch, writes it upper-cased to TOPIC-out and sends the consumer's positions with
// sendOffsetsToTransaction; every third round is aborted and the consumer rewinds to the last
// committed offsets. Then:
//   - a read_committed consumer of TOPIC-out reads each input value exactly once, upper-cased;
//   - a read_uncommitted one also sees the aborted rounds' records;
//   - the group's committed offsets are the input's log end offsets;
//   - a second producer with the same transactional.id fences the first (ProducerFencedException
//     on its next transactional call);
//   - AdminClient listTransactions/describeTransactions show the id, CompleteCommit;
//   - a transaction left open is found with describeProducers and ended with abortTransaction
//     (as `kafka-transactions.sh abort`): the partition is stable, the record aborted.
// Exit codes: 0 success, 1 verification failure or client error, 2 usage, 3 timeout.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class StromTxnCheck {
    static final int PARTITIONS = 3;
    static final int RECORDS = 300;

    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok   " + what);
    }

    static KafkaProducer<String, String> producer(String bootstrap, String transactionalId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        if (transactionalId != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        }
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String isolation) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "40");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(c);
    }

    /** Every value of `topic`, read from the start by an assign()ed consumer until `deadline`. */
    static List<String> readAll(String bootstrap, String topic, String isolation, int expect, long deadline) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, topic + "-reader-" + isolation, isolation)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            while (out.size() < expect && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.add(r.value());
                }
            }
            // A little longer: anything past `expect` is a duplicate.
            long settle = System.currentTimeMillis() + 1000;
            while (System.currentTimeMillis() < settle) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.add(r.value());
                }
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: StromTxnCheck BOOTSTRAP TOPIC [--timeout-s S]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        int timeoutS = 90;
        for (int a = 2; a < args.length; a++) {
            if (args[a].equals("--timeout-s")) {
                timeoutS = Integer.parseInt(args[++a]);
            }
        }
        long deadline = System.currentTimeMillis() + timeoutS * 1000L;
        String in = topic + "-in";
        String out = topic + "-out";
        String group = topic + "-group";
        String txnId = topic + "-txn";
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(in, PARTITIONS, (short) 1), new NewTopic(out, PARTITIONS, (short) 1)))
                .all().get(30, TimeUnit.SECONDS);
            try (KafkaProducer<String, String> plain = producer(bootstrap, null)) {
                for (int i = 0; i < RECORDS; i++) {
                    plain.send(new ProducerRecord<>(in, i % PARTITIONS, null, "v" + i));
                }
                plain.flush();
            }
            int committedRounds = 0;
            int abortedRounds = 0;
            int abortedRecords = 0;
            KafkaProducer<String, String> producer = producer(bootstrap, txnId);
            producer.initTransactions();
            try (KafkaConsumer<String, String> c = consumer(bootstrap, group, "read_committed")) {
                c.subscribe(List.of(in));
                int round = 0;
                int copied = 0;
                while (copied < RECORDS) {
                    if (System.currentTimeMillis() > deadline) {
                        System.out.println("FAIL timed out after " + copied + " records copied");
                        System.exit(3);
                    }
                    ConsumerRecords<String, String> batch = c.poll(Duration.ofMillis(300));
                    if (batch.isEmpty()) {
                        continue;
                    }
                    round++;
                    boolean abort = round % 3 == 0;
                    producer.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
                    for (ConsumerRecord<String, String> r : batch) {
                        producer.send(new ProducerRecord<>(out, r.partition(), null, r.value().toUpperCase()));
                        positions.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    producer.sendOffsetsToTransaction(positions, c.groupMetadata());
                    if (abort) {
                        producer.flush();
                        producer.abortTransaction();
                        abortedRounds++;
                        abortedRecords += batch.count();
                        // Back to what the group committed, as an application does after an abort.
                        Map<TopicPartition, OffsetAndMetadata> committed = c.committed(c.assignment());
                        for (TopicPartition tp : c.assignment()) {
                            OffsetAndMetadata o = committed.get(tp);
                            c.seek(tp, o == null ? 0 : o.offset());
                        }
                    } else {
                        producer.commitTransaction();
                        committedRounds++;
                        copied += batch.count();
                    }
                }
                Map<TopicPartition, OffsetAndMetadata> committed = c.committed(c.assignment());
                Map<TopicPartition, Long> ends = c.endOffsets(c.assignment());
                for (TopicPartition tp : c.assignment()) {
                    OffsetAndMetadata o = committed.get(tp);
                    check(o != null && o.offset() == ends.get(tp),
                        "committed offset of " + tp + " is its end offset " + ends.get(tp) + " (got " + o + ")");
                }
            }
            check(committedRounds > 0 && abortedRounds > 0,
                committedRounds + " rounds committed, " + abortedRounds + " aborted (" + abortedRecords + " records)");
            List<String> seen = readAll(bootstrap, out, "read_committed", RECORDS, deadline);
            TreeMap<String, Integer> counts = new TreeMap<>();
            for (String v : seen) {
                counts.merge(v, 1, Integer::sum);
            }
            boolean exactlyOnce = seen.size() == RECORDS && counts.size() == RECORDS;
            for (int i = 0; i < RECORDS && exactlyOnce; i++) {
                exactlyOnce = counts.getOrDefault("V" + i, 0) == 1;
            }
            check(exactlyOnce, "read_committed sees every input exactly once (" + seen.size() + " records)");
            List<String> all = readAll(bootstrap, out, "read_uncommitted", RECORDS + abortedRecords, deadline);
            check(all.size() == RECORDS + abortedRecords,
                "read_uncommitted also sees the aborted rounds (" + all.size() + " records)");

            // Fencing: a second producer with the same transactional.id.
            KafkaProducer<String, String> second = producer(bootstrap, txnId);
            second.initTransactions();
            boolean fenced = false;
            try {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(out, 0, null, "zombie")).get(30, TimeUnit.SECONDS);
                producer.commitTransaction();
            } catch (ProducerFencedException e) {
                fenced = true;
            } catch (Exception e) {
                fenced = e.getCause() instanceof ProducerFencedException
                    || e instanceof org.apache.kafka.common.KafkaException
                        && String.valueOf(e.getMessage()).toLowerCase().contains("fenced");
                if (!fenced) {
                    System.out.println("unexpected " + e);
                }
            }
            check(fenced, "the first producer is fenced by the second");
            producer.close(Duration.ofSeconds(5));
            second.beginTransaction();
            second.send(new ProducerRecord<>(out, 0, null, "SECOND")).get(30, TimeUnit.SECONDS);
            second.commitTransaction();
            second.close();

            List<TransactionListing> listed = new ArrayList<>(admin.listTransactions().all().get(30, TimeUnit.SECONDS));
            check(listed.stream().anyMatch(l -> l.transactionalId().equals(txnId)),
                "listTransactions shows " + txnId);
            TransactionDescription d = admin.describeTransactions(Collections.singleton(txnId))
                .description(txnId).get(30, TimeUnit.SECONDS);
            check(d.state() == org.apache.kafka.clients.admin.TransactionState.COMPLETE_COMMIT,
                "describeTransactions: " + d.state() + ", producer " + d.producerId() + " epoch " + d.producerEpoch());

            // A hanging transaction ended by an administrator, as `kafka-transactions.sh abort`
            // does it: describeProducers finds the open transaction's start offset, and
            // abortTransaction writes the abort marker at that partition.
            TopicPartition hangingTp = new TopicPartition(out, 1);
            KafkaProducer<String, String> hanging = producer(bootstrap, txnId + "-hanging");
            hanging.initTransactions();
            hanging.beginTransaction();
            long hangingOffset = hanging.send(new ProducerRecord<>(out, 1, null, "HANGING"))
                .get(30, TimeUnit.SECONDS).offset();
            ProducerState open = admin.describeProducers(Collections.singleton(hangingTp))
                .partitionResult(hangingTp).get(30, TimeUnit.SECONDS).activeProducers().stream()
                .filter(s -> s.currentTransactionStartOffset().isPresent())
                .findFirst().orElse(null);
            check(open != null && open.currentTransactionStartOffset().getAsLong() == hangingOffset,
                "describeProducers shows the open transaction at offset " + hangingOffset);
            admin.abortTransaction(new AbortTransactionSpec(hangingTp, open.producerId(),
                (short) open.producerEpoch(), open.coordinatorEpoch().orElse(0)))
                .all().get(30, TimeUnit.SECONDS);
            long stable;
            long end;
            try (KafkaConsumer<String, String> c = consumer(bootstrap, out + "-lso", "read_committed")) {
                stable = c.endOffsets(Collections.singleton(hangingTp)).get(hangingTp);
            }
            try (KafkaConsumer<String, String> c = consumer(bootstrap, out + "-leo", "read_uncommitted")) {
                end = c.endOffsets(Collections.singleton(hangingTp)).get(hangingTp);
            }
            check(stable == end && end > hangingOffset,
                "after abortTransaction the partition is stable (LSO " + stable + ", end " + end + ")");
            List<String> afterAbort = readAll(bootstrap, out, "read_committed", RECORDS + 1, deadline);
            check(!afterAbort.contains("HANGING") && afterAbort.contains("SECOND"),
                "read_committed does not see the aborted record");
            hanging.abortTransaction();
            hanging.close(Duration.ofSeconds(5));
        }
        System.out.println("OK");
    }
}
