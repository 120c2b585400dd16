//! The request lifecycle, as in Kafka: a request that has been read takes effect, in the order
//! it was sent, whether or not the client stays for the answer. Each effectful API is sent on
//! a raw socket that is closed at once; another connection then waits (with a bound) for the
//! effect. Pipelined write-then-read pairs see the write; a commit racing a topic delete never
//! leaks into the topic's next incarnation.

use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use protocol_tests::{batch, BrokerProcess, Client};

const ROUNDS: usize = 51;

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(str(name))
}

/// Sends one request on a fresh connection and closes it without reading anything.
fn send_and_hang_up<R: Request>(addr: SocketAddr, version: i16, request: &R) {
    let mut client = Client::connect(addr).expect("connect");
    let (_, frame) = client.frame(version, request).expect("encode");
    client.send_frame(&frame).expect("send");
    let _ = client.stream.shutdown(Shutdown::Both);
}

/// Waits up to 10 s for `done`; a request that never takes effect fails here.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn create(client: &mut Client, topic: &str, partitions: i32) {
    let response = client
        .call(5, &create_request(topic, partitions))
        .expect("create topics");
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

fn create_request(topic: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000)
}

fn delete_request(topic: &str) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(topic)])
        .with_timeout_ms(30_000)
}

/// (error code, partition count) of a topic, never auto-creating it.
fn describe(client: &mut Client, topic: &str) -> (i16, usize) {
    let response = client
        .call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic_name(topic)))]))
                .with_allow_auto_topic_creation(false),
        )
        .expect("metadata");
    let t = &response.topics[0];
    (t.error_code, t.partitions.len())
}

fn join(
    client: &mut Client,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
) -> JoinGroupResponse {
    client
        .call(
            5,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(str(group)))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(str(member_id))
                .with_group_instance_id(instance.map(str))
                .with_protocol_type(str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(str("range"))
                .with_metadata(Bytes::from_static(b"subscription"))]),
        )
        .expect("join group")
}

/// A Stable member of `group` (static when `instance` is set); returns (member id, generation).
fn stable_member(client: &mut Client, group: &str, instance: Option<&str>) -> (String, i32) {
    let mut joined = join(client, group, "", instance);
    if joined.error_code == 79 {
        // MEMBER_ID_REQUIRED (KIP-394): dynamic members join again with the id given.
        let member_id = joined.member_id.to_string();
        joined = join(client, group, &member_id, instance);
    }
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced = client
        .call(
            3,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(str(group)))
                .with_generation_id(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_group_instance_id(instance.map(str))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(joined.member_id.clone())
                        .with_assignment(Bytes::from_static(b"all")),
                ]),
        )
        .expect("sync group");
    assert_eq!(synced.error_code, 0, "{synced:?}");
    (joined.member_id.to_string(), joined.generation_id)
}

fn members(client: &mut Client, group: &str) -> usize {
    let response = client
        .call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(str(group))]),
        )
        .expect("describe groups");
    response.groups[0].members.len()
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(str(""))),
                ]),
        ])
}

fn offset_fetch_request(group: &str, topic: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]))
}

fn committed(client: &mut Client, group: &str, topic: &str) -> i64 {
    let response = client
        .call(7, &offset_fetch_request(group, topic))
        .expect("offset fetch");
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0].partitions[0].committed_offset
}

fn find_coordinator(client: &mut Client) {
    let response = client
        .call(3, &FindCoordinatorRequest::default().with_key(str("any")))
        .expect("find coordinator");
    assert_eq!(response.error_code, 0, "{response:?}");
}

