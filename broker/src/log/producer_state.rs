//! Per-partition state of idempotent producers, mirroring Kafka's `ProducerStateManager`:
//! for each producer id the current epoch and the metadata of its last five batches, so that a
//! retried batch is recognised and acknowledged with its original offset instead of being
//! written twice, and a gap in sequence numbers is refused.
//!
//! Transactions (KIP-98) add, per producer, the first offset of its ongoing transaction; per
//! partition, the ongoing transactions by first offset (the smallest is the first unstable
//! offset, which bounds the last stable offset) and the aborted transactions that
//! read_committed fetches are told about (Kafka's `.txnindex`).
//!
//! The state is rebuilt from the batch headers (and the markers) in the log when a partition is
//! opened, so it survives restarts and crashes without a separate snapshot file.

use std::collections::{BTreeMap, HashMap, VecDeque};

use thiserror::Error;

use crate::log::batch::{increment_sequence, BatchHeader};

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, which is also the producer's max in-flight requests).
pub const BATCHES_RETAINED: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: expected sequence {expected}, got {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    /// A non-transactional batch from a producer whose transaction is open here (Kafka:
    /// "Expected transactional write from producer", INVALID_TXN_STATE).
    #[error("producer {producer_id} has a transaction open at offset {first_offset}")]
    TransactionOpen { producer_id: i64, first_offset: i64 },
    /// A marker from a coordinator older than the one that wrote the producer's last marker
    /// here (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error("producer {producer_id}: a marker of coordinator epoch {coordinator_epoch} after one of epoch {current}")]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset_delta: i32,
    max_timestamp: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// The first offset of the producer's transaction open in this partition.
    txn_first_offset: Option<i64>,
    /// The coordinator epoch of the last marker written for the producer here (-1: none).
    coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }
}

/// A transaction whose abort marker is in the log: read_committed consumers skip its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// What the check of an incoming batch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log: answer with the original first offset, do not append.
    Duplicate {
        first_offset: i64,
        max_timestamp: i64,
    },
}

#[derive(Debug, Default, Clone)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in the order of their markers (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
}

/// One idempotent producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch of the producer is remembered (only a marker).
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The coordinator epoch of the producer's last marker here, -1 if none.
    pub coordinator_epoch: i32,
    /// The first offset of the producer's transaction open here.
    pub txn_start_offset: Option<i64>,
}

