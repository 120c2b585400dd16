"""Malformed and hostile input on raw sockets.

Every case must end, within a few seconds, in either a well-formed response or a closed connection;
meanwhile a normal client on its own connection keeps producing and consuming, and the broker
process survives.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING

from strom_harness import ck_consumer, ck_produce_all, ck_producer, ck_read_partition

REPLY_TIMEOUT_S = 5.0
UNSUPPORTED_VERSION = 35
API_VERSIONS = 18
METADATA = 3


def header_v1(api_key: int, api_version: int, correlation_id: int, client_id: bytes = b"strom-bad-input") -> bytes:
    return struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id


def header_v2(api_key: int, api_version: int, correlation_id: int) -> bytes:
    return header_v1(api_key, api_version, correlation_id) + b"\x00"  # no tagged fields


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def compact_string(s: bytes) -> bytes:
    assert len(s) < 127
    return bytes([len(s) + 1]) + s


def connect(broker) -> socket.socket:
    try:
        return socket.create_connection(("127.0.0.1", broker.port), timeout=REPLY_TIMEOUT_S)
    except OSError as exc:
        state = "alive" if broker.alive() else f"exited with {broker.proc.returncode}"
        raise AssertionError(f"cannot connect to the broker ({exc}); broker process {state}") from None


def await_outcome(sock: socket.socket, timeout_s: float = REPLY_TIMEOUT_S):
    """Returns ("response", frame_bytes) once one whole response frame arrived, or ("closed", partial)
    when the broker closed the connection. Fails if neither happens within `timeout_s`."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while True:
        if len(data) >= 4:
            (length,) = struct.unpack(">i", data[:4])
            assert length >= 4, f"response frame with length {length}: {data[:64]!r}"
            if len(data) >= 4 + length:
                return "response", data[: 4 + length]
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"broker neither answered nor closed the connection within {timeout_s:.0f} s "
                f"(received {len(data)} bytes)"
            )
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "closed", data
        except socket.timeout:
            continue
        if not chunk:
            return "closed", data
        data += chunk


def send_all_tolerant(sock: socket.socket, data: bytes) -> None:
    """Sends, tolerating the broker closing early (it may reject a frame from its length alone)."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass


def half_close(sock: socket.socket) -> None:
    """Ends our side of the stream; the broker may already have closed (or reset) the connection."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def assert_error_or_close(sock: socket.socket, correlation_id: int | None, what: str):
    kind, data = await_outcome(sock)
    if kind == "response" and correlation_id is not None:
        (got,) = struct.unpack(">i", data[4:8])
        assert got == correlation_id, f"{what}: response carries correlation id {got}, sent {correlation_id}"
    return kind, data


class Canary:
    """A normal confluent-kafka producer and consumer on their own connections."""

    def __init__(self, broker, topic: str):
        self.broker = broker
        self.topic = topic
        self.producer = ck_producer(broker, **{"linger.ms": 0})
        self.sent: list[bytes] = []

    def check(self, after: str):
        assert self.broker.alive(), f"broker process died after {after}"
        value = b"canary-%d" % len(self.sent)
        (err, _, off), = ck_produce_all(self.producer, [dict(topic=self.topic, partition=0, value=value)],
                                        timeout_s=15)
        assert err is None, f"canary produce failed after {after}: {err}"
        assert off == len(self.sent), f"canary got offset {off} after {after}, expected {len(self.sent)}"
        self.sent.append(value)

    def finish(self):
        assert self.broker.alive(), f"broker process exited with {self.broker.proc.returncode}"
        consumer = ck_consumer(self.broker)
        try:
            msgs = ck_read_partition(consumer, self.topic, 0, OFFSET_BEGINNING, timeout_s=20)
        finally:
            consumer.close()
        assert [m.value() for m in msgs] == self.sent
        assert self.broker.alive(), "broker process died"


@pytest.fixture
def canary(request, broker, topic):
    b = broker()
    c = Canary(b, topic)
    c.check("startup")
    yield c
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:  # a failed test has already said what went wrong
        c.finish()


def test_api_versions_v0_control(canary):
    """Positive control for the raw-socket helpers: a well-formed ApiVersions v0 is answered."""
    with connect(canary.broker) as s:
        s.sendall(frame(header_v1(API_VERSIONS, 0, 4242)))
        kind, data = assert_error_or_close(s, 4242, "ApiVersions v0")
        assert kind == "response", "broker closed the connection on a valid ApiVersions v0"
        (error_code,) = struct.unpack(">h", data[8:10])
        assert error_code == 0
    canary.check("ApiVersions v0")


