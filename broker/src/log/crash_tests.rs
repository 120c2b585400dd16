//! Crash consistency in the style of ALICE / CrashMonkey: a workload runs against a real
//! partition log whose flusher records, at every fsync, what that fsync made durable (a file's
//! bytes, a directory's entries). A simulated power cut then builds disk images that keep
//! exactly the durable state plus any prefix of what was written after it (torn writes, with or
//! without garbage after them; files created since the last directory fsync present or not).
//! Recovery of every image must yield a dense log that holds every record acknowledged with
//! acks=all (flushed before the cut), and must not mistake a torn tail for corruption.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rand::{Rng, SeedableRng};

use super::batch::tests::encode_batch;
use super::flusher::Flusher;
use super::partition::{PartitionLog, TopicPartition};
use crate::config::LogConfig;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the fsyncs so far made durable: file path -> bytes, directory path -> entry names.
static DURABLE_FILES: Mutex<BTreeMap<PathBuf, Vec<u8>>> = Mutex::new(BTreeMap::new());
static DURABLE_DIRS: Mutex<BTreeMap<PathBuf, BTreeSet<String>>> = Mutex::new(BTreeMap::new());

fn read_whole(file: &File) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len() as usize;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The recording fsync: notes what this sync makes durable, then syncs for real.
fn recording_sync(file: &File) -> std::io::Result<()> {
    let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if file.metadata()?.is_dir() {
        let names = std::fs::read_dir(&path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        DURABLE_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, names);
    } else {
        let bytes = read_whole(file)?;
        DURABLE_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, bytes);
    }
    file.sync_data()
}

fn config() -> Arc<LogConfig> {
    Arc::new(LogConfig {
        segment_bytes: 1_500,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 200,
        flush_messages: i64::MAX,
        max_message_bytes: 1 << 20,
        fsync_acks_all: true,
        ..LogConfig::default()
    })
}

/// Builds one post-crash image of `live` in `image`, choosing with `rng` how much of the
/// unsynced writes survived.
fn power_cut_image(live: &Path, image: &Path, rng: &mut impl Rng) -> std::io::Result<()> {
    std::fs::create_dir_all(image)?;
    let files = DURABLE_FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let listed = DURABLE_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(live)
        .cloned()
        .unwrap_or_default();
    for entry in std::fs::read_dir(live)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".log") {
            // Indexes are derived data, rebuilt at open.
            continue;
        }
        let now = std::fs::read(entry.path())?;
        let durable = files.get(&entry.path()).cloned();
        // A file whose directory entry was never fsynced may be gone after the cut.
        if !listed.contains(&name) && rng.gen_bool(0.5) {
            continue;
        }
        let mut bytes = durable.clone().unwrap_or_default();
        assert!(now.starts_with(&bytes), "no workload write shrinks a file");
        let extra = &now[bytes.len()..];
        let kept = match rng.gen_range(0..3) {
            0 => 0,
            1 => extra.len(),
            _ => rng.gen_range(0..=extra.len()),
        };
        bytes.extend_from_slice(&extra[..kept]);
        if kept < extra.len() && rng.gen_bool(0.3) {
            // Pages written out of order: garbage where the rest of a write would be.
            let garbage = rng.gen_range(1..=(extra.len() - kept).min(64));
            bytes.extend((0..garbage).map(|_| rng.gen::<u8>()));
        }
        std::fs::write(image.join(&name), &bytes)?;
    }
    Ok(())
}

/// Every record in the recovered log, offset -> value, checking that offsets are dense.
fn recovered_records(
    log: &PartitionLog,
) -> Result<BTreeMap<i64, Vec<u8>>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    let mut offset = log.offsets().log_start_offset;
    let end = log.offsets().high_watermark;
    while offset < end {
        let mut bytes = log
            .read(offset, 1 << 20)?
            .ok_or_else(|| format!("no bytes at {offset} below the end {end}"))?;
        for set in RecordBatchDecoder::decode_all(&mut bytes)? {
            for record in set.records {
                if record.offset < offset {
                    continue;
                }
                assert_eq!(record.offset, offset, "offsets are dense");
                out.insert(record.offset, record.value.ok_or("no value")?.to_vec());
                offset += 1;
            }
        }
    }
    Ok(out)
}

/// Workloads run: 12 in the test suite; `STROM_CRASH_SEEDS` sets more for the long fault run
/// (`scripts/fault-runs`), `STROM_CRASH_FIRST_SEED` where they start.
fn seeds() -> std::ops::RangeInclusive<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let first = var("STROM_CRASH_FIRST_SEED", 1);
    first..=first + var("STROM_CRASH_SEEDS", 12).max(1) - 1
}

#[tokio::test]
async fn every_power_cut_image_recovers_every_acknowledged_record() -> TestResult {
    let mut images = 0;
    let seeds = seeds();
    let expected = 20 * (seeds.end() - seeds.start() + 1);
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir()?;
        let live = dir.path().join("live");
        let tp = TopicPartition::new("crash", 0);
        let log = Arc::new(PartitionLog::open(&live, tp.clone(), config(), 0, 0)?);
        let flusher = Flusher::start_with(recording_sync)?;
        let mut written: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let mut acked_below = 0i64;
        let operations = rng.gen_range(20..120);
        for i in 0..operations {
            let count = rng.gen_range(1..=3);
            let values: Vec<Vec<u8>> = (0..count)
                .map(|j| {
                    let mut v = format!("s{seed}-op{i}-r{j}-").into_bytes();
                    v.resize(v.len() + rng.gen_range(0..150), b'.');
                    v
                })
                .collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let codec = [Compression::None, Compression::Gzip][rng.gen_range(0..2)];
            let info = log.append(&encode_batch(&refs, codec)?, 0)?;
            for (k, v) in values.into_iter().enumerate() {
                written.insert(info.base_offset + k as i64, v);
            }
            // About a third of the produces are acks=all: answered after their fsync.
            if rng.gen_bool(0.35) {
                flusher.flush(log.clone(), info.next_offset).await??;
                acked_below = info.next_offset;
            }
        }
        let flushed = log.flushed_offset();
        assert!(flushed >= acked_below);
        for cut in 0..10 {
            for recovery_point in [0, flushed] {
                let image = dir.path().join(format!("image-{cut}-{recovery_point}"));
                power_cut_image(&live, &image, &mut rng)?;
                let recovered =
                    PartitionLog::open(&image, tp.clone(), config(), recovery_point, 0)?;
                assert_eq!(
                    recovered.offline_reason(),
                    None,
                    "seed {seed} cut {cut}: a torn tail taken for corruption"
                );
                let records = recovered_records(&recovered).map_err(|e| {
                    let names: Vec<String> = std::fs::read_dir(&image)
                        .map(|d| {
                            d.filter_map(|e| e.ok())
                                .map(|e| {
                                    let len = e.metadata().map_or(0, |m| m.len());
                                    format!("{} {len}", e.file_name().to_string_lossy())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("seed {seed} cut {cut} rp {recovery_point}: {e}; files {names:?}")
                })?;
                for offset in 0..acked_below {
                    assert_eq!(
                        records.get(&offset),
                        written.get(&offset),
                        "seed {seed} cut {cut} recovery point {recovery_point}: acknowledged \
                         offset {offset}"
                    );
                }
                for (offset, value) in &records {
                    assert_eq!(
                        Some(value),
                        written.get(offset),
                        "seed {seed}: no invented data"
                    );
                }
                images += 1;
            }
        }
    }
    assert_eq!(images, expected);
    Ok(())
}
