//! The storage engine: partitions as directories of segment files, in the layout Kafka uses
//! (`<log.dirs>/<topic>-<partition>/<20-digit base offset>.log|.index|.timeindex`, plus
//! `recovery-point-offset-checkpoint` and a clean-shutdown marker in each log directory). Every
//! entry of `log.dirs` holds partitions: a new one goes to the directory with the fewest, as
//! Kafka places them.
//!
//! Must not depend on `server`, `api` or `kafka_protocol::messages`: it speaks
//! `TopicPartition`, offsets and batch bytes.

pub mod batch;
pub(crate) mod cleaner;
#[cfg(test)]
mod crash_tests;
pub(crate) mod dir_lock;
pub(crate) mod flusher;
pub(crate) mod marker;
pub(crate) mod message_set;
pub mod partition;
pub(crate) mod producer_state;
pub(crate) mod records;
#[cfg(test)]
mod recovery_tests;
pub(crate) mod replica;
pub(crate) mod segment;

use std::collections::HashMap;
use std::io;

use crate::files::write_atomically;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::config::LogConfig;
pub use flusher::Flusher;
pub use partition::{PartitionLog, TopicPartition};
pub use replica::Replicas;

/// Descriptors a new partition keeps open: its active segment's `.log`, `.index` and
/// `.timeindex`.
const FILES_PER_NEW_PARTITION: u64 = 3;
/// Descriptors always kept free for connections, rolls and short-lived files.
const OPEN_FILE_RESERVE: u64 = 256;
const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const CLEAN_SHUTDOWN_MARKER: &str = ".strom_cleanshutdown";
/// Kafka's per-partition file naming the topic id the directory belongs to (KIP-516).
const PARTITION_METADATA: &str = "partition.metadata";

#[derive(Debug)]
struct Incarnation {
    topic_id: Uuid,
    log: Arc<PartitionLog>,
    /// Index of the log directory holding it.
    dir: usize,
}

/// One entry of `log.dirs`.
#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    /// The previous run left this directory's clean-shutdown marker.
    clean_shutdown: bool,
}

/// Whether `open_partition` opens a partition of a topic that already existed, or the first
/// log of a new topic (or new partition), for which any directory found is a stale one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Existing,
    New,
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<LogDir>,
    /// The open partition logs by name, each with the topic id of its incarnation (KIP-516):
    /// a log is only ever reopened or removed by the incarnation that created it.
    logs: RwLock<HashMap<TopicPartition, Incarnation>>,
    flusher: Flusher,
    replicas: Replicas,
    /// From the checkpoint read at start: segments below these offsets skip CRC validation.
    recovery_points: HashMap<TopicPartition, i64>,
    /// From the checkpoint read at start: log start offsets moved by DeleteRecords.
    log_start_offsets: HashMap<TopicPartition, i64>,
    /// Held for the life of the manager: no other broker may open these directories meanwhile.
    _locks: Vec<dir_lock::DirLock>,
}

/// Reads one of Kafka's offset checkpoint files (version, count, `topic partition offset`
/// lines); a missing or unreadable file is empty.
fn read_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
    let mut offsets = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines().skip(2) {
            let mut parts = line.rsplitn(3, ' ');
            let (Some(offset), Some(partition), Some(topic)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let (Ok(offset), Ok(partition)) = (offset.parse(), partition.parse()) {
                offsets.insert(TopicPartition::new(topic, partition), offset);
            }
        }
    }
    offsets
}

/// Longest file name most file systems take (ext4, xfs, btrfs, tmpfs).
const MAX_FILE_NAME_BYTES: usize = 255;

/// The name a partition directory `<topic>-<partition>` is renamed to before its files are
/// removed: `<topic>-<partition>.<uuid>-delete`, with the topic cut short so that the name fits
/// the file-name limit even for a 249-character topic (as Kafka's `logDeleteDirName` does).
fn delete_dir_name(dir_name: &str) -> String {
    let (topic, partition) = dir_name.rsplit_once('-').unwrap_or((dir_name, ""));
    let suffix = format!("-{partition}.{}-delete", Uuid::new_v4().simple());
    let mut keep = topic
        .len()
        .min(MAX_FILE_NAME_BYTES.saturating_sub(suffix.len()));
    while !topic.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &topic[..keep])
}

/// Parses a `<topic>-<partition>` directory name.
pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition = partition.parse::<i32>().ok().filter(|p| *p >= 0)?;
    if topic.is_empty() {
        return None;
    }
    Some(TopicPartition::new(topic, partition))
}

