//! The records of the internal offsets topic (`__consumer_offsets`), in Kafka's own layout so
//! that an operator's tools read them the same way: a key whose version says what it is
//! (0 and 1: a committed offset, 2: group metadata) and a versioned value; a null value is a
//! tombstone. Kafka's schemas are `OffsetCommitKey`, `OffsetCommitValue`, `GroupMetadataKey`
//! and `GroupMetadataValue` in its group-coordinator module; we write offset values v1 (with an
//! expire timestamp) or v3, and group values v3, and read v0-v3 of both.
//!
//! Decoding never panics: the bytes come from disk.

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::codec::{partition_for, RecordError};
use crate::codec::{put_nullable_string, put_string, Reader};

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2-4 with an explicit retention time.
    pub expire_timestamp_ms: Option<i64>,
}

/// One member as stored in the group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's generation, as stored after each rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// One record of the offsets topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group_id: String,
        topic: String,
        partition: i32,
        /// `None` is a tombstone: the offset was deleted or expired.
        value: Option<OffsetValue>,
    },
    Group {
        group_id: String,
        /// `None` is a tombstone: the group was deleted.
        value: Option<GroupValue>,
    },
}

impl GroupRecord {
    /// The record's key and value (`None` for a tombstone).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => {
                key.put_i16(1);
                put_string(&mut key, group_id);
                put_string(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut out = BytesMut::new();
                    match v.expire_timestamp_ms {
                        Some(expire) => {
                            out.put_i16(1);
                            out.put_i64(v.offset);
                            put_string(&mut out, &v.metadata);
                            out.put_i64(v.commit_timestamp_ms);
                            out.put_i64(expire);
                        }
                        None => {
                            out.put_i16(3);
                            out.put_i64(v.offset);
                            out.put_i32(v.leader_epoch);
                            put_string(&mut out, &v.metadata);
                            out.put_i64(v.commit_timestamp_ms);
                        }
                    }
                    out.freeze()
                });
                (key.freeze(), value)
            }
            GroupRecord::Group { group_id, value } => {
                key.put_i16(2);
                put_string(&mut key, group_id);
                let value = value.as_ref().map(|v| {
                    let mut out = BytesMut::new();
                    out.put_i16(3);
                    put_string(&mut out, &v.protocol_type);
                    out.put_i32(v.generation_id);
                    put_nullable_string(&mut out, v.protocol_name.as_deref());
                    put_nullable_string(&mut out, v.leader_id.as_deref());
                    out.put_i64(v.current_state_timestamp_ms);
                    out.put_i32(v.members.len() as i32);
                    for m in &v.members {
                        put_string(&mut out, &m.member_id);
                        put_nullable_string(&mut out, m.group_instance_id.as_deref());
                        put_string(&mut out, &m.client_id);
                        put_string(&mut out, &m.client_host);
                        out.put_i32(m.rebalance_timeout_ms);
                        out.put_i32(m.session_timeout_ms);
                        out.put_i32(m.subscription.len() as i32);
                        out.put_slice(&m.subscription);
                        out.put_i32(m.assignment.len() as i32);
                        out.put_slice(&m.assignment);
                    }
                    out.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
        let mut k = Reader(key, "record key");
        let key_version = k.i16()?;
        match key_version {
            0 | 1 => {
                let group_id = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                let value = value.map(decode_offset_value).transpose()?;
                Ok(GroupRecord::Offset {
                    group_id,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group_id = k.string()?;
                let value = value.map(decode_group_value).transpose()?;
                Ok(GroupRecord::Group { group_id, value })
            }
            version => Err(RecordError::UnknownVersion {
                what: "record key",
                version,
            }),
        }
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader(bytes, "offset value");
    let version = r.i16()?;
    let offset = r.i64()?;
    let (leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms) = match version {
        0 => (-1, r.string()?, r.i64()?, None),
        1 => (-1, r.string()?, r.i64()?, Some(r.i64()?)),
        2 => (-1, r.string()?, r.i64()?, None),
        3 => (r.i32()?, r.string()?, r.i64()?, None),
        version => {
            return Err(RecordError::UnknownVersion {
                what: "offset value",
                version,
            })
        }
    };
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader(bytes, "group value");
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader_id = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = Bytes::copy_from_slice(r.bytes()?);
        let assignment = Bytes::copy_from_slice(r.bytes()?);
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation_id,
        protocol_name,
        leader_id,
        current_state_timestamp_ms,
        members,
    })
}

/// The topics a member of a `consumer` group subscribes to, read from its protocol metadata
/// (Kafka's `ConsumerProtocolSubscription`: every version starts with a version and an array of
/// topic names). `None` when the bytes are not a subscription.
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(metadata, "subscription");
    let _version = r.i16().ok()?;
    let count = r.i32().ok()?;
    if count < 0 || count as usize > metadata.len() / 2 {
        return None;
    }
    (0..count).map(|_| r.string().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() -> Result<(), RecordError> {
        for expire in [None, Some(99)] {
            let record = GroupRecord::Offset {
                group_id: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: if expire.is_some() { -1 } else { 7 },
                    metadata: "meta data ✓".into(),
                    commit_timestamp_ms: 1234,
                    expire_timestamp_ms: expire,
                }),
            };
            let (key, value) = record.encode();
            assert_eq!(GroupRecord::decode(&key, value.as_deref())?, record);
        }
        let tombstone = GroupRecord::Offset {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        };
        let (key, value) = tombstone.encode();
        assert!(value.is_none());
        assert_eq!(GroupRecord::decode(&key, None)?, tombstone);
        Ok(())
    }

    #[test]
    fn group_records_round_trip() -> Result<(), RecordError> {
        let record = GroupRecord::Group {
            group_id: "g".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation_id: 5,
                protocol_name: Some("range".into()),
                leader_id: Some("m1".into()),
                current_state_timestamp_ms: 77,
                members: vec![MemberValue {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                }],
            }),
        };
        let (key, value) = record.encode();
        assert_eq!(GroupRecord::decode(&key, value.as_deref())?, record);
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (key, value) = GroupRecord::Group {
            group_id: "group".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation_id: 1,
                protocol_name: None,
                leader_id: None,
                current_state_timestamp_ms: 0,
                members: vec![],
            }),
        }
        .encode();
        let value = value.unwrap_or_default();
        for cut in 0..value.len() {
            let _ = GroupRecord::decode(&key, Some(&value[..cut]));
        }
        for cut in 0..key.len() {
            assert!(GroupRecord::decode(&key[..cut], None).is_err());
        }
        assert!(GroupRecord::decode(&[0, 9], None).is_err());
    }

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "".hashCode() == 0; "a".hashCode() == 97; "polygenelubricants".hashCode() ==
        // Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // "console-consumer-1".hashCode() is negative in Java.
        let p = partition_for("console-consumer-1", 50);
        assert!((0..50).contains(&p));
    }

    #[test]
    fn subscription_topics() {
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i32(2);
        put_string(&mut buf, "a");
        put_string(&mut buf, "b");
        buf.put_i32(-1);
        assert_eq!(
            consumer_subscription_topics(&buf),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(consumer_subscription_topics(&[0, 1, 0x7f, 0, 0, 0]), None);
    }
}
