//! Every (API key, version) that ApiVersions advertises is served: a request of that version
//! gets a well-formed response of that version on the same connection. Fails when ApiVersions
//! advertises anything the dispatch table does not serve.

use anyhow::Context;
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
        ApiKey::Fetch if version < 4 => legacy_fetch(client, version),
        ApiKey::ListOffsets if version == 0 => legacy_list_offsets(client),
        ApiKey::CreateTopics if version < 2 => legacy_create_topics(client, version),
        ApiKey::DescribeConfigs if version == 0 => legacy_describe_configs(client),
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
        // Transaction APIs for an id no coordinator knows: the answers are the coordinator's
        // errors (COORDINATOR_NOT_AVAILABLE before `__transaction_state` exists, else the
        // unknown-id ones), in each version's layout.
        ApiKey::AddPartitionsToTxn => {
            let request = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str(
                    "probe-txn",
                )))
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic("probe"))
                        .with_partitions(vec![0]),
                ]);
            let response = client.call(version, &request)?;
            let code = response.results_by_topic_v3_and_below[0].results_by_partition[0]
                .partition_error_code;
            anyhow::ensure!(
                matches!(code, 15 | 49),
                "add partitions v{version} error {code}"
            );
            Ok(())
        }
        ApiKey::AddOffsetsToTxn => {
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("probe-txn")))
                .with_producer_id(ProducerId(1))
                .with_group_id(GroupId(StrBytes::from_static_str("probe-group")));
            let code = client.call(version, &request)?.error_code;
            anyhow::ensure!(
                matches!(code, 15 | 49),
                "add offsets v{version} error {code}"
            );
            Ok(())
        }
        ApiKey::EndTxn => {
            let request = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("probe-txn")))
                .with_producer_id(ProducerId(1))
                .with_committed(true);
            let code = client.call(version, &request)?.error_code;
            anyhow::ensure!(matches!(code, 15 | 49), "end txn v{version} error {code}");
            Ok(())
        }
        ApiKey::TxnOffsetCommit => {
            let request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("probe-txn")))
                .with_group_id(GroupId(StrBytes::from_static_str("probe-group")))
                .with_producer_id(ProducerId(1))
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic("probe"))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_committed_offset(0),
                        ]),
                ]);
            let response = client.call(version, &request)?;
            let code = response.topics[0].partitions[0].error_code;
            anyhow::ensure!(
                matches!(code, 15 | 48 | 49),
                "txn offset commit v{version} error {code}"
            );
            Ok(())
        }
        ApiKey::WriteTxnMarkers => {
            // An abort marker for a producer the partition has not seen: written, as in Kafka.
            let request = WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(424_242))
                    .with_producer_epoch(0)
                    .with_coordinator_epoch(0)
                    .with_transaction_result(false)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(topic("probe"))
                            .with_partition_indexes(vec![0]),
                    ]),
            ]);
            let response = client.call(version, &request)?;
            let code = response.markers[0].topics[0].partitions[0].error_code;
            anyhow::ensure!(code == 0, "write txn markers v{version} error {code}");
            Ok(())
        }
        ApiKey::DescribeTransactions => {
            let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(StrBytes::from_static_str("probe-txn")),
            ]);
            let response = client.call(version, &request)?;
            let code = response.transaction_states[0].error_code;
            anyhow::ensure!(
                matches!(code, 15 | 105),
                "describe transactions v{version} error {code}"
            );
            Ok(())
        }
        ApiKey::ListTransactions => {
            let response = client.call(
                version,
                &ListTransactionsRequest::default().with_duration_filter(-1),
            )?;
            anyhow::ensure!(
                response.error_code == 0,
                "list transactions v{version} error {}",
                response.error_code
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
        ApiKey::FindCoordinator => {
            let mut request = FindCoordinatorRequest::default();
            if version >= 4 {
                request.coordinator_keys = vec![StrBytes::from_static_str("probe-group")];
            } else {
                request.key = StrBytes::from_static_str("probe-group");
            }
            let response = client.call(version, &request)?;
            let (code, port) = if version >= 4 {
                anyhow::ensure!(response.coordinators.len() == 1, "{response:?}");
                (
                    response.coordinators[0].error_code,
                    response.coordinators[0].port,
                )
            } else {
                (response.error_code, response.port)
            };
            anyhow::ensure!(code == 0 && port > 0, "{response:?}");
            Ok(())
        }
        ApiKey::JoinGroup => {
            let (member, generation) = join(client, &format!("join-v{version}"), version)?;
            anyhow::ensure!(!member.is_empty() && generation == 1);
            Ok(())
        }
        ApiKey::SyncGroup => {
            let group = format!("sync-v{version}");
            let (member, generation) = join(client, &group, 5)?;
            let mut request = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group)))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(bytes::Bytes::from_static(b"assigned")),
                ]);
            if version >= 5 {
                request.protocol_type = Some(StrBytes::from_static_str("consumer"));
                request.protocol_name = Some(StrBytes::from_static_str("range"));
            }
            let response = client.call(version, &request)?;
            anyhow::ensure!(
                response.error_code == 0 && response.assignment.as_ref() == b"assigned",
                "{response:?}"
            );
            Ok(())
        }
        ApiKey::Heartbeat => {
            let group = format!("heartbeat-v{version}");
            let (member, generation) = join(client, &group, 5)?;
            let response = client.call(
                version,
                &HeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group)))
                    .with_generation_id(generation)
                    .with_member_id(StrBytes::from_string(member)),
            )?;
            // CompletingRebalance: a heartbeat is accepted while the leader assigns.
            anyhow::ensure!(response.error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::LeaveGroup => {
            let group = format!("leave-v{version}");
            let (member, _) = join(client, &group, 5)?;
            let mut request =
                LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(group)));
            if version >= 3 {
                request.members = vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(member))];
            } else {
                request.member_id = StrBytes::from_string(member);
            }
            let response = client.call(version, &request)?;
            anyhow::ensure!(response.error_code == 0, "{response:?}");
            if version >= 3 {
                anyhow::ensure!(response.members[0].error_code == 0, "{response:?}");
            }
            Ok(())
        }
        ApiKey::OffsetCommit if version < 2 => legacy_commit(client, version),
        ApiKey::OffsetCommit => {
            let code = commit(client, &format!("commit-v{version}"), version, 7)?;
            anyhow::ensure!(code == 0, "commit error {code}");
            Ok(())
        }
        ApiKey::OffsetFetch => {
            let group = format!("fetch-v{version}");
            anyhow::ensure!(commit(client, &group, 2, 11)? == 0);
            let group_id = GroupId(StrBytes::from_string(group));
            let offset = if version >= 8 {
                let response = client.call(
                    version,
                    &OffsetFetchRequest::default().with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(group_id)
                            .with_topics(None),
                    ]),
                )?;
                response.groups[0].topics[0].partitions[0].committed_offset
            } else {
                let response = client.call(
                    version,
                    &OffsetFetchRequest::default()
                        .with_group_id(group_id)
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(topic("probe"))
                                .with_partition_indexes(vec![0]),
                        ])),
                )?;
                response.topics[0].partitions[0].committed_offset
            };
            anyhow::ensure!(offset == 11, "fetched {offset}");
            Ok(())
        }
        ApiKey::DescribeGroups => {
            let group = format!("describe-v{version}");
            anyhow::ensure!(commit(client, &group, 2, 1)? == 0);
            let response = client.call(
                version,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(StrBytes::from_string(group))]),
            )?;
            let g = &response.groups[0];
            anyhow::ensure!(
                g.error_code == 0 && g.group_state.as_str() == "Empty",
                "{g:?}"
            );
            Ok(())
        }
        ApiKey::ListGroups => {
            let group = format!("list-v{version}");
            anyhow::ensure!(commit(client, &group, 2, 1)? == 0);
            let response = client.call(version, &ListGroupsRequest::default())?;
            anyhow::ensure!(response.error_code == 0, "{response:?}");
            anyhow::ensure!(
                response.groups.iter().any(|g| g.group_id.as_str() == group),
                "{response:?}"
            );
            Ok(())
        }
        ApiKey::DeleteGroups => {
            let group = format!("delete-v{version}");
            anyhow::ensure!(commit(client, &group, 2, 1)? == 0);
            let response = client.call(
                version,
                &DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(StrBytes::from_string(group))]),
            )?;
            anyhow::ensure!(response.results[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::OffsetDelete => {
            let group = format!("offset-delete-v{version}");
            anyhow::ensure!(commit(client, &group, 2, 1)? == 0);
            let response = client.call(
                version,
                &OffsetDeleteRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group)))
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic("probe"))
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default()
                                    .with_partition_index(0),
                            ]),
                    ]),
            )?;
            anyhow::ensure!(
                response.error_code == 0 && response.topics[0].partitions[0].error_code == 0,
                "{response:?}"
            );
            Ok(())
        }
        ApiKey::DescribeConfigs => {
            let response = client.call(
                version,
                &DescribeConfigsRequest::default()
                    .with_include_synonyms(true)
                    .with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("probe"))
                            .with_configuration_keys(None),
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(StrBytes::from_static_str("1"))
                            .with_configuration_keys(None),
                    ]),
            )?;
            for result in &response.results {
                anyhow::ensure!(result.error_code == 0, "{result:?}");
                anyhow::ensure!(!result.configs.is_empty(), "{result:?}");
            }
            let retention = response.results[0]
                .configs
                .iter()
                .find(|c| c.name.as_str() == "retention.ms")
                .ok_or_else(|| anyhow::anyhow!("no retention.ms"))?;
            anyhow::ensure!(
                retention.value.as_deref() == Some("604800000"),
                "{retention:?}"
            );
            Ok(())
        }
        ApiKey::AlterConfigs => {
            let response = client.call(
                version,
                &AlterConfigsRequest::default()
                    .with_validate_only(true)
                    .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("probe"))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("3600000")))])]),
            )?;
            anyhow::ensure!(response.responses[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::IncrementalAlterConfigs => {
            let response = client.call(
                version,
                &IncrementalAlterConfigsRequest::default()
                    .with_validate_only(true)
                    .with_resources(vec![
                        incremental_alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("probe"))
                            .with_configs(vec![
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(StrBytes::from_static_str("retention.ms"))
                                    .with_config_operation(0)
                                    .with_value(Some(StrBytes::from_static_str("3600000"))),
                            ]),
                    ]),
            )?;
            anyhow::ensure!(response.responses[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::CreatePartitions => {
            let name = format!("grow-v{version}");
            let created = client.call(
                5,
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic(&name))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
            )?;
            anyhow::ensure!(created.topics[0].error_code == 0, "{created:?}");
            let response = client.call(
                version,
                &CreatePartitionsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(topic(&name))
                            .with_count(3)
                            .with_assignments(None),
                    ]),
            )?;
            anyhow::ensure!(response.results[0].error_code == 0, "{response:?}");
            Ok(())
        }
        ApiKey::DescribeCluster => {
            let mut request = DescribeClusterRequest::default();
            request.endpoint_type = 1;
            let response = client.call(version, &request)?;
            anyhow::ensure!(
                response.error_code == 0
                    && response.brokers.len() == 1
                    && !response.cluster_id.is_empty(),
                "{response:?}"
            );
            Ok(())
        }
        ApiKey::DeleteRecords => {
            // Deleting below the log start moves nothing: the probe topic stays readable.
            let response = client.call(
                version,
                &DeleteRecordsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic("probe"))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0),
                        ])]),
            )?;
            let p = &response.topics[0].partitions[0];
            anyhow::ensure!(p.error_code == 0 && p.low_watermark == 0, "{response:?}");
            Ok(())
        }
        ApiKey::DescribeLogDirs => {
            let response = client.call(
                version,
                &DescribeLogDirsRequest::default().with_topics(None),
            )?;
            let dir = &response.results[0];
            anyhow::ensure!(dir.error_code == 0, "{response:?}");
            let probe = dir
                .topics
                .iter()
                .find(|t| t.name.as_str() == "probe")
                .ok_or_else(|| anyhow::anyhow!("probe not listed: {response:?}"))?;
            anyhow::ensure!(probe.partitions[0].partition_size > 0, "{response:?}");
            if version >= 4 {
                anyhow::ensure!(dir.total_bytes >= dir.usable_bytes && dir.usable_bytes > 0);
            }
            Ok(())
        }
        ApiKey::DescribeProducers => {
            let response = client.call(
                version,
                &DescribeProducersRequest::default().with_topics(vec![
                    describe_producers_request::TopicRequest::default()
                        .with_name(topic("probe"))
                        .with_partition_indexes(vec![0]),
                ]),
            )?;
            anyhow::ensure!(
                response.topics[0].partitions[0].error_code == 0,
                "{response:?}"
            );
            Ok(())
        }
        ApiKey::OffsetForLeaderEpoch => {
            let response = client.call(
                version,
                &OffsetForLeaderEpochRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                            .with_topic(topic("probe"))
                            .with_partitions(vec![
                                offset_for_leader_epoch_request::OffsetForLeaderPartition::default(
                                )
                                .with_partition(0)
                                .with_current_leader_epoch(0)
                                .with_leader_epoch(0),
                            ]),
                    ]),
            )?;
            let p = &response.topics[0].partitions[0];
            anyhow::ensure!(p.error_code == 0 && p.end_offset > 0, "{response:?}");
            Ok(())
        }
        ApiKey::DescribeTopicPartitions => {
            // One partition per page: the cursor walks the probe topic.
            let request = DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default()
                        .with_name(topic("probe")),
                ])
                .with_response_partition_limit(1);
            let response = client.call(version, &request)?;
            anyhow::ensure!(response.topics.len() == 1, "{response:?}");
            let t = &response.topics[0];
            anyhow::ensure!(t.error_code == 0 && t.partitions.len() == 1, "{response:?}");
            Ok(())
        }
        other => {
            anyhow::bail!("{other:?} is advertised but this test has no probe for it: add one")
        }
    }
}

