//! Administration of partition logs: DeleteRecords (moves the log start offset), DescribeLogDirs
//! (sizes per partition), DescribeProducers (the idempotent producers a partition remembers).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{blocking, decode, encode, Reply, RequestContext, RequestError};
use crate::broker::Broker;
use crate::config::is_internal_topic;
use crate::log::partition::DeleteRecordsError;

pub fn delete_records(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteRecordsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        // Segment files are deleted and the new log start offsets checkpointed before the
        // answer, so a restart cannot bring deleted records back.
        let topics = blocking(move || {
            let topics: Vec<DeleteRecordsTopicResult> = request
                .topics
                .iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let outcome = if is_internal_topic(&topic.name) {
                                Err(ResponseError::InvalidTopicException)
                            } else {
                                match broker.partition(&topic.name, p.partition_index) {
                                    None => Err(ResponseError::UnknownTopicOrPartition),
                                    Some(log) => log.delete_records(p.offset).map_err(|e| {
                                        tracing::warn!(partition = %log.topic_partition, error = %e, "delete records refused");
                                        match e {
                                            DeleteRecordsError::OffsetOutOfRange { .. } => {
                                                ResponseError::OffsetOutOfRange
                                            }
                                            DeleteRecordsError::PolicyViolation => {
                                                ResponseError::PolicyViolation
                                            }
                                            DeleteRecordsError::Deleted => {
                                                ResponseError::UnknownTopicOrPartition
                                            }
                                            DeleteRecordsError::Io(_)
                                            | DeleteRecordsError::Offline(_) => {
                                                ResponseError::KafkaStorageError
                                            }
                                        }
                                    }),
                                }
                            };
                            let result = DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index);
                            match outcome {
                                Ok(low) => result.with_low_watermark(low),
                                Err(e) => result.with_low_watermark(-1).with_error_code(e.code()),
                            }
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            if let Err(e) = broker.logs.write_checkpoints() {
                tracing::error!(error = %e, "cannot write the offset checkpoints");
            }
            topics
        })
        .await
        .ok_or_else(|| RequestError::Encode("delete records task failed".into()))?;
        encode(
            &DeleteRecordsResponse::default().with_topics(topics),
            version,
        )
    }))
}

pub fn describe_log_dirs(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeLogDirsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let image = broker.metadata.image();
    // Null asks for every partition.
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        None => image
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
    };
    // One result per log directory, each with the partitions it holds.
    let results = broker
        .logs
        .dirs()
        .into_iter()
        .map(|dir| {
            let topics: Vec<DescribeLogDirsTopic> = wanted
                .iter()
                .filter_map(|(name, partitions)| {
                    let partitions: Vec<DescribeLogDirsPartition> = partitions
                        .iter()
                        .filter_map(|p| {
                            let log = broker.partition(name, *p)?;
                            (broker.logs.dir_of(&log.topic_partition).as_ref() == Some(&dir)).then(
                                || {
                                    DescribeLogDirsPartition::default()
                                        .with_partition_index(*p)
                                        .with_partition_size(log.size_bytes() as i64)
                                        .with_offset_lag(0)
                                },
                            )
                        })
                        .collect();
                    (!partitions.is_empty()).then(|| {
                        DescribeLogDirsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.clone())))
                            .with_partitions(partitions)
                    })
                })
                .collect();
            let log_dir = std::path::absolute(&dir).unwrap_or(dir);
            // The volume holding the log directory (v4+); -1 is Kafka's "unknown".
            let (total_bytes, usable_bytes) = match rustix::fs::statvfs(&log_dir) {
                Ok(v) => (
                    v.f_blocks.saturating_mul(v.f_frsize).min(i64::MAX as u64) as i64,
                    v.f_bavail.saturating_mul(v.f_frsize).min(i64::MAX as u64) as i64,
                ),
                Err(_) => (-1, -1),
            };
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(log_dir.display().to_string()))
                .with_topics(topics)
                .with_total_bytes(total_bytes)
                .with_usable_bytes(usable_bytes)
        })
        .collect();
    let response = DescribeLogDirsResponse::default().with_results(results);
    Reply::Now(encode(&response, ctx.version))
}

pub fn describe_producers(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeProducersRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|p| {
                    let response = PartitionResponse::default().with_partition_index(*p);
                    match broker.partition(&topic.name, *p) {
                        None => {
                            response.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        }
                        Some(log) => response.with_active_producers(
                            log.producers()
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(i32::from(s.epoch))
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            s.txn_start_offset.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    let response = DescribeProducersResponse::default().with_topics(topics);
    Reply::Now(encode(&response, ctx.version))
}
