"""Topic administration with confluent-kafka's AdminClient (librdkafka): create with configs,
describe_configs (values and sources), incremental_alter_configs (SET, APPEND, SUBTRACT, DELETE,
validate_only, refusals), create_partitions, describe_cluster, delete_records and list_offsets."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from strom_harness import ck_admin, ck_consumer, ck_produce_all, ck_producer, ck_read_partition, wait_until
from test_java_admin import KAFKA_38_TOPIC_CONFIG_NAMES

TIMEOUT_S = 30

DYNAMIC_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
STATIC_BROKER = ConfigSource.STATIC_BROKER_CONFIG.value
DEFAULT = ConfigSource.DEFAULT_CONFIG.value
SOURCE_NAMES = {s.value: s.name for s in ConfigSource}

# Broker settings that topics without an override inherit.
BROKER = ("log.retention.hours=48", "message.max.bytes=2000000")


def _show(entry) -> str:
    return f"{entry.name}={entry.value!r} ({SOURCE_NAMES.get(entry.source, entry.source)})"


def create_topic(admin, topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            config=config or {})], request_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)

    def visible():
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        return md is not None and md.error is None and len(md.partitions) == partitions

    wait_until(visible, TIMEOUT_S, f"{topic} with {partitions} partitions in the metadata")


def describe(admin, restype, name: str) -> dict:
    resource = ConfigResource(restype, name)
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(timeout=TIMEOUT_S)


def alter(admin, topic: str, *ops: tuple[str, str | None, AlterConfigOpType], validate_only: bool = False):
    """incremental_alter_configs of one topic; returns the KafkaError it fails with, or None."""
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops
    ])
    future = admin.incremental_alter_configs([resource], validate_only=validate_only,
                                             request_timeout=TIMEOUT_S)[resource]
    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        return exc.args[0]
    return None


def assert_entry(configs: dict, name: str, value: str, source: int, where: str) -> None:
    entry = configs.get(name)
    assert entry is not None, f"{where}: {name} not reported"
    assert (entry.value, entry.source) == (value, source), (
        f"{where}: {_show(entry)}, expected {name}={value!r} ({SOURCE_NAMES[source]})"
    )


def test_admin_ck_create_and_describe_configs(broker, topic):
    b = broker(*BROKER)
    admin = ck_admin(b)
    overrides = {"retention.ms": "3600000", "cleanup.policy": "delete", "segment.bytes": "1048576"}
    create_topic(admin, topic, 2, overrides)
    plain = f"{topic}-plain"
    create_topic(admin, plain, 1)

    configs = describe(admin, ResourceType.TOPIC, topic)
    missing = [n for n in KAFKA_38_TOPIC_CONFIG_NAMES if n not in configs]
    assert not missing, f"describe_configs({topic}) does not report {missing}; reported {sorted(configs)}"
    plain_configs = describe(admin, ResourceType.TOPIC, plain)
    assert sorted(plain_configs) == sorted(configs)

    for name, entry in configs.items():
        assert not entry.is_read_only and not entry.is_sensitive, f"{_show(entry)}: read-only or sensitive"
        if name in overrides:
            assert_entry(configs, name, overrides[name], DYNAMIC_TOPIC, f"describe_configs({topic})")
            assert not entry.is_default, f"{_show(entry)} is_default"
        else:
            assert entry.source in (DEFAULT, STATIC_BROKER), f"describe_configs({topic}): {_show(entry)}"
            other = plain_configs[name]
            assert (entry.value, entry.source) == (other.value, other.source), (
                f"{_show(entry)} on {topic}, {_show(other)} on {plain} (no overrides)"
            )

    where = f"describe_configs({plain})"
    assert_entry(plain_configs, "cleanup.policy", "delete", DEFAULT, where)
    assert_entry(plain_configs, "segment.bytes", "1073741824", DEFAULT, where)
    assert_entry(plain_configs, "compression.type", "producer", DEFAULT, where)
    assert_entry(plain_configs, "max.message.bytes", "2000000", STATIC_BROKER, where + " (message.max.bytes=2000000)")
    assert plain_configs["cleanup.policy"].is_default
    # log.retention.hours=48: the broker's value. (Kafka 3.8 reports its source as DEFAULT_CONFIG
    # when only log.retention.hours is set, STATIC_BROKER_CONFIG would be as good.)
    retention = plain_configs["retention.ms"]
    assert retention.value == str(48 * 3_600_000), f"{where}: {_show(retention)}, expected 172800000"
    assert retention.source in (DEFAULT, STATIC_BROKER), f"{where}: {_show(retention)}"

    # librdkafka asks for synonyms: the override is the first.
    synonyms = configs["retention.ms"].synonyms
    assert "retention.ms" in synonyms and synonyms["retention.ms"].value == "3600000", (
        f"retention.ms of {topic}: synonyms {synonyms}"
    )

    # The broker resource: the broker's own properties.
    node_id = describe_cluster_node_id(admin)
    broker_configs = describe(admin, ResourceType.BROKER, str(node_id))
    assert_entry(broker_configs, "message.max.bytes", "2000000", STATIC_BROKER, f"describe_configs(broker {node_id})")

    resource = ConfigResource(ResourceType.TOPIC, f"{topic}-missing")
    future = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource]
    try:
        future.result(timeout=TIMEOUT_S)
        raise AssertionError("describe_configs of an unknown topic succeeded")
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, exc


def describe_cluster_node_id(admin) -> int:
    desc = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert len(desc.nodes) == 1, f"describe_cluster: nodes {[(n.id, n.host, n.port) for n in desc.nodes]}"
    return desc.nodes[0].id


def test_admin_ck_incremental_alter_configs(broker, topic):
    b = broker(*BROKER)
    admin = ck_admin(b)
    create_topic(admin, topic, 1, {"cleanup.policy": "delete"})
    where = f"describe_configs({topic})"
    before = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert before.value == "172800000" and before.source != DYNAMIC_TOPIC, f"{where}: {_show(before)}"

    assert alter(admin, topic, ("retention.ms", "7200000", AlterConfigOpType.SET)) is None
    assert_entry(describe(admin, ResourceType.TOPIC, topic), "retention.ms", "7200000", DYNAMIC_TOPIC,
                 f"{where} after SET retention.ms")

    assert alter(admin, topic, ("cleanup.policy", "compact", AlterConfigOpType.APPEND)) is None
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert_entry(configs, "cleanup.policy", "delete,compact", DYNAMIC_TOPIC, f"{where} after APPEND compact")
    assert_entry(configs, "retention.ms", "7200000", DYNAMIC_TOPIC, f"{where} after APPEND compact")

    assert alter(admin, topic, ("cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)) is None
    assert_entry(describe(admin, ResourceType.TOPIC, topic), "cleanup.policy", "delete", DYNAMIC_TOPIC,
                 f"{where} after SUBTRACT compact")

    assert alter(admin, topic, ("retention.ms", None, AlterConfigOpType.DELETE)) is None
    after = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (after.value, after.source) == (before.value, before.source), (
        f"{where} after DELETE retention.ms: {_show(after)}, expected {_show(before)}"
    )

    snapshot = {n: (e.value, e.source) for n, e in describe(admin, ResourceType.TOPIC, topic).items()}
    for ops in [
        [("retention.ms", "1000", AlterConfigOpType.APPEND)],
        [("retention.ms", "soon", AlterConfigOpType.SET)],
        [("no.such.config", "1", AlterConfigOpType.SET)],
    ]:
        err = alter(admin, topic, *ops)
        assert err is not None and err.code() == KafkaError.INVALID_CONFIG, (
            f"incremental_alter_configs({ops}): expected INVALID_CONFIG, got {err}"
        )
        now = {n: (e.value, e.source) for n, e in describe(admin, ResourceType.TOPIC, topic).items()}
        assert now == snapshot, f"the refused {ops} changed {[(n, snapshot[n], now.get(n)) for n in snapshot if now.get(n) != snapshot[n]]}"

    err = alter(admin, topic, ("retention.ms", "1", AlterConfigOpType.SET),
                ("cleanup.policy", "compact", AlterConfigOpType.APPEND), validate_only=True)
    assert err is None, f"validate_only of a valid change: {err}"
    now = {n: (e.value, e.source) for n, e in describe(admin, ResourceType.TOPIC, topic).items()}
    assert now == snapshot, "validate_only changed the topic's configs"
    err = alter(admin, topic, ("retention.ms", "1", AlterConfigOpType.APPEND), validate_only=True)
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, f"validate_only of an invalid change: {err}"


def test_admin_ck_create_partitions(broker, topic):
    b = broker()
    admin = ck_admin(b)
    create_topic(admin, topic, 3)
    futures = admin.create_partitions([NewPartitions(topic, 6)], request_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)

    def six():
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        return md is not None and len(md.partitions) == 6

    wait_until(six, TIMEOUT_S, f"{topic} with 6 partitions in the metadata")

    producer = ck_producer(b)
    records = [dict(topic=topic, partition=p, key=b"k%d" % i, value=b"p%d-%d" % (p, i)) for p in (3, 4, 5)
               for i in range(5)]
    results = ck_produce_all(producer, records)
    assert [(err, part, off) for err, part, off in results] == [(None, r["partition"], i % 5)
                                                                 for i, r in enumerate(records)], results
    consumer = ck_consumer(b)
    for p in (3, 4, 5):
        msgs = ck_read_partition(consumer, topic, p, OFFSET_BEGINNING)
        assert [(m.offset(), m.value()) for m in msgs] == [(i, b"p%d-%d" % (p, i)) for i in range(5)]

    for count, what in [(4, "shrinking to 4"), (6, "keeping 6")]:
        future = admin.create_partitions([NewPartitions(topic, count)], request_timeout=TIMEOUT_S)[topic]
        try:
            future.result(timeout=TIMEOUT_S)
            raise AssertionError(f"create_partitions {what} succeeded")
        except KafkaException as exc:
            assert exc.args[0].code() == KafkaError.INVALID_PARTITIONS, f"create_partitions {what}: {exc}"


def test_admin_ck_describe_cluster(broker):
    b = broker()
    admin = ck_admin(b)
    desc = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert desc.cluster_id, f"describe_cluster: cluster id {desc.cluster_id!r}"
    assert [(n.host, n.port) for n in desc.nodes] == [("127.0.0.1", b.port)], [(n.id, n.host, n.port)
                                                                               for n in desc.nodes]
    assert desc.controller is not None and desc.controller.id == desc.nodes[0].id, desc.controller
    assert admin.list_topics(timeout=10).cluster_id == desc.cluster_id


def test_admin_ck_delete_records_and_list_offsets(broker, topic):
    b = broker()
    admin = ck_admin(b)
    create_topic(admin, topic, 2)
    producer = ck_producer(b)
    results = ck_produce_all(producer, [dict(topic=topic, partition=0, value=b"v%d" % i) for i in range(100)])
    assert [off for _, _, off in results] == list(range(100))

    tp = TopicPartition(topic, 0, 40)
    deleted = admin.delete_records([tp], request_timeout=TIMEOUT_S)
    (key, future), = deleted.items()
    low = future.result(timeout=TIMEOUT_S).low_watermark
    assert low == 40, f"delete_records before 40: low watermark {low}"

    def offsets(spec):
        tp0 = TopicPartition(topic, 0)
        return admin.list_offsets({tp0: spec}, request_timeout=TIMEOUT_S)[tp0].result(timeout=TIMEOUT_S).offset

    assert (offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())) == (40, 100)
    tp1 = TopicPartition(topic, 1)
    assert admin.list_offsets({tp1: OffsetSpec.earliest()})[tp1].result(timeout=TIMEOUT_S).offset == 0

    consumer = ck_consumer(b)
    low_w, high_w = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    assert (low_w, high_w) == (40, 100)
    msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, b"v%d" % i) for i in range(40, 100)]

    # Past the high watermark: OFFSET_OUT_OF_RANGE, nothing moves.
    future = admin.delete_records([TopicPartition(topic, 0, 101)], request_timeout=TIMEOUT_S)
    (_, future), = future.items()
    try:
        future.result(timeout=TIMEOUT_S)
        raise AssertionError("delete_records past the high watermark succeeded")
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, exc
    assert offsets(OffsetSpec.earliest()) == 40


def test_admin_ck_log_append_time_and_topic_compression(broker, topic):
    """message.timestamp.type=LogAppendTime stamps records with the broker's time, and
    compression.type=zstd recompresses what an uncompressed producer sends; consumers see the
    records unchanged otherwise. Changing the topic back to CreateTime applies to new records."""
    import time

    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    from confluent_kafka.admin import NewTopic

    b = broker()
    admin = ck_admin(b)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "message.timestamp.type": "LogAppendTime", "compression.type": "zstd"})])[topic].result(30)
    producer = ck_producer(b, **{"compression.type": "none"})
    before = int(time.time() * 1000)
    values = [f"value {i} ".encode() * 20 for i in range(50)]
    ck_produce_all(producer, [{"key": b"k", "value": v, "timestamp": 1_000} for v in values], topic=topic)
    after = int(time.time() * 1000)
    consumer = ck_consumer(b)
    msgs = ck_read_partition(consumer, topic, 0, OFFSET_BEGINNING, expect_count=len(values))
    assert [m.value() for m in msgs] == values
    for m in msgs:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, m.timestamp()
    # Stored compressed: far smaller than the 50 x ~180 bytes sent.
    size = sum(p.stat().st_size for p in b.segment_files(topic))
    assert size < sum(len(v) for v in values) / 2, f"{size} bytes on disk"
    # Back to CreateTime: new records keep the producer's timestamp.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    r = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(30)
    ck_produce_all(producer, [{"key": b"k", "value": b"late", "timestamp": 5_000}], topic=topic)
    last = ck_read_partition(consumer, topic, 0, len(values), expect_count=1)[0]
    assert last.timestamp() == (TIMESTAMP_CREATE_TIME, 5_000), last.timestamp()
