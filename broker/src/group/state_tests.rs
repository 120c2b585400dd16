//! Scripted tests of the group state machine. Time is a number we move by hand, so session
//! and rebalance timeouts are tested without sleeping.

use std::collections::HashMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 3_000;

/// The state machine plus what it answered and what it asked to persist.
struct Harness {
    manager: GroupManager,
    now: i64,
    next_id: RequestId,
    answers: HashMap<RequestId, Response>,
    log: Vec<GroupRecord>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(GroupConfig::default())
    }

    fn with(config: GroupConfig) -> Harness {
        Harness {
            manager: GroupManager::new(config),
            now: 1_000_000,
            next_id: 1,
            answers: HashMap::new(),
            log: Vec::new(),
        }
    }

    fn absorb(&mut self, effects: Effects) {
        self.log.extend(effects.records);
        for (id, response) in effects.responses {
            assert!(
                self.answers.insert(id, response).is_none(),
                "request {id} answered twice"
            );
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let effects = self.manager.tick(self.now);
        self.absorb(effects);
    }

    fn join_request(&self, member_id: &str, instance: Option<&str>, version: i16) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(String::from),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"range-meta")),
                ("roundrobin".into(), Bytes::from_static(b"rr-meta")),
            ],
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        }
    }

    fn send_join(&mut self, request: JoinRequest) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        let effects = self.manager.join(self.now, id, request);
        self.absorb(effects);
        id
    }

    fn join(&mut self, member_id: &str) -> RequestId {
        let request = self.join_request(member_id, None, 9);
        self.send_join(request)
    }

    fn join_response(&mut self, id: RequestId) -> Option<JoinResponse> {
        match self.answers.remove(&id)? {
            Response::Join(r) => Some(r),
            other => panic!("expected a join response, got {other:?}"),
        }
    }

    fn sync_response(&mut self, id: RequestId) -> Option<SyncResponse> {
        match self.answers.remove(&id)? {
            Response::Sync(r) => Some(r),
            other => panic!("expected a sync response, got {other:?}"),
        }
    }

    /// A new dynamic member's two-step join (KIP-394); returns its member id and the request
    /// waiting for the join to complete.
    fn new_member(&mut self) -> (String, RequestId) {
        let first = self.join("");
        let response = self.join_response(first).expect("answered at once");
        assert_eq!(response.error, Some(GroupError::MemberIdRequired));
        assert!(!response.member_id.is_empty());
        let id = self.join(&response.member_id);
        (response.member_id, id)
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        let request = SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
                .collect(),
        };
        let effects = self.manager.sync(self.now, id, request);
        self.absorb(effects);
        id
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> Result<(), GroupError> {
        self.manager
            .heartbeat(self.now, "g", member_id, None, generation)
    }

    fn state(&self) -> GroupState {
        self.manager.describe("g").state
    }

    fn commit(&mut self, member_id: &str, generation: i32, offset: i64) -> Result<(), GroupError> {
        let plan = self.manager.plan_commit(
            self.now,
            CommitRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member_id.into(),
                group_instance_id: None,
                retention_time_ms: -1,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset,
                    leader_epoch: -1,
                    metadata: Some("meta".into()),
                }],
            },
        )?;
        if let Some((_, _, e)) = plan.errors.first() {
            return Err(*e);
        }
        for record in &plan.records {
            self.manager.apply(self.now, record);
        }
        self.log.extend(plan.records);
        Ok(())
    }

    fn committed(&self) -> Option<i64> {
        self.manager
            .fetch_offsets("g", Some(&[("t".to_string(), vec![0])]))
            .first()
            .and_then(|(_, _, v)| v.as_ref().map(|v| v.offset))
    }
}

