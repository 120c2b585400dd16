"""Compatibility-matrix program for kcat (Debian's binary, on its own librdkafka), driven through
subprocess. See README.md.

    target/compat-venv/bin/python compat/matrix/kcat_matrix.py <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]

kcat reads back with -J (the JSON envelope), which carries keys, headers (as a flat
[name, value, ...] list, so repeated names stay), timestamps and their type, and offsets exactly.
kcat has no admin API (admin.* are n/a) and cannot set a record's timestamp when producing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import matrix_common as mc  # noqa: E402
from matrix_common import Ctx, NotApplicable, Rec  # noqa: E402

KCAT = os.environ.get("KCAT") or shutil.which("kcat")


def version() -> str:
    if not KCAT:
        raise RuntimeError("kcat not found on PATH")
    text = subprocess.run([KCAT, "-V"], capture_output=True, timeout=10, check=False).stdout.decode()
    m = re.search(r"Version (\S+) \(.*?librdkafka (\S+)", text)
    return f"{m.group(1)} (librdkafka {m.group(2)})" if m else text.strip().splitlines()[-1]


# --- running kcat -------------------------------------------------------------------------------


def _stderr_tail(err: bytes) -> str:
    """kcat's error lines ("% ERROR: ..."), else its last line."""
    lines = [l.strip() for l in err.decode(errors="replace").splitlines() if l.strip()]
    errors = [l for l in lines if "ERROR" in l]
    return " | ".join((errors or lines)[-2:])[-400:]


def kcat(ctx: Ctx, *args: str, input_bytes: bytes | None = None) -> bytes:
    """Runs kcat with `args` within the scenario's deadline; returns stdout, raises on failure."""
    assert KCAT, "kcat not found on PATH"
    cmd = [KCAT, *args]
    shown = " ".join(args)
    try:
        proc = subprocess.run(cmd, input=input_bytes, capture_output=True, check=False,
                              timeout=max(1.0, ctx.deadline.left()))
    except subprocess.TimeoutExpired as exc:
        err = _stderr_tail(exc.stderr or b"")
        raise AssertionError(f"kcat {shown} did not finish before the deadline; stderr: {err}") from None
    if proc.returncode != 0:
        err = _stderr_tail(proc.stderr)
        raise AssertionError(f"kcat {shown} exited {proc.returncode}: {err}")
    return proc.stdout


def produce(ctx: Ctx, lines: list[bytes], *opts: str) -> None:
    """One kcat -P run: each line one record (after -K, `key:value`; a line without ':' has a
    null key)."""
    for line in lines:
        assert b"\n" not in line, "test bug: newline in a produced line"
    kcat(ctx, "-P", "-b", ctx.bootstrap, "-t", ctx.topic, "-m", "10", *opts,
         input_bytes=b"".join(line + b"\n" for line in lines))


def _bytes(s) -> bytes | None:
    # kcat writes keys, values and header values as raw bytes inside the JSON strings (escaping
    # only control characters), so decoding the line with surrogateescape keeps any byte.
    return None if s is None else s.encode("utf-8", "surrogateescape")


