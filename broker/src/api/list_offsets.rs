//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, KIP-734), earliest local (-4,
//! the same as earliest without tiered storage) and by timestamp through the time index.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let decoded = if ctx.version == 0 {
        super::legacy::list_offsets_v0_request(ctx, body).map(|(r, max)| (r, Some(max)))
    } else {
        decode(ctx, body).map(|r| (r, None))
    };
    let (request, legacy_max_offsets): (ListOffsetsRequest, _) = match decoded {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    // v0 is answered from the v1 response, rewritten in its own layout.
    let encode = move |response: &ListOffsetsResponse, version: i16| match &legacy_max_offsets {
        Some(max) => Ok(super::legacy::list_offsets_v0_response(response, max)),
        None => encode(response, version),
    };
    let needs_scan = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .any(|p| !matches!(p.timestamp, LATEST | EARLIEST | EARLIEST_LOCAL));
    if !needs_scan {
        return Reply::Now(encode(&answer(broker, &request, version), version));
    }
    let broker = broker.clone();
    Reply::Wait(Box::pin(async move {
        match blocking(move || answer(&broker, &request, version)).await {
            Some(response) => encode(&response, version),
            None => Err(super::RequestError::Encode(
                "list offsets task failed".into(),
            )),
        }
    }))
}

fn answer(broker: &Broker, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // Leader epochs exist in the response from v4 on.
    let leader_epoch = if version >= 4 { 0 } else { -1 };
    // A partition asked for twice gets INVALID_REQUEST in each answer, as in Kafka
    // (`ListOffsetsRequest.duplicatePartitions`).
    let read_committed = request.isolation_level == 1;
    let mut seen = std::collections::HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *seen
                .entry((topic.name.as_str(), p.partition_index))
                .or_insert(0usize) += 1;
        }
    }
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(leader_epoch);
                    if seen.get(&(topic.name.as_str(), p.partition_index)).copied() > Some(1) {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_leader_epoch(-1);
                    }
                    let Some(log) = broker.partition(topic.name.as_str(), p.partition_index) else {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_epoch(-1);
                    };
                    let offsets = log.offsets();
                    let found = match p.timestamp {
                        // read_committed consumers start at the last stable offset.
                        LATEST if read_committed => Ok(Some((offsets.last_stable_offset, -1))),
                        LATEST => Ok(Some((offsets.high_watermark, -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start_offset, -1))),
                        MAX_TIMESTAMP => log.max_timestamp_offset(),
                        // Any other value is searched as a timestamp, as Kafka does: every
                        // record is at or after a negative one.
                        t => log.offset_for_timestamp(t),
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            base.with_offset(offset).with_timestamp(timestamp)
                        }
                        Ok(None) => base,
                        Err(e) => base.with_error_code(errors::read_error(&e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The only leader epoch a single broker has had: batches are written with it and Metadata
/// reports it.
const LEADER_EPOCH: i32 = 0;

/// OffsetForLeaderEpoch (KIP-101/320): consumers validate their position after a leader change
/// with it. With one epoch, asking for it answers the log end; a later epoch is unknown.
pub fn offset_for_leader_epoch(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    use kafka_protocol::messages::offset_for_leader_epoch_response::{
        EpochEndOffset, OffsetForLeaderTopicResult,
    };
    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
    let request: OffsetForLeaderEpochRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(log) = broker.partition(&topic.topic, p.partition) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    // -1 skips the check; an older epoch cannot exist (FENCED_LEADER_EPOCH
                    // once leaders change in a cluster).
                    if p.current_leader_epoch > LEADER_EPOCH {
                        return result.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.leader_epoch == LEADER_EPOCH {
                        result
                            .with_leader_epoch(LEADER_EPOCH)
                            .with_end_offset(log.offsets().high_watermark)
                    } else {
                        result
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetForLeaderEpochResponse::default().with_topics(topics);
    Reply::Now(encode(&response, ctx.version))
}