/// One member through the initial delay to Stable.
fn stable_group_of_one(h: &mut Harness) -> (String, i32) {
    let (member, join) = h.new_member();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(
        h.join_response(join).is_none(),
        "waits for the initial delay"
    );
    h.advance(DELAY_MS);
    let response = h
        .join_response(join)
        .expect("join completes after the delay");
    assert_eq!(response.error, None);
    assert_eq!(response.leader_id, member);
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1);
    let sync = h.sync(&member, 1, &[(&member, "all")]);
    let assigned = h
        .sync_response(sync)
        .expect("the leader's sync is answered");
    assert_eq!(assigned.assignment, Bytes::from_static(b"all"));
    assert_eq!(h.state(), GroupState::Stable);
    (member, 1)
}

#[test]
fn first_member_waits_for_the_initial_delay_then_leads() {
    let mut h = Harness::new();
    stable_group_of_one(&mut h);
    assert!(
        matches!(h.log.last(), Some(GroupRecord::Group { value: Some(v), .. }) if v.generation_id == 1),
        "the generation is persisted when the group becomes Stable"
    );
}

#[test]
fn member_id_required_only_from_join_group_v4() {
    let mut h = Harness::new();
    let old = h.join_request("", None, 3);
    let id = h.send_join(old);
    assert!(
        h.join_response(id).is_none(),
        "v3 joins at once, no MEMBER_ID_REQUIRED"
    );
    h.advance(DELAY_MS);
    let response = h.join_response(id).expect("completes");
    assert_eq!(response.error, None);
    assert!(!response.member_id.is_empty());
}

#[test]
fn initial_delay_extends_while_members_arrive() {
    let mut h = Harness::new();
    let (a, join_a) = h.new_member();
    h.advance(DELAY_MS - 1);
    let (b, join_b) = h.new_member();
    h.advance(1);
    assert!(
        h.join_response(join_a).is_none(),
        "extended: a member arrived"
    );
    h.advance(DELAY_MS);
    let ra = h.join_response(join_a).expect("a answered");
    let rb = h.join_response(join_b).expect("b answered");
    assert_eq!(ra.generation_id, 1);
    assert_eq!(ra.leader_id, a);
    assert_eq!(ra.members.len(), 2, "the leader sees every member");
    assert!(rb.members.is_empty(), "followers do not");
    assert_eq!(rb.member_id, b);
}

#[test]
fn second_member_triggers_a_rebalance_that_completes_when_all_rejoin() {
    let mut h = Harness::new();
    let (a, generation) = stable_group_of_one(&mut h);
    let (b, join_b) = h.new_member();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&a, generation),
        Err(GroupError::RebalanceInProgress)
    );
    // Committing during the rebalance with the current generation is allowed (consumers
    // commit in their revocation callback).
    assert_eq!(h.commit(&a, generation, 5), Ok(()));
    let join_a = h.join(&a);
    let ra = h
        .join_response(join_a)
        .expect("all members in: completes at once");
    let rb = h.join_response(join_b).expect("b answered too");
    assert_eq!(ra.generation_id, 2);
    assert_eq!(rb.generation_id, 2);
    assert_eq!(ra.leader_id, a, "the leader keeps its role");
    // The follower's sync waits for the leader's.
    let sync_b = h.sync(&b, 2, &[]);
    assert!(h.sync_response(sync_b).is_none());
    assert_eq!(h.commit(&b, 2, 6), Err(GroupError::RebalanceInProgress));
    let sync_a = h.sync(&a, 2, &[(&a, "p0")]);
    assert_eq!(
        h.sync_response(sync_a).map(|r| r.assignment),
        Some(Bytes::from_static(b"p0"))
    );
    let rb = h
        .sync_response(sync_b)
        .expect("released by the leader's sync");
    assert_eq!(rb.error, None);
    assert!(
        rb.assignment.is_empty(),
        "left out by the leader: a valid empty assignment"
    );
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&b, 2), Ok(()));
    assert_eq!(h.heartbeat(&b, 1), Err(GroupError::IllegalGeneration));
    assert_eq!(h.commit(&b, 2, 7), Ok(()));
    assert_eq!(h.committed(), Some(7));
}

