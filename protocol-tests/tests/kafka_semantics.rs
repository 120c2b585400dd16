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
use uuid::Uuid;

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

/// Produce v9 of one batch to partition 0: (error code, base offset, record_errors as
/// (batch index, message), error message).
fn produce_detailed(
    client: &mut Client,
    topic: &str,
    records: Bytes,
) -> (i16, i64, Vec<i32>, Option<String>) {
    let p = produce_partition(client, topic, Some(records));
    (
        p.error_code,
        p.base_offset,
        p.record_errors.iter().map(|e| e.batch_index).collect(),
        p.error_message.map(|m| m.to_string()),
    )
}

/// (error code, base offset, record_errors' batch indexes) of `produce_detailed`.
fn cbe(answer: (i16, i64, Vec<i32>, Option<String>)) -> (i16, i64, Vec<i32>) {
    (answer.0, answer.1, answer.2)
}

const HOUR_MS: i64 = 3_600_000;

/// Row 4: `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937) and the older
/// `message.timestamp.difference.max.ms`, per topic: INVALID_TIMESTAMP (32) naming each bad
/// record, and the whole batch is refused.
#[test]
fn timestamps_out_of_range_are_refused_per_topic() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let hour = HOUR_MS.to_string();
    for (topic, key) in [
        ("ts-before", "message.timestamp.before.max.ms"),
        ("ts-after", "message.timestamp.after.max.ms"),
        ("ts-difference", "message.timestamp.difference.max.ms"),
    ] {
        assert_eq!(create_with(&mut client, topic, &[(key, Some(&hour))]), 0);
    }
    let now = now_ms();
    let past = now - 2 * HOUR_MS;
    let future = now + 2 * HOUR_MS;
    // Before: the past and 0 are refused, the future is not.
    for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (code, base, errors, message) = produce_detailed(
            &mut client,
            "ts-before",
            batch_at(&[now, past, now, 0, now], codec),
        );
        assert_eq!((code, base, errors), (32, -1, vec![1, 3]), "{codec:?}");
        assert!(message.is_some_and(|m| m.contains("invalid timestamp")));
    }
    assert_eq!(
        produce_detailed(
            &mut client,
            "ts-before",
            batch_at(&[future, now], Compression::None)
        )
        .0,
        0
    );
    // After: the future is refused, the past is not.
    assert_eq!(
        cbe(produce_detailed(
            &mut client,
            "ts-after",
            batch_at(&[now, now, future], Compression::Lz4)
        )),
        (32, -1, vec![2])
    );
    assert_eq!(
        produce_detailed(
            &mut client,
            "ts-after",
            batch_at(&[0, past], Compression::None)
        )
        .0,
        0
    );
    // Difference bounds both sides; a record without a timestamp (-1) is not checked.
    assert_eq!(
        produce_detailed(
            &mut client,
            "ts-difference",
            batch_at(&[past, now, future], Compression::None)
        )
        .2,
        vec![0, 2]
    );
    assert_eq!(
        produce_detailed(
            &mut client,
            "ts-difference",
            batch_at(&[-1, now], Compression::None)
        )
        .0,
        0
    );
    // One bad record among many: only it is named, and nothing of the batch was stored.
    let mut many = vec![now; 50];
    many[37] = 0;
    let (code, _, errors, _) = produce_detailed(
        &mut client,
        "ts-difference",
        batch_at(&many, Compression::Gzip),
    );
    assert_eq!((code, errors), (32, vec![37]));
    for topic in ["ts-before", "ts-after", "ts-difference"] {
        assert_eq!(
            list_offsets(&mut client, topic, -1).1,
            2,
            "{topic}: only the good batches"
        );
    }
}

