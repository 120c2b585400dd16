//! Joining and leaving: the steps of a JoinGroup for unknown, known and static members, and the
//! per-group deadlines (initial delay, rebalance timeout, session expiry) that `tick` fires.

use super::*;

pub(super) fn join_unknown_member(
    group: &mut Group,
    now_ms: i64,
    request_id: RequestId,
    req: JoinRequest,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    if let Some(instance) = req.group_instance_id.clone() {
        if let Some(old_member_id) = group.static_members.get(&instance).cloned() {
            replace_static_member(
                group,
                now_ms,
                request_id,
                req,
                &old_member_id,
                config,
                effects,
            );
            return;
        }
    }
    if group.members.len() + group.pending_members.len() >= config.max_size {
        effects.respond_join(
            request_id,
            JoinResponse::error("", GroupError::GroupMaxSizeReached),
        );
        return;
    }
    let member_id = new_member_id(&req.client_id);
    if req.require_known_member_id && req.group_instance_id.is_none() {
        // KIP-394: the client must come back with this id; it counts as a member meanwhile.
        group.pending_members.insert(
            member_id.clone(),
            now_ms + i64::from(req.session_timeout_ms),
        );
        effects.respond_join(
            request_id,
            JoinResponse::error(&member_id, GroupError::MemberIdRequired),
        );
        return;
    }
    add_member_and_rebalance(group, now_ms, request_id, req, member_id, config, effects);
}

pub(super) fn join_known_member(
    group: &mut Group,
    now_ms: i64,
    request_id: RequestId,
    req: JoinRequest,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    let member_id = req.member_id.clone();
    if group.pending_members.remove(&member_id).is_some() {
        add_member_and_rebalance(group, now_ms, request_id, req, member_id, config, effects);
        return;
    }
    if group.is_static_fenced(&member_id, req.group_instance_id.as_deref()) {
        effects.respond_join(
            request_id,
            JoinResponse::error(&member_id, GroupError::FencedInstanceId),
        );
        return;
    }
    let Some(member) = group.members.get(&member_id) else {
        effects.respond_join(
            request_id,
            JoinResponse::error(&member_id, GroupError::UnknownMemberId),
        );
        return;
    };
    let unchanged = member.same_protocols(&req.protocols);
    let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
    match group.state {
        GroupState::PreparingRebalance => {
            update_member_and_rebalance(group, now_ms, request_id, req, config, effects)
        }
        GroupState::CompletingRebalance if unchanged => {
            // A retry of a join that already completed: answer with the current generation.
            let response = group.current_join_response(&member_id, is_leader);
            effects.respond_join(request_id, response);
        }
        GroupState::Stable if unchanged && !is_leader => {
            let response = group.current_join_response(&member_id, false);
            if let Some(m) = group.members.get_mut(&member_id) {
                m.last_heartbeat_ms = now_ms;
            }
            effects.respond_join(request_id, response);
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_and_rebalance(group, now_ms, request_id, req, config, effects)
        }
        GroupState::Empty | GroupState::Dead => effects.respond_join(
            request_id,
            JoinResponse::error(&member_id, GroupError::UnknownMemberId),
        ),
    }
}

fn add_member_and_rebalance(
    group: &mut Group,
    now_ms: i64,
    request_id: RequestId,
    req: JoinRequest,
    member_id: String,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    group.add_member(Member {
        member_id,
        group_instance_id: req.group_instance_id,
        client_id: req.client_id,
        client_host: req.client_host,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocol_type: req.protocol_type,
        protocols: req.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(request_id),
        awaiting_sync: None,
        last_heartbeat_ms: now_ms,
        is_new: true,
    });
    group.maybe_prepare_rebalance(now_ms, config, effects);
    group.maybe_complete_join(now_ms, effects);
}

fn update_member_and_rebalance(
    group: &mut Group,
    now_ms: i64,
    request_id: RequestId,
    req: JoinRequest,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    if let Some(member) = group.members.get_mut(&req.member_id) {
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat_ms = now_ms;
        if let Some(old) = member.awaiting_join.replace(request_id) {
            effects.respond_join(
                old,
                JoinResponse::error(&req.member_id, GroupError::RebalanceInProgress),
            );
        }
    }
    group.maybe_prepare_rebalance(now_ms, config, effects);
    group.maybe_complete_join(now_ms, effects);
}

