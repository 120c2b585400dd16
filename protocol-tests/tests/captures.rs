//! Requests captured byte for byte from real clients (`protocol-tests/captures/`, made by
//! `protocol-tests/capture/`) replayed over real sockets, then malformed variants of each:
//! truncated, over-long varints, a length prefix promising more than is sent, flipped bytes. The
//! broker answers the real requests with well-formed responses, and answers or refuses every
//! variant without ever going down.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, ProduceRequest, RequestHeader, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::Decodable;
use protocol_tests::{BrokerProcess, Client};
use rand::{Rng, SeedableRng};

struct Capture {
    path: String,
    client: String,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    /// The frame without its 4-byte length prefix.
    frame: Vec<u8>,
}

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn load() -> Vec<Capture> {
    let dir = captures_dir();
    let index = std::fs::read_to_string(dir.join("index.tsv")).expect("captures/index.tsv");
    let mut out = Vec::new();
    for line in index.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "bad index line {line:?}");
        let bytes = std::fs::read(dir.join(cols[0])).expect("capture file");
        assert!(bytes.len() >= 12, "{}: too short", cols[0]);
        let length = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        assert_eq!(
            length as usize,
            bytes.len() - 4,
            "{}: length prefix",
            cols[0]
        );
        let api_key: i16 = cols[2].parse().expect("api key");
        out.push(Capture {
            path: cols[0].to_string(),
            client: cols[1].to_string(),
            api_key: ApiKey::try_from(api_key).expect("known api key"),
            version: cols[3].parse().expect("version"),
            correlation_id: cols[4].parse().expect("correlation id"),
            frame: bytes[4..].to_vec(),
        });
    }
    assert!(out.len() >= 50, "only {} captures", out.len());
    out
}

/// Bytes of the request header at the start of `frame`.
fn header_len(c: &Capture) -> usize {
    let mut body = Bytes::copy_from_slice(&c.frame);
    let total = body.len();
    RequestHeader::decode(&mut body, c.api_key.request_header_version(c.version))
        .unwrap_or_else(|e| panic!("{}: header: {e}", c.path));
    total - body.remaining()
}

/// acks=0 produce requests get no response.
fn expects_response(c: &Capture) -> bool {
    if c.api_key != ApiKey::Produce {
        return true;
    }
    let mut body = Bytes::copy_from_slice(&c.frame[header_len(c)..]);
    ProduceRequest::decode(&mut body, c.version)
        .map(|r| r.acks != 0)
        .unwrap_or(true)
}

fn with_prefix(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = i32::from_be_bytes(length);
    assert!(
        (0..=64 << 20).contains(&length),
        "implausible response length {length}"
    );
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

#[test]
fn captured_client_requests_get_well_formed_responses() {
    let captures = load();
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut clients: Vec<String> = captures.iter().map(|c| c.client.clone()).collect();
    clients.dedup();
    let mut answered = 0;
    for client in clients {
        // One connection per client, its requests in their captured order.
        let mut stream = TcpStream::connect(broker.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        for c in captures.iter().filter(|c| c.client == client) {
            stream.write_all(&with_prefix(&c.frame)).expect("send");
            if !expects_response(c) {
                continue;
            }
            let response = read_frame(&mut stream).unwrap_or_else(|e| {
                panic!(
                    "{}: no response ({e})\nbroker log:\n{}",
                    c.path,
                    broker.log()
                )
            });
            let mut body = Bytes::from(response);
            let header =
                ResponseHeader::decode(&mut body, c.api_key.response_header_version(c.version))
                    .unwrap_or_else(|e| panic!("{}: response header: {e}", c.path));
            assert_eq!(header.correlation_id, c.correlation_id, "{}", c.path);
            // kafka-protocol decodes OffsetCommit from v2; v0-1 responses have v2's layout.
            let decode_as = match c.api_key {
                ApiKey::OffsetCommit => c.version.max(2),
                _ => c.version,
            };
            ResponseKind::decode(c.api_key, &mut body, decode_as)
                .unwrap_or_else(|e| panic!("{}: response body does not decode: {e}", c.path));
            assert_eq!(body.remaining(), 0, "{}: bytes after the response", c.path);
            answered += 1;
        }
    }
    assert!(answered >= 50, "only {answered} responses checked");
    assert!(!broker.log().contains("panicked"), "{}", broker.log());
}

/// The variants of one captured frame, each a complete byte stream to send, then the socket's
/// write side is closed.
fn variants(c: &Capture, rng: &mut rand::rngs::StdRng) -> Vec<(String, Vec<u8>)> {
    let frame = &c.frame;
    let head = header_len(c);
    let mut out = Vec::new();
    for cut in [head, head + (frame.len() - head) / 2, frame.len() - 1] {
        if cut < frame.len() {
            out.push((format!("truncated to {cut}"), with_prefix(&frame[..cut])));
        }
    }
    // An over-long varint (or a huge length) where the body starts and in its middle.
    for at in [head, head + (frame.len() - head) / 2] {
        let mut f = frame.clone();
        f.splice(at..at, [0xff; 6]);
        out.push((format!("0xff x6 inserted at {at}"), with_prefix(&f)));
    }
    // The prefix promises 10 more bytes than follow.
    let mut promise = ((frame.len() + 10) as i32).to_be_bytes().to_vec();
    promise.extend_from_slice(frame);
    out.push(("length prefix 10 too long".to_string(), promise));
    // Flipped bytes in the body (the header's api key and version are kept, to reach the
    // handlers).
    for i in 0..4 {
        let mut f = frame.clone();
        if f.len() > 8 {
            let at = rng.gen_range(8..f.len());
            f[at] ^= rng.gen_range(1..=255u8);
            out.push((format!("flip {i} at {at}"), with_prefix(&f)));
        }
    }
    out
}

#[test]
fn malformed_variants_of_captured_requests_never_bring_the_broker_down() {
    let captures = load();
    let mut broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut good = broker.client();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    let mut sent = 0;
    for (n, c) in captures.iter().enumerate() {
        for (what, bytes) in variants(c, &mut rng) {
            let mut stream = TcpStream::connect(broker.addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            // The broker may close first: a refused write is an answer too.
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(Shutdown::Write);
            // Whatever comes back must be whole frames, until the broker closes.
            loop {
                match read_frame(&mut stream) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ) =>
                    {
                        break
                    }
                    Err(e) => panic!(
                        "{} ({what}): the connection neither answered nor closed: {e}",
                        c.path
                    ),
                }
            }
            sent += 1;
        }
        if n % 20 == 0 {
            assert!(broker.is_alive(), "broker died after {}", c.path);
            good.call(9, &MetadataRequest::default().with_topics(Some(vec![])))
                .unwrap_or_else(|e| panic!("after {}: {e}\n{}", c.path, broker.log()));
        }
    }
    assert!(broker.is_alive(), "broker died");
    let mut fresh = Client::connect(broker.addr).expect("connect");
    fresh
        .call(9, &MetadataRequest::default().with_topics(None))
        .expect("a fresh client is served after all variants");
    assert!(sent > 500, "only {sent} variants");
    let log = broker.log();
    assert!(!log.contains("panicked"), "{log}");
}