/// A topic id as Kafka prints it: URL-safe base64 of its 16 bytes, without padding.
pub fn kafka_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::with_capacity(16);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    Uuid::from_slice(&bytes).ok()
}

/// The topic id in a partition directory's `partition.metadata`; `None` when there is none.
fn read_partition_metadata(dir: &Path) -> io::Result<Option<Uuid>> {
    let text = match std::fs::read_to_string(dir.join(PARTITION_METADATA)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| parse_kafka_uuid(id.trim()))
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed partition.metadata"))
}

impl LogManager {
    /// Opens one log directory; see `open_dirs`.
    pub fn open(dir: &Path) -> io::Result<LogManager> {
        Self::open_dirs(&[dir.to_path_buf()])
    }

    /// Creates missing directories and locks every one of `dirs` (before anything in them is
    /// read or repaired), then reads each one's checkpoints and finishes deletions a crash
    /// interrupted. A partition found in two directories is refused, as Kafka refuses it:
    /// which copy is current cannot be told.
    pub fn open_dirs(dirs: &[PathBuf]) -> io::Result<LogManager> {
        if dirs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "log.dirs names no directory",
            ));
        }
        let mut locks = Vec::with_capacity(dirs.len());
        for d in dirs {
            std::fs::create_dir_all(d).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create log directory {}: {e}", d.display()),
                )
            })?;
            locks.push(dir_lock::DirLock::acquire(d)?);
        }
        let mut log_dirs = Vec::with_capacity(dirs.len());
        let mut recovery_points = HashMap::new();
        let mut log_start_offsets = HashMap::new();
        let mut found: HashMap<TopicPartition, &Path> = HashMap::new();
        for dir in dirs {
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            let clean_shutdown = marker.exists();
            if clean_shutdown {
                std::fs::remove_file(&marker)?;
            }
            recovery_points.extend(read_checkpoint(&dir.join(RECOVERY_CHECKPOINT)));
            log_start_offsets.extend(read_checkpoint(&dir.join(LOG_START_CHECKPOINT)));
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with("-delete") {
                    std::fs::remove_dir_all(entry.path())?;
                    continue;
                }
                let Some(tp) = parse_dir_name(&name) else {
                    continue;
                };
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                if let Some(other) = found.insert(tp.clone(), dir) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "partition {tp} has a directory in both {} and {}: move away the \
                             one that is not current",
                            other.display(),
                            dir.display()
                        ),
                    ));
                }
            }
            log_dirs.push(LogDir {
                path: dir.clone(),
                clean_shutdown,
            });
        }
        let flusher = Flusher::start()?;
        Ok(LogManager {
            dirs: log_dirs,
            logs: RwLock::new(HashMap::new()),
            replicas: Replicas::new(flusher.clone()),
            flusher,
            recovery_points,
            log_start_offsets,
            _locks: locks,
        })
    }

    /// The log directory of a partition: the one holding its directory, or for a new one
    /// the directory with the fewest partitions (the first of equals), as Kafka places them.
    fn placement(&self, tp: &TopicPartition) -> usize {
        let name = tp.dir_name();
        if let Some(i) = self.dirs.iter().position(|d| d.path.join(&name).exists()) {
            return i;
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for entry in self.read_logs().values() {
            if let Some(count) = counts.get_mut(entry.dir) {
                *count += 1;
            }
        }
        counts
            .iter()
            .enumerate()
            .min_by_key(|(i, count)| (**count, *i))
            .map_or(0, |(i, _)| i)
    }

    /// Every log directory, in `log.dirs` order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The log directory holding an open partition.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        let index = self.read_logs().get(tp)?.dir;
        self.dirs.get(index).map(|d| d.path.clone())
    }

    /// Refuses `new_partitions` new partition logs when they would take the process past its
    /// open-file limit, keeping a reserve for connections and segment rolls. A partition needs
    /// `FILES_PER_NEW_PARTITION` descriptors (its `.log` and, while active, its two index
    /// files); every later sealed segment needs one more.
    pub fn check_open_file_budget(&self, new_partitions: usize) -> Result<(), String> {
        let Ok(open) = std::fs::read_dir("/proc/self/fd").map(|d| d.count()) else {
            return Ok(());
        };
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let reserve = (limit / 10).max(OPEN_FILE_RESERVE);
        let needed = new_partitions as u64 * FILES_PER_NEW_PARTITION;
        if (open as u64).saturating_add(needed).saturating_add(reserve) > limit {
            return Err(format!(
                "creating {new_partitions} partition(s) needs about {needed} more open files; \
                 {open} are open and the limit is {limit} (with {reserve} kept for connections \
                 and segment rolls): raise the open-file limit (ulimit -n) or create fewer \
                 partitions"
            ));
        }
        Ok(())
    }

    /// What writes wait for and how reads wait for data (see `replica.rs`).
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// Opens (recovering) or creates the log of a partition of the topic `topic_id`. A
    /// directory left by another incarnation of the name (its `partition.metadata` names
    /// another id; or any directory at all when `opening` is `New`) is deleted first, so a new
    /// topic never serves an old one's records. A directory without `partition.metadata`
    /// (written before Strom kept one) is adopted by an existing topic.
    pub fn open_partition(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        opening: Opening,
        config: Arc<LogConfig>,
        now_ms: i64,
    ) -> io::Result<Arc<PartitionLog>> {
        if let Some(entry) = self.read_logs().get(tp) {
            if entry.topic_id != topic_id {
                return Err(io::Error::other(format!(
                    "partition {tp} is still open for topic id {}; not reused for {topic_id}",
                    entry.topic_id
                )));
            }
            entry.log.set_config(config);
            return Ok(entry.log.clone());
        }
        let index = self.placement(tp);
        let dir = self.dirs[index].path.join(tp.dir_name());
        let stale = match (read_partition_metadata(&dir), opening) {
            (Ok(Some(found)), _) => found != topic_id,
            (Ok(None), Opening::New) => dir.exists(),
            (Ok(None), Opening::Existing) => false,
            (Err(e), _) => {
                tracing::warn!(partition = %tp, error = %e, "unreadable partition.metadata; the directory is treated as stale");
                true
            }
        };
        if stale {
            tracing::warn!(partition = %tp, %topic_id, "removing a directory left by an earlier topic of this name");
            self.remove_dir(&dir)?;
        }
        // A new incarnation starts from nothing: the checkpoints read at start describe the
        // old one.
        let (recovery_point, log_start) = if stale || opening == Opening::New {
            (0, None)
        } else if self.dirs[index].clean_shutdown {
            (i64::MAX, self.log_start_offsets.get(tp).copied())
        } else {
            (
                self.recovery_points.get(tp).copied().unwrap_or(0),
                self.log_start_offsets.get(tp).copied(),
            )
        };
        let log = Arc::new(PartitionLog::open(
            &dir,
            tp.clone(),
            config,
            recovery_point,
            now_ms,
        )?);
        if let Some(start) = log_start {
            log.restore_log_start_offset(start);
        }
        if read_partition_metadata(&dir).ok().flatten() != Some(topic_id) {
            write_atomically(
                &dir.join(PARTITION_METADATA),
                format!("version: 0\ntopic_id: {}\n", kafka_uuid(topic_id)).as_bytes(),
            )?;
        }
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        Ok(logs
            .entry(tp.clone())
            .or_insert(Incarnation {
                topic_id,
                log,
                dir: index,
            })
            .log
            .clone())
    }

    fn read_logs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Incarnation>> {
        self.logs.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.read_logs().get(tp).map(|e| e.log.clone())
    }

    pub fn all(&self) -> Vec<Arc<PartitionLog>> {
        self.read_logs().values().map(|e| e.log.clone()).collect()
    }

    /// Partition directories present on disk (whether or not metadata knows them), with the
    /// topic id their `partition.metadata` names, if any.
    pub fn partition_dirs_on_disk(&self) -> io::Result<Vec<(TopicPartition, Option<Uuid>)>> {
        let mut found = Vec::new();
        for dir in &self.dirs {
            for entry in std::fs::read_dir(&dir.path)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    if let Some(tp) = parse_dir_name(&entry.file_name().to_string_lossy()) {
                        let id = read_partition_metadata(&entry.path()).ok().flatten();
                        found.push((tp, id));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes the partition of topic `topic_id`: unreachable at once, files deleted after a
    /// rename so a crash in the middle leaves a `-delete` directory that the next start
    /// removes. A log or directory of another incarnation of the name is left alone.
    pub fn remove_partition(&self, tp: &TopicPartition, topic_id: Uuid) -> io::Result<()> {
        let removed = {
            let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
            match logs.get(tp) {
                Some(entry) if entry.topic_id == topic_id => logs.remove(tp),
                _ => None,
            }
        };
        let index = match &removed {
            Some(entry) => entry.dir,
            None => self.placement(tp),
        };
        let segments = removed
            .map(|entry| entry.log.mark_deleted())
            .unwrap_or_default();
        let dir = self.dirs[index].path.join(tp.dir_name());
        match read_partition_metadata(&dir) {
            Ok(Some(found)) if found != topic_id => {}
            _ => self.remove_dir(&dir)?,
        }
        drop(segments);
        Ok(())
    }

    /// Deletes a partition directory no topic owns (a delete a crash interrupted).
    pub fn remove_stray(&self, tp: &TopicPartition) -> io::Result<()> {
        if self.read_logs().contains_key(tp) {
            return Ok(());
        }
        for dir in &self.dirs {
            self.remove_dir(&dir.path.join(tp.dir_name()))?;
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let doomed = dir
            .parent()
            .unwrap_or(Path::new("."))
            .join(delete_dir_name(&name));
        std::fs::rename(dir, &doomed)?;
        std::fs::remove_dir_all(&doomed)
    }

    /// Writes the recovery-point and log-start-offset checkpoints (Kafka's text format:
    /// version, count, entries).
    pub fn write_checkpoints(&self) -> io::Result<()> {
        let logs: Vec<(usize, Arc<PartitionLog>)> = self
            .read_logs()
            .values()
            .map(|e| (e.dir, e.log.clone()))
            .collect();
        for (index, dir) in self.dirs.iter().enumerate() {
            let here: Vec<&Arc<PartitionLog>> = logs
                .iter()
                .filter(|(d, _)| *d == index)
                .map(|(_, log)| log)
                .collect();
            let mut recovery = format!("0\n{}\n", here.len());
            let mut starts = format!("0\n{}\n", here.len());
            for log in here {
                let tp = &log.topic_partition;
                recovery.push_str(&format!(
                    "{} {} {}\n",
                    tp.topic,
                    tp.partition,
                    log.flushed_offset()
                ));
                let start = log.offsets().log_start_offset;
                starts.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, start));
            }
            write_atomically(&dir.path.join(RECOVERY_CHECKPOINT), recovery.as_bytes())?;
            write_atomically(&dir.path.join(LOG_START_CHECKPOINT), starts.as_bytes())?;
        }
        Ok(())
    }

    /// Flushes every partition and leaves the clean-shutdown marker. Blocking. A partition
    /// that cannot be flushed (offline, or its fsync fails now) is skipped and the marker is
    /// not written, so the next start validates everything above the recovery points.
    pub fn shutdown(&self) -> io::Result<()> {
        let mut unflushed = 0usize;
        for log in self.all() {
            let up_to = log.offsets().high_watermark;
            let receiver = self.flusher.flush(log.clone(), up_to);
            let result = match receiver.blocking_recv() {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("flusher stopped".to_string()),
            };
            if let Err(error) = result {
                tracing::error!(partition = %log.topic_partition, %error, "not flushed at shutdown; the next start recovers it");
                unflushed += 1;
            }
        }
        self.write_checkpoints()?;
        if unflushed > 0 {
            return Err(io::Error::other(format!(
                "{unflushed} partition(s) could not be flushed; the next start recovers them"
            )));
        }
        for dir in &self.dirs {
            write_atomically(&dir.path.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_dir_names_fit_the_file_name_limit() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let logs = LogManager::open(dir.path())?;
        for len in [1usize, 200, 214, 249] {
            let tp = TopicPartition::new("t".repeat(len), 123);
            let name = delete_dir_name(&tp.dir_name());
            assert!(name.len() <= MAX_FILE_NAME_BYTES, "{len}: {name}");
            assert!(name.ends_with("-delete") && name.contains("-123."));
            let id = Uuid::new_v4();
            let log =
                logs.open_partition(&tp, id, Opening::New, Arc::new(LogConfig::default()), 0)?;
            drop(log);
            logs.remove_partition(&tp, id)?;
            assert!(!dir.path().join(tp.dir_name()).exists(), "{len}");
        }
        Ok(())
    }

    #[test]
    fn topic_ids_as_kafka_prints_them() {
        let id = Uuid::from_u128(0);
        assert_eq!(kafka_uuid(id), "AAAAAAAAAAAAAAAAAAAAAA");
        for _ in 0..100 {
            let id = Uuid::new_v4();
            let text = kafka_uuid(id);
            assert_eq!(text.len(), 22);
            assert_eq!(parse_kafka_uuid(&text), Some(id));
        }
        assert_eq!(parse_kafka_uuid("not base64!"), None);
    }

    fn append_one(log: &PartitionLog, value: &[u8]) -> io::Result<()> {
        let batch = crate::test_support::record_batch(
            &[value],
            0,
            None,
            kafka_protocol::records::Compression::None,
        )
        .map_err(io::Error::other)?;
        log.append(&batch, 0).map_err(io::Error::other)?;
        Ok(())
    }

    /// Every entry of `log.dirs` holds partitions, placed on the one with the fewest; each
    /// keeps its own checkpoints and marker; a restart finds every partition where it is, with
    /// its records; a partition in two directories stops the start.
    #[test]
    fn partitions_spread_over_every_log_dir_and_reopen_where_they_are() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        let config = Arc::new(LogConfig::default());
        let id = Uuid::new_v4();
        {
            let logs = LogManager::open_dirs(&dirs)?;
            for p in 0..5 {
                let tp = TopicPartition::new("t", p);
                let log = logs.open_partition(&tp, id, Opening::New, config.clone(), 0)?;
                append_one(&log, format!("record of {p}").as_bytes())?;
            }
            let in_a = (0..5)
                .filter(|p| logs.dir_of(&TopicPartition::new("t", *p)) == Some(dirs[0].clone()))
                .count();
            assert_eq!(in_a, 3, "5 partitions over 2 directories: 3 and 2");
            logs.shutdown()?;
        }
        for dir in &dirs {
            assert!(dir.join(CLEAN_SHUTDOWN_MARKER).exists());
            let checkpoint = read_checkpoint(&dir.join(RECOVERY_CHECKPOINT));
            let here = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .filter(|e| parse_dir_name(&e.file_name().to_string_lossy()).is_some())
                .count();
            assert_eq!(
                checkpoint.len(),
                here,
                "{}: its own partitions",
                dir.display()
            );
        }
        {
            let logs = LogManager::open_dirs(&dirs)?;
            for p in 0..5 {
                let tp = TopicPartition::new("t", p);
                let expected = if dirs[0].join(tp.dir_name()).exists() {
                    &dirs[0]
                } else {
                    &dirs[1]
                };
                let log = logs.open_partition(&tp, id, Opening::Existing, config.clone(), 0)?;
                assert_eq!(log.offsets().high_watermark, 1, "{tp} kept its record");
                assert_eq!(logs.dir_of(&tp).as_ref(), Some(expected));
            }
            logs.remove_partition(&TopicPartition::new("t", 1), id)?;
            assert!(!dirs.iter().any(|d| d.join("t-1").exists()));
            logs.shutdown()?;
        }
        // The same partition in both directories: refused, nothing touched.
        assert!(
            dirs[0].join("t-0").exists(),
            "the first of equals takes partition 0"
        );
        std::fs::create_dir(dirs[1].join("t-0"))?;
        let error = LogManager::open_dirs(&dirs).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("both")),
            "{error:?}"
        );
        assert!(dirs[0]
            .join("t-0")
            .join("00000000000000000000.log")
            .exists());
        Ok(())
    }

    #[test]
    fn a_new_incarnation_never_opens_the_old_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let logs = LogManager::open(dir.path())?;
        let tp = TopicPartition::new("t", 0);
        let config = Arc::new(LogConfig::default());
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let log = logs.open_partition(&tp, old, Opening::New, config.clone(), 0)?;
        log.append(
            &crate::test_support::record_batch(
                &[b"old"],
                0,
                None,
                kafka_protocol::records::Compression::None,
            )
            .map_err(io::Error::other)?,
            0,
        )
        .map_err(io::Error::other)?;
        drop(log);
        assert!(logs
            .open_partition(&tp, new, Opening::New, config.clone(), 0)
            .is_err());
        // A delete that left its directory behind (as a crash would).
        logs.logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tp);
        let log = logs.open_partition(&tp, new, Opening::Existing, config.clone(), 0)?;
        assert_eq!(
            log.offsets().high_watermark,
            0,
            "the old incarnation's record is gone"
        );
        // A late remove of the old incarnation leaves the new one alone.
        logs.remove_partition(&tp, old)?;
        assert!(logs.get(&tp).is_some());
        assert_eq!(read_partition_metadata(&dir.path().join("t-0"))?, Some(new));
        Ok(())
    }

    #[test]
    fn dir_names() {
        assert_eq!(
            parse_dir_name("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(parse_dir_name("topic"), None);
        assert_eq!(parse_dir_name("-3"), None);
        assert_eq!(parse_dir_name("t-x"), None);
    }
}
