"""The official Java client (kafka-clients 4.3.0) against strom, via compat/java/StromClientCheck."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from strom_harness import JARS_DIR, JAVA_CLASSES_DIR

JAVA = shutil.which("java")


@pytest.mark.parametrize(
    "codec", ["none", *(pytest.param(c, marks=pytest.mark.slow) for c in ("gzip", "snappy", "lz4", "zstd"))]
)
def test_java_producer_defaults_and_consumer_seek(broker, topic, codec):
    # scripts/setup-clients installs a JDK when there is none: a missing java is a failure.
    assert JAVA is not None, "no java on PATH: run scripts/setup-clients"
    class_file = JAVA_CLASSES_DIR / "StromClientCheck.class"
    assert class_file.is_file(), f"{class_file} missing: run scripts/setup-clients"
    b = broker()
    classpath = os.pathsep.join([str(JAVA_CLASSES_DIR), str(JARS_DIR / "*")])
    cmd = [JAVA, "-cp", classpath, "StromClientCheck", b.bootstrap, topic, "3000",
           "--compression", codec, "--timeout-s", "90"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"java client did not exit within 120 s; stderr: {(exc.stderr or b'')[-3000:]!r}")
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"java client exited {proc.returncode}:\n{output[-5000:]}"
    assert "OK" in proc.stdout.decode(), output