/// Joins `group` as a new consumer with JoinGroup `version` (through MEMBER_ID_REQUIRED from
/// v4 on); returns the member id and generation.
fn join(client: &mut Client, group: &str, version: i16) -> anyhow::Result<(String, i32)> {
    let mut member_id = String::new();
    for _ in 0..2 {
        let response = client.call(
            version,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(bytes::Bytes::from_static(b"meta"))]),
        )?;
        match response.error_code {
            0 => {
                anyhow::ensure!(response.leader == response.member_id, "{response:?}");
                anyhow::ensure!(response.members.len() == 1, "{response:?}");
                anyhow::ensure!(
                    response.protocol_name.as_deref() == Some("range"),
                    "{response:?}"
                );
                return Ok((response.member_id.to_string(), response.generation_id));
            }
            // KIP-394, JoinGroup v4+ only.
            79 if version >= 4 && member_id.is_empty() => {
                member_id = response.member_id.to_string();
            }
            code => anyhow::bail!("join v{version}: error {code}: {response:?}"),
        }
    }
    anyhow::bail!("join v{version}: no member id")
}

/// A standalone commit (generation -1) of `offset` for probe-0; returns the partition's error.
fn commit(client: &mut Client, group: &str, version: i16, offset: i64) -> anyhow::Result<i16> {
    let response = client.call(
        version,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("probe"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                    ]),
            ]),
    )?;
    Ok(response.topics[0].partitions[0].error_code)
}

