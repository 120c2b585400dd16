"""The compatibility matrix: every client's matrix program against one strom (see README.md here).

    run_matrix.py [--check] [--clients a,b] [--out DIR]

Without --check it writes compat/MATRIX.md and compat/matrix.json. With --check it writes them to
target/compat-matrix/ and exits 1 when a cell that passes in the checked-in compat/matrix.json does
not pass now (a regression). A client whose program is missing is a failure, not a skip: every row
of the checked-in matrix must run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat" / "tests"))

from strom_harness import Broker, ck_admin, ck_create_topic  # noqa: E402

TARGET = ROOT / "target"
BASELINE = ROOT / "compat" / "matrix.json"
REPORT = ROOT / "compat" / "MATRIX.md"

SCENARIOS = [
    "metadata",
    "produce.keys",
    "produce.headers",
    "produce.timestamps",
    "produce.gzip",
    "produce.snappy",
    "produce.lz4",
    "produce.zstd",
    "produce.acks0",
    "produce.acks1",
    "produce.acksall",
    "produce.idempotent",
    "consume.assign_seek",
    "consume.from_beginning",
    "consume.from_timestamp",
    "group.subscribe_commit_resume",
    "admin.topics",
    "admin.configs",
    "admin.partitions",
]

# Each row: (name, language, command). Paths are relative to the repository root. The programs are
# installed or built by scripts/setup-clients.
PY = str(TARGET / "compat-venv" / "bin" / "python")
CLIENTS: list[tuple[str, str, list[str]]] = [
    ("java", "Java", ["java", "-cp", f"{TARGET / 'compat-java-classes'}:{TARGET / 'compat-jars'}/*",
                      "StromMatrix"]),
    ("confluent-kafka", "Python (librdkafka)", [PY, "compat/matrix/confluent_kafka_matrix.py"]),
    ("kcat", "C (librdkafka), CLI", [PY, "compat/matrix/kcat_matrix.py"]),
    ("kafka-python", "Python", [PY, "compat/matrix/kafka_python_matrix.py"]),
    ("aiokafka", "Python (asyncio)", [PY, "compat/matrix/aiokafka_matrix.py"]),
    ("kafkajs", "Node.js", ["node", "compat/node/matrix.js"]),
    ("sarama", "Go", [str(TARGET / "compat-go" / "sarama_matrix")]),
    ("kafka-go", "Go", [str(TARGET / "compat-go" / "kafkago_matrix")]),
    ("rdkafka", "Rust (librdkafka)", [str(TARGET / "compat-rust" / "release" / "strom-compat-rdkafka")]),
]

PROGRAM_TIMEOUT_S = 900
STATUSES = ("pass", "fail", "n/a")


def topic_for(prefix: str, scenario: str) -> str:
    return prefix + scenario.replace(".", "-")


def run_client(broker: Broker, admin, name: str, command: list[str], scenarios: list[str],
               logdir: Path) -> dict:
    """Runs one client's program; returns {"version", "seconds", "cells": {scenario: cell}}."""
    prefix = f"matrix-{name}-"
    for s in scenarios:
        ck_create_topic(admin, topic_for(prefix, s), 3)
    env = dict(os.environ, NODE_PATH=str(TARGET / "compat-node" / "node_modules"))
    stderr_path = logdir / f"{name}.stderr.log"
    started = time.monotonic()
    version = "?"
    cells: dict[str, dict] = {}
    note = ""
    try:
        with open(stderr_path, "wb") as err:
            proc = subprocess.run(command + [broker.bootstrap, prefix] + scenarios, cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=err, timeout=PROGRAM_TIMEOUT_S)
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            note = f"program exited with code {proc.returncode}"
    except FileNotFoundError as e:
        out, note = "", f"program not found: {e.filename} (scripts/setup-clients builds it)"
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        note = f"program did not finish within {PROGRAM_TIMEOUT_S} s"
    (logdir / f"{name}.stdout.log").write_text(out)
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "client" in msg:
            version = str(msg.get("version", "?"))
        elif msg.get("scenario") in scenarios:
            status = msg.get("status")
            if status not in STATUSES:
                status, msg["detail"] = "fail", f"bad status {status!r}: {msg.get('detail', '')}"
            cells[msg["scenario"]] = {"status": status, "detail": str(msg.get("detail", ""))[:300]}
    for s in scenarios:
        cells.setdefault(s, {"status": "fail", "detail": f"no result ({note or 'not reported'})"})
    return {"version": version, "seconds": round(time.monotonic() - started, 1), "cells": cells}


def strom_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return rev or "unknown"


