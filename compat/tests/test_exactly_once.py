"""Exactly-once consume-transform-produce (KIP-98, KIP-447) under crashes, with confluent-kafka.

WORKERS worker processes (eos_worker.py) in one consumer group copy a keyed input topic to an
output topic, partition p to partition p, in transactions that carry the group's offsets. While
the input is being produced, the test kills workers with SIGKILL and starts new ones in their
slots (same transactional.id: the new one fences the zombie), and kills the broker with SIGKILL
and starts it again. Once the group's committed offsets reach the input's end, the output must
hold every input record exactly once, each key's records in input order, and a read_uncommitted
reader must see every committed record.

The chaos is drawn from a seeded random.Random; the seed is printed, and STROM_EOS_SEED=<seed>
replays the same plan (the timing of the processes still varies from run to run).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from strom_harness import ck_admin, ck_consumer, ck_create_topic, ck_producer, ck_read_partition

WORKER_SCRIPT = Path(__file__).with_name("eos_worker.py")

WORKERS = 3
PARTITIONS = 6
KEYS = 60
RECORDS = 3600
# The input is produced evenly over PRODUCE_S; the kills happen within CHAOS_S, at least
# EVENT_GAP_S apart: a killed worker's group membership lasts its 6 s session timeout, and a
# rebalance waits for it, so closer kills would keep the group rebalancing and idle.
PRODUCE_S = 55.0
CHAOS_S = 65.0
EVENT_GAP_S = 9.0
WORKER_KILLS = 4
BROKER_KILLS = 2
# A killed worker's slot gets a new worker after up to this long; a killed broker stays down
# for up to this long.
WORKER_DOWN_MAX_S = 2.0
BROKER_DOWN_MAX_S = 3.0
# A worker that exits on its own (fatal error, retries used up) is started again no sooner than
# this after its previous start, and the test gives up after MAX_WORKER_STARTS starts in all.
WORKER_RESTART_BACKOFF_S = 1.0
MAX_WORKER_STARTS = 60
# After the chaos: the group must have committed the whole input within DRAIN_TIMEOUT_S.
DRAIN_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 10.0
# Failure messages list at most this many records or keys per problem.
SHOW = 8

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def record_key(i: int) -> str:
    return f"k{i % KEYS:03d}"


def record_partition(i: int) -> int:
    return (i % KEYS) % PARTITIONS


def record_value(i: int) -> str:
    """key:sequence number of the record within its key."""
    return f"{record_key(i)}:{i // KEYS:05d}"


class Workers:
    """The worker processes, one per slot, each slot's output appended to its own log file."""

    def __init__(self, bootstrap: str, source: str, sink: str, group: str, logdir: Path):
        self.bootstrap, self.source, self.sink, self.group = bootstrap, source, sink, group
        self.logdir = logdir
        self.procs: dict[int, subprocess.Popen] = {}
        self.started_at: dict[int, float] = {}
        self.restart_at: dict[int, float] = {}
        self.starts = 0
        self.kills = 0
        self.exits: list[tuple[int, int]] = []

    def log_path(self, slot: int) -> Path:
        return self.logdir / f"eos-worker-{slot}.log"

    def start(self, slot: int) -> None:
        assert self.starts < MAX_WORKER_STARTS, (
            f"{self.starts} worker starts: workers keep exiting\n{self.log_tails()}")
        self.starts += 1
        with open(self.log_path(slot), "ab") as out:
            out.write(f"===== start #{self.starts} in slot {slot}\n".encode())
            out.flush()
            self.procs[slot] = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), "--bootstrap", self.bootstrap, "--input", self.source,
                 "--output", self.sink, "--group", self.group, "--transactional-id", f"{self.group}-slot-{slot}",
                 "--slot", str(slot)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started_at[slot] = time.monotonic()
        self.restart_at.pop(slot, None)

    def kill9(self, slot: int, down_s: float) -> None:
        proc = self.procs[slot]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
            self.kills += 1
            with open(self.log_path(slot), "ab") as out:
                out.write(b"===== SIGKILL from the test\n")
        self.restart_at[slot] = time.monotonic() + down_s

    def tend(self) -> None:
        """Starts a worker in every slot whose worker is gone: killed ones when their down time is
        up, ones that exited on their own after the back-off."""
        now = time.monotonic()
        for slot, proc in self.procs.items():
            if proc.poll() is None:
                continue
            if slot not in self.restart_at:
                self.exits.append((slot, proc.returncode))
                self.restart_at[slot] = self.started_at[slot] + WORKER_RESTART_BACKOFF_S
            if now >= self.restart_at[slot]:
                self.start(slot)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=WORKER_STOP_TIMEOUT_S)

    def dump_stacks(self) -> None:
        """Each live worker prints its Python stacks to its log (SIGUSR1, see eos_worker.py)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)

    def log_tails(self, lines: int = 25) -> str:
        """The end of each slot's log, without the connection errors of a broker kill."""
        out = []
        for slot in sorted(self.procs):
            text = [line for line in self.log_path(slot).read_text(errors="replace").splitlines()
                    if not re.search(r"Connect to ipv4|_TRANSPORT|_ALL_BROKERS_DOWN|Disconnected", line)]
            out.append(f"--- last {min(lines, len(text))} lines of {self.log_path(slot)} ---")
            out += text[-lines:]
        return "\n".join(out)

    def count_in_logs(self, needle: str) -> int:
        return sum(self.log_path(slot).read_text(errors="replace").count(needle) for slot in self.procs)


