//! Every (API key, version) that ApiVersions advertises is served: a request of that version
//! gets a well-formed response of that version on the same connection. Fails when ApiVersions
//! advertises anything the dispatch table does not serve.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{batch, BrokerProcess, Client};

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Sends a minimal valid request of `key` at `version` and decodes the response.
fn probe(client: &mut Client, key: ApiKey, version: i16) -> anyhow::Result<()> {
    match key {
        ApiKey::Produce if version < 3 => legacy_produce(client, version),
        ApiKey::Produce => {
            let request = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic("probe"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(
                                &[b"v"],
                                None,
                                kafka_protocol::records::Compression::None,
                            ))),
                    ])]);
            let response = client.call(version, &request)?;
            let code = response.responses[0].partition_responses[0].error_code;
            anyhow::ensure!(code == 0, "produce v{version} error {code}");
            Ok(())
        }
        ApiKey::Fetch => {
            let mut t = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1024),
            ]);
            if version >= 13 {
                let meta = client.call(
                    12,
                    &MetadataRequest::default()
                        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                        )
                        .with_name(Some(topic("probe")))])),
                )?;
                t = t.with_topic_id(meta.topics[0].topic_id);
            } else {
                t = t.with_topic(topic("probe"));
            }
            let request = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![t]);
            let response = client.call(version, &request)?;
            let partition = &response.responses[0].partitions[0];
            anyhow::ensure!(
                partition.error_code == 0,
                "fetch v{version} error {}",
                partition.error_code
            );
            anyhow::ensure!(
                partition.records.as_ref().is_some_and(|r| !r.is_empty()),
                "no records"
            );
            Ok(())
        }
        ApiKey::ListOffsets => {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic("probe"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ])]);
            let response = client.call(version, &request)?;
            let p = &response.topics[0].partitions[0];
            anyhow::ensure!(
                p.error_code == 0 && p.offset >= 1,
                "list offsets v{version}: {p:?}"
            );
            Ok(())
        }
        ApiKey::Metadata => {
            let response = client.call(version, &MetadataRequest::default().with_topics(None))?;
            anyhow::ensure!(
                response.brokers.len() == 1,
                "metadata v{version}: {response:?}"
            );
            Ok(())
        }
        ApiKey::ApiVersions => {
            let response = client.call(
                version,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("probe"))
                    .with_client_software_version(StrBytes::from_static_str("1")),
            )?;
            anyhow::ensure!(response.error_code == 0);
            Ok(())
        }
        ApiKey::CreateTopics => {
            let name = format!("created-v{version}");
            let response = client.call(
                version,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![create_topics_request::CreatableTopic::default()
                        .with_name(topic(&name))
                        .with_num_partitions(2)
                        .with_replication_factor(1)]),
            )?;
            anyhow::ensure!(response.topics[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::DeleteTopics => {
            let name = format!("doomed-v{version}");
            client.call(
                5,
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic(&name))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
            )?;
            let request = if version >= 6 {
                DeleteTopicsRequest::default()
                    .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(topic(&name)))])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![topic(&name)])
            };
            let response = client.call(version, &request.with_timeout_ms(5000))?;
            anyhow::ensure!(response.responses[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::InitProducerId => {
            let response = client.call(
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            )?;
            anyhow::ensure!(
                response.error_code == 0 && response.producer_id.0 >= 0,
                "{response:?}"
            );
            Ok(())
        }
        other => {
            anyhow::bail!("{other:?} is advertised but this test has no probe for it: add one")
        }
    }
}

/// Produce v0-2 (message format v0/v1) is advertised, as Kafka does, and answered with
/// UNSUPPORTED_VERSION per partition in the layout of that version.
fn legacy_produce(client: &mut Client, version: i16) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let mut body = BytesMut::new();
    body.put_i16(0); // api key
    body.put_i16(version);
    body.put_i32(77);
    body.put_i16(-1); // null client id
    body.put_i16(1); // acks
    body.put_i32(1000);
    body.put_i32(1);
    body.put_i16(5);
    body.put_slice(b"probe");
    body.put_i32(1);
    body.put_i32(0);
    body.put_i32(3);
    body.put_slice(b"xyz");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    client.send_frame(&frame)?;
    let mut response = client.read_frame()?;
    anyhow::ensure!(response.get_i32() == 77);
    anyhow::ensure!(response.get_i32() == 1);
    let len = response.get_i16() as usize;
    response.advance(len);
    anyhow::ensure!(response.get_i32() == 1);
    anyhow::ensure!(response.get_i32() == 0);
    anyhow::ensure!(response.get_i16() == 35, "expected UNSUPPORTED_VERSION");
    Ok(())
}

#[test]
fn every_advertised_version_is_served() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let versions = client
        .call(3, &ApiVersionsRequest::default())
        .expect("api versions");
    assert_eq!(versions.error_code, 0);
    // What is advertised is exactly the dispatch table.
    let advertised: Vec<(i16, i16, i16)> = versions
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let table: Vec<(i16, i16, i16)> = strom::api::SUPPORTED_APIS
        .iter()
        .map(|s| (s.key as i16, s.min_version, s.max_version))
        .collect();
    assert_eq!(advertised, table);
    // Seed the topic the probes read: auto-created by Metadata, as clients do.
    client
        .call(
            9,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic("probe"))),
            ])),
        )
        .expect("metadata");
    probe(&mut client, ApiKey::Produce, 3).expect("seed");
    for (key, min, max) in advertised {
        let key = ApiKey::try_from(key).expect("known key");
        for version in min..=max {
            let mut fresh = broker.client();
            probe(&mut fresh, key, version).unwrap_or_else(|e| {
                panic!("{key:?} v{version}: {e:#}\nbroker log:\n{}", broker.log())
            });
        }
    }
}

#[test]
fn unsupported_api_versions_version_gets_a_v0_answer() {
    use bytes::{Buf, BufMut, BytesMut};
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let mut body = BytesMut::new();
    body.put_i16(18);
    body.put_i16(99);
    body.put_i32(5);
    body.put_i16(-1);
    body.put_u8(0); // empty tagged fields, as a v3+ header would carry
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    client.send_frame(&frame).unwrap();
    let mut response = client.read_frame().unwrap();
    assert_eq!(response.get_i32(), 5);
    let decoded = ApiVersionsResponse::decode_v0(&mut response);
    assert_eq!(decoded.error_code, 35);
    assert!(decoded
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version >= 3));
}

trait DecodeV0 {
    fn decode_v0(buf: &mut bytes::Bytes) -> Self;
}

impl DecodeV0 for ApiVersionsResponse {
    fn decode_v0(buf: &mut bytes::Bytes) -> Self {
        use kafka_protocol::protocol::Decodable;
        ApiVersionsResponse::decode(buf, 0).expect("v0 response")
    }
}

#[test]
fn api_versions_v3_leaves_default_tagged_fields_out() {
    // librdkafka 2.0.x (Debian's kcat) misreads v3 responses that carry tagged fields at
    // their default values; Kafka leaves them out, and so must we.
    use bytes::Buf;
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let (correlation_id, frame) = client.frame(3, &ApiVersionsRequest::default()).unwrap();
    client.send_frame(&frame).unwrap();
    let body = client
        .read_response(ApiKey::ApiVersions, 3, correlation_id)
        .unwrap();
    // The last byte is the response's tagged-field count: zero.
    assert_eq!(body.chunk()[body.len() - 1], 0);
}
