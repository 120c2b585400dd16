"""Shared parts of the Python matrix programs (confluent-kafka, kafka-python, aiokafka, kcat).

The contract is in README.md next to this file:

    <program> <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]

This module provides the command line, the JSON lines on stdout, one bounded run per scenario
(a scenario's exception or time-out becomes its `fail` line), the data every client sends, and the
read-back checks, which work on `Rec`, a client-neutral view of a consumed record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import threading
import time
import traceback
from typing import Callable, Iterable, Sequence

# Every wait inside a scenario shares this budget (see Ctx.deadline); the watchdog that reports a
# scenario as timed out fires at SCENARIO_LIMIT_S, leaving the difference for closing clients.
WAIT_BUDGET_S = 45.0
SCENARIO_LIMIT_S = 60.0

# --- data every program sends -------------------------------------------------------------------

T0 = 1_600_000_000_000
HEADERS = [("h1", b"a"), ("h1", b"b"), ("bin", b"\x00\xff\x01")]
KEYED_COUNT = 100  # produce.keys: records 0..99 with keys k0..k9, then NULL_KEY_COUNT without key
NULL_KEY_COUNT = 5
CODEC_COUNT = 1000
ACKS_COUNT = 200
IDEMPOTENT_COUNT = 200
SEEK_COUNT, SEEK_TO = 50, 20
BEGINNING_COUNT = 30
TIMESTAMP_COUNT, TIMESTAMP_LOOKUP_INDEX = 20, 10
GROUP_FIRST, GROUP_SECOND = 40, 10
RETENTION_DEFAULT, RETENTION_NEW = "604800000", "3600000"


def value(i: int) -> bytes:
    return b"v%d" % i


def key_of(i: int) -> bytes | None:
    """produce.keys: k0..k9 cycling for records 0..99, None after."""
    return b"k%d" % (i % 10) if i < KEYED_COUNT else None


def compressible_value(i: int) -> bytes:
    """100 bytes, mostly a repeated phrase; starts with v<i> so every value is distinct."""
    head = b"v%d " % i
    return (head + b"strom compat matrix " * 5)[:100]


def timestamp(i: int) -> int:
    return T0 + i * 1000


# --- records as read back -----------------------------------------------------------------------


@dataclasses.dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = dataclasses.field(default_factory=list)  # [(str, bytes)] in wire order
    timestamp: int | None = None
    create_time: bool | None = None  # True: CreateTime, False: LogAppendTime, None: unknown

    def short(self) -> str:
        return f"p{self.partition}@{self.offset} key={self.key!r} value={_cut(self.value)}"


def _cut(b, n: int = 24) -> str:
    if b is None:
        return "None"
    return repr(b if len(b) <= n else b[:n] + b"...")


def by_partition(recs: Iterable[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {}
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append(r)
    return out


def check_exactly_once(recs: Sequence[Rec], want_values: Sequence[bytes]) -> None:
    """Every wanted value read exactly once, nothing else."""
    want = set(want_values)
    assert len(want) == len(want_values), "test bug: duplicate wanted values"
    seen: dict[bytes, Rec] = {}
    for r in recs:
        if r.value not in want:
            raise AssertionError(f"unexpected record {r.short()}")
        if r.value in seen:
            raise AssertionError(f"value {_cut(r.value)} read twice: {seen[r.value].short()} and {r.short()}")
        seen[r.value] = r
    missing = [v for v in want_values if v not in seen]
    if missing:
        raise AssertionError(f"{len(missing)} of {len(want_values)} values not read back, first {_cut(missing[0])}")


def check_dense_offsets(recs: Sequence[Rec]) -> None:
    """Offsets 0..n-1 in every partition that has records."""
    for p, rows in by_partition(recs).items():
        offsets = [r.offset for r in rows]
        if offsets != list(range(len(rows))):
            first_bad = next(i for i, o in enumerate(offsets) if o != i)
            raise AssertionError(
                f"partition {p}: offsets not dense from 0 (position {first_bad} has offset {offsets[first_bad]})"
            )


def check_sequence(got: Sequence[tuple], want: Sequence[tuple], what: str) -> None:
    """`got` == `want` (lists of (offset, value)); the message names the first difference."""
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise AssertionError(f"{what}: record {i} is (offset, value) {g}, want {w}")
    if len(got) > len(want):
        raise AssertionError(f"{what}: {len(got)} records, want {len(want)}; first extra {got[len(want)]}")
    raise AssertionError(f"{what}: {len(got)} records, want {len(want)}; first missing {want[len(got)]}")


def check_keys(recs: Sequence[Rec]) -> str:
    """produce.keys: every value once; a key's records in one partition, in send order; null keys null."""
    total = KEYED_COUNT + NULL_KEY_COUNT
    check_exactly_once(recs, [value(i) for i in range(total)])
    index = {value(i): i for i in range(total)}
    partition_of_key: dict[bytes, int] = {}
    for r in recs:
        i = index[r.value]
        want_key = key_of(i)
        if r.key != want_key:
            raise AssertionError(f"{r.short()}: key {r.key!r}, sent {want_key!r}")
        if want_key is not None:
            p = partition_of_key.setdefault(want_key, r.partition)
            if p != r.partition:
                raise AssertionError(f"key {want_key!r} in partitions {p} and {r.partition}")
    for p, rows in by_partition(recs).items():
        last: dict[bytes, int] = {}
        for r in rows:
            if r.key is None:
                continue
            i = index[r.value]
            if r.key in last and last[r.key] > i:
                raise AssertionError(f"partition {p}: key {r.key!r} out of send order at {r.short()}")
            last[r.key] = i
    spread = {p: len(rows) for p, rows in sorted(by_partition(recs).items())}
    return f"{total} records, 10 keys each in one partition in order, 5 null keys; per partition {spread}"


