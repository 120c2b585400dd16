//! Client-visible semantics compared with Apache Kafka 3.8 (issue 19): compaction and the log
//! start offset, time lookups on LogAppendTime topics, retention of the active segment,
//! timestamp validation, and the error codes of Kafka's admin validation. Each test drives the
//! real binary over a socket and checks Kafka's answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use protocol_tests::{batch, BrokerProcess, Client};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// CreateTopics v7 of one single-partition topic with `configs`; returns the error code.
fn create_with(client: &mut Client, topic: &str, configs: &[(&str, Option<&str>)]) -> i16 {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(str(k))
                .with_value(v.map(str))
        })
        .collect();
    let response = client
        .call(
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(5_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(configs)]),
        )
        .expect("create topics");
    response.topics[0].error_code
}

fn produce_partition(
    client: &mut Client,
    topic: &str,
    records: Option<Bytes>,
) -> produce_response::PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(records),
            ])]);
    let response = client.call(9, &request).expect("produce");
    response.responses[0].partition_responses[0].clone()
}

/// Produces one batch; asserts success and returns its base offset.
fn produce_ok(client: &mut Client, topic: &str, records: Bytes) -> i64 {
    let p = produce_partition(client, topic, Some(records));
    assert_eq!(p.error_code, 0, "{p:?}");
    p.base_offset
}

fn fetch(client: &mut Client, topic: &str, offset: i64) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.call(11, &request).expect("fetch");
    response.responses[0].partitions[0].clone()
}

/// The offsets of the records a fetch returned.
fn fetched_offsets(partition: &fetch_response::PartitionData) -> Vec<i64> {
    let Some(records) = &partition.records else {
        return Vec::new();
    };
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decodes")
        .iter()
        .flat_map(|set| set.records.iter().map(|r| r.offset))
        .collect()
}

