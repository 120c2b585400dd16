//! Log compaction (`cleanup.policy=compact`): keeps the latest record of every key in a
//! partition's closed segments.
//!
//! One pass over a partition:
//! 1. Under the lock, take the closed segments old enough to clean (`min.compaction.lag.ms`);
//!    the active segment is never touched. Skip the partition when the share of bytes written
//!    since the last pass is below `min.cleanable.dirty.ratio`.
//! 2. Without the lock, read them and map every key to its last offset.
//! 3. Rewrite each segment into `<base>.log.cleaned`: batches whose records all survive are
//!    copied byte for byte; others are re-encoded with the surviving records at their original
//!    offsets, timestamps, producer fields and codec. Tombstones go once their segment is older
//!    than `delete.retention.ms`; keyless records go. The last batch of each idempotent producer
//!    is kept whole so its sequence state survives a restart. The file is fsynced.
//!    Transactions: only segments wholly below the first open transaction are cleaned, so every
//!    transactional batch there is decided. Committed transactional records are compacted like
//!    any other; aborted ones shadow nothing and are removed (whole batches, as Kafka discards
//!    them). Markers are kept: a restart rebuilds the producers' transaction state from them.
//! 4. Under the lock, if the segment is still there, rename the cleaned file over the segment
//!    (atomic), sync the directory and swap the in-memory segment. A segment left empty is
//!    deleted instead, except the first: its base offset is the log start offset, which
//!    compaction never moves (Kafka's rule), so the next closed segment is renamed into it.
//!
//! Crash safety: a `.cleaned` file is removed at open; the rename is atomic, so a segment is
//! either its old or its cleaned self. Offsets are never reordered; gaps appear where records
//! were removed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, RecordSet};

use super::batch::BatchHeader;
use super::partition::PartitionLog;
use super::segment::{file_stem, read_at, Cleanable, SegmentSlice};