#[test]
fn leave_group_takes_effect_when_the_client_hangs_up() {
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut client = broker.client();
    find_coordinator(&mut client);
    for round in 0..ROUNDS {
        let group = format!("leave-{round}");
        // v1 by member id, v3 by member id, v3 by group.instance.id (KIP-345).
        let variant = round % 3;
        let instance = (variant == 2).then(|| format!("instance-{round}"));
        let (member_id, _) = stable_member(&mut client, &group, instance.as_deref());
        assert_eq!(members(&mut client, &group), 1);
        if variant == 0 {
            let request = LeaveGroupRequest::default()
                .with_group_id(GroupId(str(&group)))
                .with_member_id(str(&member_id));
            send_and_hang_up(broker.addr, 1, &request);
        } else {
            let identity = match &instance {
                Some(instance) => leave_group_request::MemberIdentity::default()
                    .with_member_id(str(""))
                    .with_group_instance_id(Some(str(instance))),
                None => {
                    leave_group_request::MemberIdentity::default().with_member_id(str(&member_id))
                }
            };
            let request = LeaveGroupRequest::default()
                .with_group_id(GroupId(str(&group)))
                .with_members(vec![identity]);
            send_and_hang_up(broker.addr, 3, &request);
        }
        eventually(&format!("round {round}: the member left"), || {
            members(&mut client, &group) == 0
        });
    }
}

#[test]
fn offset_commit_takes_effect_when_the_client_hangs_up() {
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut client = broker.client();
    create(&mut client, "commits", 1);
    find_coordinator(&mut client);
    for round in 0..ROUNDS {
        let group = format!("commit-{round}");
        // Standalone (generation -1, as an admin tool or assign() commits) and in a generation.
        let (member, generation) = if round % 2 == 0 {
            (String::new(), -1)
        } else {
            stable_member(&mut client, &group, None)
        };
        let offset = 1000 + round as i64;
        send_and_hang_up(
            broker.addr,
            8,
            &commit_request(&group, generation, &member, "commits", offset),
        );
        eventually(&format!("round {round}: the commit is stored"), || {
            committed(&mut client, &group, "commits") == offset
        });
    }
}

#[test]
fn topic_admin_takes_effect_when_the_client_hangs_up() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    for round in 0..ROUNDS {
        // CreateTopics.
        let topic = format!("admin-{round}");
        send_and_hang_up(broker.addr, 5, &create_request(&topic, 1));
        eventually(&format!("round {round}: created"), || {
            describe(&mut client, &topic) == (0, 1)
        });
        // CreatePartitions.
        let grow = CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name(&topic))
                    .with_count(2),
            ])
            .with_timeout_ms(30_000);
        send_and_hang_up(broker.addr, 1, &grow);
        eventually(&format!("round {round}: grown"), || {
            describe(&mut client, &topic) == (0, 2)
        });
        // IncrementalAlterConfigs.
        let retention = format!("{}", 3_600_000 + round);
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str(&topic))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(str("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(str(&retention))),
                ]),
        ]);
        send_and_hang_up(broker.addr, 1, &alter);
        eventually(&format!("round {round}: altered"), || {
            topic_retention(&mut client, &topic) == retention
        });
        // DeleteRecords.
        produce(&mut client, &topic, &[b"a", b"b", b"c"]);
        let delete_records = DeleteRecordsRequest::default()
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(2),
                ])])
            .with_timeout_ms(30_000);
        send_and_hang_up(broker.addr, 2, &delete_records);
        eventually(&format!("round {round}: records deleted"), || {
            earliest(&mut client, &topic) == 2
        });
        // DeleteTopics.
        send_and_hang_up(broker.addr, 5, &delete_request(&topic));
        eventually(&format!("round {round}: deleted"), || {
            describe(&mut client, &topic).0 == 3
        });
    }
}

fn topic_retention(client: &mut Client, topic: &str) -> String {
    let response = client
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str(topic))
                    .with_configuration_keys(Some(vec![str("retention.ms")])),
            ]),
        )
        .expect("describe configs");
    response.results[0].configs[0]
        .value
        .as_deref()
        .unwrap_or_default()
        .to_string()
}

fn produce(client: &mut Client, topic: &str, values: &[&[u8]]) {
    let response = client
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(
                                values,
                                None,
                                kafka_protocol::records::Compression::None,
                            ))),
                    ])]),
        )
        .expect("produce");
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{response:?}");
}

fn earliest(client: &mut Client, topic: &str) -> i64 {
    let response = client
        .call(
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-2)]),
            ]),
        )
        .expect("list offsets");
    response.topics[0].partitions[0].offset
}

