"""confluent-kafka (librdkafka 2.16) against strom: record fields, codecs, idempotence, assign."""

from __future__ import annotations

import random
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TIMESTAMP_CREATE_TIME, KafkaError, TopicPartition

from strom_harness import ck_consumer, ck_produce_all, ck_producer, ck_read_partition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _records(topic: str, count: int, seed: int, base_ts_ms: int):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % 50 == 7:
            key = None
        else:
            key = b"key-%d-" % i + rng.randbytes(rng.randrange(0, 20))
        if i % 50 == 11:
            value = None
        elif i % 50 == 13:
            value = b""
        elif i % 10 == 0:
            # compressible
            value = (b"strom-%d " % i) * rng.randrange(1, 200)
        else:
            value = rng.randbytes(rng.randrange(0, 2000))
        headers = [
            ("idx", str(i).encode()),
            ("dup", b"first"),
            ("bin", rng.randbytes(8)),
            ("dup", b"second"),
            ("empty", b""),
        ]
        if i % 25 == 3:
            headers = []
        out.append(
            dict(topic=topic, partition=0, key=key, value=value, headers=headers, timestamp=base_ts_ms + i * 3)
        )
    return out


def _next_event(consumer, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None:
            return msg
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _headers_of(msg):
    return [(k, v) for k, v in (msg.headers() or [])]


def _assert_messages_match(msgs, records, first_offset: int = 0):
    assert len(msgs) == len(records), f"read {len(msgs)} messages, produced {len(records)}"
    for n, (msg, rec) in enumerate(zip(msgs, records)):
        where = f"message {n} (offset {msg.offset()})"
        assert msg.offset() == first_offset + n, f"{where}: expected offset {first_offset + n}"
        assert msg.key() == rec["key"], f"{where}: key {msg.key()!r} != {rec['key']!r}"
        assert msg.value() == rec["value"], f"{where}: value differs ({len(msg.value() or b'')} bytes vs "\
            f"{len(rec['value'] or b'')})"
        assert _headers_of(msg) == rec["headers"], f"{where}: headers {_headers_of(msg)} != {rec['headers']}"
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, rec["timestamp"]), f"{where}: timestamp {msg.timestamp()}"


@pytest.mark.parametrize("codec", CODECS)
def test_keys_headers_timestamps_per_codec(broker, topic, codec):
    b = broker()
    base_ts = int(time.time() * 1000) - 3_600_000
    records = _records(topic, 600, seed=CODECS.index(codec), base_ts_ms=base_ts)
    producer = ck_producer(b, **{"compression.type": codec, "linger.ms": 20, "batch.size": 64 * 1024})
    results = ck_produce_all(producer, records)
    errors = [r for r in results if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert [off for _, _, off in results] == list(range(len(records))), "delivered offsets not dense from 0"

    consumer = ck_consumer(b)
    try:
        msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING)
        _assert_messages_match(msgs, records)
    finally:
        consumer.close()


def test_idempotent_producer_round_trip(broker, topic):
    b = broker()
    producer = ck_producer(b, **{"enable.idempotence": True, "linger.ms": 5, "batch.num.messages": 100})
    records = [dict(topic=topic, partition=0, key=b"k%d" % i, value=b"idempotent-%d" % i) for i in range(2000)]
    results = ck_produce_all(producer, records)
    errors = [r for r in results if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert [off for _, _, off in results] == list(range(len(records)))

    consumer = ck_consumer(b)
    try:
        msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING)
    finally:
        consumer.close()
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
        (i, r["key"], r["value"]) for i, r in enumerate(records)
    ]


def test_assign_consumer_reads_from_offsets(broker, topic):
    b = broker()
    producer = ck_producer(b, **{"linger.ms": 0})
    records = [dict(topic=topic, partition=0, key=b"k%d" % i, value=b"value-%d" % i) for i in range(100)]
    # A few separate batches, so that some start offsets fall inside a batch.
    for chunk in range(0, 100, 25):
        results = ck_produce_all(producer, records[chunk:chunk + 25])
        assert all(err is None for err, _, _ in results), results

    consumer = ck_consumer(b)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert (low, high) == (0, 100)
        for start in (0, 1, 24, 25, 40, 99):
            msgs = ck_read_partition(consumer, topic, 0, start)
            assert [m.offset() for m in msgs] == list(range(start, 100)), f"from offset {start}"
            assert [m.value() for m in msgs] == [r["value"] for r in records[start:]], f"from offset {start}"
        # At the end: nothing, but no error either.
        assert ck_read_partition(consumer, topic, 0, 100) == []
        # OFFSET_END, then new data: only the new record. (Consumer.position() reports the last
        # consumed offset + 1, so wait for the partition-EOF event, which carries the end offset.)
        consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
        eof = _next_event(consumer, 10, "partition EOF after assign at OFFSET_END")
        assert eof.error() is not None and eof.error().code() == KafkaError._PARTITION_EOF, (
            f"expected partition EOF at OFFSET_END, got offset {eof.offset()} error {eof.error()}"
        )
        assert eof.offset() == 100, f"EOF reported at offset {eof.offset()}, expected 100"
        ck_produce_all(producer, [dict(topic=topic, partition=0, value=b"late")])
        late = _next_event(consumer, 10, "the record produced after assign at OFFSET_END")
        assert late.error() is None, f"consumer error: {late.error()}"
        assert (late.offset(), late.value()) == (100, b"late")
    finally:
        consumer.close()
