"""Compatibility-matrix program for confluent-kafka (Python, on librdkafka). See README.md.

    target/compat-venv/bin/python compat/matrix/confluent_kafka_matrix.py <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confluent_kafka  # noqa: E402
from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

import matrix_common as mc  # noqa: E402
from matrix_common import Ctx, Rec  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
LOGGER = logging.getLogger("librdkafka")

# confluent-kafka refuses a Consumer without group.id even when it only uses assign(): the
# assign-only consumers below carry this id but never join the group nor commit.
ASSIGN_ONLY_GROUP = "strom-matrix-assign-only"


def version() -> str:
    def text(v):  # (str, int) in most releases; a bare str in some
        return v[0] if isinstance(v, tuple) else str(v)
    return f"{text(confluent_kafka.version())} (librdkafka {text(confluent_kafka.libversion())})"


# --- client helpers -----------------------------------------------------------------------------


def base_conf(ctx: Ctx) -> dict:
    return {"bootstrap.servers": ctx.bootstrap, "socket.timeout.ms": 10000, "logger": LOGGER}


def producer(ctx: Ctx, **extra) -> Producer:
    conf = base_conf(ctx)
    conf["message.timeout.ms"] = 30000
    conf.update(extra)
    return Producer(conf)


def consumer(ctx: Ctx, group: str = ASSIGN_ONLY_GROUP, **extra) -> Consumer:
    conf = base_conf(ctx)
    conf.update({
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    })
    conf.update(extra)
    return Consumer(conf)


def admin(ctx: Ctx) -> AdminClient:
    return AdminClient(base_conf(ctx))


def produce_all(ctx: Ctx, prod: Producer, records: list[dict]) -> list[tuple]:
    """Produces `records` (Producer.produce kwargs, topic included) in order and returns one
    (error, partition, offset) per record once every delivery report arrived."""
    results: list = [None] * len(records)

    def report(index):
        def cb(err, msg):
            results[index] = (err, msg.partition(), msg.offset())
        return cb

    for i, rec in enumerate(records):
        while True:
            try:
                prod.produce(on_delivery=report(i), **rec)
                break
            except BufferError:
                ctx.deadline.check("room in the producer queue")
                prod.poll(0.05)
        prod.poll(0)
    left = prod.flush(ctx.deadline.left())
    if left:
        raise AssertionError(f"{left} of {len(records)} records undelivered before the deadline")
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise AssertionError(f"no delivery report for {len(missing)} records (first: record {missing[0]})")
    errors = [(i, r[0]) for i, r in enumerate(results) if r[0] is not None]
    if errors:
        raise AssertionError(f"{len(errors)} delivery errors, first (record {errors[0][0]}): {errors[0][1]}")
    return results


def send(ctx: Ctx, records: list[dict], **conf) -> list[tuple]:
    prod = producer(ctx, **conf)
    try:
        return produce_all(ctx, prod, records)
    finally:
        prod.flush(1)


def to_rec(msg) -> Rec:
    ts_type, ts = msg.timestamp()
    create = {TIMESTAMP_CREATE_TIME: True, TIMESTAMP_LOG_APPEND_TIME: False}.get(ts_type)
    return Rec(msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or []), ts, create)


def drain(ctx: Ctx, cons: Consumer, partitions: list[int], expect: int | None, what: str) -> list[Rec]:
    """Polls until every partition in `partitions` is at its end (its last event is EOF) and, when
    `expect` is given, at least `expect` records were read."""
    out: list[Rec] = []
    at_eof = {p: False for p in partitions}
    while True:
        if all(at_eof.values()) and (expect is None or len(out) >= expect):
            return out
        if ctx.deadline.expired():
            want = "" if expect is None else f" of {expect}"
            raise AssertionError(f"{what}: read {len(out)}{want} records before the deadline "
                                 f"(partitions at end: {sorted(p for p, e in at_eof.items() if e)})")
        msg = cons.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                at_eof[msg.partition()] = True
                continue
            raise AssertionError(f"{what}: consumer error {err}")
        at_eof[msg.partition()] = False
        out.append(to_rec(msg))


def read_back(ctx: Ctx, partitions=(0, 1, 2), expect: int | None = None) -> list[Rec]:
    """A fresh consumer reads `partitions` of the scenario topic from the beginning."""
    cons = consumer(ctx)
    try:
        cons.assign([TopicPartition(ctx.topic, p, OFFSET_BEGINNING) for p in partitions])
        return drain(ctx, cons, list(partitions), expect, "read back")
    finally:
        cons.close()


def topic_metadata(adm: AdminClient, topic: str):
    """The topic's metadata from a request for all topics (None when not listed)."""
    md = adm.list_topics(timeout=10)
    return md, md.topics.get(topic)


# --- scenarios ----------------------------------------------------------------------------------