def check_headers(recs: Sequence[Rec], count: int, want_headers=None) -> None:
    want_headers = HEADERS if want_headers is None else want_headers
    check_exactly_once(recs, [value(i) for i in range(count)])
    for r in recs:
        got = [(k, bytes(v) if v is not None else None) for k, v in r.headers]
        if got != want_headers:
            raise AssertionError(f"{r.short()}: headers {got!r}, sent {want_headers!r}")


def check_timestamps(recs: Sequence[Rec], count: int) -> None:
    check_exactly_once(recs, [value(i) for i in range(count)])
    index = {value(i): i for i in range(count)}
    for r in recs:
        want = timestamp(index[r.value])
        if r.timestamp != want:
            raise AssertionError(f"{r.short()}: timestamp {r.timestamp}, sent {want}")
        if r.create_time is not True:
            kind = {False: "LogAppendTime", None: "unknown"}[r.create_time]
            raise AssertionError(f"{r.short()}: timestamp type {kind}, want CreateTime")


# --- bounded waits ------------------------------------------------------------------------------


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, what: str) -> None:
        if self.expired():
            raise AssertionError(f"timed out waiting for {what}")


def wait_until(predicate: Callable[[], object], deadline: Deadline, what: str, interval_s: float = 0.2):
    """Polls `predicate` until it returns something truthy; fails when `deadline` passes."""
    last_exc: Exception | None = None
    while True:
        try:
            got = predicate()
            if got:
                return got
        except Exception as exc:  # noqa: BLE001 - reported if the wait times out
            last_exc = exc
        if deadline.expired():
            tail = f" (last error: {type(last_exc).__name__}: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out waiting for {what}{tail}")
        time.sleep(interval_s)


async def async_wait_until(predicate, deadline: Deadline, what: str, interval_s: float = 0.2):
    """`wait_until` for a coroutine function `predicate`."""
    last_exc: Exception | None = None
    while True:
        try:
            got = await predicate()
            if got:
                return got
        except Exception as exc:  # noqa: BLE001
            last_exc = exc
        if deadline.expired():
            tail = f" (last error: {type(last_exc).__name__}: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out waiting for {what}{tail}")
        await asyncio.sleep(interval_s)


# --- running scenarios --------------------------------------------------------------------------


class NotApplicable(Exception):
    """The client's API has no way to express the scenario; the message says why."""


@dataclasses.dataclass
class Ctx:
    bootstrap: str
    prefix: str
    scenario: str
    deadline: Deadline

    @property
    def topic(self) -> str:
        return self.prefix + self.scenario.replace(".", "-")

    @property
    def run_id(self) -> str:
        """Unique per run, for group ids."""
        return f"{os.getpid()}-{int(time.time() * 1000)}"


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _detail_of(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, AssertionError) and text:
        return text
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and not text:
        return f"timed out (scenario limit {SCENARIO_LIMIT_S:.0f} s)"
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text or repr(exc)}"


def _shorten(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


STUCK = f"scenario did not finish within {SCENARIO_LIMIT_S:.0f} s"


def _run_bounded(fn: Callable[[], object]) -> tuple[str, str]:
    """Runs `fn` in a daemon thread; (status, detail) from its result, exception or time-out."""
    box: dict = {}

    def target():
        try:
            box["detail"] = fn()
        except NotApplicable as exc:
            box["na"] = str(exc)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a `fail` line
            box["exc"] = exc
            log(traceback.format_exc())

    thread = threading.Thread(target=target, name="scenario", daemon=True)
    thread.start()
    thread.join(SCENARIO_LIMIT_S)
    if thread.is_alive():
        return "fail", STUCK
    if "na" in box:
        return "n/a", box["na"]
    if "exc" in box:
        return "fail", _detail_of(box["exc"])
    return "pass", str(box.get("detail") or "ok")


def main(client: str, version: Callable[[], str], scenarios: dict[str, Callable], argv=None,
         is_async: bool = False) -> None:
    """Parses the command line, prints the header line and one line per asked scenario, exits.

    `scenarios` maps ids to functions taking a Ctx and returning a detail string for `pass`
    (raising AssertionError or anything else for `fail`, NotApplicable for `n/a`). With
    `is_async`, they are coroutine functions, each run on its own event loop.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        log(f"usage: {os.path.basename(sys.argv[0])} <bootstrap host:port> <topic prefix> <scenario>...")
        sys.exit(2)
    bootstrap, prefix, asked = args[0], args[1], args[2:]

    # Only the JSON lines go to stdout: anything a library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        ver = version()
    except Exception as exc:  # noqa: BLE001
        ver = f"unknown ({_detail_of(exc)})"
    emit({"client": client, "version": ver})

    stuck = False
    for sid in asked:
        fn = scenarios.get(sid)
        started = time.monotonic()
        if fn is None:
            status, detail = "fail", f"unknown scenario {sid!r}"
        else:
            ctx = Ctx(bootstrap, prefix, sid, Deadline(WAIT_BUDGET_S))
            if is_async:
                status, detail = _run_bounded(lambda: asyncio.run(
                    asyncio.wait_for(fn(ctx), SCENARIO_LIMIT_S - 2)))
            else:
                status, detail = _run_bounded(lambda: fn(ctx))
            stuck = stuck or detail == STUCK
        log(f"[{client}] {sid}: {status} ({time.monotonic() - started:.1f} s): {detail}")
        emit({"scenario": sid, "status": status, "detail": _shorten(detail)})

    out.flush()
    if stuck:
        # A scenario thread is still blocked in the client library: do not wait for it.
        sys.stderr.flush()
        os._exit(0)
