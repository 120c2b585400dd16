//! The classic group protocol as a sans-IO state machine: one `GroupManager` owns the groups of
//! one offsets-topic partition. Every call takes the time (`now_ms`) and returns `Effects`: the
//! records to persist and the responses that become due, which the caller delivers only after
//! the records are stored. Nothing here waits, sleeps or touches a file; timers are deadlines
//! checked by `tick`.
//!
//! The rules mirror Kafka's classic `GroupCoordinator` and `GroupMetadata`, in our own words:
//!
//! - States: Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead for a group
//!   that was deleted or expired (then it leaves the map).
//! - A rebalance starts when a member joins, leaves, changes its protocols or fails. It ends
//!   when every known member has rejoined (or at the rebalance deadline, which removes those that
//!   did not), except that a group leaving Empty waits `group.initial.rebalance.delay.ms` first,
//!   extended while new members keep arriving, up to the rebalance timeout.
//! - Ending it bumps the generation, selects the protocol every member supports (by the
//!   members' preference votes), keeps or elects a leader and answers every JoinGroup; the
//!   leader's SyncGroup carries the assignment, which is persisted before anyone is answered.
//! - Members that miss their session timeout are removed; so are members that never send
//!   SyncGroup within the rebalance timeout after a join.
//! - KIP-394: a new dynamic member joining with JoinGroup v4+ first gets a member id and
//!   MEMBER_ID_REQUIRED; it is "pending" until it rejoins with that id.
//! - KIP-345: static members (`group.instance.id`) keep their identity; one that rejoins with an
//!   unknown member id replaces its old incarnation, fencing it, without a rebalance when the
//!   group is Stable and the protocol does not change.
//!
//! This file holds the types, the groups and members, and the `GroupManager` calls of the
//! protocol; `state/rebalance.rs` the steps of a join and the per-group deadlines;
//! `state/offsets.rs` offset commits, fetches, deletes, expiry and the replay of records.
//!
//! Invariants (`debug_assert!`ed in `check`): the leader is a member; `static_members` maps
//! exactly the members that have an instance id; a Stable or CompletingRebalance group has
//! members; an Empty group has none.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use thiserror::Error;

use crate::config::GroupConfig;

use super::records::{
    consumer_subscription_topics, GroupRecord, GroupValue, MemberValue, OffsetValue,
};

mod offsets;
mod rebalance;

use rebalance::{join_known_member, join_unknown_member, tick_group};

/// One outcome per partition of a request, in request order.
pub type PartitionResults = Vec<Result<(), GroupError>>;

/// Identifies a request waiting for its JoinGroup or SyncGroup response.
pub type RequestId = u64;

