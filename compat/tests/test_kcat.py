"""kcat (Debian's package, librdkafka 2.0.2) against strom: metadata, bulk produce/consume."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed: run scripts/setup-clients")


def kcat(*args: str, input_bytes: bytes | None = None, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            [KCAT, *args], input=input_bytes, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"kcat {' '.join(args)} did not finish within {timeout_s:.0f} s; "
            f"stderr so far: {(exc.stderr or b'')[-2000:]!r}"
        ) from None
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\nstderr: {proc.stderr.decode(errors='replace')[-3000:]}"
    )
    return proc


def test_metadata_lists_broker_and_topics(broker, topic):
    b = broker("num.partitions=3")
    # Produce one message so that the topic exists (auto-created with num.partitions).
    kcat("-P", "-b", b.bootstrap, "-t", topic, input_bytes=b"hello\n")
    out = kcat("-L", "-b", b.bootstrap, "-t", topic).stdout.decode()
    assert re.search(r"^ 1 brokers:\s*$", out, re.M), out
    assert re.search(rf"broker -?\d+ at 127\.0\.0\.1:{b.port}", out), out
    assert f'topic "{topic}" with 3 partitions:' in out, out
    for p in range(3):
        assert re.search(rf"partition {p}, leader -?\d+, replicas: ", out), out
    # The unfiltered listing shows it too.
    everything = kcat("-L", "-b", b.bootstrap).stdout.decode()
    assert f'topic "{topic}" with 3 partitions:' in everything, everything


def _value(i: int) -> bytes:
    # Printable bytes without the key delimiter ':' or a newline; varied length.
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~"
    n = (i * 7919) % 97
    return bytes(alphabet[(i + j * 31) % len(alphabet)] for j in range(n))


@pytest.mark.slow
def test_100k_lines_three_partitions_round_trip(broker, topic):
    b = broker("num.partitions=3")
    count = 100_000
    keys = [f"key-{i}".encode() for i in range(count)]
    values = [b"v%d|" % i + _value(i) for i in range(count)]
    payload = b"".join(k + b":" + v + b"\n" for k, v in zip(keys, values))
    kcat("-P", "-b", b.bootstrap, "-t", topic, "-K:", "-X", "linger.ms=20", input_bytes=payload, timeout_s=180)

    out = kcat(
        "-C", "-b", b.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q",
        "-f", "%p %o %k:%s\n", timeout_s=180,
    ).stdout

    index_of = {k: i for i, k in enumerate(keys)}
    per_partition: dict[int, list[tuple[int, int]]] = {}
    seen = set()
    for line in out.split(b"\n"):
        if not line:
            continue
        head, _, rest = line.partition(b" ")
        off, _, kv = rest.partition(b" ")
        key, _, value = kv.partition(b":")
        assert key in index_of, f"unknown key in consumed line {line[:200]!r}"
        i = index_of[key]
        assert value == values[i], f"value of {key!r} differs: {value[:100]!r} vs {values[i][:100]!r}"
        assert i not in seen, f"{key!r} consumed twice"
        seen.add(i)
        per_partition.setdefault(int(head), []).append((int(off), i))

    assert len(seen) == count, f"consumed {len(seen)} of {count} distinct records"
    assert sorted(per_partition) == [0, 1, 2], f"partitions with data: {sorted(per_partition)}"
    for p, rows in per_partition.items():
        offsets = [o for o, _ in rows]
        assert offsets == list(range(len(rows))), f"partition {p}: offsets not dense from 0"
        order = [i for _, i in rows]
        assert order == sorted(order), f"partition {p}: records not in produce order"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_small_round_trip_with_api_version_request(broker, topic, codec):
    b = broker()
    lines = [b"msg-%d-%s" % (i, codec.encode()) for i in range(20)]
    kcat(
        "-P", "-b", b.bootstrap, "-t", topic, "-p", "0", "-z", codec,
        "-X", "api.version.request=true", input_bytes=b"\n".join(lines) + b"\n",
    )
    out = kcat(
        "-C", "-b", b.bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-c", str(len(lines)), "-e",
        "-X", "api.version.request=true", "-f", "%o %s\n",
    ).stdout
    got = [line.split(b" ", 1) for line in out.split(b"\n") if line]
    assert [int(o) for o, _ in got] == list(range(len(lines)))
    assert [v for _, v in got] == lines
