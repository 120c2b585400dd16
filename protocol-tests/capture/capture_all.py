#!/usr/bin/env python3
"""Regenerates protocol-tests/captures/: byte-exact Kafka requests of real third-party clients.

    STROM_BIN=target/release/strom protocol-tests/capture/capture_all.py [CLIENT...] [--workdir DIR]

For each client (all of them by default: kcat confluent-kafka kafka-python aiokafka java kafkajs
sarama) this starts a fresh broker (STROM_BIN, default target/release/strom) on a free 127.0.0.1
port with its data in the work dir, advertising the address of a recording proxy
(record_proxy.py) started in front of it; runs the client's session through the proxy; stops both.
The proxy writes the first frame of each distinct (api_key, api_version) to
protocol-tests/captures/<client>/NNN-<ApiName>-v<version>.bin (the client's directory is emptied
first); captures/index.tsv is rewritten from all the files at the end.

The clients are the ones scripts/setup-clients installs (run it first): kcat, target/compat-venv
(confluent-kafka, kafka-python, aiokafka), target/compat-jars + target/compat-java-classes (the Java
client), target/compat-node (kafkajs), target/compat-go (sarama).

Everything else (broker logs and data, the proxy's session logs, the clients' output) goes to the
work dir (a new temporary directory unless --workdir), whose path is printed. The summary at the end
lists per client the files kept, whether each program exited 0, requests the broker never answered
or connections it closed first (from the proxy's session log), and WARN/ERROR/panic lines of the
broker's log. Exit code: 0 when every client program exited 0, 1 otherwise (the captures are written
either way), 2 for a setup problem (no broker binary, a client not installed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CAPTURES = ROOT / "protocol-tests" / "captures"
PROXY = HERE / "record_proxy.py"
CLIENTS_DIR = HERE / "clients"
TARGET = ROOT / "target"
VENV_PY = TARGET / "compat-venv" / "bin" / "python"
JARS = TARGET / "compat-jars"
JAVA_CLASSES = TARGET / "compat-java-classes"
NODE_MODULES = TARGET / "compat-node" / "node_modules"
SARAMA = TARGET / "compat-go" / "sarama_group_check"
COMPAT = ROOT / "compat"

# Broker settings for every session: no initial rebalance delay (group joins take 3 s otherwise);
# the retention and message size StromAdminCheck configs / admin_check.js are told about.
BROKER_OVERRIDES = [
    "group.initial.rebalance.delay.ms=0",
    "log.retention.hours=48",
    "message.max.bytes=2000000",
]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Step:
    argv: list[str]
    timeout_s: float
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not accepting connections on port {port} after {timeout_s:.0f} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen | None) -> int | None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; only the process we started."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    return proc.returncode


# --- the client sessions ---------------------------------------------------------------------


def java_cp() -> str:
    return os.pathsep.join([str(JAVA_CLASSES), str(JARS / "*")])


def kcat_steps(b: str, prefix: str) -> list[Step]:
    topic, group = f"{prefix}-topic", f"{prefix}-group"
    records = "".join(f"k{i}:value-{i}\n" for i in range(20)).encode()
    return [
        Step(["kcat", "-b", b, "-L"], 30),
        Step(["kcat", "-b", b, "-P", "-t", topic, "-K:"], 30, stdin=records),
        Step(["kcat", "-b", b, "-C", "-t", topic, "-o", "beginning", "-e"], 30),
        Step(["kcat", "-b", b, "-Q", "-t", f"{topic}:0:-1"], 30),
        Step(["kcat", "-b", b, "-G", group, "-o", "beginning", "-c", "20", "-e", topic], 45),
        # Without -o the group member starts from the committed offsets (OffsetFetch), which kcat
        # skips when -o assigns explicit offsets.
        Step(["kcat", "-b", b, "-P", "-t", topic, "-K:"], 30, stdin=b"k20:value-20\nk21:value-21\n"),
        Step(["kcat", "-b", b, "-G", group, "-c", "2", "-e", topic], 45),
    ]


def python_steps(script: str):
    def steps(b: str, prefix: str) -> list[Step]:
        return [Step([str(VENV_PY), str(CLIENTS_DIR / script), b, prefix], 150)]
    return steps


def java_steps(b: str, prefix: str) -> list[Step]:
    cp = java_cp()
    steps = [Step(["java", "-cp", cp, "StromClientCheck", b, f"{prefix}-client", "300",
                   "--compression", "none", "--timeout-s", "60"], 90)]
    for command in ("configs", "alter", "partitions", "cluster", "delete-records", "log-dirs", "producers", "epoch"):
        extra = ["--broker-retention-hours", "48", "--broker-max-message-bytes", "2000000"] \
            if command in ("configs", "alter") else []
        steps.append(Step(["java", "-cp", cp, "StromAdminCheck", command, b, f"{prefix}-{command}",
                           "--timeout-s", "60", *extra], 90))
    for command in ("rebalance", "admin"):
        steps.append(Step(["java", "-cp", cp, "StromGroupCheck", command, b, f"{prefix}-g{command}",
                           f"{prefix}-g{command}-group", "--timeout-s", "60"], 90))
    return steps


def kafkajs_steps(b: str, prefix: str) -> list[Step]:
    env = {"NODE_PATH": str(NODE_MODULES), "KAFKAJS_NO_PARTITIONER_WARNING": "1"}
    return [
        Step(["node", str(COMPAT / "node" / "group_check.js"), b, f"{prefix}-group-topic", f"{prefix}-group",
              "--timeout-s", "60"], 90, env=env),
        Step(["node", str(COMPAT / "node" / "admin_check.js"), b, f"{prefix}-admin-topic", "--timeout-s", "60",
              "--broker-max-message-bytes", "2000000"], 90, env=env),
    ]


def sarama_steps(b: str, prefix: str) -> list[Step]:
    # The program's default config.Version for the group members (0.11.0.0). At 2.1.0 sarama 1.22
    # sends the very same request versions, so one run is enough.
    return [Step([str(SARAMA), "-bootstrap", b, "-topic", f"{prefix}-topic", "-group", f"{prefix}-group",
                  "-records", "300", "-timeout-s", "50"], 80)]


CLIENTS = {
    "kcat": (kcat_steps, lambda: shutil.which("kcat")),
    "confluent-kafka": (python_steps("confluent_session.py"), lambda: VENV_PY.is_file()),
    "kafka-python": (python_steps("kafka_python_session.py"), lambda: VENV_PY.is_file()),
    "aiokafka": (python_steps("aiokafka_session.py"), lambda: VENV_PY.is_file()),
    "java": (java_steps, lambda: shutil.which("java") and any(JARS.glob("kafka-clients-*.jar"))
             and (JAVA_CLASSES / "StromClientCheck.class").is_file()),
    "kafkajs": (kafkajs_steps, lambda: shutil.which("node") and (NODE_MODULES / "kafkajs").is_dir()),
    "sarama": (sarama_steps, lambda: SARAMA.is_file()),
}


# --- one session -------------------------------------------------------------------------------


@dataclass
class Result:
    client: str
    exit_codes: list[tuple[str, int | str]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    odd: list[str] = field(default_factory=list)


def broker_command(binary: Path, broker_port: int, proxy_port: int, data: Path) -> list[str]:
    args = [str(binary)]
    for kv in [f"listeners=PLAINTEXT://127.0.0.1:{broker_port}",
               f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port}",
               f"log.dirs={data}", *BROKER_OVERRIDES]:
        args += ["--override", kv]
    return args


def run_client(client: str, binary: Path, work: Path) -> Result:
    result = Result(client)
    steps_of, _ = CLIENTS[client]
    cwork = work / client
    shutil.rmtree(cwork, ignore_errors=True)
    (cwork / "data").mkdir(parents=True)
    out_dir = CAPTURES / client
    shutil.rmtree(out_dir, ignore_errors=True)
    broker_port, proxy_port = free_port(), free_port()
    while proxy_port == broker_port:
        proxy_port = free_port()
    broker_log = cwork / "strom.log"
    session_log = cwork / "proxy-session.tsv"
    broker = proxy = None
    try:
        with open(broker_log, "wb") as log:
            broker = subprocess.Popen(broker_command(binary, broker_port, proxy_port, cwork / "data"),
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwork)
        wait_port(broker_port, broker, "the broker")
        with open(cwork / "proxy.err", "wb") as err:
            proxy = subprocess.Popen([sys.executable, str(PROXY), "proxy", "--listen", f"127.0.0.1:{proxy_port}",
                                      "--upstream", f"127.0.0.1:{broker_port}", "--out", str(out_dir),
                                      "--log", str(session_log)],
                                     stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(proxy_port, proxy, "the proxy")
        bootstrap = f"127.0.0.1:{proxy_port}"
        prefix = f"cap-{client}"
        for i, step in enumerate(steps_of(bootstrap, prefix)):
            shown = [a for j, a in enumerate(step.argv) if a != "-cp" and (j == 0 or step.argv[j - 1] != "-cp")]
            name = " ".join(Path(a).name if a.startswith("/") else a for a in shown[:4])
            out_path = cwork / f"step{i:02d}.out"
            print(f"  [{client}] {name} ...", file=sys.stderr, flush=True)
            with open(out_path, "wb") as out:
                out.write(("$ " + " ".join(step.argv) + "\n").encode())
                out.flush()
                try:
                    proc = subprocess.run(step.argv, input=step.stdin, stdout=out, stderr=subprocess.STDOUT,
                                          timeout=step.timeout_s, env={**os.environ, **step.env}, cwd=cwork,
                                          stdin=None if step.stdin is not None else subprocess.DEVNULL)
                    code: int | str = proc.returncode
                except subprocess.TimeoutExpired:
                    code = f"timeout after {step.timeout_s:.0f} s"
            result.exit_codes.append((name, code))
            if code != 0:
                tail = out_path.read_text(errors="replace").strip().splitlines()[-3:]
                result.odd.append(f"{name}: exit {code} (see {out_path}): " + " | ".join(tail)[:400])
    except RuntimeError as exc:
        result.exit_codes.append(("setup", str(exc)))
        result.odd.append(f"setup: {exc}")
    finally:
        stop(proxy)
        code = stop(broker)
        if code not in (None, 0):
            result.odd.append(f"broker exited with code {code} on SIGTERM")
    files = sorted(out_dir.glob("*.bin")) if out_dir.is_dir() else []
    result.files = len(files)
    result.bytes = sum(f.stat().st_size for f in files)
    result.odd += session_oddities(session_log) + broker_log_oddities(broker_log)
    return result


def session_oddities(path: Path) -> list[str]:
    """Requests left unanswered while the client still waited, connections the broker closed first,
    responses out of step, from the proxy's session log."""
    if not path.is_file():
        return []
    odd = []
    lines = path.read_text(errors="replace").splitlines()
    closed_first = {}
    for line in lines:
        f = line.split("\t")
        if len(f) < 3:
            continue
        event = f[2]
        if event == "broker-eof" and "BROKER-CLOSED-FIRST" in line:
            closed_first[f[1]] = line
        elif event in ("response-unexpected", "unparseable", "bad-request") or "MISMATCH" in line:
            odd.append(f"proxy: {line}")
    for conn, line in closed_first.items():
        pending = [l for l in lines if l.split("\t")[1:3] == [conn, "unanswered"]]
        if pending:
            odd.append(f"proxy: connection {conn} closed by the broker with {len(pending)} request(s) unanswered: "
                       + "; ".join("\t".join(p.split("\t")[3:]) for p in pending[:5]))
    return odd


