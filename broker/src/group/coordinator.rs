//! The group coordinator's I/O around the sans-IO `GroupManager`s: one shard per partition of
//! the offsets topic, each a `GroupManager` behind a lock with the partition's log.
//!
//! Every call runs the state machine and appends the records it returns to the shard's log
//! under the same lock, so the log holds them in the order the state changed. Responses are
//! delivered only once the replica layer has them committed (as acks=-1 writes: fsynced).
//! Waiting JoinGroup and SyncGroup requests are oneshot channels keyed by the
//! `RequestId` the state machine knows them by. Deliveries that wait for an fsync run in their
//! own task, so a client that disconnects cannot strand the answers owed to other members.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::oneshot;

use super::records::{partition_for, GroupRecord};
use super::state::{
    CommitRequest, Effects, GroupDescription, GroupError, GroupListing, GroupManager, JoinRequest,
    JoinResponse, MemberIdentity, RequestId, Response, SyncRequest, SyncResponse,
};
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::log::{PartitionLog, Replicas};

/// Bytes read from the offsets topic per step while loading.
const LOAD_READ_BYTES: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ShardState {
    Loading,
    Active,
}

#[derive(Debug)]
struct Shard {
    state: ShardState,
    manager: GroupManager,
    log: Arc<PartitionLog>,
    waiters: HashMap<RequestId, oneshot::Sender<Response>>,
}

/// Answers that become due once a write is durable.
#[must_use]
struct Delivery {
    durable: Option<(Arc<PartitionLog>, i64)>,
    failed: bool,
    answers: Vec<(oneshot::Sender<Response>, Response)>,
}

impl Delivery {
    /// Sends now if nothing waits for an fsync; otherwise in a task of its own.
    fn send(self, replicas: &Replicas) {
        match self.durable {
            None => deliver(self.answers, self.failed),
            Some((log, up_to)) => {
                let pending = replicas.committed(log, up_to);
                let answers = self.answers;
                tokio::spawn(async move {
                    let ok = pending.wait().await;
                    if !ok {
                        tracing::error!("the offsets topic could not be synced");
                    }
                    deliver(answers, !ok);
                });
            }
        }
    }

    /// Waits for durability; `false` if the write failed.
    async fn wait(self, replicas: &Replicas) -> bool {
        let mut ok = !self.failed;
        if let Some((log, up_to)) = self.durable {
            ok &= replicas.committed(log, up_to).wait().await;
        }
        deliver(self.answers, !ok);
        ok
    }
}

fn deliver(answers: Vec<(oneshot::Sender<Response>, Response)>, failed: bool) {
    for (sender, response) in answers {
        let response = if failed {
            match response {
                Response::Join(r) => Response::Join(JoinResponse {
                    error: Some(GroupError::CoordinatorNotAvailable),
                    generation_id: -1,
                    member_id: r.member_id,
                    ..JoinResponse::default()
                }),
                Response::Sync(_) => Response::Sync(SyncResponse {
                    error: Some(GroupError::CoordinatorNotAvailable),
                    ..SyncResponse::default()
                }),
            }
        } else {
            response
        };
        let _ = sender.send(response);
    }
}

/// Per-partition errors of an OffsetCommit: (topic, partition, error).
pub type CommitErrors = Vec<(String, i32, GroupError)>;

#[derive(Debug)]
pub struct GroupCoordinator {
    shards: Vec<Mutex<Shard>>,
    clock: Arc<dyn Clock>,
    replicas: Replicas,
    next_request_id: AtomicU64,
}

