//! One partition's log: an ordered set of segments, the producer state of its idempotent
//! producers, and the offsets that matter to clients.
//!
//! Invariants (checked with `debug_assert!`): `log_start_offset <= high_watermark ==
//! log_end_offset`; offsets are dense and increasing across segments; only the last segment
//! (the active one) is appended to. All file work here is short page-cache I/O under the
//! partition's lock; fsync happens in the flusher thread, never here.

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

    /// Deletes whole segments past `retention_ms` (by their largest timestamp) or beyond
    /// `retention_bytes`, oldest first, and advances the log start offset to the first segment
    /// left. As in Kafka (`UnifiedLog.deleteOldSegments`), the active segment is deleted too
    /// when it is due and holds data: a new empty one is rolled at the log end offset first,
    /// so the log end offset stays put and earliest = latest.
    pub fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        let doomed: Vec<Segment> = {
            let mut state = self.lock();
            if state.deleted || state.offline.is_some() {
                // An offline partition is left as found, for the operator.
                return Ok(0);
            }
            let config = state.config.clone();
            let mut total: i64 = state.segments.values().map(|s| s.size as i64).sum();
            let mut doomed_bases = Vec::new();
            for segment in state.segments.values() {
                if segment.is_empty() {
                    // Only the active segment can be empty.
                    break;
                }
                let newest = if segment.max_timestamp >= 0 {
                    segment.max_timestamp
                } else {
                    segment.created_ms
                };
                let expired = config.retention_ms >= 0 && now_ms - newest > config.retention_ms;
                let too_big = config.retention_bytes >= 0
                    && total - segment.size as i64 >= config.retention_bytes;
                if !(expired || too_big) {
                    break;
                }
                total -= segment.size as i64;
                doomed_bases.push(segment.base_offset);
            }
            if doomed_bases.len() == state.segments.len() {
                let log_end_offset = state.log_end_offset;
                let segment = Segment::create(&self.dir, log_end_offset, now_ms)?;
                if let Some(active) = state.segments.values_mut().next_back() {
                    active.seal();
                }
                state.dir_needs_sync = true;
                state.segments.insert(log_end_offset, segment);
            }
            let doomed: Vec<Segment> = doomed_bases
                .iter()
                .filter_map(|b| state.segments.remove(b))
                .collect();
            // Only deleting segments moves the start (to the new first segment): a head that
            // compaction thinned out keeps it.
            if !doomed.is_empty() {
                if let Some(first) = state.segments.keys().next().copied() {
                    state.log_start_offset = state.log_start_offset.max(first);
                }
                let start = state.log_start_offset;
                state.producers.forget_below(start);
            }
            doomed
        };
        for segment in &doomed {
            segment.delete_files()?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                partition = %self.topic_partition,
                segments = doomed.len(),
                log_start_offset = self.offsets().log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(doomed.len())
    }

    /// Puts back a log start offset recorded before a restart (DeleteRecords moves it inside
    /// a segment, which the segment files alone do not show).
    /// A checkpointed offset past the log end cannot be right (the checkpoint is damaged or
    /// from another log): it is ignored with a warning rather than hiding every record.
    pub fn restore_log_start_offset(&self, offset: i64) {
        let mut state = self.lock();
        if offset > state.log_end_offset {
            tracing::warn!(
                partition = %self.topic_partition,
                checkpoint = offset,
                log_end_offset = state.log_end_offset,
                "log-start-offset-checkpoint is past the end of the log; ignored"
            );
            return;
        }
        state.log_start_offset = state.log_start_offset.max(offset);
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high watermark) and
    /// deletes the segments wholly below it, never the active one. Returns the new log start
    /// offset (the low watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        let (doomed, low_watermark) = {
            let mut state = self.lock();
            if state.deleted {
                return Err(DeleteRecordsError::Deleted);
            }
            if let Some(reason) = &state.offline {
                return Err(DeleteRecordsError::Offline(reason.clone()));
            }
            if !state.config.delete {
                return Err(DeleteRecordsError::PolicyViolation);
            }
            let target = if offset == -1 {
                state.log_end_offset
            } else {
                offset
            };
            if target < 0 || target > state.log_end_offset {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    offset,
                    high_watermark: state.log_end_offset,
                });
            }
            state.log_start_offset = state.log_start_offset.max(target);
            let start = state.log_start_offset;
            state.producers.forget_below(start);
            let bases: Vec<i64> = state.segments.keys().copied().collect();
            let mut doomed = Vec::new();
            for pair in bases.windows(2) {
                // A segment ends where the next begins.
                if pair[1] <= state.log_start_offset {
                    if let Some(segment) = state.segments.remove(&pair[0]) {
                        doomed.push(segment);
                    }
                }
            }
            (doomed, state.log_start_offset)
        };
        for segment in &doomed {
            segment.delete_files()?;
        }
        tracing::info!(partition = %self.topic_partition, log_start_offset = low_watermark, segments = doomed.len(), "records deleted");
        Ok(low_watermark)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Arc<LogConfig> {
        self.lock().config.clone()
    }

    /// The closed segments the cleaner may compact now, oldest first, when the partition is
    /// due (see `LogConfig::cleaning_due`).
    pub fn cleanable_segments(&self, now_ms: i64) -> Option<super::segment::Cleanable> {
        let state = self.lock();
        if state.deleted || state.offline.is_some() || !state.config.compact {
            return None;
        }
        let config = state.config.clone();
        // Only what lies wholly below the first open transaction: every transactional batch
        // there is decided (committed or aborted), as Kafka's first uncleanable offset.
        let stable_end = state
            .producers
            .first_unstable_offset()
            .unwrap_or(state.log_end_offset);
        let segments: Vec<&Segment> = state.segments.values().collect();
        let candidates: Vec<super::segment::CleanableSegment> = segments
            .windows(2)
            .map(|w| w[0])
            .zip(segments.iter().skip(1).map(|next| next.base_offset))
            .take_while(|(s, next_base)| {
                now_ms.saturating_sub(s.max_timestamp) >= config.min_compaction_lag_ms
                    && *next_base <= stable_end
            })
            .map(|(s, _)| super::segment::CleanableSegment {
                base_offset: s.base_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
                slice: s.slice_from(0),
            })
            .collect();
        let total: u64 = candidates.iter().map(|s| s.size).sum();
        let dirty: u64 = candidates
            .iter()
            .filter(|s| s.base_offset >= state.cleaned_up_to)
            .map(|s| s.size)
            .sum();
        let end = candidates
            .last()
            .and_then(|last| state.segments.range(last.base_offset + 1..).next())
            .map_or(0, |(base, _)| *base);
        let first = candidates.first().map_or(0, |s| s.base_offset);
        let aborted = state.producers.aborted_between(first, end);
        config
            .cleaning_due(dirty, total)
            .then_some(super::segment::Cleanable {
                config,
                segments: candidates,
                aborted,
            })
    }

    /// Puts a cleaned segment in place of the one at `base_offset`, if that one is still there
    /// unchanged; `None` deletes the segment (nothing in it survived).
    pub fn install_cleaned(
        &self,
        base_offset: i64,
        expected_size: u64,
        cleaned: Option<PathBuf>,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<()> {
        // Reading and indexing the cleaned copy, and the directory fsync after the rename,
        // happen outside the partition lock: appends and reads of the partition (on reactor
        // threads) wait only for the rename. Until the directory fsync a crash may bring back
        // the uncleaned segment, which holds every record the cleaned one does.
        let prepared = match &cleaned {
            Some(path) => {
                match Segment::open_cleaned(
                    &self.dir,
                    base_offset,
                    path,
                    config.index_interval_bytes,
                    now_ms,
                ) {
                    Ok(segment) => Some((path.clone(), segment)),
                    Err(e) => {
                        let _ = std::fs::remove_file(path);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let mut state = self.lock();
        let unchanged = !state.deleted
            && state
                .segments
                .get(&base_offset)
                .is_some_and(|s| s.size == expected_size)
            && state.segments.keys().next_back() != Some(&base_offset);
        if !unchanged {
            if let Some(path) = cleaned {
                let _ = std::fs::remove_file(path);
            }
            return Ok(());
        }
        match prepared {
            Some((path, segment)) => {
                std::fs::rename(
                    &path,
                    self.dir
                        .join(format!("{}.log", super::segment::file_stem(base_offset))),
                )?;
                state.segments.insert(base_offset, segment);
                drop(state);
                File::open(&self.dir)?.sync_all()?;
            }
            None => {
                if state.segments.keys().next() == Some(&base_offset) {
                    // The head keeps its base offset, which is the log start offset after a
                    // restart: compaction must never move it (only retention and
                    // DeleteRecords do, as in Kafka). The next closed segment takes its place.
                    return self.merge_into_emptied_head(&mut state, base_offset, config, now_ms);
                }
                if let Some(segment) = state.segments.remove(&base_offset) {
                    segment.delete_files()?;
                }
            }
        }
        Ok(())
    }

    /// The first segment lost every record to compaction: its files take the contents of the
    /// following closed segment under the head's name (`rename` replaces the head's `.log`
    /// atomically, so a crash leaves either the old head and its successor, or the merged
    /// head). Kafka gets the same effect by naming a group of cleaned segments after the first
    /// one's base offset. When the successor is the active segment the head is left as it
    /// was: a later pass merges it once the active segment has rolled.
    fn merge_into_emptied_head(
        &self,
        state: &mut LogState,
        head: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = state.segments.keys().next_back().copied();
        let Some((next, next_end)) = state
            .segments
            .range(head + 1..)
            .next()
            .map(|(b, s)| (*b, s.next_offset))
        else {
            return Ok(());
        };
        // Relative offsets in the indexes are 32-bit; Kafka bounds a cleaner group the same way.
        if Some(next) == active || next_end - 1 - head > i64::from(i32::MAX) {
            return Ok(());
        }
        let stem = |base: i64| self.dir.join(super::segment::file_stem(base));
        std::fs::rename(
            stem(next).with_extension("log"),
            stem(head).with_extension("log"),
        )?;
        File::open(&self.dir)?.sync_all()?;
        // Until the merged head is open, the old segments keep serving from their open files.
        let (mut segment, _) = Segment::open(
            &self.dir,
            head,
            false,
            config.index_interval_bytes,
            &mut ProducerStateManager::default(),
            now_ms,
        )?;
        segment.seal();
        state.segments.remove(&next);
        state.segments.insert(head, segment);
        for ext in ["index", "timeindex"] {
            match std::fs::remove_file(stem(next).with_extension(ext)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Records that the closed segments up to `last_base_offset` were cleaned.
    pub fn mark_cleaned(&self, last_base_offset: i64) {
        let mut state = self.lock();
        state.cleaned_up_to = state.cleaned_up_to.max(last_base_offset + 1);
    }

    /// Bytes on disk in the partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    /// The idempotent producers this partition remembers.
    pub fn producers(&self) -> Vec<super::producer_state::ProducerSummary> {
        self.lock().producers.summaries()
    }

    /// What must be synced to make everything appended so far durable; `Ok(None)` if it
    /// already is; `Err` (the reason) when the partition is offline, since nothing can be
    /// promised about data written after a failed fsync.
    pub fn flush_work(&self) -> Result<Option<FlushWork>, String> {
        let mut state = self.lock();
        if let Some(reason) = &state.offline {
            return Err(reason.clone());
        }
        if state.flushed_offset >= state.log_end_offset && !state.dir_needs_sync {
            return Ok(None);
        }
        let mut files = std::mem::take(&mut state.unflushed_files);
        if let Some(active) = state.segments.values().next_back() {
            files.push(active.log_file());
        }
        let dir = std::mem::take(&mut state.dir_needs_sync).then(|| self.dir.clone());
        state.messages_since_flush = 0;
        Ok(Some(FlushWork {
            files,
            dir,
            up_to: state.log_end_offset,
        }))
    }

    /// An fsync of `work` failed. After a failed fsync the kernel may have dropped the dirty
    /// pages and reports the error once, so a retry that succeeds proves nothing
    /// ("fsyncgate"): the partition goes offline and no offset past `flushed_offset` is ever
    /// acknowledged. A restart recovers from the last recovery point. The files stay listed,
    /// so nothing that needed a sync is forgotten.
    pub fn flush_failed(&self, work: FlushWork, error: &io::Error) {
        let mut state = self.lock();
        let reason = format!(
            "fsync failed ({error}); offsets from {} on are not known to be durable",
            state.flushed_offset
        );
        tracing::error!(partition = %self.topic_partition, "{reason}; partition offline until a restart recovers it");
        state.offline.get_or_insert(reason);
        let mut files = work.files;
        files.append(&mut state.unflushed_files);
        state.unflushed_files = files;
        state.dir_needs_sync |= work.dir.is_some();
    }

    /// Why the partition is offline, if it is.
    pub fn offline_reason(&self) -> Option<String> {
        self.lock().offline.clone()
    }

    pub fn mark_flushed(&self, up_to: i64) {
        let mut state = self.lock();
        state.flushed_offset = state.flushed_offset.max(up_to);
        if state.flushed_offset >= state.log_end_offset {
            state.dirty_since_ms = None;
        }
    }

    /// The log end offset to flush up to when data has been unflushed for `flush.ms` or more
    /// (Kafka's time-based flush policy); `None` when nothing is due.
    pub fn flush_due_by_time(&self, now_ms: i64) -> Option<i64> {
        let state = self.lock();
        let since = state.dirty_since_ms?;
        (state.offline.is_none() && now_ms.saturating_sub(since) >= state.config.flush_ms)
            .then_some(state.log_end_offset)
    }

    pub fn flushed_offset(&self) -> i64 {
        self.lock().flushed_offset
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
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use crate::log::batch::tests::encode_batch;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    fn config() -> Arc<LogConfig> {
        Arc::new(LogConfig {
            segment_bytes: 400,
            segment_ms: i64::MAX,
            retention_ms: 10_000,
            retention_bytes: -1,
            index_interval_bytes: 100,
            flush_messages: i64::MAX,
            max_message_bytes: 1 << 20,
            fsync_acks_all: true,
            ..LogConfig::default()
        })
    }

    #[test]
    fn append_read_roll_recover() -> TestResult {
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        let mut next = 0;
        for i in 0..50 {
            let value = format!("value-{i}");
            let batch = encode_batch(&[value.as_bytes(), b"second"], Compression::None)?;
            let info = log.append(&batch, 1_000)?;
            assert_eq!(info.base_offset, next);
            next = info.next_offset;
        }
        assert_eq!(next, 100);
        assert!(log.segment_count() > 3);
        for offset in [0, 1, 37, 98, 99] {
            let bytes = log.read(offset, 1)?.ok_or("no data")?;
            let header = BatchHeader::parse(&bytes)?;
            assert!(header.base_offset <= offset && offset <= header.last_offset());
            assert_eq!(header.size, bytes.len());
        }
        assert!(log.read(100, 1000)?.is_none());
        assert!(matches!(
            log.read(101, 1000),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        let all = log.read(0, 1 << 20)?.ok_or("no data")?;
        assert!(batch::headers(&all).count() >= 2);
        drop(log);
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert_eq!(log.offsets().high_watermark, 100);
        Ok(())
    }

    /// A transaction in one partition: the last stable offset stops at its first record while
    /// it is open, read_committed reads stop there, an abort is listed for the records it
    /// covers, a commit releases them, and a reopened log rebuilds all of it from the log.
    #[test]
    fn transactions_bound_the_last_stable_offset() -> TestResult {
        use crate::test_support::transactional_batch;
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        let plain = |v: &[u8]| encode_batch(&[v], Compression::None);
        log.append(&plain(b"before")?, 1_000)?; // 0
        log.append(
            &transactional_batch(&[b"a1", b"a2"], (7, 0, 0), Compression::None)?,
            1_000,
        )?; // 1-2
        log.append(&plain(b"between")?, 1_000)?; // 3
        log.append(
            &transactional_batch(&[b"c1"], (8, 0, 0), Compression::Lz4)?,
            1_000,
        )?; // 4
        assert_eq!(log.offsets().last_stable_offset, 1);
        assert_eq!(log.offsets().high_watermark, 5);
        // A non-transactional write from a producer with a transaction open is refused.
        let stray =
            crate::test_support::record_batch(&[b"x"], 0, Some((7, 0, 2)), Compression::None)?;
        assert!(matches!(
            log.append(&stray, 1_000),
            Err(AppendError::Sequence(SequenceError::TransactionOpen {
                producer_id: 7,
                first_offset: 1
            }))
        ));
        let offsets_of = |bytes: Option<Bytes>| -> Vec<i64> {
            bytes.map_or(Vec::new(), |b| {
                batch::headers(&b).map(|(h, _)| h.base_offset).collect()
            })
        };
        let (read, aborted) = log.read_committed(0, 1 << 20)?;
        assert_eq!((offsets_of(read), aborted), (vec![0], vec![]));
        // Producer 7 aborts (marker at 5): stable up to 4, where producer 8's is open.
        let abort = Marker {
            commit: false,
            coordinator_epoch: 0,
        };
        assert_eq!(log.append_marker(7, 0, abort, 1_000)?.base_offset, 5);
        assert_eq!(log.offsets().last_stable_offset, 4);
        let (read, aborted) = log.read_committed(0, 1 << 20)?;
        assert_eq!(offsets_of(read), vec![0, 1, 3]);
        let aborted_7 = AbortedTxn {
            producer_id: 7,
            first_offset: 1,
            last_offset: 5,
        };
        assert_eq!(aborted, vec![aborted_7]);
        // Producer 8 commits (marker at 6): everything is stable.
        let commit = Marker {
            commit: true,
            coordinator_epoch: 0,
        };
        log.append_marker(8, 0, commit, 1_000)?;
        assert_eq!(log.offsets().last_stable_offset, 7);
        // (A read stays within a segment of the small test segments.)
        let (read, aborted) = log.read_committed(3, 1 << 20)?;
        assert_eq!(offsets_of(read), vec![3, 4]);
        assert_eq!(aborted, vec![aborted_7]);
        let (read, aborted) = log.read_committed(5, 1 << 20)?;
        assert_eq!(offsets_of(read), vec![5, 6]);
        assert_eq!(aborted, vec![aborted_7]);
        // A marker of an older epoch is refused; a fetch past the abort is told nothing.
        log.append(
            &transactional_batch(&[b"n"], (7, 1, 0), Compression::None)?,
            1_000,
        )?; // 7
        assert!(log.append_marker(7, 0, commit, 1_000).is_err());
        assert_eq!(log.read_committed(6, 1 << 20)?.1, vec![]);
        // Reopened: producer 7's new transaction is still open at 7, the abort remembered.
        drop(log);
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert_eq!(log.offsets().last_stable_offset, 7);
        assert_eq!(log.open_transaction(7), Some(7));
        assert_eq!(log.read_committed(0, 1 << 20)?.1, vec![aborted_7]);
        Ok(())
    }

    #[test]
    fn delete_records_moves_the_start_and_drops_whole_segments() -> TestResult {
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        for i in 0..50 {
            let value = format!("value-{i}");
            log.append(
                &encode_batch(&[value.as_bytes(), b"x"], Compression::None)?,
                1_000,
            )?;
        }
        let segments = log.segment_count();
        assert!(matches!(
            log.delete_records(101),
            Err(DeleteRecordsError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records(37)?, 37);
        assert_eq!(log.delete_records(5)?, 37, "the start never moves back");
        assert!(log.segment_count() < segments);
        assert!(matches!(
            log.read(36, 1000),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        let bytes = log.read(37, 1)?.ok_or("no data")?;
        assert!(BatchHeader::parse(&bytes)?.last_offset() >= 37);
        drop(log);
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert!(
            log.offsets().log_start_offset <= 37,
            "segments alone do not know"
        );
        log.restore_log_start_offset(37);
        assert_eq!(log.offsets().log_start_offset, 37);
        assert_eq!(log.delete_records(-1)?, 100, "-1 means the high watermark");
        assert_eq!(log.segment_count(), 1, "only the active segment is left");
        Ok(())
    }

    #[test]
    fn topic_compression_and_log_append_time_rewrite_batches() -> TestResult {
        let dir = tempfile::tempdir()?;
        let config = Arc::new(LogConfig {
            compression: Some("gzip".into()),
            log_append_time: true,
            ..LogConfig::default()
        });
        let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), config, 0, 0)?;
        let plain = encode_batch(&[b"a", b"bb", b"ccc"], Compression::None)?;
        let idempotent = crate::test_support::record_batch(
            &[b"x", b"y"],
            5,
            Some((42, 0, 0)),
            Compression::Lz4,
        )?;
        let first = log.append(&plain, 77_000)?;
        assert_eq!(first.log_append_time_ms, 77_000);
        let second = log.append(&idempotent, 78_000)?;
        assert_eq!((second.base_offset, second.next_offset), (3, 5));
        assert_eq!(
            log.append(&idempotent, 79_000)?.base_offset,
            3,
            "still a duplicate"
        );
        let mut bytes = log.read(0, 1 << 20)?.ok_or("no data")?;
        let sets = RecordBatchDecoder::decode_all(&mut bytes)?;
        assert_eq!(sets.len(), 2);
        for set in &sets {
            assert_eq!(set.compression, Compression::Gzip);
        }
        let values: Vec<_> = sets
            .iter()
            .flat_map(|s| {
                s.records
                    .iter()
                    .map(|r| r.value.clone().unwrap_or_default())
            })
            .collect();
        assert_eq!(values, [&b"a"[..], b"bb", b"ccc", b"x", b"y"]);
        let header = BatchHeader::parse(&log.read(3, 1)?.ok_or("no data")?)?;
        assert_eq!((header.producer_id, header.base_sequence), (42, 0));
        assert_eq!(header.max_timestamp, 78_000);
        assert_ne!(header.attributes & 0x08, 0, "LogAppendTime attribute");
        Ok(())
    }

    #[test]
    fn torn_tail_is_truncated_at_open() -> TestResult {
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        for _ in 0..3 {
            log.append(&encode_batch(&[b"abc"], Compression::None)?, 0)?;
        }
        drop(log);
        let path = dir
            .path()
            .join(format!("{}.log", super::super::segment::file_stem(0)));
        let len = std::fs::metadata(&path)?.len();
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.set_len(len - 5)?;
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert_eq!(log.offsets().high_watermark, 2);
        let info = log.append(&encode_batch(&[b"new"], Compression::None)?, 0)?;
        assert_eq!(info.base_offset, 2);
        Ok(())
    }

    #[test]
    fn an_empty_segment_before_another_ends_the_log() -> TestResult {
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        for _ in 0..30 {
            log.append(&encode_batch(&[b"0123456789"], Compression::None)?, 0)?;
        }
        let bases: Vec<i64> = log.lock().segments.keys().copied().collect();
        assert!(bases.len() >= 3);
        drop(log);
        // A crash lost the second segment's data but not the later files.
        let stem = super::super::segment::file_stem(bases[1]);
        std::fs::File::create(dir.path().join(format!("{stem}.log")))?;
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert_eq!(log.offsets().high_watermark, bases[1]);
        assert_eq!(log.segment_count(), 2);
        let info = log.append(&encode_batch(&[b"next"], Compression::None)?, 0)?;
        assert_eq!(info.base_offset, bases[1], "offsets stay dense");
        Ok(())
    }

    #[test]
    fn retention_moves_log_start() -> TestResult {
        let dir = tempfile::tempdir()?;
        let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), config(), 0, 0)?;
        for _ in 0..40 {
            log.append(&encode_batch(&[b"0123456789"], Compression::None)?, 0)?;
        }
        let segments = log.segment_count();
        assert!(segments > 2);
        assert_eq!(log.apply_retention(5_000)?, 0);
        let deleted = log.apply_retention(100_000)?;
        assert_eq!(deleted, segments, "the expired active segment goes too");
        assert_eq!(log.offsets().log_start_offset, 40);
        assert_eq!(log.offsets().high_watermark, 40, "the log end offset stays");
        assert_eq!(log.segment_count(), 1);
        assert_eq!(
            log.apply_retention(200_000)?,
            0,
            "an empty active segment stays"
        );
        assert_eq!(
            log.append(&encode_batch(&[b"x"], Compression::None)?, 0)?
                .base_offset,
            40
        );
        assert!(matches!(
            log.read(0, 100),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        Ok(())
    }

    #[test]
    fn timestamp_lookup() -> TestResult {
        let dir = tempfile::tempdir()?;
        let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), config(), 0, 0)?;
        for _ in 0..10 {
            // records with timestamps 1000, 1001, 1002
            log.append(&encode_batch(&[b"a", b"b", b"c"], Compression::Gzip)?, 0)?;
        }
        assert_eq!(log.offset_for_timestamp(1001)?, Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(0)?, Some((0, 1000)));
        assert_eq!(log.offset_for_timestamp(5000)?, None);
        assert_eq!(log.max_timestamp_offset()?, Some((2, 1002)));
        Ok(())
    }

    /// A producer that leaves the batch's max timestamp unset (-1, as sarama 1.22 does): the
    /// broker computes it from the records, so time lookups find the batch.
    #[test]
    fn unset_max_timestamp_is_computed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), config(), 0, 0)?;
        for codec in [Compression::None, Compression::Gzip] {
            let mut bytes = encode_batch(&[b"a", b"b", b"c"], codec)?.to_vec();
            batch::set_max_timestamp(&mut bytes, -1);
            assert!(batch::validate(&bytes)?.max_timestamp_unset());
            log.append(&bytes, 0)?;
        }
        assert_eq!(log.offset_for_timestamp(1001)?, Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(1002)?, Some((2, 1002)));
        assert_eq!(log.max_timestamp_offset()?, Some((2, 1002)));
        let stored = log.read(3, 1 << 20)?.expect("second batch");
        let header = BatchHeader::parse(&stored)?;
        assert_eq!(header.max_timestamp, 1002);
        batch::validate(&stored[..header.size])?;
        Ok(())
    }

    /// Random operation sequences against a real log, checked against a model: appends of
    /// batches with random sizes and codecs, reads at random offsets, clean reopens, and
    /// crashes that chop a random number of bytes off the newest segment.
    #[test]
    fn random_operations_match_a_model() -> TestResult {
        use kafka_protocol::records::RecordBatchDecoder;
        use rand::{Rng, SeedableRng};

        struct Batch {
            base: i64,
            values: Vec<Vec<u8>>,
            segment: i64,
            end_position: u64,
        }

        for seed in 1..=4u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir()?;
            let tp = TopicPartition::new("r", 0);
            let mut log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
            let mut model: Vec<Batch> = Vec::new();
            let mut counter = 0u64;
            for _ in 0..250 {
                match rng.gen_range(0..100) {
                    0..=59 => {
                        let count = rng.gen_range(1..=4);
                        let values: Vec<Vec<u8>> = (0..count)
                            .map(|_| {
                                counter += 1;
                                let mut v = counter.to_string().into_bytes();
                                v.resize(v.len() + rng.gen_range(0..120), b'.');
                                v
                            })
                            .collect();
                        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                        let codec = [Compression::None, Compression::Gzip, Compression::Lz4]
                            [rng.gen_range(0..3)];
                        let info = log.append(&encode_batch(&refs, codec)?, 0)?;
                        let expected_base =
                            model.last().map_or(0, |b| b.base + b.values.len() as i64);
                        assert_eq!(info.base_offset, expected_base, "seed {seed}");
                        let state = log.lock();
                        let (segment, active) =
                            state.segments.iter().next_back().ok_or("no segment")?;
                        model.push(Batch {
                            base: info.base_offset,
                            values,
                            segment: *segment,
                            end_position: active.size,
                        });
                    }
                    60..=84 => {
                        let end = log.offsets().high_watermark;
                        let offset = rng.gen_range(0..=end);
                        let max_bytes = rng.gen_range(1..2000);
                        match log.read(offset, max_bytes)? {
                            None => assert_eq!(offset, end, "seed {seed}"),
                            Some(bytes) => {
                                let mut buf = bytes.clone();
                                let sets = RecordBatchDecoder::decode_all(&mut buf)?;
                                let first = sets[0].records[0].offset;
                                assert!(first <= offset, "seed {seed}");
                                for set in &sets {
                                    for record in &set.records {
                                        let batch = model
                                            .iter()
                                            .find(|b| {
                                                b.base <= record.offset
                                                    && record.offset
                                                        < b.base + b.values.len() as i64
                                            })
                                            .ok_or("record not in the model")?;
                                        let value = record.value.as_deref().ok_or("no value")?;
                                        assert_eq!(
                                            value,
                                            &batch.values[(record.offset - batch.base) as usize][..],
                                            "seed {seed}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                    85..=92 => {
                        drop(log);
                        log = PartitionLog::open(dir.path(), tp.clone(), config(), i64::MAX, 0)?;
                    }
                    _ => {
                        drop(log);
                        let newest = model.last().map_or(0, |b| b.segment);
                        let path = dir
                            .path()
                            .join(format!("{}.log", super::super::segment::file_stem(newest)));
                        let len = std::fs::metadata(&path)?.len();
                        let chop = rng.gen_range(0..=len.min(150));
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(len - chop)?;
                        model.retain(|b| b.segment != newest || b.end_position <= len - chop);
                        log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
                        // The active segment ends exactly after the last intact batch, or is a
                        // segment emptied by the chop, starting where that batch ends.
                        if let Some(last) = model.last() {
                            let state = log.lock();
                            let (segment, active) =
                                state.segments.iter().next_back().ok_or("no segment")?;
                            if *segment == last.segment {
                                assert_eq!(active.size, last.end_position, "seed {seed}");
                            } else {
                                assert!(active.is_empty(), "seed {seed}");
                                assert_eq!(
                                    *segment,
                                    last.base + last.values.len() as i64,
                                    "seed {seed}"
                                );
                            }
                        }
                    }
                }
                let expected_end = model.last().map_or(0, |b| b.base + b.values.len() as i64);
                assert_eq!(log.offsets().high_watermark, expected_end, "seed {seed}");
            }
        }
        Ok(())
    }
}