/// OffsetCommit v0-1 (Debian's sarama 1.22 sends v1): the crate cannot encode them, so the
/// request is written by hand; then the commit is read back with OffsetFetch.
fn legacy_commit(client: &mut Client, version: i16) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let group = format!("legacy-commit-v{version}");
    let mut body = BytesMut::new();
    body.put_i16(8); // api key
    body.put_i16(version);
    body.put_i32(78);
    body.put_i16(-1); // null client id
    body.put_i16(group.len() as i16);
    body.put_slice(group.as_bytes());
    if version >= 1 {
        body.put_i32(-1); // generation
        body.put_i16(0); // member id ""
    }
    body.put_i32(1);
    body.put_i16(5);
    body.put_slice(b"probe");
    body.put_i32(1);
    body.put_i32(0); // partition
    body.put_i64(42); // offset
    if version >= 1 {
        body.put_i64(-1); // commit timestamp
    }
    body.put_i16(4);
    body.put_slice(b"meta");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    client.send_frame(&frame)?;
    let mut response = client.read_frame()?;
    anyhow::ensure!(response.get_i32() == 78);
    anyhow::ensure!(response.get_i32() == 1);
    let len = response.get_i16() as usize;
    response.advance(len);
    anyhow::ensure!(response.get_i32() == 1);
    anyhow::ensure!(response.get_i32() == 0);
    let code = response.get_i16();
    anyhow::ensure!(code == 0, "legacy commit error {code}");
    let fetched = client.call(
        1,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("probe"))
                    .with_partition_indexes(vec![0]),
            ])),
    )?;
    let p = &fetched.topics[0].partitions[0];
    anyhow::ensure!(
        p.committed_offset == 42 && p.metadata.as_deref() == Some("meta"),
        "{fetched:?}"
    );
    Ok(())
}