MARK = {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a"}


def render(matrix: dict) -> str:
    clients = list(matrix["clients"])
    lines = [
        "# Compatibility matrix",
        "",
        f"Generated by `scripts/compat-matrix` on {matrix['date']} against strom {matrix['strom']}. Each cell is a",
        "real program in the client's own language against a real strom process; the scenarios and the",
        "program contract are in [`compat/matrix/README.md`](matrix/README.md). `n/a` means the client's API",
        "cannot express the scenario (the reason is listed below). CI runs `scripts/compat-matrix --check`,",
        "which fails when a cell that passes here stops passing.",
        "",
        "Strom serves Apache Kafka 3.x's protocol floor: Produce v0-2 and Fetch v0-3 (message formats",
        "v0/v1, converted to and from stored v2 batches), CreateTopics v0-1 and DescribeConfigs v0, which",
        "Kafka 4 dropped (KIP-896). Debian's kafka-go 0.2.1 speaks only those for produce, fetch and",
        "topic creation, and sarama 1.22's ClusterAdmin sends DescribeConfigs v0.",
        "",
        "| client | language | version | pass | fail | n/a | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in clients:
        row = matrix["clients"][c]
        counts = {s: sum(1 for cell in row["cells"].values() if cell["status"] == s) for s in STATUSES}
        lines.append(f"| {c} | {row['language']} | {row['version']} | {counts['pass']} | {counts['fail']} "
                     f"| {counts['n/a']} | {row['seconds']} |")
    lines += ["", "| scenario | " + " | ".join(clients) + " |", "|---|" + "---|" * len(clients)]
    for s in SCENARIOS:
        cells = [MARK[matrix["clients"][c]["cells"].get(s, {"status": "fail"})["status"]] for c in clients]
        lines.append(f"| `{s}` | " + " | ".join(cells) + " |")
    notes = [(c, s, cell) for c in clients for s, cell in matrix["clients"][c]["cells"].items()
             if cell["status"] != "pass"]
    if notes:
        lines += ["", "## Cells that do not pass", "", "| client | scenario | status | why |", "|---|---|---|---|"]
        for c, s, cell in notes:
            why = cell["detail"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c} | `{s}` | {cell['status']} | {why} |")
    return "\n".join(lines) + "\n"


def regressions(baseline: dict, now: dict) -> list[str]:
    out = []
    for client, row in baseline.get("clients", {}).items():
        for scenario, cell in row.get("cells", {}).items():
            if cell.get("status") != "pass":
                continue
            got = now["clients"].get(client, {}).get("cells", {}).get(scenario)
            if got is None:
                out.append(f"{client} / {scenario}: passed, not run now")
            elif got["status"] != "pass":
                out.append(f"{client} / {scenario}: passed, now {got['status']}: {got['detail']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write under target/, fail on regressions")
    ap.add_argument("--clients", help="comma-separated rows to run (default: all)")
    args = ap.parse_args()

    wanted = [c for c in CLIENTS if not args.clients or c[0] in args.clients.split(",")]
    if not wanted:
        print(f"no such client; rows: {', '.join(c[0] for c in CLIENTS)}", file=sys.stderr)
        return 2
    outdir = TARGET / "compat-matrix"
    logdir = outdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)

    matrix = {"date": datetime.date.today().isoformat(), "strom": strom_version(), "scenarios": SCENARIOS,
              "clients": {}}
    shutil.rmtree(outdir / "broker", ignore_errors=True)
    broker = Broker(outdir / "broker", [])
    broker.start()
    try:
        admin = ck_admin(broker)
        for name, language, command in wanted:
            print(f"compat-matrix: {name} ...", file=sys.stderr, flush=True)
            row = run_client(broker, admin, name, command, SCENARIOS, logdir)
            row["language"] = language
            matrix["clients"][name] = row
            counts = {s: sum(1 for c in row["cells"].values() if c["status"] == s) for s in STATUSES}
            print(f"compat-matrix: {name} {row['version']}: {counts['pass']} pass, {counts['fail']} fail, "
                  f"{counts['n/a']} n/a in {row['seconds']} s", file=sys.stderr, flush=True)
            if not broker.alive():
                print(broker.log_tail(40), file=sys.stderr)
                print("compat-matrix: strom died", file=sys.stderr)
                return 1
    finally:
        broker.stop()

    if args.check or args.clients:
        (outdir / "matrix.json").write_text(json.dumps(matrix, indent=1, ensure_ascii=False) + "\n")
        (outdir / "MATRIX.md").write_text(render(matrix))
        print(f"compat-matrix: wrote {outdir / 'MATRIX.md'}", file=sys.stderr)
    else:
        BASELINE.write_text(json.dumps(matrix, indent=1, ensure_ascii=False) + "\n")
        REPORT.write_text(render(matrix))
        print(f"compat-matrix: wrote {REPORT} and {BASELINE}", file=sys.stderr)

    if args.check:
        if not BASELINE.exists():
            print("compat-matrix: no checked-in compat/matrix.json to compare with", file=sys.stderr)
            return 1
        bad = regressions(json.loads(BASELINE.read_text()), matrix)
        if args.clients:
            bad = [b for b in bad if b.split(" / ")[0] in matrix["clients"]]
        if bad:
            print("compat-matrix: cells that passed and no longer do:", file=sys.stderr)
            for b in bad:
                print(f"  {b}", file=sys.stderr)
            return 1
        print("compat-matrix: no regressions against compat/matrix.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
