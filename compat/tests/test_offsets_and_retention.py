"""ListOffsets (earliest, latest, by timestamp) and time-based retention."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from strom_harness import ck_consumer, ck_produce_all, ck_producer, ck_read_partition, wait_until


@pytest.mark.parametrize("batching", ["one-batch", "batch-per-record"])
def test_offsets_for_times(broker, topic, batching):
    b = broker()
    t0 = int(time.time() * 1000) - 3_600_000
    records = [dict(topic=topic, partition=0, value=b"ts-%d" % i, timestamp=t0 + i * 1000) for i in range(10)]
    producer = ck_producer(b, **{"linger.ms": 50 if batching == "one-batch" else 0})
    if batching == "one-batch":
        results = ck_produce_all(producer, records)
    else:
        results = [ck_produce_all(producer, [r])[0] for r in records]
    assert [(err, off) for err, _, off in results] == [(None, i) for i in range(10)]

    # (query timestamp, first offset whose timestamp >= it; -1 when there is none)
    cases = [
        (t0 - 5000, 0),
        (t0, 0),
        (t0 + 1, 1),
        (t0 + 500, 1),
        (t0 + 1000, 1),
        (t0 + 4500, 5),
        (t0 + 9000, 9),
        (t0 + 9001, -1),
        (t0 + 10_000_000, -1),
    ]
    consumer = ck_consumer(b)
    try:
        for ts, want in cases:
            got = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
            assert got.error is None, f"offsets_for_times({ts - t0:+d} ms): {got.error}"
            # Kafka answers offset -1 for "no such record"; librdkafka surfaces it as OFFSET_END (-1).
            assert got.offset == (OFFSET_END if want == -1 else want), (
                f"confluent-kafka offsets_for_times(t0{ts - t0:+d} ms) = {got.offset}, expected {want}"
            )
    finally:
        consumer.close()

    kp = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                       request_timeout_ms=15000)
    try:
        tp = KpTopicPartition(topic, 0)
        for ts, want in cases:
            got = kp.offsets_for_times({tp: ts}, timeout_ms=10000)[tp]
            if want == -1:
                assert got is None, f"kafka-python offsets_for_times(t0{ts - t0:+d} ms) = {got}, expected None"
            else:
                assert got is not None and (got.offset, got.timestamp) == (want, t0 + want * 1000), (
                    f"kafka-python offsets_for_times(t0{ts - t0:+d} ms) = {got}, expected offset {want} "
                    f"with timestamp t0{want * 1000:+d}"
                )
    finally:
        kp.close()


def _base_offset(path) -> int:
    return int(path.name.split(".")[0])


@pytest.mark.slow
def test_time_retention_deletes_old_segments(broker, topic):
    b = broker("log.segment.bytes=16384", "log.retention.ms=2000", "log.retention.check.interval.ms=500")
    producer = ck_producer(b, **{"linger.ms": 0})
    total = 200
    records = [dict(topic=topic, partition=0, key=b"r%d" % i, value=(b"%06d" % i) * 170) for i in range(total)]
    seen_segments: set[str] = set()  # retention may start deleting while we still produce
    for start in range(0, total, 10):
        results = ck_produce_all(producer, records[start:start + 10])
        assert all(err is None for err, _, _ in results), results
        seen_segments.update(p.name for p in b.segment_files(topic))
    segments_after_produce = sorted(seen_segments)
    assert len(segments_after_produce) >= 3, (
        f"~200 KB with log.segment.bytes=16384 made only {len(segments_after_produce)} segment(s): "
        f"{segments_after_produce}"
    )
    assert segments_after_produce[0] == "%020d.log" % 0, segments_after_produce
    first_segment = b.partition_dir(topic) / segments_after_produce[0]

    consumer = ck_consumer(b)
    tp = TopicPartition(topic, 0)
    try:
        state = {}

        def retention_settled():
            low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            remaining = b.segment_files(topic)
            state.update(low=low, high=high, remaining=[p.name for p in remaining])
            if first_segment.exists() or low <= 0 or not remaining:
                return False
            # The log start offset is the base offset of the oldest segment still on disk.
            return low == min(_base_offset(p) for p in remaining)

        try:
            wait_until(retention_settled, 20, "old segments to be deleted and the log start offset to follow")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {state}") from None
        print(f"segments seen while producing: {segments_after_produce}; after retention: {state}")
        assert state["high"] == total, f"high watermark moved to {state['high']}"
        assert len(state["remaining"]) < len(segments_after_produce)

        # What is left reads back from the log start offset. (Retention may still remove the
        # now-expired active segment meanwhile, as Kafka does, so the start may move on.)
        msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING)
        first = msgs[0].offset() if msgs else total
        assert first >= state["low"], f"read from offset {first}, below the log start offset {state['low']}"
        assert [m.offset() for m in msgs] == list(range(first, total)), "reading from the beginning after retention"
        assert [m.value() for m in msgs] == [r["value"] for r in records[first:]]
    finally:
        consumer.close()
