//! Bad input closes one connection (or gets an error response), never the broker: a normal
//! client on another connection keeps working throughout.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{batch, BrokerProcess, Client};
use rand::{Rng, SeedableRng};

fn healthy(client: &mut Client, broker: &BrokerProcess, after: &str) {
    let response = client
        .call(
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("healthy"))))])),
        )
        .unwrap_or_else(|e| {
            panic!(
                "after {after}: the well-behaved client failed: {e:#}\nbroker log:\n{}",
                broker.log()
            )
        });
    assert_eq!(response.topics[0].error_code, 0);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_i32(body.len() as i32);
    f.put_slice(body);
    f.to_vec()
}

#[test]
fn hostile_frames_close_only_their_connection() {
    let mut broker = BrokerProcess::start(&[]);
    let mut good = broker.client();
    healthy(&mut good, &broker, "start");

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("2 GiB length prefix", 0x7fff_ffffu32.to_be_bytes().to_vec()),
        (
            "negative length prefix",
            0x8000_0000u32.to_be_bytes().to_vec(),
        ),
        ("too short for a header", frame(&[0, 3])),
        (
            "unknown API key",
            frame(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]),
        ),
        (
            "unsupported Metadata version",
            frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff]),
        ),
        (
            "garbage Metadata body",
            frame(&[
                0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ]),
        ),
        (
            "garbage Produce body",
            frame(&[0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0x99, 0x99, 0x99]),
        ),
        (
            "client id longer than the frame",
            frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, b'a']),
        ),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for _ in 0..20 {
        let len = rng.gen_range(8..200);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        cases.push(("random bytes", frame(&body)));
    }
    for (what, bytes) in cases {
        let mut bad = broker.client();
        bad.stream.write_all(&bytes).unwrap();
        // Either an answer then a close, or just a close; never a hang and never a crash.
        assert!(bad.is_closed_by_peer(), "{what}: connection left open");
        healthy(&mut good, &broker, what);
    }

    // A truncated request: the length says 100, 10 bytes arrive, then the client leaves.
    let mut truncated = broker.client();
    truncated.stream.write_all(&100i32.to_be_bytes()).unwrap();
    truncated
        .stream
        .write_all(&[0, 3, 0, 9, 0, 0, 0, 1, 0, 0])
        .unwrap();
    drop(truncated);
    healthy(&mut good, &broker, "a truncated request");

    // A malformed batch inside a well-formed Produce is a partition error, not a close.
    let mut corrupt = batch(&[b"x"], None, kafka_protocol::records::Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let response = good
        .call(
            9,
            &ProduceRequest::default().with_acks(1).with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("healthy")))
                    .with_partition_data(vec![produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(corrupt.into()))]),
            ]),
        )
        .unwrap();
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );
    healthy(&mut good, &broker, "a corrupt batch");
    assert!(broker.is_alive(), "broker died; log:\n{}", broker.log());
}

/// Every (API key, version) the broker advertises, with a valid header and a body that is
/// empty, cut short, all 0xff (huge lengths, over-long varints) or random: each gets an answer
/// or a closed connection, and the broker keeps serving.
#[test]
fn every_advertised_version_survives_malformed_bodies() {
    use kafka_protocol::protocol::Encodable;

    let mut broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut good = broker.client();
    let versions = good
        .call(3, &ApiVersionsRequest::default())
        .expect("api versions");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xbad_b0d1);
    let mut sent = 0;
    for range in &versions.api_keys {
        let Ok(key) = ApiKey::try_from(range.api_key) else {
            continue;
        };
        for version in range.min_version..=range.max_version {
            let header = RequestHeader::default()
                .with_request_api_key(range.api_key)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("malformed")));
            let mut head = BytesMut::new();
            header
                .encode(&mut head, key.request_header_version(version))
                .expect("header");
            let random: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            let bodies: [(&str, Vec<u8>); 4] = [
                ("empty body", vec![]),
                ("one byte", vec![0]),
                ("0xff x32", vec![0xff; 32]),
                ("random", random),
            ];
            for (what, body) in bodies {
                let mut bad = broker.client();
                let mut f = head.to_vec();
                f.extend_from_slice(&body);
                bad.stream.write_all(&frame(&f)).expect("send");
                bad.stream
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shutdown");
                // Whatever comes back is whole frames, then the broker closes.
                let started = std::time::Instant::now();
                loop {
                    if let Err(e) = bad.read_frame() {
                        let e = format!("{e:#}");
                        assert!(
                            !e.contains("implausible") && started.elapsed().as_secs() < 10,
                            "{key:?} v{version}, {what}: {e}"
                        );
                        break;
                    }
                }
                sent += 1;
            }
        }
        healthy(&mut good, &broker, &format!("malformed bodies of {key:?}"));
    }
    assert!(sent > 400, "only {sent} requests");
    assert!(broker.is_alive(), "broker died; log:\n{}", broker.log());
    assert!(!broker.log().contains("panicked"), "{}", broker.log());
}