impl GroupCoordinator {
    /// A coordinator over the offsets topic's partitions (index = partition), every shard
    /// loading until `load` has replayed it.
    pub fn new(
        config: GroupConfig,
        logs: Vec<Arc<PartitionLog>>,
        replicas: Replicas,
        clock: Arc<dyn Clock>,
    ) -> GroupCoordinator {
        let shards = logs
            .into_iter()
            .map(|log| {
                Mutex::new(Shard {
                    state: ShardState::Loading,
                    manager: GroupManager::new(config.clone()),
                    log,
                    waiters: HashMap::new(),
                })
            })
            .collect();
        GroupCoordinator {
            shards,
            clock,
            replicas,
            next_request_id: AtomicU64::new(1),
        }
    }

    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    /// Replays every partition of the offsets topic. Blocking; shards answer
    /// COORDINATOR_LOAD_IN_PROGRESS until theirs is done.
    pub fn load(&self) {
        for (partition, shard) in self.shards.iter().enumerate() {
            let (log, config) = {
                let shard = lock(shard);
                (shard.log.clone(), shard.manager.config().clone())
            };
            let started = std::time::Instant::now();
            let mut manager = GroupManager::new(config);
            let records = replay(&log, &mut manager, self.clock.now_ms());
            manager.finish_load(self.clock.now_ms());
            let mut shard = lock(shard);
            shard.manager = manager;
            shard.state = ShardState::Active;
            if records > 0 {
                tracing::info!(
                    partition,
                    records,
                    groups = shard.manager.group_count(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded groups and offsets"
                );
            }
        }
    }

    /// The offsets-topic partition of a group (its records, and the partition a transaction
    /// committing the group's offsets writes to).
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.partitions())
    }

    fn shard(&self, group_id: &str) -> &Mutex<Shard> {
        let index = self.partition_for(group_id) as usize;
        &self.shards[index.min(self.shards.len() - 1)]
    }

    /// The shard of a group, if it has finished loading.
    fn active(&self, group_id: &str) -> Result<MutexGuard<'_, Shard>, GroupError> {
        let shard = lock(self.shard(group_id));
        match shard.state {
            ShardState::Active => Ok(shard),
            ShardState::Loading => Err(GroupError::CoordinatorLoadInProgress),
        }
    }

    fn next_request_id(&self) -> RequestId {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Persists the effects' records and collects the answers they release.
    fn settle(&self, shard: &mut Shard, effects: Effects) -> Delivery {
        let (durable, failed) = match persist(shard, &effects.records, self.clock.now_ms()) {
            Ok(durable) => (durable, false),
            Err(()) => (None, true),
        };
        let answers = effects
            .responses
            .into_iter()
            .filter_map(|(id, response)| shard.waiters.remove(&id).map(|s| (s, response)))
            .collect();
        Delivery {
            durable,
            failed,
            answers,
        }
    }

    /// JoinGroup: the member is registered with the group now; the returned future only waits
    /// for the rebalance to answer it (and may be dropped without undoing anything).
    pub fn join(
        &self,
        request: JoinRequest,
    ) -> impl Future<Output = JoinResponse> + Send + 'static {
        let member_id = request.member_id.clone();
        let (sender, receiver) = oneshot::channel();
        let id = self.next_request_id();
        let refused = match self.active(&request.group_id) {
            Err(error) => Some(JoinResponse::error(&member_id, error)),
            Ok(mut shard) => {
                shard.waiters.insert(id, sender);
                let effects = shard.manager.join(self.clock.now_ms(), id, request);
                let delivery = self.settle(&mut shard, effects);
                drop(shard);
                delivery.send(&self.replicas);
                None
            }
        };
        async move {
            if let Some(refused) = refused {
                return refused;
            }
            match receiver.await {
                Ok(Response::Join(response)) => response,
                _ => JoinResponse::error(&member_id, GroupError::CoordinatorNotAvailable),
            }
        }
    }

    /// SyncGroup: applied now; the future waits for the leader's assignment.
    pub fn sync(
        &self,
        request: SyncRequest,
    ) -> impl Future<Output = SyncResponse> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        let id = self.next_request_id();
        let refused = match self.active(&request.group_id) {
            Err(error) => Some(SyncResponse::error(error)),
            Ok(mut shard) => {
                shard.waiters.insert(id, sender);
                let effects = shard.manager.sync(self.clock.now_ms(), id, request);
                let delivery = self.settle(&mut shard, effects);
                drop(shard);
                delivery.send(&self.replicas);
                None
            }
        };
        async move {
            if let Some(refused) = refused {
                return refused;
            }
            match receiver.await {
                Ok(Response::Sync(response)) => response,
                _ => SyncResponse::error(GroupError::CoordinatorNotAvailable),
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        let mut shard = self.active(group_id)?;
        let now_ms = self.clock.now_ms();
        shard.manager.heartbeat(
            now_ms,
            group_id,
            member_id,
            group_instance_id,
            generation_id,
        )
    }

    /// LeaveGroup, applied at once (the answers it releases to other members go out once the
    /// group record is durable).
    pub fn leave(
        &self,
        group_id: &str,
        members: &[MemberIdentity],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let (result, delivery) = {
            let mut shard = self.active(group_id)?;
            let (result, effects) = shard.manager.leave(self.clock.now_ms(), group_id, members);
            (result, self.settle(&mut shard, effects))
        };
        delivery.send(&self.replicas);
        result
    }

    /// OffsetCommit, applied now. `known` says whether a topic partition exists; it is asked
    /// under the shard lock, the lock that `remove_topic_offsets` takes after a topic left the
    /// metadata, so a commit either lands before the delete's tombstones or is refused.
    /// Returns the partitions refused as unknown, and a future that waits for durability and
    /// yields the coordinator's per-partition errors for the others.
    pub fn commit(
        &self,
        request: CommitRequest,
        known: impl Fn(&str, i32) -> bool,
    ) -> (
        Vec<(String, i32)>,
        impl Future<Output = Result<CommitErrors, GroupError>> + Send + 'static,
    ) {
        self.commit_as(request, None, known)
    }

    /// TxnOffsetCommit: as `commit`, but the offsets are written in a transactional batch of
    /// the producer's and take effect when its transaction commits (`write_marker`).
    pub fn txn_commit(
        &self,
        request: CommitRequest,
        producer: (i64, i16),
        known: impl Fn(&str, i32) -> bool,
    ) -> (
        Vec<(String, i32)>,
        impl Future<Output = Result<CommitErrors, GroupError>> + Send + 'static,
    ) {
        self.commit_as(request, Some(producer), known)
    }

    fn commit_as(
        &self,
        mut request: CommitRequest,
        producer: Option<(i64, i16)>,
        known: impl Fn(&str, i32) -> bool,
    ) -> (
        Vec<(String, i32)>,
        impl Future<Output = Result<CommitErrors, GroupError>> + Send + 'static,
    ) {
        let mut unknown = Vec::new();
        let applied = match self.active(&request.group_id) {
            Err(e) => Err(e),
            Ok(mut shard) => {
                request.offsets.retain(|o| {
                    let ok = known(&o.topic, o.partition);
                    if !ok {
                        unknown.push((o.topic.clone(), o.partition));
                    }
                    ok
                });
                let now_ms = self.clock.now_ms();
                let plan = match producer {
                    None => shard.manager.plan_commit(now_ms, request),
                    Some(_) => shard.manager.plan_txn_commit(now_ms, request),
                };
                match plan {
                    Err(e) => Err(e),
                    Ok(plan) => match persist_as(&mut shard, &plan.records, now_ms, producer) {
                        Err(()) => Err(GroupError::Storage),
                        Ok(durable) => {
                            match producer {
                                None => {
                                    for record in &plan.records {
                                        shard.manager.apply(now_ms, record);
                                    }
                                }
                                Some((producer_id, _)) => {
                                    shard.manager.add_pending(producer_id, &plan.records)
                                }
                            }
                            Ok((plan.errors, durable))
                        }
                    },
                }
            }
        };
        let replicas = self.replicas.clone();
        let wait = async move {
            let (errors, durable) = applied?;
            if let Some((log, up_to)) = durable {
                if !replicas.committed(log, up_to).wait().await {
                    return Err(GroupError::Storage);
                }
            }
            Ok(errors)
        };
        (unknown, wait)
    }

    /// Writes a transaction marker to offsets-topic partition `partition` for the transaction
    /// coordinator, and applies it: the producer's pending offsets there take effect (commit)
    /// or are dropped (abort). `None` when there is no such partition.
    pub fn write_marker(
        &self,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        marker: crate::log::marker::Marker,
    ) -> Option<
        Result<
            (Arc<PartitionLog>, crate::log::partition::AppendInfo),
            crate::log::partition::AppendError,
        >,
    > {
        let shard = self.shards.get(usize::try_from(partition).ok()?)?;
        let mut shard = lock(shard);
        if shard.state != ShardState::Active {
            // Written while the partition replays, the marker could be missed by the replay:
            // the transaction coordinator tries again shortly.
            return Some(Err(crate::log::partition::AppendError::Offline(
                "the group coordinator is loading this partition".into(),
            )));
        }
        let now_ms = self.clock.now_ms();
        let log = shard.log.clone();
        let written = log.append_marker(producer_id, epoch, marker, now_ms);
        if written.is_ok() {
            shard
                .manager
                .complete_pending(now_ms, producer_id, marker.commit);
        }
        Some(written.map(|info| (log, info)))
    }

    /// The partitions of a group with offsets in an open transaction.
    pub fn unstable_partitions(
        &self,
        group_id: &str,
    ) -> Result<std::collections::HashSet<(String, i32)>, GroupError> {
        Ok(self.active(group_id)?.manager.unstable_partitions(group_id))
    }

    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<super::records::OffsetValue>)>, GroupError> {
        let shard = self.active(group_id)?;
        Ok(shard.manager.fetch_offsets(group_id, partitions))
    }

    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let shard = self.active(group_id)?;
        Ok(shard.manager.describe(group_id))
    }

    pub fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        let mut groups = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            if shard.state == ShardState::Loading {
                return Err(GroupError::CoordinatorLoadInProgress);
            }
            groups.extend(shard.manager.list());
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let delivery = {
            let mut shard = self.active(group_id)?;
            let records = shard.manager.delete_group(self.clock.now_ms(), group_id)?;
            self.settle(
                &mut shard,
                Effects {
                    records,
                    responses: Vec::new(),
                },
            )
        };
        if delivery.wait(&self.replicas).await {
            Ok(())
        } else {
            Err(GroupError::Storage)
        }
    }

    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let (results, delivery) = {
            let mut shard = self.active(group_id)?;
            let (records, results) = shard.manager.delete_offsets(group_id, partitions)?;
            let delivery = self.settle(
                &mut shard,
                Effects {
                    records,
                    responses: Vec::new(),
                },
            );
            (results, delivery)
        };
        if delivery.wait(&self.replicas).await {
            Ok(results)
        } else {
            Err(GroupError::Storage)
        }
    }

    /// Forgets every group's offsets for a deleted topic and waits until the tombstones are
    /// durable, so a power cut after DeleteTopics was answered cannot bring the offsets back
    /// for a topic re-created under the name. `false` if a write or its fsync failed. Blocking:
    /// call it off the reactor (DeleteTopics runs it on the blocking pool).
    pub fn remove_topic_offsets(&self, topic: &str) -> bool {
        let mut ok = true;
        let mut syncs = Vec::new();
        for shard in &self.shards {
            let delivery = {
                let mut shard = lock(shard);
                if shard.state != ShardState::Active {
                    continue;
                }
                let records = shard.manager.remove_topic_offsets(topic);
                if records.is_empty() {
                    continue;
                }
                self.settle(
                    &mut shard,
                    Effects {
                        records,
                        responses: Vec::new(),
                    },
                )
            };
            ok &= !delivery.failed;
            if let Some((log, up_to)) = delivery.durable {
                syncs.push(self.replicas.committed(log, up_to));
            }
            deliver(delivery.answers, delivery.failed);
        }
        for sync in syncs {
            ok &= sync.wait_blocking();
        }
        ok
    }

    /// Fires the deadlines of every active shard. Called periodically by the broker.
    pub fn tick(&self) {
        for shard in &self.shards {
            let delivery = {
                let mut shard = lock(shard);
                if shard.state != ShardState::Active {
                    continue;
                }
                let effects = shard.manager.tick(self.clock.now_ms());
                if effects.records.is_empty() && effects.responses.is_empty() {
                    continue;
                }
                self.settle(&mut shard, effects)
            };
            delivery.send(&self.replicas);
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// Appends the records as one batch; returns what to wait for to make them durable.
fn persist(
    shard: &mut Shard,
    records: &[GroupRecord],
    now_ms: i64,
) -> Result<Option<(Arc<PartitionLog>, i64)>, ()> {
    persist_as(shard, records, now_ms, None)
}

/// As `persist`, in a transactional batch of `producer` when given.
fn persist_as(
    shard: &mut Shard,
    records: &[GroupRecord],
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> Result<Option<(Arc<PartitionLog>, i64)>, ()> {
    if records.is_empty() {
        return Ok(None);
    }
    let batch = encode_batch(records, now_ms, producer).map_err(|e| {
        tracing::error!(error = %e, "cannot encode group records");
    })?;
    let info = shard.log.append(&batch, now_ms).map_err(|e| {
        tracing::error!(partition = %shard.log.topic_partition, error = %e, "cannot write group records");
    })?;
    Ok(info
        .fsync_acks_all
        .then(|| (shard.log.clone(), info.next_offset)))
}

/// One batch of `records`; with `producer` (id, epoch), a transactional batch of that
/// producer's (TxnOffsetCommit), which its transaction's marker later commits or aborts.
fn encode_batch(
    records: &[GroupRecord],
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let (key, value) = record.encode();
            Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence is constant.
                sequence: i as i32 - 1,
                timestamp: now_ms,
                key: Some(key),
                value,
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// Applies every record of the log to `manager`; returns how many were read.
fn replay(log: &PartitionLog, manager: &mut GroupManager, now_ms: i64) -> usize {
    let offsets = log.offsets();
    let mut offset = offsets.log_start_offset;
    let mut count = 0;
    while offset < offsets.high_watermark {
        let mut bytes = match log.read(offset, LOAD_READ_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(partition = %log.topic_partition, offset, error = %e, "cannot read the offsets topic; groups after this point are not loaded");
                break;
            }
        };
        let before = offset;
        while !bytes.is_empty() {
            let batch_bytes = bytes.clone();
            let batch = match RecordBatchDecoder::decode(&mut bytes) {
                Ok(batch) => batch,
                Err(e) => {
                    // A damaged batch (a flipped byte fails its CRC) costs the records in it,
                    // not every later commit: skip it by its header, as long as the header
                    // still says where the next batch starts.
                    match crate::log::batch::BatchHeader::parse(&batch_bytes) {
                        Ok(header) if header.size <= batch_bytes.len() => {
                            tracing::error!(
                                partition = %log.topic_partition,
                                first_offset = header.base_offset,
                                last_offset = header.last_offset(),
                                error = %e,
                                "skipping an undecodable batch in the offsets topic; the group \
                                 records in it are lost"
                            );
                            offset = offset.max(header.last_offset() + 1);
                            bytes = batch_bytes.slice(header.size..);
                            continue;
                        }
                        _ => {
                            tracing::error!(partition = %log.topic_partition, offset, error = %e, "undecodable batch in the offsets topic; groups after this point are not loaded");
                            return count;
                        }
                    }
                }
            };
            for record in batch.records {
                if record.offset < offset {
                    continue;
                }
                offset = record.offset + 1;
                let Some(key) = record.key else { continue };
                if record.control {
                    // A transaction marker (key: version i16, type i16; 1 = commit).
                    if key.len() >= 4 {
                        let commit = i16::from_be_bytes([key[2], key[3]]) == 1;
                        manager.complete_pending(now_ms, record.producer_id, commit);
                    }
                    continue;
                }
                match GroupRecord::decode(&key, record.value.as_deref()) {
                    Ok(decoded) if record.transactional => {
                        manager.add_pending(record.producer_id, &[decoded]);
                        count += 1;
                    }
                    Ok(record) => {
                        manager.apply(now_ms, &record);
                        count += 1;
                    }
                    Err(e) => {
                        tracing::warn!(partition = %log.topic_partition, offset = record.offset, error = %e, "skipping an unreadable group record")
                    }
                }
            }
        }
        if offset == before {
            tracing::error!(partition = %log.topic_partition, offset, "no progress loading the offsets topic");
            break;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::LogConfig;
    use crate::group::records::OffsetValue;
    use crate::group::state::{CommitOffset, CommitRequest};
    use crate::log::{LogManager, TopicPartition};

    fn log_config() -> Arc<LogConfig> {
        Arc::new(LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: i64::MAX,
            retention_ms: -1,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            max_message_bytes: 1 << 20,
            fsync_acks_all: true,
            ..LogConfig::default()
        })
    }

    fn offsets_logs(
        logs: &LogManager,
        clock: &ManualClock,
    ) -> anyhow::Result<Vec<Arc<PartitionLog>>> {
        Ok((0..3)
            .map(|p| {
                logs.open_partition(
                    &TopicPartition::new("__consumer_offsets", p),
                    uuid::Uuid::from_u128(1),
                    crate::log::Opening::Existing,
                    log_config(),
                    clock.now_ms(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn coordinator(logs: &LogManager, clock: Arc<ManualClock>) -> anyhow::Result<GroupCoordinator> {
        let partitions = offsets_logs(logs, &clock)?;
        Ok(GroupCoordinator::new(
            GroupConfig::default(),
            partitions,
            logs.replicas().clone(),
            clock,
        ))
    }

    fn commit(group: &str, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 2,
                offset,
                leader_epoch: 4,
                metadata: Some(format!("note {offset}")),
            }],
        }
    }

    async fn commit_all(
        groups: &GroupCoordinator,
        request: CommitRequest,
    ) -> Result<Vec<(String, i32, GroupError)>, GroupError> {
        let (unknown, stored) = groups.commit(request, |_, _| true);
        assert!(unknown.is_empty());
        stored.await
    }

    #[tokio::test]
    async fn loading_shards_refuse_then_commits_survive_a_reload() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(1_000_000));
        {
            let logs = LogManager::open(dir.path())?;
            let groups = coordinator(&logs, clock.clone())?;
            assert_eq!(
                groups.heartbeat("g", "m", None, 1),
                Err(GroupError::CoordinatorLoadInProgress)
            );
            assert_eq!(
                commit_all(&groups, commit("g", 1)).await,
                Err(GroupError::CoordinatorLoadInProgress)
            );
            groups.load();
            for (i, group) in ["a", "b", "c", "d", "e"].iter().enumerate() {
                assert_eq!(
                    commit_all(&groups, commit(group, i as i64)).await,
                    Ok(vec![])
                );
            }
            assert_eq!(commit_all(&groups, commit("a", 100)).await, Ok(vec![]));
            assert_eq!(groups.delete_group("e").await, Ok(()));
            drop(groups);
            tokio::task::spawn_blocking(move || logs.shutdown()).await??;
        }
        let logs = LogManager::open(dir.path())?;
        let groups = coordinator(&logs, clock.clone())?;
        groups.load();
        let wanted = [("t".to_string(), vec![2])];
        let offset_of = |group: &str| -> Result<Option<OffsetValue>, GroupError> {
            Ok(groups.fetch_offsets(group, Some(&wanted))?[0].2.clone())
        };
        let a = offset_of("a")?.map(|v| (v.offset, v.leader_epoch, v.metadata));
        assert_eq!(
            a,
            Some((100, 4, "note 100".to_string())),
            "the latest commit wins"
        );
        assert_eq!(offset_of("d")?.map(|v| v.offset), Some(3));
        assert_eq!(offset_of("e")?, None, "the deleted group stays deleted");
        let listed: Vec<String> = groups.list()?.into_iter().map(|g| g.group_id).collect();
        assert_eq!(listed, ["a", "b", "c", "d"]);
        Ok(())
    }

    /// DeleteTopics' offset tombstones are fsynced before it answers (issue 18's review: they
    /// were written and not awaited, so a power cut could bring the offsets back). The fsync is
    /// slowed down so that a removal that does not wait returns before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn topic_offset_tombstones_are_durable_when_removal_returns() -> anyhow::Result<()> {
        fn slow_sync(file: &std::fs::File) -> std::io::Result<()> {
            std::thread::sleep(std::time::Duration::from_millis(300));
            file.sync_data()
        }
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(1_000_000));
        let logs = LogManager::open(dir.path())?;
        let partitions = offsets_logs(&logs, &clock)?;
        let groups = Arc::new(GroupCoordinator::new(
            GroupConfig::default(),
            partitions.clone(),
            Replicas::start_with(slow_sync)?,
            clock,
        ));
        groups.load();
        for group in ["a", "b", "c", "d"] {
            assert_eq!(commit_all(&groups, commit(group, 7)).await, Ok(vec![]));
        }
        let removing = groups.clone();
        assert!(tokio::task::spawn_blocking(move || removing.remove_topic_offsets("t")).await?);
        for log in &partitions {
            let end = log.offsets().high_watermark;
            assert_eq!(
                log.flushed_offset(),
                end,
                "{}: tombstones not yet durable when DeleteTopics would answer",
                log.topic_partition
            );
        }
        let wanted = [("t".to_string(), vec![2])];
        assert_eq!(groups.fetch_offsets("a", Some(&wanted))?[0].2, None);
        drop(groups);
        tokio::task::spawn_blocking(move || logs.shutdown()).await??;
        Ok(())
    }
}