#[test]
fn pipelined_offset_fetch_sees_the_commit_before_it() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    create(&mut client, "pipelined", 1);
    find_coordinator(&mut client);
    for round in 0..100 {
        let offset = 10 + round as i64;
        let (commit_id, commit) = client
            .frame(
                8,
                &commit_request("pipelined-group", -1, "", "pipelined", offset),
            )
            .expect("encode");
        let (fetch_id, fetch) = client
            .frame(7, &offset_fetch_request("pipelined-group", "pipelined"))
            .expect("encode");
        // Both in one write: the broker reads the fetch while the commit's fsync is pending.
        client
            .send_frame(&[commit.as_ref(), fetch.as_ref()].concat())
            .expect("send");
        let mut body = client
            .read_response(ApiKey::OffsetCommit, 8, commit_id)
            .expect("commit answer");
        let committed = OffsetCommitResponse::decode(&mut body, 8).expect("decode");
        assert_eq!(committed.topics[0].partitions[0].error_code, 0);
        let mut body = client
            .read_response(ApiKey::OffsetFetch, 7, fetch_id)
            .expect("fetch answer");
        let fetched = OffsetFetchResponse::decode(&mut body, 7).expect("decode");
        assert_eq!(
            fetched.topics[0].partitions[0].committed_offset, offset,
            "round {round}: the fetch sent after the commit saw the previous offset"
        );
    }
}

/// Row 3 of issue 18: an OffsetCommit pipelined behind a long-poll Fetch takes effect at
/// once, so a DeleteTopics while the fetch waits removes it, and the topic's next incarnation
/// starts without a committed offset.
#[test]
fn commit_behind_a_long_poll_is_applied_before_a_later_delete() {
    let broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    find_coordinator(&mut admin);
    for round in 0..5 {
        let topic = format!("behind-{round}");
        let group = format!("behind-group-{round}");
        create(&mut admin, &topic, 1);
        let mut consumer = broker.client();
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(20_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic_name(&topic))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let (_, fetch) = consumer.frame(11, &fetch).expect("encode");
        let (_, commit) = consumer
            .frame(8, &commit_request(&group, -1, "", &topic, 5))
            .expect("encode");
        consumer
            .send_frame(&[fetch.as_ref(), commit.as_ref()].concat())
            .expect("send");
        eventually("the commit behind the long poll is applied", || {
            committed(&mut admin, &group, &topic) == 5
        });
        let deleted = admin.call(5, &delete_request(&topic)).expect("delete");
        assert_eq!(deleted.responses[0].error_code, 0);
        create(&mut admin, &topic, 1);
        assert_eq!(
            committed(&mut admin, &group, &topic),
            -1,
            "round {round}: the new incarnation inherited the deleted topic's offset"
        );
    }
}

/// A commit racing a delete of its topic lands before the delete (and is removed with it) or
/// is refused; either way the re-created topic has no committed offset.
#[test]
fn commit_racing_a_topic_delete_never_reaches_the_next_incarnation() {
    let broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    find_coordinator(&mut admin);
    let addr = broker.addr;
    let mut refused = 0;
    for round in 0..ROUNDS {
        let topic = "raced";
        let group = format!("raced-group-{round}");
        create(&mut admin, topic, 1);
        let committer = {
            let group = group.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr).expect("connect");
                let response = client
                    .call(8, &commit_request(&group, -1, "", topic, 7))
                    .expect("commit");
                response.topics[0].partitions[0].error_code
            })
        };
        let deleted = admin.call(5, &delete_request(topic)).expect("delete");
        assert_eq!(deleted.responses[0].error_code, 0);
        let code = committer.join().expect("committer");
        assert!(
            code == 0 || code == 3,
            "round {round}: commit answered {code}"
        );
        refused += usize::from(code == 3);
        create(&mut admin, topic, 1);
        assert_eq!(
            committed(&mut admin, &group, topic),
            -1,
            "round {round}: the re-created topic inherited a commit (answered {code})"
        );
        let deleted = admin.call(5, &delete_request(topic)).expect("delete");
        assert_eq!(deleted.responses[0].error_code, 0);
    }
    eprintln!("{refused} of {ROUNDS} racing commits were refused");
}

const RACE_PARTITIONS: i32 = 32;