def test_random_frames(canary):
    for seed in range(25):
        rng = random.Random(seed)
        payload = rng.randbytes(rng.randrange(8, 300))
        (correlation_id,) = struct.unpack(">i", payload[4:8])
        with connect(canary.broker) as s:
            s.sendall(frame(payload))
            assert_error_or_close(s, correlation_id, f"random frame (seed {seed}, api key bytes {payload[:4].hex()})")
        canary.check(f"random frame seed {seed}")


def advertised_ranges(broker) -> dict[int, tuple[int, int]]:
    """The (min, max) version per API key from an ApiVersions v0 request."""
    with connect(broker) as s:
        s.sendall(frame(header_v1(API_VERSIONS, 0, 1)))
        kind, data = await_outcome(s)
    assert kind == "response", "broker closed the connection on ApiVersions v0"
    error_code, count = struct.unpack(">hi", data[8:14])
    assert error_code == 0 and 0 < count < 1000, (error_code, count)
    return {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", data[14 + 6 * i:20 + 6 * i]) for i in range(count))}


def test_advertised_apis_with_random_bodies(canary):
    # Every API key and version the broker advertises, with random bodies: exercises its request
    # decoders. Produce, Fetch and JoinGroup are left out: a body that happened to decode could
    # legitimately get no answer (acks=0) or be parked for its max wait time.
    ranges = advertised_ranges(canary.broker)
    choices = [(k, v) for k, (lo, hi) in sorted(ranges.items()) if k not in (0, 1, 11) for v in range(lo, hi + 1)]
    assert choices, f"nothing to try among {ranges}"
    for seed in range(120):
        rng = random.Random(3000 + seed)
        api_key, version = rng.choice(choices)
        correlation_id = rng.randrange(1, 2**31)
        header = (header_v2 if rng.random() < 0.5 else header_v1)(api_key, version, correlation_id)
        body = rng.randbytes(rng.randrange(0, 120))
        with connect(canary.broker) as s:
            s.sendall(frame(header + body))
            assert_error_or_close(s, correlation_id, f"API key {api_key} v{version} with {len(body)} random bytes "
                                                     f"(seed {3000 + seed})")
        if seed % 20 == 19:
            canary.check(f"random bodies up to seed {3000 + seed}")
    canary.check("random bodies")


# Array and string lengths far beyond the frame: a decoder that sizes its allocation from the
# declared count instead of the bytes present runs out of memory. Each must be rejected.
HUGE_COUNT_REQUESTS = {
    "Produce v3 topics": header_v1(0, 3, 7) + struct.pack(">hhii", -1, -1, 1000, 0x7FFFFFFF),
    "Fetch v4 topics": header_v1(1, 4, 7) + struct.pack(">iiiibi", -1, 100, 1, 1000, 0, 0x7FFFFFFF),
    "ListOffsets v1 topics": header_v1(2, 1, 7) + struct.pack(">ii", -1, 0x7FFFFFFF),
    "ListOffsets v4 topics": header_v1(2, 4, 7) + struct.pack(">ibi", -1, 0, 0x7FFFFFFF),
    "Metadata v1 topics": header_v1(METADATA, 1, 7) + struct.pack(">i", 0x7FFFFFFF),
    "Metadata v9 topics (compact)": header_v2(METADATA, 9, 7) + bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x07]),
    "ApiVersions v3 software name (compact)": header_v2(API_VERSIONS, 3, 7) + bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x07]),
    "CreateTopics v2 topics": header_v1(19, 2, 7) + struct.pack(">i", 0x7FFFFFFF),
    "DeleteTopics v1 names": header_v1(20, 1, 7) + struct.pack(">i", 0x7FFFFFFF),
}


@pytest.mark.parametrize("name", list(HUGE_COUNT_REQUESTS))
def test_huge_declared_array_count(canary, name):
    with connect(canary.broker) as s:
        s.sendall(frame(HUGE_COUNT_REQUESTS[name]))
        assert_error_or_close(s, 7, name)
    time.sleep(0.2)  # an out-of-memory abort may land just after the connection closes
    canary.check(name)


def test_random_unframed_bytes(canary):
    for seed in range(10):
        rng = random.Random(1000 + seed)
        junk = bytearray(rng.randbytes(4096))
        junk[0] |= 0x40  # a length prefix of at least 1 GiB: over any sane request size limit
        with connect(canary.broker) as s:
            send_all_tolerant(s, bytes(junk))
            kind, _ = await_outcome(s)
            assert kind == "closed", f"seed {seed}: broker answered a frame declared as {junk[:4].hex()} bytes"
        canary.check(f"random bytes seed {seed}")
    # Random bytes, then end of stream: whatever the prefix said, the broker must let go.
    for seed in range(10):
        rng = random.Random(2000 + seed)
        with connect(canary.broker) as s:
            send_all_tolerant(s, rng.randbytes(rng.randrange(1, 64)))
            half_close(s)
            assert_error_or_close(s, None, f"random bytes + EOF (seed {seed})")
        canary.check(f"random bytes + EOF seed {seed}")


