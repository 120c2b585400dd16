//! The transaction APIs (KIP-98): AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! DescribeTransactions, ListTransactions; InitProducerId with a transactional id is in
//! `producer_id.rs` and FindCoordinator in `groups.rs`. The coordinator is `txn/`.
//!
//! WriteTxnMarkers is served for administrators (`Admin.abortTransaction`, which ends a hanging
//! transaction at one partition); the coordinator writes its own markers without the wire.
//!
//! Versions: the client forms only (AddPartitionsToTxn v4+ is broker-to-broker and EndTxn v5
//! belongs to transaction version 2, which Strom does not advertise, so Java 4.x clients stay on
//! the classic protocol, as against Kafka 3.x).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{blocking, decode, encode, errors, Reply, RequestContext, ResponseBody};
use crate::broker::Broker;
use crate::config::OFFSETS_TOPIC;
use crate::group::state::{CommitOffset, CommitRequest};
use crate::log::marker::Marker;
use crate::log::replica::Acks;
use crate::txn::coordinator::TxnCoordinator;
use crate::txn::state::{TxnError, TxnPartition, TxnState};

/// The coordinator when `__transaction_state` exists; otherwise COORDINATOR_NOT_AVAILABLE,
/// which sends the client back to FindCoordinator (which creates it).
fn coordinator(broker: &Broker) -> Result<Arc<TxnCoordinator>, TxnError> {
    broker
        .txn_coordinator()
        .cloned()
        .ok_or(TxnError::NotAvailable)
}

/// The error a request of `version` answers; `fenced_before` is the first version that knows
/// PRODUCER_FENCED (older ones get INVALID_PRODUCER_EPOCH, as Kafka translates it).
pub fn error_for(e: TxnError, version: i16, fenced_before: i16) -> ResponseError {
    match errors::txn_error(e) {
        ResponseError::ProducerFenced if version < fenced_before => {
            ResponseError::InvalidProducerEpoch
        }
        code => code,
    }
}

macro_rules! decode_or_answer {
    ($ctx:expr, $body:expr) => {
        match decode($ctx, $body) {
            Ok(r) => r,
            Err(e) => return Reply::Now(Err(e)),
        }
    };
}

/// AddPartitionsToTxn v0-3's answer: every partition of `topics` with `code_for`'s error.
fn add_partitions_answer(
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
    code_for: impl Fn(&str, i32) -> i16,
) -> ResponseBody {
    let results = topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_for(t.name.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
        version,
    )
}

pub fn add_partitions_to_txn(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AddPartitionsToTxnRequest = decode_or_answer!(ctx, body);
    let version = ctx.version;
    let transactional_id = request.v3_and_below_transactional_id.0.to_string();
    let producer_id = request.v3_and_below_producer_id.0;
    let epoch = request.v3_and_below_producer_epoch;
    let topics = request.v3_and_below_topics;
    let image = broker.metadata.image();
    let known = |topic: &str, partition: i32| {
        image
            .topic(topic)
            .is_some_and(|t| partition >= 0 && partition < t.partitions)
    };
    if !topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| known(t.name.as_str(), *p)))
    {
        // As Kafka: unknown partitions fail, the others are not attempted; nothing is added.
        return Reply::Now(add_partitions_answer(&topics, version, |t, p| {
            if known(t, p) {
                ResponseError::OperationNotAttempted.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            }
        }));
    }
    let partitions: Vec<TxnPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let outcome = match coordinator(&broker) {
            Ok(c) => {
                c.add_partitions(&transactional_id, producer_id, epoch, &partitions)
                    .await
            }
            Err(e) => Err(e),
        };
        let code = outcome.map_or_else(|e| error_for(e, version, 2).code(), |()| 0);
        add_partitions_answer(&topics, version, |_, _| code)
    }))
}

