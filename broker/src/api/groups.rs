//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete.
//! Membership here; offsets in `groups/offsets.rs`, describe/list/delete in `groups/admin.rs`.
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

mod admin;
mod offsets;

pub use admin::{delete_groups, describe_groups, list_groups};
pub use offsets::{offset_commit, offset_delete, offset_fetch};

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
