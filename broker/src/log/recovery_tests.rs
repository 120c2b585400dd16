//! Error paths of the storage engine: failed index writes, failed log writes, failed fsyncs,
//! and recovery from damage below and above the recovery point. Each failure is a real error
//! from the OS (a write to a read-only handle) or from an injected fsync.

use std::sync::Arc;

use kafka_protocol::records::Compression;

use super::batch::tests::encode_batch;
use super::flusher::Flusher;
use super::partition::{AppendError, PartitionLog, ReadError, TopicPartition};
use super::segment::file_stem;
use super::segment::write_faults::{self, WriteFaults};
use crate::config::LogConfig;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config() -> Arc<LogConfig> {
    Arc::new(LogConfig {
        segment_bytes: 400,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 100,
        flush_messages: i64::MAX,
        max_message_bytes: 1 << 20,
        fsync_acks_all: true,
        ..LogConfig::default()
    })
}

fn append_values(log: &PartitionLog, from: usize, count: usize) -> TestResult {
    for i in from..from + count {
        let value = format!("value-{i:04}");
        log.append(
            &encode_batch(&[value.as_bytes()], Compression::None)?,
            1_000,
        )?;
    }
    Ok(())
}

/// Every value in the log, in offset order, with its offset.
fn read_all(log: &PartitionLog) -> Result<Vec<(i64, String)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    let end = log.offsets().high_watermark;
    while offset < end {
        let Some(mut bytes) = log.read(offset, 1 << 20)? else {
            break;
        };
        for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)? {
            for record in set.records {
                if record.offset >= offset {
                    let value = record.value.ok_or("no value")?;
                    out.push((record.offset, String::from_utf8(value.to_vec())?));
                    offset = record.offset + 1;
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn a_failed_index_write_does_not_fail_the_append_or_reuse_offsets() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 5)?;
    log.make_active_segment_read_only(false)?;
    // Enough appends to need index entries in the broken files and to roll segments.
    append_values(&log, 5, 20)?;
    assert_eq!(log.offsets().high_watermark, 25);
    let values = read_all(&log)?;
    let offsets: Vec<i64> = values.iter().map(|v| v.0).collect();
    assert_eq!(
        offsets,
        (0..25).collect::<Vec<_>>(),
        "dense, no offset twice"
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
    assert_eq!(log.offsets().high_watermark, 25);
    assert_eq!(read_all(&log)?, values, "the same records after a restart");
    Ok(())
}

#[test]
fn a_log_write_that_cannot_be_undone_takes_the_partition_offline() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 3)?;
    log.make_active_segment_read_only(true)?;
    let batch = encode_batch(&[b"lost"], Compression::None)?;
    assert!(matches!(
        log.append(&batch, 0),
        Err(AppendError::Offline(_))
    ));
    assert!(matches!(
        log.append(&batch, 0),
        Err(AppendError::Offline(_))
    ));
    assert_eq!(log.offsets().high_watermark, 3, "the offset did not move");
    assert!(matches!(log.read(0, 1000), Err(ReadError::Offline(_))));
    drop(log);
    let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
    assert_eq!(read_all(&log)?.len(), 3);
    append_values(&log, 3, 1)?;
    assert_eq!(log.offsets().high_watermark, 4);
    Ok(())
}

/// Bytes of every non-empty `.log`, by name: what a failed append must leave untouched (a
/// roll before it may add an empty segment).
fn log_files(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let bytes = std::fs::read(&path)?;
            if !bytes.is_empty() {
                out.push((name.unwrap_or_default(), bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn short_writes_store_every_batch_whole() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    // Every write call takes at most 7 bytes, as a kernel may under pressure.
    write_faults::set(WriteFaults {
        max_per_call: Some(7),
        fail_after: None,
    });
    append_values(&log, 0, 30)?;
    write_faults::set(WriteFaults::default());
    let values = read_all(&log)?;
    assert_eq!(values.len(), 30);
    drop(log);
    let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
    assert_eq!(read_all(&log)?, values, "the same records after a restart");
    Ok(())
}

/// A write that stores some bytes and then fails (EIO, ENOSPC), or fails at once, is rolled
/// back: the file is as before, the offset does not move, the next append takes the offset
/// the failed one would have had, and a restart finds exactly the acknowledged records.
#[test]
fn a_failed_or_short_write_is_rolled_back_whole() -> TestResult {
    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    for (after, errno) in [(0, EIO), (1, EIO), (20, ENOSPC), (60, EIO), (0, ENOSPC)] {
        let dir = tempfile::tempdir()?;
        let tp = TopicPartition::new("t", 0);
        let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
        append_values(&log, 0, 4)?;
        let before = log_files(dir.path())?;
        write_faults::set(WriteFaults {
            max_per_call: Some(9),
            fail_after: Some((after, errno)),
        });
        let failed = log.append(&encode_batch(&[b"rejected"], Compression::None)?, 1_000);
        write_faults::set(WriteFaults::default());
        match failed {
            Err(AppendError::Io(e)) => assert_eq!(e.raw_os_error(), Some(errno)),
            other => panic!("a failed write after {after} bytes answered {other:?}"),
        }
        assert_eq!(log.offsets().high_watermark, 4, "the offset did not move");
        assert_eq!(
            log_files(dir.path())?,
            before,
            "nothing of the batch stayed"
        );
        append_values(&log, 4, 3)?;
        let values = read_all(&log)?;
        let offsets: Vec<i64> = values.iter().map(|v| v.0).collect();
        assert_eq!(offsets, (0..7).collect::<Vec<_>>());
        assert!(values.iter().all(|(_, v)| v != "rejected"));
        drop(log);
        let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
        assert_eq!(read_all(&log)?, values, "the same records after a restart");
    }
    Ok(())
}

fn failing_sync(_: &std::fs::File) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(5)) // EIO
}

#[tokio::test]
async fn a_failed_fsync_is_never_forgotten_or_acknowledged_past() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = Arc::new(PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?);
    let good = Flusher::start()?;
    append_values(&log, 0, 3)?;
    good.flush(log.clone(), 3).await??;
    assert_eq!(log.flushed_offset(), 3);
    // Rolled segments and the active one are dirty when the fsync fails.
    append_values(&log, 3, 20)?;
    assert!(log.segment_count() > 2);
    let bad = Flusher::start_with(failing_sync)?;
    assert!(bad.flush(log.clone(), 23).await?.is_err());
    assert_eq!(log.flushed_offset(), 3);
    // A later fsync that would succeed is not trusted: the partition stays offline.
    assert!(good.flush(log.clone(), 23).await?.is_err());
    assert_eq!(
        log.flushed_offset(),
        3,
        "never acknowledged past the failure"
    );
    assert!(matches!(
        log.append(&encode_batch(&[b"x"], Compression::None)?, 0),
        Err(AppendError::Offline(_))
    ));
    assert!(log
        .offline_reason()
        .is_some_and(|r| r.contains("fsync failed")));
    Ok(())
}

