//! The records of `__transaction_state`, in Kafka's own layout so its tools read them the same
//! way (`TransactionLogKey` and `TransactionLogValue`):
//!
//! - key: version i16 (0) | transactional id (string);
//! - value v0: version i16 | producer id i64 | producer epoch i16 | timeout ms i32 | state i8 |
//!   partitions: nullable array of (topic string, partition ids: array of i32) | last update
//!   ms i64 | start ms i64;
//! - value v1 (flexible, Kafka 4 with transaction version 2): the same fields with compact
//!   arrays and strings, plus tagged fields (previous and next producer id, client transaction
//!   version) that Strom reads past;
//! - a null value is a tombstone: the id expired.
//!
//! Strom writes value v0. Decoding never panics: the bytes come from disk.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnRecord, TxnState};
use crate::codec::{put_string, Reader, RecordError};

/// Bound on array lengths read, before anything is allocated for them.
const MAX_ARRAY_LENGTH: usize = 1 << 20;

impl TxnRecord {
    /// The key and value (`None` for a tombstone) as stored.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        key.put_i16(0);
        put_string(&mut key, &self.transactional_id);
        let value = self.value.as_ref().map(|m| {
            let mut out = BytesMut::new();
            out.put_i16(0);
            out.put_i64(m.producer_id);
            out.put_i16(m.epoch);
            out.put_i32(m.timeout_ms);
            out.put_i8(m.state.id());
            if m.partitions.is_empty() && m.state == TxnState::Empty {
                out.put_i32(-1);
            } else {
                let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
                for (topic, partition) in &m.partitions {
                    match topics.last_mut() {
                        Some((t, ids)) if *t == topic.as_str() => ids.push(*partition),
                        _ => topics.push((topic, vec![*partition])),
                    }
                }
                out.put_i32(topics.len() as i32);
                for (topic, ids) in topics {
                    put_string(&mut out, topic);
                    out.put_i32(ids.len() as i32);
                    for id in ids {
                        out.put_i32(id);
                    }
                }
            }
            out.put_i64(m.last_update_ms);
            out.put_i64(m.start_ms);
            out.freeze()
        });
        (key.freeze(), value)
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, RecordError> {
        let mut k = Reader(key, "transaction log key");
        let version = k.i16()?;
        if version != 0 {
            return Err(RecordError::UnknownVersion {
                what: "transaction log key",
                version,
            });
        }
        let transactional_id = k.string()?;
        let value = match value {
            None => None,
            Some(bytes) => Some(decode_value(bytes)?),
        };
        Ok(TxnRecord {
            transactional_id,
            value,
        })
    }
}

fn array_length(r: &mut Reader<'_>, flexible: bool) -> Result<Option<usize>, RecordError> {
    let n = if flexible {
        // Compact: length + 1, 0 for null.
        i64::from(r.unsigned_varint()?) - 1
    } else {
        i64::from(r.i32()?)
    };
    if n < 0 {
        return Ok(None);
    }
    let n = n as usize;
    if n > MAX_ARRAY_LENGTH || n > r.0.len() {
        return Err(RecordError::Truncated(r.1));
    }
    Ok(Some(n))
}

fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut r = Reader(bytes, "transaction log value");
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        _ => {
            return Err(RecordError::UnknownVersion {
                what: "transaction log value",
                version,
            })
        }
    };
    let producer_id = r.i64()?;
    let epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state_id = r.i8()?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownVersion {
        what: "transaction state",
        version: i16::from(state_id),
    })?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = array_length(&mut r, flexible)? {
        for _ in 0..topics {
            let topic = if flexible {
                r.compact_nullable_string()?.unwrap_or_default()
            } else {
                r.string()?
            };
            let ids = array_length(&mut r, flexible)?.unwrap_or(0);
            for _ in 0..ids {
                partitions.insert((topic.clone(), r.i32()?));
            }
            if flexible {
                r.tagged_fields()?;
            }
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    if flexible {
        r.tagged_fields()?;
    }
    Ok(TxnMetadata {
        producer_id,
        epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{put_compact_string, put_unsigned_varint};

    fn metadata(state: TxnState, partitions: &[(&str, i32)]) -> TxnMetadata {
        TxnMetadata {
            producer_id: 4_000,
            epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_round_trip() -> Result<(), RecordError> {
        for value in [
            Some(metadata(TxnState::Empty, &[])),
            Some(metadata(
                TxnState::Ongoing,
                &[("a", 0), ("a", 2), ("b.c", 1)],
            )),
            Some(metadata(TxnState::CompleteCommit, &[])),
            None,
        ] {
            let record = TxnRecord {
                transactional_id: "txn-1".into(),
                value,
            };
            let (key, value) = record.encode();
            assert_eq!(TxnRecord::decode(&key, value.as_deref())?, record);
        }
        Ok(())
    }

    /// The exact v0 bytes of one record, field by field, as Kafka lays them out.
    #[test]
    fn value_v0_layout() {
        let record = TxnRecord {
            transactional_id: "t".into(),
            value: Some(metadata(TxnState::Ongoing, &[("a", 1)])),
        };
        let (key, value) = record.encode();
        assert_eq!(key.as_ref(), [0, 0, 0, 1, b't']);
        let mut expected = BytesMut::new();
        expected.put_i16(0);
        expected.put_i64(4_000);
        expected.put_i16(3);
        expected.put_i32(60_000);
        expected.put_i8(1);
        expected.put_i32(1);
        expected.put_i16(1);
        expected.put_slice(b"a");
        expected.put_i32(1);
        expected.put_i32(1);
        expected.put_i64(1_700_000_000_123);
        expected.put_i64(1_700_000_000_000);
        assert_eq!(value.as_deref(), Some(expected.as_ref()));
    }

    /// A v1 (flexible) value with tagged fields, as Kafka 4 writes it, is read.
    #[test]
    fn value_v1_is_read() -> Result<(), RecordError> {
        let mut v = BytesMut::new();
        v.put_i16(1);
        v.put_i64(4_000);
        v.put_i16(3);
        v.put_i32(60_000);
        v.put_i8(1);
        put_unsigned_varint(&mut v, 2); // one topic
        put_compact_string(&mut v, "a");
        put_unsigned_varint(&mut v, 2); // one partition
        v.put_i32(1);
        put_unsigned_varint(&mut v, 0); // no tagged fields in the topic entry
        v.put_i64(1_700_000_000_123);
        v.put_i64(1_700_000_000_000);
        put_unsigned_varint(&mut v, 1); // one tagged field: previous producer id
        put_unsigned_varint(&mut v, 0);
        put_unsigned_varint(&mut v, 8);
        v.put_i64(3_999);
        let record = TxnRecord::decode(&[0, 0, 0, 1, b't'], Some(&v))?;
        assert_eq!(record.value, Some(metadata(TxnState::Ongoing, &[("a", 1)])));
        Ok(())
    }

    #[test]
    fn damaged_values_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (_, good) = TxnRecord {
            transactional_id: "t".into(),
            value: Some(metadata(TxnState::Ongoing, &[("a", 1), ("b", 2)])),
        }
        .encode();
        let good = good.map(|b| b.to_vec()).unwrap_or_default();
        for _ in 0..10_000 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            let cut = rng.gen_range(0..=bytes.len());
            let _ = TxnRecord::decode(&[0, 0, 0, 1, b't'], Some(&bytes[..cut]));
        }
    }
}