#[test]
fn a_silent_member_is_expelled_after_its_session_timeout() {
    let mut h = Harness::new();
    let (a, _) = stable_group_of_one(&mut h);
    let (b, join_b) = h.new_member();
    let join_a = h.join(&a);
    h.join_response(join_a);
    h.join_response(join_b);
    let sync_a = h.sync(&a, 2, &[(&a, "p0"), (&b, "p1")]);
    let sync_b = h.sync(&b, 2, &[]);
    h.sync_response(sync_a);
    h.sync_response(sync_b);
    // a heartbeats every 3 s; b goes silent.
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a, 2), Ok(()));
    }
    assert_eq!(h.state(), GroupState::Stable);
    h.advance(1_001);
    assert_eq!(h.state(), GroupState::PreparingRebalance, "b expired");
    assert_eq!(h.heartbeat(&b, 2), Err(GroupError::UnknownMemberId));
    assert_eq!(h.heartbeat(&a, 2), Err(GroupError::RebalanceInProgress));
    let join_a = h.join(&a);
    let response = h.join_response(join_a).expect("a alone: completes at once");
    assert_eq!(response.generation_id, 3);
    assert_eq!(response.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_are_removed_at_the_rebalance_deadline() {
    let mut h = Harness::new();
    let (a, _) = stable_group_of_one(&mut h);
    let (_b, join_b) = h.new_member();
    // a keeps heartbeating but never rejoins.
    let mut waited = 0;
    while h.join_response(join_b).is_none() {
        h.advance(1_000);
        waited += 1_000;
        let _ = h.heartbeat(&a, 1);
        assert!(
            waited <= i64::from(REBALANCE_MS),
            "the rebalance timeout bounds the wait"
        );
    }
    assert_eq!(h.heartbeat(&a, 1), Err(GroupError::UnknownMemberId));
    assert_eq!(h.manager.describe("g").members.len(), 1);
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (a, _) = stable_group_of_one(&mut h);
    let (b, join_b) = h.new_member();
    let join_a = h.join(&a);
    h.join_response(join_a);
    h.join_response(join_b);
    let sync_a = h.sync(&a, 2, &[(&a, "x"), (&b, "y")]);
    h.sync_response(sync_a);
    for _ in 0..9 {
        h.advance(3_000);
        let _ = h.heartbeat(&a, 2);
        let _ = h.heartbeat(&b, 2);
    }
    assert_eq!(h.state(), GroupState::Stable);
    h.advance(3_000);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&b, 2), Err(GroupError::UnknownMemberId));
}

#[test]
fn batch_leave_empties_the_group() {
    let mut h = Harness::new();
    let (a, _) = stable_group_of_one(&mut h);
    let (b, join_b) = h.new_member();
    let join_a = h.join(&a);
    h.join_response(join_a);
    h.join_response(join_b);
    let leaving = [a.clone(), b.clone(), "nobody".to_string()].map(|m| MemberIdentity {
        member_id: m,
        group_instance_id: None,
    });
    let (results, effects) = h.manager.leave(h.now, "g", &leaving);
    h.absorb(effects);
    assert_eq!(
        results,
        Ok(vec![Ok(()), Ok(()), Err(GroupError::UnknownMemberId)])
    );
    // CompletingRebalance -> PreparingRebalance -> (nobody left) Empty.
    assert_eq!(h.state(), GroupState::Empty);
    assert!(matches!(
        h.log.last(),
        Some(GroupRecord::Group { value: Some(v), .. }) if v.members.is_empty()
    ));
}

