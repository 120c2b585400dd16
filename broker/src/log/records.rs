//! The records inside a stored or produced batch, read with a bound on decompression.
//!
//! A batch of a few hundred kilobytes can inflate to gigabytes (a "decompression bomb"), so
//! nothing in the broker decompresses without a limit: `walk` streams the records through the
//! codec and stops once more than the limit has come out, holding one small buffer at a time;
//! `decode` (for the cleaner and for recompression, which need whole records) decompresses
//! into memory only up to the same limit. The limit derives from the topic's
//! `max.message.bytes` (`decompressed_limit`).
//!
//! Record layout inside the (decompressed) records section, magic 2 (KIP-98): length varint |
//! attributes i8 | timestampDelta varlong | offsetDelta varint | keyLength varint | key |
//! valueLength varint | value | header count varint | headers.

use std::io::{self, Read};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

use super::batch::{BatchError, BatchHeader, HEADER_BYTES};

/// How many times `max.message.bytes` a batch may inflate to. Producers fill batches by their
/// compressed size (`batch.size`, 16 KiB by default), so real batches stay far below this;
/// Kafka itself has no such bound, only streaming (see docs/COMPATIBILITY.md).
pub const DECOMPRESSION_RATIO_LIMIT: u64 = 64;

/// The most bytes a batch's records may decompress to under `max_message_bytes`.
pub fn decompressed_limit(max_message_bytes: i32) -> u64 {
    u64::try_from(max_message_bytes.max(1)).unwrap_or(1) * DECOMPRESSION_RATIO_LIMIT
}

/// What `walk` reports of each record: only the fields validation and lookups need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    /// Position in the batch (Kafka's `batch_index` in `record_errors`).
    pub index: i32,
    pub offset_delta: i32,
    /// The record's own timestamp (base timestamp + delta), whatever the timestamp type.
    pub timestamp: i64,
    pub has_key: bool,
}

/// Why the records of a batch could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error("the records decompress to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("records section is malformed")]
    Malformed,
}

impl From<RecordsError> for BatchError {
    fn from(_: RecordsError) -> BatchError {
        BatchError::MalformedRecords
    }
}

/// A reader that fails once more than `limit` bytes have been read through it, so a bomb is
/// cut off after `limit` bytes of work.
struct Limited<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte more than allowed, to tell "exactly the limit" from "more".
        let want = buf
            .len()
            .min(usize::try_from(self.remaining + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other("decompression limit exceeded"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The xerial "snappy-java" framing Kafka uses: a magic header, then (u32 length, raw snappy
/// block) pairs; without the header, one raw block (as snappy-java accepts too). Each block's
/// declared length is checked against what may still come out before it is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    position: usize,
    remaining: u64,
}

const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: u64) -> SnappyReader<'a> {
        let framed = input.starts_with(SNAPPY_MAGIC);
        SnappyReader {
            input: if framed {
                &input[SNAPPY_MAGIC.len()..]
            } else {
                input
            },
            framed,
            block: Vec::new(),
            position: 0,
            remaining: limit,
        }
    }

    fn next_block(&mut self) -> io::Result<bool> {
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            let malformed = || io::Error::new(io::ErrorKind::InvalidData, "short snappy frame");
            let length = self.input.get(..4).ok_or_else(malformed)?;
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
            let block = self
                .input
                .get(4..4usize.saturating_add(length))
                .ok_or_else(malformed)?;
            self.input = &self.input[4 + length..];
            block
        } else {
            std::mem::take(&mut self.input)
        };
        let length = snap::raw::decompress_len(compressed)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if length as u64 > self.remaining {
            // One byte more than allowed tells `Limited` the limit was passed.
            return Err(io::Error::other("decompression limit exceeded"));
        }
        self.remaining -= length as u64;
        self.block.resize(length, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.position = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.position);
        buf[..n].copy_from_slice(&self.block[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// The decompressed records section of `batch` as a stream, cut off after `limit` bytes.
fn records_reader<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: u64,
) -> Result<Limited<Box<dyn Read + 'a>>, RecordsError> {
    let section = batch.get(HEADER_BYTES..).ok_or(RecordsError::Malformed)?;
    records_reader_for(section, header.compression(), limit)
}

/// Reads from a `Limited` stream, telling a passed limit from a malformed stream.
struct Stream<'a> {
    reader: Limited<Box<dyn Read + 'a>>,
    limit: u64,
}