/// Row 4 at broker level (`log.message.timestamp.*`), overridden per topic, and ignored on a
/// LogAppendTime topic.
#[test]
fn timestamps_out_of_range_are_refused_per_broker() {
    let broker = BrokerProcess::start(&[
        "log.message.timestamp.before.max.ms=3600000",
        "log.message.timestamp.difference.max.ms=7200000",
    ]);
    let mut client = broker.client();
    assert_eq!(create_with(&mut client, "plain", &[]), 0);
    assert_eq!(
        create_with(
            &mut client,
            "loose",
            &[("message.timestamp.before.max.ms", Some("86400000"))]
        ),
        0
    );
    assert_eq!(
        create_with(
            &mut client,
            "stamped",
            &[("message.timestamp.type", Some("LogAppendTime"))]
        ),
        0
    );
    let now = now_ms();
    let two_hours_ago = batch_at(&[now - 2 * HOUR_MS], Compression::None);
    let in_three_hours = batch_at(&[now + 3 * HOUR_MS], Compression::None);
    assert_eq!(
        cbe(produce_detailed(
            &mut client,
            "plain",
            two_hours_ago.clone()
        )),
        (32, -1, vec![0])
    );
    // after.max.ms is unset: difference.max.ms (2 h) stands in for it.
    assert_eq!(
        produce_detailed(&mut client, "plain", in_three_hours.clone()).0,
        32
    );
    assert_eq!(
        produce_detailed(&mut client, "loose", two_hours_ago.clone()).0,
        0
    );
    assert_eq!(produce_detailed(&mut client, "stamped", two_hours_ago).0, 0);
    assert_eq!(
        produce_detailed(&mut client, "stamped", in_three_hours).0,
        0
    );
}

fn zigzag(value: i64, out: &mut Vec<u8>) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A batch of one well-formed record whose value is `value_bytes` zeros, compressed with
/// `codec` (1 gzip, 4 zstd); `unset_max_timestamp` leaves the max timestamp at -1, as old
/// sarama does, which makes the broker read the records. `zeros_only`: the stream is only
/// zeros (no valid record).
fn bomb(codec: i16, value_bytes: u64, unset_max_timestamp: bool, zeros_only: bool) -> Bytes {
    use std::io::Write;
    let mut prefix = Vec::new();
    if !zeros_only {
        let mut body = vec![0u8, 0, 0]; // attributes, timestamp delta 0, offset delta 0
        zigzag(-1, &mut body); // null key
        zigzag(value_bytes as i64, &mut body);
        zigzag(body.len() as i64 + value_bytes as i64 + 1, &mut prefix);
        prefix.extend_from_slice(&body);
    }
    let chunk = vec![0u8; 1 << 20];
    let feed = |w: &mut dyn Write| {
        w.write_all(&prefix).expect("compress");
        let mut left = value_bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n]).expect("compress");
            left -= n as u64;
        }
        if !zeros_only {
            w.write_all(&[0]).expect("compress"); // no headers
        }
    };
    let compressed = match codec {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            feed(&mut e);
            e.finish().expect("gzip")
        }
        _ => {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
            feed(&mut e);
            e.finish().expect("zstd")
        }
    };
    let now = now_ms();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + compressed.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, computed below
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&compressed);
    strom::log::batch::set_max_timestamp(&mut b, if unset_max_timestamp { -1 } else { now });
    Bytes::from(b)
}

