//! Produce: validate and append each partition's batches, then answer — at once for acks=1,
//! after the group-commit fsync for acks=-1, never for acks=0.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode, encode, errors, legacy, Reply, RequestContext, ResponseBody};
use crate::broker::Broker;
use crate::config::is_internal_topic;
use crate::log::batch::BatchHeader;
use crate::log::partition::AppendError;
use crate::log::replica::Acks;
use crate::log::PartitionLog;
use crate::log::{message_set, records};
use crate::txn::state::TxnError;

/// The first Produce version the `kafka-protocol` crate decodes (message format v2).
const FIRST_DECODED_VERSION: i16 = 3;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    if ctx.version < FIRST_DECODED_VERSION {
        return legacy(broker, ctx, body);
    }
    let request: ProduceRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    produce(broker, ctx, request, &[], encode)
}

/// Appends every partition of `request` and answers it, written by `write`. `refused` holds,
/// per topic and partition, an error found before the append (a message set that could not be
/// converted).
fn produce(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ProduceRequest,
    refused: &[Vec<Option<ResponseError>>],
    write: fn(&ProduceResponse, i16) -> ResponseBody,
) -> Reply {
    let acks = request.acks;
    let version = ctx.version;
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let now_ms = broker.clock.now_ms();
    let image = broker.metadata.image();
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let known_topic = image.topic(&name).is_some();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (p, data) in topic.partition_data.into_iter().enumerate() {
            let mut response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let log = if known_topic {
                broker.partition(&name, data.index)
            } else {
                None
            };
            let refusal = refused.get(t).and_then(|r| r.get(p)).copied().flatten();
            let outcome = if !matches!(acks, -1..=1) {
                Err(ResponseError::InvalidRequiredAcks)
            } else if let Some(error) = refusal {
                Err(error)
            } else if is_internal_topic(&name) {
                // Only the coordinators write there (Kafka: "Cannot append to internal
                // topic").
                Err(ResponseError::InvalidTopicException)
            } else if let Some(error) = log.as_ref().and_then(|log| {
                unverified_transactional(broker, transactional_id.as_deref(), log, &data.records)
            }) {
                Err(error)
            } else if let Some(log) = log {
                match data.records.as_deref().map(|r| {
                    // Kafka (`ProduceRequest.validateRecords`): "must have at least one record
                    // batch per partition", INVALID_RECORD.
                    if r.is_empty() {
                        Err(AppendError::NotOneBatch)
                    } else if r.len() >= 8 && r[..8] != [0; 8] {
                        Err(AppendError::NonZeroBaseOffset)
                    } else if BatchHeader::parse(r)
                        .is_ok_and(|h| h.has_producer_id() && h.base_sequence < 0)
                    {
                        Err(AppendError::InvalidSequence)
                    } else {
                        log.append(r, now_ms)
                    }
                }) {
                    None => Err(ResponseError::CorruptMessage),
                    Some(Ok(info)) => {
                        broker.metrics.record_append(
                            &name,
                            u64::try_from(info.next_offset - info.base_offset).unwrap_or(0),
                            data.records.as_ref().map_or(0, |r| r.len() as u64),
                        );
                        response = response
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time_ms)
                            .with_log_start_offset(info.log_start_offset);
                        let pending = broker.logs.replicas().acknowledge(
                            &log,
                            &info,
                            Acks::from_request(acks),
                        );
                        if !pending.is_done() {
                            waits.push((partitions.len(), responses.len(), pending));
                        }
                        Ok(())
                    }
                    Some(Err(e)) => {
                        log_append_error(ctx, &name, data.index, &e);
                        // (Produce v8+ carries them; older versions cannot encode them.)
                        if let (AppendError::InvalidTimestamp { records }, 8..) = (&e, version) {
                            // KIP-467, as Kafka's `RecordValidationException` answers it.
                            response.record_errors = records
                                .iter()
                                .map(|(i, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(*i)
                                        .with_batch_index_error_message(Some(StrBytes::from(
                                            message.clone(),
                                        )))
                                })
                                .collect();
                            response.error_message = Some(StrBytes::from_static_str(
                                "One or more records have been rejected due to invalid timestamp",
                            ));
                        }
                        if let (AppendError::NoKey { records }, 8..) = (&e, version) {
                            // KIP-467: name each offending record, so the client fails those
                            // with INVALID_RECORD and the rest of the batch as collateral.
                            let message = StrBytes::from(format!(
                                "Compacted topic cannot accept message without key in topic \
                                 partition {name}-{}.",
                                data.index
                            ));
                            response.record_errors = records
                                .iter()
                                .map(|i| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(*i)
                                        .with_batch_index_error_message(Some(message.clone()))
                                })
                                .collect();
                            response.error_message = Some(message);
                        }
                        Err(errors::append_error(&e))
                    }
                }
            } else {
                Err(ResponseError::UnknownTopicOrPartition)
            };
            if let Err(error) = outcome {
                response = response.with_error_code(error.code());
            }
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let response = ProduceResponse::default().with_responses(responses);
    if waits.is_empty() {
        return Reply::Now(write(&response, version));
    }
    Reply::Wait(Box::pin(async move {
        let mut response = response;
        for (partition, topic, pending) in waits {
            if !pending.wait().await {
                let entry = &mut response.responses[topic].partition_responses[partition];
                entry.error_code = ResponseError::KafkaStorageError.code();
                entry.base_offset = -1;
            }
        }
        write(&response, version)
    }))
}

