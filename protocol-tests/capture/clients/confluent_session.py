"""A confluent-kafka (librdkafka) session for the capture proxy: run with target/compat-venv/bin/python.

    confluent_session.py BOOTSTRAP PREFIX

AdminClient create_topics / describe_configs / create_partitions; an idempotent producer; a
consumer in a group that commits; AdminClient list_consumer_groups / describe_consumer_groups and a
few more admin calls; delete_topics last. Each step is reported; a failing step does not stop the
session (the point is the requests sent, not the results), but the exit code is 1 if any failed.
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TOPIC = f"{PREFIX}-topic"
GROUP = f"{PREFIX}-group"
RECORDS = 30
TIMEOUT = 20.0
failures = 0


def step(name, fn):
    global failures
    try:
        result = fn()
        print(f"ok   {name}: {result!r}"[:300], flush=True)
        return result
    except Exception as exc:  # noqa: BLE001 - reported, the session goes on
        failures += 1
        print(f"FAIL {name}: {exc!r}"[:500], flush=True)
        return None


def wait_all(futures: dict):
    return {str(k): f.result(timeout=TIMEOUT) for k, f in futures.items()}


admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "client.id": "capture-confluent-admin"})
step("create_topics", lambda: wait_all(admin.create_topics(
    [NewTopic(TOPIC, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})],
    operation_timeout=10)))
step("describe_configs", lambda: {k: len(v) for k, v in wait_all(admin.describe_configs(
    [ConfigResource(ConfigResource.Type.TOPIC, TOPIC), ConfigResource(ConfigResource.Type.BROKER, "1")])).items()})
step("create_partitions", lambda: wait_all(admin.create_partitions([NewPartitions(TOPIC, 4)], operation_timeout=10)))
step("list_topics", lambda: sorted(admin.list_topics(timeout=TIMEOUT).topics))
step("incremental_alter_configs", lambda: wait_all(admin.incremental_alter_configs([ConfigResource(
    ConfigResource.Type.TOPIC, TOPIC,
    incremental_configs=[ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])])))
step("describe_cluster", lambda: admin.describe_cluster().result(timeout=TIMEOUT).cluster_id)
step("describe_topics", lambda: {k: len(v.partitions) for k, v in wait_all(
    admin.describe_topics(TopicCollection([TOPIC]))).items()})

producer = Producer({"bootstrap.servers": BOOTSTRAP, "client.id": "capture-confluent-producer",
                     "enable.idempotence": True, "linger.ms": 5})


def produce():
    delivered = []
    for i in range(RECORDS):
        producer.produce(TOPIC, key=f"k{i}".encode(), value=f"value-{i}".encode(), partition=i % 4,
                         headers=[("h", b"1")], on_delivery=lambda err, msg: delivered.append(err))
    left = producer.flush(TIMEOUT)
    errors = [e for e in delivered if e is not None]
    if left or errors or len(delivered) != RECORDS:
        raise RuntimeError(f"{left} undelivered, errors {errors[:3]}")
    return len(delivered)


step("produce (idempotent)", produce)


def consume():
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "client.id": "capture-confluent-consumer",
                  "group.id": GROUP, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([TOPIC])
        got = 0
        deadline = time.monotonic() + TIMEOUT
        while got < RECORDS and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got += 1
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(TOPIC, p) for p in range(4)], timeout=TIMEOUT)
        if got != RECORDS:
            raise RuntimeError(f"consumed {got} of {RECORDS}")
        return got, [tp.offset for tp in committed]
    finally:
        c.close()


step("consume in a group + commit", consume)
step("list_consumer_groups", lambda: [g.group_id for g in admin.list_consumer_groups().result(timeout=TIMEOUT).valid])
step("describe_consumer_groups", lambda: {k: str(v.state) for k, v in wait_all(
    admin.describe_consumer_groups([GROUP])).items()})
step("list_consumer_group_offsets", lambda: [str(r.result(timeout=TIMEOUT)) for r in admin.list_consumer_group_offsets(
    [ConsumerGroupTopicPartitions(GROUP)]).values()][:1])
step("delete_consumer_groups", lambda: wait_all(admin.delete_consumer_groups([GROUP], request_timeout=10)))
step("delete_topics", lambda: wait_all(admin.delete_topics([TOPIC], operation_timeout=10)))
print("OK" if failures == 0 else f"{failures} step(s) failed", flush=True)
sys.exit(1 if failures else 0)
