//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete.
//! Each handler turns the wire request into calls on the group coordinator (`group/`) and
//! applies the version's rules to the answer, so an old client never sees a field or an error
//! its version does not define.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;
use crate::group::state::{
    CommitOffset, CommitRequest, GroupDescription, JoinRequest, MemberIdentity as Identity,
    SyncRequest,
};
use crate::group::{GroupCoordinator, GroupError, GroupState};

/// FindCoordinator key types (KIP-98).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Kafka's "authorized operations" bit set for a group with no authorizer: READ, DELETE,
/// DESCRIBE (AclOperation codes 3, 6 and 8).
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn code(error: GroupError) -> i16 {
    errors::group_error(error).code()
}

macro_rules! decode_or_close {
    ($ctx:expr, $body:expr) => {
        match decode($ctx, $body) {
            Ok(r) => r,
            Err(e) => return Reply::Now(Err(e)),
        }
    };
}

/// The coordinator when the offsets topic exists; otherwise COORDINATOR_NOT_AVAILABLE, which
/// sends the client back to FindCoordinator (which creates it).
fn coordinator(broker: &Broker) -> Result<Arc<GroupCoordinator>, GroupError> {
    broker
        .group_coordinator()
        .cloned()
        .ok_or(GroupError::CoordinatorNotAvailable)
}

pub fn find_coordinator(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: FindCoordinatorRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let key_type = request.key_type;
    let broker = broker.clone();
    let listener = ctx.listener.clone();
    // Creating the offsets topic is an effect: it runs to completion even if the client leaves.
    Reply::Apply(Box::pin(async move {
        let error = match key_type {
            KEY_TYPE_GROUP => {
                let b = broker.clone();
                match blocking(move || b.ensure_group_coordinator()).await {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "cannot create the offsets topic");
                        Some(ResponseError::CoordinatorNotAvailable)
                    }
                    None => Some(ResponseError::CoordinatorNotAvailable),
                }
            }
            KEY_TYPE_TRANSACTION => {
                let b = broker.clone();
                match blocking(move || b.ensure_txn_coordinator(true)).await {
                    Some(Ok(Some(_))) => None,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "cannot create the transaction state topic");
                        Some(ResponseError::CoordinatorNotAvailable)
                    }
                    _ => Some(ResponseError::CoordinatorNotAvailable),
                }
            }
            _ => Some(ResponseError::InvalidRequest),
        };
        let advertised = broker.advertised_endpoint(&listener);
        let node = broker.config.node_id;
        let coordinators: Vec<Coordinator> = keys
            .into_iter()
            .map(|key| match error {
                None => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(s(advertised.host.clone()))
                    .with_port(i32::from(advertised.port)),
                Some(e) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_host(s(""))
                    .with_port(-1)
                    .with_error_code(e.code()),
            })
            .collect();
        let mut response = FindCoordinatorResponse::default();
        if version >= 4 {
            response.coordinators = coordinators;
        } else if let Some(c) = coordinators.into_iter().next() {
            response.error_code = c.error_code;
            response.node_id = c.node_id;
            response.host = c.host;
            response.port = c.port;
        }
        encode(&response, version)
    }))
}

pub fn join_group(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: JoinGroupRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let join = JoinRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: ctx.client_id().to_string(),
        client_host: ctx.client_host(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout served for both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let coordinator = match coordinator(broker) {
        Ok(c) => c,
        Err(e) => {
            let response = JoinGroupResponse::default()
                .with_error_code(code(e))
                .with_generation_id(-1)
                .with_member_id(request.member_id);
            return Reply::Now(encode(&response, version));
        }
    };
    let joined = coordinator.join(join);
    Reply::Wait(Box::pin(async move {
        let result = joined.await;
        let mut response = JoinGroupResponse::default()
            .with_error_code(result.error.map_or(0, code))
            .with_generation_id(result.generation_id)
            .with_leader(s(result.leader_id))
            .with_member_id(s(result.member_id))
            .with_members(
                result
                    .members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(s))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            );
        response.skip_assignment = version >= 9 && result.skip_assignment;
        // v7+ carries the protocol type; before that only the name, never null.
        if version >= 7 {
            response.protocol_type = result.protocol_type.map(s);
            response.protocol_name = result.protocol_name.map(s);
        } else {
            response.protocol_name = Some(s(result.protocol_name.unwrap_or_default()));
        }
        encode(&response, version)
    }))
}

