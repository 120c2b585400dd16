"""Compatibility-matrix program for aiokafka (asyncio client). See README.md.

    target/compat-venv/bin/python compat/matrix/aiokafka_matrix.py <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiokafka  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic  # noqa: E402
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: E402

import matrix_common as mc  # noqa: E402
from matrix_common import Ctx, Rec  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")


def version() -> str:
    return aiokafka.__version__


# --- client helpers -----------------------------------------------------------------------------

COMMON = dict(request_timeout_ms=15000)


async def send(ctx: Ctx, records: list[dict], **conf) -> list:
    """Sends `records` (AIOKafkaProducer.send kwargs without the topic) in order; returns the
    RecordMetadata of each once all are acknowledged."""
    opts = dict(bootstrap_servers=ctx.bootstrap, linger_ms=5, **COMMON)
    opts.update(conf)
    prod = AIOKafkaProducer(**opts)
    await prod.start()
    try:
        futures = [await prod.send(ctx.topic, **rec) for rec in records]
        await prod.flush()
        return list(await asyncio.wait_for(asyncio.gather(*futures), ctx.deadline.left()))
    finally:
        await prod.stop()


async def consumer(ctx: Ctx, *topics, **extra) -> AIOKafkaConsumer:
    opts = dict(bootstrap_servers=ctx.bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", **COMMON)
    opts.update(extra)
    cons = AIOKafkaConsumer(*topics, **opts)
    await cons.start()
    return cons


async def admin(ctx: Ctx) -> AIOKafkaAdminClient:
    adm = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap, **COMMON)
    await adm.start()
    return adm


def to_rec(r) -> Rec:
    create = {0: True, 1: False}.get(r.timestamp_type)
    return Rec(r.partition, r.offset, r.key, r.value, list(r.headers or []), r.timestamp, create)


async def drain(ctx: Ctx, cons: AIOKafkaConsumer, partitions: list[int], expect: int | None,
                what: str) -> list[Rec]:
    """Reads until `partitions` (of the scenario topic) are all assigned and read to their end
    offsets and, when `expect` is given, at least `expect` records were read."""
    out: list[Rec] = []
    tps = [TopicPartition(ctx.topic, p) for p in partitions]

    async def at_end() -> bool:
        if set(cons.assignment()) != set(tps):
            return False
        ends = await cons.end_offsets(tps)
        for tp in tps:
            if await cons.position(tp) < ends[tp]:
                return False
        return True

    while True:
        for batch in (await cons.getmany(timeout_ms=200)).values():
            out.extend(to_rec(r) for r in batch)
        if (expect is None or len(out) >= expect) and await at_end():
            return out
        if ctx.deadline.expired():
            want = "" if expect is None else f" of {expect}"
            raise AssertionError(f"{what}: read {len(out)}{want} records before the deadline "
                                 f"(assignment {sorted(tp.partition for tp in cons.assignment())})")


async def read_back(ctx: Ctx, partitions=(0, 1, 2), expect: int | None = None) -> list[Rec]:
    cons = await consumer(ctx)
    try:
        tps = [TopicPartition(ctx.topic, p) for p in partitions]
        cons.assign(tps)
        await cons.seek_to_beginning(*tps)
        return await drain(ctx, cons, list(partitions), expect, "read back")
    finally:
        await cons.stop()


async def partitions_of(adm: AIOKafkaAdminClient, topic: str) -> list | None:
    """Partition ids of `topic` from a metadata request for it (None when in error)."""
    for t in await adm.describe_topics([topic]):
        if t["topic"] == topic and t["error_code"] == 0:
            return sorted(p["partition"] for p in t["partitions"])
    return None


def check_errors(what: str, pairs) -> None:
    """Raises on the first non-zero error code among (name, code, ...) tuples of a response."""
    for entry in pairs:
        if entry[1]:
            raise AssertionError(f"{what}: {entry[0]} error code {entry[1]} {entry[2:] if len(entry) > 2 else ''}")


# --- scenarios ----------------------------------------------------------------------------------


async def s_metadata(ctx: Ctx) -> str:
    adm = await admin(ctx)
    try:
        topics = {t["topic"]: t for t in await adm.describe_topics([ctx.topic])}
        cluster = await adm.describe_cluster()
    finally:
        await adm.close()
    t = topics.get(ctx.topic)
    assert t is not None, f"{ctx.topic} not in the metadata response ({sorted(topics)})"
    assert t["error_code"] == 0, f"topic error code {t['error_code']}"
    parts = {p["partition"]: p for p in t["partitions"]}
    assert sorted(parts) == [0, 1, 2], f"partitions {sorted(parts)}, want [0, 1, 2]"
    brokers = {b["node_id"]: f"{b['host']}:{b['port']}" for b in cluster["brokers"]}
    for i, p in parts.items():
        assert p["error_code"] == 0, f"partition {i}: error code {p['error_code']}"
        assert p["leader"] in brokers, f"partition {i}: leader {p['leader']} not among brokers {brokers}"
        assert brokers[p["leader"]] == ctx.bootstrap, \
            f"partition {i}: leader {p['leader']} at {brokers[p['leader']]}, bootstrap is {ctx.bootstrap}"
    return f"3 partitions, leaders at {sorted(set(brokers[p['leader']] for p in parts.values()))}"


async def s_produce_keys(ctx: Ctx) -> str:
    total = mc.KEYED_COUNT + mc.NULL_KEY_COUNT
    await send(ctx, [dict(key=mc.key_of(i), value=mc.value(i)) for i in range(total)])
    return mc.check_keys(await read_back(ctx, expect=total))


async def s_produce_headers(ctx: Ctx) -> str:
    n = 10
    await send(ctx, [dict(value=mc.value(i), headers=list(mc.HEADERS)) for i in range(n)])
    mc.check_headers(await read_back(ctx, expect=n), n)
    return f"{n} records with {mc.HEADERS!r}"


async def s_produce_timestamps(ctx: Ctx) -> str:
    n = 10
    await send(ctx, [dict(value=mc.value(i), timestamp_ms=mc.timestamp(i)) for i in range(n)])
    mc.check_timestamps(await read_back(ctx, expect=n), n)
    return f"{n} records, CreateTime {mc.timestamp(0)}..{mc.timestamp(n - 1)}"


def codec_scenario(codec: str):
    async def run(ctx: Ctx) -> str:
        n = mc.CODEC_COUNT
        values = [mc.compressible_value(i) for i in range(n)]
        await send(ctx, [dict(value=v) for v in values], compression_type=codec, linger_ms=20)
        mc.check_exactly_once(await read_back(ctx, expect=n), values)
        return f"{n} records compression_type={codec}, read back byte-exact"
    return run


def acks_scenario(acks):
    async def run(ctx: Ctx) -> str:
        n = mc.ACKS_COUNT
        await send(ctx, [dict(value=mc.value(i)) for i in range(n)], acks=acks)
        # read_back waits (bounded) until all n are there, which acks=0 needs.
        mc.check_exactly_once(await read_back(ctx, expect=n), [mc.value(i) for i in range(n)])
        return f"{n} records acks={acks}, all read back"
    return run


async def s_produce_idempotent(ctx: Ctx) -> str:
    n = mc.IDEMPOTENT_COUNT
    metas = await send(ctx, [dict(value=mc.value(i)) for i in range(n)], enable_idempotence=True)
    recs = await read_back(ctx, expect=n)
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    mc.check_dense_offsets(recs)
    acked = sorted((m.partition, m.offset) for m in metas)
    read = sorted((r.partition, r.offset) for r in recs)
    assert acked == read, "acknowledged (partition, offset) pairs differ from the ones read back"
    spread = {p: len(rows) for p, rows in sorted(mc.by_partition(recs).items())}
    return f"enable_idempotence=True: {n} records once each, offsets dense from 0 {spread}"


async def s_consume_assign_seek(ctx: Ctx) -> str:
    n, start = mc.SEEK_COUNT, mc.SEEK_TO
    await send(ctx, [dict(partition=0, value=mc.value(i)) for i in range(n)])
    cons = await consumer(ctx, auto_offset_reset="none")
    try:
        tp = TopicPartition(ctx.topic, 0)
        cons.assign([tp])
        cons.seek(tp, start)
        recs = await drain(ctx, cons, [0], n - start, "consume after seek")
    finally:
        await cons.stop()
    got = [(r.offset, r.value) for r in recs]
    want = [(i, mc.value(i)) for i in range(start, n)]
    mc.check_sequence(got, want, f"after seek({start})")
    return f"assign(p0) + seek({start}) without group: offsets {start}..{n - 1} in order"


async def s_consume_from_beginning(ctx: Ctx) -> str:
    n = mc.BEGINNING_COUNT
    await send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(n)])
    # Subscribed without a group: aiokafka assigns every partition itself, starting at
    # auto_offset_reset=earliest.
    cons = await consumer(ctx, ctx.topic, auto_offset_reset="earliest")
    try:
        recs = await drain(ctx, cons, [0, 1, 2], n, "consume from earliest")
    finally:
        await cons.stop()
    mc.check_exactly_once(recs, [mc.value(i) for i in range(n)])
    return f"auto_offset_reset=earliest (no group): all {n} records over 3 partitions"


async def s_consume_from_timestamp(ctx: Ctx) -> str:
    n, k = mc.TIMESTAMP_COUNT, mc.TIMESTAMP_LOOKUP_INDEX
    await send(ctx, [dict(partition=0, value=mc.value(i), timestamp_ms=mc.timestamp(i)) for i in range(n)])
    cons = await consumer(ctx, auto_offset_reset="none")
    try:
        tp = TopicPartition(ctx.topic, 0)
        found = await cons.offsets_for_times({tp: mc.timestamp(k)})
        hit = found.get(tp)
        assert hit is not None, f"offsets_for_times({mc.timestamp(k)}) found nothing: {found}"
        assert hit.offset == k, f"offsets_for_times({mc.timestamp(k)}) = {hit}, want offset {k}"
        cons.assign([tp])
        cons.seek(tp, hit.offset)
        recs = await drain(ctx, cons, [0], 1, "consume from the looked-up offset")
    finally:
        await cons.stop()
    first = recs[0]
    assert (first.offset, first.value) == (k, mc.value(k)), f"first record {first.short()}, want v{k} at {k}"
    return f"offsets_for_times(T0+{k * 1000}) = {k} (ts {hit.timestamp}), first value v{k}"


async def s_group(ctx: Ctx) -> str:
    first, second = mc.GROUP_FIRST, mc.GROUP_SECOND
    group = f"{ctx.topic}-{ctx.run_id}"
    await send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(first)])

    a = await consumer(ctx, ctx.topic, group_id=group)
    try:
        recs_a = await drain(ctx, a, [0, 1, 2], first, "consumer A")
        mc.check_exactly_once(recs_a, [mc.value(i) for i in range(first)])
        await a.commit()
        got = sorted([(p, await a.committed(TopicPartition(ctx.topic, p))) for p in range(3)])
        want = sorted((p, len(mc.by_partition(recs_a).get(p, []))) for p in range(3))
        assert got == want, f"committed {got}, want {want}"
    finally:
        await a.stop()

    await send(ctx, [dict(partition=i % 3, value=mc.value(i)) for i in range(first, first + second)])
    b = await consumer(ctx, ctx.topic, group_id=group)
    try:
        recs_b = await drain(ctx, b, [0, 1, 2], second, "consumer B")
    finally:
        await b.stop()
    mc.check_exactly_once(recs_b, [mc.value(i) for i in range(first, first + second)])
    return f"A read {first} and committed {got}; B read exactly the {second} new records"


async def s_admin_topics(ctx: Ctx) -> str:
    adm = await admin(ctx)
    new = ctx.topic + "-new"
    try:
        resp = await adm.create_topics([NewTopic(new, num_partitions=2, replication_factor=1)])
        check_errors("create_topics", resp.topic_errors)

        async def listed_with_two():
            # Only asked about `new` once it is listed, so that the request cannot create it.
            return new in await adm.list_topics() and await partitions_of(adm, new) == [0, 1]

        await mc.async_wait_until(listed_with_two, ctx.deadline, f"{new} listed with 2 partitions")
        resp = await adm.delete_topics([new])
        check_errors("delete_topics", resp.topic_error_codes)

        async def gone():
            return new not in await adm.list_topics()

        await mc.async_wait_until(gone, ctx.deadline, f"{new} to leave the metadata")
    finally:
        await adm.close()
    return f"created {new} (2 partitions), listed, deleted, no longer listed"


async def s_admin_configs(ctx: Ctx) -> str:
    adm = await admin(ctx)
    try:
        async def retention() -> str:
            responses = await adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctx.topic)])
            for resp in responses:
                for res in resp.to_object()["resources"]:
                    if res["resource_name"] != ctx.topic:
                        continue
                    assert res["error_code"] == 0, f"describe_configs error {res['error_code']} {res['error_message']}"
                    for entry in res["config_entries"]:
                        if entry["config_names"] == "retention.ms":
                            return entry["config_value"]
            raise AssertionError("retention.ms not described")

        before = await retention()
        assert before == mc.RETENTION_DEFAULT, f"retention.ms is {before!r}, want {mc.RETENTION_DEFAULT}"
        responses = await adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, ctx.topic,
                                                            {"retention.ms": mc.RETENTION_NEW})])
        for resp in responses:
            for res in resp.to_object()["resources"]:
                assert res["error_code"] == 0, f"alter_configs error {res['error_code']} {res['error_message']}"
        after = await retention()
    finally:
        await adm.close()
    assert after == mc.RETENTION_NEW, f"after alter_configs retention.ms is {after!r}, want {mc.RETENTION_NEW}"
    return f"retention.ms {before} -> alter_configs (AlterConfigs) -> {after}"


async def s_admin_partitions(ctx: Ctx) -> str:
    adm = await admin(ctx)
    try:
        await adm.create_partitions({ctx.topic: NewPartitions(5)})

        async def five():
            return await partitions_of(adm, ctx.topic) == [0, 1, 2, 3, 4]

        await mc.async_wait_until(five, ctx.deadline, f"{ctx.topic} with 5 partitions in the metadata")
    finally:
        await adm.close()
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
    mc.main("aiokafka", version, SCENARIOS, is_async=True)
