//! Offsets: commits (plain and transactional, KIP-447's checks), fetches, deletes and expiry, and
//! the replay of stored records into the groups: the `GroupManager` methods that keep offsets.

use super::*;

impl GroupManager {
    /// Validates a commit (Kafka's `doCommitOffsets`); the caller persists `plan.records` and
    /// then calls `apply`.
    pub fn plan_commit(
        &mut self,
        now_ms: i64,
        req: CommitRequest,
    ) -> Result<CommitPlan, GroupError> {
        self.plan(now_ms, req, false)
    }

    /// Validates a commit made inside a transaction (TxnOffsetCommit, Kafka's transactional
    /// `validateOffsetCommit`): a request without generation and member is accepted whatever
    /// the group's state; one that names them is checked, but a rebalance does not refuse it.
    /// The caller persists `plan.records` in a transactional batch, then calls `add_pending`.
    pub fn plan_txn_commit(
        &mut self,
        now_ms: i64,
        req: CommitRequest,
    ) -> Result<CommitPlan, GroupError> {
        self.plan(now_ms, req, true)
    }

    /// Offsets of producer `producer_id`'s transaction, now in the log.
    pub fn add_pending(&mut self, producer_id: i64, records: &[GroupRecord]) {
        self.pending
            .entry(producer_id)
            .or_default()
            .extend(records.iter().cloned());
    }

    /// A transaction marker for `producer_id` is in the log: its offsets take effect on a
    /// commit and are dropped on an abort.
    pub fn complete_pending(&mut self, now_ms: i64, producer_id: i64, commit: bool) {
        let Some(records) = self.pending.remove(&producer_id) else {
            return;
        };
        if commit {
            for record in &records {
                self.apply(now_ms, record);
            }
        }
    }

    /// The partitions of `group_id` with offsets in an open transaction (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT for them).
    pub fn unstable_partitions(&self, group_id: &str) -> HashSet<(String, i32)> {
        self.pending
            .values()
            .flatten()
            .filter_map(|record| match record {
                GroupRecord::Offset {
                    group_id: g,
                    topic,
                    partition,
                    ..
                } if g == group_id => Some((topic.clone(), *partition)),
                _ => None,
            })
            .collect()
    }

    fn plan(
        &mut self,
        now_ms: i64,
        req: CommitRequest,
        transactional: bool,
    ) -> Result<CommitPlan, GroupError> {
        let config = self.config.clone();
        let group = match self.groups.get_mut(&req.group_id) {
            Some(group) => group,
            None if req.generation_id < 0 => {
                // The group only stores offsets in Kafka (an admin tool, or assign()).
                self.groups
                    .entry(req.group_id.clone())
                    .or_insert_with(|| Group::new(&req.group_id, now_ms))
            }
            None => return Err(GroupError::IllegalGeneration),
        };
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if group.is_static_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return Err(GroupError::FencedInstanceId);
        }
        let simple = if transactional {
            req.generation_id < 0 && req.member_id.is_empty() && req.group_instance_id.is_none()
        } else {
            req.generation_id < 0 && group.state == GroupState::Empty
        };
        if !simple {
            if !transactional && group.state == GroupState::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            let generation = group.generation_id;
            let member = group
                .members
                .get_mut(&req.member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            if req.generation_id != generation {
                return Err(GroupError::IllegalGeneration);
            }
            member.last_heartbeat_ms = now_ms;
        }
        let mut plan = CommitPlan::default();
        for o in req.offsets {
            let metadata = o.metadata.unwrap_or_default();
            if metadata.len() > config.offset_metadata_max_bytes {
                plan.errors
                    .push((o.topic, o.partition, GroupError::OffsetMetadataTooLarge));
                continue;
            }
            plan.records.push(GroupRecord::Offset {
                group_id: req.group_id.clone(),
                topic: o.topic,
                partition: o.partition,
                value: Some(OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: (req.retention_time_ms >= 0)
                        .then(|| now_ms.saturating_add(req.retention_time_ms)),
                }),
            });
        }
        Ok(plan)
    }

    /// Applies offset records that were persisted (after a commit, and when loading).
    pub fn apply(&mut self, now_ms: i64, record: &GroupRecord) {
        match record {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => match value {
                Some(value) => {
                    self.groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id, now_ms))
                        .offsets
                        .insert((topic.clone(), *partition), value.clone());
                }
                None => {
                    if let Some(group) = self.groups.get_mut(group_id) {
                        group.offsets.remove(&(topic.clone(), *partition));
                    }
                }
            },
            GroupRecord::Group { group_id, value } => match value {
                None => {
                    self.groups.remove(group_id);
                }
                Some(value) => {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id, now_ms));
                    load_group_value(group, value, now_ms);
                }
            },
        }
    }

    /// The committed offsets of a group: every one when `partitions` is `None`, else those
    /// asked for (`None` for a partition without a committed offset).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let group = self.groups.get(group_id);
        match partitions {
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            Some(wanted) => wanted
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |p| {
                        let value =
                            group.and_then(|g| g.offsets.get(&(topic.clone(), *p)).cloned());
                        (topic.clone(), *p, value)
                    })
                })
                .collect(),
        }
    }

    /// OffsetDelete: removes a group's offsets for partitions of topics it does not consume.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<GroupRecord>, PartitionResults), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        let subscribed = match group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => HashSet::new(),
            _ => group.subscribed_topics().ok_or(GroupError::NonEmptyGroup)?,
        };
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                records.push(GroupRecord::Offset {
                    group_id: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
            results.push(Ok(()));
        }
        Ok((records, results))
    }

    /// A deleted topic's committed offsets go with it (Kafka's `onPartitionsDeleted`).
    pub fn remove_topic_offsets(&mut self, topic: &str) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        for group in self.groups.values_mut() {
            let gone: Vec<(String, i32)> = group
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            for key in gone {
                group.offsets.remove(&key);
                records.push(GroupRecord::Offset {
                    group_id: group.id.clone(),
                    topic: key.0,
                    partition: key.1,
                    value: None,
                });
            }
        }
        records
    }

    /// Kafka (KIP-211): an Empty group's offsets expire `offsets.retention.minutes` after the
    /// group became Empty; a group that never had members expires each offset that long after
    /// its commit; an explicit expire timestamp (OffsetCommit v2-4) wins. A group left without
    /// offsets is removed.
    pub(super) fn expire_offsets(&mut self, now_ms: i64, effects: &mut Effects) {
        let retention_ms = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            if group.state != GroupState::Empty {
                continue;
            }
            let was_consumer_group = group.protocol_type.is_some();
            let state_timestamp = group.state_timestamp_ms;
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| match v.expire_timestamp_ms {
                    Some(expire) => now_ms >= expire,
                    None => {
                        let base = if was_consumer_group {
                            state_timestamp
                        } else {
                            v.commit_timestamp_ms
                        };
                        now_ms >= base.saturating_add(retention_ms)
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                effects.records.push(GroupRecord::Offset {
                    group_id: group.id.clone(),
                    topic,
                    partition,
                    value: None,
                });
            }
            if group.offsets.is_empty() && group.pending_members.is_empty() {
                group.transition(GroupState::Dead, now_ms);
                effects.records.push(GroupRecord::Group {
                    group_id: group.id.clone(),
                    value: None,
                });
                dead.push(group.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
    }
}