#[test]
fn static_member_restart_within_the_session_does_not_rebalance() {
    let mut h = Harness::new();
    let request = h.join_request("", Some("instance-1"), 5);
    let join = h.send_join(request);
    h.advance(DELAY_MS);
    let first = h.join_response(join).expect("joined");
    assert_eq!(first.error, None, "static members skip MEMBER_ID_REQUIRED");
    let old_id = first.member_id.clone();
    let sync = h.sync(&old_id, 1, &[(&old_id, "p0,p1")]);
    h.sync_response(sync);
    // Restart: a new process, the same instance id, no member id.
    h.advance(2_000);
    let request = h.join_request("", Some("instance-1"), 5);
    let join = h.send_join(request);
    let again = h
        .join_response(join)
        .expect("answered at once, no rebalance");
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, 1, "same generation");
    assert_ne!(again.member_id, old_id);
    assert_ne!(
        again.leader_id, again.member_id,
        "pre-v9: told not to assign"
    );
    assert_eq!(h.state(), GroupState::Stable);
    let sync = h.sync(&again.member_id, 1, &[]);
    let assigned = h.sync_response(sync).expect("stable: answered at once");
    assert_eq!(assigned.assignment, Bytes::from_static(b"p0,p1"));
    // The old incarnation is fenced.
    assert_eq!(
        h.manager
            .heartbeat(h.now, "g", &old_id, Some("instance-1"), 1),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        h.manager
            .heartbeat(h.now, "g", &again.member_id, Some("instance-1"), 1),
        Ok(())
    );
}

#[test]
fn protocol_selection_and_inconsistent_protocols() {
    let mut h = Harness::new();
    let (a, _) = stable_group_of_one(&mut h);
    let mut only_rr = h.join_request("", None, 3);
    only_rr.protocols = vec![("roundrobin".into(), Bytes::from_static(b"rr"))];
    let join_b = h.send_join(only_rr);
    let join_a = h.join(&a);
    let ra = h.join_response(join_a).expect("complete");
    assert_eq!(ra.protocol_name.as_deref(), Some("roundrobin"));
    assert!(h.join_response(join_b).is_some());
    let mut other = h.join_request("", None, 3);
    other.protocols = vec![("sticky".into(), Bytes::new())];
    let join_c = h.send_join(other);
    assert_eq!(
        h.join_response(join_c).and_then(|r| r.error),
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut wrong_type = h.join_request("", None, 3);
    wrong_type.protocol_type = "connect".into();
    let join_d = h.send_join(wrong_type);
    assert_eq!(
        h.join_response(join_d).and_then(|r| r.error),
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn session_timeout_bounds_and_group_max_size() {
    let mut h = Harness::with(GroupConfig {
        max_size: 1,
        ..GroupConfig::default()
    });
    let mut bad = h.join_request("", None, 5);
    bad.session_timeout_ms = 1_000;
    let id = h.send_join(bad);
    assert_eq!(
        h.join_response(id).and_then(|r| r.error),
        Some(GroupError::InvalidSessionTimeout)
    );
    stable_group_of_one(&mut h);
    let id = h.join("");
    assert_eq!(
        h.join_response(id).and_then(|r| r.error),
        Some(GroupError::GroupMaxSizeReached)
    );
}

#[test]
fn commits_are_checked_against_membership_and_generation() {
    let mut h = Harness::new();
    // A group that only stores offsets (assign() or an admin tool).
    assert_eq!(h.commit("", -1, 10), Ok(()));
    assert_eq!(h.committed(), Some(10));
    assert_eq!(h.state(), GroupState::Empty);
    let (a, generation) = stable_group_of_one(&mut h);
    assert_eq!(h.commit("", -1, 11), Err(GroupError::UnknownMemberId));
    assert_eq!(
        h.commit(&a, generation + 1, 11),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        h.commit("stranger", generation, 11),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(h.commit(&a, generation, 12), Ok(()));
    assert_eq!(h.committed(), Some(12));
    let plan = h.manager.plan_commit(
        h.now,
        CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: a.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: Some("x".repeat(5000)),
            }],
        },
    );
    assert!(matches!(plan, Ok(p) if p.errors[0].2 == GroupError::OffsetMetadataTooLarge));
    let mut fresh = Harness::new();
    assert_eq!(fresh.commit("m", 3, 1), Err(GroupError::IllegalGeneration));
}

#[test]
fn offsets_of_an_empty_group_expire_after_the_retention() {
    let retention_ms = 60_000;
    let mut h = Harness::with(GroupConfig {
        offsets_retention_ms: retention_ms,
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    });
    let (a, generation) = stable_group_of_one(&mut h);
    assert_eq!(h.commit(&a, generation, 42), Ok(()));
    h.advance(2 * retention_ms);
    let _ = h.heartbeat(&a, generation);
    // Members never heartbeated after the first tick: expired, group Empty; offsets stay
    // until the retention has passed since then.
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.committed(), Some(42));
    h.advance(retention_ms + 1_000);
    assert_eq!(h.committed(), None);
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "nothing left: the group is gone"
    );
    assert!(h
        .log
        .iter()
        .any(|r| matches!(r, GroupRecord::Offset { value: None, .. })));
    assert!(matches!(
        h.log.last(),
        Some(GroupRecord::Group { value: None, .. })
    ));
}

