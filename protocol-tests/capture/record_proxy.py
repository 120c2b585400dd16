#!/usr/bin/env python3
"""A recording TCP proxy for the Kafka protocol (Python 3 standard library only).

    record_proxy.py proxy --listen 127.0.0.1:29493 --upstream 127.0.0.1:29492 \
        --out CAPTURES/<client> [--log SESSION.tsv] [--max-frame-bytes 65536] [--all]
    record_proxy.py index CAPTURES_DIR          # (re)writes CAPTURES_DIR/index.tsv
    record_proxy.py show FILE...                # prints the header fields of capture files
    record_proxy.py replay --broker HOST:PORT CAPTURES_DIR|FILE...
                                                # sends them, checks the correlation ids that come back

`proxy` accepts client connections on --listen, opens one connection to --upstream for each, and
copies bytes both ways unchanged. It splits what the client sends into request frames (the 4-byte
big-endian length prefix plus that many bytes) and, for the first frame of each distinct
(api_key, api_version) pair of the session, writes the raw frame (prefix included) to
--out/NNN-<ApiName>-v<version>.bin, NNN counting the files kept, in arrival order across all the
session's connections. Produce and Fetch frames bigger than --max-frame-bytes are not kept (a later,
smaller frame of the same pair is). --all keeps every frame instead of the first of each pair.

The broker advertises its own address in Metadata responses; start it with advertised.listeners
pointing at --listen so that clients come back through the proxy for every broker connection.

--log gets one tab-separated line per request and per connection event (request sizes, response
sizes and latencies, requests the broker never answered, connections it closed), for looking at
what the broker did during a capture session. It is not part of the captures.

The proxy runs until SIGTERM or SIGINT and then prints a one-line summary to stderr.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

# Kafka API keys (org.apache.kafka.common.protocol.ApiKeys, Kafka 4.x; 4-7 are the pre-KRaft
# controller APIs that 4.0 removed).
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr", 5: "StopReplica",
    6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
    23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
    27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls",
    31: "DeleteAcls", 32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials",
    52: "Vote", 53: "BeginQuorumEpoch", 54: "EndQuorumEpoch", 55: "DescribeQuorum",
    56: "AlterPartition", 57: "UpdateFeatures", 58: "Envelope", 59: "FetchSnapshot",
    60: "DescribeCluster", 61: "DescribeProducers", 62: "BrokerRegistration",
    63: "BrokerHeartbeat", 64: "UnregisterBroker", 65: "DescribeTransactions",
    66: "ListTransactions", 67: "AllocateProducerIds", 68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe", 70: "ControllerRegistration", 71: "GetTelemetrySubscriptions",
    72: "PushTelemetry", 73: "AssignReplicasToDirs", 74: "ListConfigResources",
    75: "DescribeTopicPartitions", 76: "ShareGroupHeartbeat", 77: "ShareGroupDescribe",
    78: "ShareFetch", 79: "ShareAcknowledge", 80: "AddRaftVoter", 81: "RemoveRaftVoter",
    82: "UpdateRaftVoter", 83: "InitializeShareGroupState", 84: "ReadShareGroupState",
    85: "WriteShareGroupState", 86: "DeleteShareGroupState", 87: "ReadShareGroupStateSummary",
    88: "StreamsGroupHeartbeat", 89: "StreamsGroupDescribe", 90: "DescribeShareGroupOffsets",
    91: "AlterShareGroupOffsets", 92: "DeleteShareGroupOffsets",
}
PRODUCE, FETCH = 0, 1
# Refuse frames whose length prefix is absurd (not Kafka, or out of step): forward, stop parsing.
SANE_FRAME_LIMIT = 256 * 1024 * 1024


def api_name(key: int) -> str:
    return API_NAMES.get(key, f"Api{key}")


class Header:
    """The request header fields every request header version >= 1 shares (all but
    ControlledShutdown v0 use v1 or v2): api_key, api_version, correlation_id, client_id."""

    __slots__ = ("api_key", "api_version", "correlation_id", "client_id", "client_id_end")

    def __init__(self, frame: bytes):
        """`frame` is the frame body, without the length prefix."""
        if len(frame) < 8:
            raise ValueError(f"frame of {len(frame)} bytes is too short for a request header")
        self.api_key, self.api_version, self.correlation_id = struct.unpack_from(">hhi", frame, 0)
        self.client_id = None
        self.client_id_end = 8
        if len(frame) >= 10:
            (n,) = struct.unpack_from(">h", frame, 8)
            if n >= 0 and 10 + n <= len(frame):
                self.client_id = frame[10:10 + n].decode("utf-8", errors="replace")
                self.client_id_end = 10 + n
            elif n == -1:
                self.client_id_end = 10


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def produce_expects_response(frame: bytes, h: Header) -> bool:
    """False for a Produce request with acks=0 (the broker sends no response); True otherwise,
    and when the frame cannot be read that far."""
    if h.api_key != PRODUCE:
        return True
    try:
        pos = h.client_id_end
        if h.api_version >= 9:  # flexible: header tagged fields, compact transactional_id
            n_tags, pos = _uvarint(frame, pos)
            for _ in range(n_tags):
                _, pos = _uvarint(frame, pos)
                size, pos = _uvarint(frame, pos)
                pos += size
            n, pos = _uvarint(frame, pos)
            pos += max(n - 1, 0)
        elif h.api_version >= 3:  # nullable string transactional_id
            (n,) = struct.unpack_from(">h", frame, pos)
            pos += 2 + max(n, 0)
        (acks,) = struct.unpack_from(">h", frame, pos)
        return acks != 0
    except (IndexError, struct.error):
        return True


class Session:
    """What one proxy run records: the files kept and the session log."""

    def __init__(self, out: Path, log_path: Path | None, max_frame_bytes: int, keep_all: bool):
        self.out = out
        self.max_frame_bytes = max_frame_bytes
        self.keep_all = keep_all
        self.lock = threading.Lock()
        self.seen: set[tuple[int, int]] = set()
        self.kept = 0
        self.requests = 0
        self.start = time.monotonic()
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        self.closed_by_broker_with_pending = 0
        self.unanswered = 0
        self.next_conn = 0

    def conn_id(self) -> int:
        with self.lock:
            self.next_conn += 1
            return self.next_conn

    def log(self, *fields: object) -> None:
        if self.log_file is None:
            return
        line = "\t".join([f"{time.monotonic() - self.start:.3f}", *map(str, fields)])
        with self.lock:
            self.log_file.write(line + "\n")

    def record(self, conn: int, frame_with_prefix: bytes, h: Header) -> str:
        """Decides whether to keep the frame; writes it if so. Returns what was done."""
        key = (h.api_key, h.api_version)
        size = len(frame_with_prefix)
        with self.lock:
            self.requests += 1
            if h.api_key in (PRODUCE, FETCH) and size > self.max_frame_bytes:
                action = "skipped-large"
            elif key in self.seen and not self.keep_all:
                action = "dup"
            else:
                self.seen.add(key)
                name = f"{self.kept:03d}-{api_name(h.api_key)}-v{h.api_version}.bin"
                self.kept += 1
                tmp = self.out / (name + ".tmp")
                tmp.write_bytes(frame_with_prefix)
                os.replace(tmp, self.out / name)
                action = f"kept:{name}"
        return action


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Connection:
    def __init__(self, session: Session, client: socket.socket, upstream_addr: tuple[str, int]):
        self.session = session
        self.client = client
        self.upstream_addr = upstream_addr
        self.id = session.conn_id()
        # Requests awaiting a response, in order: (correlation_id, api_key, api_version, t_sent).
        self.pending: collections.deque = collections.deque()
        self.pending_lock = threading.Lock()
        self.upstream: socket.socket | None = None
        self.client_eof = False

    def run(self) -> None:
        s = self.session
        try:
            self.upstream = socket.create_connection(self.upstream_addr, timeout=10)
            self.upstream.settimeout(None)
        except OSError as exc:
            s.log(self.id, "connect-failed", exc)
            self.client.close()
            return
        for sock in (self.client, self.upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.log(self.id, "open", "%s:%d" % self.client.getpeername())
        up = threading.Thread(target=self.pump, args=(self.client, self.upstream, True), daemon=True)
        down = threading.Thread(target=self.pump, args=(self.upstream, self.client, False), daemon=True)
        up.start()
        down.start()
        up.join()
        down.join()
        with self.pending_lock:
            left = list(self.pending)
        for corr, key, ver, _ in left:
            s.unanswered += 1
            s.log(self.id, "unanswered", api_name(key), f"v{ver}", f"corr={corr}")
        self.client.close()
        self.upstream.close()
        s.log(self.id, "closed")

    def pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        buf = bytearray()
        parsing = True
        side = "client" if from_client else "broker"
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            # Frames are noted (a request as pending) before they are forwarded, so a response
            # never arrives ahead of its request's bookkeeping.
            if parsing:
                buf += data
            while parsing and len(buf) >= 4:
                (n,) = struct.unpack_from(">i", buf, 0)
                if n < 0 or n > SANE_FRAME_LIMIT:
                    self.session.log(self.id, "unparseable", side, f"length={n}")
                    parsing = False
                    buf.clear()
                    break
                if len(buf) < 4 + n:
                    break
                frame = bytes(buf[:4 + n])
                del buf[:4 + n]
                if from_client:
                    self.on_request(frame)
                else:
                    self.on_response(frame)
            try:
                dst.sendall(data)
            except OSError:
                break
        if buf and parsing:
            self.session.log(self.id, "partial-frame", side, f"{len(buf)} bytes")
        if from_client:
            self.client_eof = True
            self.session.log(self.id, "client-eof")
        else:
            with self.pending_lock:
                pending = len(self.pending)
            # The broker closing first while requests are outstanding is worth a look; closing
            # after the client did is the normal end of a connection.
            first = "" if self.client_eof else "BROKER-CLOSED-FIRST"
            self.session.log(self.id, "broker-eof", f"pending={pending}", first)
            if pending and not self.client_eof:
                self.session.closed_by_broker_with_pending += 1
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def on_request(self, frame: bytes) -> None:
        s = self.session
        try:
            h = Header(frame[4:])
        except ValueError as exc:
            s.log(self.id, "bad-request", exc)
            return
        action = s.record(self.id, frame, h)
        if produce_expects_response(frame[4:], h):
            with self.pending_lock:
                self.pending.append((h.correlation_id, h.api_key, h.api_version, time.monotonic()))
            expect = ""
        else:
            expect = "acks=0"
        s.log(self.id, "request", api_name(h.api_key), f"v{h.api_version}", f"corr={h.correlation_id}",
              f"client_id={h.client_id}", f"bytes={len(frame)}", action, expect)

    def on_response(self, frame: bytes) -> None:
        s = self.session
        corr = struct.unpack_from(">i", frame, 4)[0] if len(frame) >= 8 else None
        with self.pending_lock:
            head = self.pending.popleft() if self.pending else None
        if head is None:
            s.log(self.id, "response-unexpected", f"corr={corr}", f"bytes={len(frame)}")
            return
        want, key, ver, t0 = head
        note = "" if want == corr else f"MISMATCH expected corr={want}"
        s.log(self.id, "response", api_name(key), f"v{ver}", f"corr={corr}", f"bytes={len(frame)}",
              f"ms={(time.monotonic() - t0) * 1000:.1f}", note)


def cmd_proxy(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.bin")):
        print(f"record_proxy: {out} already holds .bin files; remove them first", file=sys.stderr)
        return 2
    session = Session(out, Path(args.log) if args.log else None, args.max_frame_bytes, args.all)
    listen = parse_addr(args.listen)
    upstream = parse_addr(args.upstream)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(listen)
    server.listen(128)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    session.log(0, "listening", args.listen, "upstream", args.upstream)
    print(f"record_proxy: listening on {args.listen}, upstream {args.upstream}, writing {out}",
          file=sys.stderr, flush=True)
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                break
            raise
        client.settimeout(None)
        threading.Thread(target=Connection(session, client, upstream).run, daemon=True).start()
    server.close()
    # Give connections a moment to deliver what is in flight; the files are already written.
    time.sleep(0.2)
    summary = (f"record_proxy: {session.requests} requests, {session.kept} files kept, "
               f"{session.unanswered} unanswered so far, "
               f"{session.closed_by_broker_with_pending} connections closed by the broker with requests pending")
    session.log(0, "summary", summary)
    print(summary, file=sys.stderr, flush=True)
    return 0


def read_capture(path: Path) -> tuple[bytes, Header]:
    data = path.read_bytes()
    if len(data) < 4:
        raise ValueError(f"{path}: shorter than a length prefix")
    (n,) = struct.unpack_from(">i", data, 0)
    if n != len(data) - 4:
        raise ValueError(f"{path}: length prefix {n} but {len(data) - 4} bytes follow")
    return data, Header(data[4:])


def cmd_index(args: argparse.Namespace) -> int:
    root = Path(args.captures)
    lines = ["path\tclient\tapi_key\tapi_version\tcorrelation_id\tclient_id"]
    for path in sorted(root.glob("*/*.bin")):
        _, h = read_capture(path)
        client_id = "" if h.client_id is None else h.client_id.replace("\t", " ").replace("\n", " ")
        lines.append("\t".join([path.relative_to(root).as_posix(), path.parent.name, str(h.api_key),
                                str(h.api_version), str(h.correlation_id), client_id]))
    (root / "index.tsv").write_text("\n".join(lines) + "\n")
    print(f"record_proxy: wrote {root / 'index.tsv'} ({len(lines) - 1} files)", file=sys.stderr)
    return 0


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def cmd_replay(args: argparse.Namespace) -> int:
    """Sends capture files to a broker, one connection per client directory (a new one when the
    broker closes it), and checks that each gets a response with the request's correlation id
    (a Produce with acks=0 expects none). A quick self-check of the captures; it does not decode
    response bodies."""
    paths = [Path(f) for f in args.files]
    files = sorted(p for f in paths for p in (f.glob("*/*.bin") if f.is_dir() else [f]))
    addr = parse_addr(args.broker)
    bad = 0
    sock = None
    current_dir = None
    for path in files:
        data, h = read_capture(path)
        if sock is None or path.parent != current_dir:
            if sock:
                sock.close()
            sock = socket.create_connection(addr, timeout=args.timeout)
            current_dir = path.parent
        label = f"{path.parent.name}/{path.name}"
        try:
            t0 = time.monotonic()
            sock.sendall(data)
            if not produce_expects_response(data[4:], h):
                print(f"ok    {label}: acks=0, no response expected")
                continue
            (n,) = struct.unpack(">i", _read_exact(sock, 4))
            body = _read_exact(sock, n)
            (corr,) = struct.unpack_from(">i", body, 0)
            if corr != h.correlation_id:
                bad += 1
                print(f"BAD   {label}: response correlation id {corr}, request's {h.correlation_id}")
            else:
                print(f"ok    {label}: {n + 4} byte response in {(time.monotonic() - t0) * 1000:.0f} ms")
        except (OSError, ConnectionError, struct.error) as exc:
            bad += 1
            print(f"BAD   {label}: {exc!r}")
            sock.close()
            sock = None
    if sock:
        sock.close()
    print(f"record_proxy: replayed {len(files)} files, {bad} without a matching response", file=sys.stderr)
    return 1 if bad else 0


def cmd_show(args: argparse.Namespace) -> int:
    for name in args.files:
        data, h = read_capture(Path(name))
        print(f"{name}\t{api_name(h.api_key)}\tkey={h.api_key}\tv{h.api_version}\t"
              f"corr={h.correlation_id}\tclient_id={h.client_id}\tbytes={len(data)}")
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("proxy", help="run the recording proxy")
    pp.add_argument("--listen", required=True, help="host:port to accept clients on")
    pp.add_argument("--upstream", required=True, help="host:port of the real broker")
    pp.add_argument("--out", required=True, help="directory for the captured frames")
    pp.add_argument("--log", help="session log file (tab-separated, appended)")
    pp.add_argument("--max-frame-bytes", type=int, default=64 * 1024,
                    help="Produce/Fetch frames bigger than this are not kept (default 65536)")
    pp.add_argument("--all", action="store_true", help="keep every frame, not only the first of each pair")
    pi = sub.add_parser("index", help="write CAPTURES/index.tsv from CAPTURES/*/*.bin")
    pi.add_argument("captures")
    ps = sub.add_parser("show", help="print the header fields of capture files")
    ps.add_argument("files", nargs="+")
    pr = sub.add_parser("replay", help="send capture files to a broker, check the responses' correlation ids")
    pr.add_argument("--broker", required=True, help="host:port of the broker")
    pr.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each response")
    pr.add_argument("files", nargs="+", help="capture files, or a captures directory (all */*.bin)")
    args = p.parse_args(argv)
    return {"proxy": cmd_proxy, "index": cmd_index, "show": cmd_show, "replay": cmd_replay}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
