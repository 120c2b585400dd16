//! Fetch: whole stored batches from the one containing the fetch offset, served from the
//! segment files without decoding. Long polls (`max_wait_ms`, `min_bytes`) wake on appends.
//! Fetch sessions (KIP-227) are declined: session id 0 tells clients to send full requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use super::{decode, encode, errors, legacy, Reply, RequestContext, ResponseBody};
use crate::broker::Broker;
use crate::log::replica::DataWatch;
use crate::log::{message_set, records, PartitionLog};

/// Kafka's `fetch.max.bytes` default: a ceiling on one response whatever the client asks.
pub const FETCH_MAX_BYTES: usize = 57_671_680;
/// Upper bound on how long one fetch may wait.
pub const MAX_WAIT_MS: i32 = 60_000;
const READ_COMMITTED: i8 = 1;
/// The first Fetch version the `kafka-protocol` crate decodes (message format v2).
const FIRST_DECODED_VERSION: i16 = 4;

struct Target {
    topic: usize,
    partition: usize,
    log: Option<Arc<PartitionLog>>,
    fetch_offset: i64,
    partition_max_bytes: usize,
    /// isolation_level=read_committed: read up to the last stable offset only.
    read_committed: bool,
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    // Fetch v0-3 ask for message formats v0/v1: read as v4, answered down-converted.
    let legacy = ctx.version < FIRST_DECODED_VERSION;
    let request = if legacy {
        legacy::fetch_request(ctx, body)
    } else {
        decode::<FetchRequest>(ctx, body)
    };
    match request {
        Ok(request) => serve(broker, ctx, request, legacy),
        Err(e) => Reply::Now(Err(e)),
    }
}

fn serve(broker: &Arc<Broker>, ctx: &RequestContext, request: FetchRequest, legacy: bool) -> Reply {
    let version = ctx.version;
    if request.session_id != 0 {
        let response = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Reply::Now(encode(&response, version));
    }
    // A fetch from a replica (a broker id) is a follower's: Strom has no followers yet, so
    // as Kafka answers a replica it does not know (`Partition.followerReplicaOrThrow`), every
    // partition is NOT_LEADER_OR_FOLLOWER.
    let replica = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let from_replica = replica >= 0;
    let image = broker.metadata.image();
    let by_id = version >= 13;
    let mut response = FetchResponse::default().with_session_id(0);
    let mut targets = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let record = if by_id {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.topic.as_str())
        };
        let unknown = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (p, partition) in topic.partitions.iter().enumerate() {
            let log = record.and_then(|r| broker.partition(&r.name, partition.partition));
            let mut data = PartitionData::default()
                .with_partition_index(partition.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new()));
            // As Kafka: a list for read_committed (filled by the read), null otherwise.
            data = data.with_aborted_transactions(
                (request.isolation_level == READ_COMMITTED).then(Vec::new),
            );
            if log.is_none() {
                data = data.with_error_code(unknown.code());
            } else if from_replica {
                data = data.with_error_code(ResponseError::NotLeaderOrFollower.code());
            }
            partitions.push(data);
            targets.push(Target {
                topic: t,
                partition: p,
                log: log.filter(|_| !from_replica),
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: usize::try_from(partition.partition_max_bytes).unwrap_or(0),
                read_committed: request.isolation_level == READ_COMMITTED,
            });
        }
        response.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(FETCH_MAX_BYTES);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64);
    // Watched from before the read: an append between the read and the wait wakes it.
    let mut watch = DataWatch::new(targets.iter().filter_map(|t| t.log.as_ref()));
    // Reads are page-cache reads done right here: handing them to the blocking pool cost
    // more broker CPU per record than it saved (see docs/ARCHITECTURE.md, Known limits).
    let (bytes, failed) = read_all(&mut response, &targets, max_bytes);
    if bytes >= min_bytes || failed || max_wait.is_zero() || watch.is_empty() {
        count_bytes_out(broker, &response, &targets);
        return Reply::Now(finish(response, &targets, max_bytes, version, legacy));
    }
    drop_records(&mut response);
    // A stopping broker answers long polls at once with what they have.
    let mut stopping = broker.stop_signal();
    let broker = broker.clone();
    Reply::Wait(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let timed_out = !watch.changed_before(deadline, &mut stopping).await;
            let (bytes, failed) = read_all(&mut response, &targets, max_bytes);
            if timed_out || failed || bytes >= min_bytes {
                count_bytes_out(&broker, &response, &targets);
                return finish(response, &targets, max_bytes, version, legacy);
            }
            drop_records(&mut response);
        }
    }))
}

/// Writes the answer in `version`'s layout; for Fetch v0-3, with each partition's records
/// down-converted.
fn finish(
    mut response: FetchResponse,
    targets: &[Target],
    max_bytes: usize,
    version: i16,
    legacy: bool,
) -> ResponseBody {
    if !legacy {
        return encode(&response, version);
    }
    down_convert(&mut response, targets, max_bytes, version);
    Ok(legacy::fetch_response(&response, version))
}