def s_metadata(ctx: Ctx) -> str:
    md = admin(ctx).list_topics(ctx.topic, timeout=10)
    t = md.topics.get(ctx.topic)
    assert t is not None, f"{ctx.topic} not in the metadata response"
    assert t.error is None, f"topic error {t.error}"
    assert sorted(t.partitions) == [0, 1, 2], f"partitions {sorted(t.partitions)}, want [0, 1, 2]"
    brokers = {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}
    for p in t.partitions.values():
        assert p.error is None, f"partition {p.id}: error {p.error}"
        assert p.leader in brokers, f"partition {p.id}: leader {p.leader} not among brokers {brokers}"
        assert brokers[p.leader] == ctx.bootstrap, \
            f"partition {p.id}: leader {p.leader} at {brokers[p.leader]}, bootstrap is {ctx.bootstrap}"
    return f"3 partitions, leaders at {sorted(set(brokers[p.leader] for p in t.partitions.values()))}"


def s_produce_keys(ctx: Ctx) -> str:
    total = mc.KEYED_COUNT + mc.NULL_KEY_COUNT
    send(ctx, [dict(topic=ctx.topic, key=mc.key_of(i), value=mc.value(i)) for i in range(total)], **{"linger.ms": 5})
    return mc.check_keys(read_back(ctx, expect=total))


def s_produce_headers(ctx: Ctx) -> str:
    n = 10
    send(ctx, [dict(topic=ctx.topic, value=mc.value(i), headers=mc.HEADERS) for i in range(n)])
    mc.check_headers(read_back(ctx, expect=n), n)
    return f"{n} records with {mc.HEADERS!r}"


def s_produce_timestamps(ctx: Ctx) -> str:
    n = 10
    send(ctx, [dict(topic=ctx.topic, value=mc.value(i), timestamp=mc.timestamp(i)) for i in range(n)])
    mc.check_timestamps(read_back(ctx, expect=n), n)
    return f"{n} records, CreateTime {mc.timestamp(0)}..{mc.timestamp(n - 1)}"


def codec_scenario(codec: str):
    def run(ctx: Ctx) -> str:
        n = mc.CODEC_COUNT
        values = [mc.compressible_value(i) for i in range(n)]
        send(ctx, [dict(topic=ctx.topic, value=v) for v in values],
             **{"compression.type": codec, "linger.ms": 20})
        mc.check_exactly_once(read_back(ctx, expect=n), values)
        return f"{n} records compression.type={codec}, read back byte-exact"
    return run


def acks_scenario(acks: str):
    def run(ctx: Ctx) -> str:
        n = mc.ACKS_COUNT
        send(ctx, [dict(topic=ctx.topic, value=mc.value(i)) for i in range(n)], **{"acks": acks, "linger.ms": 5})
        # read_back waits (bounded) until all n are there, which acks=0 needs.
        mc.check_exactly_once(read_back(ctx, expect=n), [mc.value(i) for i in range(n)])
        return f"{n} records acks={acks}, all read back"
    return run


def s_produce_idempotent(ctx: Ctx) -> str:
    n = mc.IDEMPOTENT_COUNT
    results = send(ctx, [dict(topic=ctx.topic, value=mc.value(i)) for i in range(n)],
                   **{"enable.idempotence": True, "linger.ms": 5})
    recs = read_back(ctx, expect=n)
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    mc.check_dense_offsets(recs)
    acked = sorted((p, o) for _, p, o in results)
    read = sorted((r.partition, r.offset) for r in recs)
    assert acked == read, "acknowledged (partition, offset) pairs differ from the ones read back"
    spread = {p: len(rows) for p, rows in sorted(mc.by_partition(recs).items())}
    return f"enable.idempotence=true: {n} records once each, offsets dense from 0 {spread}"


def s_consume_assign_seek(ctx: Ctx) -> str:
    n, start = mc.SEEK_COUNT, mc.SEEK_TO
    send(ctx, [dict(topic=ctx.topic, partition=0, value=mc.value(i)) for i in range(n)])
    cons = consumer(ctx)
    try:
        cons.assign([TopicPartition(ctx.topic, 0, OFFSET_BEGINNING)])
        cons.seek(TopicPartition(ctx.topic, 0, start))
        recs = drain(ctx, cons, [0], n - start, "consume after seek")
    finally:
        cons.close()
    got = [(r.offset, r.value) for r in recs]
    want = [(i, mc.value(i)) for i in range(start, n)]
    mc.check_sequence(got, want, f"after seek({start})")
    return f"assign(p0) + seek({start}) (group.id set, never joined): offsets {start}..{n - 1} in order"


def s_consume_from_beginning(ctx: Ctx) -> str:
    n = mc.BEGINNING_COUNT
    send(ctx, [dict(topic=ctx.topic, partition=i % 3, value=mc.value(i)) for i in range(n)])
    cons = consumer(ctx)
    try:
        cons.assign([TopicPartition(ctx.topic, p, OFFSET_BEGINNING) for p in range(3)])
        recs = drain(ctx, cons, [0, 1, 2], n, "consume from the beginning")
    finally:
        cons.close()
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    return f"assign at OFFSET_BEGINNING: all {n} records over 3 partitions"


