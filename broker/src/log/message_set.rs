//! Message formats v0 and v1 (Kafka's message sets, before KIP-98's batches), converted at the
//! protocol edge and never stored: Produce v0-2 are up-converted to one v2 batch before the
//! append, Fetch v0-3 answers are down-converted from the stored v2 batches.
//!
//! A message set is a run of entries: offset i64 | message size i32 | message, where a message
//! is crc u32 (CRC-32/IEEE of the rest) | magic i8 | attributes i8 | timestamp i64 (magic 1
//! only) | key (i32 length, -1 null) | value (i32 length, -1 null). Attribute bits 0-2 name the
//! codec: a compressed "wrapper" message's value is the compressed message set of its inner
//! messages. Bit 3 (magic 1) says the timestamp is the log append time.
//!
//! Down-converted sets are written uncompressed, so every codec (zstd included) reaches old
//! clients; their size is bounded by the fetch's byte limits, whatever the stored batches
//! decompress to.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::BatchHeader;
use super::records::{self, RecordsError};

/// Kafka's `RecordBatch.NO_TIMESTAMP`: what a magic 0 message up-converts to.
const NO_TIMESTAMP: i64 = -1;
const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME: i8 = 0x08;
/// offset + message size.
const ENTRY_OVERHEAD: usize = 12;

/// Why a message set could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("message set is malformed: {0}")]
    Malformed(&'static str),
    #[error("message CRC does not match its contents")]
    CrcMismatch,
    #[error("compression codec {0} cannot be used in message format v0/v1")]
    UnsupportedCodec(i8),
    #[error("the messages decompress to more than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl From<RecordsError> for ConvertError {
    fn from(e: RecordsError) -> ConvertError {
        match e {
            RecordsError::TooLarge { limit } => ConvertError::TooLarge { limit },
            RecordsError::Malformed => ConvertError::Malformed("records cannot be decompressed"),
        }
    }
}

/// One message of a v0/v1 set, borrowing its key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message<'a> {
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A length-prefixed byte string at `*at` (-1 is null), moving `*at` past it.
fn bytes_at<'a>(b: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, ConvertError> {
    let length = i32_at(b, *at).ok_or(ConvertError::Malformed("truncated length"))?;
    *at += 4;
    if length == -1 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| ConvertError::Malformed("negative length"))?;
    let bytes = b
        .get(*at..at.saturating_add(length))
        .ok_or(ConvertError::Malformed("length past the message"))?;
    *at += length;
    Ok(Some(bytes))
}

/// Every message of `set`, CRC-checked. A set that ends inside a message is malformed: a
/// producer sends whole messages.
fn parse(set: &[u8]) -> Result<Vec<Message<'_>>, ConvertError> {
    let mut messages = Vec::new();
    let mut rest = set;
    while !rest.is_empty() {
        let offset = i64_at(rest, 0).ok_or(ConvertError::Malformed("truncated entry"))?;
        let size = i32_at(rest, 8).ok_or(ConvertError::Malformed("truncated entry"))?;
        let size = usize::try_from(size).map_err(|_| ConvertError::Malformed("negative size"))?;
        let body = rest
            .get(ENTRY_OVERHEAD..ENTRY_OVERHEAD.saturating_add(size))
            .ok_or(ConvertError::Malformed("partial message"))?;
        rest = &rest[ENTRY_OVERHEAD + size..];
        // crc, magic, attributes, key length, value length.
        if body.len() < 14 {
            return Err(ConvertError::Malformed("message shorter than its header"));
        }
        let crc = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if crc32fast::hash(&body[4..]) != crc {
            return Err(ConvertError::CrcMismatch);
        }
        let magic = body[4] as i8;
        let attributes = body[5] as i8;
        let mut at = 6;
        let timestamp = match magic {
            0 => NO_TIMESTAMP,
            1 => {
                let t = i64_at(body, at).ok_or(ConvertError::Malformed("truncated timestamp"))?;
                at += 8;
                t
            }
            _ => return Err(ConvertError::Malformed("magic is neither 0 nor 1")),
        };
        let key = bytes_at(body, &mut at)?;
        let value = bytes_at(body, &mut at)?;
        if at != body.len() {
            return Err(ConvertError::Malformed("bytes after the value"));
        }
        messages.push(Message {
            offset,
            magic,
            attributes,
            timestamp,
            key,
            value,
        });
    }
    Ok(messages)
}

fn codec(bits: i8) -> Result<Compression, ConvertError> {
    match bits {
        0 => Ok(Compression::None),
        1 => Ok(Compression::Gzip),
        2 => Ok(Compression::Snappy),
        3 => Ok(Compression::Lz4),
        other => Err(ConvertError::UnsupportedCodec(other)),
    }
}