/// Kafka's constant for how long a new member may wait in its first JoinGroup.
const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    /// The name Kafka's tools print and filter on.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Kafka matches state filters without regard to case.
    pub fn parse(name: &str) -> Option<GroupState> {
        GroupState::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// What a client did wrong, or why the coordinator cannot answer; `api/errors.rs` maps these to
/// Kafka error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GroupError {
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("member id required")]
    MemberIdRequired,
    #[error("fenced instance id")]
    FencedInstanceId,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    #[error("group max size reached")]
    GroupMaxSizeReached,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("group id not found")]
    GroupIdNotFound,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    #[error("the offsets topic could not be written")]
    Storage,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member must first obtain a member id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(member_id: &str, error: GroupError) -> JoinResponse {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResponse::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: GroupError) -> SyncResponse {
        SyncResponse {
            error: Some(error),
            ..SyncResponse::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// What a call asks the caller to do, in this order: persist `records`, then deliver
/// `responses`.
#[derive(Debug, Default)]
pub struct Effects {
    pub records: Vec<GroupRecord>,
    pub responses: Vec<(RequestId, Response)>,
}

impl Effects {
    fn respond_join(&mut self, id: RequestId, response: JoinResponse) {
        self.responses.push((id, Response::Join(response)));
    }
    fn respond_sync(&mut self, id: RequestId, response: SyncResponse) {
        self.responses.push((id, Response::Sync(response)));
    }
}

#[derive(Debug, Clone)]
pub struct MemberIdentity {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-4 `retention_time_ms`; -1 means the broker's retention.
    pub retention_time_ms: i64,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A validated commit: the records to persist, then `apply`, plus the partitions refused.
#[derive(Debug, Default)]
pub struct CommitPlan {
    pub records: Vec<GroupRecord>,
    pub errors: Vec<(String, i32, GroupError)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// How Kafka describes a group it does not know.
    pub fn dead(group_id: &str) -> GroupDescription {
        GroupDescription {
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<RequestId>,
    awaiting_sync: Option<RequestId>,
    last_heartbeat_ms: i64,
    /// Joined during the current rebalance and not yet part of a generation.
    is_new: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `shouldKeepAlive`: waiting in JoinGroup or SyncGroup keeps a member alive (the
    /// rebalance has its own deadline); otherwise it must heartbeat within its session timeout.
    fn alive_at(&self, now_ms: i64) -> bool {
        if self.awaiting_join.is_some() {
            !self.is_new || self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS > now_ms
        } else {
            self.awaiting_sync.is_some()
                || self.last_heartbeat_ms + i64::from(self.session_timeout_ms) > now_ms
        }
    }
}

/// The initial delay of a group leaving Empty (Kafka's `InitialDelayedJoin`).
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    remaining_ms: i64,
    new_member_added: bool,
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    /// In join order: the first one becomes leader when a leader must be elected.
    members: IndexMap<String, Member>,
    /// KIP-394 member ids handed out and not yet used, with their expiry.
    pending_members: HashMap<String, i64>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Members that have not sent SyncGroup since the last join completed, and the deadline.
    pending_sync: HashSet<String>,
    pending_sync_deadline_ms: Option<i64>,
    /// When PreparingRebalance ends at the latest.
    join_deadline_ms: Option<i64>,
    initial_delay: Option<InitialDelay>,
    offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: IndexMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: HashSet::new(),
            pending_sync_deadline_ms: None,
            join_deadline_ms: None,
            initial_delay: None,
            offsets: BTreeMap::new(),
        }
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        use GroupState::*;
        let legal = matches!(
            (self.state, to),
            (Stable | CompletingRebalance | Empty, PreparingRebalance)
                | (PreparingRebalance, CompletingRebalance | Empty)
                | (CompletingRebalance, Stable)
                | (_, Dead)
        );
        debug_assert!(legal, "group {}: {:?} -> {:?}", self.id, self.state, to);
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    fn check(&self) {
        if let Some(leader) = &self.leader_id {
            debug_assert!(self.members.contains_key(leader), "leader not a member");
        }
        debug_assert_eq!(
            self.static_members.len(),
            self.members
                .values()
                .filter(|m| m.group_instance_id.is_some())
                .count()
        );
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                debug_assert!(!self.members.is_empty())
            }
            GroupState::Empty => debug_assert!(self.members.is_empty()),
            _ => {}
        }
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Each member votes for its most preferred candidate; the most votes wins, ties going to
    /// the earlier member's preference.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn is_static_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id.is_some_and(|instance| {
            self.static_members
                .get(instance)
                .is_some_and(|known| known != member_id)
        })
    }

    fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in self.members.values() {
            topics.extend(consumer_subscription_topics(
                &member.metadata_for(protocol),
            )?);
        }
        Some(topics)
    }

    fn metadata_record(&self) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupRecord::Group {
            group_id: self.id.clone(),
            value: Some(GroupValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation_id: self.generation_id,
                protocol_name: self.protocol_name.clone(),
                leader_id: self.leader_id.clone(),
                current_state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .members
                    .values()
                    .map(|m| MemberValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata_for(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        }
    }

    fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if let Some(delay) = &mut self.initial_delay {
            delay.new_member_added = true;
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member, answering whatever it waits for with UNKNOWN_MEMBER_ID (so a live
    /// client rejoins), and re-elects the leader if needed.
    fn remove_member(&mut self, member_id: &str, effects: &mut Effects) {
        let Some(member) = self.members.shift_remove(member_id) else {
            return;
        };
        if let Some(id) = member.awaiting_join {
            effects.respond_join(id, JoinResponse::error("", GroupError::UnknownMemberId));
        }
        if let Some(id) = member.awaiting_sync {
            effects.respond_sync(id, SyncResponse::error(GroupError::UnknownMemberId));
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    /// Starts a rebalance unless one is running (Kafka's `maybePrepareRebalance`).
    fn maybe_prepare_rebalance(
        &mut self,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now_ms, config, effects);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, config: &GroupConfig, effects: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being computed is for a generation that will not happen.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(id) = member.awaiting_sync.take() {
                    effects.respond_sync(id, SyncResponse::error(GroupError::RebalanceInProgress));
                }
            }
        }
        self.pending_sync.clear();
        self.pending_sync_deadline_ms = None;
        let rebalance_timeout_ms = self.max_rebalance_timeout_ms();
        if self.state == GroupState::Empty {
            let delay = config.initial_rebalance_delay_ms.min(rebalance_timeout_ms);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: (rebalance_timeout_ms - delay).max(0),
                new_member_added: false,
            });
            self.join_deadline_ms = Some(now_ms + delay);
        } else {
            self.initial_delay = None;
            self.join_deadline_ms = Some(now_ms + rebalance_timeout_ms);
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    /// Ends PreparingRebalance early when everyone is in, unless the initial delay runs.
    fn maybe_complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.all_members_joined()
        {
            self.complete_join(now_ms, effects);
        }
    }

    /// Kafka's `onCompleteJoin` + `initNextGeneration`.
    fn complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        self.join_deadline_ms = None;
        self.initial_delay = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in gone {
            self.remove_member(&member_id, effects);
        }
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.transition(GroupState::Empty, now_ms);
            effects.records.push(self.metadata_record());
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader_id
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader_id.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = self
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        for member in self.members.values_mut() {
            member.is_new = false;
            member.last_heartbeat_ms = now_ms;
            if let Some(id) = member.awaiting_join.take() {
                let is_leader = member.member_id == leader;
                effects.respond_join(
                    id,
                    JoinResponse {
                        error: None,
                        generation_id: self.generation_id,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        leader_id: leader.clone(),
                        member_id: member.member_id.clone(),
                        skip_assignment: false,
                        members: if is_leader { all.clone() } else { Vec::new() },
                    },
                );
            }
        }
        self.pending_sync = self.members.keys().cloned().collect();
        self.pending_sync_deadline_ms = Some(now_ms + self.max_rebalance_timeout_ms());
    }

    fn current_join_response(&self, member_id: &str, is_leader: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// The groups of one offsets-topic partition.
#[derive(Debug)]
pub struct GroupManager {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    next_offset_expiry_ms: i64,
    /// Offsets committed inside transactions (TxnOffsetCommit), by producer id, in the order
    /// written: applied when the transaction's commit marker is written, dropped on its abort.
    pending: HashMap<i64, Vec<GroupRecord>>,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl GroupManager {
    pub fn new(config: GroupConfig) -> GroupManager {
        GroupManager {
            config,
            groups: HashMap::new(),
            next_offset_expiry_ms: 0,
            pending: HashMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn join(&mut self, now_ms: i64, request_id: RequestId, req: JoinRequest) -> Effects {
        let mut effects = Effects::default();
        let reject = |effects: &mut Effects, error| {
            effects.respond_join(request_id, JoinResponse::error(&req.member_id, error));
        };
        if req.group_id.is_empty() {
            reject(&mut effects, GroupError::InvalidGroupId);
            return effects;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            reject(&mut effects, GroupError::InvalidSessionTimeout);
            return effects;
        }
        let unknown = req.member_id.is_empty();
        if !unknown && !self.groups.contains_key(&req.group_id) {
            reject(&mut effects, GroupError::UnknownMemberId);
            return effects;
        }
        let config = self.config.clone();
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now_ms));
        if group.state == GroupState::Dead {
            reject(&mut effects, GroupError::CoordinatorNotAvailable);
            return effects;
        }
        let group_id = req.group_id.clone();
        if !group.supports(&req.protocol_type, &req.protocols) {
            reject(&mut effects, GroupError::InconsistentGroupProtocol);
        } else if unknown {
            join_unknown_member(group, now_ms, request_id, req, &config, &mut effects);
        } else {
            join_known_member(group, now_ms, request_id, req, &config, &mut effects);
        }
        let remove = group.state == GroupState::Empty
            && group.members.is_empty()
            && group.pending_members.is_empty()
            && group.offsets.is_empty()
            && group.generation_id == 0;
        if remove {
            // A rejected first join leaves nothing behind.
            self.groups.remove(&group_id);
        } else {
            group.check();
        }
        effects
    }

    pub fn sync(&mut self, now_ms: i64, request_id: RequestId, req: SyncRequest) -> Effects {
        let mut effects = Effects::default();
        let reject = |effects: &mut Effects, error| {
            effects.respond_sync(request_id, SyncResponse::error(error));
        };
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            reject(&mut effects, GroupError::UnknownMemberId);
            return effects;
        };
        if group.state == GroupState::Dead {
            reject(&mut effects, GroupError::CoordinatorNotAvailable);
            return effects;
        }
        if group.is_static_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            reject(&mut effects, GroupError::FencedInstanceId);
            return effects;
        }
        if !group.members.contains_key(&req.member_id) {
            reject(&mut effects, GroupError::UnknownMemberId);
            return effects;
        }
        if req.generation_id != group.generation_id {
            reject(&mut effects, GroupError::IllegalGeneration);
            return effects;
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != group.protocol_name.as_ref())
        {
            reject(&mut effects, GroupError::InconsistentGroupProtocol);
            return effects;
        }
        match group.state {
            GroupState::Empty => reject(&mut effects, GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => reject(&mut effects, GroupError::RebalanceInProgress),
            GroupState::Dead => reject(&mut effects, GroupError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                if let Some(member) = group.members.get_mut(&req.member_id) {
                    member.last_heartbeat_ms = now_ms;
                    if let Some(old) = member.awaiting_sync.replace(request_id) {
                        effects.respond_sync(
                            old,
                            SyncResponse::error(GroupError::RebalanceInProgress),
                        );
                    }
                }
                if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    let mut assignments: HashMap<String, Bytes> =
                        req.assignments.into_iter().collect();
                    for member in group.members.values_mut() {
                        // Members the leader left out get a valid, empty assignment.
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    group.transition(GroupState::Stable, now_ms);
                    effects.records.push(group.metadata_record());
                    for member in group.members.values_mut() {
                        if let Some(id) = member.awaiting_sync.take() {
                            effects.respond_sync(
                                id,
                                SyncResponse {
                                    error: None,
                                    protocol_type: group.protocol_type.clone(),
                                    protocol_name: group.protocol_name.clone(),
                                    assignment: member.assignment.clone(),
                                },
                            );
                        }
                    }
                }
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                if let Some(member) = group.members.get_mut(&req.member_id) {
                    member.last_heartbeat_ms = now_ms;
                    effects.respond_sync(
                        request_id,
                        SyncResponse {
                            error: None,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol_name.clone(),
                            assignment: member.assignment.clone(),
                        },
                    );
                }
            }
        }
        if group.pending_sync.is_empty() {
            group.pending_sync_deadline_ms = None;
        }
        group.check();
        effects
    }

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if group.is_static_fenced(member_id, group_instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        let state = group.state;
        let current_generation = group.generation_id;
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if generation_id != current_generation {
            return Err(GroupError::IllegalGeneration);
        }
        member.last_heartbeat_ms = now_ms;
        match state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty => Err(GroupError::UnknownMemberId),
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// LeaveGroup for several members; one result per member, in order.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        leaving: &[MemberIdentity],
    ) -> (Result<Vec<Result<(), GroupError>>, GroupError>, Effects) {
        let mut effects = Effects::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            let unknown = leaving.iter().map(|_| Err(GroupError::UnknownMemberId));
            return (Ok(unknown.collect()), effects);
        };
        if group.state == GroupState::Dead {
            return (Err(GroupError::CoordinatorNotAvailable), effects);
        }
        let config = self.config.clone();
        let mut results = Vec::with_capacity(leaving.len());
        for identity in leaving {
            let member_id = match &identity.group_instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                    Some(known)
                        if !identity.member_id.is_empty() && *known != identity.member_id =>
                    {
                        results.push(Err(GroupError::FencedInstanceId));
                        continue;
                    }
                    Some(known) => known.clone(),
                },
                None => identity.member_id.clone(),
            };
            if group.pending_members.remove(&member_id).is_some() {
                results.push(Ok(()));
                group.maybe_complete_join(now_ms, &mut effects);
                continue;
            }
            if !group.members.contains_key(&member_id) {
                results.push(Err(GroupError::UnknownMemberId));
                continue;
            }
            group.remove_member(&member_id, &mut effects);
            results.push(Ok(()));
            if matches!(
                group.state,
                GroupState::Stable | GroupState::CompletingRebalance
            ) {
                group.prepare_rebalance(now_ms, &config, &mut effects);
            }
            group.maybe_complete_join(now_ms, &mut effects);
        }
        group.check();
        (Ok(results), effects)
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription::dead(group_id);
        };
        // Kafka shows the protocol and the members' metadata only for a Stable group.
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            group_id: group_id.to_string(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DeleteGroups for one group: tombstones for its offsets and itself.
    pub fn delete_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
    ) -> Result<Vec<GroupRecord>, GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        match group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        group.transition(GroupState::Dead, now_ms);
        let records = tombstones(group);
        self.groups.remove(group_id);
        Ok(records)
    }

    /// Fires every deadline that has passed: failed members, the end of a join phase, members
    /// that never synced, expired offsets.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let config = self.config.clone();
        for group in self.groups.values_mut() {
            tick_group(group, now_ms, &config, &mut effects);
        }
        if now_ms >= self.next_offset_expiry_ms {
            self.next_offset_expiry_ms = now_ms + config.offsets_retention_check_interval_ms;
            self.expire_offsets(now_ms, &mut effects);
        }
        effects
    }

    /// After replaying the offsets topic: loaded members are given a fresh session.
    pub fn finish_load(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                member.last_heartbeat_ms = now_ms;
            }
        }
        self.next_offset_expiry_ms = now_ms + self.config.offsets_retention_check_interval_ms;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

