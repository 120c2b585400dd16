//! The transaction coordinator's state machine for the transactional ids of one partition of
//! `__transaction_state`, sans IO: time comes in as an argument, and every change comes back as
//! the record to persist (and, when a transaction ends, the markers to write) for the caller
//! to carry out. States and transitions follow Kafka's `TransactionState` and
//! `TransactionCoordinator`.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

/// Kafka's `TransactionState`, with the ids it persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions report (Kafka's `stateName`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// A partition of a transaction.
pub type TxnPartition = (String, i32);

/// One transactional id's state, as persisted (Kafka's `TransactionLogValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub last_update_ms: i64,
    /// When the ongoing transaction began; -1 when none is.
    pub start_ms: i64,
}

/// A change to persist: the id's new metadata, or `None` for a tombstone (an expired id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnMetadata>,
}

/// Markers to write to end a transaction, then `TxnManager::complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TxnPartition>,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    #[error("the transactional id is not known")]
    UnknownProducerIdMapping,
    #[error("the producer has been fenced by a newer epoch")]
    ProducerFenced,
    #[error("the transaction is completing; retry")]
    ConcurrentTransactions,
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    #[error("transaction.timeout.ms is above transaction.max.timeout.ms or not positive")]
    InvalidTransactionTimeout,
    #[error("the coordinator is loading its state")]
    LoadInProgress,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("the coordinator cannot allocate or store the producer id")]
    NotAvailable,
}

/// What InitProducerId leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Persist `record`, then answer with this id and epoch.
    Ready {
        producer_id: i64,
        epoch: i16,
        record: TxnRecord,
    },
    /// An open transaction of the previous producer must be aborted first: persist `record`,
    /// write the markers, and answer CONCURRENT_TRANSACTIONS (the client retries).
    AbortFirst { record: TxnRecord, job: MarkerJob },
}

/// What EndTxn leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// A retry of an end already done: answer at once.
    Done,
    /// Persist `record` (the prepare state), answer, then write the markers.
    Prepare { record: TxnRecord, job: MarkerJob },
}

/// Limits the coordinator applies (Kafka's broker configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLimits {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

impl Default for TxnLimits {
    fn default() -> TxnLimits {
        TxnLimits {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
        }
    }
}

/// The transactional ids of one `__transaction_state` partition.
#[derive(Debug, Default)]
pub struct TxnManager {
    limits: TxnLimits,
    txns: HashMap<String, TxnMetadata>,
}

/// The largest epoch before a producer id is exhausted (Kafka bumps to a new id past it).
const MAX_EPOCH: i16 = i16::MAX - 1;

impl TxnManager {
    pub fn new(limits: TxnLimits) -> TxnManager {
        TxnManager {
            limits,
            txns: HashMap::new(),
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnMetadata)> {
        self.txns.iter()
    }

    /// Applies a record that is now in the log (or replayed from it).
    pub fn apply(&mut self, record: &TxnRecord) {
        match &record.value {
            Some(value) => {
                self.txns
                    .insert(record.transactional_id.clone(), value.clone());
            }
            None => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// The transactions a load found half-ended: their markers must be written again.
    pub fn unfinished(&self) -> Vec<MarkerJob> {
        self.txns
            .iter()
            .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, m)| job(id, m, m.state == TxnState::PrepareCommit))
            .collect()
    }

    fn record(transactional_id: &str, value: TxnMetadata) -> TxnRecord {
        TxnRecord {
            transactional_id: transactional_id.to_string(),
            value: Some(value),
        }
    }

    /// InitProducerId with a transactional id. `expected`: the producer id and epoch a
    /// producer recovering from an error sends (KIP-360), else `None`. `allocate` hands out a
    /// new producer id.
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Result<InitOutcome, TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.limits.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let Some(current) = self.txns.get(transactional_id) else {
            if expected.is_some() {
                // A producer recovering an id this coordinator does not know.
                return Err(TxnError::UnknownProducerIdMapping);
            }
            let producer_id = allocate()?;
            let value = TxnMetadata {
                producer_id,
                epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: -1,
            };
            return Ok(InitOutcome::Ready {
                producer_id,
                epoch: 0,
                record: Self::record(transactional_id, value),
            });
        };
        if let Some((producer_id, epoch)) = expected {
            // KIP-360: only the current producer may bump its own epoch.
            if producer_id != current.producer_id || epoch != current.epoch {
                return Err(TxnError::ProducerFenced);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the previous producer: abort its transaction with a bumped epoch.
                let (producer_id, epoch) = bumped(current, allocate)?;
                let value = TxnMetadata {
                    producer_id,
                    epoch,
                    state: TxnState::PrepareAbort,
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                let job = job(transactional_id, &value, false);
                Ok(InitOutcome::AbortFirst {
                    record: Self::record(transactional_id, value),
                    job,
                })
            }
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                let (producer_id, epoch) = bumped(current, allocate)?;
                let value = TxnMetadata {
                    producer_id,
                    epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now_ms,
                    start_ms: -1,
                };
                Ok(InitOutcome::Ready {
                    producer_id,
                    epoch,
                    record: Self::record(transactional_id, value),
                })
            }
        }
    }