impl Stream<'_> {
    fn error(&self, e: &io::Error) -> RecordsError {
        if self.reader.exceeded || e.to_string().contains("decompression limit exceeded") {
            RecordsError::TooLarge { limit: self.limit }
        } else {
            RecordsError::Malformed
        }
    }

    /// One byte, or `None` at the end of the stream.
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let mut b = [0u8; 1];
        loop {
            match self.reader.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(&e)),
            }
        }
    }

    /// A zig-zag varlong and the bytes it took; `None` at a clean end of stream.
    fn varlong(&mut self) -> Result<Option<(i64, u64)>, RecordsError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(b) = self.byte()? else {
                return if i == 0 {
                    Ok(None)
                } else {
                    Err(RecordsError::Malformed)
                };
            };
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1)));
            }
        }
        Err(RecordsError::Malformed)
    }

    fn required_varlong(&mut self) -> Result<(i64, u64), RecordsError> {
        self.varlong()?.ok_or(RecordsError::Malformed)
    }

    /// Skips `count` bytes without keeping them.
    fn skip(&mut self, count: u64) -> Result<(), RecordsError> {
        let copied = io::copy(&mut (&mut self.reader).take(count), &mut io::sink())
            .map_err(|e| self.error(&e))?;
        if copied == count {
            Ok(())
        } else {
            Err(RecordsError::Malformed)
        }
    }
}

/// Streams the records of one whole, CRC-checked batch through `visit`, decompressing at most
/// `limit` bytes and holding none of them. Stops early when `visit` returns false. The stream
/// must hold exactly `header.record_count` well-formed records (Kafka's
/// `DefaultRecordBatch` iterator refuses a short stream and trailing bytes alike).
pub fn walk(
    batch: &[u8],
    header: &BatchHeader,
    limit: u64,
    mut visit: impl FnMut(RecordSummary) -> bool,
) -> Result<(), RecordsError> {
    let mut stream = Stream {
        reader: records_reader(batch, header, limit)?,
        limit,
    };
    for index in 0..header.record_count.max(0) {
        let (length, _) = stream.required_varlong()?;
        let length = u64::try_from(length).map_err(|_| RecordsError::Malformed)?;
        let _attributes = stream.byte()?.ok_or(RecordsError::Malformed)?;
        let (timestamp_delta, a) = stream.required_varlong()?;
        let (offset_delta, b) = stream.required_varlong()?;
        let (key_length, c) = stream.required_varlong()?;
        let read = 1 + a + b + c;
        let rest = length.checked_sub(read).ok_or(RecordsError::Malformed)?;
        let summary = RecordSummary {
            index,
            offset_delta: i32::try_from(offset_delta).map_err(|_| RecordsError::Malformed)?,
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            has_key: key_length >= 0,
        };
        if !visit(summary) {
            return Ok(());
        }
        stream.skip(rest)?;
    }
    match stream.byte()? {
        None => Ok(()),
        Some(_) => Err(RecordsError::Malformed),
    }
}

/// Decodes a whole batch into records, decompressing at most `limit` bytes: for the cleaner
/// and recompression, which rewrite records.
pub fn decode(batch: &[u8], limit: u64) -> Result<RecordSet, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed)?;
    let decompress = |compressed: &mut Bytes, _: Compression| -> anyhow::Result<Bytes> {
        Ok(Bytes::from(decompress(
            compressed,
            header.compression(),
            limit,
        )?))
    };
    let mut buf = Bytes::copy_from_slice(batch);
    RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress)).map_err(|e| {
        match e.downcast_ref::<RecordsError>() {
            Some(RecordsError::TooLarge { limit }) => RecordsError::TooLarge { limit: *limit },
            _ => RecordsError::Malformed,
        }
    })
}

/// Decompresses `section` written with `codec` (the attribute bits: 1 gzip, 2 snappy, 3 lz4,
/// 4 zstd) into memory, failing once more than `limit` bytes come out: for the message sets
/// of formats v0/v1 (`message_set`), whose compressed wrapper holds whole inner messages.
pub fn decompress(section: &[u8], codec: i16, limit: u64) -> Result<Vec<u8>, RecordsError> {
    let mut reader = records_reader_for(section, codec, limit)?;
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if reader.exceeded || e.to_string().contains("decompression limit exceeded") => {
            Err(RecordsError::TooLarge { limit })
        }
        Err(_) => Err(RecordsError::Malformed),
    }
}