def s_consume_from_timestamp(ctx: Ctx) -> str:
    n, k = mc.TIMESTAMP_COUNT, mc.TIMESTAMP_LOOKUP_INDEX
    send(ctx, [dict(topic=ctx.topic, partition=0, value=mc.value(i), timestamp=mc.timestamp(i)) for i in range(n)])
    cons = consumer(ctx)
    try:
        found = cons.offsets_for_times([TopicPartition(ctx.topic, 0, mc.timestamp(k))], timeout=10)
        assert len(found) == 1 and found[0].error is None, f"offsets_for_times: {found}"
        assert found[0].offset == k, f"offsets_for_times({mc.timestamp(k)}) = {found[0].offset}, want {k}"
        cons.assign([TopicPartition(ctx.topic, 0, found[0].offset)])
        recs = drain(ctx, cons, [0], 1, "consume from the looked-up offset")
    finally:
        cons.close()
    first = recs[0]
    assert (first.offset, first.value) == (k, mc.value(k)), f"first record {first.short()}, want v{k} at {k}"
    return f"offsets_for_times(T0+{k * 1000}) = {k}, first value v{k}"


def s_group(ctx: Ctx) -> str:
    first, second = mc.GROUP_FIRST, mc.GROUP_SECOND
    group = f"{ctx.topic}-{ctx.run_id}"
    send(ctx, [dict(topic=ctx.topic, partition=i % 3, value=mc.value(i)) for i in range(first)])

    def member():
        return consumer(ctx, group=group, **{"auto.offset.reset": "earliest", "enable.auto.offset.store": True})

    a = member()
    try:
        a.subscribe([ctx.topic])
        recs_a = drain(ctx, a, [0, 1, 2], first, "consumer A")
        mc.check_exactly_once(recs_a, [mc.value(i) for i in range(first)])
        committed = a.commit(asynchronous=False)
        bad = [tp for tp in committed or [] if tp.error is not None]
        assert not bad, f"commit errors: {bad}"
        got = sorted((tp.partition, tp.offset) for tp in committed or [])
        want = sorted((p, len(rows)) for p, rows in mc.by_partition(recs_a).items())
        assert got == want, f"committed {got}, want {want}"
    finally:
        a.close()

    send(ctx, [dict(topic=ctx.topic, partition=i % 3, value=mc.value(i)) for i in range(first, first + second)])
    b = member()
    try:
        b.subscribe([ctx.topic])
        recs_b = drain(ctx, b, [0, 1, 2], second, "consumer B")
    finally:
        b.close()
    mc.check_exactly_once(recs_b, [mc.value(i) for i in range(first, first + second)])
    return f"A read {first} and committed {got}; B read exactly the {second} new records"


def s_admin_topics(ctx: Ctx) -> str:
    adm = admin(ctx)
    new = ctx.topic + "-new"
    adm.create_topics([NewTopic(new, num_partitions=2, replication_factor=1)],
                      request_timeout=15)[new].result(timeout=ctx.deadline.left())

    def listed_with_two():
        _, t = topic_metadata(adm, new)
        return t is not None and t.error is None and len(t.partitions) == 2

    mc.wait_until(listed_with_two, ctx.deadline, f"{new} listed with 2 partitions")
    adm.delete_topics([new], request_timeout=15)[new].result(timeout=ctx.deadline.left())
    mc.wait_until(lambda: topic_metadata(adm, new)[1] is None, ctx.deadline, f"{new} to leave the metadata")
    return f"created {new} (2 partitions), listed, deleted, no longer listed"


def s_admin_configs(ctx: Ctx) -> str:
    adm = admin(ctx)

    def retention() -> str:
        res = ConfigResource(ResourceType.TOPIC, ctx.topic)
        configs = adm.describe_configs([res], request_timeout=15)[res].result(timeout=ctx.deadline.left())
        assert "retention.ms" in configs, f"retention.ms not described ({len(configs)} entries)"
        return configs["retention.ms"].value

    before = retention()
    assert before == mc.RETENTION_DEFAULT, f"retention.ms is {before!r}, want {mc.RETENTION_DEFAULT}"
    res = ConfigResource(ResourceType.TOPIC, ctx.topic, incremental_configs=[
        ConfigEntry("retention.ms", mc.RETENTION_NEW, incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([res], request_timeout=15)[res].result(timeout=ctx.deadline.left())
    after = retention()
    assert after == mc.RETENTION_NEW, f"after the alter retention.ms is {after!r}, want {mc.RETENTION_NEW}"
    return f"retention.ms {before} -> incremental_alter_configs SET -> {after}"


def s_admin_partitions(ctx: Ctx) -> str:
    adm = admin(ctx)
    adm.create_partitions([NewPartitions(ctx.topic, 5)],
                          request_timeout=15)[ctx.topic].result(timeout=ctx.deadline.left())

    def five():
        _, t = topic_metadata(adm, ctx.topic)
        return t is not None and sorted(t.partitions) == [0, 1, 2, 3, 4]

    mc.wait_until(five, ctx.deadline, f"{ctx.topic} with 5 partitions in the metadata")
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
    "produce.acks0": acks_scenario("0"),
    "produce.acks1": acks_scenario("1"),
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
    mc.main("confluent-kafka", version, SCENARIOS)
