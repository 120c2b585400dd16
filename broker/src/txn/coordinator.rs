//! The transaction coordinator's I/O around the sans-IO `TxnManager`s: one shard per partition
//! of `__transaction_state`, each a manager behind a lock with the partition's log.
//!
//! Every change runs the state machine and appends the record it returns to the shard's log
//! under the same lock, then applies it; the answer waits until the record is durable. Ending a
//! transaction is two steps, as in Kafka: the prepare state is made durable and answered, then
//! the markers are written to every partition of the transaction (each fsynced), then the
//! complete state is written. A start that finds a transaction prepared but not completed
//! writes its markers again (a second marker in a partition ends nothing and is harmless).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::state::{
    EndOutcome, InitOutcome, MarkerJob, TxnError, TxnLimits, TxnManager, TxnMetadata, TxnPartition,
    TxnRecord,
};
use crate::clock::Clock;
use crate::codec::partition_for;
use crate::log::marker::Marker;
use crate::log::partition::{AppendError, AppendInfo};
use crate::log::producer_state::SequenceError;
use crate::log::replica::Acks;
use crate::log::{PartitionLog, Replicas};

/// Bytes read from the transaction log per step while loading.
const LOAD_READ_BYTES: usize = 1 << 20;
/// How long a marker write that failed (an offline partition) waits before it is tried again.
const MARKER_RETRY: Duration = Duration::from_secs(1);
/// Marker writes are retried this many times, then left for the next start to complete.
const MARKER_ATTEMPTS: u32 = 30;

/// Writes a transaction marker (producer id, epoch, marker) to a partition, through whoever owns
/// it (the group coordinator for the offsets topic, which applies it to its pending offsets):
/// the partition's log and the append, or `None` when there is no such partition.
pub type MarkerWriter = Arc<
    dyn Fn(
            &str,
            i32,
            i64,
            i16,
            Marker,
        ) -> Option<Result<(Arc<PartitionLog>, AppendInfo), AppendError>>
        + Send
        + Sync,
>;
/// Hands out a new producer id (the broker's allocator, persisted in blocks).
pub type IdAllocator = Arc<dyn Fn() -> Result<i64, TxnError> + Send + Sync>;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ShardState {
    Loading,
    Active,
}

struct Shard {
    state: ShardState,
    manager: TxnManager,
    log: Arc<PartitionLog>,
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub metadata: TxnMetadata,
}

