//! One log segment: `<base offset>.log` holding whole RecordBatch v2 batches back to back, a
//! sparse offset index (`.index`: relative offset u32, position u32) and a time index
//! (`.timeindex`: max timestamp so far i64, relative offset u32), both in Kafka's entry layout.
//!
//! Invariants: batches in the file are complete and their offsets increase; `next_offset` is one
//! past the last offset stored; index entries increase in both fields. The in-memory indexes are
//! the truth; the index files are derived data, rebuilt from the `.log` whenever a segment is
//! opened, so a failed index write is logged and never fails an append.
//!
//! One file descriptor per segment for the `.log` (appends and positional reads share it), plus
//! the two index files while the segment is active.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::producer_state::ProducerStateManager;

pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

fn write_all_vectored(file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match write_some(file, slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(test))]
fn write_some(mut file: &File, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    file.write_vectored(slices)
}

/// In unit tests, a write can be made short or made to fail after some bytes, as a full or
/// failing disk does (see `write_faults`).
#[cfg(test)]
fn write_some(mut file: &File, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    write_faults::FAULTS.with(|cell| {
        let mut faults = cell.get();
        let mut limit = faults.max_per_call.unwrap_or(usize::MAX);
        if let Some((left, errno)) = faults.fail_after {
            if left == 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            limit = limit.min(left);
        }
        let first = &slices[0];
        let n = if limit < usize::MAX {
            file.write(&first[..first.len().min(limit)])?
        } else {
            file.write_vectored(slices)?
        };
        if let Some((left, errno)) = faults.fail_after {
            faults.fail_after = Some((left - n.min(left), errno));
        }
        cell.set(faults);
        Ok(n)
    })
}

/// Test hook: faults for the `.log` writes of this thread.
#[cfg(test)]
pub(crate) mod write_faults {
    use std::cell::Cell;

    #[derive(Clone, Copy, Debug, Default)]
    pub struct WriteFaults {
        /// Each write call takes at most this many bytes (a short write).
        pub max_per_call: Option<usize>,
        /// After this many more bytes, every write fails with this errno.
        pub fail_after: Option<(usize, i32)>,
    }

    thread_local! {
        pub static FAULTS: Cell<WriteFaults> = Cell::new(WriteFaults::default());
    }

    pub fn set(faults: WriteFaults) {
        FAULTS.with(|cell| cell.set(faults));
    }
}

/// A segment's read handle: the `.log` file itself, read with positional reads (`pread`), so
/// readers share it without a lock and without a descriptor of their own.
pub type Reader = Arc<File>;