pub fn sync_group(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: SyncGroupRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let sync = SyncRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|p| p.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let coordinator = match coordinator(broker) {
        Ok(c) => c,
        Err(e) => {
            let response = SyncGroupResponse::default().with_error_code(code(e));
            return Reply::Now(encode(&response, version));
        }
    };
    let synced = coordinator.sync(sync);
    Reply::Wait(Box::pin(async move {
        let result = synced.await;
        let mut response = SyncGroupResponse::default()
            .with_error_code(result.error.map_or(0, code))
            .with_assignment(result.assignment);
        if version >= 5 {
            response.protocol_type = result.protocol_type.map(s);
            response.protocol_name = result.protocol_name.map(s);
        }
        encode(&response, version)
    }))
}

pub fn heartbeat(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: HeartbeatRequest = decode_or_close!(ctx, body);
    let result = coordinator(broker).and_then(|c| {
        c.heartbeat(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
    });
    let response = HeartbeatResponse::default().with_error_code(result.err().map_or(0, code));
    Reply::Now(encode(&response, ctx.version))
}

pub fn leave_group(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: LeaveGroupRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    // v0-2 name one member; v3+ a batch, each possibly by group.instance.id (KIP-345).
    let leaving: Vec<Identity> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| Identity {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![Identity {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let coordinator = match coordinator(broker) {
        Ok(c) => c,
        Err(e) => {
            let response = LeaveGroupResponse::default().with_error_code(code(e));
            return Reply::Now(encode(&response, version));
        }
    };
    let group_id = request.group_id.to_string();
    let result = coordinator.leave(&group_id, &leaving);
    let response = match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(code(e)),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            leaving
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_error_code(r.err().map_or(0, code))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .into_iter()
                .next()
                .and_then(|r| r.err())
                .map_or(0, code),
        ),
    };
    Reply::Now(encode(&response, version))
}

pub fn offset_commit(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    if ctx.version < 2 {
        // The crate decodes v2+; v0-1 (Debian's sarama 1.22 still sends v1) are read by hand.
        // Their response has v2's layout.
        return match legacy_offset_commit(ctx.version, body) {
            Some(request) => commit_offsets(broker, request, ctx.version, 2),
            None => Reply::Now(Err(super::RequestError::Decode {
                api: ctx.api_key,
                version: ctx.version,
                reason: "truncated or malformed OffsetCommit".into(),
            })),
        };
    }
    let request: OffsetCommitRequest = decode_or_close!(ctx, body);
    commit_offsets(broker, request, ctx.version, ctx.version)
}

/// OffsetCommit v0 (group, topics) and v1 (+ generation, member id, and a commit timestamp per
/// partition, which Kafka stopped honouring and we ignore) as the v2 structure.
fn legacy_offset_commit(version: i16, mut body: Bytes) -> Option<OffsetCommitRequest> {
    use bytes::Buf;
    fn string(body: &mut Bytes) -> Option<StrBytes> {
        if body.remaining() < 2 {
            return None;
        }
        let len = body.get_i16();
        if len < 0 {
            return Some(StrBytes::default());
        }
        let len = len as usize;
        if body.remaining() < len {
            return None;
        }
        StrBytes::from_utf8(body.split_to(len)).ok()
    }
    fn count(body: &mut Bytes, min_item_bytes: usize) -> Option<usize> {
        if body.remaining() < 4 {
            return None;
        }
        let n = body.get_i32();
        // Bounded by what the frame can hold, so a hostile count allocates nothing.
        usize::try_from(n.max(0))
            .ok()
            .filter(|n| n.saturating_mul(min_item_bytes) <= body.remaining())
    }
    let group_id = string(&mut body)?;
    let mut request = OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(-1);
    if version >= 1 {
        if body.remaining() < 4 {
            return None;
        }
        request.generation_id_or_member_epoch = body.get_i32();
        request.member_id = string(&mut body)?;
    }
    let partition_bytes = if version >= 1 { 22 } else { 14 };
    let topics = count(&mut body, 6)?;
    for _ in 0..topics {
        let name = string(&mut body)?;
        let partitions = count(&mut body, partition_bytes)?;
        let mut topic =
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(name));
        for _ in 0..partitions {
            if body.remaining() < partition_bytes {
                return None;
            }
            let partition_index = body.get_i32();
            let committed_offset = body.get_i64();
            if version >= 1 {
                let _commit_timestamp = body.get_i64();
            }
            let metadata = string(&mut body)?;
            topic.partitions.push(
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(metadata)),
            );
        }
        request.topics.push(topic);
    }
    body.is_empty().then_some(request)
}