/// What a pass did, for the log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// Visits every batch of a segment: (header, whole batch bytes).
fn for_each_batch(
    slice: &SegmentSlice,
    mut visit: impl FnMut(&BatchHeader, Bytes) -> io::Result<()>,
) -> io::Result<()> {
    let mut positions = Vec::new();
    slice.scan_headers(|header, position| {
        positions.push((position, header.size));
        Ok(true)
    })?;
    for (position, size) in positions {
        let bytes = read_at(&slice.reader, position, size)?;
        let header = BatchHeader::parse(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        visit(&header, bytes)?;
    }
    Ok(())
}

/// Decodes a stored batch, decompressing no more than its topic allows on append.
fn decode(bytes: &Bytes, limit: u64) -> io::Result<RecordSet> {
    super::records::decode(bytes, limit)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Longest the throttle sleeps before it looks at the stop signal again.
const STOP_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Limits the cleaner's reads to `log.cleaner.io.max.bytes.per.second` by sleeping when it
/// runs ahead, so compaction cannot starve produce and fetch of disk bandwidth. It is also
/// where a pass notices the broker stopping: between batches and during its sleeps, as
/// Kafka's cleaner checks for shutdown between batches.
#[derive(Debug)]
pub struct Throttle {
    max_bytes_per_second: f64,
    started: std::time::Instant,
    bytes: f64,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Throttle {
    /// `stop` turns true when the broker stops; the pass then ends at its next batch.
    pub fn new(max_bytes_per_second: f64, stop: tokio::sync::watch::Receiver<bool>) -> Throttle {
        Throttle {
            max_bytes_per_second,
            started: std::time::Instant::now(),
            bytes: 0.0,
            stop,
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Counts bytes read, sleeping while ahead of the rate; `Interrupted` once stopping.
    fn account(&mut self, bytes: usize) -> io::Result<()> {
        self.bytes += bytes as f64;
        let limited = self.max_bytes_per_second.is_finite() && self.max_bytes_per_second > 0.0;
        loop {
            if self.stopping() {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "the broker is stopping",
                ));
            }
            if !limited {
                return Ok(());
            }
            let due = std::time::Duration::from_secs_f64(self.bytes / self.max_bytes_per_second);
            match due.checked_sub(self.started.elapsed()) {
                Some(ahead) if !ahead.is_zero() => {
                    std::thread::sleep(ahead.min(STOP_CHECK_INTERVAL))
                }
                _ => return Ok(()),
            }
        }
    }
}

/// Cleans `log` if it is due. Blocking (file I/O, throttled sleeps); run it off the reactor.
pub fn clean(
    log: &PartitionLog,
    now_ms: i64,
    throttle: &mut Throttle,
) -> io::Result<Option<CleanStats>> {
    let Some(Cleanable {
        config,
        segments,
        aborted,
    }) = log.cleanable_segments(now_ms)
    else {
        return Ok(None);
    };
    let limit = super::records::decompressed_limit(config.max_message_bytes);
    // Every transaction here is decided (the segments end below the first open one): a
    // transactional batch is aborted when an aborted transaction of its producer spans it.
    let mut aborted_of: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for t in &aborted {
        aborted_of
            .entry(t.producer_id)
            .or_default()
            .push((t.first_offset, t.last_offset));
    }
    let is_aborted = |header: &BatchHeader| {
        header.is_transactional()
            && !header.is_control()
            && aborted_of.get(&header.producer_id).is_some_and(|spans| {
                spans
                    .iter()
                    .any(|(first, last)| (*first..=*last).contains(&header.base_offset))
            })
    };
    // Pass 1: the last offset of every key, and the last data batch of every producer.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let mut last_batch_of_producer: HashMap<i64, i64> = HashMap::new();
    for segment in &segments {
        for_each_batch(&segment.slice, |header, bytes| {
            throttle.account(bytes.len())?;
            if header.is_control() {
                // Markers are not keyed records and are kept (pass 2).
                return Ok(());
            }
            if header.producer_id >= 0 {
                last_batch_of_producer.insert(header.producer_id, header.base_offset);
            }
            if is_aborted(header) {
                // Aborted records shadow nothing; they are removed (pass 2).
                return Ok(());
            }
            for record in decode(&bytes, limit)?.records {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset);
                }
            }
            Ok(())
        })?;
    }
    // Pass 2: rewrite each segment.
    let mut stats = CleanStats::default();
    // The head segment, when nothing in it survives: handled after the others are cleaned, as
    // its successor then takes its place (see `PartitionLog::install_cleaned`).
    let mut emptied_head = None;
    for (i, segment) in segments.iter().enumerate() {
        let drop_tombstones =
            now_ms.saturating_sub(segment.max_timestamp) > config.delete_retention_ms;
        let mut out = BytesMut::new();
        let mut removed = 0u64;
        for_each_batch(&segment.slice, |header, bytes| {
            throttle.account(bytes.len())?;
            let producer_tail = header.producer_id >= 0
                && last_batch_of_producer.get(&header.producer_id) == Some(&header.base_offset);
            if header.is_control() {
                out.extend_from_slice(&bytes);
                return Ok(());
            }
            if is_aborted(header) {
                if producer_tail {
                    out.extend_from_slice(&bytes);
                } else {
                    removed += u64::try_from(header.record_count).unwrap_or(0);
                }
                return Ok(());
            }
            let RecordSet {
                records,
                compression,
                ..
            } = decode(&bytes, limit)?;
            let keep = |r: &Record| {
                r.key
                    .as_ref()
                    .is_some_and(|k| latest.get(k) == Some(&r.offset))
                    && !(r.value.is_none() && drop_tombstones)
            };
            let kept = records.iter().filter(|r| keep(r)).count();
            if kept == records.len() || producer_tail {
                out.extend_from_slice(&bytes);
                return Ok(());
            }
            removed += (records.len() - kept) as u64;
            if kept == 0 {
                return Ok(());
            }
            let first_offset = records.iter().find(|r| keep(r)).map_or(0, |r| r.offset);
            let survivors: Vec<Record> = records
                .into_iter()
                .filter(|r| keep(r))
                .map(|mut r| {
                    // The encoder keeps records in one batch while offset - sequence is
                    // constant: derive sequences from offsets, anchored at the batch's base
                    // sequence (-1 without a producer).
                    r.sequence = header
                        .base_sequence
                        .wrapping_add((r.offset - first_offset) as i32);
                    r
                })
                .collect();
            let mut encoded = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut encoded,
                &survivors,
                &RecordEncodeOptions {
                    version: 2,
                    compression,
                },
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if header.is_log_append_time() {
                // The encoder writes CreateTime batches from the records' own timestamps; a
                // LogAppendTime batch keeps its type and append time, which the time index
                // and ListOffsets read.
                let positions: Vec<(usize, usize)> = super::batch::headers(&encoded)
                    .map(|(h, at)| (at, h.size))
                    .collect();
                for (at, size) in positions {
                    super::batch::set_log_append_time(
                        &mut encoded[at..at + size],
                        header.max_timestamp,
                    );
                }
            }
            out.extend_from_slice(&encoded);
            Ok(())
        })?;
        stats.segments += 1;
        stats.bytes_before += segment.size;
        stats.bytes_after += out.len() as u64;
        stats.records_removed += removed;
        if removed == 0 {
            continue;
        }
        if i == 0 && out.is_empty() {
            emptied_head = Some(segment);
            continue;
        }
        let cleaned = write_cleaned(log.dir(), segment.base_offset, &out)?;
        log.install_cleaned(segment.base_offset, segment.size, cleaned, &config, now_ms)?;
    }
    if let Some(head) = emptied_head {
        log.install_cleaned(head.base_offset, head.size, None, &config, now_ms)?;
    }
    log.mark_cleaned(segments.last().map_or(0, |s| s.base_offset));
    if stats.records_removed > 0 {
        tracing::info!(
            partition = %log.topic_partition,
            segments = stats.segments,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            records_removed = stats.records_removed,
            "compacted"
        );
    }
    Ok(Some(stats))
}

/// Writes and fsyncs `<base>.log.cleaned`; `None` when nothing survives.
fn write_cleaned(dir: &Path, base_offset: i64, bytes: &[u8]) -> io::Result<Option<PathBuf>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let path = dir.join(format!("{}.log.cleaned", file_stem(base_offset)));
    let mut file = File::create(&path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::log::partition::TopicPartition;
    use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};
    use rand::Rng;
    use std::sync::Arc;

    fn config() -> Arc<LogConfig> {
        Arc::new(LogConfig {
            segment_bytes: 512,
            compact: true,
            delete: false,
            retention_ms: -1,
            delete_retention_ms: 1_000,
            ..LogConfig::default()
        })
    }

    /// One batch of (key, value) records; `None` values are tombstones.
    fn batch(records: &[(String, Option<String>)], ts: i64, compression: Compression) -> Bytes {
        batch_from(records, ts, compression, None)
    }

    /// A batch of a transactional producer `(id, base sequence)` at epoch 0.
    fn txn_batch(records: &[(String, Option<String>)], producer: (i64, i32)) -> Bytes {
        batch_from(records, 1_000, Compression::None, Some(producer))
    }

    fn batch_from(
        records: &[(String, Option<String>)],
        ts: i64,
        compression: Compression,
        producer: Option<(i64, i32)>,
    ) -> Bytes {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: producer.map_or(-1, |p| p.0),
                producer_epoch: if producer.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: producer.map_or(-1, |p| p.1) + i as i32,
                timestamp: ts,
                key: Some(Bytes::from(k.clone())),
                value: v.clone().map(Bytes::from),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encodes");
        buf.freeze()
    }

    /// Every record from the start: (offset, key, value).
    fn read_all(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut offset = log.offsets().log_start_offset;
        while let Ok(Some(bytes)) = log.read(offset, 1 << 20) {
            let mut buf = bytes;
            let before = offset;
            for set in RecordBatchDecoder::decode_all(&mut buf).expect("decodes") {
                for r in set.records {
                    if r.offset >= offset {
                        offset = r.offset + 1;
                        out.push((
                            r.offset,
                            String::from_utf8_lossy(&r.key.unwrap_or_default()).into_owned(),
                            r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        ));
                    }
                }
            }
            if offset == before {
                break;
            }
        }
        out
    }

    #[test]
    fn keeps_the_latest_value_per_key_and_drops_old_tombstones() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = PartitionLog::open(dir.path(), TopicPartition::new("c", 0), config(), 0, 0)?;
        let mut expected: std::collections::BTreeMap<String, (i64, Option<String>)> =
            Default::default();
        let mut next = 0i64;
        // Random keys leave gaps inside batches (a regular pattern keeps a dense suffix).
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for round in 0..40 {
            let codec = if round % 2 == 0 {
                Compression::None
            } else {
                Compression::Gzip
            };
            let records: Vec<(String, Option<String>)> = (0..5)
                .map(|i| {
                    let key = format!("k{}", rng.gen_range(0..17));
                    let value = (round % 7 != 3 || i != 0).then(|| format!("v{round}-{i}"));
                    (key, value)
                })
                .collect();
            log.append(&batch(&records, 1_000 + round, codec), 1_000)?;
            for (k, v) in records {
                expected.insert(k, (next, v));
                next += 1;
            }
        }
        let segments_before = log.segment_count();
        assert!(segments_before > 3);
        let keyless = {
            let mut b = BytesMut::new();
            let mut r = batch(&[("x".into(), Some("y".into()))], 0, Compression::None).to_vec();
            // Re-encode without a key.
            let mut set = RecordBatchDecoder::decode(&mut Bytes::from(std::mem::take(&mut r)))?;
            set.records[0].key = None;
            RecordBatchEncoder::encode(
                &mut b,
                &set.records,
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )?;
            b.freeze()
        };
        assert!(matches!(
            log.append(&keyless, 1_000),
            Err(crate::log::partition::AppendError::NoKey { .. })
        ));
        let before = read_all(&log);
        // Tombstones are young: kept in the first pass.
        let stats = clean(
            &log,
            1_100,
            &mut Throttle::new(f64::INFINITY, tokio::sync::watch::channel(false).1),
        )?
        .expect("due");
        assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
        let after = read_all(&log);
        assert!(after.len() < before.len());
        // Offsets only increase; every survivor is the latest of its key among the closed
        // segments or sits in the active segment.
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
        for (key, (offset, value)) in &expected {
            let found = after.iter().find(|(o, _, _)| o == offset);
            assert_eq!(
                found.map(|(_, k, v)| (k, v)),
                Some((key, value)),
                "latest of {key}"
            );
        }
        assert!(
            after.iter().any(|(_, _, v)| v.is_none()),
            "young tombstones stay"
        );
        // A crash leftover is ignored at open, and the cleaned log reopens the same.
        std::fs::write(
            dir.path().join("00000000000000000000.log.cleaned"),
            b"garbage",
        )?;
        drop(log);
        let log = PartitionLog::open(dir.path(), TopicPartition::new("c", 0), config(), 0, 0)?;
        assert_eq!(read_all(&log), after);
        // Much later, with new data making it dirty again, old tombstones go.
        log.append(
            &batch(
                &[("k1".into(), Some("late".into()))],
                100_000,
                Compression::None,
            ),
            100_000,
        )?;
        for i in 0..30 {
            log.append(
                &batch(
                    &[(format!("z{i}"), Some("x".repeat(100)))],
                    100_000,
                    Compression::None,
                ),
                100_000,
            )?;
        }
        clean(
            &log,
            100_000,
            &mut Throttle::new(f64::INFINITY, tokio::sync::watch::channel(false).1),
        )?;
        let last = read_all(&log);
        // The horizon is per segment: the segment that was active during the first pass also
        // holds new records, so only tombstones from rounds before it must be gone.
        assert!(
            last.iter().all(|(o, _, v)| v.is_some() || *o >= 190),
            "tombstones older than delete.retention.ms are gone"
        );
        assert!(last.windows(2).all(|w| w[0].0 < w[1].0));
        Ok(())
    }

    /// A head segment whose records are all superseded takes in its successor under its own
    /// name: the log start offset stays, before and after a reopen, and a read inside the
    /// cleaned range returns the next surviving batch.
    #[test]
    fn an_emptied_head_keeps_the_log_start_offset() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Arc::new(LogConfig {
            segment_bytes: 100,
            ..(*config()).clone()
        });
        let tp = TopicPartition::new("c", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config.clone(), 0, 0)?;
        let keys = |v: &str| -> Vec<(String, Option<String>)> {
            (0..3)
                .map(|i| (format!("k{i}"), Some(format!("{v}{i}"))))
                .collect()
        };
        log.append(&batch(&keys("old"), 1_000, Compression::None), 1_000)?;
        log.append(&batch(&keys("new"), 1_000, Compression::Gzip), 1_000)?;
        log.append(
            &batch(
                &[("t".into(), Some("tail".into()))],
                1_000,
                Compression::None,
            ),
            1_000,
        )?;
        assert_eq!(log.segment_count(), 3);
        clean(
            &log,
            1_100,
            &mut Throttle::new(f64::INFINITY, tokio::sync::watch::channel(false).1),
        )?
        .expect("due");
        let check = |log: &PartitionLog| -> anyhow::Result<()> {
            assert_eq!(log.offsets().log_start_offset, 0);
            assert_eq!(log.segment_count(), 2);
            for offset in [0, 2, 3] {
                let bytes = log.read(offset, 1 << 20)?.expect("a batch");
                assert_eq!(
                    BatchHeader::parse(&bytes)?.base_offset,
                    3,
                    "read at {offset}"
                );
            }
            Ok(())
        };
        check(&log)?;
        assert!(!dir.path().join(format!("{}.log", file_stem(3))).exists());
        drop(log);
        check(&PartitionLog::open(dir.path(), tp, config, 0, 0)?)?;
        Ok(())
    }

    /// A LogAppendTime batch that loses records stays a LogAppendTime batch with its append
    /// time, not the producers' CreateTime values.
    #[test]
    fn rewritten_log_append_time_batches_keep_their_append_time() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Arc::new(LogConfig {
            segment_bytes: 150,
            log_append_time: true,
            ..(*config()).clone()
        });
        let log = PartitionLog::open(dir.path(), TopicPartition::new("c", 0), config, 0, 0)?;
        let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        log.append(
            &batch(
                &[kv("a", "1"), kv("b", "1"), kv("c", "1")],
                10,
                Compression::Gzip,
            ),
            5_000,
        )?;
        log.append(&batch(&[kv("b", "2")], 10, Compression::None), 6_000)?;
        for i in 0..4 {
            log.append(
                &batch(
                    &[kv(&format!("z{i}"), &"x".repeat(60))],
                    10,
                    Compression::None,
                ),
                7_000,
            )?;
        }
        clean(
            &log,
            8_000,
            &mut Throttle::new(f64::INFINITY, tokio::sync::watch::channel(false).1),
        )?
        .expect("due");
        let first = log.read(0, 1)?.expect("a batch");
        let header = BatchHeader::parse(&first)?;
        assert_eq!(header.record_count, 2, "b moved on");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 5_000);
        crate::log::batch::validate_stored(&first[..header.size])?;
        assert_eq!(log.offset_for_timestamp(4_000)?, Some((0, 5_000)));
        Ok(())
    }

    /// Transactions on a compacted topic: committed records are compacted like others, aborted
    /// ones shadow nothing and are removed, markers stay, and nothing from the first open
    /// transaction on is touched. A reopen rebuilds the same transaction state.
    #[test]
    fn aborted_records_go_committed_ones_compact_and_open_ones_wait() -> anyhow::Result<()> {
        use crate::log::marker::Marker;
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("c", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        let commit = Marker {
            commit: true,
            coordinator_epoch: 0,
        };
        let abort = Marker {
            commit: false,
            coordinator_epoch: 0,
        };
        // Producer 7: committed k1=c1 k2=c2; aborted k1=a1 k3=a3; committed k5=c5 (its last).
        log.append(&txn_batch(&[kv("k1", "c1"), kv("k2", "c2")], (7, 0)), 1_000)?;
        log.append_marker(7, 0, commit, 1_000)?;
        let aborted_at = log
            .append(&txn_batch(&[kv("k1", "a1"), kv("k3", "a3")], (7, 2)), 1_000)?
            .base_offset;
        log.append_marker(7, 0, abort, 1_000)?;
        log.append(&txn_batch(&[kv("k5", "c5")], (7, 4)), 1_000)?;
        log.append_marker(7, 0, commit, 1_000)?;
        // A plain write shadows the committed k2.
        log.append(&batch(&[kv("k2", "p2")], 1_000, Compression::None), 1_000)?;
        let filler = |from: usize| -> anyhow::Result<()> {
            for i in from..from + 6 {
                log.append(
                    &batch(
                        &[kv(&format!("z{i}"), &"x".repeat(100))],
                        1_000,
                        Compression::None,
                    ),
                    1_000,
                )?;
            }
            Ok(())
        };
        filler(0)?;
        // Producer 8's transaction stays open; after it, k9 twice.
        let open_at = log
            .append(&txn_batch(&[kv("k4", "o4")], (8, 0)), 1_000)?
            .base_offset;
        log.append(
            &batch(&[kv("k9", "first")], 1_000, Compression::None),
            1_000,
        )?;
        log.append(
            &batch(&[kv("k9", "second")], 1_000, Compression::None),
            1_000,
        )?;
        filler(10)?;
        assert!(log.segment_count() > 4);
        let stats = clean(
            &log,
            1_100,
            &mut Throttle::new(f64::INFINITY, tokio::sync::watch::channel(false).1),
        )?
        .expect("due");
        assert_eq!(stats.records_removed, 3, "a1, a3 and c2: {stats:?}");
        let check = |log: &PartitionLog| -> anyhow::Result<()> {
            let values: Vec<String> = read_all(log)
                .into_iter()
                .filter(|(_, k, _)| k.starts_with('k'))
                .filter_map(|(_, k, v)| Some(format!("{k}={}", v?)))
                .collect();
            assert_eq!(
                values,
                ["k1=c1", "k5=c5", "k2=p2", "k4=o4", "k9=first", "k9=second"],
                "committed k1 survives the aborted k1; nothing after the open transaction moves"
            );
            assert_eq!(log.offsets().last_stable_offset, open_at);
            // Listed until a restart, which finds none of its records (nothing to skip).
            let listed = log.read_committed(0, 1 << 20)?.1;
            assert!(
                listed.iter().all(|t| t.first_offset == aborted_at),
                "{listed:?}"
            );
            assert_eq!(log.open_transaction(8), Some(open_at));
            assert_eq!(log.open_transaction(7), None);
            Ok(())
        };
        check(&log)?;
        drop(log);
        check(&PartitionLog::open(dir.path(), tp, config(), 0, 0)?)?;
        Ok(())
    }
}