fn load_group_value(group: &mut Group, value: &GroupValue, now_ms: i64) {
    group.protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
    group.generation_id = value.generation_id;
    group.protocol_name = value.protocol_name.clone();
    group.state_timestamp_ms = if value.current_state_timestamp_ms >= 0 {
        value.current_state_timestamp_ms
    } else {
        now_ms
    };
    group.members.clear();
    group.static_members.clear();
    group.pending_members.clear();
    group.pending_sync.clear();
    let protocol = value.protocol_name.clone().unwrap_or_default();
    for m in &value.members {
        if let Some(instance) = &m.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), m.member_id.clone());
        }
        group.members.insert(
            m.member_id.clone(),
            Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: value.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription.clone())],
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                last_heartbeat_ms: now_ms,
                is_new: false,
            },
        );
    }
    group.leader_id = value
        .leader_id
        .clone()
        .filter(|l| group.members.contains_key(l))
        .or_else(|| group.members.keys().next().cloned());
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}

fn tombstones(group: &Group) -> Vec<GroupRecord> {
    let mut records: Vec<GroupRecord> = group
        .offsets
        .keys()
        .map(|(topic, partition)| GroupRecord::Offset {
            group_id: group.id.clone(),
            topic: topic.clone(),
            partition: *partition,
            value: None,
        })
        .collect();
    records.push(GroupRecord::Group {
        group_id: group.id.clone(),
        value: None,
    });
    records
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
