"""Starting and stopping a real `strom` process for the compat suite, plus small client helpers.

The broker is the release binary (`target/release/strom`, or `$STROM_BIN`), started with Kafka
property overrides on its command line, listening on 127.0.0.1 only, with its data in the test's
own tmp dir and its output captured to a log file there.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = REPO_ROOT / "target"
JARS_DIR = TARGET / "compat-jars"
JAVA_CLASSES_DIR = TARGET / "compat-java-classes"

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def strom_bin() -> Path:
    override = os.environ.get("STROM_BIN")
    return Path(override) if override else TARGET / "release" / "strom"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1):
    """Polls `predicate` until it returns something truthy; raises AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below if the wait times out
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


class Broker:
    """One strom process. `restart()` and `kill9()` keep the data dir and the port."""

    def __init__(self, workdir: Path, overrides: Iterable[str] = ()):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = workdir / "strom.log"
        self.port = free_port()
        self.extra_overrides = list(overrides)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        listener = f"PLAINTEXT://127.0.0.1:{self.port}"
        args = [str(strom_bin())]
        for kv in [
            f"listeners={listener}",
            f"advertised.listeners={listener}",
            f"log.dirs={self.data_dir}",
            # Many brokers run at once: metrics on a port of their own (logged at start).
            "strom.http.listener=http://127.0.0.1:0",
            *self.extra_overrides,
        ]:
            args += ["--override", kv]
        return args

    def start(self) -> "Broker":
        binary = strom_bin()
        if not binary.is_file():
            raise AssertionError(
                f"broker binary {binary} not found: build it first (cargo build --release) or set STROM_BIN"
            )
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"broker exited with code {self.proc.returncode} during startup\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"broker not accepting connections on {self.bootstrap} after {READY_TIMEOUT_S:.0f} s\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S. Returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._append_log(f"===== no exit {STOP_TIMEOUT_S:.0f} s after SIGTERM: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self._append_log("===== SIGKILL (crash test)")
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> "Broker":
        self.stop()
        return self.start()

    def partition_dir(self, topic: str, partition: int = 0) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def segment_files(self, topic: str, partition: int = 0) -> list[Path]:
        return sorted(self.partition_dir(topic, partition).glob("*.log"))

    def _append_log(self, line: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"{line}\n".encode())

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` lines of the broker's log (backtrace source locations left out),
        preceded by any panic, allocation-failure or ERROR lines from anywhere in it."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no broker log: {exc})"
        all_lines = text.splitlines()
        notable = [l for l in all_lines if re.search(r"panicked|memory allocation|fatal|abort| ERROR ", l, re.I)]
        tail = [l for l in all_lines if not l.lstrip().startswith("at /")][-lines:]
        out = []
        if notable:
            out.append(f"--- notable lines of {self.log_path} ---")
            out += notable[:20]
        out.append(f"--- last {len(tail)} lines of {self.log_path} ---")
        out += tail
        return "\n".join(out)


# --- confluent-kafka helpers -------------------------------------------------------------------

# librdkafka's log lines go through Python logging (pytest shows them for a failed test) instead of
# straight to stderr, where a client outliving its broker would keep printing connection errors.
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")


class _RepeatFilter(logging.Filter):
    """Keeps the first few of each message (digits ignored): a client whose broker is gone
    repeats its connection error every few hundred milliseconds."""

    KEEP = 3

    def __init__(self):
        super().__init__()
        self.seen: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = "".join(c for c in str(record.msg) if not c.isdigit())
        n = self.seen.get(key, 0) + 1
        self.seen[key] = n
        if n == self.KEEP + 1:
            record.msg = f"{record.msg} (further repeats not shown)"
        return n <= self.KEEP + 1


LIBRDKAFKA_LOGGER.addFilter(_RepeatFilter())

# Clients made by the helpers below; the suite closes them when each test ends.
_open_clients: list = []


def close_clients() -> None:
    while _open_clients:
        client = _open_clients.pop()
        try:
            if hasattr(client, "purge"):
                client.purge()
            client.close()
        except Exception:  # noqa: BLE001 - already closed, or the broker is gone
            pass


def ck_producer(broker: Broker, **extra):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "strom-compat",
        "message.timeout.ms": 20000,
        "socket.timeout.ms": 10000,
        "logger": LIBRDKAFKA_LOGGER,
    }
    conf.update(extra)
    producer = Producer(conf)
    _open_clients.append(producer)
    return producer


def ck_consumer(broker: Broker, **extra):
    from confluent_kafka import Consumer

    # confluent-kafka insists on a group.id even for assign()-only use; nothing is committed.
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": "strom-compat-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "socket.timeout.ms": 10000,
        "logger": LIBRDKAFKA_LOGGER,
    }
    conf.update(extra)
    consumer = Consumer(conf)
    _open_clients.append(consumer)
    return consumer


def ck_produce_all(producer, records, timeout_s: float = 60.0, topic: str | None = None):
    """Produces `records` (dicts of Producer.produce kwargs) and returns one (err, partition, offset)
    per record, in input order, after every delivery report arrived."""
    results: list = [None] * len(records)

    def on_delivery(index):
        def cb(err, msg):
            results[index] = (err, msg.partition(), msg.offset())

        return cb

    deadline = time.monotonic() + timeout_s
    for i, rec in enumerate(records):
        kwargs = dict(rec)
        if topic is not None:
            kwargs.setdefault("topic", topic)
        while True:
            try:
                producer.produce(on_delivery=on_delivery(i), **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise AssertionError("producer queue stayed full until the deadline")
        producer.poll(0)
    remaining = producer.flush(max(0.0, deadline - time.monotonic()))
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout_s:.0f} s"
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"no delivery report for {len(missing)} records (first: {missing[:5]})"
    return results


def ck_read_partition(consumer, topic: str, partition: int, start_offset, expect_count: int | None = None,
                      timeout_s: float = 60.0):
    """Assigns one partition at `start_offset` and reads until partition EOF (or `expect_count`
    messages). Returns the list of confluent_kafka.Message. Raises on any consumer error."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer.assign([TopicPartition(topic, partition, start_offset)])
    out = []
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"reading {topic}-{partition} from {start_offset}: got {len(out)} messages"
                f"{'' if expect_count is None else f' of {expect_count}'} before the {timeout_s:.0f} s deadline"
            )
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if expect_count is None or len(out) >= expect_count:
                    break
                continue
            raise AssertionError(f"consumer error on {topic}-{partition}: {err}")
        out.append(msg)
        if expect_count is not None and len(out) >= expect_count:
            break
    consumer.unassign()
    return out


def ck_admin(broker: Broker, **extra):
    from confluent_kafka.admin import AdminClient

    conf = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "strom-compat-admin",
        "socket.timeout.ms": 10000,
        "logger": LIBRDKAFKA_LOGGER,
    }
    conf.update(extra)
    return AdminClient(conf)


def ck_create_topic(admin, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Creates `topic` with `partitions` partitions and waits until the metadata shows all of them."""
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  request_timeout=timeout_s)
    futures[topic].result(timeout=timeout_s)

    def visible():
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        return md is not None and md.error is None and len(md.partitions) == partitions

    wait_until(visible, timeout_s, f"{topic} with {partitions} partitions in the metadata")