pub fn add_offsets_to_txn(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AddOffsetsToTxnRequest = decode_or_answer!(ctx, body);
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        // The group's offsets partition joins the transaction (the offsets topic is created
        // if needed, as FindCoordinator for the group would).
        let b = broker.clone();
        let outcome = match blocking(move || b.ensure_group_coordinator()).await {
            Some(Ok(groups)) => {
                let partition = groups.partition_for(request.group_id.as_str());
                match coordinator(&broker) {
                    Ok(c) => {
                        c.add_partitions(
                            request.transactional_id.as_str(),
                            request.producer_id.0,
                            request.producer_epoch,
                            &[(OFFSETS_TOPIC.to_string(), partition)],
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Err(TxnError::NotAvailable),
        };
        let code = match outcome {
            Ok(()) => 0,
            Err(e) => error_for(e, version, 2).code(),
        };
        encode(
            &AddOffsetsToTxnResponse::default().with_error_code(code),
            version,
        )
    }))
}

pub fn end_txn(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: EndTxnRequest = decode_or_answer!(ctx, body);
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let outcome = match coordinator(&broker) {
            Ok(c) => {
                c.end(
                    request.transactional_id.as_str(),
                    request.producer_id.0,
                    request.producer_epoch,
                    request.committed,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let code = match outcome {
            Ok(()) => 0,
            Err(e) => error_for(e, version, 2).code(),
        };
        encode(
            &EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        )
    }))
}

pub fn describe_transactions(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeTransactionsRequest = decode_or_answer!(ctx, body);
    let coordinator = coordinator(broker);
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let described = coordinator
                .as_ref()
                .map_err(|e| *e)
                .and_then(|c| c.describe(id.as_str()));
            match described {
                Ok(d) => {
                    let m = d.metadata;
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in &m.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    TransactionState::default()
                        .with_transactional_id(id)
                        .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.epoch)
                        .with_topics(topics)
                }
                Err(e) => TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(errors::txn_error(e).code())
                    .with_transaction_state(StrBytes::from_static_str(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
            }
        })
        .collect();
    Reply::Now(encode(
        &DescribeTransactionsResponse::default().with_transaction_states(states),
        ctx.version,
    ))
}

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub fn list_transactions(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListTransactionsRequest = decode_or_answer!(ctx, body);
    let mut response = ListTransactionsResponse::default();
    let unknown: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    response.unknown_state_filters = unknown;
    // No coordinator yet: no transactions (Kafka answers the same before the topic exists).
    let listed = match coordinator(broker) {
        Ok(c) => c.list(),
        Err(_) => Ok(Vec::new()),
    };
    let now_ms = broker.clock.now_ms();
    match listed {
        Ok(all) => {
            response.transaction_states = all
                .into_iter()
                .filter(|d| d.metadata.state != TxnState::Dead)
                .filter(|d| {
                    request.state_filters.is_empty()
                        || request
                            .state_filters
                            .iter()
                            .any(|f| f.as_str() == d.metadata.state.name())
                })
                .filter(|d| {
                    request.producer_id_filters.is_empty()
                        || request
                            .producer_id_filters
                            .iter()
                            .any(|p| p.0 == d.metadata.producer_id)
                })
                .filter(|d| {
                    // v1: only transactions running longer than the filter.
                    request.duration_filter < 0
                        || (d.metadata.start_ms >= 0
                            && now_ms - d.metadata.start_ms > request.duration_filter)
                })
                .map(|d| {
                    ListedState::default()
                        .with_transactional_id(StrBytes::from_string(d.transactional_id).into())
                        .with_producer_id(ProducerId(d.metadata.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(d.metadata.state.name()))
                })
                .collect();
        }
        Err(e) => response.error_code = errors::txn_error(e).code(),
    }
    Reply::Now(encode(&response, ctx.version))
}

/// TxnOffsetCommit (KIP-98, KIP-447 generation checks v3+): the offsets are stored with the
/// producer's transaction and take effect when it commits. The group's offsets partition must
/// be in the producer's ongoing transaction (AddOffsetsToTxn), as Kafka verifies (KIP-890).
pub fn txn_offset_commit(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: TxnOffsetCommitRequest = decode_or_answer!(ctx, body);
    let version = ctx.version;
    let order: Vec<(TopicName, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let answer = move |code_of: &dyn Fn(&str, i32) -> i16| {
        let topics = order
            .iter()
            .map(|(name, partitions)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name.clone())
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_error_code(code_of(name.as_str(), *p))
                            })
                            .collect(),
                    )
            })
            .collect();
        encode(
            &TxnOffsetCommitResponse::default().with_topics(topics),
            version,
        )
    };
    let Some(groups) = broker.group_coordinator().cloned() else {
        let code = ResponseError::CoordinatorNotAvailable.code();
        return Reply::Now(answer(&|_, _| code));
    };
    let producer = (request.producer_id.0, request.producer_epoch);
    let offsets_partition = (
        OFFSETS_TOPIC.to_string(),
        groups.partition_for(request.group_id.as_str()),
    );
    let verified = coordinator(broker).and_then(|c| {
        c.verify(
            request.transactional_id.as_str(),
            producer.0,
            producer.1,
            &offsets_partition,
        )
    });
    if let Err(e) = verified {
        // As Kafka translates the coordinator's answer for this request's versions.
        let error = match e {
            TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
            TxnError::LoadInProgress if version < 2 => ResponseError::CoordinatorNotAvailable,
            other => errors::txn_error(other),
        };
        return Reply::Now(answer(&|_, _| error.code()));
    }
    let offsets: Vec<CommitOffset> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| CommitOffset {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_time_ms: -1,
        offsets,
    };
    let image = broker.metadata.image();
    let (unknown, stored) = groups.txn_commit(commit, producer, |topic, partition| {
        image
            .topic(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition))
    });
    Reply::Wait(Box::pin(async move {
        let outcome = stored.await;
        answer(&|topic, partition| {
            if unknown.iter().any(|(t, p)| t == topic && *p == partition) {
                return ResponseError::UnknownTopicOrPartition.code();
            }
            match &outcome {
                Err(e) => errors::group_error(*e).code(),
                Ok(errors) => errors
                    .iter()
                    .find(|(t, p, _)| t == topic && *p == partition)
                    .map_or(0, |(_, _, e)| errors::group_error(*e).code()),
            }
        })
    }))
}