/// The decompressed stream of a records section written with `codec`, cut off after `limit`
/// bytes.
fn records_reader_for<'a>(
    section: &'a [u8],
    codec: i16,
    limit: u64,
) -> Result<Limited<Box<dyn Read + 'a>>, RecordsError> {
    let inner: Box<dyn Read + 'a> = match codec {
        0 => Box::new(section),
        1 => Box::new(flate2::read::GzDecoder::new(section)),
        2 => Box::new(SnappyReader::new(section, limit)),
        3 => Box::new(lz4::Decoder::new(section).map_err(|_| RecordsError::Malformed)?),
        4 => Box::new(
            zstd::stream::read::Decoder::new(section).map_err(|_| RecordsError::Malformed)?,
        ),
        _ => return Err(RecordsError::Malformed),
    };
    Ok(Limited {
        inner,
        remaining: limit,
        exceeded: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;
    use std::io::Write;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn walks_and_decodes_every_codec() -> TestResult {
        for codec in CODECS {
            let bytes =
                crate::test_support::record_batch(&[b"a", b"bb", b"ccc"], 1_000, None, codec)?;
            let header = batch::validate(&bytes)?;
            let mut seen = Vec::new();
            walk(&bytes, &header, 1 << 20, |r| {
                seen.push((r.index, r.offset_delta, r.timestamp, r.has_key));
                true
            })?;
            assert_eq!(
                seen,
                [
                    (0, 0, 1_000, true),
                    (1, 1, 1_001, true),
                    (2, 2, 1_002, true)
                ],
                "{codec:?}"
            );
            assert_eq!(decode(&bytes, 1 << 20)?.records.len(), 3, "{codec:?}");
            // A limit below the records' size stops both.
            assert_eq!(
                walk(&bytes, &header, 10, |_| true),
                Err(RecordsError::TooLarge { limit: 10 }),
                "{codec:?}"
            );
            assert!(matches!(
                decode(&bytes, 10),
                Err(RecordsError::TooLarge { .. })
            ));
        }
        Ok(())
    }

    /// A small batch claiming one record whose compressed payload inflates to 64 MiB of zeros:
    /// cut off at the limit without holding the output.
    #[test]
    fn bombs_are_cut_off_at_the_limit() -> TestResult {
        let zeros = vec![0u8; 1 << 20];
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
        for _ in 0..64 {
            gzip.write_all(&zeros)?;
            zstd.write_all(&zeros)?;
        }
        for (codec, payload) in [(1i16, gzip.finish()?), (4, zstd.finish()?)] {
            let mut bytes =
                crate::test_support::record_batch(&[b"x"], 0, None, Compression::None)?.to_vec();
            bytes.truncate(HEADER_BYTES);
            bytes.extend_from_slice(&payload);
            let length = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&length.to_be_bytes());
            let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | codec;
            bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
            batch::set_max_timestamp(&mut bytes, 0);
            let header = batch::validate(&bytes)?;
            // Zeros parse as empty records: malformed within the first few bytes.
            assert_eq!(
                walk(&bytes, &header, 1 << 20, |_| true),
                Err(RecordsError::Malformed)
            );
            assert_eq!(
                decode(&bytes, 1 << 20).map(|_| ()),
                Err(RecordsError::TooLarge { limit: 1 << 20 })
            );
        }
        Ok(())
    }

    /// Random damage to the records section of every codec never panics and never reads past
    /// the limit.
    #[test]
    fn damaged_records_never_panic() -> TestResult {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        for codec in CODECS {
            let good = crate::test_support::record_batch(&[b"abc", b"de", b"f"], 5, None, codec)?;
            for _ in 0..2_000 {
                let mut bytes = good.to_vec();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(HEADER_BYTES..bytes.len());
                    bytes[at] = rng.gen();
                }
                let header = BatchHeader::parse(&bytes)?;
                let _ = walk(&bytes, &header, 4096, |_| true);
                let _ = decode(&bytes, 4096);
            }
        }
        Ok(())
    }
}