fn commit_offsets(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
    response_version: i16,
) -> Reply {
    let offsets: Vec<CommitOffset> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| CommitOffset {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let order: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        offsets,
    };
    // The topic check and the commit happen in one step, under the group's shard lock (see
    // `GroupCoordinator::commit`), so a topic deleted meanwhile is refused, never resurrected.
    let (refused, stored) = match coordinator(broker) {
        Ok(c) => {
            let (unknown, stored) = c.commit(commit, |topic, partition| {
                broker
                    .metadata
                    .image()
                    .topic(topic)
                    .is_some_and(|t| (0..t.partitions).contains(&partition))
            });
            let refused: Vec<(String, i32, i16)> = unknown
                .into_iter()
                .map(|(t, p)| (t, p, ResponseError::UnknownTopicOrPartition.code()))
                .collect();
            (refused, futures_util::future::Either::Left(stored))
        }
        Err(e) => (
            Vec::new(),
            futures_util::future::Either::Right(std::future::ready(Err(e))),
        ),
    };
    Reply::Wait(Box::pin(async move {
        let outcome = stored.await;
        let error_of = |topic: &str, partition: i32| -> i16 {
            if let Some((_, _, c)) = refused
                .iter()
                .find(|(t, p, _)| t == topic && *p == partition)
            {
                return *c;
            }
            match &outcome {
                Err(e) => code(*e),
                Ok(errors) => errors
                    .iter()
                    .find(|(t, p, _)| t == topic && *p == partition)
                    .map_or(0, |(_, _, e)| code(*e)),
            }
        };
        let response = OffsetCommitResponse::default().with_topics(
            order
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(s(topic.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_error_code(error_of(topic, *p))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        encode(&response, response_version)
    }))
}

type Partitions = Vec<(String, Vec<i32>)>;
/// (partition, committed offset, leader epoch, metadata) by topic.
type FetchedTopics = Vec<(String, Vec<(i32, i64, i32, String)>)>;

/// One group's offsets for OffsetFetch: the partitions asked for, or all when `None`.
fn fetch_group(
    coordinator: &Result<Arc<GroupCoordinator>, GroupError>,
    group_id: &str,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Result<FetchedTopics, GroupError> {
    let found = match coordinator {
        Ok(c) => c.fetch_offsets(group_id, wanted)?,
        // No offsets topic yet: nothing was ever committed.
        Err(_) => match wanted {
            Some(wanted) => wanted
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p, None)))
                .collect(),
            None => Vec::new(),
        },
    };
    let mut topics: FetchedTopics = Vec::new();
    for (topic, partition, value) in found {
        let entry = match value {
            Some(v) => (partition, v.offset, v.leader_epoch, v.metadata),
            // Kafka answers partitions without a commit with offset -1 and empty metadata.
            None => (partition, -1, -1, String::new()),
        };
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push(entry),
            None => topics.push((topic, vec![entry])),
        }
    }
    Ok(topics)
}