pub struct TxnCoordinator {
    shards: Vec<Mutex<Shard>>,
    limits: TxnLimits,
    clock: Arc<dyn Clock>,
    replicas: Replicas,
    write_marker: MarkerWriter,
    allocate: IdAllocator,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator")
            .field("partitions", &self.shards.len())
            .finish()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxnCoordinator {
    /// A coordinator over the transaction log's partitions (index = partition), every shard
    /// loading until `load` has replayed it.
    pub fn new(
        limits: TxnLimits,
        logs: Vec<Arc<PartitionLog>>,
        replicas: Replicas,
        clock: Arc<dyn Clock>,
        write_marker: MarkerWriter,
        allocate: IdAllocator,
    ) -> TxnCoordinator {
        let shards = logs
            .into_iter()
            .map(|log| {
                Mutex::new(Shard {
                    state: ShardState::Loading,
                    manager: TxnManager::new(limits),
                    log,
                })
            })
            .collect();
        TxnCoordinator {
            shards,
            limits,
            clock,
            replicas,
            write_marker,
            allocate,
        }
    }

    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.partitions())
    }

    fn shard(&self, transactional_id: &str) -> &Mutex<Shard> {
        let index = self.partition_for(transactional_id) as usize;
        &self.shards[index.min(self.shards.len() - 1)]
    }

    fn active(&self, transactional_id: &str) -> Result<MutexGuard<'_, Shard>, TxnError> {
        let shard = lock(self.shard(transactional_id));
        match shard.state {
            ShardState::Active => Ok(shard),
            ShardState::Loading => Err(TxnError::LoadInProgress),
        }
    }

    /// Replays every partition of the transaction log, then finishes the transactions found
    /// prepared. Blocking for the replay; shards answer COORDINATOR_LOAD_IN_PROGRESS until
    /// theirs is done. Returns the marker jobs to run (`run_markers`).
    pub fn load(&self) -> Vec<MarkerJob> {
        let mut unfinished = Vec::new();
        for (partition, shard) in self.shards.iter().enumerate() {
            let log = lock(shard).log.clone();
            let started = std::time::Instant::now();
            let mut manager = TxnManager::new(self.limits);
            let records = replay(&log, &mut manager);
            unfinished.extend(manager.unfinished());
            let mut shard = lock(shard);
            shard.manager = manager;
            shard.state = ShardState::Active;
            if records > 0 {
                tracing::info!(
                    partition,
                    records,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded transactional ids"
                );
            }
        }
        unfinished
    }

    /// Appends `record` to the shard's log and applies it; returns what to wait for to make
    /// it durable.
    fn persist(
        &self,
        shard: &mut Shard,
        record: &TxnRecord,
    ) -> Result<Option<(Arc<PartitionLog>, i64)>, TxnError> {
        let now_ms = self.clock.now_ms();
        let batch = encode_batch(record, now_ms).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a transaction record");
            TxnError::NotAvailable
        })?;
        let info = shard.log.append(&batch, now_ms).map_err(|e| {
            tracing::error!(partition = %shard.log.topic_partition, error = %e, "cannot write the transaction log");
            TxnError::NotAvailable
        })?;
        shard.manager.apply(record);
        Ok(info
            .fsync_acks_all
            .then(|| (shard.log.clone(), info.next_offset)))
    }

    async fn durable(&self, durable: Option<(Arc<PartitionLog>, i64)>) -> Result<(), TxnError> {
        let Some((log, up_to)) = durable else {
            return Ok(());
        };
        match self.replicas.committed(log, up_to).wait().await {
            true => Ok(()),
            false => {
                tracing::error!("the transaction log could not be synced");
                Err(TxnError::NotAvailable)
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use. An open
    /// transaction of an earlier producer is aborted first (CONCURRENT_TRANSACTIONS: retry).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        let (outcome, durable) = {
            let mut shard = self.active(transactional_id)?;
            let allocate = self.allocate.clone();
            let outcome = shard.manager.init_producer_id(
                transactional_id,
                timeout_ms,
                expected,
                self.clock.now_ms(),
                &mut || allocate(),
            )?;
            let record = match &outcome {
                InitOutcome::Ready { record, .. } | InitOutcome::AbortFirst { record, .. } => {
                    record
                }
            };
            let durable = self.persist(&mut shard, record)?;
            (outcome, durable)
        };
        self.durable(durable).await?;
        match outcome {
            InitOutcome::Ready {
                producer_id, epoch, ..
            } => Ok((producer_id, epoch)),
            InitOutcome::AbortFirst { job, .. } => {
                tracing::info!(
                    transactional_id,
                    producer_id = job.producer_id,
                    epoch = job.epoch,
                    "a new producer fences an open transaction: aborting it"
                );
                self.spawn_markers(job);
                Err(TxnError::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<(), TxnError> {
        let durable = {
            let mut shard = self.active(transactional_id)?;
            let change = shard.manager.add_partitions(
                transactional_id,
                producer_id,
                epoch,
                partitions,
                self.clock.now_ms(),
            )?;
            match change {
                Some(record) => self.persist(&mut shard, &record)?,
                None => None,
            }
        };
        self.durable(durable).await
    }

    /// Whether a transactional produce to `partition` belongs to the producer's ongoing
    /// transaction (KIP-890's verification, done here in process).
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), TxnError> {
        self.active(transactional_id)?.manager.verify(
            transactional_id,
            producer_id,
            epoch,
            partition,
        )
    }

    /// EndTxn: answered once the prepare state is durable; the markers follow.
    pub async fn end(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let (job, durable) = {
            let mut shard = self.active(transactional_id)?;
            match shard.manager.end(
                transactional_id,
                producer_id,
                epoch,
                commit,
                self.clock.now_ms(),
            )? {
                EndOutcome::Done => return Ok(()),
                EndOutcome::Prepare { record, job } => {
                    let durable = self.persist(&mut shard, &record)?;
                    (job, durable)
                }
            }
        };
        self.durable(durable).await?;
        self.spawn_markers(job);
        Ok(())
    }

    /// Writes a transaction's markers and completes it, in a task of its own.
    pub fn spawn_markers(self: &Arc<Self>, job: MarkerJob) {
        let coordinator = self.clone();
        tokio::spawn(async move { coordinator.run_markers(job).await });
    }

    /// Writes the marker to every partition of the job (each made durable), then the complete
    /// state. A partition that is gone (its topic deleted) needs none.
    pub async fn run_markers(&self, job: MarkerJob) {
        let marker = Marker {
            commit: job.commit,
            coordinator_epoch: 0,
        };
        let mut waits = Vec::new();
        for (topic, partition) in &job.partitions {
            let mut attempt = 0;
            loop {
                let written =
                    (self.write_marker)(topic, *partition, job.producer_id, job.epoch, marker);
                match written {
                    // The partition is gone (its topic deleted): it needs no marker.
                    None | Some(Err(AppendError::Deleted)) => break,
                    Some(Ok((log, info))) => {
                        waits.push(self.replicas.acknowledge(&log, &info, Acks::All));
                        break;
                    }
                    Some(Err(AppendError::Sequence(
                        SequenceError::InvalidProducerEpoch { .. }
                        | SequenceError::CoordinatorFenced { .. },
                    ))) => {
                        // The producer moved on to a newer epoch here, or a newer coordinator
                        // (an administrator's WriteTxnMarkers) ended the transaction: it already
                        // ended in this partition.
                        break;
                    }
                    Some(Err(e)) => {
                        attempt += 1;
                        tracing::warn!(topic, partition, error = %e, attempt, transactional_id = job.transactional_id, "cannot write a transaction marker");
                        if attempt >= MARKER_ATTEMPTS {
                            tracing::error!(transactional_id = job.transactional_id, "giving up on a transaction's markers until the next start; its partitions stay unstable");
                            return;
                        }
                        tokio::time::sleep(MARKER_RETRY).await;
                    }
                }
            }
        }
        for wait in waits {
            if !wait.wait().await {
                tracing::error!(
                    transactional_id = job.transactional_id,
                    "a transaction marker could not be synced; the transaction completes at the next start"
                );
                return;
            }
        }
        let durable = {
            let Ok(mut shard) = self.active(&job.transactional_id) else {
                return;
            };
            let Some(record) = shard.manager.complete(&job, self.clock.now_ms()) else {
                return;
            };
            match self.persist(&mut shard, &record) {
                Ok(durable) => durable,
                Err(_) => return,
            }
        };
        let _ = self.durable(durable).await;
    }

    /// Aborts transactions open past their timeout (fencing their producers), and removes ids
    /// idle past `transactional.id.expiration.ms`.
    pub fn expire(self: &Arc<Self>) {
        let now_ms = self.clock.now_ms();
        for shard in &self.shards {
            let mut shard = lock(shard);
            if shard.state != ShardState::Active {
                continue;
            }
            let allocate = self.allocate.clone();
            let (aborts, removals) = shard.manager.expire(now_ms, &mut || allocate());
            for (record, job) in aborts {
                if self.persist(&mut shard, &record).is_ok() {
                    tracing::info!(
                        transactional_id = job.transactional_id,
                        producer_id = job.producer_id,
                        "aborting a transaction past its timeout"
                    );
                    self.spawn_markers(job);
                }
            }
            for record in removals {
                let _ = self.persist(&mut shard, &record);
            }
        }
    }

    /// DescribeTransactions.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, TxnError> {
        let shard = self.active(transactional_id)?;
        let metadata = shard
            .manager
            .get(transactional_id)
            .ok_or(TxnError::TransactionalIdNotFound)?;
        Ok(TxnDescription {
            transactional_id: transactional_id.to_string(),
            metadata: metadata.clone(),
        })
    }

    /// ListTransactions: every id of the loaded shards.
    pub fn list(&self) -> Result<Vec<TxnDescription>, TxnError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            if shard.state != ShardState::Active {
                return Err(TxnError::LoadInProgress);
            }
            out.extend(shard.manager.iter().map(|(id, m)| TxnDescription {
                transactional_id: id.clone(),
                metadata: m.clone(),
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }
}

fn encode_batch(record: &TxnRecord, now_ms: i64) -> anyhow::Result<Bytes> {
    let (key, value) = record.encode();
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key),
        value,
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [record].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// Applies every record of the log to `manager`; returns how many were read. A damaged batch
/// is skipped by its header (its records are lost, not the ones after it).
fn replay(log: &PartitionLog, manager: &mut TxnManager) -> usize {
    let offsets = log.offsets();
    let mut offset = offsets.log_start_offset;
    let mut count = 0;
    while offset < offsets.high_watermark {
        let bytes = match log.read(offset, LOAD_READ_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(partition = %log.topic_partition, offset, error = %e, "cannot read the transaction log; ids after this point are not loaded");
                break;
            }
        };
        let before = offset;
        for (header, start) in crate::log::batch::headers(&bytes) {
            let end = start + header.size;
            offset = offset.max(header.last_offset() + 1);
            let Some(batch) = bytes.get(start..end) else {
                break;
            };
            let mut buf = Bytes::copy_from_slice(batch);
            let set = match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => set,
                Err(e) => {
                    tracing::error!(partition = %log.topic_partition, first_offset = header.base_offset, error = %e, "skipping an undecodable batch in the transaction log");
                    continue;
                }
            };
            for record in set.records {
                let Some(key) = record.key else { continue };
                match TxnRecord::decode(&key, record.value.as_deref()) {
                    Ok(record) => {
                        manager.apply(&record);
                        count += 1;
                    }
                    Err(e) => {
                        tracing::warn!(partition = %log.topic_partition, offset = record.offset, error = %e, "skipping an unreadable transaction record")
                    }
                }
            }
        }
        if offset == before {
            tracing::error!(partition = %log.topic_partition, offset, "no progress loading the transaction log");
            break;
        }
    }
    count
}
