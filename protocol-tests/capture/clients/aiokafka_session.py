"""An aiokafka session for the capture proxy: run with target/compat-venv/bin/python.

    aiokafka_session.py BOOTSTRAP PREFIX

AIOKafkaAdminClient create_topics; a producer (acks=all); a consumer in a group that commits;
AIOKafkaAdminClient list/describe groups; delete_topics last. A failing step is reported and the
session goes on; the exit code is 1 if any failed.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TOPIC = f"{PREFIX}-topic"
GROUP = f"{PREFIX}-group"
PARTITIONS = 3
RECORDS = 30
TIMEOUT = 20.0
failures = 0


async def step(name, coro_fn):
    global failures
    try:
        result = await asyncio.wait_for(coro_fn(), TIMEOUT + 10)
        print(f"ok   {name}: {result!r}"[:300], flush=True)
        return result
    except Exception as exc:  # noqa: BLE001 - reported, the session goes on
        failures += 1
        print(f"FAIL {name}: {exc!r}"[:500], flush=True)
        return None


async def main() -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="capture-aiokafka-admin")
    await admin.start()
    try:
        await step("create_topics", lambda: admin.create_topics(
            [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]))

        async def produce():
            p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, client_id="capture-aiokafka-producer",
                                 acks="all", linger_ms=5)
            await p.start()
            try:
                futures = [await p.send(TOPIC, key=f"k{i}".encode(), value=f"value-{i}".encode(),
                                        partition=i % PARTITIONS, headers=[("h", b"1")])
                           for i in range(RECORDS)]
                return len([await f for f in futures])
            finally:
                await p.stop()

        await step("produce", produce)

        async def consume():
            c = AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, client_id="capture-aiokafka-consumer",
                                 group_id=GROUP, auto_offset_reset="earliest", enable_auto_commit=False)
            await c.start()
            try:
                got = 0
                loop = asyncio.get_running_loop()
                deadline = loop.time() + TIMEOUT
                while got < RECORDS and loop.time() < deadline:
                    batches = await c.getmany(timeout_ms=500)
                    got += sum(len(r) for r in batches.values())
                await c.commit()
                committed = [await c.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)]
                if got != RECORDS:
                    raise RuntimeError(f"consumed {got} of {RECORDS}")
                return got, committed
            finally:
                await c.stop()

        await step("consume in a group + commit", consume)
        await step("list_consumer_groups", lambda: admin.list_consumer_groups())
        await step("describe_consumer_groups", lambda: admin.describe_consumer_groups([GROUP]))
        await step("list_consumer_group_offsets", lambda: admin.list_consumer_group_offsets(GROUP))
        await step("delete_topics", lambda: admin.delete_topics([TOPIC]))
    finally:
        await admin.close()
    print("OK" if failures == 0 else f"{failures} step(s) failed", flush=True)
    return 1 if failures else 0


sys.exit(asyncio.run(main()))
