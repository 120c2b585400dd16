"""Compatibility-matrix program for kafka-python (pure Python client). See README.md.

    target/compat-venv/bin/python compat/matrix/kafka_python_matrix.py <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kafka  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType  # noqa: E402

import matrix_common as mc  # noqa: E402
from matrix_common import Ctx, Rec  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")


def version() -> str:
    return kafka.__version__


# --- client helpers -----------------------------------------------------------------------------

COMMON = dict(request_timeout_ms=15000)


def producer(ctx: Ctx, **extra) -> KafkaProducer:
    conf = dict(bootstrap_servers=ctx.bootstrap, linger_ms=5, max_block_ms=15000, **COMMON)
    conf.update(extra)
    return KafkaProducer(**conf)


def consumer(ctx: Ctx, *topics, **extra) -> KafkaConsumer:
    conf = dict(bootstrap_servers=ctx.bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", **COMMON)
    conf.update(extra)
    return KafkaConsumer(*topics, **conf)


def admin(ctx: Ctx) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=ctx.bootstrap, **COMMON)


def send(ctx: Ctx, records: list[dict], **conf) -> list:
    """Sends `records` (KafkaProducer.send kwargs without the topic) in order; returns the
    RecordMetadata of each (None with acks=0 is not possible: kafka-python reports offset -1)."""
    prod = producer(ctx, **conf)
    try:
        futures = [prod.send(ctx.topic, **rec) for rec in records]
        prod.flush(timeout=ctx.deadline.left())
        return [f.get(timeout=max(0.1, ctx.deadline.left())) for f in futures]
    finally:
        prod.close(timeout=5)


def to_rec(r) -> Rec:
    create = {0: True, 1: False}.get(r.timestamp_type)
    return Rec(r.partition, r.offset, r.key, r.value, list(r.headers or []), r.timestamp, create)


def drain(ctx: Ctx, cons: KafkaConsumer, partitions: list[int], expect: int | None, what: str) -> list[Rec]:
    """Polls until `partitions` (of the scenario topic) are all assigned and read to their end
    offsets and, when `expect` is given, at least `expect` records were read."""
    out: list[Rec] = []
    tps = [TopicPartition(ctx.topic, p) for p in partitions]

    def at_end() -> bool:
        if set(cons.assignment()) != set(tps):
            return False
        ends = cons.end_offsets(tps, timeout_ms=5000)
        return all(cons.position(tp, timeout_ms=5000) >= ends[tp] for tp in tps)

    while True:
        for batch in cons.poll(timeout_ms=200).values():
            out.extend(to_rec(r) for r in batch)
        if (expect is None or len(out) >= expect) and at_end():
            return out
        if ctx.deadline.expired():
            want = "" if expect is None else f" of {expect}"
            raise AssertionError(f"{what}: read {len(out)}{want} records before the deadline "
                                 f"(assignment {sorted(tp.partition for tp in cons.assignment())})")


def read_back(ctx: Ctx, partitions=(0, 1, 2), expect: int | None = None) -> list[Rec]:
    cons = consumer(ctx)
    try:
        tps = [TopicPartition(ctx.topic, p) for p in partitions]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        return drain(ctx, cons, list(partitions), expect, "read back")
    finally:
        cons.close(autocommit=False)


def partitions_of(adm: KafkaAdminClient, topic: str) -> list | None:
    """Partition ids of `topic` from a metadata request (None when not listed or in error)."""
    for t in adm.describe_topics([topic]):
        if t["name"] == topic and t["error_code"] == 0:
            return sorted(p["partition_index"] for p in t["partitions"])
    return None


# --- scenarios ----------------------------------------------------------------------------------


def s_metadata(ctx: Ctx) -> str:
    adm = admin(ctx)
    try:
        topics = {t["name"]: t for t in adm.describe_topics([ctx.topic])}
        cluster = adm.describe_cluster()
    finally:
        adm.close()
    t = topics.get(ctx.topic)
    assert t is not None, f"{ctx.topic} not in the metadata response ({sorted(topics)})"
    assert t["error_code"] == 0, f"topic error code {t['error_code']}"
    parts = {p["partition_index"]: p for p in t["partitions"]}
    assert sorted(parts) == [0, 1, 2], f"partitions {sorted(parts)}, want [0, 1, 2]"
    brokers = {b["broker_id"]: f"{b['host']}:{b['port']}" for b in cluster["brokers"]}
    for i, p in parts.items():
        assert p["error_code"] == 0, f"partition {i}: error code {p['error_code']}"
        leader = p["leader_id"]
        assert leader in brokers, f"partition {i}: leader {leader} not among brokers {brokers}"
        assert brokers[leader] == ctx.bootstrap, \
            f"partition {i}: leader {leader} at {brokers[leader]}, bootstrap is {ctx.bootstrap}"
    return f"3 partitions, leaders at {sorted(set(brokers[p['leader_id']] for p in parts.values()))}"


def s_produce_keys(ctx: Ctx) -> str:
    total = mc.KEYED_COUNT + mc.NULL_KEY_COUNT
    send(ctx, [dict(key=mc.key_of(i), value=mc.value(i)) for i in range(total)])
    return mc.check_keys(read_back(ctx, expect=total))


def s_produce_headers(ctx: Ctx) -> str:
    n = 10
    send(ctx, [dict(value=mc.value(i), headers=list(mc.HEADERS)) for i in range(n)])
    mc.check_headers(read_back(ctx, expect=n), n)
    return f"{n} records with {mc.HEADERS!r}"


def s_produce_timestamps(ctx: Ctx) -> str:
    n = 10
    send(ctx, [dict(value=mc.value(i), timestamp_ms=mc.timestamp(i)) for i in range(n)])
    mc.check_timestamps(read_back(ctx, expect=n), n)
    return f"{n} records, CreateTime {mc.timestamp(0)}..{mc.timestamp(n - 1)}"


def codec_scenario(codec: str):
    def run(ctx: Ctx) -> str:
        n = mc.CODEC_COUNT
        values = [mc.compressible_value(i) for i in range(n)]
        send(ctx, [dict(value=v) for v in values], compression_type=codec, linger_ms=20)
        mc.check_exactly_once(read_back(ctx, expect=n), values)
        return f"{n} records compression_type={codec}, read back byte-exact"
    return run


def acks_scenario(acks):
    def run(ctx: Ctx) -> str:
        n = mc.ACKS_COUNT
        # kafka-python 3 is idempotent by default, which requires acks=all: turned off here so
        # that these cells test the plain acks setting (produce.idempotent tests idempotence).
        send(ctx, [dict(value=mc.value(i)) for i in range(n)], acks=acks, enable_idempotence=False)
        # read_back waits (bounded) until all n are there, which acks=0 needs.
        mc.check_exactly_once(read_back(ctx, expect=n), [mc.value(i) for i in range(n)])
        return f"{n} records acks={acks} (enable_idempotence=False), all read back"
    return run


def s_produce_idempotent(ctx: Ctx) -> str:
    n = mc.IDEMPOTENT_COUNT
    metas = send(ctx, [dict(value=mc.value(i)) for i in range(n)], enable_idempotence=True, acks="all")
    recs = read_back(ctx, expect=n)
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    mc.check_dense_offsets(recs)
    acked = sorted((m.partition, m.offset) for m in metas)
    read = sorted((r.partition, r.offset) for r in recs)
    assert acked == read, "acknowledged (partition, offset) pairs differ from the ones read back"
    spread = {p: len(rows) for p, rows in sorted(mc.by_partition(recs).items())}
    return f"enable_idempotence=True: {n} records once each, offsets dense from 0 {spread}"


def s_consume_assign_seek(ctx: Ctx) -> str:
    n, start = mc.SEEK_COUNT, mc.SEEK_TO
    send(ctx, [dict(partition=0, value=mc.value(i)) for i in range(n)])
    cons = consumer(ctx, auto_offset_reset="none")
    try:
        tp = TopicPartition(ctx.topic, 0)
        cons.assign([tp])
        cons.seek(tp, start)
        recs = drain(ctx, cons, [0], n - start, "consume after seek")
    finally:
        cons.close(autocommit=False)
    got = [(r.offset, r.value) for r in recs]
    want = [(i, mc.value(i)) for i in range(start, n)]
    mc.check_sequence(got, want, f"after seek({start})")
    return f"assign(p0) + seek({start}) without group: offsets {start}..{n - 1} in order"


def s_consume_from_beginning(ctx: Ctx) -> str:
    n = mc.BEGINNING_COUNT
    send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(n)])
    # Subscribed without a group: kafka-python assigns every partition itself, starting at
    # auto_offset_reset=earliest.
    cons = consumer(ctx, ctx.topic, auto_offset_reset="earliest")
    try:
        recs = drain(ctx, cons, [0, 1, 2], n, "consume from earliest")
    finally:
        cons.close(autocommit=False)
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    return f"auto_offset_reset=earliest (no group): all {n} records over 3 partitions"


def s_consume_from_timestamp(ctx: Ctx) -> str:
    n, k = mc.TIMESTAMP_COUNT, mc.TIMESTAMP_LOOKUP_INDEX
    send(ctx, [dict(partition=0, value=mc.value(i), timestamp_ms=mc.timestamp(i)) for i in range(n)])
    cons = consumer(ctx, auto_offset_reset="none")
    try:
        tp = TopicPartition(ctx.topic, 0)
        found = cons.offsets_for_times({tp: mc.timestamp(k)}, timeout_ms=10000)
        hit = found.get(tp)
        assert hit is not None, f"offsets_for_times({mc.timestamp(k)}) found nothing: {found}"
        assert hit.offset == k, f"offsets_for_times({mc.timestamp(k)}) = {hit}, want offset {k}"
        cons.assign([tp])
        cons.seek(tp, hit.offset)
        recs = drain(ctx, cons, [0], 1, "consume from the looked-up offset")
    finally:
        cons.close(autocommit=False)
    first = recs[0]
    assert (first.offset, first.value) == (k, mc.value(k)), f"first record {first.short()}, want v{k} at {k}"
    return f"offsets_for_times(T0+{k * 1000}) = {k} (ts {hit.timestamp}), first value v{k}"


def s_group(ctx: Ctx) -> str:
    first, second = mc.GROUP_FIRST, mc.GROUP_SECOND
    group = f"{ctx.topic}-{ctx.run_id}"
    send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(first)])

    a = consumer(ctx, ctx.topic, group_id=group)
    try:
        recs_a = drain(ctx, a, [0, 1, 2], first, "consumer A")
        mc.check_exactly_once(recs_a, [mc.value(i) for i in range(first)])
        a.commit(timeout_ms=15000)
        tps = [TopicPartition(ctx.topic, p) for p in range(3)]
        got = sorted((tp.partition, a.committed(tp, timeout_ms=10000)) for tp in tps)
        want = sorted((p, len(mc.by_partition(recs_a).get(p, []))) for p in range(3))
        assert got == want, f"committed {got}, want {want}"
    finally:
        a.close(autocommit=False)

    send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(first, first + second)])
    b = consumer(ctx, ctx.topic, group_id=group)
    try:
        recs_b = drain(ctx, b, [0, 1, 2], second, "consumer B")
    finally:
        b.close(autocommit=False)
    mc.check_exactly_once(recs_b, [mc.value(i) for i in range(first, first + second)])
    return f"A read {first} and committed {got}; B read exactly the {second} new records"


def s_admin_topics(ctx: Ctx) -> str:
    adm = admin(ctx)
    new = ctx.topic + "-new"
    try:
        adm.create_topics({new: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=15000)
        mc.wait_until(lambda: new in adm.list_topics() and partitions_of(adm, new) == [0, 1],
                      ctx.deadline, f"{new} listed with 2 partitions")
        adm.delete_topics([new], timeout_ms=15000)
        mc.wait_until(lambda: new not in adm.list_topics(), ctx.deadline, f"{new} to leave the metadata")
    finally:
        adm.close()
    return f"created {new} (2 partitions), listed, deleted, no longer listed"


def s_admin_configs(ctx: Ctx) -> str:
    adm = admin(ctx)
    try:
        def retention() -> str:
            described = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctx.topic)],
                                             config_filter="all")
            configs = described["topic"][ctx.topic]
            assert "retention.ms" in configs, f"retention.ms not described ({len(configs)} entries)"
            return configs["retention.ms"]["value"]

        before = retention()
        assert before == mc.RETENTION_DEFAULT, f"retention.ms is {before!r}, want {mc.RETENTION_DEFAULT}"
        result = adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, ctx.topic,
                                                   {"retention.ms": mc.RETENTION_NEW})])
        log_result = repr(result)
        after = retention()
    finally:
        adm.close()
    assert after == mc.RETENTION_NEW, \
        f"after alter_configs ({log_result[:150]}) retention.ms is {after!r}, want {mc.RETENTION_NEW}"
    return f"retention.ms {before} -> alter_configs -> {after}"


def s_admin_partitions(ctx: Ctx) -> str:
    adm = admin(ctx)
    try:
        adm.create_partitions({ctx.topic: 5}, timeout_ms=15000)
        mc.wait_until(lambda: partitions_of(adm, ctx.topic) == [0, 1, 2, 3, 4], ctx.deadline,
                      f"{ctx.topic} with 5 partitions in the metadata")
    finally:
        adm.close()
    return "create_partitions(5): metadata shows partitions 0..4"


SCENARIOS = {
    "metadata": s_metadata,
    "produce.keys": s_produce_keys,
    "produce.headers": s_produce_headers,
    "produce.timestamps": s_produce_timestamps,
    "produce.gzip": codec_scenario("gzip"),
    "produce.snappy": codec_scenario("snappy"),
    "produce.lz4": codec_scenario("lz4"),
    "produce.zstd": codec_scenario("zstd"),
    "produce.acks0": acks_scenario(0),
    "produce.acks1": acks_scenario(1),
    "produce.acksall": acks_scenario("all"),
    "produce.idempotent": s_produce_idempotent,
    "consume.assign_seek": s_consume_assign_seek,
    "consume.from_beginning": s_consume_from_beginning,
    "consume.from_timestamp": s_consume_from_timestamp,
    "group.subscribe_commit_resume": s_group,
    "admin.topics": s_admin_topics,
    "admin.configs": s_admin_configs,
    "admin.partitions": s_admin_partitions,
}

if __name__ == "__main__":
    mc.main("kafka-python", version, SCENARIOS)
