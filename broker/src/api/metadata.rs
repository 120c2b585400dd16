//! Metadata: brokers, topics with stable ids, partitions with this broker as leader.
//! Creates requested topics when both the client and `auto.create.topics.enable` allow it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;
use crate::metadata::{validate_topic_name, MetadataError, TopicRecord};

/// Kafka's "authorized operations not requested" sentinel.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Every topic operation (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS) as a bit set: no ACLs yet, so everything is allowed.
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE,
/// CREATE_TOKENS, DESCRIBE_TOKENS.
const ALL_CLUSTER_OPERATIONS: i32 = (1 << 5)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 13)
    | (1 << 14);

enum Wanted {
    ByName(String),
    ById(Uuid),
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: MetadataRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let wanted: Option<Vec<Wanted>> = match &request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .iter()
                .map(|t| match &t.name {
                    Some(name) => Wanted::ByName(name.to_string()),
                    None => Wanted::ById(t.topic_id),
                })
                .collect(),
        ),
        _ => None,
    };
    let auto_create = broker.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    let image = broker.metadata.image();
    let missing: Vec<String> = match (&wanted, auto_create) {
        (Some(wanted), true) => wanted
            .iter()
            .filter_map(|w| match w {
                Wanted::ByName(name)
                    if image.topic(name).is_none() && validate_topic_name(name).is_ok() =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if missing.is_empty() {
        return Reply::Now(respond(
            broker,
            &request,
            wanted.as_deref(),
            version,
            &ctx.listener,
        ));
    }
    let broker = broker.clone();
    let client_id = ctx.client_id().to_string();
    let listener = ctx.listener.clone();
    Reply::Apply(Box::pin(async move {
        let creator = broker.clone();
        blocking(move || {
            for name in missing {
                match creator.create_topic(&name, creator.config.num_partitions, BTreeMap::new()) {
                    Ok(_) | Err(MetadataError::TopicExists(_)) => {}
                    Err(e) => {
                        tracing::warn!(topic = name, client_id, error = %e, "auto-creation failed")
                    }
                }
            }
        })
        .await;
        respond(&broker, &request, wanted.as_deref(), version, &listener)
    }))
}

fn respond(
    broker: &Broker,
    request: &MetadataRequest,
    wanted: Option<&[Wanted]>,
    version: i16,
    listener: &str,
) -> super::ResponseBody {
    let image = broker.metadata.image();
    let node_id = broker.config.node_id;
    let topic_operations = if request.include_topic_authorized_operations {
        ALL_TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let describe = |topic: &TopicRecord| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
            .with_topic_id(topic.id)
            .with_is_internal(crate::config::is_internal_topic(&topic.name))
            .with_topic_authorized_operations(topic_operations)
            .with_partitions(
                (0..topic.partitions)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(node_id))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(node_id)])
                            .with_isr_nodes(vec![BrokerId(node_id)])
                    })
                    .collect(),
            )
    };
    let failed = |name: Option<&str>, id: Uuid, error: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
            .with_topic_id(id)
            .with_error_code(error.code())
            .with_topic_authorized_operations(topic_operations)
    };
    let topics = match wanted {
        None => image.topics.values().map(|t| describe(t)).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| match w {
                Wanted::ByName(name) => match image.topic(name) {
                    Some(topic) => describe(topic),
                    None => match validate_topic_name(name) {
                        Err(e) => failed(Some(name), Uuid::nil(), errors::metadata_error(&e)),
                        Ok(()) => failed(
                            Some(name),
                            Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition,
                        ),
                    },
                },
                Wanted::ById(id) => match image.topic_by_id(id) {
                    Some(topic) => describe(topic),
                    None => failed(None, *id, ResponseError::UnknownTopicId),
                },
            })
            .collect(),
    };
    let advertised = broker.advertised_endpoint(listener);
    let response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(i32::from(advertised.port))])
        .with_cluster_id(Some(StrBytes::from_string(
            broker.metadata.cluster_id.clone(),
        )))
        .with_controller_id(BrokerId(node_id))
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        })
        .with_topics(topics);
    encode(&response, version)
}

/// DescribeTopicPartitions (KIP-966), which newer `kafka-topics --describe` uses: topics in
/// name order (all of them when none is named), at most `response_partition_limit` partitions
/// per response, and a cursor where the next page starts.
pub fn describe_topic_partitions(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    use kafka_protocol::messages::describe_topic_partitions_response::{
        Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
    };
    use kafka_protocol::messages::{
        DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    };
    /// Kafka's cap on partitions per response (`max.request.partition.size.limit`).
    const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;
    let request: DescribeTopicPartitionsRequest = match super::decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let image = broker.metadata.image();
    let node = BrokerId(broker.config.node_id);
    let mut names: Vec<String> = if request.topics.is_empty() {
        image.topics.keys().cloned().collect()
    } else {
        request.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let limit = match request.response_partition_limit {
        l if l <= 0 => MAX_PARTITIONS_PER_RESPONSE,
        l => l.min(MAX_PARTITIONS_PER_RESPONSE),
    };
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if start_topic.as_ref().is_some_and(|s| name < *s) {
            continue;
        }
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition
        } else {
            0
        };
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        let Some(record) = image.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(first),
            );
            break;
        }
        let end = record.partitions.min(first.saturating_add(budget));
        let partitions: Vec<_> = (first..end)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        budget -= end - first;
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name.clone()))
                .with_topic_id(record.id)
                .with_is_internal(crate::config::is_internal_topic(&name))
                .with_topic_authorized_operations(ALL_TOPIC_OPERATIONS)
                .with_partitions(partitions),
        );
        if end < record.partitions {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(end),
            );
            break;
        }
    }
    let response = DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor);
    Reply::Now(super::encode(&response, ctx.version))
}
