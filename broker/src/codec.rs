//! Pieces shared by the records of the internal topics (`__consumer_offsets`,
//! `__transaction_state`), which use Kafka's own layouts: a bounds-checked big-endian reader,
//! string writers, and Kafka's choice of partition for a coordinator key. A leaf: it uses no
//! other room.
//!
//! Decoding never panics: the bytes come from disk.

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("invalid string in {0}")]
    InvalidString(&'static str),
}

pub fn put_string(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(bytes.len() as i16);
    out.put_slice(bytes);
}

pub fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

/// A bounds-checked big-endian reader; the `&'static str` names what is read, for errors.
pub struct Reader<'a>(pub &'a [u8], pub &'static str);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated(self.1));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    pub fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?.get_i8())
    }
    pub fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(self.take(2)?.get_i16())
    }
    pub fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(self.take(4)?.get_i32())
    }
    pub fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(self.take(8)?.get_i64())
    }
    pub fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidString(self.1))
    }
    pub fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(&[]);
        }
        self.take(len as usize)
    }
    /// An unsigned varint (flexible versions' lengths and tags).
    pub fn unsigned_varint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated(self.1))
    }
    /// A compact string (flexible versions): length + 1 as an unsigned varint, 0 for null.
    pub fn compact_nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let n = self.unsigned_varint()?;
        if n == 0 {
            return Ok(None);
        }
        let bytes = self.take(n as usize - 1)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidString(self.1))
    }
    /// Skips a tagged-field section; returns the (tag, bytes) pairs for the caller to read.
    pub fn tagged_fields(&mut self) -> Result<Vec<(u32, &'a [u8])>, RecordError> {
        let count = self.unsigned_varint()?;
        let mut out = Vec::new();
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            out.push((tag, self.take(size)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub fn put_unsigned_varint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
pub fn put_compact_string(out: &mut BytesMut, s: &str) {
    put_unsigned_varint(out, s.len() as u32 + 1);
    out.put_slice(s.as_bytes());
}

/// Kafka's choice of internal-topic partition for a coordinator key (a group id or a
/// transactional id): the absolute value of Java's `String.hashCode`, modulo the partition
/// count (`Utils.abs` maps `Integer.MIN_VALUE` to 0).
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in key.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_compact_strings_round_trip() -> Result<(), RecordError> {
        let mut out = BytesMut::new();
        for v in [0u32, 1, 127, 128, 300, u32::MAX] {
            put_unsigned_varint(&mut out, v);
        }
        put_compact_string(&mut out, "txn-é");
        let mut r = Reader(&out, "test");
        for v in [0u32, 1, 127, 128, 300, u32::MAX] {
            assert_eq!(r.unsigned_varint()?, v);
        }
        assert_eq!(r.compact_nullable_string()?.as_deref(), Some("txn-é"));
        assert!(r.0.is_empty());
        Ok(())
    }

    #[test]
    fn partitions_follow_java_string_hash_code() {
        // "".hashCode() == 0; "a" == 97; a key whose hash is Integer.MIN_VALUE maps to 0.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