/// Issue 10, item 3: decompression is bounded by `max.message.bytes` × 64 wherever the broker
/// reads records (a batch with an unset max timestamp, recompression, timestamp checks,
/// ListOffsets by timestamp): bombs get MESSAGE_TOO_LARGE (or INVALID_RECORD when they hold
/// no valid record) and the broker stays up with a bounded peak RSS.
#[test]
fn decompression_bombs_are_refused_with_bounded_memory() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    assert_eq!(create_with(&mut client, "bombs", &[]), 0);
    assert_eq!(
        create_with(
            &mut client,
            "recompressed",
            &[("compression.type", Some("lz4"))]
        ),
        0
    );
    assert_eq!(
        create_with(
            &mut client,
            "checked",
            &[("message.timestamp.difference.max.ms", Some("3600000"))]
        ),
        0
    );
    let zstd_bomb = bomb(4, 2 << 30, true, false);
    let gzip_bomb = bomb(1, 256 << 20, true, false);
    assert!(
        zstd_bomb.len() < 1 << 20 && gzip_bomb.len() < 1 << 20,
        "{} {}",
        zstd_bomb.len(),
        gzip_bomb.len()
    );
    for _ in 0..3 {
        assert_eq!(
            produce_detailed(&mut client, "bombs", zstd_bomb.clone()).0,
            10
        );
        assert_eq!(
            produce_detailed(&mut client, "bombs", gzip_bomb.clone()).0,
            10
        );
    }
    let set_max = bomb(4, 2 << 30, false, false);
    assert_eq!(
        produce_detailed(&mut client, "recompressed", set_max.clone()).0,
        10
    );
    assert_eq!(
        produce_detailed(&mut client, "checked", set_max.clone()).0,
        10
    );
    // Zeros are no record at all: INVALID_RECORD, as Kafka's record parser answers.
    assert_eq!(
        produce_detailed(&mut client, "bombs", bomb(4, 1 << 30, true, true)).0,
        87
    );
    // A bomb the broker has no reason to open is stored as sent (Kafka too accepts a valid
    // record of any inflated size); looking it up by time does not inflate it.
    assert_eq!(produce_detailed(&mut client, "bombs", set_max).0, 0);
    for _ in 0..3 {
        assert_eq!(list_offsets(&mut client, "bombs", 0).1, 0);
    }
    // Ordinary batches with an unset max timestamp still go in.
    let mut fine = batch_at(&[now_ms(), now_ms()], Compression::Zstd).to_vec();
    strom::log::batch::set_max_timestamp(&mut fine, -1);
    assert_eq!(
        produce_detailed(&mut client, "bombs", Bytes::from(fine)).0,
        0
    );
    let peak_kib = broker.peak_rss_kib().expect("peak RSS");
    eprintln!("broker peak RSS after the bombs: {peak_kib} KiB");
    assert!(peak_kib < 400 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(list_offsets(&mut client, "bombs", -1).1, 3);
}

/// IncrementalAlterConfigs v1 of one resource: (error code).
fn incremental_alter(
    client: &mut Client,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(str(k))
                .with_config_operation(*op)
                .with_value(v.map(str))
        })
        .collect();
    let response = client
        .call(
            1,
            &IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(str(resource))
                        .with_configs(configs),
                ]),
        )
        .expect("incremental alter configs");
    response.responses[0].error_code
}

/// A topic's config value as DescribeConfigs v4 reports it.
fn topic_config(client: &mut Client, topic: &str, key: &str) -> Option<String> {
    let response = client
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str(topic))
                    .with_configuration_keys(Some(vec![str(key)])),
            ]),
        )
        .expect("describe configs");
    response.results[0]
        .configs
        .first()
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

