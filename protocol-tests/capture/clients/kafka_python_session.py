"""A kafka-python session for the capture proxy: run with target/compat-venv/bin/python.

    kafka_python_session.py BOOTSTRAP PREFIX

KafkaAdminClient create_topics; a producer (acks=all); a consumer in a group that commits;
KafkaAdminClient list/describe groups and committed offsets; delete_topics last. A failing step is
reported and the session goes on; the exit code is 1 if any failed.
"""

from __future__ import annotations

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TOPIC = f"{PREFIX}-topic"
GROUP = f"{PREFIX}-group"
PARTITIONS = 3
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


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="capture-kafka-python-admin",
                         request_timeout_ms=20000)
step("create_topics", lambda: str(admin.create_topics(
    [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=10000))[:80])
step("describe_configs", lambda: len(admin.describe_configs(
    [ConfigResource(ConfigResourceType.TOPIC, TOPIC)])))
step("create_partitions", lambda: str(admin.create_partitions({TOPIC: NewPartitions(PARTITIONS + 1)}))[:80])


def produce():
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, client_id="capture-kafka-python-producer", acks="all",
                      linger_ms=5)
    try:
        futures = [p.send(TOPIC, key=f"k{i}".encode(), value=f"value-{i}".encode(),
                          partition=i % (PARTITIONS + 1), headers=[("h", b"1")]) for i in range(RECORDS)]
        p.flush(timeout=TIMEOUT)
        return len([f.get(timeout=TIMEOUT) for f in futures])
    finally:
        p.close(timeout=5)


step("produce", produce)


def consume():
    c = KafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, client_id="capture-kafka-python-consumer",
                      group_id=GROUP, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got = 0
        deadline = time.monotonic() + TIMEOUT
        while got < RECORDS and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += len(records)
        c.commit()
        committed = [c.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS + 1)]
        if got != RECORDS:
            raise RuntimeError(f"consumed {got} of {RECORDS}")
        return got, committed
    finally:
        c.close()


step("consume in a group + commit", consume)
# kafka-python 3 names these list_groups / describe_groups / list_group_offsets (2.x: *_consumer_groups*).
step("list_groups", lambda: str(admin.list_groups())[:120])
step("describe_groups", lambda: str(admin.describe_groups([GROUP]))[:120])
step("list_group_offsets", lambda: str(admin.list_group_offsets({GROUP: None}))[:120])
step("describe_cluster", lambda: str(admin.describe_cluster())[:120])
step("describe_topic_partitions", lambda: str(admin.describe_topic_partitions([TOPIC]))[:120])
step("delete_records", lambda: str(admin.delete_records({TopicPartition(TOPIC, 0): 2}, timeout_ms=10000))[:120])
step("describe_log_dirs", lambda: str(admin.describe_log_dirs())[:120])
step("delete_group_offsets", lambda: str(admin.delete_group_offsets(GROUP, [TopicPartition(TOPIC, 1)]))[:120])
step("delete_groups", lambda: str(admin.delete_groups([GROUP]))[:120])
step("delete_topics", lambda: str(admin.delete_topics([TOPIC], timeout_ms=10000))[:80])
admin.close()
print("OK" if failures == 0 else f"{failures} step(s) failed", flush=True)
sys.exit(1 if failures else 0)