def chaos_plan(rng: random.Random) -> list[tuple[float, str, int, float]]:
    """(at seconds, "worker" or "broker", worker slot, down seconds), in time order, the events
    at least EVENT_GAP_S apart within [4, CHAOS_S - 4]."""
    events = WORKER_KILLS + BROKER_KILLS
    slack = (CHAOS_S - 8.0) - (events - 1) * EVENT_GAP_S
    assert slack > 0, "the chaos window is too short for its events"
    times = [4.0 + at + i * EVENT_GAP_S for i, at in enumerate(sorted(rng.uniform(0, slack) for _ in range(events)))]
    broker_at = set(rng.sample(range(events), BROKER_KILLS))
    return [(at, "broker", -1, rng.uniform(0.5, BROKER_DOWN_MAX_S)) if i in broker_at
            else (at, "worker", rng.randrange(WORKERS), rng.uniform(0.0, WORKER_DOWN_MAX_S))
            for i, at in enumerate(times)]


def committed_offsets(b, group: str, source: str) -> list[int]:
    probe = ck_consumer(b, **{"group.id": group, "isolation.level": "read_committed"})
    try:
        tps = probe.committed([TopicPartition(source, p) for p in range(PARTITIONS)], timeout=10)
        return [tp.offset for tp in sorted(tps, key=lambda tp: tp.partition)]
    finally:
        probe.close()


def end_offsets(b, source: str) -> list[int]:
    probe = ck_consumer(b)
    try:
        return [probe.get_watermark_offsets(TopicPartition(source, p), timeout=10)[1] for p in range(PARTITIONS)]
    finally:
        probe.close()


def read_values(b, topic: str, isolation: str) -> list[list[str]]:
    """Every value of each partition of `topic`, in offset order."""
    consumer = ck_consumer(b, **{"isolation.level": isolation})
    try:
        return [[m.value().decode() for m in ck_read_partition(consumer, topic, p, 0)] for p in range(PARTITIONS)]
    finally:
        consumer.close()


def first(items, n: int = SHOW) -> str:
    items = list(items)
    more = f" ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(x) for x in items[:n]) + more


