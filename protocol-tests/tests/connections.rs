//! Connection-level resource bounds (issue 10): a client that pipelines Fetches and never
//! reads does not grow the broker without bound; idle connections and stalled frames are
//! closed; `max.connections.per.ip` holds.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{batch, BrokerProcess, Client};

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn api_versions_works(client: &mut Client) -> bool {
    client.call(3, &ApiVersionsRequest::default()).is_ok()
}

#[test]
fn pipelined_fetches_never_read_keep_the_broker_bounded() {
    let broker = BrokerProcess::start(&[]);
    let pid = broker.pid().expect("running");
    let mut admin = broker.client();
    let created = admin
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("big")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    let value = vec![b'x'; 512 << 10];
    for _ in 0..16 {
        let response = admin
            .call(
                9,
                &ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(5000)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(TopicName(str("big")))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch(&[&value], None, Compression::None))),
                        ])]),
            )
            .expect("produce");
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let before = rss_bytes(pid);
    // 64 fetches of the whole 8 MiB, never read: 512 MiB of answers if nothing bounds them.
    let mut greedy = broker.client();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(str("big")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(16 << 20)])]);
    let mut frames = Vec::new();
    for _ in 0..64 {
        let (_, frame) = greedy.frame(11, &fetch).expect("encode");
        frames.extend_from_slice(&frame);
    }
    greedy.send_frame(&frames).expect("send");
    // Let the broker do all it will do for them.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_bytes(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "broker RSS {} MiB before, {} MiB after 64 unread 8 MiB fetches",
        before >> 20,
        after >> 20
    );
    assert!(
        grown < 256 << 20,
        "the broker grew by {} MiB for one client that does not read",
        grown >> 20
    );
    // Other clients are served meanwhile.
    assert!(api_versions_works(&mut admin));
}

#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms() {
    let broker = BrokerProcess::start(&["connections.max.idle.ms=1000"]);
    let mut idle = broker.client();
    assert!(api_versions_works(&mut idle));
    let started = Instant::now();
    assert!(idle.is_closed_by_peer(), "the idle connection was closed");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A client waiting for a long poll is not idle.
    let mut waiting = broker.client();
    let created = waiting
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("quiet")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(2500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(str("quiet")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = waiting.call(11, &fetch).expect("the long poll is answered");
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
}

#[test]
fn a_stalled_partial_frame_is_dropped() {
    let broker = BrokerProcess::start(&["connections.max.idle.ms=1000"]);
    let mut client = broker.client();
    // Announce 50 MiB, send a few bytes, then nothing.
    let mut partial = (50i32 << 20).to_be_bytes().to_vec();
    partial.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
    client.stream.write_all(&partial).expect("send");
    let started = Instant::now();
    assert!(
        client.is_closed_by_peer(),
        "the stalled frame's connection was closed"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(broker.log().contains("frame stalled"), "{}", broker.log());
}

#[test]
fn max_connections_per_ip_is_enforced() {
    let broker = BrokerProcess::start(&["max.connections.per.ip=2"]);
    let mut first = broker.client();
    let mut second = broker.client();
    assert!(api_versions_works(&mut first));
    assert!(api_versions_works(&mut second));
    let mut third = broker.client();
    let mut buf = [0u8; 1];
    let refused = match third.stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    };
    assert!(refused, "a third connection from one address is closed");
    drop(first);
    // The freed slot is usable again (the broker notices the close asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = broker.client();
        if api_versions_works(&mut again) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}
