//! Produce and Fetch semantics at the wire level: error codes, idempotence, long polls,
//! KIP-74, pipelining, and producer state across restarts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{batch, BrokerProcess, Client};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

/// Produces and returns (error code, base offset).
fn produce(client: &mut Client, topic: &str, acks: i16, records: Bytes) -> (i16, i64) {
    let response = client
        .call(9, &produce_request(topic, 0, acks, records))
        .expect("produce");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_request(
    topic: &str,
    offset: i64,
    partition_max_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

fn fetch(
    client: &mut Client,
    topic: &str,
    offset: i64,
    partition_max_bytes: i32,
) -> fetch_response::PartitionData {
    let response = client
        .call(11, &fetch_request(topic, offset, partition_max_bytes, 0))
        .expect("fetch");
    response.responses[0].partitions[0].clone()
}

fn init_producer_id(client: &mut Client) -> i64 {
    let response = client
        .call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .expect("init producer id");
    assert_eq!(response.error_code, 0);
    assert_eq!(response.producer_epoch, 0);
    response.producer_id.0
}

#[test]
fn partition_errors_are_kafkas() {
    let broker = BrokerProcess::start(&["message.max.bytes=2000"]);
    let mut client = broker.client();
    client.create_topic("t", 1);
    let one = || batch(&[b"x"], None, Compression::None);
    assert_eq!(
        produce(&mut client, "missing", 1, one()).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        produce(&mut client, "t", 2, one()).0,
        21,
        "INVALID_REQUIRED_ACKS"
    );
    let big = vec![b'z'; 5000];
    assert_eq!(
        produce(&mut client, "t", 1, batch(&[&big], None, Compression::None)).0,
        10,
        "MESSAGE_TOO_LARGE"
    );
    let mut truncated = one().to_vec();
    truncated.truncate(truncated.len() - 3);
    // An incomplete batch is no batch to Kafka (`ByteBufferLogInputStream.nextBatch`), so
    // "at least one record batch" fails: INVALID_RECORD. A bad CRC is CORRUPT_MESSAGE.
    assert_eq!(
        produce(&mut client, "t", 1, truncated.into()).0,
        87,
        "INVALID_RECORD"
    );
    let mut flipped = one().to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    assert_eq!(
        produce(&mut client, "t", 1, flipped.into()).0,
        2,
        "CORRUPT_MESSAGE"
    );
    // Kafka refuses a batch with a producer id but no sequence.
    assert_eq!(
        produce(
            &mut client,
            "t",
            1,
            batch(&[b"x"], Some((7, 0, -1)), Compression::None)
        )
        .0,
        87,
        "INVALID_RECORD"
    );
    // Kafka refuses a client batch whose base offset is not 0.
    let mut offset_five = one().to_vec();
    offset_five[7] = 5;
    assert_eq!(
        produce(&mut client, "t", 1, offset_five.into()).0,
        87,
        "INVALID_RECORD"
    );
    // Produce v3+ carries exactly one batch, as Kafka requires.
    let two = [one().to_vec(), one().to_vec()].concat();
    assert_eq!(
        produce(&mut client, "t", 1, two.into()).0,
        87,
        "INVALID_RECORD"
    );
    assert_eq!(produce(&mut client, "t", 1, one()), (0, 0));
    assert_eq!(produce(&mut client, "t", -1, one()), (0, 1));
    // Fetching past the end is OFFSET_OUT_OF_RANGE; at the end, an empty (not null) set.
    assert_eq!(fetch(&mut client, "t", 5, 1 << 20).error_code, 1);
    let at_end = fetch(&mut client, "t", 2, 1 << 20);
    assert_eq!(at_end.error_code, 0);
    assert_eq!(at_end.records, Some(Bytes::new()));
    assert_eq!(at_end.high_watermark, 2);
    // acks=0 gets no response: the next response on the connection is for the next request.
    let (_, frame) = client.frame(9, &produce_request("t", 0, 0, one())).unwrap();
    client.send_frame(&frame).unwrap();
    assert_eq!(produce(&mut client, "t", 1, one()), (0, 3));
}

#[test]
fn idempotent_producer_duplicates_gaps_and_epochs() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    client.create_topic("idem", 1);
    let pid = init_producer_id(&mut client);
    let second_pid = init_producer_id(&mut client);
    assert_ne!(pid, second_pid);
    let b = |seq: i32, n: usize, epoch: i16| {
        let values: Vec<&[u8]> = (0..n).map(|_| &b"v"[..]).collect();
        batch(&values, Some((pid, epoch, seq)), Compression::None)
    };
    assert_eq!(produce(&mut client, "idem", -1, b(0, 3, 0)), (0, 0));
    assert_eq!(produce(&mut client, "idem", -1, b(3, 2, 0)), (0, 3));
    // A retry of the first batch is acknowledged with its original offset, not written again.
    assert_eq!(produce(&mut client, "idem", -1, b(0, 3, 0)), (0, 0));
    assert_eq!(fetch(&mut client, "idem", 0, 1 << 20).high_watermark, 5);
    // A gap is OUT_OF_ORDER_SEQUENCE_NUMBER.
    assert_eq!(produce(&mut client, "idem", -1, b(9, 1, 0)).0, 45);
    // A newer epoch starts at sequence 0; the old epoch is then fenced.
    assert_eq!(produce(&mut client, "idem", -1, b(0, 1, 1)), (0, 5));
    assert_eq!(
        produce(&mut client, "idem", -1, b(5, 1, 0)).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );

    // Producer state survives a clean restart and a kill -9.
    broker.stop_and_restart();
    let mut client = broker.client();
    assert_eq!(
        produce(&mut client, "idem", -1, b(0, 1, 1)),
        (0, 5),
        "duplicate after restart"
    );
    assert_eq!(produce(&mut client, "idem", -1, b(1, 1, 1)), (0, 6));
    broker.kill_and_restart();
    let mut client = broker.client();
    assert_eq!(
        produce(&mut client, "idem", -1, b(1, 1, 1)),
        (0, 6),
        "duplicate after kill -9"
    );
    assert_eq!(produce(&mut client, "idem", -1, b(3, 1, 1)).0, 45);
    // Producer ids are never handed out twice, even across a crash.
    assert!(init_producer_id(&mut client) > second_pid);
}

#[test]
fn fetch_returns_whole_batches_and_long_polls() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    client.create_topic("f", 1);
    let big = vec![b'b'; 3000];
    for _ in 0..3 {
        assert_eq!(
            produce(
                &mut client,
                "f",
                1,
                batch(&[&big, &big], None, Compression::Lz4)
            )
            .0,
            0
        );
    }
    // KIP-74: a partition limit smaller than the first batch still returns that whole batch.
    let one = fetch(&mut client, "f", 0, 10);
    let records = one.records.expect("records");
    let header_len =
        i32::from_be_bytes([records[8], records[9], records[10], records[11]]) as usize + 12;
    assert_eq!(records.len(), header_len, "exactly one whole batch");
    // From an offset inside the second batch, the batch containing it comes first.
    let mid = fetch(&mut client, "f", 3, 1 << 20)
        .records
        .expect("records");
    assert_eq!(i64::from_be_bytes(mid[..8].try_into().unwrap()), 2);

    // A long poll at the end of the log is answered when data arrives, well before max_wait.
    let mut waiter = broker.client();
    let (correlation_id, frame) = waiter
        .frame(11, &fetch_request("f", 6, 1 << 20, 30_000))
        .unwrap();
    let started = Instant::now();
    waiter.send_frame(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        produce(
            &mut client,
            "f",
            1,
            batch(&[b"wake"], None, Compression::None)
        ),
        (0, 6)
    );
    let mut body = waiter
        .read_response(ApiKey::Fetch, 11, correlation_id)
        .unwrap();
    let response =
        <FetchResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 11).unwrap();
    let data = &response.responses[0].partitions[0];
    assert!(data.records.as_ref().is_some_and(|r| !r.is_empty()));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "long poll was not woken by the append"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    client.create_topic("p", 1);
    let mut expected = Vec::new();
    let mut frames = Vec::new();
    for i in 0..60 {
        let (id, frame, key, version) = match i % 3 {
            0 => {
                let (id, f) = client
                    .frame(
                        9,
                        &produce_request("p", 0, -1, batch(&[b"a"], None, Compression::None)),
                    )
                    .unwrap();
                (id, f, ApiKey::Produce, 9)
            }
            1 => {
                let (id, f) = client
                    .frame(11, &fetch_request("p", 0, 1 << 20, 0))
                    .unwrap();
                (id, f, ApiKey::Fetch, 11)
            }
            _ => {
                let (id, f) = client
                    .frame(9, &MetadataRequest::default().with_topics(None))
                    .unwrap();
                (id, f, ApiKey::Metadata, 9)
            }
        };
        expected.push((id, key, version));
        frames.extend_from_slice(&frame);
    }
    client.send_frame(&frames).unwrap();
    let mut next_offset = 0;
    for (id, key, version) in expected {
        let mut body = client.read_response(key, version, id).unwrap();
        if key == ApiKey::Produce {
            let r = <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(
                &mut body, version,
            )
            .unwrap();
            assert_eq!(
                r.responses[0].partition_responses[0].base_offset, next_offset,
                "appends in request order"
            );
            next_offset += 1;
        }
    }
}

