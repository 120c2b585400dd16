//! Admin operations at the wire level that must survive a `kill -9`: topic config changes,
//! added partitions and deleted records.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{batch, BrokerProcess, Client};

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn produce(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> i64 {
    let response = client
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(str(topic)))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ])]),
        )
        .expect("produce");
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{response:?}");
    p.base_offset
}

fn earliest(client: &mut Client, topic: &str) -> i64 {
    let response = client
        .call(
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(str(topic)))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-2)]),
            ]),
        )
        .expect("list offsets");
    response.topics[0].partitions[0].offset
}

fn topic_config(client: &mut Client, topic: &str, name: &str) -> (String, i8) {
    let response = client
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str(topic))
                    .with_configuration_keys(Some(vec![str(name)])),
            ]),
        )
        .expect("describe configs");
    let entry = &response.results[0].configs[0];
    (
        entry.value.as_deref().unwrap_or_default().to_string(),
        entry.config_source,
    )
}

#[test]
fn configs_partitions_and_deleted_records_survive_kill_9() {
    let mut broker = BrokerProcess::start(&["log.segment.bytes=1024", "log.retention.hours=48"]);
    let mut client = broker.client();
    let created = client
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(str("admin")))
                    .with_num_partitions(2)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    for i in 0..40 {
        let value = format!("record {i:04} {}", "x".repeat(100));
        produce(
            &mut client,
            "admin",
            0,
            batch(&[value.as_bytes()], None, Compression::None),
        );
    }
    // Broker setting, then a topic override.
    assert_eq!(
        topic_config(&mut client, "admin", "retention.ms"),
        ("172800000".into(), 4)
    );
    let altered = client
        .call(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str("admin"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(str("3600000"))),
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(str("cleanup.policy"))
                            .with_config_operation(2)
                            .with_value(Some(str("compact"))),
                    ]),
            ]),
        )
        .expect("alter");
    assert_eq!(altered.responses[0].error_code, 0, "{altered:?}");
    let grown = client
        .call(
            3,
            &CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(str("admin")))
                        .with_count(4),
                ]),
        )
        .expect("create partitions");
    assert_eq!(grown.results[0].error_code, 0, "{grown:?}");
    assert_eq!(
        produce(
            &mut client,
            "admin",
            3,
            batch(&[b"new partition"], None, Compression::None)
        ),
        0
    );
    let deleted = client
        .call(
            2,
            &DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(TopicName(str("admin")))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(25),
                    ])]),
        )
        .expect("delete records");
    assert_eq!(deleted.topics[0].partitions[0].low_watermark, 25);

    broker.kill_and_restart();
    let mut client = broker.client();
    assert_eq!(
        earliest(&mut client, "admin"),
        25,
        "deleted records stay deleted"
    );
    assert_eq!(
        topic_config(&mut client, "admin", "retention.ms"),
        ("3600000".into(), 1)
    );
    assert_eq!(
        topic_config(&mut client, "admin", "cleanup.policy"),
        ("delete,compact".into(), 1)
    );
    let metadata = client
        .call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(str("admin"))))])),
        )
        .expect("metadata");
    assert_eq!(metadata.topics[0].partitions.len(), 4);
    assert_eq!(
        produce(
            &mut client,
            "admin",
            3,
            batch(&[b"again"], None, Compression::None)
        ),
        1,
        "the new partition kept its record"
    );
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    for (name, partitions) in [("pages-a", 3), ("pages-b", 4)] {
        let created = client
            .call(
                5,
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(str(name)))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1),
                ]),
            )
            .expect("create");
        assert_eq!(created.topics[0].error_code, 0);
    }
    let mut cursor = None;
    let mut seen = Vec::new();
    for _page in 0..10 {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(str("pages-b"))),
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(str("pages-a"))),
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(str("pages-missing"))),
            ])
            .with_response_partition_limit(2)
            .with_cursor(cursor.take());
        let response = client.call(0, &request).expect("describe topic partitions");
        for topic in &response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default();
            if name == "pages-missing" {
                assert_eq!(topic.error_code, 3);
                continue;
            }
            for p in &topic.partitions {
                seen.push((name.clone(), p.partition_index));
            }
        }
        assert!(
            response
                .topics
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>()
                <= 2
        );
        match &response.next_cursor {
            Some(c) => {
                cursor = Some(
                    describe_topic_partitions_request::Cursor::default()
                        .with_topic_name(c.topic_name.clone())
                        .with_partition_index(c.partition_index),
                )
            }
            None => break,
        }
    }
    let expected: Vec<(String, i32)> = [("pages-a", 0), ("pages-a", 1), ("pages-a", 2)]
        .into_iter()
        .chain((0..4).map(|p| ("pages-b", p)))
        .map(|(t, p)| (t.to_string(), p))
        .collect();
    assert_eq!(seen, expected);
}