#[test]
fn delete_group_and_offsets() {
    let mut h = Harness::new();
    let (a, generation) = stable_group_of_one(&mut h);
    assert_eq!(h.commit(&a, generation, 3), Ok(()));
    assert_eq!(
        h.manager.delete_group(h.now, "g").err(),
        Some(GroupError::NonEmptyGroup)
    );
    // The member consumes topic "t" (its subscription names it): OffsetDelete refuses "t".
    let (_, results) = h
        .manager
        .delete_offsets("g", &[("t".into(), 0), ("other".into(), 0)])
        .unwrap_or_default();
    // "range-meta" is not a parseable subscription, so the group's topics are unknown and the
    // whole request is refused, as Kafka does for a non-empty group it cannot read.
    assert!(results.is_empty());
    let (results, effects) = h.manager.leave(
        h.now,
        "g",
        &[MemberIdentity {
            member_id: a,
            group_instance_id: None,
        }],
    );
    h.absorb(effects);
    assert_eq!(results, Ok(vec![Ok(())]));
    let (records, results) = h
        .manager
        .delete_offsets("g", &[("t".into(), 0)])
        .unwrap_or_default();
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(records.len(), 1);
    assert_eq!(h.committed(), None);
    assert!(h.manager.delete_group(h.now, "g").is_ok());
    assert_eq!(h.state(), GroupState::Dead);
    assert_eq!(
        h.manager.delete_group(h.now, "g").err(),
        Some(GroupError::GroupIdNotFound)
    );
}

#[test]
fn replaying_the_records_restores_groups_and_offsets() {
    let mut h = Harness::new();
    let (a, generation) = stable_group_of_one(&mut h);
    assert_eq!(h.commit(&a, generation, 77), Ok(()));
    let before = h.manager.describe("g");
    let mut restarted = GroupManager::new(GroupConfig::default());
    for record in &h.log {
        // Through the on-disk encoding, as at a restart.
        let (key, value) = record.encode();
        let decoded = GroupRecord::decode(&key, value.as_deref()).expect("decodes");
        restarted.apply(h.now, &decoded);
    }
    restarted.finish_load(h.now);
    assert_eq!(restarted.describe("g"), before);
    assert_eq!(
        restarted.heartbeat(h.now, "g", &a, None, generation),
        Ok(()),
        "the member carries on after a restart without rejoining"
    );
    let offsets = restarted.fetch_offsets("g", None);
    assert_eq!(offsets.len(), 1);
    assert_eq!(
        offsets[0]
            .2
            .as_ref()
            .map(|v| (v.offset, v.metadata.as_str())),
        Some((77, "meta"))
    );
}

#[derive(Debug)]
enum Phase {
    Joining(RequestId),
    Syncing(RequestId, i32),
    Stable(i32),
}

/// A simulated consumer of the churn test.
struct Client {
    member_id: String,
    phase: Phase,
}