/// KIP-467: a batch with keyless records refused by a compacted topic names each of them in
/// `record_errors` (Produce v8+), so clients fail only those with INVALID_RECORD; older versions
/// get the bare error code.
#[test]
fn keyless_records_on_a_compacted_topic_are_named() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let response = client
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name("compacted"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_value(Some(StrBytes::from_static_str("compact")))]),
            ]),
        )
        .expect("create topics");
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");

    // Records 1 and 4 have no key.
    let keys: Vec<Option<String>> = (0..6)
        .map(|i| (i != 1 && i != 4).then(|| format!("k{i}")))
        .collect();
    let entries: Vec<strom::test_support::KeyValue<'_>> = keys
        .iter()
        .map(|k| (k.as_deref().map(str::as_bytes), Some(&b"v"[..])))
        .collect();
    let records =
        strom::test_support::keyed_batch(&entries, 1_000, Compression::None).expect("encode");

    for version in [3, 7, 8, 9] {
        let response = client
            .call(
                version,
                &produce_request("compacted", 0, 1, records.clone()),
            )
            .expect("produce");
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 87, "v{version}: INVALID_RECORD");
        assert_eq!(p.base_offset, -1);
        if version >= 8 {
            let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
            assert_eq!(indexes, vec![1, 4], "v{version}: {p:?}");
            assert!(p.record_errors[0]
                .batch_index_error_message
                .as_deref()
                .is_some_and(|m| m.contains("without key")));
            assert!(p.error_message.is_some());
        }
    }
    // Nothing of the refused batches was stored.
    let (code, offset) = produce(
        &mut client,
        "compacted",
        1,
        batch(&[b"keyed"], None, Compression::None),
    );
    assert_eq!((code, offset), (0, 0));
}