/// One produce request with `value` to every partition of `topic`; the error codes.
fn produce_everywhere(client: &mut Client, topic: &str, value: &[u8]) -> Vec<i16> {
    let response = client
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(
                        (0..RACE_PARTITIONS)
                            .map(|p| {
                                produce_request::PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(batch(
                                        &[value],
                                        None,
                                        kafka_protocol::records::Compression::None,
                                    )))
                            })
                            .collect(),
                    )]),
        )
        .expect("produce");
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Every partition's records from offset 0, concatenated per partition.
fn fetch_everything(client: &mut Client, topic: &str) -> Vec<(i16, Bytes)> {
    let response = client
        .call(
            11,
            &FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(50 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        (0..RACE_PARTITIONS)
                            .map(|p| {
                                fetch_request::FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(0)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    )]),
        )
        .expect("fetch");
    response.responses[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.records.clone().unwrap_or_default()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Row 4 of issue 18: DeleteTopics racing CreateTopics of the same name. Afterwards every
/// partition of the new topic takes produce and serves only its own records.
#[test]
fn delete_racing_create_of_the_same_name_leaves_a_whole_new_topic() {
    let broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    let topic = "reborn";
    create(&mut admin, topic, RACE_PARTITIONS);
    let addr = broker.addr;
    for round in 0..20 {
        let old = format!("incarnation-{round:03}");
        let new = format!("incarnation-{:03}", round + 1);
        assert!(
            produce_everywhere(&mut admin, topic, old.as_bytes())
                .iter()
                .all(|c| *c == 0),
            "round {round}: the current topic takes produce"
        );
        let creator = std::thread::spawn(move || {
            let mut client = Client::connect(addr).expect("connect");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let response = client
                    .call(5, &create_request(topic, RACE_PARTITIONS))
                    .expect("create");
                match response.topics[0].error_code {
                    0 => return,
                    // TOPIC_ALREADY_EXISTS until the delete went through.
                    36 if Instant::now() < deadline => continue,
                    code => panic!("create answered {code}"),
                }
            }
        });
        let deleted = admin.call(5, &delete_request(topic)).expect("delete");
        assert_eq!(deleted.responses[0].error_code, 0, "round {round}");
        creator.join().expect("creator");
        assert_eq!(describe(&mut admin, topic), (0, RACE_PARTITIONS as usize));
        let codes = produce_everywhere(&mut admin, topic, new.as_bytes());
        assert!(
            codes.iter().all(|c| *c == 0),
            "round {round}: produce to the new topic answered {codes:?}"
        );
        for (partition, (code, records)) in fetch_everything(&mut admin, topic).iter().enumerate() {
            assert_eq!(*code, 0, "round {round}, partition {partition}");
            assert!(
                contains(records, new.as_bytes()),
                "round {round}, partition {partition}: the new record is missing"
            );
            assert!(
                !contains(records, old.as_bytes()),
                "round {round}, partition {partition}: a record of the deleted topic is served"
            );
        }
    }
}

/// A delete interrupted by a crash (the topic left the metadata, its directories did not)
/// finishes at the next start: a topic later created with the name starts empty.
#[test]
fn a_delete_interrupted_by_a_crash_finishes_at_the_next_start() {
    let mut broker = BrokerProcess::start(&[]);
    let mut admin = broker.client();
    create(&mut admin, "interrupted", 1);
    produce(&mut admin, "interrupted", &[b"before the delete"]);
    let dir = broker.log_dir().join("interrupted-0");
    assert!(
        dir.join("partition.metadata").exists(),
        "the partition directory names its topic id"
    );
    let kept = broker.data.path().join("kept-interrupted-0");
    copy_dir(&dir, &kept);
    let deleted = admin
        .call(5, &delete_request("interrupted"))
        .expect("delete");
    assert_eq!(deleted.responses[0].error_code, 0);
    drop(admin);
    broker.stop();
    // What a crash between the metadata write and the directory removal leaves behind.
    copy_dir(&kept, &dir);
    broker.start_again();
    assert!(
        !dir.exists(),
        "the interrupted delete was finished at start"
    );
    let mut admin = broker.client();
    create(&mut admin, "interrupted", 1);
    assert_eq!(earliest(&mut admin, "interrupted"), 0);
    let response = admin
        .call(
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("interrupted"))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)]),
            ]),
        )
        .expect("list offsets");
    assert_eq!(
        response.topics[0].partitions[0].offset, 0,
        "the new topic starts empty"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
