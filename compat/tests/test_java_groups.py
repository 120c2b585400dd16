"""Consumer groups with the official Java client (kafka-clients 4.3.0, classic group protocol), via
compat/java/StromGroupCheck: rebalancing and resuming from committed offsets, static membership,
and the AdminClient's group operations."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from strom_harness import JARS_DIR, JAVA_CLASSES_DIR

JAVA = shutil.which("java")

# A new group would otherwise wait 3 s (Kafka's default) for more members before its first
# rebalance; the checks do not depend on it.
NO_DELAY = "group.initial.rebalance.delay.ms=0"


def run_group_check(command: str, b, topic: str, group: str, *extra: str, timeout_s: int = 90) -> str:
    # scripts/setup-clients installs a JDK when there is none: a missing java is a failure.
    assert JAVA is not None, "no java on PATH: run scripts/setup-clients"
    class_file = JAVA_CLASSES_DIR / "StromGroupCheck.class"
    assert class_file.is_file(), f"{class_file} missing: run scripts/setup-clients"
    classpath = os.pathsep.join([str(JAVA_CLASSES_DIR), str(JARS_DIR / "*")])
    cmd = [JAVA, "-cp", classpath, "StromGroupCheck", command, b.bootstrap, topic, group,
           "--timeout-s", str(timeout_s), *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"StromGroupCheck {command} did not exit within {timeout_s + 30} s; "
            f"stdout: {(exc.stdout or b'')[-3000:]!r} stderr: {(exc.stderr or b'')[-3000:]!r}"
        ) from None
    out = proc.stdout.decode(errors="replace")
    output = out + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"StromGroupCheck {command} exited {proc.returncode}:\n{output[-6000:]}"
    assert out.rstrip().endswith("OK"), output
    return out


@pytest.mark.parametrize("restart", [False, True], ids=["same-broker", "after-restart"])
def test_java_groups_rebalance_and_resume_from_committed(broker, topic, restart):
    """Two subscribers split the partitions after a rebalance and commit; a new member of the group
    resumes exactly at the committed offsets, also after a broker restart (offsets read back from
    __consumer_offsets)."""
    b = broker(NO_DELAY)
    group = f"{topic}-group"
    run_group_check("rebalance", b, topic, group, "--partitions", "4")
    if restart:
        b.restart()
    run_group_check("resume", b, topic, group)


@pytest.mark.parametrize("static_leader", [True, False], ids=["static-leader", "static-follower"])
def test_java_groups_static_member_restart_without_rebalance(broker, topic, static_leader):
    """A static member (group.instance.id) closed and restarted within its session timeout takes its
    partitions back without a rebalance, whether it led the group or not."""
    b = broker(NO_DELAY)
    run_group_check("static", b, topic, f"{topic}-group", "--partitions", "4",
                    "--static-leader", "true" if static_leader else "false", timeout_s=120)


def test_java_groups_admin_client(broker, topic):
    """listGroups/listConsumerGroups with state filters, describeConsumerGroups,
    listConsumerGroupOffsets, deleteConsumerGroupOffsets and deleteConsumerGroups."""
    b = broker(NO_DELAY)
    run_group_check("admin", b, topic, f"{topic}-group")