    /// The current producer's metadata, or the error a request from `(producer_id, epoch)`
    /// gets.
    fn current(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&TxnMetadata, TxnError> {
        let current = self
            .txns
            .get(transactional_id)
            .ok_or(TxnError::UnknownProducerIdMapping)?;
        if current.producer_id != producer_id {
            return Err(TxnError::UnknownProducerIdMapping);
        }
        if current.epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(current)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction goes on with these partitions
    /// too. `None` when nothing changes (all already in an ongoing transaction).
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<Option<TxnRecord>, TxnError> {
        let current = self.current(transactional_id, producer_id, epoch)?;
        if current.state.is_preparing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if current.state == TxnState::Dead {
            return Err(TxnError::InvalidTxnState);
        }
        let ongoing = current.state == TxnState::Ongoing;
        if ongoing && partitions.iter().all(|p| current.partitions.contains(p)) {
            return Ok(None);
        }
        let mut value = current.clone();
        if !ongoing {
            value.partitions.clear();
            value.start_ms = now_ms;
        }
        value.partitions.extend(partitions.iter().cloned());
        value.state = TxnState::Ongoing;
        value.last_update_ms = now_ms;
        Ok(Some(Self::record(transactional_id, value)))
    }

    /// Whether `partition` is in the ongoing transaction of `(producer_id, epoch)` (the check a
    /// transactional produce must pass, KIP-890).
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), TxnError> {
        let current = self.current(transactional_id, producer_id, epoch)?;
        if current.state == TxnState::Ongoing && current.partitions.contains(partition) {
            Ok(())
        } else {
            Err(TxnError::InvalidTxnState)
        }
    }

    /// EndTxn.
    pub fn end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndOutcome, TxnError> {
        let current = self.current(transactional_id, producer_id, epoch)?;
        match (current.state, commit) {
            (TxnState::Ongoing, _) => {
                let value = TxnMetadata {
                    state: if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    },
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                let job = job(transactional_id, &value, commit);
                Ok(EndOutcome::Prepare {
                    record: Self::record(transactional_id, value),
                    job,
                })
            }
            // A retry of an end already done (or under way) is answered as it was.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndOutcome::Done)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// The record that completes a transaction once its markers are written; `None` if the id
    /// moved on meanwhile (it cannot while preparing, but a reload may race).
    pub fn complete(&self, job: &MarkerJob, now_ms: i64) -> Option<TxnRecord> {
        let current = self.txns.get(&job.transactional_id)?;
        let preparing = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if current.state != preparing
            || current.producer_id != job.producer_id
            || current.epoch != job.epoch
        {
            return None;
        }
        let value = TxnMetadata {
            state: if job.commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
            ..current.clone()
        };
        Some(Self::record(&job.transactional_id, value))
    }

    /// Transactions open longer than their timeout, to be aborted with a bumped epoch (which
    /// fences the producer that left them open), and ids idle past
    /// `transactional.id.expiration.ms`, to be removed.
    pub fn expire(
        &self,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> (Vec<(TxnRecord, MarkerJob)>, Vec<TxnRecord>) {
        let mut aborts = Vec::new();
        let mut removals = Vec::new();
        for (id, m) in &self.txns {
            if m.state == TxnState::Ongoing
                && m.start_ms >= 0
                && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            {
                let Ok((producer_id, epoch)) = bumped(m, allocate) else {
                    continue;
                };
                let value = TxnMetadata {
                    producer_id,
                    epoch,
                    state: TxnState::PrepareAbort,
                    last_update_ms: now_ms,
                    ..m.clone()
                };
                let job = job(id, &value, false);
                aborts.push((Self::record(id, value), job));
            } else if matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now_ms.saturating_sub(m.last_update_ms) > self.limits.id_expiration_ms
            {
                removals.push(TxnRecord {
                    transactional_id: id.clone(),
                    value: None,
                });
            }
        }
        (aborts, removals)
    }
}

/// The producer id and epoch after a bump: epoch + 1, or a new producer id at epoch 0 once
/// the epoch is exhausted.
fn bumped(
    current: &TxnMetadata,
    allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
) -> Result<(i64, i16), TxnError> {
    if current.epoch >= MAX_EPOCH {
        Ok((allocate()?, 0))
    } else {
        Ok((current.producer_id, current.epoch + 1))
    }
}

fn job(transactional_id: &str, m: &TxnMetadata, commit: bool) -> MarkerJob {
    MarkerJob {
        transactional_id: transactional_id.to_string(),
        producer_id: m.producer_id,
        epoch: m.epoch,
        commit,
        partitions: m.partitions.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> Result<i64, TxnError> {
        let mut next = 1000;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn ready(outcome: Result<InitOutcome, TxnError>) -> (i64, i16, TxnRecord) {
        match outcome {
            Ok(InitOutcome::Ready {
                producer_id,
                epoch,
                record,
            }) => (producer_id, epoch, record),
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    fn p(topic: &str, partition: i32) -> TxnPartition {
        (topic.to_string(), partition)
    }

    /// A transaction from start to commit, a retry of the commit, then a second one aborted.
    #[test]
    fn a_transaction_commits_and_the_next_aborts() {
        let mut m = TxnManager::new(TxnLimits::default());
        let mut alloc = ids();
        let (pid, epoch, record) = ready(m.init_producer_id("t", 60_000, None, 0, &mut alloc));
        assert_eq!((pid, epoch), (1001, 0));
        m.apply(&record);
        let record = m
            .add_partitions("t", pid, 0, &[p("a", 0), p("a", 1)], 10)
            .expect("add")
            .expect("a change");
        m.apply(&record);
        assert_eq!(m.get("t").map(|t| t.state), Some(TxnState::Ongoing));
        assert_eq!(m.verify("t", pid, 0, &p("a", 1)), Ok(()));
        assert_eq!(
            m.verify("t", pid, 0, &p("b", 0)),
            Err(TxnError::InvalidTxnState)
        );
        // Adding what is already in is no change.
        assert_eq!(m.add_partitions("t", pid, 0, &[p("a", 0)], 11), Ok(None));
        let EndOutcome::Prepare { record, job } = m.end("t", pid, 0, true, 20).expect("end") else {
            panic!("expected a prepare");
        };
        m.apply(&record);
        assert_eq!(job.partitions, vec![p("a", 0), p("a", 1)]);
        assert!(job.commit);
        // While preparing: a retry is CONCURRENT_TRANSACTIONS, as is a new add.
        assert_eq!(
            m.end("t", pid, 0, true, 21),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            m.add_partitions("t", pid, 0, &[p("a", 2)], 21),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(m.unfinished(), vec![job.clone()]);
        let done = m.complete(&job, 30).expect("complete");
        m.apply(&done);
        assert_eq!(m.get("t").map(|t| t.state), Some(TxnState::CompleteCommit));
        assert!(m.unfinished().is_empty());
        assert_eq!(m.end("t", pid, 0, true, 31), Ok(EndOutcome::Done));
        assert_eq!(
            m.end("t", pid, 0, false, 31),
            Err(TxnError::InvalidTxnState)
        );
        // The next transaction starts afresh and aborts.
        let record = m
            .add_partitions("t", pid, 0, &[p("b", 0)], 40)
            .expect("add")
            .expect("change");
        m.apply(&record);
        assert_eq!(m.get("t").map(|t| t.start_ms), Some(40));
        let EndOutcome::Prepare { job, .. } = m.end("t", pid, 0, false, 50).expect("end") else {
            panic!("expected a prepare");
        };
        assert_eq!(
            (job.commit, job.partitions.clone()),
            (false, vec![p("b", 0)])
        );
    }

    /// A second producer with the same transactional id fences the first: an open transaction
    /// is aborted with the bumped epoch first, and the old epoch is refused after.
    #[test]
    fn a_new_producer_fences_the_old_one() {
        let mut m = TxnManager::new(TxnLimits::default());
        let mut alloc = ids();
        let (pid, _, record) = ready(m.init_producer_id("t", 60_000, None, 0, &mut alloc));
        m.apply(&record);
        let record = m
            .add_partitions("t", pid, 0, &[p("a", 0)], 1)
            .expect("add")
            .expect("change");
        m.apply(&record);
        let InitOutcome::AbortFirst { record, job } = m
            .init_producer_id("t", 60_000, None, 2, &mut alloc)
            .expect("init")
        else {
            panic!("expected an abort first");
        };
        assert_eq!((job.epoch, job.commit), (1, false));
        m.apply(&record);
        assert_eq!(
            m.init_producer_id("t", 60_000, None, 3, &mut alloc),
            Err(TxnError::ConcurrentTransactions)
        );
        m.apply(&m.complete(&job, 4).expect("complete"));
        let (pid2, epoch2, record) = ready(m.init_producer_id("t", 60_000, None, 5, &mut alloc));
        assert_eq!((pid2, epoch2), (pid, 2));
        m.apply(&record);
        assert_eq!(
            m.add_partitions("t", pid, 0, &[p("a", 0)], 6),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(m.end("t", pid, 1, true, 6), Err(TxnError::ProducerFenced));
        assert_eq!(
            m.end("t", 77, 2, true, 6),
            Err(TxnError::UnknownProducerIdMapping)
        );
        // KIP-360: the current producer may bump its own epoch; another may not.
        assert_eq!(
            m.init_producer_id("t", 60_000, Some((pid, 1)), 7, &mut alloc),
            Err(TxnError::ProducerFenced)
        );
        let (_, epoch3, _) = ready(m.init_producer_id("t", 60_000, Some((pid, 2)), 7, &mut alloc));
        assert_eq!(epoch3, 3);
    }

    #[test]
    fn timeouts_and_exhausted_epochs() {
        let mut m = TxnManager::new(TxnLimits {
            max_timeout_ms: 1_000,
            id_expiration_ms: 10_000,
        });
        let mut alloc = ids();
        assert_eq!(
            m.init_producer_id("t", 1_001, None, 0, &mut alloc),
            Err(TxnError::InvalidTransactionTimeout)
        );
        let (pid, _, record) = ready(m.init_producer_id("t", 500, None, 0, &mut alloc));
        m.apply(&record);
        m.apply(
            &m.add_partitions("t", pid, 0, &[p("a", 0)], 100)
                .expect("add")
                .expect("change"),
        );
        let (aborts, removals) = m.expire(600, &mut alloc);
        assert!(aborts.is_empty() && removals.is_empty());
        let (aborts, _) = m.expire(601, &mut alloc);
        let [(record, job)] = aborts.as_slice() else {
            panic!("expected one abort, got {aborts:?}");
        };
        assert_eq!((job.epoch, job.commit), (1, false));
        m.apply(record);
        m.apply(&m.complete(job, 700).expect("complete"));
        // Idle past transactional.id.expiration.ms: removed.
        let (_, removals) = m.expire(10_701, &mut alloc);
        assert_eq!(removals.len(), 1);
        m.apply(&removals[0]);
        assert!(m.get("t").is_none());
        // An exhausted epoch moves to a new producer id.
        let mut record = ready(m.init_producer_id("u", 500, None, 0, &mut alloc)).2;
        if let Some(v) = record.value.as_mut() {
            v.epoch = MAX_EPOCH;
        }
        m.apply(&record);
        let (pid, epoch, _) = ready(m.init_producer_id("u", 500, None, 1, &mut alloc));
        assert_eq!(epoch, 0);
        assert_ne!(pid, record.value.map_or(0, |v| v.producer_id));
    }
}
