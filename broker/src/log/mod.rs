//! The storage engine: partitions as directories of segment files, in the layout Kafka uses
//! (`<log.dirs>/<topic>-<partition>/<20-digit base offset>.log|.index|.timeindex`, plus
//! `recovery-point-offset-checkpoint` and a clean-shutdown marker in the log directory).
//!
//! Must not depend on `server`, `api` or `kafka_protocol::messages`: it speaks
//! `TopicPartition`, offsets and batch bytes.

pub mod batch;
pub mod cleaner;
pub mod dir_lock;
pub mod flusher;
pub mod partition;
#[cfg(test)]
mod recovery_tests;
pub mod segment;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::LogConfig;
pub use flusher::Flusher;
pub use partition::{PartitionLog, TopicPartition};

const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const CLEAN_SHUTDOWN_MARKER: &str = ".strom_cleanshutdown";

#[derive(Debug)]
pub struct LogManager {
    dir: PathBuf,
    logs: RwLock<HashMap<TopicPartition, Arc<PartitionLog>>>,
    flusher: Flusher,
    /// From the checkpoint read at start: segments below these offsets skip CRC validation.
    recovery_points: HashMap<TopicPartition, i64>,
    /// From the checkpoint read at start: log start offsets moved by DeleteRecords.
    log_start_offsets: HashMap<TopicPartition, i64>,
    clean_shutdown: bool,
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

/// Writes `contents` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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

impl LogManager {
    /// Opens one log directory; see `open_dirs`.
    pub fn open(dir: &Path) -> io::Result<LogManager> {
        Self::open_dirs(&[dir.to_path_buf()])
    }

    /// Creates missing directories and locks every one of `dirs` (before anything in them is
    /// read or repaired), then reads the first's checkpoints and finishes deletions a crash
    /// interrupted. Partitions live in the first directory.
    pub fn open_dirs(dirs: &[PathBuf]) -> io::Result<LogManager> {
        let Some(dir) = dirs.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "log.dirs names no directory",
            ));
        };
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
        let dir = dir.as_path();
        let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean_shutdown = marker.exists();
        if clean_shutdown {
            std::fs::remove_file(&marker)?;
        }
        let recovery_points = read_checkpoint(&dir.join(RECOVERY_CHECKPOINT));
        let log_start_offsets = read_checkpoint(&dir.join(LOG_START_CHECKPOINT));
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with("-delete") {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(LogManager {
            dir: dir.to_path_buf(),
            logs: RwLock::new(HashMap::new()),
            flusher: Flusher::start()?,
            recovery_points,
            log_start_offsets,
            clean_shutdown,
            _locks: locks,
        })
    }

    pub fn flusher(&self) -> &Flusher {
        &self.flusher
    }

    /// Opens (recovering) or creates the log of a partition.
    pub fn open_partition(
        &self,
        tp: &TopicPartition,
        config: Arc<LogConfig>,
        now_ms: i64,
    ) -> io::Result<Arc<PartitionLog>> {
        if let Some(log) = self.get(tp) {
            log.set_config(config);
            return Ok(log);
        }
        let recovery_point = if self.clean_shutdown {
            i64::MAX
        } else {
            self.recovery_points.get(tp).copied().unwrap_or(0)
        };
        let log = Arc::new(PartitionLog::open(
            &self.dir.join(tp.dir_name()),
            tp.clone(),
            config,
            recovery_point,
            now_ms,
        )?);
        if let Some(start) = self.log_start_offsets.get(tp) {
            log.restore_log_start_offset(*start);
        }
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        Ok(logs.entry(tp.clone()).or_insert(log).clone())
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tp)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Partition directories present on disk (whether or not metadata knows them).
    pub fn partition_dirs_on_disk(&self) -> io::Result<Vec<TopicPartition>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if let Some(tp) = parse_dir_name(&entry.file_name().to_string_lossy()) {
                    found.push(tp);
                }
            }
        }
        Ok(found)
    }

    /// Removes a partition: unreachable at once, files deleted after a rename so a crash in
    /// the middle leaves a `-delete` directory that the next start removes.
    pub fn remove_partition(&self, tp: &TopicPartition) -> io::Result<()> {
        let log = self
            .logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tp);
        let segments = log.map(|log| log.mark_deleted()).unwrap_or_default();
        let dir = self.dir.join(tp.dir_name());
        if dir.exists() {
            let doomed = self.dir.join(format!(
                "{}.{}-delete",
                tp.dir_name(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::rename(&dir, &doomed)?;
            std::fs::remove_dir_all(&doomed)?;
        }
        drop(segments);
        Ok(())
    }

    /// Writes the recovery-point and log-start-offset checkpoints (Kafka's text format:
    /// version, count, entries).
    pub fn write_checkpoints(&self) -> io::Result<()> {
        let logs = self.all();
        let mut recovery = format!("0\n{}\n", logs.len());
        let mut starts = format!("0\n{}\n", logs.len());
        for log in &logs {
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
        write_atomically(&self.dir.join(RECOVERY_CHECKPOINT), recovery.as_bytes())?;
        write_atomically(&self.dir.join(LOG_START_CHECKPOINT), starts.as_bytes())
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
        write_atomically(&self.dir.join(CLEAN_SHUTDOWN_MARKER), b"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
