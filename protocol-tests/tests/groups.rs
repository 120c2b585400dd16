//! The group coordinator at the wire level: what survives a `kill -9`, the errors old and new
//! JoinGroup versions may see, and what an unknown group looks like.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{BrokerProcess, Client};

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn group(id: &str) -> GroupId {
    GroupId(str(id))
}

fn find_coordinator(client: &mut Client, id: &str) {
    let response = client
        .call(3, &FindCoordinatorRequest::default().with_key(str(id)))
        .expect("find coordinator");
    assert_eq!(response.error_code, 0, "{response:?}");
}

fn join(client: &mut Client, id: &str, member_id: &str, version: i16) -> JoinGroupResponse {
    client
        .call(
            version,
            &JoinGroupRequest::default()
                .with_group_id(group(id))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(str(member_id))
                .with_protocol_type(str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(str("range"))
                .with_metadata(Bytes::from_static(b"subscription"))]),
        )
        .expect("join group")
}

/// A member through JoinGroup v5 and SyncGroup; returns (member id, generation).
fn stable_member(client: &mut Client, id: &str) -> (String, i32) {
    let first = join(client, id, "", 5);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED: {first:?}");
    let joined = join(client, id, &first.member_id, 5);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced = client
        .call(
            3,
            &SyncGroupRequest::default()
                .with_group_id(group(id))
                .with_generation_id(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(joined.member_id.clone())
                        .with_assignment(Bytes::from_static(b"all partitions")),
                ]),
        )
        .expect("sync group");
    assert_eq!(synced.error_code, 0, "{synced:?}");
    assert_eq!(synced.assignment.as_ref(), b"all partitions");
    (joined.member_id.to_string(), joined.generation_id)
}

fn heartbeat(client: &mut Client, id: &str, member_id: &str, generation: i32) -> i16 {
    client
        .call(
            3,
            &HeartbeatRequest::default()
                .with_group_id(group(id))
                .with_generation_id(generation)
                .with_member_id(str(member_id)),
        )
        .expect("heartbeat")
        .error_code
}

fn commit(client: &mut Client, id: &str, member_id: &str, generation: i32, offset: i64) {
    let response = client
        .call(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(group(id))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(str(member_id))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str("events")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(3)
                                .with_committed_metadata(Some(str("processed by worker-7 ✓"))),
                        ]),
                ]),
        )
        .expect("offset commit");
    assert_eq!(
        response.topics[0].partitions[0].error_code, 0,
        "{response:?}"
    );
}

fn fetch(client: &mut Client, id: &str) -> offset_fetch_response::OffsetFetchResponsePartition {
    let response = client
        .call(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(group(id))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str("events")))
                        .with_partition_indexes(vec![1]),
                ])),
        )
        .expect("offset fetch");
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0].partitions[0].clone()
}

#[test]
fn offsets_metadata_and_membership_survive_kill_9() {
    let mut broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut client = broker.client();
    client.create_topic("events", 3);
    find_coordinator(&mut client, "survivor");
    let (member, generation) = stable_member(&mut client, "survivor");
    commit(&mut client, "survivor", &member, generation, 1234);

    broker.kill_and_restart();
    let mut client = broker.client();
    // Shards answer COORDINATOR_LOAD_IN_PROGRESS while replaying; retry briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut code = heartbeat(&mut client, "survivor", &member, generation);
    while code == 14 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        code = heartbeat(&mut client, "survivor", &member, generation);
    }
    assert_eq!(
        code, 0,
        "the member carries on in its generation after a restart"
    );
    let fetched = fetch(&mut client, "survivor");
    assert_eq!(fetched.committed_offset, 1234);
    assert_eq!(fetched.committed_leader_epoch, 3);
    assert_eq!(fetched.metadata.as_deref(), Some("processed by worker-7 ✓"));
    let described = client
        .call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("survivor")]),
        )
        .expect("describe");
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.as_str(), member);
    assert_eq!(g.members[0].member_assignment.as_ref(), b"all partitions");
}

#[test]
fn join_group_errors_follow_the_request_version() {
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut client = broker.client();
    find_coordinator(&mut client, "versions");
    // v1 (Debian's sarama 1.22) predates KIP-394: no MEMBER_ID_REQUIRED, a member id at once.
    let old = join(&mut client, "versions-v1", "", 1);
    assert_eq!(old.error_code, 0, "{old:?}");
    assert!(!old.member_id.is_empty());
    // v4+ must first ask for a member id.
    let new = join(&mut client, "versions-v4", "", 4);
    assert_eq!(new.error_code, 79, "{new:?}");
    assert!(!new.member_id.is_empty());
    // An unknown member id is refused whatever the version.
    for version in [0, 4, 9] {
        let stranger = join(&mut client, "versions-v1", "not-a-member", version);
        assert_eq!(stranger.error_code, 25, "UNKNOWN_MEMBER_ID at v{version}");
    }
    // A session timeout outside group.min/max.session.timeout.ms.
    let response = client
        .call(
            5,
            &JoinGroupRequest::default()
                .with_group_id(group("versions-bad"))
                .with_session_timeout_ms(10)
                .with_rebalance_timeout_ms(10)
                .with_protocol_type(str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(str("range"))]),
        )
        .expect("join");
    assert_eq!(response.error_code, 26, "INVALID_SESSION_TIMEOUT");
}

#[test]
fn unknown_groups_and_topics() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    // Before any FindCoordinator the offsets topic does not exist; reads still answer.
    let fetched = client
        .call(
            5,
            &OffsetFetchRequest::default()
                .with_group_id(group("nobody"))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str("events")))
                        .with_partition_indexes(vec![0]),
                ])),
        )
        .expect("offset fetch");
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1);
    find_coordinator(&mut client, "nobody");
    let described = client
        .call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("nobody")]),
        )
        .expect("describe");
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    let deleted = client
        .call(
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("nobody")]),
        )
        .expect("delete groups");
    assert_eq!(deleted.results[0].error_code, 69, "GROUP_ID_NOT_FOUND");
    // Committing for a topic that does not exist.
    let response = client
        .call(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(group("nobody"))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str("no-such-topic")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1),
                        ]),
                ]),
        )
        .expect("offset commit");
    assert_eq!(response.topics[0].partitions[0].error_code, 3);
    // The offsets topic is listed as internal.
    let metadata = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .expect("metadata");
    let internal = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("__consumer_offsets"))
        .expect("offsets topic listed");
    assert!(internal.is_internal);
}
