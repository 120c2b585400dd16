"""Exactly-once consume-transform-produce with the official Java client (kafka-clients 4.3), via
compat/java/StromTxnCheck: transactional producer, sendOffsetsToTransaction, aborted rounds,
read_committed / read_uncommitted consumers, fencing, and the admin transaction calls."""

from __future__ import annotations

import os
import shutil
import subprocess

from strom_harness import JARS_DIR, JAVA_CLASSES_DIR

JAVA = shutil.which("java")


def test_java_exactly_once_consume_transform_produce(broker, topic):
    assert JAVA is not None, "no java on PATH: run scripts/setup-clients"
    assert (JAVA_CLASSES_DIR / "StromTxnCheck.class").is_file(), "run scripts/setup-clients"
    b = broker()
    classpath = os.pathsep.join([str(JAVA_CLASSES_DIR), str(JARS_DIR / "*")])
    cmd = [JAVA, "-cp", classpath, "StromTxnCheck", b.bootstrap, topic, "--timeout-s", "90"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"java client did not exit within 120 s; stdout: {(exc.stdout or b'')[-3000:]!r}")
    output = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"StromTxnCheck exited {proc.returncode}:\n{output[-5000:]}\n{proc.stderr.decode(errors='replace')[-3000:]}"
    assert output.rstrip().endswith("OK"), output