impl ProducerStateManager {
    /// The producers this partition remembers, by id.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, entry)| {
                let last = entry.batches.back();
                ProducerSummary {
                    producer_id: *id,
                    epoch: entry.epoch,
                    last_sequence: last.map_or(-1, |b| b.last_sequence),
                    last_timestamp: last.map_or(-1, |b| b.max_timestamp),
                    coordinator_epoch: entry.coordinator_epoch,
                    txn_start_offset: entry.txn_first_offset,
                }
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The first offset of the oldest open transaction: nothing from here on is stable.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Whether `producer_id` has a transaction open here, and from which offset.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.producers.get(&producer_id)?.txn_first_offset
    }

    /// The aborted transactions with records in `[from, to)`, oldest first: what a
    /// read_committed fetch of that range is told (Kafka's `collectAbortedTransactions`).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Sorted by last offset: skip those ending before `from`.
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start_offset` (their records are gone).
    pub fn forget_below(&mut self, log_start_offset: i64) {
        let keep = self
            .aborted
            .partition_point(|t| t.last_offset < log_start_offset);
        self.aborted.drain(..keep);
    }

    /// Checks a marker the coordinator is about to write: a marker for an older epoch than the
    /// producer's is refused (a stale request), as is one from an older coordinator than the
    /// last marker's (a fenced coordinator).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            }),
            Some(entry) if coordinator_epoch < entry.coordinator_epoch => {
                Err(SequenceError::CoordinatorFenced {
                    producer_id,
                    coordinator_epoch,
                    current: entry.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a marker now in the log at `offset`: the producer's open transaction here ends,
    /// and an abort is remembered for read_committed fetches.
    pub fn record_marker(&mut self, batch: &BatchHeader, commit: bool, coordinator_epoch: i32) {
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        let Some(first_offset) = entry.txn_first_offset.take() else {
            // The partition was added to the transaction but nothing was written to it.
            return;
        };
        self.ongoing.remove(&first_offset);
        if !commit {
            self.aborted.push(AbortedTxn {
                producer_id: batch.producer_id,
                first_offset,
                last_offset: batch.base_offset,
            });
        }
    }

    /// Checks a batch from the network before it is appended.
    pub fn check(&self, batch: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if !batch.has_producer_id() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer: its state may have been removed with old segments (KIP-360),
            // so any sequence is accepted, as Kafka does.
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                epoch: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if let (false, Some(first_offset)) = (batch.is_transactional(), entry.txn_first_offset) {
            return Err(SequenceError::TransactionOpen {
                producer_id: batch.producer_id,
                first_offset,
            });
        }
        if batch.base_sequence < 0 {
            // Written by a coordinator (transactional offsets), never by a client (produce
            // refuses such batches): the epoch is checked, sequences are not, as Kafka checks
            // them for client appends only.
            return Ok(SequenceCheck::Append);
        }
        if batch.producer_epoch > entry.epoch {
            if batch.base_sequence != 0 {
                return Err(SequenceError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    expected: 0,
                    received: batch.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_sequence = batch.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == batch.base_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
                max_timestamp: dup.max_timestamp,
            });
        }
        if let Some(last) = entry.batches.back() {
            let expected = increment_sequence(last.last_sequence, 1);
            if batch.base_sequence != expected {
                return Err(SequenceError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    expected,
                    received: batch.base_sequence,
                });
            }
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that is now in the log (after `check`, or while replaying the log).
    pub fn record(&mut self, batch: &BatchHeader) {
        if !batch.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if batch.is_transactional() && !batch.is_control() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.base_offset);
            self.ongoing.insert(batch.base_offset, batch.producer_id);
        }
        if batch.base_sequence < 0 {
            // Transactional markers and non-idempotent batches with a producer id carry no
            // sequence.
            return;
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            first_offset: batch.base_offset,
            last_offset_delta: batch.last_offset_delta,
            max_timestamp: batch.max_timestamp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            size: 100,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 7,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    /// A coordinator's batch (no sequence) from a producer's new epoch: the epoch is checked,
    /// the missing sequence is not (the group coordinator's transactional offsets after a
    /// restarted producer bumped its epoch were refused before).
    #[test]
    fn coordinator_batches_are_checked_by_epoch_only() {
        let mut state = ProducerStateManager::default();
        let first = batch(4, 0, -1, 1, 0);
        assert_eq!(state.check(&first), Ok(SequenceCheck::Append));
        state.record(&first);
        assert_eq!(
            state.check(&batch(4, 1, -1, 1, 1)),
            Ok(SequenceCheck::Append)
        );
        state.record(&batch(4, 1, -1, 1, 1));
        assert!(matches!(
            state.check(&batch(4, 0, -1, 1, 2)),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut state = ProducerStateManager::default();
        let first = batch(1, 0, 0, 3, 0);
        assert_eq!(state.check(&first), Ok(SequenceCheck::Append));
        state.record(&first);
        let second = batch(1, 0, 3, 2, 3);
        assert_eq!(state.check(&second), Ok(SequenceCheck::Append));
        state.record(&second);
        // retry of the first batch
        assert_eq!(
            state.check(&batch(1, 0, 0, 3, -1)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 0,
                max_timestamp: 7
            })
        );
        // gap
        assert!(matches!(
            state.check(&batch(1, 0, 9, 1, -1)),
            Err(SequenceError::OutOfOrderSequence { expected: 5, .. })
        ));
        // stale epoch
        state.record(&batch(1, 2, 0, 1, 5));
        assert!(matches!(
            state.check(&batch(1, 1, 1, 1, -1)),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        // new epoch must start at 0
        assert!(state.check(&batch(1, 3, 4, 1, -1)).is_err());
        assert_eq!(
            state.check(&batch(1, 3, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_last_five_batches_are_remembered() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            state.record(&batch(9, 0, i, 1, i64::from(i)));
        }
        assert!(matches!(
            state.check(&batch(9, 0, 1, 1, -1)),
            Err(SequenceError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            state.check(&batch(9, 0, 3, 1, -1)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 3,
                ..
            })
        ));
    }
}