/// With `require_stable` (OffsetFetch v7+, KIP-447), the partitions whose offsets are in an open
/// transaction: they answer UNSTABLE_OFFSET_COMMIT, which the consumer retries.
fn unstable(
    coordinator: &Result<Arc<GroupCoordinator>, GroupError>,
    group_id: &str,
    require_stable: bool,
) -> std::collections::HashSet<(String, i32)> {
    match coordinator {
        Ok(c) if require_stable => c.unstable_partitions(group_id).unwrap_or_default(),
        _ => Default::default(),
    }
}

pub fn offset_fetch(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetFetchRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let coordinator = coordinator(broker);
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Option<Partitions> = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let group_id = g.group_id.to_string();
                let unstable = unstable(&coordinator, &group_id, request.require_stable);
                match fetch_group(&coordinator, &group_id, wanted.as_deref()) {
                    Ok(topics) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(s(topic.clone())))
                                        .with_partitions(
                                            partitions
                                                .into_iter()
                                                .map(|(p, offset, epoch, metadata)| {
                                                    let partition =
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(offset)
                                                            .with_committed_leader_epoch(epoch)
                                                            .with_metadata(Some(s(metadata)));
                                                    if unstable.contains(&(topic.clone(), p)) {
                                                        partition
                                                            .with_committed_offset(-1)
                                                            .with_error_code(
                                                                ResponseError::UnstableOffsetCommit
                                                                    .code(),
                                                            )
                                                    } else {
                                                        partition
                                                    }
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    Err(e) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code(e)),
                }
            })
            .collect();
        let response = OffsetFetchResponse::default().with_groups(groups);
        return Reply::Now(encode(&response, version));
    }
    let wanted: Option<Partitions> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let unstable = unstable(&coordinator, &request.group_id, request.require_stable);
    let (topics, error) = match fetch_group(&coordinator, &request.group_id, wanted.as_deref()) {
        Ok(topics) => (topics, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut response = OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(topic.clone())))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, offset, epoch, metadata)| {
                                let partition = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(s(metadata)));
                                if unstable.contains(&(topic.clone(), p)) {
                                    partition
                                        .with_committed_offset(-1)
                                        .with_error_code(ResponseError::UnstableOffsetCommit.code())
                                } else {
                                    partition
                                }
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    if let Some(e) = error {
        // v2+ has a top-level error; v1 can only say it per partition, and has none to say it
        // on, so the client sees an empty answer and retries on its timer.
        response.error_code = if version >= 2 { code(e) } else { 0 };
    }
    Reply::Now(encode(&response, version))
}

pub fn describe_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeGroupsRequest = decode_or_close!(ctx, body);
    let coordinator = coordinator(broker);
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = match &coordinator {
                Ok(c) => c.describe(&group_id),
                Err(_) => Ok(GroupDescription::dead(&group_id)),
            };
            let mut group = DescribedGroup::default().with_group_id(group_id);
            group.authorized_operations = if request.include_authorized_operations {
                GROUP_AUTHORIZED_OPERATIONS
            } else {
                i32::MIN
            };
            match described {
                Err(e) => group.with_error_code(code(e)).with_group_state(s("")),
                Ok(d) => group
                    .with_group_state(s(d.state.name()))
                    .with_protocol_type(s(d.protocol_type))
                    .with_protocol_data(s(d.protocol_name))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    let response = DescribeGroupsResponse::default().with_groups(groups);
    Reply::Now(encode(&response, ctx.version))
}