@pytest.mark.parametrize("prefix", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_huge_or_negative_length_prefix(canary, prefix):
    with connect(canary.broker) as s:
        send_all_tolerant(s, struct.pack(">I", prefix) + header_v1(METADATA, 0, 7))
        kind, _ = await_outcome(s)
        assert kind == "closed", f"broker answered a frame with length prefix {prefix:#x}"
    canary.check(f"length prefix {prefix:#x}")


def test_truncated_request(canary):
    # Length says 100, 10 bytes arrive, then the client goes away.
    with connect(canary.broker) as s:
        s.sendall(struct.pack(">i", 100) + header_v1(METADATA, 0, 1)[:6])
    canary.check("truncated request + close")
    # Same, but half-close: the broker sees end of stream mid-frame and must close its side.
    with connect(canary.broker) as s:
        s.sendall(struct.pack(">i", 100) + header_v1(METADATA, 0, 2)[:6])
        half_close(s)
        kind, _ = await_outcome(s)
        assert kind == "closed", "broker answered a truncated frame"
    canary.check("truncated request + half-close")


def test_unknown_api_key(canary):
    with connect(canary.broker) as s:
        s.sendall(frame(header_v1(9999, 0, 99)))
        assert_error_or_close(s, 99, "unknown API key 9999")
    with connect(canary.broker) as s:
        s.sendall(frame(header_v2(9999, 3, 100) + b"\x00" * 8))
        assert_error_or_close(s, 100, "unknown API key 9999 with a flexible-style header")
    canary.check("unknown API key")


def test_unsupported_metadata_version(canary):
    with connect(canary.broker) as s:
        s.sendall(frame(header_v2(METADATA, 99, 5) + b"\x01\x00\x00"))
        assert_error_or_close(s, 5, "Metadata v99")
    canary.check("Metadata v99")


def test_unsupported_api_versions_version_gets_v0_error_response(canary):
    """Kafka answers ApiVersions with a version it does not know with a v0 response carrying
    UNSUPPORTED_VERSION (35) and its supported ranges, and keeps the connection, so that a client
    can retry with a version it learned from the ranges (librdkafka does exactly this)."""
    body = compact_string(b"strom-compat") + compact_string(b"0.0.1") + b"\x00"
    with connect(canary.broker) as s:
        s.sendall(frame(header_v2(API_VERSIONS, 99, 31337) + body))
        kind, data = assert_error_or_close(s, 31337, "ApiVersions v99")
        assert kind == "response", "broker closed the connection instead of answering ApiVersions v99"
        (error_code,) = struct.unpack(">h", data[8:10])
        assert error_code == UNSUPPORTED_VERSION, f"ApiVersions v99: error code {error_code}, expected 35"
        # v0 body: error_code int16, then [api_key int16, min int16, max int16] with an int32 count.
        (count,) = struct.unpack(">i", data[10:14])
        assert 0 < count < 1000 and len(data) >= 14 + 6 * count, f"ApiVersions v99: bad ranges array ({count})"
        ranges = {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", data[14 + 6 * i:20 + 6 * i])
                                                   for i in range(count))}
        assert API_VERSIONS in ranges and ranges[API_VERSIONS][0] == 0, f"ranges: {ranges}"

        # The connection stays usable: retry with v0 as a client would.
        s.sendall(frame(header_v1(API_VERSIONS, 0, 31338)))
        kind, data = assert_error_or_close(s, 31338, "ApiVersions v0 after v99")
        assert kind == "response", "broker closed the connection after answering ApiVersions v99"
        assert struct.unpack(">h", data[8:10])[0] == 0
    canary.check("ApiVersions v99")


def test_many_bad_connections_at_once(canary):
    socks = []
    try:
        for i in range(50):
            s = connect(canary.broker)
            socks.append(s)
            send_all_tolerant(s, struct.pack(">i", 0x7FFFFFF0) if i % 2 else b"\x00\x00\x00\x10garbage")
        canary.check("50 bad connections open")
        for s in socks:
            half_close(s)
            await_outcome(s)
    finally:
        for s in socks:
            s.close()
    canary.check("50 bad connections closed")
