"""Log compaction with a real client (confluent-kafka): 100,000 records over 1,000 keys with
tombstones on a compacted topic with small segments. After the cleaner runs, a consumer from the
beginning sees the latest value of every live key exactly once, in offset order, and no deleted
key once delete.retention.ms has passed; the partition shrinks on disk; a kill -9 while the
cleaner works loses nothing; keyless records are refused."""

from __future__ import annotations

import random
import time

import pytest

from strom_harness import (
    ck_admin,
    ck_consumer,
    ck_produce_all,
    ck_producer,
    ck_read_partition,
    wait_until,
)

KEYS = 1_000
RECORDS = 100_000
SEGMENT_BYTES = 64 * 1024
DELETE_RETENTION_MS = 1_000


def create_compacted(broker, topic):
    from confluent_kafka.admin import NewTopic

    admin = ck_admin(broker)
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact",
        "segment.bytes": str(SEGMENT_BYTES),
        "segment.ms": "500",
        "delete.retention.ms": str(DELETE_RETENTION_MS),
        "min.cleanable.dirty.ratio": "0.01",
    })], request_timeout=30)
    futures[topic].result(timeout=30)


def produce_history(broker, topic, seed):
    """Writes RECORDS updates over KEYS keys, every 10th key ending as a tombstone; returns the
    expected final value per live key and the set of deleted keys."""
    rng = random.Random(seed)
    producer = ck_producer(broker, **{"linger.ms": 5, "compression.type": "lz4"})
    latest: dict[str, bytes | None] = {}
    records = []
    for i in range(RECORDS):
        key = f"key-{rng.randrange(KEYS):04d}"
        value = f"{key} update {i} ".encode() + b"x" * rng.randrange(20, 80)
        records.append({"key": key.encode(), "value": value})
        latest[key] = value
    # Every key gets a final write; every 10th key a final tombstone.
    for k in range(KEYS):
        key = f"key-{k:04d}"
        value = None if k % 10 == 0 else f"{key} final".encode()
        records.append({"key": key.encode(), "value": value})
        latest[key] = value
    results = ck_produce_all(producer, records, timeout_s=120, topic=topic)
    errors = [r for r in results if r[0] is not None]
    assert not errors, f"{len(errors)} produce errors, first {errors[0]}"
    live = {k: v for k, v in latest.items() if v is not None}
    deleted = {k for k, v in latest.items() if v is None}
    return live, deleted, producer


def roll_active_segment(producer, topic):
    """Data in the active segment is never compacted: after segment.ms a small write on a key of
    its own rolls it, so every data record sits in a closed segment."""
    time.sleep(0.6)
    ck_produce_all(producer, [{"key": b"~sentinel", "value": str(time.time()).encode()}], topic=topic)


def view(broker, topic):
    consumer = ck_consumer(broker, **{"auto.offset.reset": "earliest"})
    msgs = ck_read_partition(consumer, topic, 0, -2, timeout_s=60)  # -2: OFFSET_BEGINNING
    return [(m.offset(), m.key().decode(), m.value()) for m in msgs]


def records_of(state) -> list:
    return state.get("records", [])


def data_size(broker, topic) -> int:
    return sum(p.stat().st_size for p in broker.segment_files(topic))


def check_compacted(records, live, deleted):
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets out of order"
    data = [(k, v) for _, k, v in records if k != "~sentinel"]
    keys = [k for k, _ in data]
    dupes = len(keys) - len(set(keys))
    assert dupes == 0, f"{dupes} keys appear more than once"
    seen = dict(data)
    wrong = [k for k, v in live.items() if seen.get(k) != v]
    assert not wrong, f"{len(wrong)} live keys without their latest value, e.g. {wrong[:3]}"
    resurrected = [k for k in deleted if seen.get(k) is not None]
    assert not resurrected, f"deleted keys came back: {resurrected[:5]}"
    return seen


@pytest.mark.slow
def test_compaction_keeps_latest_per_key_and_forgets_deleted_keys(broker, topic):
    b = broker("log.cleaner.backoff.ms=300")
    create_compacted(b, topic)
    live, deleted, producer = produce_history(b, topic, seed=11)
    size_before = data_size(b, topic)
    roll_active_segment(producer, topic)
    # Tombstones younger than delete.retention.ms stay for a while; later passes drop them
    # (new sentinel writes keep the partition dirty enough to be cleaned again).
    state = {}

    def compacted():
        roll_active_segment(producer, topic)
        records = view(b, topic)
        state["records"] = records
        data = [r for r in records if r[1] != "~sentinel"]
        tombstones = [r for r in data if r[2] is None]
        return len(data) == len(live) and not tombstones

    wait_until(compacted, 60, "the cleaner to leave one record per live key and no tombstone",
               interval_s=0.5)
    check_compacted(state["records"], live, deleted)
    size_after = data_size(b, topic)
    print(f"compaction: {len(records_of(state))} records left of {RECORDS + KEYS}; "
          f"segment bytes {size_before} -> {size_after}")
    assert size_after < size_before / 5, f"disk usage {size_before} -> {size_after} bytes"
    # Keyless records are refused on a compacted topic.
    from confluent_kafka import KafkaError

    results = ck_produce_all(producer, [{"value": b"no key"}], topic=topic)
    err = results[0][0]
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, f"keyless record: {err}"


@pytest.mark.slow
def test_kill_9_while_cleaning_loses_nothing(broker, topic):
    b = broker("log.cleaner.backoff.ms=100")
    create_compacted(b, topic)
    live, deleted, producer = produce_history(b, topic, seed=23)
    roll_active_segment(producer, topic)
    # Kill the broker at a few points while the first pass runs.
    for delay in (0.05, 0.2, 0.45):
        time.sleep(delay)
        b.kill9()
        leftovers = [p.name for p in b.partition_dir(topic).iterdir() if p.name.endswith(".cleaned")]
        b.start()
        # Whatever the cleaner had done, every live key still reads as its latest value
        # (later duplicates win, as for any consumer of a compacted topic).
        records = view(b, topic)
        seen: dict[str, bytes | None] = {}
        for _, k, v in records:
            seen[k] = v
        wrong = [k for k, v in live.items() if seen.get(k) != v]
        assert not wrong, f"after kill -9 ({delay}s, leftovers {leftovers}): {len(wrong)} keys lost, e.g. {wrong[:3]}"
        assert not [p for p in b.partition_dir(topic).iterdir() if p.name.endswith(".cleaned")], \
            "a .cleaned file survived the restart"
    producer = ck_producer(b)
    state = {}

    def compacted():
        roll_active_segment(producer, topic)
        records = view(b, topic)
        state["records"] = records
        keys = [k for _, k, _ in records if k != "~sentinel"]
        return len(keys) == len(set(keys)) and not any(v is None for _, k, v in records)

    wait_until(compacted, 60, "compaction to finish after the restarts", interval_s=0.5)
    check_compacted(state["records"], live, deleted)
