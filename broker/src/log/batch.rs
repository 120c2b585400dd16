//! A read-only view of a RecordBatch (magic 2) header and its validation. The broker's only
//! edits on append (base offset, partition leader epoch) happen as the batch is written, in
//! `Segment::append`.
//!
//! Layout (KIP-98): baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 |
//! crc u32 | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! The CRC-32C covers everything from `attributes` to the end, so assigning the base offset or
//! the leader epoch never changes it.

use thiserror::Error;

pub const HEADER_BYTES: usize = 61;
/// Bytes before the `batchLength` field's payload starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
pub const NO_PRODUCER_ID: i64 = -1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record set too short for a batch header ({0} bytes)")]
    Truncated(usize),
    #[error("batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported magic byte {0}")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("records section is malformed")]
    MalformedRecords,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// The header fields of one batch, copied out of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total bytes of this batch including the 12-byte offset/length prefix.
    pub size: usize,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `bytes`. Needs only the first 61 bytes; `size` tells
    /// how many bytes the whole batch occupies.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Truncated(bytes.len()));
        }
        let batch_length = i32_at(bytes, 8);
        let magic = bytes[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated(bytes.len()));
        }
        if batch_length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: i64_at(bytes, 0),
            size: LOG_OVERHEAD + batch_length as usize,
            magic,
            crc: u32::from_be_bytes([
                bytes[CRC_AT],
                bytes[CRC_AT + 1],
                bytes[CRC_AT + 2],
                bytes[CRC_AT + 3],
            ]),
            attributes: i16_at(bytes, ATTRIBUTES_AT),
            last_offset_delta: i32_at(bytes, 23),
            base_timestamp: i64_at(bytes, 27),
            max_timestamp: i64_at(bytes, 35),
            producer_id: i64_at(bytes, 43),
            producer_epoch: i16_at(bytes, 51),
            base_sequence: i32_at(bytes, 53),
            record_count: i32_at(bytes, 57),
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    /// A CreateTime batch whose max timestamp is below its first record's: the producer left
    /// it unset (sarama before 1.45 sends -1). Kafka recomputes it from the records, and the
    /// time index and ListOffsets by time depend on it.
    pub fn max_timestamp_unset(&self) -> bool {
        !self.is_log_append_time() && self.max_timestamp < self.base_timestamp
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// The last sequence number in this batch; sequences wrap at i32::MAX (Kafka's
    /// `DefaultRecordBatch.incrementSequence`).
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Fully validates one batch a producer sent, whose bytes are exactly `batch`: header, CRC-32C,
/// dense offsets (`last_offset_delta == record_count - 1`, as Kafka requires of clients) and,
/// for uncompressed batches, that the records section holds `record_count` well-formed records.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_batch(batch, true)
}

/// Validates a stored batch at recovery: as `validate`, except that compaction leaves batches
/// with fewer records than their offset range (`record_count <= last_offset_delta + 1`).
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_batch(batch, false)
}

fn validate_batch(batch: &[u8], dense: bool) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.size != batch.len() {
        return Err(BatchError::BadLength(i32_at(batch, 8)));
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let counts_fit = if dense {
        header.record_count == 0 || header.last_offset_delta == header.record_count - 1
    } else {
        i64::from(header.record_count) <= i64::from(header.last_offset_delta) + 1
    };
    if header.record_count < 0 || header.last_offset_delta < 0 || !counts_fit {
        return Err(BatchError::CountMismatch {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.record_count == 0 && !header.is_control() {
        return Err(BatchError::CountMismatch {
            count: 0,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.compression() == 0 {
        count_records(&batch[HEADER_BYTES..], header.record_count)?;
    }
    Ok(header)
}

/// Marks a batch as LogAppendTime stamped at `now_ms` (`message.timestamp.type`): the
/// timestamp-type attribute bit and the max timestamp, which readers then use for every
/// record; the CRC is recomputed. `batch` was validated.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_BYTES {
        return;
    }
    let attributes = i16_at(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    set_max_timestamp(batch, now_ms);
}

/// Writes the batch's max timestamp and recomputes the CRC. `batch` was validated.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    const MAX_TIMESTAMP_AT: usize = 35;
    if batch.len() < HEADER_BYTES {
        return;
    }
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The timestamp-type attribute bit: set for LogAppendTime.
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

/// Reads a zig-zag varint, returning (value, bytes used).
fn varint(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1));
        }
    }
    None
}

/// Walks the length prefixes of an uncompressed records section.
fn count_records(mut records: &[u8], expected: i32) -> Result<(), BatchError> {
    for _ in 0..expected {
        let (length, used) = varint(records).ok_or(BatchError::MalformedRecords)?;
        let length = usize::try_from(length).map_err(|_| BatchError::MalformedRecords)?;
        let end = used
            .checked_add(length)
            .filter(|end| *end <= records.len())
            .ok_or(BatchError::MalformedRecords)?;
        records = &records[end..];
    }
    if records.is_empty() {
        Ok(())
    } else {
        Err(BatchError::MalformedRecords)
    }
}

/// Iterates over the batches in a record set, yielding (header, start position) and stopping at
/// the first incomplete or invalid header.
pub fn headers(records: &[u8]) -> impl Iterator<Item = (BatchHeader, usize)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&records[position..]).ok()?;
        if position + header.size > records.len() {
            return None;
        }
        let start = position;
        position += header.size;
        Some((header, start))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    pub type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A batch of `values` with timestamps 1000, 1001, ...
    pub fn encode_batch(values: &[&[u8]], compression: Compression) -> anyhow::Result<Vec<u8>> {
        Ok(crate::test_support::record_batch(values, 1_000, None, compression)?.to_vec())
    }

    #[test]
    fn validates_encoded_batches() -> TestResult {
        for compression in [Compression::None, Compression::Gzip, Compression::Lz4] {
            let batch = encode_batch(&[b"a", b"bc", b"def"], compression)?;
            let header = validate(&batch)?;
            assert_eq!(header.record_count, 3);
            assert_eq!(header.last_offset_delta, 2);
            assert_eq!(header.size, batch.len());
            assert_eq!(header.max_timestamp, 1_002);
        }
        Ok(())
    }

    #[test]
    fn detects_corruption() -> TestResult {
        let batch = encode_batch(&[b"hello"], Compression::None)?;
        let mut bad = batch.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            validate(&bad),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(validate(&batch[..batch.len() - 1]).is_err());
        assert!(validate(&batch[..10]).is_err());
        let mut v1 = batch.clone();
        v1[16] = 1;
        assert_eq!(validate(&v1), Err(BatchError::UnsupportedMagic(1)));
        Ok(())
    }

    #[test]
    fn sequence_wraps() -> TestResult {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(5, 3), 8);
        Ok(())
    }

    #[test]
    fn arbitrary_bytes_never_panic() -> TestResult {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = encode_batch(&[b"abc", b"de"], Compression::None)?;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            let flips = rng.gen_range(1..4);
            for _ in 0..flips {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            let cut = rng.gen_range(0..=bytes.len());
            let _ = validate(&bytes[..cut]);
            let _ = headers(&bytes[..cut]).count();
        }
        Ok(())
    }
}
