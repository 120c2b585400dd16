//! The open-file limit: topic creation that would take the broker past it is refused up front
//! (POLICY_VIOLATION) and leaves nothing in the metadata, so a restart never fails with "Too
//! many open files" because of partitions the broker accepted. Its own test binary: it points
//! STROM_BIN at a wrapper that lowers the limit.

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{batch, strom_binary, BrokerProcess, Client};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn create(client: &mut Client, topic: &str, partitions: i32) -> i16 {
    let response = client
        .call(
            5,
            &CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)]),
        )
        .expect("create topics");
    response.topics[0].error_code
}

fn topics(client: &mut Client) -> Vec<String> {
    let response = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .expect("metadata");
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn topics_past_the_open_file_limit_are_refused_and_a_restart_opens_everything() {
    let real = strom_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = dir.path().join("strom-600-files");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 600\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .expect("write wrapper");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .expect("chmod");
    // This test binary holds only this test, so the variable reaches no other test.
    std::env::set_var("STROM_BIN", &wrapper);
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    assert_eq!(create(&mut client, "huge", 500), 44, "POLICY_VIOLATION");
    assert!(
        topics(&mut client).is_empty(),
        "nothing of a refused create"
    );
    let mut created = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let topic = format!("t{i}");
        match create(&mut client, &topic, 40) {
            0 => created.push(topic),
            44 => refused += 1,
            other => panic!("create {topic}: error {other}"),
        }
    }
    assert!(
        !created.is_empty() && refused > 0,
        "{created:?}, {refused} refused"
    );
    assert_eq!(topics(&mut client), created);
    broker.kill_and_restart();
    std::thread::sleep(Duration::from_millis(100));
    assert!(broker.is_alive());
    let mut client = broker.client();
    assert_eq!(topics(&mut client), created);
    for topic in &created {
        for partition in [0, 39] {
            let response = client
                .call(
                    9,
                    &ProduceRequest::default()
                        .with_acks(-1)
                        .with_timeout_ms(5000)
                        .with_topic_data(vec![produce_request::TopicProduceData::default()
                            .with_name(name(topic))
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(partition)
                                    .with_records(Some(batch(&[b"v"], None, Compression::None))),
                            ])]),
                )
                .expect("produce");
            assert_eq!(
                response.responses[0].partition_responses[0].error_code, 0,
                "{topic}-{partition}"
            );
        }
    }
}