/// Every client reacts to what it was told, as a consumer does: a join answer leads to a sync
/// (the leader assigns each member its own id), a sync answer to Stable or a rejoin, a
/// heartbeat refused for a rebalance to a rejoin. Any other error fails the test.
fn react(h: &mut Harness, clients: &mut [Client], seed: u64) {
    for c in clients.iter_mut() {
        loop {
            match c.phase {
                Phase::Joining(id) => match h.join_response(id) {
                    None => break,
                    Some(r) => {
                        assert_eq!(r.error, None, "seed {seed}: join of {}", c.member_id);
                        let members: Vec<String> =
                            r.members.iter().map(|m| m.member_id.clone()).collect();
                        let refs: Vec<(&str, &str)> =
                            members.iter().map(|m| (m.as_str(), m.as_str())).collect();
                        let sync = h.sync(&c.member_id, r.generation_id, &refs);
                        c.phase = Phase::Syncing(sync, r.generation_id);
                    }
                },
                Phase::Syncing(id, generation) => match h.sync_response(id) {
                    None => break,
                    Some(r) => match r.error {
                        None => c.phase = Phase::Stable(generation),
                        Some(GroupError::RebalanceInProgress) => {
                            let join = h.join(&c.member_id);
                            c.phase = Phase::Joining(join);
                        }
                        Some(e) => panic!("seed {seed}: sync error {e:?}"),
                    },
                },
                Phase::Stable(generation) => match h.heartbeat(&c.member_id, generation) {
                    Ok(()) => break,
                    Err(GroupError::RebalanceInProgress | GroupError::IllegalGeneration) => {
                        let join = h.join(&c.member_id);
                        c.phase = Phase::Joining(join);
                    }
                    Err(e) => panic!("seed {seed}: heartbeat error {e:?}"),
                },
            }
        }
    }
}

/// Simulated well-behaved clients join, heartbeat, rebalance and leave at random. Every
/// request is answered exactly once (checked by `absorb`), the group's invariants hold
/// throughout (`check` asserts in debug builds), a client that keeps to its session timeout
/// is never told UNKNOWN_MEMBER_ID, and at the end the survivors form a Stable generation.
#[test]
fn random_churn_keeps_live_members_and_converges() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut h = Harness::with(GroupConfig {
            initial_rebalance_delay_ms: 500,
            ..GroupConfig::default()
        });
        let mut clients: Vec<Client> = Vec::new();
        for _step in 0..400 {
            match rng.gen_range(0..10) {
                0 if clients.len() < 6 => {
                    let (member_id, join) = h.new_member();
                    clients.push(Client {
                        member_id,
                        phase: Phase::Joining(join),
                    });
                }
                1 if !clients.is_empty() => {
                    let c = clients.remove(rng.gen_range(0..clients.len()));
                    let (results, effects) = h.manager.leave(
                        h.now,
                        "g",
                        &[MemberIdentity {
                            member_id: c.member_id,
                            group_instance_id: None,
                        }],
                    );
                    h.absorb(effects);
                    assert_eq!(results, Ok(vec![Ok(())]), "seed {seed}");
                }
                _ => {}
            }
            h.advance(rng.gen_range(50..1_500));
            react(&mut h, &mut clients, seed);
        }
        // Quiet period: no churn, clients keep heartbeating until the group settles.
        for _ in 0..200 {
            h.advance(500);
            react(&mut h, &mut clients, seed);
        }
        let described = h.manager.describe("g");
        if clients.is_empty() {
            assert!(matches!(
                described.state,
                GroupState::Empty | GroupState::Dead
            ));
        } else {
            assert_eq!(described.state, GroupState::Stable, "seed {seed}");
            let mut members: Vec<&str> = described
                .members
                .iter()
                .map(|m| m.member_id.as_str())
                .collect();
            let mut live: Vec<&str> = clients.iter().map(|c| c.member_id.as_str()).collect();
            members.sort();
            live.sort();
            assert_eq!(members, live, "seed {seed}");
            for m in &described.members {
                assert_eq!(m.assignment, Bytes::copy_from_slice(m.member_id.as_bytes()));
            }
        }
    }
}

#[test]
fn a_deleted_topic_takes_its_offsets_along() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 9), Ok(()));
    assert!(h.manager.remove_topic_offsets("other").is_empty());
    let records = h.manager.remove_topic_offsets("t");
    assert_eq!(records.len(), 1);
    assert!(matches!(&records[0], GroupRecord::Offset { value: None, topic, .. } if topic == "t"));
    assert_eq!(h.committed(), None);
}
