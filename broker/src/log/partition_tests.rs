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
    let stray = crate::test_support::record_batch(&[b"x"], 0, Some((7, 0, 2)), Compression::None)?;
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
    let idempotent =
        crate::test_support::record_batch(&[b"x", b"y"], 5, Some((42, 0, 0)), Compression::Lz4)?;
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
                    let expected_base = model.last().map_or(0, |b| b.base + b.values.len() as i64);
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
                                                && record.offset < b.base + b.values.len() as i64
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
