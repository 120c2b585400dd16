"""Debian's sarama 1.22 (Go; golang-github-shopify-sarama-dev built in GOPATH mode by
scripts/setup-clients) against strom, via compat/go/sarama_group_check.go: an old client's consumer
group (JoinGroup v1, SyncGroup v0, Heartbeat v0, OffsetCommit v1, OffsetFetch v1, LeaveGroup v0)
reads everything and commits, two members split the partitions, a new member resumes exactly at the
committed offsets."""

from __future__ import annotations

import re
import subprocess

from strom_harness import TARGET

SARAMA_GROUP_CHECK = TARGET / "compat-go" / "sarama_group_check"


def test_sarama_group_commits_rebalances_and_resumes(broker, topic):
    # scripts/setup-clients installs Go and sarama and builds the program: its absence is a failure.
    assert SARAMA_GROUP_CHECK.is_file(), f"{SARAMA_GROUP_CHECK} missing: run scripts/setup-clients"
    b = broker("group.initial.rebalance.delay.ms=0")
    timeout_s = 50
    cmd = [str(SARAMA_GROUP_CHECK), "-bootstrap", b.bootstrap, "-topic", topic, "-group", f"{topic}-group",
           "-records", "300", "-timeout-s", str(timeout_s), "-sarama-log"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 20, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"sarama_group_check did not exit within {timeout_s + 20} s; "
            f"stdout: {(exc.stdout or b'')[-3000:]!r} stderr: {(exc.stderr or b'')[-3000:]!r}"
        ) from None
    out = proc.stdout.decode(errors="replace")
    # stderr is sarama's own log (-sarama-log): context for a failure.
    err = proc.stderr.decode(errors="replace")
    report = f"{out}\n--- sarama's log (last lines) ---\n{err[-4000:]}"
    assert proc.returncode == 0, f"sarama_group_check exited {proc.returncode}:\n{report}"
    assert out.rstrip().endswith("OK"), report

    # Only sarama talked to this broker: a closed connection or any warning is sarama's doing
    # (e.g. a request version the broker does not serve).
    log_lines = b.log_path.read_text(errors="replace").splitlines()
    closing = [line for line in log_lines if "closing connection" in line]
    assert not closing, "the broker closed sarama's connections:\n" + "\n".join(closing[:20])
    warnings = [line for line in log_lines if re.search(r"\b(WARN|ERROR)\b", line)]
    assert not warnings, "the broker logged warnings while serving sarama:\n" + "\n".join(warnings[:20])