fn put_str(buf: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn get_str(buf: &mut bytes::Bytes) -> anyhow::Result<Option<String>> {
    use bytes::Buf;
    anyhow::ensure!(buf.remaining() >= 2, "truncated");
    let n = buf.get_i16();
    if n < 0 {
        return Ok(None);
    }
    anyhow::ensure!(buf.remaining() >= n as usize, "truncated string");
    Ok(Some(String::from_utf8(buf.split_to(n as usize).to_vec())?))
}

/// DescribeConfigs v0 (sarama 1.22's ClusterAdmin.DescribeConfig): one topic config, with
/// `is_default` where later versions have a source.
fn legacy_describe_configs(client: &mut Client) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_i8(2); // topic
    put_str(&mut body, "probe");
    body.put_i32(1);
    put_str(&mut body, "retention.ms");
    let mut r = client.raw_call(32, 0, &body)?;
    anyhow::ensure!(r.get_i32() == 0, "throttle");
    anyhow::ensure!(r.get_i32() == 1, "one result");
    anyhow::ensure!(r.get_i16() == 0, "error code");
    get_str(&mut r)?;
    anyhow::ensure!(r.get_i8() == 2);
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("probe"));
    anyhow::ensure!(r.get_i32() == 1, "one config");
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("retention.ms"));
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("604800000"));
    anyhow::ensure!(r.get_u8() == 0, "read only");
    anyhow::ensure!(r.get_u8() == 1, "is_default");
    anyhow::ensure!(r.get_u8() == 0, "is_sensitive");
    anyhow::ensure!(!r.has_remaining(), "{} bytes left", r.remaining());
    Ok(())
}