fn record(offset: i64, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // No producer: the batch's base sequence is -1, and the encoder keeps records in one
        // batch while offset - sequence stays the same.
        sequence: (offset as i32).wrapping_sub(1),
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

/// Up-converts a produced message set (magic 0 or 1) to one v2 batch with offsets from 0, no
/// producer id, and the codec of its (last) compressed wrapper, as Kafka's `LogValidator`
/// converts to the log's format. Compressed wrappers decompress to at most `limit` bytes in
/// all. Magic 0 messages get no timestamp; a magic 1 wrapper stamped with the log append time
/// gives its timestamp to its inner messages. The broker assigns offsets and applies the
/// topic's timestamp type and compression afterwards, as for any batch.
pub fn to_batch(set: &[u8], limit: u64) -> Result<Bytes, ConvertError> {
    let mut out = Vec::new();
    let mut compression = Compression::None;
    let mut remaining = limit;
    for message in parse(set)? {
        let bits = message.attributes & CODEC_MASK;
        if bits == 0 {
            out.push(record(
                out.len() as i64,
                message.timestamp,
                message.key,
                message.value,
            ));
            continue;
        }
        compression = codec(bits)?;
        let compressed = message.value.ok_or(ConvertError::Malformed(
            "compressed message without a value",
        ))?;
        let inner = records::decompress(compressed, i16::from(bits), remaining)?;
        remaining = remaining.saturating_sub(inner.len() as u64);
        let wrapper_time = (message.magic == 1 && message.attributes & LOG_APPEND_TIME != 0)
            .then_some(message.timestamp);
        for inner in parse(&inner)? {
            if inner.attributes & CODEC_MASK != 0 {
                return Err(ConvertError::Malformed("nested compression"));
            }
            out.push(record(
                out.len() as i64,
                wrapper_time.unwrap_or(inner.timestamp),
                inner.key,
                inner.value,
            ));
        }
    }
    if out.is_empty() {
        return Err(ConvertError::Malformed("no messages"));
    }
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &out,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|_| ConvertError::Malformed("messages cannot be written as a batch"))?;
    Ok(batch.freeze())
}

/// What to do when the first message does not fit a down-converted set's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversized {
    /// Send it whole (Fetch v3+, KIP-74: the first partition with data makes progress).
    Whole,
    /// Send as much of it as fits: Fetch v0-2 had a hard limit, and old clients report the
    /// partial message as too large for their fetch size, as they do against Kafka.
    Truncate,
}