/// A transactional batch must belong to its producer's ongoing transaction, which must include
/// this partition (KIP-890's verification, asked of the coordinator in process): the error to
/// answer when it does not. Once the producer's transaction is open in the partition, later
/// batches are checked by the producer state alone.
fn unverified_transactional(
    broker: &Broker,
    transactional_id: Option<&str>,
    log: &PartitionLog,
    records: &Option<Bytes>,
) -> Option<ResponseError> {
    let header = BatchHeader::parse(records.as_deref()?).ok()?;
    if !header.is_transactional() {
        return None;
    }
    let Some(transactional_id) = transactional_id else {
        // Kafka: transactional records need a transactional id (and the right to use it).
        return Some(ResponseError::TransactionalIdAuthorizationFailed);
    };
    if log.open_transaction(header.producer_id).is_some() {
        return None;
    }
    let Some(coordinator) = broker.txn_coordinator() else {
        return Some(ResponseError::InvalidTxnState);
    };
    let partition = (
        log.topic_partition.topic.clone(),
        log.topic_partition.partition,
    );
    match coordinator.verify(
        transactional_id,
        header.producer_id,
        header.producer_epoch,
        &partition,
    ) {
        Ok(()) => None,
        // As Kafka translates the coordinator's answers for a producer.
        Err(TxnError::ProducerFenced) => Some(ResponseError::InvalidProducerEpoch),
        Err(TxnError::LoadInProgress | TxnError::NotAvailable) => {
            Some(ResponseError::NotEnoughReplicas)
        }
        Err(TxnError::UnknownProducerIdMapping) => Some(ResponseError::InvalidProducerIdMapping),
        Err(_) => Some(ResponseError::InvalidTxnState),
    }
}

fn log_append_error(ctx: &RequestContext, topic: &str, partition: i32, e: &AppendError) {
    tracing::warn!(
        connection = ctx.connection_id,
        client_id = ctx.client_id(),
        topic,
        partition,
        error = %e,
        "produce rejected"
    );
}

/// Produce v0-2 carry message formats v0/v1: each partition's message set is up-converted to
/// one v2 batch (`log::message_set`), then appended as any batch is; the answer is written in
/// the request's layout.
fn legacy(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let mut request = match legacy::produce_request(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let mut refused = Vec::with_capacity(request.topic_data.len());
    for topic in &mut request.topic_data {
        let mut errors = Vec::with_capacity(topic.partition_data.len());
        for data in &mut topic.partition_data {
            let log = broker.partition(topic.name.as_str(), data.index);
            let (Some(log), Some(set)) = (log, data.records.take()) else {
                // Unknown partitions and null records are answered as in later versions.
                errors.push(None);
                continue;
            };
            let limit = records::decompressed_limit(log.config().max_message_bytes);
            match message_set::to_batch(&set, limit) {
                Ok(batch) => {
                    data.records = Some(batch);
                    errors.push(None);
                }
                Err(e) => {
                    tracing::warn!(
                        connection = ctx.connection_id,
                        client_id = ctx.client_id(),
                        topic = topic.name.as_str(),
                        partition = data.index,
                        version = ctx.version,
                        error = %e,
                        "produce rejected: message set cannot be converted"
                    );
                    errors.push(Some(errors::convert_error(&e)));
                }
            }
        }
        refused.push(errors);
    }
    produce(broker, ctx, request, &refused, |response, version| {
        Ok(legacy::produce_response(response, version))
    })
}