/// CreateTopics v0 (kafka-go 0.2.1) and v1 (validate_only; an error message per topic).
fn legacy_create_topics(client: &mut Client, version: i16) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let name = format!("created-legacy-v{version}");
    let mut body = BytesMut::new();
    body.put_i32(1);
    put_str(&mut body, &name);
    body.put_i32(2);
    body.put_i16(1);
    body.put_i32(0); // assignments
    body.put_i32(0); // configs
    body.put_i32(5000);
    if version == 1 {
        body.put_u8(0);
    }
    let mut r = client.raw_call(19, version, &body)?;
    anyhow::ensure!(r.get_i32() == 1, "one topic");
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some(name.as_str()));
    let code = r.get_i16();
    anyhow::ensure!(code == 0, "create topics v{version} error {code}");
    if version == 1 {
        anyhow::ensure!(get_str(&mut r)?.is_none(), "no error message");
    }
    anyhow::ensure!(!r.has_remaining(), "{} bytes left", r.remaining());
    let metadata = client.call(
        9,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic(&name))),
        ])),
    )?;
    anyhow::ensure!(metadata.topics[0].partitions.len() == 2, "{metadata:?}");
    Ok(())
}

/// ListOffsets v0: the latest offset as a one-element list.
fn legacy_list_offsets(client: &mut Client) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let mut body = BytesMut::new();
    body.put_i32(-1);
    body.put_i32(1);
    put_str(&mut body, "probe");
    body.put_i32(1);
    body.put_i32(0);
    body.put_i64(-1); // latest
    body.put_i32(1);
    let mut r = client.raw_call(2, 0, &body)?;
    anyhow::ensure!(r.get_i32() == 1, "one topic");
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("probe"));
    anyhow::ensure!(r.get_i32() == 1, "one partition");
    anyhow::ensure!(r.get_i32() == 0);
    let code = r.get_i16();
    anyhow::ensure!(code == 0, "list offsets v0 error {code}");
    anyhow::ensure!(r.get_i32() == 1, "one offset");
    anyhow::ensure!(r.get_i64() >= 1, "the seeded record");
    anyhow::ensure!(!r.has_remaining(), "{} bytes left", r.remaining());
    Ok(())
}