def per_key(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        out.setdefault(v.split(":")[0], []).append(v)
    return out


def copy_problems(source: list[list[str]], sink: list[list[str]], exact: bool) -> list[str]:
    """What differs between the input and the output, partition by partition: records that are
    not input records, and missing ones; with `exact` also duplicates and keys out of input order."""
    problems = []
    for p in range(PARTITIONS):
        want, got = source[p], sink[p]
        want_set, counts = set(want), Counter(got)
        foreign = [v for v in counts if v not in want_set]
        missing = [v for v in want if v not in counts]
        if foreign:
            problems.append(f"partition {p}: {len(foreign)} records that are not input records of "
                            f"partition {p}: {first(foreign)}")
        if missing:
            keys = sorted({v.split(':')[0] for v in missing})
            problems.append(f"partition {p}: {len(missing)} of {len(want)} input records missing "
                            f"(keys {first(keys)}): {first(missing)}")
        if not exact:
            continue
        duplicated = [f"{v} x{n}" for v, n in counts.items() if n > 1]
        if duplicated:
            problems.append(f"partition {p}: {len(duplicated)} records more than once: {first(duplicated)}")
        want_by_key, got_by_key = per_key(want), per_key(got)
        for key in sorted(got_by_key.keys() & want_by_key.keys()):
            seen, expected = got_by_key[key], [v for v in want_by_key[key] if v in counts]
            if len(seen) == len(set(seen)) and seen != expected:
                at = next((i for i, (a, b) in enumerate(zip(seen, expected)) if a != b),
                          min(len(seen), len(expected)))
                problems.append(f"partition {p}: key {key} out of order from its record {at}: "
                                f"output {first(seen[at:at + 4], 4)}, input {first(expected[at:at + 4], 4)}")
    return problems


def test_consume_transform_produce_is_exactly_once_through_kills(broker, topic, tmp_path):
    seed = int(os.environ.get("STROM_EOS_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nexactly-once chaos seed {seed} (STROM_EOS_SEED={seed} replays the plan)")
    rng = random.Random(seed)
    plan = chaos_plan(rng)

    b = broker("group.initial.rebalance.delay.ms=500")
    admin = ck_admin(b)
    source, sink, group = topic + "-in", topic + "-out", topic + "-group"
    ck_create_topic(admin, source, PARTITIONS)
    ck_create_topic(admin, sink, PARTITIONS)

    delivery_errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(f"{msg.value()!r}: {err}")

    producer = ck_producer(b, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                 "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 1000})
    workers = Workers(b.bootstrap, source, sink, group, tmp_path)
    started = time.monotonic()
    try:
        for slot in range(WORKERS):
            workers.start(slot)

        # The chaos: the input trickles in while workers and the broker are killed.
        produced = 0
        pending = list(plan)
        while (now := time.monotonic() - started) < CHAOS_S or produced < RECORDS:
            assert now < CHAOS_S + 30, f"the input producer stalled at {produced} of {RECORDS} records"
            target = min(RECORDS, int(now / PRODUCE_S * RECORDS))
            while produced < target:
                try:
                    producer.produce(source, key=record_key(produced).encode(),
                                     value=record_value(produced).encode(),
                                     partition=record_partition(produced), on_delivery=on_delivery)
                    produced += 1
                except BufferError:
                    break
            while pending and pending[0][0] <= now:
                at, kind, slot, down_s = pending.pop(0)
                if kind == "broker":
                    print(f"t={now:5.1f} s: kill -9 the broker, down {down_s:.1f} s")
                    b.kill9()
                    time.sleep(down_s)
                    b.start()
                else:
                    print(f"t={now:5.1f} s: kill -9 worker {slot}, down {down_s:.1f} s")
                    workers.kill9(slot, down_s)
            workers.tend()
            producer.poll(0.05)
        remaining = producer.flush(60)
        assert remaining == 0, f"{remaining} input records still undelivered 60 s after the chaos"
        assert not delivery_errors, f"{len(delivery_errors)} input records failed: {first(delivery_errors)}"
        chaos_s = time.monotonic() - started

        # The drain: every input record copied and its offset committed by the group.
        end = end_offsets(b, source)
        assert sum(end) == RECORDS, f"the input's end offsets {end} add up to {sum(end)}, not {RECORDS}"
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        committed: list[int] = []
        while True:
            workers.tend()
            try:
                committed = committed_offsets(b, group, source)
            except Exception as exc:  # noqa: BLE001 - the coordinator may still be loading
                print(f"committed offsets not readable yet: {exc}")
            if committed == end:
                break
            if time.monotonic() > deadline:
                workers.dump_stacks()
            assert time.monotonic() <= deadline, (
                f"the group committed {committed} of the input's end offsets {end} "
                f"within {DRAIN_TIMEOUT_S:.0f} s of the chaos' end\n{workers.log_tails()}")
            time.sleep(0.5)
        drain_s = time.monotonic() - started - chaos_s
    finally:
        workers.stop_all()

    source_values = read_values(b, source, "read_uncommitted")
    input_problems = [f"partition {p}: input records more than once: {first(v for v, n in Counter(vals).items() if n > 1)}"
                      for p, vals in enumerate(source_values) if len(vals) != len(set(vals))]
    assert not input_problems, "the idempotent input producer's records are duplicated:\n" + "\n".join(input_problems)

    committed_output = read_values(b, sink, "read_committed")
    uncommitted_output = read_values(b, sink, "read_uncommitted")
    aborts = workers.count_in_logs("aborting:")
    stuck = workers.count_in_logs("past its timeout: exiting")
    transactions = workers.count_in_logs(": committed txn ")
    print(f"{RECORDS} records through {WORKERS} workers in {chaos_s:.0f} s of chaos + {drain_s:.0f} s of drain: "
          f"{workers.kills} worker kills, {BROKER_KILLS} broker kills, {workers.starts} worker starts, "
          f"exits on their own (slot, code) {workers.exits}, {stuck} of them stuck in a call, "
          f"{transactions} committed and {aborts} aborted transactions; output "
          f"{sum(map(len, committed_output))} committed, {sum(map(len, uncommitted_output))} read_uncommitted")

    problems = copy_problems(source_values, committed_output, exact=True)
    assert not problems, "read_committed output is not the input exactly once in order:\n" + "\n".join(problems)
    # The committed output is the input now: a record the reader misses is a lost committed one.
    problems = copy_problems(source_values, uncommitted_output, exact=False)
    assert not problems, "read_uncommitted output lost committed records:\n" + "\n".join(problems)


def test_a_new_instance_of_a_transactional_id_commits_offsets_at_once(broker, topic):
    """The worker restarted in a killed one's slot: InitProducerId bumps the epoch, and the new
    instance's first send_offsets_to_transaction must go through, not time out."""
    from confluent_kafka import Consumer

    b = broker()
    admin = ck_admin(b)
    source, sink, group = topic + "-in", topic + "-out", topic + "-group"
    ck_create_topic(admin, source, 1)
    ck_create_topic(admin, sink, 1)
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        for instance, offset in enumerate([5, 10]):
            producer = ck_producer(b, **{"transactional.id": topic + "-txn", "enable.idempotence": True})
            producer.init_transactions(30)
            producer.begin_transaction()
            producer.produce(sink, f"instance {instance}".encode(), partition=0)
            # Much longer than a round trip to a broker on the same machine.
            producer.send_offsets_to_transaction([TopicPartition(source, 0, offset)],
                                                 consumer.consumer_group_metadata(), 5)
            producer.commit_transaction(30)
        probe = ck_consumer(b, **{"group.id": group})
        assert probe.committed([TopicPartition(source, 0)], timeout=10)[0].offset == 10
    finally:
        consumer.close()