/// ListOffsets v8 for partition 0: (error code, offset, timestamp).
fn list_offsets(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp),
            ])]);
    let response = client.call(8, &request).expect("list offsets");
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// One batch whose records carry `timestamps` (CreateTime), keyed `k0`, `k1`, ...
fn batch_at(timestamps: &[i64], compression: Compression) -> Bytes {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: *ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Row 1: compaction that removes every record of the head segment leaves the log start offset
/// where it was; a fetch into the cleaned range returns the next surviving batch; both hold
/// after a restart.
#[test]
fn compaction_never_moves_the_log_start_offset() {
    let mut broker = BrokerProcess::start(&[
        "log.cleaner.backoff.ms=100",
        "log.retention.check.interval.ms=100",
    ]);
    let mut client = broker.client();
    let topic = "compacted-head";
    assert_eq!(
        create_with(
            &mut client,
            topic,
            &[
                ("cleanup.policy", Some("compact")),
                ("segment.bytes", Some("100")),
                ("min.cleanable.dirty.ratio", Some("0.01")),
                ("min.compaction.lag.ms", Some("0")),
            ]
        ),
        0
    );
    // Offsets 0-2 (keys key-0..2), superseded by 3-5 (the same keys); each batch fills a
    // segment, so 0 and 3 are closed segments and 6 is the active one.
    assert_eq!(
        produce_ok(
            &mut client,
            topic,
            batch(&[b"old0", b"old1", b"old2"], None, Compression::None)
        ),
        0
    );
    assert_eq!(
        produce_ok(
            &mut client,
            topic,
            batch(&[b"new0", b"new1", b"new2"], None, Compression::None)
        ),
        3
    );
    produce_ok(
        &mut client,
        topic,
        batch(&[b"tail"], None, Compression::None),
    );
    // Cleaning is done when offset 0 no longer reads the old head (or fails, as it did).
    wait_until("the head to be compacted", || {
        let p = fetch(&mut client, topic, 0);
        p.error_code != 0 || fetched_offsets(&p).first() != Some(&0)
    });
    let check = |client: &mut Client, when: &str| {
        assert_eq!(
            list_offsets(client, topic, -2),
            (0, 0, -1),
            "earliest {when}"
        );
        for offset in [0, 2] {
            let p = fetch(client, topic, offset);
            assert_eq!(p.error_code, 0, "fetch at {offset} {when}: {p:?}");
            assert_eq!(p.log_start_offset, 0, "{when}");
            assert_eq!(
                fetched_offsets(&p).first(),
                Some(&3),
                "fetch at {offset} {when}"
            );
        }
    };
    check(&mut client, "after cleaning");
    // A retention pass (compacted topics have none) must not move it either.
    std::thread::sleep(Duration::from_millis(500));
    check(&mut client, "after a retention pass");
    broker.stop_and_restart();
    let mut client = broker.client();
    check(&mut client, "after a clean restart");
    broker.kill_and_restart();
    let mut client = broker.client();
    check(&mut client, "after a crash");
}

/// Row 3: when every segment is past `retention.ms`, the active one included, Kafka rolls a new
/// active segment and deletes them all: earliest = latest, the log end offset stays, and
/// nothing expired is fetched.
#[test]
fn retention_deletes_an_expired_active_segment() {
    let broker = BrokerProcess::start(&["log.retention.check.interval.ms=100"]);
    let mut client = broker.client();
    let topic = "expiring";
    assert_eq!(
        create_with(
            &mut client,
            topic,
            &[
                ("retention.ms", Some("60000")),
                ("segment.bytes", Some("100"))
            ]
        ),
        0
    );
    // Timestamps from long ago: every batch is past retention as soon as it is written.
    let old = 1_000_000_000_000;
    assert_eq!(
        produce_ok(
            &mut client,
            topic,
            batch_at(&[old, old, old], Compression::None)
        ),
        0
    );
    assert_eq!(
        produce_ok(
            &mut client,
            topic,
            batch_at(&[old, old, old], Compression::None)
        ),
        3
    );
    wait_until("retention to delete every segment", || {
        list_offsets(&mut client, topic, -2).1 == 6
    });
    assert_eq!(list_offsets(&mut client, topic, -1), (0, 6, -1), "latest");
    assert_eq!(
        list_offsets(&mut client, topic, -3),
        (0, -1, -1),
        "max timestamp"
    );
    assert_eq!(
        list_offsets(&mut client, topic, 0),
        (0, -1, -1),
        "by timestamp"
    );
    assert_eq!(
        fetch(&mut client, topic, 4).error_code,
        1,
        "OFFSET_OUT_OF_RANGE"
    );
    let p = fetch(&mut client, topic, 6);
    assert_eq!(
        (p.error_code, p.log_start_offset, p.high_watermark),
        (0, 6, 6)
    );
    assert!(fetched_offsets(&p).is_empty());
    // The log goes on at the same offset.
    assert_eq!(
        produce_ok(&mut client, topic, batch_at(&[now_ms()], Compression::None)),
        6
    );
}

/// Row 2: on a `message.timestamp.type=LogAppendTime` topic, ListOffsets by timestamp and
/// max timestamp (-3) search the append times, not the producers' CreateTime values.
#[test]
fn log_append_time_topics_are_searched_by_append_time() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let topic = "append-time";
    assert_eq!(
        create_with(
            &mut client,
            topic,
            &[("message.timestamp.type", Some("LogAppendTime"))]
        ),
        0
    );
    let first = produce_partition(
        &mut client,
        topic,
        Some(batch_at(&[1_000, 2_000, 3_000], Compression::None)),
    );
    assert_eq!(first.error_code, 0);
    let first_time = first.log_append_time_ms;
    assert!(first_time > 3_000, "{first:?}");
    std::thread::sleep(Duration::from_millis(20));
    let second = produce_partition(
        &mut client,
        topic,
        Some(batch_at(&[500, 600], Compression::Gzip)),
    );
    assert_eq!((second.error_code, second.base_offset), (0, 3));
    let second_time = second.log_append_time_ms;
    assert!(second_time > first_time);
    assert_eq!(list_offsets(&mut client, topic, 1_500), (0, 0, first_time));
    assert_eq!(list_offsets(&mut client, topic, 0), (0, 0, first_time));
    assert_eq!(
        list_offsets(&mut client, topic, first_time),
        (0, 0, first_time)
    );
    assert_eq!(
        list_offsets(&mut client, topic, first_time + 1),
        (0, 3, second_time)
    );
    assert_eq!(list_offsets(&mut client, topic, -3), (0, 3, second_time));
    assert_eq!(
        list_offsets(&mut client, topic, second_time + 1),
        (0, -1, -1)
    );
}
