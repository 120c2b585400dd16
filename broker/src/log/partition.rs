//! One partition's log: an ordered set of segments, the producer state of its idempotent
//! producers, and the offsets that matter to clients.
//!
//! Invariants (checked with `debug_assert!`): `log_start_offset <= high_watermark ==
//! log_end_offset`; offsets are dense and increasing across segments; only the last segment
//! (the active one) is appended to. All file work here is short page-cache I/O under the
//! partition's lock; fsync happens in the flusher thread, never here.
//!
//! Here: open and recovery, append (records and markers), reads. Retention and DeleteRecords are
//! in `partition/retention.rs`, the cleaner's side in `partition/cleaning.rs`, the flusher's in
//! `partition/flushing.rs`; tests in `partition_tests.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
use thiserror::Error;
use tokio::sync::watch;

use super::batch::{self, BatchError, BatchHeader};
use super::marker::Marker;
use super::producer_state::{AbortedTxn, ProducerStateManager, SequenceCheck, SequenceError};
use super::segment::{Segment, SegmentSlice, WriteError};
use crate::config::LogConfig;

mod cleaning;
mod flushing;
mod retention;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[derive(Debug, Error)]
pub enum AppendError {
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] BatchError),
    #[error("a produce record set must hold exactly one batch")]
    NotOneBatch,
    /// Kafka (`UnifiedLog.analyzeAndValidateRecords`): a client's batch starts at offset 0.
    #[error("a produced batch must have base offset 0")]
    NonZeroBaseOffset,
    /// Kafka (`LogValidator.validateBatch`): a batch with a producer id needs a sequence.
    #[error("a batch with a producer id must carry a base sequence >= 0")]
    InvalidSequence,
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: i32 },
    #[error("control batches cannot be produced by clients")]
    ControlBatch,
    /// `records`: the batch-relative indexes of the keyless records (Kafka reports each one).
    #[error("a compacted topic cannot accept a record without a key")]
    NoKey { records: Vec<i32> },
    /// Records whose CreateTime is outside `message.timestamp.before/after.max.ms` (with
    /// keyless records of a compacted topic, if any): batch index and Kafka's message.
    #[error("records with timestamps out of range")]
    InvalidTimestamp { records: Vec<(i32, String)> },
    /// The records inflate past `records::decompressed_limit`.
    #[error("the batch's records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: u64 },
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("the partition was deleted")]
    Deleted,
    /// A write or fsync failed in a way that leaves the log's durable state unknown, or
    /// recovery found corruption: the partition takes no more appends until a restart.
    #[error("the partition is offline: {0}")]
    Offline(String),
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("the partition was deleted")]
    Deleted,
    #[error("the partition is offline: {0}")]
    Offline(String),
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Error)]
pub enum DeleteRecordsError {
    /// The topic's `cleanup.policy` lacks `delete` (Kafka: "can not be deleted due to the
    /// configured policy").
    #[error("records of a topic without cleanup.policy=delete cannot be deleted")]
    PolicyViolation,
    #[error("offset {offset} is not within the log (high watermark {high_watermark})")]
    OffsetOutOfRange { offset: i64, high_watermark: i64 },
    #[error("the partition was deleted")]
    Deleted,
    #[error("the partition is offline: {0}")]
    Offline(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The outcome of an append, as the producer will be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    /// One past the last offset written; what acks=-1 waits to be flushed.
    pub next_offset: i64,
    pub log_start_offset: i64,
    /// The flush-by-count policy (`flush.messages`) asks for a flush now.
    pub flush_due: bool,
    /// acks=-1 must wait for the fsync (`strom.acks.all.fsync`).
    pub fsync_acks_all: bool,
    /// The append time stamped on the batch (LogAppendTime topics), else -1.
    pub log_append_time_ms: i64,
}

#[derive(Debug)]
struct LogState {
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    producers: ProducerStateManager,
    config: Arc<LogConfig>,
    /// Every offset below this is on stable storage.
    flushed_offset: i64,
    /// Rolled segments whose data has not been fsynced yet.
    unflushed_files: Vec<Arc<File>>,
    /// A segment file was created: the directory entry needs an fsync.
    dir_needs_sync: bool,
    messages_since_flush: i64,
    /// When the oldest unflushed append happened (`flush.ms`); `None` while all is flushed.
    dirty_since_ms: Option<i64>,
    deleted: bool,
    /// Why the partition is offline (a failed fsync, a write that could not be undone,
    /// corruption found at open); `None` while it serves.
    offline: Option<String>,
    /// Closed segments below this base offset were compacted by the last cleaner pass.
    cleaned_up_to: i64,
}

/// What the flusher must sync to make every offset below `up_to` durable.
#[derive(Debug)]
pub struct FlushWork {
    pub files: Vec<Arc<File>>,
    pub dir: Option<PathBuf>,
    pub up_to: i64,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub topic_partition: TopicPartition,
    dir: PathBuf,
    state: Mutex<LogState>,
    /// Carries the log end offset; long-polling fetches subscribe to it.
    appended: watch::Sender<i64>,
}

/// Offsets of a partition at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, else the high watermark: where
    /// read_committed consumers stop.
    pub last_stable_offset: i64,
}

