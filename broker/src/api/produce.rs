//! Produce: validate and append each partition's batches, then answer — at once for acks=1,
//! after the group-commit fsync for acks=-1, never for acks=0.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode, encode, errors, Reply, RequestContext, RequestError, ResponseBody};
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::log::batch::BatchHeader;
use crate::log::partition::AppendError;

/// The first Produce version the `kafka-protocol` crate decodes (message format v2).
const FIRST_DECODED_VERSION: i16 = 3;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    if ctx.version < FIRST_DECODED_VERSION {
        return legacy_unsupported(ctx, body);
    }
    let request: ProduceRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let acks = request.acks;
    let version = ctx.version;
    let now_ms = broker.clock.now_ms();
    let image = broker.metadata.image();
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let known_topic = image.topic(&name).is_some();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
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
            let outcome = if !matches!(acks, -1..=1) {
                Err(ResponseError::InvalidRequiredAcks)
            } else if name == OFFSETS_TOPIC {
                // Only the group coordinator writes there (Kafka: "Cannot append to internal
                // topic").
                Err(ResponseError::InvalidTopicException)
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
                        if acks == -1 && info.fsync_acks_all {
                            waits.push((
                                partitions.len(),
                                responses.len(),
                                log.clone(),
                                info.next_offset,
                            ));
                        } else if info.flush_due {
                            broker
                                .logs
                                .flusher()
                                .flush_in_background(log.clone(), info.next_offset);
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
        return Reply::Now(encode(&response, version));
    }
    let receivers: Vec<_> = waits
        .into_iter()
        .map(|(p, t, log, up_to)| (p, t, broker.logs.flusher().flush(log, up_to)))
        .collect();
    Reply::Wait(Box::pin(async move {
        let mut response = response;
        for (partition, topic, receiver) in receivers {
            let ok = matches!(receiver.await, Ok(Ok(())));
            if !ok {
                let entry = &mut response.responses[topic].partition_responses[partition];
                entry.error_code = ResponseError::KafkaStorageError.code();
                entry.base_offset = -1;
            }
        }
        encode(&response, version)
    }))
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

/// Produce v0-2 carry message format v0/v1, which Strom does not store. They are parsed just
/// enough to answer every partition with UNSUPPORTED_VERSION in that version's layout.
fn legacy_unsupported(ctx: &RequestContext, mut body: Bytes) -> Reply {
    let malformed = || {
        Reply::Now(Err(RequestError::Decode {
            api: ctx.api_key,
            version: ctx.version,
            reason: "truncated legacy produce request".into(),
        }))
    };
    fn string(body: &mut Bytes) -> Option<Bytes> {
        if body.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(body.get_i16()).ok()?;
        (body.remaining() >= len).then(|| body.split_to(len))
    }
    if body.remaining() < 10 {
        return malformed();
    }
    let acks = body.get_i16();
    let _timeout_ms = body.get_i32();
    let topic_count = body.get_i32();
    let mut out = BytesMut::new();
    out.put_i32(topic_count.max(0));
    for _ in 0..topic_count.max(0) {
        let Some(name) = string(&mut body) else {
            return malformed();
        };
        if body.remaining() < 4 {
            return malformed();
        }
        let partition_count = body.get_i32();
        out.put_i16(name.len() as i16);
        out.put_slice(&name);
        out.put_i32(partition_count.max(0));
        for _ in 0..partition_count.max(0) {
            if body.remaining() < 8 {
                return malformed();
            }
            let partition = body.get_i32();
            let Ok(size) = usize::try_from(body.get_i32()) else {
                return malformed();
            };
            if body.remaining() < size {
                return malformed();
            }
            body.advance(size);
            out.put_i32(partition);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            out.put_i64(-1);
            if ctx.version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if ctx.version >= 1 {
        out.put_i32(0);
    }
    tracing::warn!(
        connection = ctx.connection_id,
        client_id = ctx.client_id(),
        version = ctx.version,
        "produce with message format v0/v1 refused"
    );
    if acks == 0 {
        return Reply::Nothing;
    }
    let body: ResponseBody = Ok(out.freeze());
    Reply::Now(body)
}
