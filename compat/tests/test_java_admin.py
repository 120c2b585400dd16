"""Topic and log administration with the official Java client's AdminClient (kafka-clients 4.3.0),
via compat/java/StromAdminCheck: configs (describe with sources, synonyms and documentation,
incremental alter), partitions, the cluster, DeleteRecords, DescribeLogDirs, DescribeProducers,
retention applied live, and OffsetForLeaderEpoch through the consumer's position validation."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from strom_harness import JARS_DIR, JAVA_CLASSES_DIR

JAVA = shutil.which("java")

# The names of the configs the Java AdminClient reports for a topic on Apache Kafka 3.8
# (describeConfigs of a TOPIC resource); later versions add a few (remote.log.copy.disable and
# remote.log.delete.on.disable in 3.9). Every one of these must be reported.
KAFKA_38_TOPIC_CONFIG_NAMES = [
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
]

# Broker settings that topics without an override inherit: retention.ms from log.retention.hours
# (48 h = 172,800,000 ms) and max.message.bytes from message.max.bytes (STATIC_BROKER_CONFIG).
BROKER_RETENTION_HOURS = 48
BROKER_MAX_MESSAGE_BYTES = 2_000_000
CONFIG_BROKER = (f"log.retention.hours={BROKER_RETENTION_HOURS}", f"message.max.bytes={BROKER_MAX_MESSAGE_BYTES}")
BROKER_ARGS = ("--broker-retention-hours", str(BROKER_RETENTION_HOURS),
               "--broker-max-message-bytes", str(BROKER_MAX_MESSAGE_BYTES))


def run_admin_check(command: str, b, topic: str, *extra: str, timeout_s: int = 90) -> str:
    # scripts/setup-clients installs a JDK when there is none: a missing java is a failure.
    assert JAVA is not None, "no java on PATH: run scripts/setup-clients"
    class_file = JAVA_CLASSES_DIR / "StromAdminCheck.class"
    assert class_file.is_file(), f"{class_file} missing: run scripts/setup-clients"
    classpath = os.pathsep.join([str(JAVA_CLASSES_DIR), str(JARS_DIR / "*")])
    cmd = [JAVA, "-cp", classpath, "StromAdminCheck", command, b.bootstrap, topic,
           "--timeout-s", str(timeout_s), *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"StromAdminCheck {command} did not exit within {timeout_s + 30} s; "
            f"stdout: {(exc.stdout or b'')[-3000:]!r} stderr: {(exc.stderr or b'')[-3000:]!r}"
        ) from None
    out = proc.stdout.decode(errors="replace")
    output = out + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"StromAdminCheck {command} exited {proc.returncode}:\n{output[-6000:]}"
    assert out.rstrip().endswith("OK"), output
    return out


def test_java_admin_describe_configs(broker, topic):
    """createTopics with retention.ms, cleanup.policy=delete and segment.bytes: reported as
    DYNAMIC_TOPIC_CONFIG (in the CreateTopics result too), every other config as on a topic without
    overrides, DEFAULT_CONFIG or STATIC_BROKER_CONFIG with the broker's value; every config name
    Kafka 3.8 reports; types; includeSynonyms and includeDocumentation; the broker resource."""
    b = broker(*CONFIG_BROKER)
    run_admin_check("configs", b, topic, "--names", ",".join(KAFKA_38_TOPIC_CONFIG_NAMES), *BROKER_ARGS)


def test_java_admin_incremental_alter_configs(broker, topic):
    """SET retention.ms, APPEND compact to cleanup.policy (delete,compact), SUBTRACT it, DELETE
    retention.ms (back to the broker's value); APPEND/SUBTRACT on a non-list config, a bad value and
    an unknown name fail with InvalidConfigurationException and change nothing; validateOnly."""
    b = broker(*CONFIG_BROKER)
    run_admin_check("alter", b, topic, *BROKER_ARGS)


def test_java_admin_create_partitions(broker, topic):
    """createPartitions 3 -> 6; records produced to partitions 3, 4, 5 read back; shrinking or
    keeping the count fails with InvalidPartitionsException."""
    b = broker()
    run_admin_check("partitions", b, topic)


def test_java_admin_describe_cluster(broker, topic):
    b = broker()
    run_admin_check("cluster", b, topic)


def test_java_admin_delete_records(broker, topic):
    """deleteRecords moves the log start offset: the low watermark is returned, listOffsets earliest
    and a consumer from the beginning start there."""
    b = broker()
    run_admin_check("delete-records", b, topic)


def test_java_admin_describe_log_dirs(broker, topic):
    b = broker()
    run_admin_check("log-dirs", b, topic)


def test_java_admin_describe_producers(broker, topic):
    b = broker()
    run_admin_check("producers", b, topic)


@pytest.mark.slow
def test_java_admin_retention_ms_applies_live(broker, topic):
    """Lowering retention.ms of a live topic (segment.bytes=16384, 300 records of 1 KB) makes its old
    segments go within seconds: listOffsets earliest advances, the first segment file is gone."""
    b = broker("log.retention.check.interval.ms=500")
    out = run_admin_check("retention", b, topic)
    start = int(next(l for l in out.splitlines() if l.startswith("LOG_START ")).split()[1])
    remaining = [p.name for p in b.segment_files(topic)]
    assert f"{0:020d}.log" not in remaining, (
        f"the log start offset is {start} but the first segment is still on disk: {remaining}"
    )


def test_java_admin_offset_for_leader_epoch(broker, topic):
    """The consumer validates a position that carries a leader epoch with OffsetForLeaderEpoch: one
    inside the log passes, one past the log end is reported as a truncation (LogTruncationException
    at the log end) or, with auto.offset.reset=earliest, reset to the log end."""
    b = broker()
    run_admin_check("epoch", b, topic)
