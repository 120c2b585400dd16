//! One log segment: `<base offset>.log` holding whole RecordBatch v2 batches back to back, a
//! sparse offset index (`.index`: relative offset u32, position u32) and a time index
//! (`.timeindex`: max timestamp so far i64, relative offset u32), both in Kafka's entry layout.
//!
//! Invariants: batches in the file are complete and their offsets increase; `next_offset` is one
//! past the last offset stored; index entries increase in both fields. The in-memory indexes are
//! the truth; the index files are rebuilt from the `.log` whenever a segment is opened.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::batch::{self, BatchHeader, HEADER_BYTES};
use crate::txn::producer_state::ProducerStateManager;

pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A segment's read handle. Reads seek and read under its lock so that the buffer can be
/// filled from uninitialised capacity (`read_to_end`) instead of being zeroed first.
pub type Reader = Arc<Mutex<File>>;

/// Reads exactly `len` bytes at `position`, or fewer if the file ends first.
pub fn read_at(reader: &Reader, position: u64, len: usize) -> io::Result<Bytes> {
    let mut file = reader.lock().unwrap_or_else(|e| e.into_inner());
    file.seek(SeekFrom::Start(position))?;
    let mut buf = Vec::with_capacity(len);
    (&mut *file).take(len as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub created_ms: i64,
    log: Arc<File>,
    reader: Reader,
    log_path: PathBuf,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    /// Open only while the segment is active; sealed segments keep their indexes in memory.
    index_file: Option<File>,
    time_index_file: Option<File>,
    bytes_since_index: u64,
}

/// What opening an existing segment found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Bytes cut off the end because they were torn or invalid.
    pub truncated_bytes: u64,
}

impl Segment {
    fn open_files(dir: &Path, base_offset: i64) -> io::Result<(File, File, PathBuf, File, File)> {
        let stem = file_stem(base_offset);
        let log_path = dir.join(format!("{stem}.log"));
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)?;
        let reader = File::open(&log_path)?;
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
        Ok((log, reader, log_path, index_file, time_index_file))
    }

    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let (log, reader, log_path, index_file, time_index_file) =
            Self::open_files(dir, base_offset)?;
        log.set_len(0)?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            log: Arc::new(log),
            reader: Arc::new(Mutex::new(reader)),
            log_path,
            index: Vec::new(),
            time_index: Vec::new(),
            index_file: Some(index_file),
            time_index_file: Some(time_index_file),
            bytes_since_index: 0,
        })
    }

    /// Opens an existing segment, walking its batches to rebuild the indexes and the producer
    /// state. With `validate`, every batch's CRC is checked too; the file is truncated at the
    /// first torn or invalid batch.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        validate: bool,
        index_interval_bytes: u64,
        producers: &mut ProducerStateManager,
        now_ms: i64,
    ) -> io::Result<(Segment, Recovered)> {
        let mut segment = Self::create_without_truncate(dir, base_offset, now_ms)?;
        let file_len = segment.log.metadata()?.len();
        let mut position = 0u64;
        let mut recovered = Recovered::default();
        while position < file_len {
            let header_bytes = read_at(&segment.reader, position, HEADER_BYTES)?;
            let header = match BatchHeader::parse(&header_bytes) {
                Ok(h) => h,
                Err(_) => break,
            };
            if position + header.size as u64 > file_len || header.base_offset < segment.next_offset
            {
                break;
            }
            if validate {
                let whole = read_at(&segment.reader, position, header.size)?;
                if batch::validate_stored(&whole).is_err() {
                    break;
                }
            }
            segment.index_batch(&header, position, index_interval_bytes)?;
            producers.record(&header);
            position += header.size as u64;
            segment.size = position;
        }
        if position < file_len {
            recovered.truncated_bytes = file_len - position;
            segment.log.set_len(position)?;
            segment.log.sync_all()?;
        }
        Ok((segment, recovered))
    }

    fn create_without_truncate(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let (log, reader, log_path, index_file, time_index_file) =
            Self::open_files(dir, base_offset)?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            log: Arc::new(log),
            reader: Arc::new(Mutex::new(reader)),
            log_path,
            index: Vec::new(),
            time_index: Vec::new(),
            index_file: Some(index_file),
            time_index_file: Some(time_index_file),
            bytes_since_index: 0,
        })
    }

    /// Updates the indexes and counters for a batch now stored at `position`.
    fn index_batch(
        &mut self,
        header: &BatchHeader,
        position: u64,
        index_interval_bytes: u64,
    ) -> io::Result<()> {
        let relative = (header.base_offset - self.base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= index_interval_bytes {
            self.index.push((relative, position as u32));
            let mut entry = [0u8; 8];
            entry[..4].copy_from_slice(&relative.to_be_bytes());
            entry[4..].copy_from_slice(&(position as u32).to_be_bytes());
            if let Some(file) = &mut self.index_file {
                file.write_all(&entry)?;
            }
            if header.max_timestamp > self.time_index.last().map_or(-1, |e| e.0) {
                let last_relative = (header.last_offset() - self.base_offset) as u32;
                self.time_index.push((header.max_timestamp, last_relative));
                let mut entry = [0u8; 12];
                entry[..8].copy_from_slice(&header.max_timestamp.to_be_bytes());
                entry[8..].copy_from_slice(&last_relative.to_be_bytes());
                if let Some(file) = &mut self.time_index_file {
                    file.write_all(&entry)?;
                }
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        debug_assert!(header.last_offset() >= self.next_offset);
        self.next_offset = header.last_offset() + 1;
        Ok(())
    }

    /// Appends one batch as the client sent it (`bytes`), with the broker-assigned
    /// `header.base_offset` and partition leader epoch 0 written over the first 16 bytes.
    /// Neither field is covered by the CRC. On a failed write the file is cut back, so a
    /// partial batch never stays behind.
    pub fn append(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        index_interval_bytes: u64,
    ) -> io::Result<()> {
        debug_assert_eq!(header.size, bytes.len());
        debug_assert!(header.base_offset >= self.next_offset);
        let position = self.size;
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&header.base_offset.to_be_bytes());
        prefix[8..12].copy_from_slice(&bytes[8..12]);
        let mut slices = [IoSlice::new(&prefix), IoSlice::new(&bytes[16..])];
        if let Err(e) = write_all_vectored(&self.log, &mut slices) {
            let _ = self.log.set_len(position);
            return Err(e);
        }
        self.size += bytes.len() as u64;
        self.index_batch(header, position, index_interval_bytes)
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
            reader: self.reader.clone(),
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
