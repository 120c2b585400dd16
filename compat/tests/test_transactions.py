"""Transactions (KIP-98) with confluent-kafka (librdkafka): commit and abort across partitions,
read_committed and read_uncommitted consumers, fencing, restarts, and a transaction left open by
a broker crash, aborted by its timeout."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from strom_harness import ck_admin, ck_consumer, ck_create_topic, ck_producer, ck_read_partition


def txn_producer(b, transactional_id: str, **extra):
    p = ck_producer(b, **{"transactional.id": transactional_id, "enable.idempotence": True, **extra})
    p.init_transactions(30)
    return p


def values(consumer, topic: str, partitions: int, isolation: str) -> list[str]:
    """Every value of every partition a consumer with `isolation` reads, partition by partition."""
    out = []
    for p in range(partitions):
        msgs = ck_read_partition(consumer, topic, p, 0)
        out += [m.value().decode() for m in msgs]
    return out


def run_transactions(producer, topic: str, partitions: int, plan: list[bool]) -> None:
    """One transaction per entry of `plan` (True: commit), each writing 3 records to every
    partition; the records are flushed to the broker before an abort, so the abort has work."""
    for i, commit in enumerate(plan):
        producer.begin_transaction()
        for p in range(partitions):
            for j in range(3):
                producer.produce(topic, f"{'c' if commit else 'a'}{i}-{p}-{j}".encode(), partition=p)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)


def expected(plan: list[bool], partitions: int, committed_only: bool) -> list[str]:
    out = []
    for p in range(partitions):
        for i, commit in enumerate(plan):
            if commit or not committed_only:
                out += [f"{'c' if commit else 'a'}{i}-{p}-{j}" for j in range(3)]
    return out


def test_commit_and_abort_are_seen_as_kafka_shows_them(broker, topic):
    b = broker()
    ck_create_topic(ck_admin(b), topic, 3)
    plan = [True, False, True, False, True]
    producer = txn_producer(b, "txn-commit-abort")
    run_transactions(producer, topic, 3, plan)
    committed = ck_consumer(b, **{"isolation.level": "read_committed"})
    assert values(committed, topic, 3, "read_committed") == expected(plan, 3, True)
    uncommitted = ck_consumer(b, **{"isolation.level": "read_uncommitted"})
    assert values(uncommitted, topic, 3, "read_uncommitted") == expected(plan, 3, False)
    # The state survives a restart: the same answers, and the producer's id continues.
    b.restart()
    again = ck_consumer(b, **{"isolation.level": "read_committed"})
    assert values(again, topic, 3, "read_committed") == expected(plan, 3, True)
    producer = txn_producer(b, "txn-commit-abort")
    run_transactions(producer, topic, 3, [True])
    later = ck_consumer(b, **{"isolation.level": "read_committed"})
    assert len(values(later, topic, 3, "read_committed")) == len(expected(plan, 3, True)) + 9


def test_an_open_transaction_holds_read_committed_back(broker, topic):
    b = broker()
    ck_create_topic(ck_admin(b), topic, 1)
    producer = txn_producer(b, "txn-open")
    plain = ck_producer(b)
    producer.begin_transaction()
    producer.produce(topic, b"open-1", partition=0)
    producer.flush(30)
    plain.produce(topic, b"plain-after", partition=0)
    plain.flush(30)
    # read_committed stops at the open transaction's first record: nothing yet.
    committed = ck_consumer(b, **{"isolation.level": "read_committed"})
    assert ck_read_partition(committed, topic, 0, 0) == []
    # ListOffsets(latest) answers the last stable offset to read_committed, the high
    # watermark to read_uncommitted, as Kafka does.
    assert committed.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    uncommitted = ck_consumer(b, **{"isolation.level": "read_uncommitted"})
    assert uncommitted.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 2)
    producer.commit_transaction(30)
    assert [m.value() for m in ck_read_partition(committed, topic, 0, 0)] == [b"open-1", b"plain-after"]


def test_a_second_producer_fences_the_first(broker, topic):
    b = broker()
    ck_create_topic(ck_admin(b), topic, 1)
    first = txn_producer(b, "txn-fence")
    first.begin_transaction()
    first.produce(topic, b"zombie", partition=0)
    first.flush(30)
    # A new instance with the same transactional.id aborts the open transaction and fences the
    # old one: its commit fails.
    second = txn_producer(b, "txn-fence")
    with pytest.raises(KafkaException) as failure:
        first.commit_transaction(30)
    assert failure.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), failure.value
    second.begin_transaction()
    second.produce(topic, b"survivor", partition=0)
    second.commit_transaction(30)
    committed = ck_consumer(b, **{"isolation.level": "read_committed"})
    assert [m.value() for m in ck_read_partition(committed, topic, 0, 0)] == [b"survivor"]


def test_a_transaction_open_at_a_crash_is_aborted_by_its_timeout(broker, topic):
    b = broker("transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
    ck_create_topic(ck_admin(b), topic, 1)
    committed_first = txn_producer(b, "txn-before-crash")
    run_transactions(committed_first, topic, 1, [True])
    producer = txn_producer(b, "txn-crash", **{"transaction.timeout.ms": 3000, "socket.timeout.ms": 3000, "message.timeout.ms": 3000})
    producer.begin_transaction()
    producer.produce(topic, b"in-flight", partition=0)
    producer.flush(30)
    b.kill9()
    b.start()
    # After the restart the transaction is still open (its state is durable): a record written
    # after it stays invisible to read_committed until the transaction is aborted, once its 3 s
    # are up.
    plain = ck_producer(b)
    plain.produce(topic, b"after", partition=0)
    plain.flush(30)
    started = time.monotonic()
    while True:
        consumer = ck_consumer(b, **{"isolation.level": "read_committed"})
        got = [m.value().decode() for m in ck_read_partition(consumer, topic, 0, 0)]
        consumer.close()
        if "after" in got:
            break
        assert time.monotonic() - started < 30, f"the open transaction was never aborted: {got}"
        time.sleep(0.5)
    assert got == expected([True], 1, True) + ["after"]
    uncommitted = ck_consumer(b, **{"isolation.level": "read_uncommitted"})
    assert b"in-flight" in [m.value() for m in ck_read_partition(uncommitted, topic, 0, 0)]


def test_consume_transform_produce_commits_offsets_with_the_transaction(broker, topic):
    """send_offsets_to_transaction (AddOffsetsToTxn + TxnOffsetCommit): the group's offsets move
    only with a committed transaction, and survive a restart."""
    from confluent_kafka import Consumer

    b = broker()
    admin = ck_admin(b)
    source, sink = topic + "-in", topic + "-out"
    ck_create_topic(admin, source, 1)
    ck_create_topic(admin, sink, 1)
    plain = ck_producer(b)
    for i in range(30):
        plain.produce(source, f"m{i}".encode(), partition=0)
    plain.flush(30)
    group = "ctp-" + topic
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, 0, 0)])
    producer = txn_producer(b, "txn-ctp")

    def round_trip(count: int, commit: bool) -> None:
        got = []
        deadline = time.monotonic() + 20
        while len(got) < count:
            assert time.monotonic() < deadline, f"read {len(got)} of {count}"
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        producer.begin_transaction()
        for m in got:
            producer.produce(sink, m.value().upper(), partition=0)
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, got[-1].offset() + 1)], consumer.consumer_group_metadata(), 30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)

    def committed() -> int:
        probe = ck_consumer(b, **{"group.id": group})
        [tp] = probe.committed([TopicPartition(source, 0)], timeout=20)
        return tp.offset

    round_trip(10, True)
    assert committed() == 10
    round_trip(10, False)
    # The aborted transaction's offsets never take effect.
    assert committed() == 10
    consumer.seek(TopicPartition(source, 0, 10))
    round_trip(10, True)
    assert committed() == 20
    consumer.close()
    out = ck_consumer(b, **{"isolation.level": "read_committed"})
    values_out = [m.value().decode() for m in ck_read_partition(out, sink, 0, 0)]
    assert values_out == [f"M{i}" for i in range(20)]
    b.restart()
    assert committed() == 20