def parse_envelopes(out: bytes) -> list[Rec]:
    recs = []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        flat = m.get("headers") or []
        headers = [(flat[i], _bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        create = {"create": True, "logappend": False}.get(m.get("tstype"))
        recs.append(Rec(m["partition"], m["offset"], _bytes(m.get("key")), _bytes(m.get("payload")),
                        headers, m.get("ts"), create))
    return recs


def consume(ctx: Ctx, *opts: str) -> list[Rec]:
    """One kcat -C run with the JSON envelope, until the end of the partitions read (-e)."""
    return parse_envelopes(kcat(ctx, "-C", "-b", ctx.bootstrap, "-t", ctx.topic, "-m", "10",
                                "-J", "-q", "-e", *opts))


def read_back(ctx: Ctx, expect: int) -> list[Rec]:
    """All partitions from the beginning; repeated (bounded) until `expect` records are there."""
    while True:
        recs = consume(ctx, "-o", "beginning")
        if len(recs) >= expect or ctx.deadline.left() < 2:
            return recs
        time.sleep(0.5)


def values(start: int, stop: int) -> list[bytes]:
    return [mc.value(i) for i in range(start, stop)]


def produce_spread(ctx: Ctx, start: int, stop: int) -> None:
    """Records start..stop-1, record i to partition i % 3 (one kcat run per partition)."""
    for p in range(3):
        produce(ctx, [mc.value(i) for i in range(start, stop) if i % 3 == p], "-p", str(p))


# --- scenarios ----------------------------------------------------------------------------------


def s_metadata(ctx: Ctx) -> str:
    md = json.loads(kcat(ctx, "-L", "-J", "-b", ctx.bootstrap, "-t", ctx.topic, "-m", "10"))
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    topics = {t["topic"]: t for t in md["topics"]}
    t = topics.get(ctx.topic)
    assert t is not None, f"{ctx.topic} not in the metadata listing ({sorted(topics)})"
    assert not t.get("error"), f"topic error {t['error']}"
    parts = {p["partition"]: p for p in t["partitions"]}
    assert sorted(parts) == [0, 1, 2], f"partitions {sorted(parts)}, want [0, 1, 2]"
    for i, p in parts.items():
        assert not p.get("error"), f"partition {i}: error {p['error']}"
        assert p["leader"] in brokers, f"partition {i}: leader {p['leader']} not among brokers {brokers}"
        assert brokers[p["leader"]] == ctx.bootstrap, \
            f"partition {i}: leader {p['leader']} at {brokers[p['leader']]}, bootstrap is {ctx.bootstrap}"
    return f"kcat -L -J: 3 partitions, leaders at {sorted(set(brokers[p['leader']] for p in parts.values()))}"


def s_produce_keys(ctx: Ctx) -> str:
    total = mc.KEYED_COUNT + mc.NULL_KEY_COUNT
    lines = [(mc.key_of(i) + b":" + mc.value(i)) if mc.key_of(i) is not None else mc.value(i)
             for i in range(total)]
    produce(ctx, lines, "-K", ":")
    return "-K ':' (lines without ':' have a null key): " + mc.check_keys(read_back(ctx, total))


def s_produce_headers(ctx: Ctx) -> str:
    # kcat -H takes "name=value" from the command line as a C string: the \x00 of
    # bin=\x00\xff\x01 cannot be passed. What can be expressed is still produced and checked, so a
    # broker fault shows as `fail`; when it round-trips, the cell is n/a for the missing \x00.
    n = 10
    sendable = [("h1", b"a"), ("h1", b"b"), ("bin", b"\xff\x01")]
    opts = []
    for name, val in sendable:
        opts += ["-H", os.fsdecode(name.encode() + b"=" + val)]
    produce(ctx, values(0, n), *opts)
    mc.check_headers(read_back(ctx, n), n, want_headers=sendable)
    raise NotApplicable("kcat -H takes header values from argv (C strings), so bin=\\x00\\xff\\x01 cannot "
                        "be sent; h1=a, h1=b, bin=\\xff\\x01 round-trip byte-exact in order")


def s_produce_timestamps(ctx: Ctx) -> str:
    raise NotApplicable("kcat -P has no option to set a record's timestamp (librdkafka stamps the "
                        "produce time)")


def codec_scenario(codec: str):
    def run(ctx: Ctx) -> str:
        n = mc.CODEC_COUNT
        vals = [mc.compressible_value(i) for i in range(n)]
        produce(ctx, vals, "-z", codec, "-X", "linger.ms=20")
        mc.check_exactly_once(read_back(ctx, n), vals)
        return f"{n} records with -z {codec}, read back byte-exact"
    return run


def acks_scenario(acks: str):
    def run(ctx: Ctx) -> str:
        n = mc.ACKS_COUNT
        produce(ctx, values(0, n), "-X", f"acks={acks}")
        # read_back repeats (bounded) until all n are there, which acks=0 needs.
        mc.check_exactly_once(read_back(ctx, n), values(0, n))
        return f"{n} records with -X acks={acks}, all read back"
    return run


def s_produce_idempotent(ctx: Ctx) -> str:
    n = mc.IDEMPOTENT_COUNT
    produce(ctx, values(0, n), "-X", "enable.idempotence=true")
    recs = read_back(ctx, n)
    mc.check_exactly_once(recs, values(0, n))
    mc.check_dense_offsets(recs)
    spread = {p: len(rows) for p, rows in sorted(mc.by_partition(recs).items())}
    return f"-X enable.idempotence=true: {n} records once each, offsets dense from 0 {spread}"


def s_consume_assign_seek(ctx: Ctx) -> str:
    n, start = mc.SEEK_COUNT, mc.SEEK_TO
    produce(ctx, values(0, n), "-p", "0")
    # kcat's way to consume one partition without a group from an offset: -p 0 -o <offset>.
    recs = consume(ctx, "-p", "0", "-o", str(start))
    got = [(r.offset, r.value) for r in recs]
    want = [(i, mc.value(i)) for i in range(start, n)]
    mc.check_sequence(got, want, f"from -o {start}")
    return f"-C -p 0 -o {start}: offsets {start}..{n - 1} in order"


def s_consume_from_beginning(ctx: Ctx) -> str:
    n = mc.BEGINNING_COUNT
    produce_spread(ctx, 0, n)
    recs = consume(ctx, "-o", "beginning")
    mc.check_exactly_once(recs, values(0, n))
    return f"-C -o beginning: all {n} records over 3 partitions"


def s_consume_from_timestamp(ctx: Ctx) -> str:
    n, k = mc.TIMESTAMP_COUNT, mc.TIMESTAMP_LOOKUP_INDEX
    # kcat cannot produce records with given timestamps: confluent-kafka writes them; the lookup
    # and the consuming are kcat's.
    from confluent_kafka import Producer

    prod = Producer({"bootstrap.servers": ctx.bootstrap, "message.timeout.ms": 20000})
    errors = []
    for i in range(n):
        prod.produce(ctx.topic, value=mc.value(i), partition=0, timestamp=mc.timestamp(i),
                     on_delivery=lambda err, _msg: err and errors.append(err))
    left = prod.flush(ctx.deadline.left())
    assert left == 0 and not errors, f"seeding with confluent-kafka: {left} undelivered, errors {errors[:1]}"

    ts = mc.timestamp(k)
    out = kcat(ctx, "-Q", "-J", "-b", ctx.bootstrap, "-t", f"{ctx.topic}:0:{ts}", "-m", "10")
    found = json.loads(out)[ctx.topic]["0"]
    assert not found.get("error"), f"kcat -Q {ts}: {found}"
    assert found["offset"] == k, f"kcat -Q {ts} gave offset {found['offset']}, want {k}"
    recs = consume(ctx, "-p", "0", "-o", f"s@{ts}", "-c", "1")
    assert recs, f"-o s@{ts}: nothing read"
    first = recs[0]
    assert (first.offset, first.value) == (k, mc.value(k)), f"-o s@{ts}: first record {first.short()}, want v{k}"
    return (f"records seeded by confluent-kafka (kcat cannot set timestamps); kcat -Q T0+{k * 1000} = {k}, "
            f"-o s@T0+{k * 1000} first value v{k}")


def s_group(ctx: Ctx) -> str:
    first, second = mc.GROUP_FIRST, mc.GROUP_SECOND
    group = f"{ctx.topic}-{ctx.run_id}"
    produce_spread(ctx, 0, first)

    def member() -> list[Rec]:
        # -G: balanced consumer subscribed to the topic; -e: exit once every assigned partition is
        # at its end; offsets are stored as read and committed by kcat's consumer_close
        # (enable.auto.commit default). No -o: it would override the committed offsets.
        return parse_envelopes(kcat(ctx, "-b", ctx.bootstrap, "-G", group, "-m", "10", "-J", "-q", "-e",
                                    "-X", "auto.offset.reset=earliest", ctx.topic))

    recs_a = member()
    mc.check_exactly_once(recs_a, values(0, first))
    produce_spread(ctx, first, first + second)
    recs_b = member()
    mc.check_exactly_once(recs_b, values(first, first + second))
    return f"kcat -G (A) read {first}, committed on close; kcat -G (B) read exactly the {second} new records"


def no_admin(ctx: Ctx) -> str:
    raise NotApplicable("kcat has no admin API (topics, configs and partitions cannot be created, "
                        "described or altered)")


SCENARIOS = {
    "metadata": s_metadata,
    "produce.keys": s_produce_keys,
    "produce.headers": s_produce_headers,
    "produce.timestamps": s_produce_timestamps,
    "produce.gzip": codec_scenario("gzip"),
    "produce.snappy": codec_scenario("snappy"),
    "produce.lz4": codec_scenario("lz4"),
    "produce.zstd": codec_scenario("zstd"),
    "produce.acks0": acks_scenario("0"),
    "produce.acks1": acks_scenario("1"),
    "produce.acksall": acks_scenario("all"),
    "produce.idempotent": s_produce_idempotent,
    "consume.assign_seek": s_consume_assign_seek,
    "consume.from_beginning": s_consume_from_beginning,
    "consume.from_timestamp": s_consume_from_timestamp,
    "group.subscribe_commit_resume": s_group,
    "admin.topics": no_admin,
    "admin.configs": no_admin,
    "admin.partitions": no_admin,
}

if __name__ == "__main__":
    mc.main("kcat", version, SCENARIOS)
