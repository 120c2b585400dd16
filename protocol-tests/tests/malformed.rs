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
