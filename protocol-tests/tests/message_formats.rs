//! Message formats v0/v1 over the wire: Produce v0-2 up-converted, Fetch v0-3 down-converted,
//! against the release binary, with what current clients see of the same records.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use protocol_tests::{batch, parse_legacy_messages, put_legacy_message, BrokerProcess, Client};

const TOPIC: &str = "legacy";

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn skip_str(r: &mut Bytes) {
    let n = r.get_i16();
    r.advance(n.max(0) as usize);
}

/// Produce v`version` of one message set to partition 0; (error code, base offset).
fn produce_legacy(client: &mut Client, version: i16, set: &[u8]) -> (i16, i64) {
    let mut body = BytesMut::new();
    body.put_i16(-1); // acks=all
    body.put_i32(5_000);
    body.put_i32(1);
    put_str(&mut body, TOPIC);
    body.put_i32(1);
    body.put_i32(0);
    body.put_i32(set.len() as i32);
    body.put_slice(set);
    let mut r = client.raw_call(0, version, &body).expect("produce");
    assert_eq!(r.get_i32(), 1);
    skip_str(&mut r);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let code = r.get_i16();
    let base = r.get_i64();
    if version >= 2 {
        r.get_i64();
    }
    if version >= 1 {
        r.get_i32();
    }
    assert!(!r.has_remaining());
    (code, base)
}

/// Fetch v`version` from `offset`; (error code, high watermark, the records' bytes).
fn fetch_legacy(
    client: &mut Client,
    version: i16,
    offset: i64,
    max_bytes: i32,
) -> (i16, i64, Bytes) {
    let mut body = BytesMut::new();
    body.put_i32(-1);
    body.put_i32(0);
    body.put_i32(1);
    if version >= 3 {
        body.put_i32(max_bytes);
    }
    body.put_i32(1);
    put_str(&mut body, TOPIC);
    body.put_i32(1);
    body.put_i32(0);
    body.put_i64(offset);
    body.put_i32(max_bytes);
    let mut r = client.raw_call(1, version, &body).expect("fetch");
    if version >= 1 {
        assert_eq!(r.get_i32(), 0, "throttle time");
    }
    assert_eq!(r.get_i32(), 1);
    skip_str(&mut r);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let code = r.get_i16();
    let high_watermark = r.get_i64();
    let size = r.get_i32();
    assert_eq!(r.remaining(), size.max(0) as usize);
    (code, high_watermark, r)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(bytes).expect("gzip");
    w.finish().expect("gzip")
}

/// (offset, timestamp, key, value) of every record a current consumer (Fetch v12) reads.
fn current_view(client: &mut Client) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let response = client.call(12, &request).expect("fetch v12");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while records.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut records).expect("decode");
        out.extend(
            set.records
                .into_iter()
                .map(|r| (r.offset, r.timestamp, r.key, r.value)),
        );
    }
    out
}

