//! The stop sequence: on SIGTERM the broker stops accepting, finishes what it read, ends a
//! compaction pass at its next batch (even inside a throttle sleep), flushes and exits.

use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::BrokerProcess;

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Row 5 of issue 18: a throttled compaction pass over ~250 KB at 1,000 bytes/s would run for
/// minutes; SIGTERM must not wait for it.
#[test]
fn sigterm_during_a_throttled_compaction_pass_exits_promptly() {
    let mut broker = BrokerProcess::start(&[
        "log.cleaner.backoff.ms=100",
        "log.cleaner.io.max.bytes.per.second=1000",
    ]);
    let mut client = broker.client();
    let config = |name: &str, value: &str| {
        create_topics_request::CreatableTopicConfig::default()
            .with_name(str(name))
            .with_value(Some(str(value)))
    };
    let created = client
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("compacted")))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        config("cleanup.policy", "compact"),
                        config("segment.bytes", "4096"),
                        config("min.cleanable.dirty.ratio", "0.01"),
                    ]),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let value = [b'v'; 100];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for round in 0..100 {
        let keys: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("key-{}", i % 10).into_bytes())
            .collect();
        let entries: Vec<strom::test_support::KeyValue<'_>> = keys
            .iter()
            .map(|k| (Some(k.as_slice()), Some(&value[..])))
            .collect();
        let records = strom::test_support::keyed_batch(&entries, now_ms + round, Compression::None)
            .expect("batch");
        let response = client
            .call(
                9,
                &ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(5000)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(TopicName(str("compacted")))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(records)),
                        ])]),
            )
            .expect("produce");
        assert_eq!(
            response.responses[0].partition_responses[0].error_code, 0,
            "{response:?}"
        );
    }
    drop(client);
    // The cleaner looks every 100 ms; give it time to be well inside its throttled pass.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let status = broker.stop().expect("the broker was running");
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        broker.log()
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "SIGTERM took {elapsed:?} during a compaction pass"
    );
    assert!(
        broker.log().contains("compaction pass stopped"),
        "no compaction pass was running at SIGTERM; log:\n{}",
        broker.log()
    );
    eprintln!("stopped in {elapsed:?} during a throttled compaction pass");
}

/// Requests read before SIGTERM are answered: long-poll Fetches answer at once with what they
/// have, before the broker exits.
#[test]
fn sigterm_answers_the_requests_already_read() {
    let mut broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    let created = admin
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("draining")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut client = broker.client();
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(60_000)
            .with_min_bytes(1 << 20)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(str("draining")))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let (fetch_id, fetch) = client.frame(11, &fetch).expect("encode");
        client.send_frame(&fetch).expect("send");
        clients.push((client, fetch_id));
    }
    // Give the broker time to read every fetch (they wait a minute for data that never comes).
    std::thread::sleep(Duration::from_millis(500));
    let readers = std::thread::spawn(move || {
        clients
            .into_iter()
            .map(|(mut client, id)| {
                client
                    .read_response(ApiKey::Fetch, 11, id)
                    .and_then(|mut body| {
                        <FetchResponse as kafka_protocol::protocol::Decodable>::decode(
                            &mut body, 11,
                        )
                    })
                    .map(|r| r.responses[0].partitions[0].error_code)
            })
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let status = broker.stop().expect("running");
    let elapsed = started.elapsed();
    assert!(status.success(), "{status:?}");
    let answers = readers.join().expect("readers");
    assert!(
        answers.iter().all(|a| matches!(a, Ok(0))),
        "every long poll read before SIGTERM is answered: {answers:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "stop took {elapsed:?}");
    eprintln!("stopped in {elapsed:?} with 50 long polls in flight");
}

/// The soft open-file limit of this process (the test holds one socket per connection).
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// Issue 18's stop with 1,000 connections that have requests in flight: a quarter send an
/// acks=all produce, the rest a long-poll Fetch. Every request read before SIGTERM is answered
/// (the produces only after their fsync, so no producer resends), the broker exits cleanly,
/// and every acknowledged record is there after a restart. Prints the stop time.
#[test]
fn sigterm_with_a_thousand_connections_in_flight() {
    let connections = 1000.min(open_file_limit().saturating_sub(200));
    let mut broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    let created = admin
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("busy")))
                    .with_num_partitions(4)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    let mut clients = Vec::new();
    for i in 0..connections {
        let mut client = broker.client();
        let partition = (i % 4) as i32;
        let is_produce = i % 4 == 0;
        let (id, frame) = if is_produce {
            let produce = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(str("busy")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(protocol_tests::batch(
                                &[format!("in flight {i}").as_bytes()],
                                None,
                                Compression::None,
                            ))),
                    ])]);
            client.frame(9, &produce).expect("encode")
        } else {
            let fetch = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(60_000)
                .with_min_bytes(1 << 20)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(str("busy")))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]);
            client.frame(11, &fetch).expect("encode")
        };
        client.send_frame(&frame).expect("send");
        clients.push((client, id, is_produce));
    }
    // Time for the broker to read every request (the fetches wait a minute for 1 MiB).
    std::thread::sleep(Duration::from_millis(1500));
    let readers = std::thread::spawn(move || {
        clients
            .into_iter()
            .map(|(mut client, id, is_produce)| {
                if is_produce {
                    client
                        .read_response(ApiKey::Produce, 9, id)
                        .and_then(|mut body| {
                            <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(
                                &mut body, 9,
                            )
                        })
                        .map(|r| r.responses[0].partition_responses[0].error_code)
                } else {
                    client
                        .read_response(ApiKey::Fetch, 11, id)
                        .and_then(|mut body| {
                            <FetchResponse as kafka_protocol::protocol::Decodable>::decode(
                                &mut body, 11,
                            )
                        })
                        .map(|r| r.responses[0].partitions[0].error_code)
                }
                .map_err(|e| e.to_string())
            })
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let status = broker.stop().expect("running");
    let elapsed = started.elapsed();
    assert!(status.success(), "{status:?}");
    let answers = readers.join().expect("readers");
    let unanswered: Vec<_> = answers.iter().filter(|a| !matches!(a, Ok(0))).collect();
    assert!(
        unanswered.is_empty(),
        "{} of {connections} requests read before SIGTERM not answered with success: {:?}",
        unanswered.len(),
        &unanswered[..unanswered.len().min(5)]
    );
    eprintln!("stopped in {elapsed:?} with {connections} connections in flight");
    assert!(elapsed < Duration::from_secs(15), "stop took {elapsed:?}");

    broker.start_again();
    let mut client = broker.client();
    let listed = client
        .call(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(str("busy")))
                    .with_partitions(
                        (0..4)
                            .map(|p| {
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(-1)
                            })
                            .collect(),
                    )]),
        )
        .expect("list offsets");
    let stored: i64 = listed.topics[0].partitions.iter().map(|p| p.offset).sum();
    assert_eq!(
        stored,
        connections.div_ceil(4) as i64,
        "every acknowledged produce is stored, once"
    );
}