/// Rows 5-13: the error codes of Kafka's admin and produce validation.
#[test]
fn admin_validation_answers_as_kafka() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    // Row 5: DeleteRecords on a topic without cleanup.policy=delete is a POLICY_VIOLATION.
    assert_eq!(
        create_with(
            &mut client,
            "compact-only",
            &[("cleanup.policy", Some("compact"))]
        ),
        0
    );
    assert_eq!(
        create_with(
            &mut client,
            "both",
            &[("cleanup.policy", Some("compact,delete"))]
        ),
        0
    );
    for topic in ["compact-only", "both"] {
        produce_ok(
            &mut client,
            topic,
            batch(&[b"a", b"b"], None, Compression::None),
        );
    }
    let delete_records = |client: &mut Client, topic: &str| {
        let response = client
            .call(
                2,
                &DeleteRecordsRequest::default()
                    .with_timeout_ms(5_000)
                    .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                        .with_name(name(topic))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(1),
                        ])]),
            )
            .expect("delete records");
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(delete_records(&mut client, "compact-only"), 44);
    assert_eq!(list_offsets(&mut client, "compact-only", -2).1, 0);
    assert_eq!(delete_records(&mut client, "both"), 0);
    // Row 6: names that collide once '.' and '_' are alike.
    assert_eq!(create_with(&mut client, "col.x", &[]), 0);
    assert_eq!(create_with(&mut client, "col_x", &[]), 17);
    assert_eq!(create_with(&mut client, "col.x", &[]), 36);
    // Row 7: min.insync.replicas is at least 1, on create and on alter.
    assert_eq!(
        create_with(&mut client, "misr", &[("min.insync.replicas", Some("0"))]),
        40
    );
    assert_eq!(
        incremental_alter(
            &mut client,
            2,
            "col.x",
            &[("min.insync.replicas", 0, Some("0"))],
            false
        ),
        40
    );
    assert_eq!(
        incremental_alter(
            &mut client,
            2,
            "col.x",
            &[("min.insync.replicas", 0, Some("1"))],
            false
        ),
        0
    );
    // Other bounds and the one cross-field rule of Kafka's LogConfig.
    assert_eq!(
        create_with(&mut client, "lz4", &[("compression.lz4.level", Some("18"))]),
        40
    );
    assert_eq!(
        create_with(
            &mut client,
            "lags",
            &[
                ("min.compaction.lag.ms", Some("10")),
                ("max.compaction.lag.ms", Some("5"))
            ]
        ),
        40
    );
    // Row 8: an empty cleanup.policy is an empty list, which Kafka accepts.
    assert_eq!(
        create_with(&mut client, "no-policy", &[("cleanup.policy", Some(""))]),
        0
    );
    // Row 9: a key named twice is an invalid request, and nothing changes.
    assert_eq!(
        incremental_alter(
            &mut client,
            2,
            "col.x",
            &[
                ("retention.ms", 0, Some("1000")),
                ("retention.ms", 0, Some("2000"))
            ],
            false
        ),
        42
    );
    assert_eq!(
        topic_config(&mut client, "col.x", "retention.ms").as_deref(),
        Some("604800000")
    );
    // Row 10: SET without a value.
    assert_eq!(
        incremental_alter(&mut client, 2, "col.x", &[("retention.ms", 0, None)], false),
        42
    );
    // Row 11: validate-only on the broker accepts keys it does not know.
    assert_eq!(
        incremental_alter(&mut client, 4, "1", &[("no.such.key", 0, Some("x"))], true),
        0
    );
    // Row 12: a produce with an empty records field.
    assert_eq!(
        produce_partition(&mut client, "col.x", Some(Bytes::new())).error_code,
        87
    );
    // Row 13: DeleteTopics v6 naming a topic by both name and id.
    let metadata = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("col.x"))),
            ])),
        )
        .expect("metadata");
    let id = metadata.topics[0].topic_id;
    let delete = |client: &mut Client, name: Option<&str>, id: Uuid| {
        client
            .call(
                6,
                &DeleteTopicsRequest::default()
                    .with_timeout_ms(5_000)
                    .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(name.map(self::name))
                        .with_topic_id(id)]),
            )
            .expect("delete topics")
            .responses[0]
            .error_code
    };
    assert_eq!(delete(&mut client, Some("col.x"), id), 42);
    assert_eq!(delete(&mut client, None, Uuid::nil()), 42);
    assert_eq!(list_offsets(&mut client, "col.x", -1).0, 0, "still there");
    assert_eq!(delete(&mut client, None, id), 0);
}