/// Produce v0-2 (message formats v0/v1, magic 0 for v0): one message is up-converted and
/// appended; the answer has the version's layout.
fn legacy_produce(client: &mut Client, version: i16) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let mut set = BytesMut::new();
    let magic = version.min(1) as i8;
    protocol_tests::put_legacy_message(&mut set, magic, 0, 0, 1_000, Some(b"k"), Some(b"v"));
    let mut body = BytesMut::new();
    body.put_i16(1); // acks
    body.put_i32(1000);
    body.put_i32(1);
    put_str(&mut body, "probe");
    body.put_i32(1);
    body.put_i32(0);
    body.put_i32(set.len() as i32);
    body.put_slice(&set);
    let mut r = client.raw_call(0, version, &body)?;
    anyhow::ensure!(r.get_i32() == 1, "one topic");
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("probe"));
    anyhow::ensure!(r.get_i32() == 1, "one partition");
    anyhow::ensure!(r.get_i32() == 0);
    let code = r.get_i16();
    anyhow::ensure!(code == 0, "produce v{version} error {code}");
    anyhow::ensure!(r.get_i64() >= 1, "after the seeded record");
    if version >= 2 {
        anyhow::ensure!(r.get_i64() == -1, "no log append time");
    }
    if version >= 1 {
        anyhow::ensure!(r.get_i32() == 0, "throttle time");
    }
    anyhow::ensure!(!r.has_remaining(), "{} bytes left", r.remaining());
    Ok(())
}

/// Fetch v0-3: the seeded record down-converted to magic 0 (v0-1) or 1 (v2-3).
fn legacy_fetch(client: &mut Client, version: i16) -> anyhow::Result<()> {
    use bytes::{Buf, BufMut, BytesMut};
    let mut body = BytesMut::new();
    body.put_i32(-1); // replica id
    body.put_i32(0); // max wait
    body.put_i32(1); // min bytes
    if version >= 3 {
        body.put_i32(1 << 20);
    }
    body.put_i32(1);
    put_str(&mut body, "probe");
    body.put_i32(1);
    body.put_i32(0);
    body.put_i64(0);
    body.put_i32(1 << 16);
    let mut r = client.raw_call(1, version, &body)?;
    if version >= 1 {
        anyhow::ensure!(r.get_i32() == 0, "throttle time");
    }
    anyhow::ensure!(r.get_i32() == 1, "one topic");
    anyhow::ensure!(get_str(&mut r)?.as_deref() == Some("probe"));
    anyhow::ensure!(r.get_i32() == 1, "one partition");
    anyhow::ensure!(r.get_i32() == 0);
    let code = r.get_i16();
    anyhow::ensure!(code == 0, "fetch v{version} error {code}");
    anyhow::ensure!(r.get_i64() >= 1, "high watermark");
    let size = r.get_i32();
    anyhow::ensure!(
        size >= 0 && r.remaining() == size as usize,
        "records size {size}"
    );
    let messages = protocol_tests::parse_legacy_messages(r)?;
    let first = messages.first().context("no messages")?;
    anyhow::ensure!(first.offset == 0 && first.value.as_deref() == Some(&b"v"[..]));
    let magic = if version <= 1 { 0 } else { 1 };
    anyhow::ensure!(messages.iter().all(|m| m.magic == magic), "{messages:?}");
    Ok(())
}

#[test]
fn every_advertised_version_is_served() {
    // No initial rebalance delay, so each JoinGroup probe completes at once.
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
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