/// Appends one message of format `magic` to `out`.
fn put_message(
    out: &mut BytesMut,
    magic: i8,
    offset: i64,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let length = |b: Option<&[u8]>| 4 + b.map_or(0, <[u8]>::len);
    let size = 4 + 1 + 1 + if magic == 1 { 8 } else { 0 } + length(key) + length(value);
    out.reserve(ENTRY_OVERHEAD + size);
    out.put_i64(offset);
    out.put_i32(i32::try_from(size).unwrap_or(i32::MAX));
    let crc_at = out.len();
    out.put_u32(0);
    out.put_i8(magic);
    out.put_i8(attributes);
    if magic == 1 {
        out.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
                out.put_slice(b);
            }
            None => out.put_i32(-1),
        }
    }
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Down-converts stored v2 batches (whole batches, as a fetch reads them) to an uncompressed
/// message set of `magic` 0 or 1 holding the records from `first_offset` on. Control batches
/// are left out, and so are headers (formats v0/v1 have none). Whole messages are added while
/// the set stays within `budget` bytes; `oversized` says what happens when the first does not
/// fit. Each batch decompresses to at most `limit` bytes. A batch that cannot be read ends the
/// set; it is an error only when nothing came before it.
pub fn from_batches(
    stored: &[u8],
    magic: i8,
    first_offset: i64,
    budget: usize,
    oversized: Oversized,
    limit: u64,
) -> Result<Bytes, ConvertError> {
    let mut out = BytesMut::new();
    let mut scratch = BytesMut::new();
    let mut rest = stored;
    while !rest.is_empty() {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let Some(batch) = rest.get(..header.size) else {
            // A fetch may end inside a batch (not with whole-batch reads, but harmless).
            break;
        };
        rest = &rest[header.size..];
        if header.is_control() || header.last_offset() < first_offset {
            continue;
        }
        let set = match records::decode(batch, limit) {
            Ok(set) => set,
            Err(e) if out.is_empty() => return Err(e.into()),
            Err(_) => break,
        };
        for r in &set.records {
            if r.offset < first_offset {
                continue;
            }
            let (attributes, timestamp) = if header.is_log_append_time() {
                (LOG_APPEND_TIME, header.max_timestamp)
            } else {
                (0, r.timestamp)
            };
            let attributes = if magic == 1 { attributes } else { 0 };
            scratch.clear();
            put_message(
                &mut scratch,
                magic,
                r.offset,
                attributes,
                timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
            );
            if out.len() + scratch.len() <= budget {
                out.put_slice(&scratch);
            } else {
                if out.is_empty() {
                    match oversized {
                        Oversized::Whole => out.put_slice(&scratch),
                        Oversized::Truncate => out.put_slice(&scratch[..budget]),
                    }
                }
                return Ok(out.freeze());
            }
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    /// A magic `magic` message set of (key, value) pairs, as an old producer writes it.
    fn message_set(magic: i8, attributes: i8, messages: &[(Option<&[u8]>, &[u8])]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (i, (key, value)) in messages.iter().enumerate() {
            put_message(
                &mut out,
                magic,
                i as i64,
                attributes,
                1_000 + i as i64,
                *key,
                Some(value),
            );
        }
        out.to_vec()
    }

    /// One wrapper message holding `inner` compressed with `codec`.
    fn wrapper(magic: i8, codec: Compression, inner: &[u8]) -> TestResult<Vec<u8>> {
        use std::io::Write;
        let (bits, compressed) = match codec {
            Compression::Gzip => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(inner)?;
                (1, w.finish()?)
            }
            Compression::Snappy => (2, snap::raw::Encoder::new().compress_vec(inner)?),
            Compression::Lz4 => {
                let mut w = lz4::EncoderBuilder::new().build(Vec::new())?;
                w.write_all(inner)?;
                let (out, result) = w.finish();
                result?;
                (3, out)
            }
            _ => return Err("not a v0/v1 codec".into()),
        };
        let mut out = BytesMut::new();
        put_message(&mut out, magic, 0, bits, 5_000, None, Some(&compressed));
        Ok(out.to_vec())
    }

    /// (offset, timestamp, key, value)
    type Seen = (i64, i64, Option<Bytes>, Option<Bytes>);

    fn decoded(batch: &[u8]) -> TestResult<Vec<Seen>> {
        batch::validate(batch)?;
        Ok(records::decode(batch, 1 << 20)?
            .records
            .into_iter()
            .map(|r| (r.offset, r.timestamp, r.key, r.value))
            .collect())
    }

    #[test]
    fn up_converts_plain_and_compressed_sets_of_both_magics() -> TestResult {
        let messages: &[(Option<&[u8]>, &[u8])] =
            &[(Some(b"k0"), b"v0"), (None, b"v1"), (Some(b""), b"")];
        for magic in [0, 1] {
            let plain = message_set(magic, 0, messages);
            let mut sets = vec![(plain.clone(), 0i16)];
            for (codec, bits) in [
                (Compression::Gzip, 1),
                (Compression::Snappy, 2),
                (Compression::Lz4, 3),
            ] {
                if magic == 0 && codec == Compression::Lz4 {
                    // Magic 0 LZ4 frames carry Kafka's broken header checksum (KAFKA-3160).
                    continue;
                }
                sets.push((wrapper(magic, codec, &plain)?, bits));
            }
            for (set, bits) in sets {
                let batch = to_batch(&set, 1 << 20)?;
                let header = batch::validate(&batch)?;
                assert_eq!(header.compression(), bits, "magic {magic}");
                assert!(!header.has_producer_id());
                let t = |i: i64| if magic == 0 { -1 } else { 1_000 + i };
                assert_eq!(
                    decoded(&batch)?,
                    vec![
                        (0, t(0), Some(Bytes::from("k0")), Some(Bytes::from("v0"))),
                        (1, t(1), None, Some(Bytes::from("v1"))),
                        (2, t(2), Some(Bytes::new()), Some(Bytes::new())),
                    ],
                    "magic {magic} codec {bits}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_bad_sets() -> TestResult {
        let good = message_set(1, 0, &[(Some(b"k"), b"value")]);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert_eq!(to_batch(&bad_crc, 1 << 20), Err(ConvertError::CrcMismatch));
        assert!(matches!(
            to_batch(&good[..good.len() - 1], 1 << 20),
            Err(ConvertError::Malformed(_))
        ));
        assert!(matches!(
            to_batch(&[], 1 << 20),
            Err(ConvertError::Malformed(_))
        ));
        let zstd = {
            let mut out = BytesMut::new();
            put_message(&mut out, 1, 0, 4, 0, None, Some(b"x"));
            out
        };
        assert_eq!(
            to_batch(&zstd, 1 << 20),
            Err(ConvertError::UnsupportedCodec(4))
        );
        // A wrapper inflating past the limit is cut off there.
        let big = message_set(1, 0, &[(None, &[7u8; 10_000])]);
        let bomb = wrapper(1, Compression::Gzip, &big)?;
        assert_eq!(
            to_batch(&bomb, 1_000),
            Err(ConvertError::TooLarge { limit: 1_000 })
        );
        // Nested compression is refused.
        let nested = wrapper(1, Compression::Gzip, &wrapper(1, Compression::Gzip, &good)?)?;
        assert!(matches!(
            to_batch(&nested, 1 << 20),
            Err(ConvertError::Malformed(_))
        ));
        Ok(())
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(31);
        let good = message_set(1, 0, &[(Some(b"k"), b"abc"), (None, b"de")]);
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            let cut = rng.gen_range(0..=bytes.len());
            let _ = to_batch(&bytes[..cut], 4096);
        }
    }

    /// Stored batches: offsets 10-12 (lz4), a control batch at 13, 14-15 (zstd, LogAppendTime).
    fn stored() -> TestResult<Vec<u8>> {
        let mut first = crate::test_support::record_batch(
            &[b"a", b"bb", b"ccc"],
            1_000,
            None,
            Compression::Lz4,
        )?
        .to_vec();
        first[..8].copy_from_slice(&10i64.to_be_bytes());
        let mut control =
            crate::test_support::record_batch(&[b"m"], 1_000, None, Compression::None)?.to_vec();
        control[..8].copy_from_slice(&13i64.to_be_bytes());
        let attributes = i16::from_be_bytes([control[21], control[22]]) | 0x20;
        control[21..23].copy_from_slice(&attributes.to_be_bytes());
        let mut last =
            crate::test_support::record_batch(&[b"dd", b"e"], 2_000, None, Compression::Zstd)?
                .to_vec();
        last[..8].copy_from_slice(&14i64.to_be_bytes());
        batch::set_log_append_time(&mut last, 9_999);
        let mut out = Vec::new();
        for b in [first, control, last] {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[test]
    fn down_converts_from_the_fetch_offset_without_control_batches() -> TestResult {
        let stored = stored()?;
        for magic in [0, 1] {
            let set = from_batches(&stored, magic, 11, 1 << 20, Oversized::Whole, 1 << 20)?;
            let messages = parse(&set)?;
            let seen: Vec<_> = messages
                .iter()
                .map(|m| (m.offset, m.magic, m.attributes, m.timestamp, m.value))
                .collect();
            let (t, append): (fn(i64) -> i64, i8) = if magic == 1 {
                (|ts: i64| ts, LOG_APPEND_TIME)
            } else {
                (|_: i64| -1, 0)
            };
            assert_eq!(
                seen,
                vec![
                    (11, magic, 0, t(1_001), Some(&b"bb"[..])),
                    (12, magic, 0, t(1_002), Some(&b"ccc"[..])),
                    (14, magic, append, t(9_999), Some(&b"dd"[..])),
                    (15, magic, append, t(9_999), Some(&b"e"[..])),
                ],
                "magic {magic}"
            );
            assert_eq!(messages[0].key, Some(&b"key-1"[..]));
        }
        Ok(())
    }

    #[test]
    fn down_conversion_keeps_to_the_budget() -> TestResult {
        let stored = stored()?;
        let whole = from_batches(&stored, 1, 10, 1 << 20, Oversized::Whole, 1 << 20)?;
        let first = parse(&whole)?.len();
        assert_eq!(first, 5);
        let one = ENTRY_OVERHEAD + 4 + 1 + 1 + 8 + 4 + 5 + 4 + 1;
        // Exactly two messages fit.
        let two = from_batches(&stored, 1, 10, 2 * one + 10, Oversized::Whole, 1 << 20)?;
        assert_eq!(parse(&two)?.len(), 2);
        // Nothing fits: the first whole (v3+), or cut at the budget (v0-2).
        let whole = from_batches(&stored, 1, 10, 5, Oversized::Whole, 1 << 20)?;
        assert_eq!(parse(&whole)?.len(), 1);
        let cut = from_batches(&stored, 1, 10, 5, Oversized::Truncate, 1 << 20)?;
        assert_eq!(cut.len(), 5);
        // Past the end: nothing.
        assert!(from_batches(&stored, 1, 16, 1 << 20, Oversized::Whole, 1 << 20)?.is_empty());
        Ok(())
    }

    #[test]
    fn round_trip_through_both_conversions() -> TestResult {
        let set = message_set(1, 0, &[(Some(b"a"), b"1"), (Some(b"b"), b"2")]);
        let batch = to_batch(&set, 1 << 20)?;
        let back = from_batches(&batch, 1, 0, 1 << 20, Oversized::Whole, 1 << 20)?;
        assert_eq!(back.as_ref(), set.as_slice());
        Ok(())
    }
}