/// KIP-345: a static member came back under a new member id. Its old incarnation is fenced;
/// a Stable group whose protocol stays the same carries on without a rebalance.
fn replace_static_member(
    group: &mut Group,
    now_ms: i64,
    request_id: RequestId,
    req: JoinRequest,
    old_member_id: &str,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    let Some(mut member) = group.members.shift_remove(old_member_id) else {
        return;
    };
    let new_member_id = new_member_id(&req.client_id);
    if let Some(id) = member.awaiting_join.take() {
        effects.respond_join(
            id,
            JoinResponse::error(old_member_id, GroupError::FencedInstanceId),
        );
    }
    if let Some(id) = member.awaiting_sync.take() {
        effects.respond_sync(id, SyncResponse::error(GroupError::FencedInstanceId));
    }
    let old_leader = group.leader_id.clone();
    let was_leader = old_leader.as_deref() == Some(old_member_id);
    if was_leader {
        group.leader_id = Some(new_member_id.clone());
    }
    if group.pending_sync.remove(old_member_id) {
        group.pending_sync.insert(new_member_id.clone());
    }
    if let Some(instance) = &member.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), new_member_id.clone());
    }
    member.protocols = req.protocols;
    member.member_id = new_member_id.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.client_id = req.client_id;
    member.client_host = req.client_host;
    member.last_heartbeat_ms = now_ms;
    group.members.insert(new_member_id.clone(), member);
    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol_name => {
            effects.records.push(group.metadata_record());
            let mut response = group.current_join_response(&new_member_id, false);
            if was_leader && req.supports_skip_assignment {
                // KIP-814: the leader gets the members but keeps the current assignment.
                response = group.current_join_response(&new_member_id, true);
                response.skip_assignment = true;
            } else {
                // Before v9 the rejoined leader must not recompute the assignment: it is told
                // its old id is the leader, so it only syncs.
                response.leader_id = old_leader.unwrap_or_default();
            }
            effects.respond_join(request_id, response);
        }
        GroupState::Stable | GroupState::CompletingRebalance => {
            // The selected protocol would change, or the leader may already be assigning to
            // the old member id: rebalance.
            if let Some(m) = group.members.get_mut(&new_member_id) {
                m.awaiting_join = Some(request_id);
            }
            group.prepare_rebalance(now_ms, config, effects);
            group.maybe_complete_join(now_ms, effects);
        }
        GroupState::PreparingRebalance => {
            if let Some(m) = group.members.get_mut(&new_member_id) {
                m.awaiting_join = Some(request_id);
            }
            group.maybe_complete_join(now_ms, effects);
        }
        GroupState::Empty | GroupState::Dead => {
            // Unreachable: such groups have no members. Answer rather than assert.
            effects.respond_join(
                request_id,
                JoinResponse::error("", GroupError::CoordinatorNotAvailable),
            );
        }
    }
}

pub(super) fn tick_group(
    group: &mut Group,
    now_ms: i64,
    config: &GroupConfig,
    effects: &mut Effects,
) {
    // KIP-394 ids never used.
    let before = group.pending_members.len();
    group
        .pending_members
        .retain(|_, deadline| *deadline > now_ms);
    let pending_expired = group.pending_members.len() != before;

    // Members that missed their session timeout.
    let failed: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.alive_at(now_ms))
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in &failed {
        tracing::info!(group = %group.id, member = %member_id, "member expired: no heartbeat within its session timeout");
        group.remove_member(member_id, effects);
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                group.maybe_prepare_rebalance(now_ms, config, effects)
            }
            _ => {}
        }
    }
    if !failed.is_empty() || pending_expired {
        group.maybe_complete_join(now_ms, effects);
    }

    // The end of a join phase.
    if group.state == GroupState::PreparingRebalance
        && group.join_deadline_ms.is_some_and(|d| now_ms >= d)
    {
        match group.initial_delay {
            Some(delay) if delay.new_member_added && delay.remaining_ms > 0 => {
                let next = config.initial_rebalance_delay_ms.min(delay.remaining_ms);
                group.initial_delay = Some(InitialDelay {
                    remaining_ms: delay.remaining_ms - next,
                    new_member_added: false,
                });
                group.join_deadline_ms = Some(now_ms + next);
            }
            _ => group.complete_join(now_ms, effects),
        }
    }

    // Members that joined but never synced.
    if matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) && group.pending_sync_deadline_ms.is_some_and(|d| now_ms >= d)
    {
        group.pending_sync_deadline_ms = None;
        let missing: Vec<String> = group.pending_sync.drain().collect();
        if !missing.is_empty() {
            for member_id in &missing {
                tracing::info!(group = %group.id, member = %member_id, "member removed: no SyncGroup within the rebalance timeout");
                group.remove_member(member_id, effects);
            }
            // With nobody left the rebalance ends at once, in Empty.
            group.prepare_rebalance(now_ms, config, effects);
            group.maybe_complete_join(now_ms, effects);
        }
    }
    group.check();
}