pub fn list_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListGroupsRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let listed = match coordinator(broker) {
        Ok(c) => c.list(),
        Err(_) => Ok(Vec::new()),
    };
    let response = match listed {
        Err(e) => ListGroupsResponse::default().with_error_code(code(e)),
        Ok(groups) => {
            let states: Vec<Option<GroupState>> = request
                .states_filter
                .iter()
                .map(|f| GroupState::parse(f))
                .collect();
            // Every group here speaks the classic protocol (KIP-848's "consumer" type is
            // not served).
            let classic_wanted = request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"));
            ListGroupsResponse::default().with_groups(
                groups
                    .into_iter()
                    .filter(|g| states.is_empty() || states.contains(&Some(g.state)))
                    .filter(|_| classic_wanted)
                    .map(|g| {
                        let mut listed = ListedGroup::default()
                            .with_group_id(GroupId(s(g.group_id)))
                            .with_protocol_type(s(g.protocol_type));
                        if version >= 4 {
                            listed.group_state = s(g.state.name());
                        }
                        if version >= 5 {
                            listed.group_type = s("classic");
                        }
                        listed
                    })
                    .collect(),
            )
        }
    };
    Reply::Now(encode(&response, version))
}

pub fn delete_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteGroupsRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let coordinator = coordinator(broker);
    Reply::Apply(Box::pin(async move {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group_id in request.groups_names {
            let outcome = match &coordinator {
                Ok(c) => c.delete_group(&group_id).await,
                Err(_) => Err(GroupError::GroupIdNotFound),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(outcome.err().map_or(0, code)),
            );
        }
        encode(
            &DeleteGroupsResponse::default().with_results(results),
            version,
        )
    }))
}

pub fn offset_delete(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetDeleteRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let coordinator = coordinator(broker);
    let group_id = request.group_id.to_string();
    Reply::Apply(Box::pin(async move {
        let outcome = match &coordinator {
            Ok(c) => c.delete_offsets(&group_id, &partitions).await,
            Err(_) => Err(GroupError::GroupIdNotFound),
        };
        let response = match outcome {
            Err(e) => OffsetDeleteResponse::default().with_error_code(code(e)),
            Ok(results) => {
                let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
                for ((topic, partition), result) in partitions.into_iter().zip(results) {
                    let entry = OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition)
                        .with_error_code(result.err().map_or(0, code));
                    match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                        Some(t) => t.partitions.push(entry),
                        None => topics.push(
                            OffsetDeleteResponseTopic::default()
                                .with_name(TopicName(s(topic)))
                                .with_partitions(vec![entry]),
                        ),
                    }
                }
                OffsetDeleteResponse::default().with_topics(topics)
            }
        };
        encode(&response, version)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn legacy_offset_commit_parses_and_never_panics() {
        let mut body = BytesMut::new();
        body.put_i16(1);
        body.put_slice(b"g");
        body.put_i32(7); // generation
        body.put_i16(1);
        body.put_slice(b"m");
        body.put_i32(1);
        body.put_i16(1);
        body.put_slice(b"t");
        body.put_i32(1);
        body.put_i32(3);
        body.put_i64(99);
        body.put_i64(-1);
        body.put_i16(2);
        body.put_slice(b"md");
        let body = body.freeze();
        let parsed = legacy_offset_commit(1, body.clone()).expect("parses");
        assert_eq!(parsed.generation_id_or_member_epoch, 7);
        assert_eq!(parsed.member_id.as_str(), "m");
        let p = &parsed.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.committed_offset), (3, 99));
        assert_eq!(p.committed_metadata.as_deref(), Some("md"));
        for cut in 0..body.len() {
            assert!(
                legacy_offset_commit(1, body.slice(..cut)).is_none(),
                "cut at {cut}"
            );
        }
        // A count far beyond the frame is refused before anything is allocated.
        let mut hostile = BytesMut::new();
        hostile.put_i16(0);
        hostile.put_i32(i32::MAX);
        assert!(legacy_offset_commit(0, hostile.freeze()).is_none());
    }
}