/// Beyond the rows: request-level checks found auditing Kafka's validation paths
/// (CreateTopics duplicates, null config values, assignments with a count; ListOffsets
/// duplicates and other negative timestamps).
#[test]
fn request_checks_answer_as_kafka() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let creatable = |topic: &str| {
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
    };
    let response = client
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                creatable("twice"),
                creatable("once"),
                creatable("twice"),
                creatable("null-config").with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(str("retention.ms"))
                        .with_value(None),
                ]),
                creatable("assigned").with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1)]),
                ]),
            ]),
        )
        .expect("create topics");
    let answers: Vec<(String, i16)> = response
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.error_code))
        .collect();
    assert_eq!(
        answers,
        [
            ("twice".to_string(), 42),
            ("once".to_string(), 0),
            ("null-config".to_string(), 40),
            ("assigned".to_string(), 42),
        ]
    );
    assert_eq!(list_offsets(&mut client, "twice", -1).0, 3, "not created");
    produce_ok(
        &mut client,
        "once",
        batch(&[b"a", b"b"], None, Compression::None),
    );
    // Other negative timestamps are searched like any timestamp: the first record.
    assert_eq!(list_offsets(&mut client, "once", -10).1, 0);
    let partition = |t: i64| {
        list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(t)
    };
    let response = client
        .call(
            8,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("once"))
                    .with_partitions(vec![partition(-1), partition(-2)])]),
        )
        .expect("list offsets");
    let codes: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [42, 42]);
}

/// One partition of a Fetch request.
fn fetch_partition(partition: i32, offset: i64, max_bytes: i32) -> fetch_request::FetchPartition {
    fetch_request::FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(max_bytes)
}

/// A consumer's Fetch (v12, by name) of `partitions` of `topic`, answered at once.
fn fetch_request(topic: &str, partitions: Vec<fetch_request::FetchPartition>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(partitions)])
}

/// (error, high watermark, last stable offset, log start offset, record bytes) of an answer.
fn fetch_answer(p: &fetch_response::PartitionData) -> (i16, i64, i64, i64, usize) {
    let bytes = p.records.as_ref().map_or(usize::MAX, |r| r.len());
    (
        p.error_code,
        p.high_watermark,
        p.last_stable_offset,
        p.log_start_offset,
        bytes,
    )
}