/// WriteTxnMarkers v1: each marker written to each of its partitions and made durable, as the
/// partition leader does for the coordinator in Kafka. An administrator sends it to abort a
/// hanging transaction (`Admin.abortTransaction`, `kafka-transactions.sh abort`), with the
/// producer's epoch and coordinator epoch from DescribeProducers. A marker for a producer with
/// nothing open at a partition is written all the same, as Kafka does.
pub fn write_txn_markers(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: WriteTxnMarkersRequest = decode_or_answer!(ctx, body);
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let mut markers = Vec::with_capacity(request.markers.len());
        for m in request.markers {
            let marker = Marker {
                commit: m.transaction_result,
                coordinator_epoch: m.coordinator_epoch,
            };
            let mut topics = Vec::with_capacity(m.topics.len());
            for t in m.topics {
                let mut partitions = Vec::with_capacity(t.partition_indexes.len());
                for p in t.partition_indexes {
                    let code = write_one_marker(
                        &broker,
                        t.name.to_string(),
                        p,
                        m.producer_id.0,
                        m.producer_epoch,
                        marker,
                    )
                    .await;
                    if let Err(e) = code {
                        tracing::info!(
                            topic = %t.name.as_str(),
                            partition = p,
                            producer_id = m.producer_id.0,
                            error = ?e,
                            "WriteTxnMarkers refused"
                        );
                    }
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(code.err().map_or(0, |e| e.code())),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        encode(
            &WriteTxnMarkersResponse::default().with_markers(markers),
            version,
        )
    }))
}

/// One marker at one partition: written off the reactor, then acknowledged as acks=all is.
async fn write_one_marker(
    broker: &Arc<Broker>,
    topic: String,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    marker: Marker,
) -> Result<(), ResponseError> {
    let writer = broker.clone();
    let written =
        blocking(move || writer.write_txn_marker(&topic, partition, producer_id, epoch, marker))
            .await;
    let (log, info) = match written {
        None => return Err(ResponseError::UnknownServerError),
        Some(None) => return Err(ResponseError::UnknownTopicOrPartition),
        Some(Some(Err(e))) => return Err(errors::append_error(&e)),
        Some(Some(Ok(written))) => written,
    };
    if broker
        .logs
        .replicas()
        .acknowledge(&log, &info, Acks::All)
        .wait()
        .await
    {
        Ok(())
    } else {
        Err(ResponseError::KafkaStorageError)
    }
}
