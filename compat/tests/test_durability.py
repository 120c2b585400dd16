"""Crash safety: acknowledged records survive kill -9; a torn tail is cut off at restart."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from strom_harness import ck_consumer, ck_produce_all, ck_producer, ck_read_partition

# Upper bound on the produce rate, so that a fast broker does not make the read-back huge.
MAX_RECORDS_PER_SECOND = 10_000


@pytest.mark.slow
def test_acknowledged_records_survive_kill9(broker, topic):
    b = broker()
    producer = ck_producer(
        b,
        **{
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 30000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        },
    )
    acked: dict[int, tuple[bytes, bytes]] = {}
    conflicts: list[str] = []
    failures: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        prev = acked.get(msg.offset())
        if prev is not None:
            conflicts.append(f"offset {msg.offset()} acknowledged for {prev[0]!r} and {msg.key()!r}")
        acked[msg.offset()] = (msg.key(), msg.value())

    produced = 0

    def produce_for(seconds: float):
        nonlocal produced
        start = time.monotonic()
        sent_here = 0
        while (now := time.monotonic()) < start + seconds:
            if sent_here >= (now - start) * MAX_RECORDS_PER_SECOND:
                producer.poll(0.001)
                continue
            key = b"k%08d" % produced
            value = b"durable-%d-" % produced + os.urandom(16).hex().encode()
            try:
                producer.produce(topic, key=key, value=value, partition=0, on_delivery=on_delivery)
                produced += 1
                sent_here += 1
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)

    produce_for(2.0)
    b.kill9()
    # Deliveries whose acknowledgement arrived before the kill are reported by the next poll.
    producer.poll(0.5)
    acked_before_kill = len(acked)
    produce_for(1.0)  # broker down: these queue up in the client
    b.start()
    produce_for(2.0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records without a delivery report 60 s after restart"
    assert acked_before_kill > 0, "nothing was acknowledged before the kill: the test proved nothing"
    assert len(acked) > acked_before_kill, f"nothing acknowledged after the restart (failures: {failures[:3]})"
    assert not conflicts, conflicts[:5]

    consumer = ck_consumer(b)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING, timeout_s=120)
    finally:
        consumer.close()
    assert low == 0
    offsets = [m.offset() for m in msgs]
    assert offsets == list(range(len(msgs))), "offsets in the log are not dense from 0"
    assert high == len(msgs), f"high watermark {high}, but {len(msgs)} records readable"
    missing = [off for off in acked if off >= len(msgs)]
    assert not missing, (
        f"{len(missing)} acknowledged records lost: acknowledged up to offset {max(acked)}, log ends at "
        f"{len(msgs)} ({acked_before_kill} acknowledged before the kill)"
    )
    print(f"produced {produced}, acknowledged {len(acked)} ({acked_before_kill} before the kill), "
          f"delivery failures {len(failures)}, log holds {len(msgs)}")
    wrong = [off for off, (k, v) in acked.items() if (msgs[off].key(), msgs[off].value()) != (k, v)]
    assert not wrong, f"{len(wrong)} acknowledged offsets hold other records, first: {sorted(wrong)[:5]}"


def test_torn_tail_is_truncated_and_log_stays_writable(broker, topic):
    b = broker()
    producer = ck_producer(b, **{"linger.ms": 0})
    records = [dict(topic=topic, partition=0, key=b"t%d" % i, value=b"torn-test-%d-" % i + b"x" * (i * 13 % 200))
               for i in range(40)]
    for rec in records:  # one produce request, hence one batch, per record
        (err, _, off), = ck_produce_all(producer, [rec])
        assert err is None, err
    producer.flush(10)
    del producer
    b.stop()

    part_dir = b.partition_dir(topic)
    segments = [p for p in b.segment_files(topic) if p.stat().st_size > 0]
    assert segments, f"no non-empty .log segment in {part_dir}: {sorted(os.listdir(part_dir)) if part_dir.exists() else 'missing'}"
    newest = segments[-1]
    size = newest.stat().st_size
    assert size > 7, f"{newest} has only {size} bytes"
    os.truncate(newest, size - 7)

    b.start()
    consumer = ck_consumer(b)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert (low, high) == (0, 39), f"watermarks after recovery: {(low, high)}, expected (0, 39)"
        msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING)
        assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
            (i, r["key"], r["value"]) for i, r in enumerate(records[:39])
        ]

        producer = ck_producer(b)
        (err, _, off), = ck_produce_all(producer, [dict(topic=topic, partition=0, key=b"after", value=b"recovery")])
        assert err is None, err
        assert off == 39, f"first record after recovery got offset {off}, expected 39"
        msgs = ck_read_partition(consumer, topic, 0, 38)
        assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
            (38, records[38]["key"], records[38]["value"]), (39, b"after", b"recovery")
        ]
    finally:
        consumer.close()
