"""Two named listeners, as a docker-compose file sets them (one address for containers, one for
the host): kcat, confluent-kafka and the Java client each bootstrap through one listener, are
told that listener's advertised address, and produce and consume through it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import types

import pytest

from strom_harness import (
    JARS_DIR,
    JAVA_CLASSES_DIR,
    Broker,
    ck_admin,
    ck_consumer,
    ck_produce_all,
    ck_producer,
    ck_read_partition,
    free_port,
)

KCAT = shutil.which("kcat")
JAVA = shutil.which("java")


@pytest.fixture
def two_listeners(request, tmp_path):
    """A broker with CONTAINER on 127.0.0.1:<p1> advertised as 127.0.0.1:<p1> and HOST on
    127.0.0.1:<p2> advertised as localhost:<p2>. Returns {name: advertised "host:port"}."""
    b = Broker(tmp_path / "broker")
    host_port = free_port()
    advertised = {"CONTAINER": f"127.0.0.1:{b.port}", "HOST": f"localhost:{host_port}"}
    b.extra_overrides = [
        f"listeners=CONTAINER://127.0.0.1:{b.port},HOST://127.0.0.1:{host_port}",
        f"advertised.listeners=CONTAINER://{advertised['CONTAINER']},HOST://{advertised['HOST']}",
        "listener.security.protocol.map=CONTAINER:PLAINTEXT,HOST:PLAINTEXT",
        "inter.broker.listener.name=CONTAINER",
    ]
    request.node._strom_brokers = [b]
    b.start()
    try:
        yield advertised
    finally:
        b.stop()


def _run(cmd: list[str], input_bytes: bytes | None = None, timeout_s: float = 120.0) -> str:
    try:
        proc = subprocess.run(cmd, input=input_bytes, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{cmd[0]} did not finish within {timeout_s:.0f} s: {(exc.stderr or b'')[-2000:]!r}")
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{out[-3000:]}\n{proc.stderr.decode(errors='replace')[-3000:]}"
    return out


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed: run scripts/setup-clients")
@pytest.mark.parametrize("listener", ["CONTAINER", "HOST"])
def test_kcat_through_its_listener(two_listeners, topic, listener):
    bootstrap = two_listeners[listener]
    metadata = _run([KCAT, "-L", "-b", bootstrap])
    brokers = re.findall(r"broker -?\d+ at (\S+)", metadata)
    assert brokers == [bootstrap], metadata
    lines = b"".join(b"line-%d\n" % i for i in range(200))
    _run([KCAT, "-P", "-b", bootstrap, "-t", topic], input_bytes=lines)
    out = _run([KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q"])
    assert out.encode() == lines


@pytest.mark.parametrize("listener", ["CONTAINER", "HOST"])
def test_confluent_kafka_through_its_listener(two_listeners, topic, listener):
    bootstrap = two_listeners[listener]
    via = types.SimpleNamespace(bootstrap=bootstrap)
    metadata = ck_admin(via).list_topics(timeout=20)
    assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [bootstrap]
    results = ck_produce_all(ck_producer(via), [{"value": b"v%d" % i} for i in range(300)], topic=topic)
    assert all(err is None for err, _, _ in results), results[:3]
    from confluent_kafka import OFFSET_BEGINNING

    read = ck_read_partition(ck_consumer(via), topic, 0, OFFSET_BEGINNING, expect_count=300)
    assert [m.value() for m in read] == [b"v%d" % i for i in range(300)]


@pytest.mark.parametrize("listener", ["CONTAINER", "HOST"])
def test_java_client_through_its_listener(two_listeners, topic, listener):
    assert JAVA is not None, "no java on PATH: run scripts/setup-clients"
    assert (JAVA_CLASSES_DIR / "StromClientCheck.class").is_file(), "run scripts/setup-clients"
    bootstrap = two_listeners[listener]
    classpath = os.pathsep.join([str(JAVA_CLASSES_DIR), str(JARS_DIR / "*")])
    out = _run([JAVA, "-cp", classpath, "StromClientCheck", bootstrap, topic, "500", "--timeout-s", "90"])
    assert f"leader {bootstrap}\n" in out, out
    assert "OK" in out, out