/// Reads exactly `len` bytes at `position`, or fewer if the file ends first.
pub fn read_at(reader: &Reader, position: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match reader.read_at(&mut buf[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// Why a scan stopped: the file ends inside a batch header / inside a batch (a torn write
/// leaves these at the end of the newest segment).
pub const PARTIAL_HEADER: &str = "a batch header cut short by the end of the file";
pub const PARTIAL_BATCH: &str = "a batch that runs past the end of the file";

/// A failed append, by what it left in the file.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Nothing of the batch stayed in the file: the segment is as it was.
    #[error("write failed: {0}")]
    RolledBack(io::Error),
    /// The write failed and the file could not be cut back: it may end in a partial batch.
    #[error("write failed ({write}) and the segment could not be cut back ({truncate})")]
    Damaged {
        write: io::Error,
        truncate: io::Error,
    },
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub created_ms: i64,
    log: Arc<File>,
    log_path: PathBuf,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    /// Open only while the segment is active; sealed segments keep their indexes in memory.
    index_file: Option<File>,
    time_index_file: Option<File>,
    bytes_since_index: u64,
    /// An index file write failed once (logged); the in-memory index carries on.
    index_write_failed: bool,
}

/// What opening an existing segment found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Bytes at the end of the file, from the first torn or invalid batch on, that the segment
    /// does not include. The file still holds them: the caller decides whether they are a torn
    /// tail to cut (`Segment::truncate_file`) or damage to report.
    pub invalid_bytes: u64,
    /// Why the scan stopped early, when it did.
    pub reason: Option<&'static str>,
}

impl Segment {
    fn open_files(dir: &Path, base_offset: i64) -> io::Result<(File, PathBuf, File, File)> {
        let stem = file_stem(base_offset);
        let log_path = dir.join(format!("{stem}.log"));
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)?;
        let index_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(format!("{stem}.index")))?;
        let time_index_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(format!("{stem}.timeindex")))?;
        Ok((log, log_path, index_file, time_index_file))
    }

    /// Creates a new, empty segment. If any of its files cannot be created, none is left
    /// behind (a stray empty segment would otherwise be found at the next start).
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let created = Self::create_without_truncate(dir, base_offset, now_ms)
            .and_then(|segment| segment.log.set_len(0).map(|()| segment));
        if created.is_err() {
            let stem = file_stem(base_offset);
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
            }
        }
        created
    }

    /// Opens an existing segment, walking its batches to rebuild the indexes and the producer
    /// state. With `validate`, every batch's CRC is checked too. The segment ends before the
    /// first torn or invalid batch; the file is left as it is (see `Recovered`).
    pub fn open(
        dir: &Path,
        base_offset: i64,
        validate: bool,
        index_interval_bytes: u64,
        producers: &mut ProducerStateManager,
        now_ms: i64,
    ) -> io::Result<(Segment, Recovered)> {
        let mut segment = Self::create_without_truncate(dir, base_offset, now_ms)?;
        let recovered = segment.scan(validate, index_interval_bytes, producers)?;
        Ok((segment, recovered))
    }

    /// A cleaned copy of a sealed segment (`cleaned`, written by the cleaner), read and indexed
    /// in memory before it replaces the segment, so that the swap under the partition lock is
    /// only a rename. The segment answers for `<base offset>.log`, the name the file takes.
    pub fn open_cleaned(
        dir: &Path,
        base_offset: i64,
        cleaned: &Path,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let mut segment = Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            log: Arc::new(File::open(cleaned)?),
            log_path: dir.join(format!("{}.log", file_stem(base_offset))),
            index: Vec::new(),
            time_index: Vec::new(),
            index_file: None,
            time_index_file: None,
            bytes_since_index: 0,
            index_write_failed: false,
        };
        let recovered = segment.scan(
            false,
            index_interval_bytes,
            &mut ProducerStateManager::default(),
        )?;
        if let Some(reason) = recovered.reason {
            return Err(io::Error::other(format!(
                "{}: the cleaned copy holds {reason}",
                cleaned.display()
            )));
        }
        Ok(segment)
    }

    /// Reads the batches of the file from the start, building the in-memory indexes, up to the
    /// first torn or invalid one.
    fn scan(
        &mut self,
        validate: bool,
        index_interval_bytes: u64,
        producers: &mut ProducerStateManager,
    ) -> io::Result<Recovered> {
        let segment = self;
        let base_offset = segment.base_offset;
        let file_len = segment.log.metadata()?.len();
        let mut position = 0u64;
        let mut recovered = Recovered::default();
        while position < file_len {
            let header_bytes = read_at(&segment.log, position, HEADER_BYTES)?;
            let header = match BatchHeader::parse(&header_bytes) {
                Ok(h) => h,
                Err(_) => {
                    recovered.reason = Some(if header_bytes.len() < HEADER_BYTES {
                        PARTIAL_HEADER
                    } else {
                        "an unreadable batch header"
                    });
                    break;
                }
            };
            if position + header.size as u64 > file_len {
                recovered.reason = Some(PARTIAL_BATCH);
                break;
            }
            if header.base_offset < segment.next_offset || header.base_offset < base_offset {
                recovered.reason = Some("a batch whose offsets go backwards");
                break;
            }
            if validate {
                let whole = read_at(&segment.log, position, header.size)?;
                if batch::validate_stored(&whole).is_err() {
                    recovered.reason = Some("a batch that fails its CRC or length checks");
                    break;
                }
            }
            segment.index_batch(&header, position, index_interval_bytes);
            if header.is_control() {
                // A transaction marker ends its producer's transaction; it is small, so read
                // whole.
                let whole = read_at(&segment.log, position, header.size)?;
                if let Some(marker) = super::marker::parse(&whole) {
                    producers.record_marker(&header, marker.commit, marker.coordinator_epoch);
                }
            } else {
                producers.record(&header);
            }
            position += header.size as u64;
            segment.size = position;
        }
        recovered.invalid_bytes = file_len - position;
        Ok(recovered)
    }

    /// Cuts the file back to the batches the segment holds (a torn tail found at open), durably.
    pub fn truncate_file(&self) -> io::Result<()> {
        self.log.set_len(self.size)?;
        self.log.sync_all()
    }

    fn create_without_truncate(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let (log, log_path, index_file, time_index_file) = Self::open_files(dir, base_offset)?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            log: Arc::new(log),
            log_path,
            index: Vec::new(),
            time_index: Vec::new(),
            index_file: Some(index_file),
            time_index_file: Some(time_index_file),
            bytes_since_index: 0,
            index_write_failed: false,
        })
    }

    /// Writes an index entry to its file. A failure is logged once and the file abandoned:
    /// the in-memory index is the truth and the file is rebuilt at the next open.
    fn write_index_entry(&mut self, time_index: bool, entry: &[u8]) {
        let file = if time_index {
            &mut self.time_index_file
        } else {
            &mut self.index_file
        };
        let Some(handle) = file else {
            return;
        };
        if let Err(e) = handle.write_all(entry) {
            *file = None;
            if !std::mem::replace(&mut self.index_write_failed, true) {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    error = %e,
                    "index file write failed; the segment keeps its index in memory and the \
                     file is rebuilt at the next start"
                );
            }
        }
    }

    /// Updates the indexes and counters for a batch now stored at `position`.
    fn index_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u64) {
        let relative = (header.base_offset - self.base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= index_interval_bytes {
            self.index.push((relative, position as u32));
            let mut entry = [0u8; 8];
            entry[..4].copy_from_slice(&relative.to_be_bytes());
            entry[4..].copy_from_slice(&(position as u32).to_be_bytes());
            self.write_index_entry(false, &entry);
            if header.max_timestamp > self.time_index.last().map_or(-1, |e| e.0) {
                let last_relative = (header.last_offset() - self.base_offset) as u32;
                self.time_index.push((header.max_timestamp, last_relative));
                let mut entry = [0u8; 12];
                entry[..8].copy_from_slice(&header.max_timestamp.to_be_bytes());
                entry[8..].copy_from_slice(&last_relative.to_be_bytes());
                self.write_index_entry(true, &entry);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        debug_assert!(header.last_offset() >= self.next_offset);
        self.next_offset = header.last_offset() + 1;
    }

    /// Appends one batch as the client sent it (`bytes`), with the broker-assigned
    /// `header.base_offset` and partition leader epoch 0 written over the first 16 bytes.
    /// Neither field is covered by the CRC. On a failed write the file is cut back, so a
    /// partial batch never stays behind; if even that fails, `WriteError::Damaged` says so and
    /// the caller must stop appending here. Index files are derived: their failures are not
    /// the append's.
    pub fn append(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        index_interval_bytes: u64,
    ) -> Result<(), WriteError> {
        debug_assert_eq!(header.size, bytes.len());
        debug_assert!(header.base_offset >= self.next_offset);
        let position = self.size;
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&header.base_offset.to_be_bytes());
        prefix[8..12].copy_from_slice(&bytes[8..12]);
        let mut slices = [IoSlice::new(&prefix), IoSlice::new(&bytes[16..])];
        if let Err(write) = write_all_vectored(&self.log, &mut slices) {
            return match self.log.set_len(position) {
                Ok(()) => Err(WriteError::RolledBack(write)),
                Err(truncate) => Err(WriteError::Damaged { write, truncate }),
            };
        }
        self.size += bytes.len() as u64;
        self.index_batch(header, position, index_interval_bytes);
        Ok(())
    }

    /// Test hook: swaps the index files (or the `.log` too) for read-only handles, so the
    /// next write to them fails with a real error from the OS.
    #[cfg(test)]
    pub(crate) fn make_files_read_only(&mut self, log_too: bool) -> io::Result<()> {
        let stem = self.log_path.with_extension("");
        self.index_file = Some(File::open(stem.with_extension("index"))?);
        self.time_index_file = Some(File::open(stem.with_extension("timeindex"))?);
        if log_too {
            self.log = Arc::new(File::open(&self.log_path)?);
        }
        Ok(())
    }

    /// Closes the index files of a segment that will not be appended to again.
    pub fn seal(&mut self) {
        self.index_file = None;
        self.time_index_file = None;
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn log_file(&self) -> Arc<File> {
        self.log.clone()
    }

    /// A view of the bytes from `start` to the current end, readable without the log's lock.
    pub fn slice_from(&self, start: u64) -> SegmentSlice {
        SegmentSlice {
            reader: self.log.clone(),
            start,
            end: self.size,
        }
    }

    /// The position to start scanning from for `offset`: the last indexed batch at or below it.
    pub fn position_for(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let i = self.index.partition_point(|e| e.0 <= relative);
        if i == 0 {
            0
        } else {
            u64::from(self.index[i - 1].1)
        }
    }

    /// The position to start scanning from when looking for the first record whose timestamp
    /// is at least `timestamp`: every batch before the last time-index entry below `timestamp`
    /// is older.
    pub fn position_for_timestamp(&self, timestamp: i64) -> u64 {
        let i = self.time_index.partition_point(|e| e.0 < timestamp);
        if i == 0 {
            0
        } else {
            self.position_for(self.base_offset + i64::from(self.time_index[i - 1].1) + 1)
        }
    }

    /// Deletes this segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        let stem = self.log_path.with_extension("");
        for ext in ["log", "index", "timeindex"] {
            match std::fs::remove_file(stem.with_extension(ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What the cleaner may compact in one pass: the closed segments old enough and wholly below the
/// first open transaction, and the aborted transactions with records among them.
#[derive(Debug)]
pub struct Cleanable {
    pub config: Arc<crate::config::LogConfig>,
    pub segments: Vec<CleanableSegment>,
    pub aborted: Vec<super::producer_state::AbortedTxn>,
}

/// A closed segment handed to the cleaner.
#[derive(Debug, Clone)]
pub struct CleanableSegment {
    pub base_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub slice: SegmentSlice,
}

/// A consistent view of a segment's bytes that can be read without holding the log's lock.
#[derive(Debug, Clone)]
pub struct SegmentSlice {
    pub reader: Reader,
    pub start: u64,
    pub end: u64,
}

impl SegmentSlice {
    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// (at least one whole batch even if larger, KIP-74). `None` when no batch at or after
    /// `offset` lies in this slice.
    pub fn read_batches(&self, offset: i64, max_bytes: usize) -> io::Result<Option<Bytes>> {
        const SLACK_BYTES: usize = 16 * 1024;
        let mut position = self.start;
        while position < self.end {
            let remaining = (self.end - position) as usize;
            let want = remaining.min(max_bytes.saturating_add(SLACK_BYTES));
            let buf = read_at(&self.reader, position, want)?;
            let mut first: Option<usize> = None;
            let mut taken_end = 0usize;
            let mut consumed = 0usize;
            let mut iter_pos = 0usize;
            while iter_pos + HEADER_BYTES <= buf.len() {
                let Ok(header) = BatchHeader::parse(&buf[iter_pos..]) else {
                    return Ok(first.map(|s| buf.slice(s..taken_end)));
                };
                let end = iter_pos + header.size;
                match first {
                    None if header.last_offset() < offset => {
                        consumed = end;
                        if end > buf.len() {
                            break;
                        }
                    }
                    None => {
                        if end > buf.len() {
                            // The first batch is larger than what was read: read all of it.
                            let whole = read_at(
                                &self.reader,
                                position + iter_pos as u64,
                                header.size.min((self.end - position) as usize - iter_pos),
                            )?;
                            return Ok(Some(whole));
                        }
                        first = Some(iter_pos);
                        taken_end = end;
                    }
                    Some(start) => {
                        if end > buf.len() || end - start > max_bytes {
                            break;
                        }
                        taken_end = end;
                    }
                }
                iter_pos = end;
            }
            if let Some(start) = first {
                return Ok(Some(buf.slice(start..taken_end)));
            }
            if consumed == 0 {
                // Not even one whole header fits: the slice ends in the middle of a batch.
                return Ok(None);
            }
            position += consumed as u64;
        }
        Ok(None)
    }

    /// Calls `visit` for each batch header in the slice, in order, until it returns false.
    pub fn scan_headers(
        &self,
        mut visit: impl FnMut(&BatchHeader, u64) -> io::Result<bool>,
    ) -> io::Result<()> {
        let mut position = self.start;
        while position + HEADER_BYTES as u64 <= self.end {
            let bytes = read_at(&self.reader, position, HEADER_BYTES)?;
            let Ok(header) = BatchHeader::parse(&bytes) else {
                return Ok(());
            };
            if !visit(&header, position)? {
                return Ok(());
            }
            position += header.size as u64;
        }
        Ok(())
    }
}