impl PartitionLog {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the segment map half-updated in a way
        // that matters more than losing the partition entirely, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens (or creates) the partition directory and recovers its segments.
    ///
    /// Segments holding data at or above `recovery_point` (the offset below which everything
    /// was fsynced; `i64::MAX` after a clean shutdown) are CRC-checked. Damage is judged by
    /// where it starts:
    /// - at or above the recovery point it is a torn tail left by a crash, which never held an
    ///   acknowledged acks=all record: the log is cut there and later segments removed, as
    ///   Kafka's recovery does;
    /// - below it, the data was on stable storage, so the damage is corruption: nothing is
    ///   cut or deleted, and the partition opens offline (`KAFKA_STORAGE_ERROR`) with an error
    ///   naming the file, the byte position and the offsets affected.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: Arc<LogConfig>,
        recovery_point: i64,
        now_ms: i64,
    ) -> io::Result<PartitionLog> {
        std::fs::create_dir_all(dir)?;
        let mut base_offsets = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    base_offsets.push(base);
                }
            } else if name.ends_with(".swap") || name.ends_with(".cleaned") {
                std::fs::remove_file(entry.path())?;
            }
        }
        base_offsets.sort_unstable();
        let mut producers = ProducerStateManager::default();
        let mut segments = BTreeMap::new();
        let mut offline: Option<String> = None;
        // Set when a torn tail ends the log: later segments are removed.
        let mut torn = false;
        for (i, &base) in base_offsets.iter().enumerate() {
            if torn {
                // Everything after a torn tail is unreachable and was never fsynced (it lies
                // above the recovery point): remove it, as Kafka does.
                tracing::warn!(%topic_partition, base, "deleting a segment after a torn tail");
                for ext in ["log", "index", "timeindex"] {
                    let _ = std::fs::remove_file(
                        dir.join(format!("{}.{ext}", super::segment::file_stem(base))),
                    );
                }
                continue;
            }
            let next_base = base_offsets.get(i + 1).copied();
            let validate = next_base.is_none_or(|n| n > recovery_point);
            let (segment, recovered) = Segment::open(
                dir,
                base,
                validate,
                config.index_interval_bytes,
                &mut producers,
                now_ms,
            )?;
            let file = dir.join(format!("{}.log", super::segment::file_stem(base)));
            let mut damage: Option<String> = None;
            if let Some(reason) = recovered.reason {
                damage = Some(format!(
                    "{} holds {reason} at byte {} ({} bytes from there to the end of the file \
                     not readable)",
                    file.display(),
                    segment.size,
                    recovered.invalid_bytes
                ));
            }
            if let Some(next) = next_base {
                if damage.is_none() && segment.next_offset > next {
                    damage = Some(format!(
                        "{} holds offsets up to {}, past the next segment's base {next}",
                        file.display(),
                        segment.next_offset - 1
                    ));
                }
                // A segment is only rolled once it holds data, so an empty one before another
                // lost its data (acks=-1 data is never among it: the flusher syncs rolled
                // segments before the active one).
                if damage.is_none() && segment.is_empty() {
                    damage = Some(format!(
                        "{} is empty but another segment follows it",
                        file.display()
                    ));
                }
                // A roll starts the next segment at the log end offset, so offsets run on from
                // one segment to the next; a gap above the recovery point means a crash lost
                // unsynced batches there. Compaction leaves gaps of its own (also in a topic
                // compacted once and `delete` now), so a compacted log's gaps, and any below
                // the recovery point, are accepted.
                if damage.is_none()
                    && !config.compact
                    && segment.next_offset < next
                    && segment.next_offset >= recovery_point
                {
                    damage = Some(format!(
                        "{} ends at offset {} but the next segment starts at {next}",
                        file.display(),
                        segment.next_offset
                    ));
                }
            }
            if let Some(damage) = damage {
                // Where the readable data of this segment ends; everything from there on is
                // what the damage costs.
                let damaged_from = segment.next_offset;
                // The newest segment ending in a partial batch is what a torn write leaves, and
                // cutting it loses nothing that is still readable; below the recovery point it
                // is still cut (the bytes are gone either way), loudly.
                let partial_tail = next_base.is_none()
                    && matches!(
                        recovered.reason,
                        Some(super::segment::PARTIAL_BATCH | super::segment::PARTIAL_HEADER)
                    );
                if partial_tail && damaged_from < recovery_point {
                    tracing::error!(
                        %topic_partition,
                        recovery_point,
                        log_end_offset = damaged_from,
                        "{damage}; the newest segment ends in a partial batch although offsets \
                         up to the recovery point were fsynced: cut there, fsynced offsets from \
                         {damaged_from} are lost"
                    );
                }
                if damaged_from >= recovery_point || partial_tail {
                    tracing::warn!(
                        %topic_partition,
                        recovery_point,
                        log_end_offset = damaged_from,
                        "{damage}; above the recovery point this is a torn tail from a crash: \
                         the log ends here"
                    );
                    if recovered.invalid_bytes > 0 {
                        segment.truncate_file()?;
                    }
                    torn = true;
                } else {
                    let message = format!(
                        "{damage}; offsets from {damaged_from} on were fsynced (recovery point \
                         {recovery_point}), so this is corruption, not a torn write: the \
                         partition stays offline and nothing was deleted. Move the damaged \
                         segment and every later one out of the directory to accept the loss \
                         of those offsets, then restart"
                    );
                    tracing::error!(%topic_partition, "{message}");
                    offline = Some(message);
                    segments.insert(base, segment);
                    break;
                }
            }
            segments.insert(base, segment);
        }
        let last = segments.keys().next_back().copied();
        for (base, segment) in segments.iter_mut() {
            if Some(*base) != last || offline.is_some() {
                segment.seal();
            }
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now_ms)?);
        }
        debug_assert!(offline.is_some() || segments.values().rev().skip(1).all(|s| !s.is_empty()));
        let log_start_offset = segments.keys().next().copied().unwrap_or(0);
        let log_end_offset = segments
            .values()
            .next_back()
            .map_or(0, |s| s.next_offset.max(s.base_offset));
        if offline.is_none() && recovery_point != i64::MAX && recovery_point > log_end_offset {
            let message = format!(
                "the log ends at offset {log_end_offset} but its checkpoint says everything \
                 below {recovery_point} was fsynced: segment files were truncated or removed \
                 outside the broker. The partition stays offline so that offsets already \
                 handed out are not reused; remove its line from \
                 recovery-point-offset-checkpoint to accept the loss, then restart"
            );
            tracing::error!(%topic_partition, "{message}");
            offline = Some(message);
        }
        Ok(PartitionLog {
            topic_partition,
            dir: dir.to_path_buf(),
            state: Mutex::new(LogState {
                segments,
                log_start_offset,
                log_end_offset,
                producers,
                config,
                flushed_offset: log_end_offset,
                unflushed_files: Vec::new(),
                dir_needs_sync: true,
                messages_since_flush: 0,
                dirty_since_ms: None,
                deleted: false,
                offline,
                cleaned_up_to: 0,
            }),
            appended: watch::Sender::new(log_end_offset),
        })
    }

    pub fn offsets(&self) -> Offsets {
        let state = self.lock();
        Offsets {
            log_start_offset: state.log_start_offset,
            high_watermark: state.log_end_offset,
            last_stable_offset: state
                .producers
                .first_unstable_offset()
                .map_or(state.log_end_offset, |first| {
                    first.min(state.log_end_offset)
                }),
        }
    }

    /// A receiver that changes on every append (and when the log is deleted).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.appended.subscribe()
    }

    pub fn set_config(&self, config: Arc<LogConfig>) {
        self.lock().config = config;
    }

    /// Validates a produced record set and appends it, assigning offsets. The bytes are
    /// stored as sent except for the base offset and partition leader epoch. As in Kafka
    /// (produce v3+), the set must hold exactly one batch.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, AppendError> {
        if BatchHeader::parse(records).is_ok_and(|h| h.size < records.len()) {
            return Err(AppendError::NotOneBatch);
        }
        let sent = batch::validate(records)?;
        let mut state = self.lock();
        let mut rewritten = None;
        if state.config.rewrites_batches()
            || sent.max_timestamp_unset()
            || state.config.checks_timestamps()
        {
            // Decoding for the key check, recompression, LogAppendTime stamping and a missing
            // max timestamp happen outside the lock; topics and batches that need none of it
            // keep one lock round trip.
            let config = state.config.clone();
            drop(state);
            rewritten = prepare_for_topic(records, &config, now_ms, sent.max_timestamp_unset())?;
            state = self.lock();
        }
        // Only a rewritten batch is validated again.
        let (records, header) = match &rewritten {
            Some(bytes) => (bytes.as_slice(), batch::validate(bytes)?),
            None => (records, sent),
        };
        if state.deleted {
            return Err(AppendError::Deleted);
        }
        if let Some(reason) = &state.offline {
            return Err(AppendError::Offline(reason.clone()));
        }
        let config = state.config.clone();
        if header.size > config.max_message_bytes.max(0) as usize {
            return Err(AppendError::TooLarge {
                size: header.size,
                max: config.max_message_bytes,
            });
        }
        if header.is_control() {
            return Err(AppendError::ControlBatch);
        }
        let mut info = AppendInfo {
            base_offset: state.log_end_offset,
            next_offset: state.log_end_offset,
            log_start_offset: state.log_start_offset,
            flush_due: false,
            fsync_acks_all: config.fsync_acks_all,
            log_append_time_ms: if config.log_append_time { now_ms } else { -1 },
        };
        if let SequenceCheck::Duplicate { first_offset, .. } = state.producers.check(&header)? {
            // A retry of a batch already in the log: its original offset, nothing written.
            info.base_offset = first_offset;
            return Ok(info);
        }
        self.write(state, header, records, info, now_ms, None)
    }

    /// Appends the marker that ends `producer_id`'s transaction here (written by the
    /// transaction coordinator, never by a producer). A marker for an epoch older than the
    /// producer's is refused.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let bytes = super::marker::encode(producer_id, epoch, marker, now_ms)
            .ok_or(AppendError::Corrupt(BatchError::MalformedRecords))?;
        let header = batch::validate(&bytes)?;
        let state = self.lock();
        if state.deleted {
            return Err(AppendError::Deleted);
        }
        if let Some(reason) = &state.offline {
            return Err(AppendError::Offline(reason.clone()));
        }
        state
            .producers
            .check_marker(producer_id, epoch, marker.coordinator_epoch)?;
        let info = AppendInfo {
            base_offset: state.log_end_offset,
            next_offset: state.log_end_offset,
            log_start_offset: state.log_start_offset,
            flush_due: false,
            fsync_acks_all: state.config.fsync_acks_all,
            log_append_time_ms: -1,
        };
        self.write(state, header, &bytes, info, now_ms, Some(marker))
    }

    /// Writes a checked batch at the log end and records it (`marker`: what a control batch
    /// says).
    fn write(
        &self,
        mut state: MutexGuard<'_, LogState>,
        mut header: BatchHeader,
        records: &[u8],
        mut info: AppendInfo,
        now_ms: i64,
        marker: Option<Marker>,
    ) -> Result<AppendInfo, AppendError> {
        let config = state.config.clone();
        header.base_offset = state.log_end_offset;
        self.maybe_roll(&mut state, &header, now_ms)?;
        let active = state
            .segments
            .values_mut()
            .next_back()
            .ok_or_else(|| io::Error::other("partition has no segment"))?;
        match active.append(&header, records, config.index_interval_bytes) {
            Ok(()) => {}
            // Nothing of the batch stayed: the log is as it was, offsets included.
            Err(WriteError::RolledBack(e)) => return Err(AppendError::Io(e)),
            Err(e @ WriteError::Damaged { .. }) => {
                let reason = format!("an append could not be undone: {e}");
                tracing::error!(partition = %self.topic_partition, "{reason}; partition offline until a restart recovers it");
                state.offline = Some(reason.clone());
                return Err(AppendError::Offline(reason));
            }
        }
        state.log_end_offset = header.last_offset() + 1;
        match marker {
            Some(marker) => {
                state
                    .producers
                    .record_marker(&header, marker.commit, marker.coordinator_epoch)
            }
            None => state.producers.record(&header),
        }
        state.messages_since_flush += i64::from(header.record_count);
        state.dirty_since_ms.get_or_insert(now_ms);
        debug_assert!(state.log_start_offset <= state.log_end_offset);
        info.next_offset = state.log_end_offset;
        info.flush_due = state.messages_since_flush >= config.flush_messages;
        drop(state);
        self.appended.send_replace(info.next_offset);
        Ok(info)
    }

    fn maybe_roll(&self, state: &mut LogState, next: &BatchHeader, now_ms: i64) -> io::Result<()> {
        let config = state.config.clone();
        let Some(active) = state.segments.values_mut().next_back() else {
            return Ok(());
        };
        let full = active.size + next.size as u64 > config.segment_bytes;
        let old = now_ms - active.created_ms >= config.segment_ms;
        let offset_overflow = next.last_offset() - active.base_offset > i64::from(i32::MAX);
        if active.is_empty() || !(full || old || offset_overflow) {
            return Ok(());
        }
        let segment = Segment::create(&self.dir, next.base_offset, now_ms)?;
        active.seal();
        let rolled = active.log_file();
        state.unflushed_files.push(rolled);
        state.dir_needs_sync = true;
        state.segments.insert(next.base_offset, segment);
        Ok(())
    }

    /// The bytes a fetch at `offset` may read, up to the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>, ReadError> {
        let slices = {
            let state = self.lock();
            if state.deleted {
                return Err(ReadError::Deleted);
            }
            if let Some(reason) = &state.offline {
                return Err(ReadError::Offline(reason.clone()));
            }
            if offset < state.log_start_offset || offset > state.log_end_offset {
                return Err(ReadError::OffsetOutOfRange {
                    offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset: state.log_end_offset,
                });
            }
            if offset == state.log_end_offset {
                return Ok(None);
            }
            // The segment holding `offset`, and the following ones in case it ends early.
            let first = state
                .segments
                .range(..=offset)
                .next_back()
                .map_or(state.log_start_offset, |(b, _)| *b);
            state
                .segments
                .range(first..)
                .take(2)
                .map(|(_, s)| {
                    s.slice_from(if s.base_offset == first {
                        s.position_for(offset)
                    } else {
                        0
                    })
                })
                .collect::<Vec<_>>()
        };
        for slice in slices {
            if let Some(bytes) = slice.read_batches(offset, max_bytes)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// A read_committed fetch at `offset`: as `read`, but only the batches below the last
    /// stable offset, with the aborted transactions that have records among them.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Option<Bytes>, Vec<AbortedTxn>), ReadError> {
        // Taken before the read: the bytes read may pass it, never fall short of it.
        let last_stable_offset = self.offsets().last_stable_offset;
        let Some(bytes) = self.read(offset, max_bytes)? else {
            return Ok((None, Vec::new()));
        };
        let mut kept = 0;
        let mut end_offset = offset;
        for (header, start) in batch::headers(&bytes) {
            if header.last_offset() >= last_stable_offset {
                break;
            }
            kept = start + header.size;
            end_offset = header.last_offset() + 1;
        }
        if kept == 0 {
            return Ok((None, Vec::new()));
        }
        let aborted = self.lock().producers.aborted_between(offset, end_offset);
        Ok((Some(bytes.slice(..kept)), aborted))
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.lock().producers.open_transaction(producer_id)
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is at least
    /// `timestamp`, with that record's timestamp; `None` if there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ReadError> {
        let (slices, limit): (Vec<SegmentSlice>, u64) = {
            let state = self.lock();
            let slices = state
                .segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp)
                .map(|s| s.slice_from(s.position_for_timestamp(timestamp)))
                .collect();
            (
                slices,
                super::records::decompressed_limit(state.config.max_message_bytes),
            )
        };
        let log_start_offset = self.offsets().log_start_offset;
        for slice in slices {
            let mut found = None;
            slice.scan_headers(|header, position| {
                if header.max_timestamp < timestamp || header.last_offset() < log_start_offset {
                    return Ok(true);
                }
                let batch_start = (
                    header.base_offset.max(log_start_offset),
                    header.max_timestamp,
                );
                if header.is_log_append_time() {
                    // Every record of a LogAppendTime batch has the batch's append time (the
                    // records still carry the producer's CreateTime, which Kafka ignores too).
                    found = Some(batch_start);
                    return Ok(false);
                }
                let whole = super::segment::read_at(&slice.reader, position, header.size)?;
                found =
                    first_record_at_or_after(&whole, header, timestamp, log_start_offset, limit)
                        .or(Some(batch_start));
                Ok(false)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the offset of the record with the largest
    /// timestamp, the earliest such if several share it.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, ReadError> {
        let max_timestamp = self.lock().segments.values().map(|s| s.max_timestamp).max();
        match max_timestamp {
            Some(t) if t >= 0 => self.offset_for_timestamp(t),
            _ => Ok(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Arc<LogConfig> {
        self.lock().config.clone()
    }

    /// Bytes on disk in the partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    /// The idempotent producers this partition remembers.
    pub fn producers(&self) -> Vec<super::producer_state::ProducerSummary> {
        self.lock().producers.summaries()
    }

    /// Why the partition is offline, if it is.
    pub fn offline_reason(&self) -> Option<String> {
        self.lock().offline.clone()
    }

    /// Marks the log deleted: appends and reads from late requests fail, waiting fetches wake
    /// up. Returns the segments so the caller drops them, and so closes their files, on a
    /// blocking thread: the last close of a deleted file frees its blocks, which can take long.
    pub fn mark_deleted(&self) -> Vec<Segment> {
        let segments = {
            let mut state = self.lock();
            state.deleted = true;
            std::mem::take(&mut state.segments)
        };
        self.appended.send_modify(|_| {});
        segments.into_values().collect()
    }

    /// Test hook: see `Segment::make_files_read_only`.
    #[cfg(test)]
    pub(crate) fn make_active_segment_read_only(&self, log_too: bool) -> io::Result<()> {
        let mut state = self.lock();
        match state.segments.values_mut().next_back() {
            Some(active) => active.make_files_read_only(log_too),
            None => Ok(()),
        }
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

/// Checks a produced batch against the topic and returns it as the topic stores it, when that
/// differs from what the producer sent. Following Kafka's `LogValidator`: a compacted topic
/// refuses keyless records; CreateTime timestamps must lie within
/// `message.timestamp.before.max.ms` / `after.max.ms` of `now_ms` (a record with no
/// timestamp, -1, is not checked), and one bad record rejects the whole batch, naming every bad
/// record. The batch is recompressed to the topic's `compression.type` (producer fields,
/// offsets and timestamps kept), and stamped with the append time under
/// `message.timestamp.type=LogAppendTime`. `fix_max_timestamp`: the producer left the batch's
/// max timestamp unset, so it is computed from the records.
///
/// Records are streamed with a bound on decompressed bytes (`records::decompressed_limit`);
/// only recompression holds them all in memory, within the same bound.
fn prepare_for_topic(
    batch: &[u8],
    config: &LogConfig,
    now_ms: i64,
    fix_max_timestamp: bool,
) -> Result<Option<Vec<u8>>, AppendError> {
    use super::records::{self, RecordsError};
    let records_error = |e: RecordsError| match e {
        RecordsError::TooLarge { limit } => AppendError::DecompressedTooLarge { limit },
        RecordsError::Malformed => AppendError::Corrupt(BatchError::MalformedRecords),
    };
    let header = BatchHeader::parse(batch)?;
    let limit = records::decompressed_limit(config.max_message_bytes);
    // (codec, the attribute bits a batch in that codec carries)
    let target = match config.compression.as_deref() {
        None => None,
        Some("gzip") => Some((Compression::Gzip, 1)),
        Some("snappy") => Some((Compression::Snappy, 2)),
        Some("lz4") => Some((Compression::Lz4, 3)),
        Some("zstd") => Some((Compression::Zstd, 4)),
        Some(_) => Some((Compression::None, 0)),
    };
    let check_timestamps = config.checks_timestamps();
    let mut max_timestamp = None;
    if config.compact || check_timestamps || fix_max_timestamp {
        let (before_max_ms, after_max_ms) = config.timestamp_bounds_ms();
        let mut keyless: Vec<(i32, String)> = Vec::new();
        let mut out_of_range: Vec<(i32, String)> = Vec::new();
        records::walk(batch, &header, limit, |record| {
            if config.compact && !record.has_key {
                keyless.push((
                    record.index,
                    "Compacted topic cannot accept message without key.".to_string(),
                ));
            }
            let ts = record.timestamp;
            if check_timestamps && ts != -1 {
                if ts.saturating_sub(now_ms) > after_max_ms {
                    out_of_range.push((
                        record.index,
                        format!(
                            "Timestamp {ts} of message with offset {} is ahead of the server's \
                             time. {ts} is after {}",
                            record.offset_delta,
                            now_ms.saturating_add(after_max_ms)
                        ),
                    ));
                } else if now_ms.saturating_sub(ts) > before_max_ms {
                    out_of_range.push((
                        record.index,
                        format!(
                            "Timestamp {ts} of message with offset {} is out of range. The \
                             timestamp should be within [{}, {}]",
                            record.offset_delta,
                            now_ms.saturating_sub(before_max_ms),
                            now_ms.saturating_add(after_max_ms)
                        ),
                    ));
                }
            }
            max_timestamp = max_timestamp.max(Some(ts));
            true
        })
        .map_err(records_error)?;
        if !out_of_range.is_empty() {
            // Kafka reports every bad record and lets INVALID_TIMESTAMP win over keyless ones.
            out_of_range.extend(keyless);
            out_of_range.sort_by_key(|(index, _)| *index);
            return Err(AppendError::InvalidTimestamp {
                records: out_of_range,
            });
        }
        if !keyless.is_empty() {
            return Err(AppendError::NoKey {
                records: keyless.into_iter().map(|(index, _)| index).collect(),
            });
        }
    }
    let mut out: Option<Vec<u8>> = None;
    if let Some((target, _)) = target.filter(|(_, bits)| *bits != header.compression()) {
        let set = records::decode(batch, limit).map_err(records_error)?;
        let mut encoded = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut encoded,
            &set.records,
            &RecordEncodeOptions {
                version: 2,
                compression: target,
            },
        )
        .map_err(|_| AppendError::Corrupt(BatchError::MalformedRecords))?;
        out = Some(encoded.to_vec());
    }
    if fix_max_timestamp {
        if let Some(max) = max_timestamp {
            let mut bytes = out.unwrap_or_else(|| batch.to_vec());
            batch::set_max_timestamp(&mut bytes, max);
            out = Some(bytes);
        }
    }
    if config.log_append_time {
        let mut bytes = out.unwrap_or_else(|| batch.to_vec());
        batch::set_log_append_time(&mut bytes, now_ms);
        out = Some(bytes);
    }
    Ok(out)
}

/// Finds the first record of one stored batch with a timestamp at least `timestamp`,
/// streaming its records (decompressing at most `limit` bytes, holding none of them);
/// `None` when the walk fails or finds none, and the caller answers the batch's start.
fn first_record_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    timestamp: i64,
    log_start_offset: i64,
    limit: u64,
) -> Option<(i64, i64)> {
    let mut found = None;
    let walked = super::records::walk(batch, header, limit, |record| {
        let offset = header.base_offset + i64::from(record.offset_delta);
        if record.timestamp >= timestamp && offset >= log_start_offset {
            found = Some((offset, record.timestamp));
            return false;
        }
        true
    });
    if walked.is_err() && found.is_none() {
        return None;
    }
    found
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
