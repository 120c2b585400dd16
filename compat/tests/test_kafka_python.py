"""kafka-python (pure Python client) against strom: acks=all, assign+seek, admin topics."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from strom_harness import wait_until


def _consume(consumer: KafkaConsumer, tp: TopicPartition, count: int, timeout_s: float = 30.0):
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        assert time.monotonic() < deadline, f"read {len(out)} of {count} records from {tp} before the deadline"
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(records)
    return out


def test_acks_all_producer_and_assign_seek_consumer(broker, topic):
    b = broker()
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=5, request_timeout_ms=15000)
    base_ts = int(time.time() * 1000) - 60_000
    sent = []
    try:
        futures = []
        for i in range(300):
            key = b"kp-%d" % i
            value = b"value-%d-" % i + bytes(range(256))[: i % 256]
            headers = [("n", str(i).encode()), ("dup", b"x"), ("dup", b"y")]
            futures.append(
                producer.send(topic, value=value, key=key, headers=headers, partition=0, timestamp_ms=base_ts + i)
            )
            sent.append((key, value, headers, base_ts + i))
        producer.flush(timeout=30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(timeout=10)
    assert offsets == list(range(300)), "acknowledged offsets not dense from 0"

    consumer = KafkaConsumer(
        bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=15000,
        auto_offset_reset="none",
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp], timeout_ms=10000) == {tp: 0}
        assert consumer.end_offsets([tp], timeout_ms=10000) == {tp: 300}

        consumer.seek(tp, 0)
        records = _consume(consumer, tp, 300)
        got = [(r.offset, r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp) for r in records]
        want = [(i, k, v, h, ts) for i, (k, v, h, ts) in enumerate(sent)]
        assert got == want

        consumer.seek(tp, 150)
        records = _consume(consumer, tp, 150)
        assert [(r.offset, r.value) for r in records] == [(i, sent[i][1]) for i in range(150, 300)]

        consumer.seek(tp, 299)
        records = _consume(consumer, tp, 1)
        assert [(r.offset, r.key) for r in records] == [(299, sent[299][0])]
    finally:
        consumer.close()


def test_admin_create_and_delete_topics(broker, topic):
    # Without auto-creation, so that metadata look-ups cannot bring a deleted topic back.
    b = broker("auto.create.topics.enable=false")
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    other = topic + "-second"
    try:
        assert topic not in admin.list_topics()
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1),
                             NewTopic(other, num_partitions=1, replication_factor=1)], timeout_ms=15000)
        wait_until(lambda: {topic, other} <= set(admin.list_topics()), 15, "created topics in metadata")
        # kafka-python 3 returns the MetadataResponse fields under their schema names.
        described = {t["name"]: t for t in admin.describe_topics([topic])}
        assert described[topic]["error_code"] == 0, described
        assert sorted(p["partition_index"] for p in described[topic]["partitions"]) == [0, 1], described

        # The new topic is usable.
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", request_timeout_ms=15000)
        try:
            md = producer.send(topic, value=b"after-create", partition=1).get(timeout=30)
            assert (md.partition, md.offset) == (1, 0)
        finally:
            producer.close(timeout=10)

        admin.delete_topics([topic], timeout_ms=15000)
        wait_until(lambda: topic not in admin.list_topics(), 15, f"{topic} to disappear from metadata")
        assert other in admin.list_topics(), "deleting one topic removed another"
    finally:
        admin.close()