fn segment_files(dir: &std::path::Path) -> Result<Vec<String>, std::io::Error> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    Ok(names)
}

fn corrupt_byte(path: &std::path::Path, position: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position)?;
    file.write_all_at(&[byte[0] ^ 0xff], position)
}

#[test]
fn corruption_below_the_recovery_point_takes_the_partition_offline_and_deletes_nothing(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 40)?;
    drop(log);
    let files = segment_files(dir.path())?;
    assert!(files.len() >= 4);
    // A bad batch length in the second segment (bytes 8..12 of its first batch), after a
    // clean shutdown (recovery point i64::MAX).
    corrupt_byte(&dir.path().join(&files[1]), 9)?;
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), i64::MAX, 0)?;
    assert!(log.offline_reason().is_some_and(|r| r.contains(&files[1])));
    assert!(matches!(log.read(0, 100), Err(ReadError::Offline(_))));
    assert_eq!(segment_files(dir.path())?, files, "no segment deleted");
    // The same damage with everything above the recovery point is a torn tail from a crash.
    drop(log);
    let log = PartitionLog::open(dir.path(), tp, config(), 0, 0)?;
    assert!(log.offline_reason().is_none());
    let first_base: i64 = files[1].trim_end_matches(".log").parse()?;
    assert_eq!(log.offsets().high_watermark, first_base);
    assert_eq!(segment_files(dir.path())?.len(), 2);
    Ok(())
}

#[test]
fn a_corrupt_crc_above_the_recovery_point_cuts_only_the_tail() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 40)?;
    drop(log);
    let files = segment_files(dir.path())?;
    let last = dir.path().join(files.last().ok_or("no segment")?);
    let last_base: i64 = files
        .last()
        .ok_or("no segment")?
        .trim_end_matches(".log")
        .parse()?;
    // A flipped byte inside the newest segment's second batch's records.
    let first_batch = std::fs::read(&last)?;
    let size = super::batch::BatchHeader::parse(&first_batch)?.size as u64;
    corrupt_byte(&last, size + 70)?;
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), last_base, 0)?;
    assert!(log.offline_reason().is_none());
    assert_eq!(log.offsets().high_watermark, last_base + 1);
    // Below the recovery point, the same byte is corruption: offline, nothing cut.
    drop(log);
    let dir2 = tempfile::tempdir()?;
    let log = PartitionLog::open(dir2.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 40)?;
    drop(log);
    let files = segment_files(dir2.path())?;
    let last = dir2.path().join(files.last().ok_or("no segment")?);
    let len = std::fs::metadata(&last)?.len();
    corrupt_byte(&last, size + 70)?;
    let log = PartitionLog::open(dir2.path(), tp, config(), 40, 0)?;
    assert!(log.offline_reason().is_some());
    assert_eq!(std::fs::metadata(&last)?.len(), len, "nothing cut");
    Ok(())
}

#[test]
fn a_log_start_checkpoint_past_the_end_is_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), TopicPartition::new("t", 0), config(), 0, 0)?;
    append_values(&log, 0, 10)?;
    log.restore_log_start_offset(999_999_999);
    assert_eq!(log.offsets().log_start_offset, 0);
    assert_eq!(read_all(&log)?.len(), 10);
    log.restore_log_start_offset(4);
    assert_eq!(log.offsets().log_start_offset, 4);
    Ok(())
}

#[test]
fn a_recovery_point_past_the_end_of_the_log_keeps_the_partition_offline() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tp = TopicPartition::new("t", 0);
    let log = PartitionLog::open(dir.path(), tp.clone(), config(), 0, 0)?;
    append_values(&log, 0, 40)?;
    drop(log);
    let files = segment_files(dir.path())?;
    // Someone removed the newest segments by hand.
    for name in &files[2..] {
        std::fs::remove_file(dir.path().join(name))?;
    }
    let log = PartitionLog::open(dir.path(), tp, config(), 40, 0)?;
    assert!(log
        .offline_reason()
        .is_some_and(|r| r.contains("recovery-point-offset-checkpoint")));
    let stem = file_stem(0);
    assert!(dir.path().join(format!("{stem}.log")).exists());
    Ok(())
}
