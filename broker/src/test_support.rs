//! RecordBatch v2 bytes built with `kafka-protocol`'s encoder, as a producer would send them.
//! For tests and benchmarks only (the unit tests here, `protocol-tests/`, `benches/`), so that
//! they all build batches one way; the broker itself never encodes records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One batch holding `values`, keyed `key-0`, `key-1`, ..., with timestamps
/// `first_timestamp + i`. `producer` is (producer id, epoch, base sequence) for idempotent
/// batches; `None` leaves the producer fields unset.
pub fn record_batch(
    values: &[&[u8]],
    first_timestamp: i64,
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    batch_of(values, first_timestamp, producer, compression, false)
}

/// A transactional batch of `values` from `(producer id, epoch, base sequence)`, as a
/// transactional producer sends it.
pub fn transactional_batch(
    values: &[&[u8]],
    producer: (i64, i16, i32),
    compression: Compression,
) -> anyhow::Result<Bytes> {
    batch_of(values, 1_700_000_000_000, Some(producer), compression, true)
}

fn batch_of(
    values: &[&[u8]],
    first_timestamp: i64,
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
    transactional: bool,
) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records into one batch only while offset - sequence is
            // constant; without a producer the base sequence stays -1.
            sequence: base_sequence + i as i32,
            timestamp: first_timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}

/// A record's key and value, either of which may be null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One batch of (key, value) records with timestamps `first_timestamp + i`, no producer: for
/// keyless records and tombstones (`None`), which `record_batch` cannot express.
pub fn keyed_batch(
    entries: &[KeyValue<'_>],
    first_timestamp: i64,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch: the encoder splits where offset - sequence changes.
            sequence: i as i32 - 1,
            timestamp: first_timestamp + i as i64,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}
