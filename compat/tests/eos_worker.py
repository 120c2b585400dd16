"""One consume-transform-produce worker for test_exactly_once.py, run as its own OS process so
the test can kill it with SIGKILL.

It copies every record of the input topic to the same partition number of the output topic, in
transactions that also carry the consumer's offsets (send_offsets_to_transaction with the
consumer's group metadata, KIP-447), the way a real exactly-once application does:

- a transactional producer whose transactional.id belongs to the worker's slot, so the worker
  started in a killed one's place fences the zombie and aborts its open transaction;
- a read_committed consumer in the shared group, auto commit off;
- an error that needs an abort: abort, then rewind the consumer to the group's committed offsets;
- a retriable error: the same call again, a bounded number of times;
- a fatal error (fenced, say), or retries used up: exit; the test starts a new worker in the slot;
- a transaction call that overstays its own timeout by WATCHDOG_GRACE_S: print the stacks and
  exit, as a liveness probe would restart it. librdkafka's send_offsets_to_transaction can block
  past its timeout (confluentinc/librdkafka#5456), for ever once its group coordinator's broker
  was decommissioned by a re-bootstrap (#5511): re-bootstrap is off ("metadata.recovery.strategy"
  none), which avoids #5511 when the one broker is killed, and the watchdog covers the rest.

Prints one line per event to stdout (the test sends it to a file), and its stacks on SIGUSR1.
Exit codes: 0 after SIGTERM, 2 fatal error, 3 retries used up, 4 could not start, 5 stuck in a
transaction call.
Not a test module: pytest collects only test_*.py.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import threading
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

# Each call into the transaction API waits at most this long; a retriable failure is retried at
# most TXN_ATTEMPTS times before the worker gives up and exits.
TXN_CALL_TIMEOUT_S = 6.0
TXN_ATTEMPTS = 3
WATCHDOG_GRACE_S = 10.0
# At most this many records per transaction, gathered for at most POLL_TIMEOUT_S.
MAX_RECORDS_PER_TXN = 200
POLL_TIMEOUT_S = 0.3
# The "transform" time: a transaction stays open this long after its records are in the log, so
# that a good share of the kills land inside a transaction (and aborted copies reach the log).
TXN_HOLD_S = 0.2

EXIT_STOPPED, EXIT_FATAL, EXIT_RETRIES, EXIT_START, EXIT_STUCK = 0, 2, 3, 4, 5


class Exit(Exception):
    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


def log(slot: str, line: str) -> None:
    print(f"{time.time():.3f} worker {slot}: {line}", flush=True)


class Watchdog:
    """Exits the process when the call being watched has not returned by its deadline."""

    def __init__(self, slot: str):
        self.slot = slot
        self.lock = threading.Lock()
        self.watched: tuple[str, float] | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def call(self, what: str, timeout_s: float, fn):
        with self.lock:
            self.watched = (what, time.monotonic() + timeout_s + WATCHDOG_GRACE_S)
        try:
            return fn()
        finally:
            with self.lock:
                self.watched = None

    def _run(self) -> None:
        while True:
            time.sleep(0.5)
            with self.lock:
                watched = self.watched
            if watched is not None and time.monotonic() > watched[1]:
                log(self.slot, f"stuck in {watched[0]} {WATCHDOG_GRACE_S:.0f} s past its timeout: exiting")
                faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
                sys.stdout.flush()
                os._exit(EXIT_STUCK)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--transactional-id", required=True)
    ap.add_argument("--slot", required=True)
    args = ap.parse_args()
    slot = args.slot

    stopping = False

    def on_sigterm(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_sigterm)
    # SIGUSR1 prints every thread's Python stack: what a stuck worker is waiting in.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def on_error(err):
        log(slot, f"client error: {err}")

    common = {
        "bootstrap.servers": args.bootstrap,
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "error_cb": on_error,
        # No re-bootstrap when the one broker is down: see the module header (librdkafka#5511).
        "metadata.recovery.strategy": "none",
    }
    # EOS_WORKER_DEBUG=eos,protocol (say): librdkafka's debug log of both clients, for a post mortem.
    if os.environ.get("EOS_WORKER_DEBUG"):
        common["debug"] = os.environ["EOS_WORKER_DEBUG"]
    consumer = Consumer({
        **common,
        "client.id": f"eos-worker-{slot}",
        "group.id": args.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        # The broker's minimum: a killed worker's partitions move after 6 s.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # A worker stuck between polls leaves the group this soon, so the others go on.
        "max.poll.interval.ms": 30000,
    })
    producer = Producer({
        **common,
        "client.id": f"eos-worker-{slot}-txn",
        "transactional.id": args.transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "transaction.timeout.ms": 20000,
    })

    watchdog = Watchdog(slot)
    committed_records = 0
    transactions = 0
    aborts = 0

    def with_retries(what: str, call):
        """Calls `call` until it succeeds; raises the KafkaException when the transaction must be
        aborted, `Exit` when the error is fatal or the attempts are used up."""
        for attempt in range(1, TXN_ATTEMPTS + 1):
            try:
                return watchdog.call(what, TXN_CALL_TIMEOUT_S, call)
            except KafkaException as exc:
                err = exc.args[0]
                if err.fatal():
                    raise Exit(EXIT_FATAL, f"{what}: fatal error {err}")
                if err.txn_requires_abort():
                    raise
                if not err.retriable():
                    raise Exit(EXIT_FATAL, f"{what}: error neither retriable nor abortable: {err}")
                log(slot, f"{what}: retriable error (attempt {attempt}/{TXN_ATTEMPTS}): {err}")
        raise Exit(EXIT_RETRIES, f"{what}: still failing after {TXN_ATTEMPTS} attempts")

    def rewind() -> None:
        """Every assigned partition back to the group's committed offset (or the beginning, if the
        group has none yet), so the aborted records are read and copied again."""
        assignment = consumer.assignment()
        if not assignment:
            return
        try:
            committed = watchdog.call("committed", TXN_CALL_TIMEOUT_S,
                                      lambda: consumer.committed(assignment, timeout=TXN_CALL_TIMEOUT_S))
        except KafkaException as exc:
            raise Exit(EXIT_RETRIES, f"rewind: committed offsets not readable: {exc.args[0]}")
        for tp in committed:
            if tp.error is not None:
                raise Exit(EXIT_RETRIES, f"rewind: committed offset of {tp.partition}: {tp.error}")
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        log(slot, "rewound to " + ", ".join(f"{tp.partition}@{tp.offset}" for tp in committed))

    def copy(records) -> None:
        nonlocal committed_records, transactions, aborts
        try:
            producer.begin_transaction()
        except KafkaException as exc:
            raise Exit(EXIT_FATAL, f"begin_transaction: {exc.args[0]}")
        next_offsets: dict[int, int] = {}
        try:
            for m in records:
                deadline = time.monotonic() + TXN_CALL_TIMEOUT_S
                while True:
                    try:
                        producer.produce(args.output, key=m.key(), value=m.value(), partition=m.partition())
                        break
                    except BufferError:
                        if time.monotonic() > deadline:
                            raise Exit(EXIT_RETRIES, "producer queue full for too long")
                        producer.poll(0.05)
                next_offsets[m.partition()] = m.offset() + 1
            producer.flush(TXN_CALL_TIMEOUT_S)
            producer.poll(TXN_HOLD_S)
            offsets = [TopicPartition(args.input, p, o) for p, o in sorted(next_offsets.items())]
            with_retries("send_offsets_to_transaction", lambda: producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), TXN_CALL_TIMEOUT_S))
            with_retries("commit_transaction", lambda: producer.commit_transaction(TXN_CALL_TIMEOUT_S))
        except KafkaException as exc:
            aborts += 1
            log(slot, f"aborting: {exc.args[0]}")
            try:
                with_retries("abort_transaction", lambda: producer.abort_transaction(TXN_CALL_TIMEOUT_S))
            except KafkaException as abort_exc:
                raise Exit(EXIT_FATAL, f"abort_transaction failed: {abort_exc.args[0]}")
            rewind()
            return
        transactions += 1
        committed_records += len(records)
        log(slot, f"committed txn {transactions}: {len(records)} records, offsets "
                  + ", ".join(f"{p}@{o}" for p, o in sorted(next_offsets.items())))

    def on_assign(_consumer, partitions):
        log(slot, "assigned " + ",".join(str(tp.partition) for tp in partitions))

    def on_revoke(_consumer, partitions):
        log(slot, "revoked " + ",".join(str(tp.partition) for tp in partitions))

    code = EXIT_STOPPED
    try:
        try:
            watchdog.call("init_transactions", 30, lambda: producer.init_transactions(30))
        except KafkaException as exc:
            raise Exit(EXIT_START, f"init_transactions: {exc.args[0]}")
        log(slot, "initialised transactions")
        consumer.subscribe([args.input], on_assign=on_assign, on_revoke=on_revoke)
        while not stopping:
            # Rebalance callbacks run inside consume(), never while a transaction is open.
            msgs = consumer.consume(num_messages=MAX_RECORDS_PER_TXN, timeout=POLL_TIMEOUT_S)
            records = []
            for m in msgs:
                err = m.error()
                if err is None:
                    records.append(m)
                elif err.fatal():
                    raise Exit(EXIT_FATAL, f"consumer: fatal error {err}")
                elif err.code() != KafkaError._PARTITION_EOF:
                    log(slot, f"consumer error: {err}")
            if records:
                copy(records)
    except Exit as exc:
        code = exc.code
        log(slot, f"exiting with {code}: {exc}")
    finally:
        log(slot, f"done: {transactions} transactions, {committed_records} records committed, {aborts} aborts")
        if code == EXIT_STOPPED:
            consumer.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