#[test]
fn message_formats_v0_v1_convert_both_ways() {
    let broker = BrokerProcess::start(&["num.partitions=1"]);
    let mut client = broker.client();
    // Auto-created by the first produce's metadata, as old clients rely on.
    client
        .call(
            1,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))])),
        )
        .expect("metadata");

    // Produce v0: two magic 0 messages (no timestamps).
    let mut set = BytesMut::new();
    put_legacy_message(&mut set, 0, 0, 0, 0, Some(b"a"), Some(b"zero"));
    put_legacy_message(&mut set, 0, 1, 0, 0, None, Some(b"one"));
    assert_eq!(produce_legacy(&mut client, 0, &set), (0, 0));
    // Produce v2: a gzip wrapper of three magic 1 messages with relative offsets, as kafka-go
    // 0.2.1 writes them.
    let mut inner = BytesMut::new();
    for (i, value) in [&b"two"[..], b"three", b"four"].iter().enumerate() {
        put_legacy_message(
            &mut inner,
            1,
            i as i64,
            0,
            5_000 + i as i64,
            Some(b"k"),
            Some(value),
        );
    }
    let mut wrapped = BytesMut::new();
    put_legacy_message(&mut wrapped, 1, 0, 1, 5_002, None, Some(&gzip(&inner)));
    assert_eq!(produce_legacy(&mut client, 2, &wrapped), (0, 2));
    // A current producer's zstd batch with headers follows at 5-6.
    let response =
        client
            .call(
                9,
                &ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(5_000)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default().with_records(Some(
                                batch(&[b"five", b"six"], None, Compression::Zstd),
                            )),
                        ])]),
            )
            .expect("produce v9");
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 5);

    // What a current consumer sees: every record, with its own offset and timestamp.
    let b = |s: &str| Some(Bytes::from(s.to_string()));
    let t0 = 1_700_000_000_000;
    let current = current_view(&mut client);
    assert_eq!(
        current,
        vec![
            (0, -1, b("a"), b("zero")),
            (1, -1, None, b("one")),
            (2, 5_000, b("k"), b("two")),
            (3, 5_001, b("k"), b("three")),
            (4, 5_002, b("k"), b("four")),
            (5, t0, b("key-0"), b("five")),
            (6, t0 + 1, b("key-1"), b("six")),
        ]
    );

    // Fetch v0-3 read the same records, down-converted, from any offset (3 is inside the
    // batch of 2-4).
    for version in 0..=3 {
        let magic = if version <= 1 { 0 } else { 1 };
        for from in [0, 3, 6] {
            let (code, high_watermark, records) = fetch_legacy(&mut client, version, from, 1 << 20);
            assert_eq!((code, high_watermark), (0, 7), "v{version}");
            let messages = parse_legacy_messages(records).expect("message set");
            let seen: Vec<_> = messages
                .iter()
                .map(|m| {
                    assert_eq!(m.magic, magic);
                    assert_eq!(m.attributes, 0);
                    (m.offset, m.timestamp, m.key.clone(), m.value.clone())
                })
                .collect();
            let expected: Vec<_> = current
                .iter()
                .filter(|r| r.0 >= from)
                .map(|(o, t, k, v)| (*o, if magic == 0 { -1 } else { *t }, k.clone(), v.clone()))
                .collect();
            assert_eq!(seen, expected, "Fetch v{version} from {from}");
        }
    }

    // Byte limits: 60 bytes hold the first magic 1 message (39 bytes) but not the second.
    // Fetch v2 (a hard limit) cuts at 30 bytes; v3 sends the first message whole (KIP-74).
    let (_, _, records) = fetch_legacy(&mut client, 2, 0, 60);
    assert_eq!(parse_legacy_messages(records).expect("set").len(), 1);
    let (_, _, records) = fetch_legacy(&mut client, 2, 0, 30);
    assert_eq!(records.len(), 30);
    assert!(parse_legacy_messages(records).expect("set").is_empty());
    let (_, _, records) = fetch_legacy(&mut client, 3, 0, 30);
    assert_eq!(parse_legacy_messages(records).expect("set").len(), 1);

    // Refused as Kafka refuses them, and nothing is appended.
    let mut bad_crc = set.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(
        produce_legacy(&mut client, 1, &bad_crc).0,
        2,
        "CORRUPT_MESSAGE"
    );
    let mut zstd = BytesMut::new();
    put_legacy_message(&mut zstd, 1, 0, 4, 0, None, Some(b"not zstd"));
    assert_eq!(
        produce_legacy(&mut client, 2, &zstd).0,
        76,
        "UNSUPPORTED_COMPRESSION_TYPE"
    );
    assert_eq!(
        produce_legacy(&mut client, 2, &set[..set.len() - 3]).0,
        2,
        "partial message"
    );
    assert_eq!(current_view(&mut client).len(), 7);

    // After a restart the up-converted records are stored batches like any other.
    let mut broker = broker;
    broker.stop_and_restart();
    let mut client = broker.client();
    assert_eq!(current_view(&mut client), current);
}