/// The audit's Fetch edge cases, as Kafka 3.8 answers them (`ReplicaManager.readFromLog` /
/// `createLogReadResult`, `KafkaApis.handleFetchRequest`, `Partition.fetchRecords`).
#[test]
fn fetch_edge_cases_answer_as_kafka() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let response = client
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name("edge"))
                    .with_num_partitions(2)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(response.topics[0].error_code, 0);
    let topic_id = response.topics[0].topic_id;
    for _ in 0..3 {
        produce_ok(
            &mut client,
            "edge",
            batch(&[b"first", b"second"], None, Compression::None),
        );
    }
    let p1 = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name("edge"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(batch(&[b"other"], None, Compression::None))),
            ])]);
    assert_eq!(
        client.call(9, &p1).expect("produce").responses[0].partition_responses[0].error_code,
        0
    );
    let deleted = client
        .call(
            2,
            &DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name("edge"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(2),
                    ])]),
        )
        .expect("delete records");
    assert_eq!(deleted.topics[0].partitions[0].low_watermark, 2);

    let one = |client: &mut Client, request: &FetchRequest, version: i16| {
        let response = client.call(version, request).expect("fetch");
        assert_eq!(response.error_code, 0);
        fetch_answer(&response.responses[0].partitions[0])
    };
    // Out of range (negative, below the log start, past the end): OFFSET_OUT_OF_RANGE and no
    // offsets at all (-1), as `createLogReadResult(e)` answers.
    for offset in [-1, -5, 0, 1, 7] {
        let request = fetch_request("edge", vec![fetch_partition(0, offset, 1 << 20)]);
        assert_eq!(
            one(&mut client, &request, 12),
            (1, -1, -1, -1, 0),
            "fetch at {offset}"
        );
    }
    // At the log start and at the end: the real offsets.
    let at_start = one(
        &mut client,
        &fetch_request("edge", vec![fetch_partition(0, 2, 1 << 20)]),
        12,
    );
    assert_eq!(
        (at_start.0, at_start.1, at_start.2, at_start.3),
        (0, 6, 6, 2)
    );
    assert!(at_start.4 > 0);
    let at_end = fetch_request("edge", vec![fetch_partition(0, 6, 1 << 20)]);
    assert_eq!(one(&mut client, &at_end, 12), (0, 6, 6, 2, 0));
    // read_committed without transactions: the last stable offset is the high watermark and
    // the aborted transactions an empty list (not null).
    let committed =
        fetch_request("edge", vec![fetch_partition(0, 2, 1 << 20)]).with_isolation_level(1);
    let response = client.call(12, &committed).expect("fetch");
    let p = &response.responses[0].partitions[0];
    assert_eq!(
        (
            p.last_stable_offset,
            p.aborted_transactions.as_ref().map(Vec::len)
        ),
        (6, Some(0))
    );
    let uncommitted = client
        .call(
            12,
            &fetch_request("edge", vec![fetch_partition(0, 2, 1 << 20)]),
        )
        .expect("fetch");
    assert_eq!(
        uncommitted.responses[0].partitions[0].aborted_transactions,
        None
    );
    // Unknown partition and unknown topic: UNKNOWN_TOPIC_OR_PARTITION by name, UNKNOWN_TOPIC_ID
    // by id (v13+), per partition.
    let missing = fetch_request("edge", vec![fetch_partition(99, 0, 1 << 20)]);
    assert_eq!(one(&mut client, &missing, 12), (3, -1, -1, -1, 0));
    let nowhere = fetch_request("nowhere", vec![fetch_partition(0, 0, 1 << 20)]);
    assert_eq!(one(&mut client, &nowhere, 12), (3, -1, -1, -1, 0));
    let by_id = |id: Uuid| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![fetch_partition(0, 2, 1 << 20)])])
    };
    assert_eq!(one(&mut client, &by_id(Uuid::from_u128(7)), 13).0, 100);
    assert_eq!(one(&mut client, &by_id(topic_id), 13).0, 0);
    // KIP-74: a zero partition limit still returns the first partition's first batch; a
    // later partition gets what is left of the request's limit, here nothing, and is still
    // answered.
    let zero = fetch_request(
        "edge",
        vec![fetch_partition(0, 2, 0), fetch_partition(1, 0, 0)],
    )
    .with_max_bytes(1);
    let response = client.call(12, &zero).expect("fetch");
    let first = fetch_answer(&response.responses[0].partitions[0]);
    let second = fetch_answer(&response.responses[0].partitions[1]);
    assert_eq!((first.0, first.1), (0, 6));
    assert_eq!(
        fetched_offsets(&response.responses[0].partitions[0]),
        [2, 3],
        "one whole batch"
    );
    assert_eq!(second, (0, 1, 1, 0, 0));
    // Negative max_wait_ms and min_bytes 0 are accepted and answered at once.
    let eager = fetch_request("edge", vec![fetch_partition(0, 6, 1 << 20)])
        .with_max_wait_ms(-1)
        .with_min_bytes(0);
    assert_eq!(one(&mut client, &eager, 12), (0, 6, 6, 2, 0));
    // A fetch naming a replica id is a follower's; this broker has no followers:
    // NOT_LEADER_OR_FOLLOWER, as Kafka answers a replica it does not know.
    let follower =
        fetch_request("edge", vec![fetch_partition(0, 2, 1 << 20)]).with_replica_id(BrokerId(1));
    assert_eq!(one(&mut client, &follower, 12), (6, -1, -1, -1, 0));
    let follower = by_id(topic_id)
        .with_replica_state(fetch_request::ReplicaState::default().with_replica_id(BrokerId(1)));
    assert_eq!(one(&mut client, &follower, 15).0, 6);
}
