//! Transaction markers (KIP-98): the control batch the transaction coordinator writes to every
//! partition of a transaction to end it. Kafka's `EndTransactionMarker` layout: a batch with the
//! transactional and control attribute bits, the producer's id and epoch, no sequence, and one
//! record whose key is version i16 (0) | type i16 (0 abort, 1 commit) and whose value is
//! version i16 (0) | coordinator epoch i32.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::BatchHeader;
use super::records;

const ABORT: i16 = 0;
const COMMIT: i16 = 1;
/// A marker batch is well under this; more is not a marker.
const MAX_MARKER_BYTES: u64 = 1024;

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The marker batch ending `producer_id`'s transaction at `epoch`, stamped `now_ms`.
pub fn encode(producer_id: i64, epoch: i16, marker: Marker, now_ms: i64) -> Option<Bytes> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if marker.commit { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(marker.coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        [record].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .ok()?;
    Some(out.freeze())
}

/// The marker a control batch carries; `None` for anything else (or a control record of a type
/// Strom does not know, such as KIP-848's or Raft's, which it never writes).
pub fn parse(batch: &[u8]) -> Option<Marker> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() {
        return None;
    }
    let set = records::decode(batch, MAX_MARKER_BYTES).ok()?;
    let record = set.records.first()?;
    let key = record.key.as_deref()?;
    let value = record.value.as_deref()?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    match kind {
        ABORT | COMMIT => Some(Marker {
            commit: kind == COMMIT,
            coordinator_epoch,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;

    #[test]
    fn markers_round_trip_as_control_batches() -> Result<(), Box<dyn std::error::Error>> {
        for commit in [true, false] {
            let marker = Marker {
                commit,
                coordinator_epoch: 7,
            };
            let bytes = encode(42, 3, marker, 1_000).ok_or("encode")?;
            let header = batch::validate(&bytes)?;
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.record_count, 1);
            assert_eq!(parse(&bytes), Some(marker));
        }
        let data = crate::test_support::record_batch(&[b"x"], 0, None, Compression::None)?;
        assert_eq!(parse(&data), None);
        Ok(())
    }
}