def broker_log_oddities(path: Path) -> list[str]:
    if not path.is_file():
        return []
    hits = [l for l in path.read_text(errors="replace").splitlines()
            if re.search(r"\b(WARN|ERROR)\b|panicked|closing connection", l)]
    return [f"broker log: {l.strip()[:300]}" for l in hits[:20]] + (
        [f"broker log: ... {len(hits) - 20} more such lines"] if len(hits) > 20 else [])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("clients", nargs="*", help=f"clients to capture (default all: {' '.join(CLIENTS)})")
    p.add_argument("--workdir", help="where broker data and logs go (default: a new temporary directory)")
    args = p.parse_args(argv)
    clients = args.clients or list(CLIENTS)
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        print(f"capture_all: unknown client(s) {unknown}; known: {list(CLIENTS)}", file=sys.stderr)
        return 2
    binary = Path(os.environ.get("STROM_BIN") or TARGET / "release" / "strom").resolve()
    if not binary.is_file():
        print(f"capture_all: broker binary {binary} not found (set STROM_BIN)", file=sys.stderr)
        return 2
    missing = [c for c in clients if not CLIENTS[c][1]()]
    if missing:
        print(f"capture_all: not installed: {missing} (run scripts/setup-clients)", file=sys.stderr)
        return 2
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="strom-capture-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"capture_all: broker {binary}, work dir {work}", file=sys.stderr, flush=True)
    CAPTURES.mkdir(parents=True, exist_ok=True)
    results = []
    for client in clients:
        t0 = time.monotonic()
        print(f"capture_all: {client}", file=sys.stderr, flush=True)
        r = run_client(client, binary, work)
        print(f"capture_all: {client}: {r.files} files, {r.bytes} bytes, {time.monotonic() - t0:.0f} s",
              file=sys.stderr, flush=True)
        results.append(r)
    subprocess.run([sys.executable, str(PROXY), "index", str(CAPTURES)], check=True)

    all_files = sorted(CAPTURES.glob("*/*.bin"))
    print("\n=== summary ===")
    for r in results:
        ok = all(code == 0 for _, code in r.exit_codes)
        print(f"{r.client}: {r.files} files, {r.bytes} bytes, programs {'all exited 0' if ok else 'FAILED'}")
        for name, code in r.exit_codes:
            if code != 0:
                print(f"    exit {code}: {name}")
        for line in r.odd:
            print(f"    odd: {line}")
    print(f"total in {CAPTURES.relative_to(ROOT)}: {len(all_files)} files, "
          f"{sum(f.stat().st_size for f in all_files)} bytes; work dir {work}")
    failed = any(code != 0 for r in results for _, code in r.exit_codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