/// Turns each partition's stored batches into a message set of the format Fetch `version`
/// reads (v0-1: magic 0, v2-3: magic 1), within the same byte limits as the read: the first
/// partition with data may pass them by one message from v3 on (KIP-74); before v3 the limit
/// is hard and an oversized first message is sent cut, as Kafka sends it.
fn down_convert(response: &mut FetchResponse, targets: &[Target], max_bytes: usize, version: i16) {
    let magic = if version <= 1 { 0 } else { 1 };
    let mut total = 0usize;
    for target in targets {
        let data = &mut response.responses[target.topic].partitions[target.partition];
        let (Some(log), Some(stored)) = (&target.log, data.records.take()) else {
            continue;
        };
        if stored.is_empty() {
            data.records = Some(stored);
            continue;
        }
        let budget = target
            .partition_max_bytes
            .min(max_bytes.saturating_sub(total));
        let oversized = if version >= 3 && total == 0 {
            message_set::Oversized::Whole
        } else {
            message_set::Oversized::Truncate
        };
        let limit = records::decompressed_limit(log.config().max_message_bytes);
        match message_set::from_batches(
            &stored,
            magic,
            target.fetch_offset,
            budget,
            oversized,
            limit,
        ) {
            Ok(set) => {
                total += set.len();
                data.records = Some(set);
            }
            Err(e) => {
                tracing::warn!(
                    topic = %log.topic_partition.topic,
                    partition = log.topic_partition.partition,
                    offset = target.fetch_offset,
                    error = %e,
                    "stored batches cannot be down-converted for a Fetch v{version}"
                );
                data.error_code = ResponseError::CorruptMessage.code();
                data.records = Some(Bytes::new());
            }
        }
    }
}

/// Every wake of a long poll re-reads its partitions: what was read is dropped meanwhile, so
/// a waiting fetch holds no record bytes (many pipelined long polls must not pin memory).
fn drop_records(response: &mut FetchResponse) {
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            partition.records = Some(Bytes::new());
        }
    }
}

/// Adds the record bytes of the response that is sent to `BytesOutPerSec`.
fn count_bytes_out(broker: &Broker, response: &FetchResponse, targets: &[Target]) {
    for target in targets {
        if let Some(log) = &target.log {
            let bytes = response.responses[target.topic].partitions[target.partition]
                .records
                .as_ref()
                .map_or(0, |r| r.len());
            broker
                .metrics
                .record_fetch(&log.topic_partition.topic, bytes as u64);
        }
    }
}

/// Reads every target into `response`; returns the record bytes gathered and whether a
/// partition failed (which ends a long poll at once, as in Kafka).
fn read_all(response: &mut FetchResponse, targets: &[Target], max_bytes: usize) -> (usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    for target in targets {
        let data = &mut response.responses[target.topic].partitions[target.partition];
        let Some(log) = &target.log else {
            failed = true;
            continue;
        };
        let offsets = log.offsets();
        data.high_watermark = offsets.high_watermark;
        data.last_stable_offset = offsets.last_stable_offset;
        data.log_start_offset = offsets.log_start_offset;
        // KIP-74: once some data is in the response, later partitions get what is left;
        // the first non-empty partition may exceed the limits by one batch.
        let budget = if total == 0 {
            target.partition_max_bytes.min(max_bytes).max(1)
        } else {
            target
                .partition_max_bytes
                .min(max_bytes.saturating_sub(total))
        };
        if budget == 0 {
            data.records = Some(Bytes::new());
            continue;
        }
        data.aborted_transactions = target.read_committed.then(Vec::new);
        let read = if target.read_committed {
            log.read_committed(target.fetch_offset, budget)
        } else {
            log.read(target.fetch_offset, budget)
                .map(|r| (r, Vec::new()))
        };
        match read {
            Ok((Some(records), aborted)) => {
                total += records.len();
                data.error_code = 0;
                data.records = Some(records);
                if target.read_committed {
                    data.aborted_transactions = Some(
                        aborted
                            .into_iter()
                            .map(|t| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(t.producer_id))
                                    .with_first_offset(t.first_offset)
                            })
                            .collect(),
                    );
                }
            }
            Ok((None, _)) => {
                data.error_code = 0;
                data.records = Some(Bytes::new());
            }
            Err(e) => {
                // As Kafka's `createLogReadResult(e)`: an error answer carries no offsets.
                data.error_code = errors::read_error(&e).code();
                data.records = Some(Bytes::new());
                data.high_watermark = -1;
                data.last_stable_offset = -1;
                data.log_start_offset = -1;
                failed = true;
            }
        }
    }
    (total, failed)
}
