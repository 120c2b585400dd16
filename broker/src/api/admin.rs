//! Topic and cluster administration: CreateTopics (with `validate_only`), DeleteTopics (by
//! name, and by id from v6), CreatePartitions, DescribeCluster.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{blocking, decode, encode, errors, Reply, RequestContext, RequestError};
use crate::broker::{log_config_for, Broker};
use crate::config::is_internal_topic;
use crate::metadata::topic_configs::describe_topic_configs;
use crate::metadata::MetadataError;

pub fn create_topics(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let decoded = match ctx.version {
        // v0 lacks validate_only at the end; v1 is v2's layout.
        0 => super::legacy::decode_as(ctx, body, 2, &[0]),
        1 => super::legacy::decode_as(ctx, body, 2, &[]),
        _ => decode(ctx, body),
    };
    let request: CreateTopicsRequest = match decoded {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let results = blocking(move || {
            // A name given twice is answered once, with INVALID_REQUEST, and not created
            // (Kafka: "Duplicate topic name").
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for topic in &request.topics {
                *counts.entry(topic.name.as_str()).or_default() += 1;
            }
            let mut answered = HashSet::new();
            request
                .topics
                .iter()
                .filter(|topic| answered.insert(topic.name.as_str()))
                .map(|topic| {
                    if counts.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
                        CreatableTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "Duplicate topic name.",
                            )))
                    } else {
                        create_one(&broker, topic, request.validate_only)
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok_or_else(|| RequestError::Encode("create topics task failed".into()))?;
        let response = CreateTopicsResponse::default().with_topics(results);
        if version < 2 {
            return Ok(super::legacy::create_topics_v0_v1(&response, version));
        }
        encode(&response, version)
    }))
}

fn create_one(
    broker: &Broker,
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> CreatableTopicResult {
    let name = topic.name.as_str().to_string();
    let result = CreatableTopicResult::default()
        .with_name(topic.name.clone())
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let fail = |e: &MetadataError| {
        result
            .clone()
            .with_error_code(errors::metadata_error(e).code())
            .with_error_message(Some(StrBytes::from_string(e.to_string())))
    };
    let partitions = match (topic.num_partitions, topic.assignments.len()) {
        (-1, 0) => broker.config.num_partitions,
        (-1, n) => n as i32,
        (n, _) => n,
    };
    let replication = topic.replication_factor;
    // Kafka's request checks, before any topic rule: explicit assignments exclude a count or a
    // replication factor, and a config needs a value.
    if !topic.assignments.is_empty() && (topic.num_partitions != -1 || replication != -1) {
        return result
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Both numPartitions or replicationFactor and replicasAssignments were set. \
                 Both cannot be used at the same time.",
            )));
    }
    if let Some(c) = topic.configs.iter().find(|c| c.value.is_none()) {
        return result
            .with_error_code(ResponseError::InvalidConfig.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "Null value not supported for topic configs: {}",
                c.name.as_str()
            ))));
    }
    let configs: BTreeMap<String, String> = topic
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    let checks = broker
        .metadata
        .validate_new_topic(&name, partitions)
        .and(match replication {
            -1 | 1 => Ok(()),
            other => Err(MetadataError::InvalidReplicationFactor(other)),
        })
        .and_then(|()| log_config_for(&broker.config.log, &configs).map(|_| ()));
    if let Err(e) = checks {
        return fail(&e);
    }
    let described = |id: Uuid| {
        result
            .clone()
            .with_topic_id(id)
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            // KIP-525: every effective config, with its source, as DescribeConfigs shows it.
            .with_configs(Some(
                describe_topic_configs(&configs, &broker.config.properties)
                    .into_iter()
                    .map(|c| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(c.name))
                            .with_value(Some(StrBytes::from_string(c.value)))
                            .with_config_source(c.source as i8)
                    })
                    .collect(),
            ))
    };
    if validate_only {
        return described(Uuid::nil());
    }
    match broker.create_topic(&name, partitions, configs.clone()) {
        Ok(record) => described(record.id),
        Err(e) => fail(&e),
    }
}

pub fn delete_topics(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteTopicsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    // v0-5 name topics in `topic_names`; v6 uses `topics` with a name or an id.
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.as_str().to_string()), Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.as_str().to_string()), t.topic_id)),
    );
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let results = blocking(move || {
            wanted
                .into_iter()
                .map(|(name, id)| delete_one(&broker, name, id))
                .collect::<Vec<_>>()
        })
        .await
        .ok_or_else(|| RequestError::Encode("delete topics task failed".into()))?;
        encode(
            &DeleteTopicsResponse::default().with_responses(results),
            version,
        )
    }))
}

fn delete_one(broker: &Broker, name: Option<String>, id: Uuid) -> DeletableTopicResult {
    let image = broker.metadata.image();
    let record = match &name {
        Some(name) => image.topic(name).cloned(),
        None => image.topic_by_id(&id).cloned(),
    };
    let result = DeletableTopicResult::default()
        .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id);
    // v6 names a topic by name or by id, never both (Kafka: "You may not specify both topic
    // name and topic id"), and never neither.
    if name.is_some() != id.is_nil() {
        let message = if name.is_some() {
            "You may not specify both topic name and topic id."
        } else {
            "Neither topic name nor id were specified."
        };
        return result
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str(message)));
    }
    if !broker.config.delete_topic_enable {
        return result.with_error_code(ResponseError::TopicDeletionDisabled.code());
    }
    if record.as_ref().is_some_and(|r| is_internal_topic(&r.name)) {
        // A coordinator lives on it.
        return result.with_error_code(ResponseError::InvalidTopicException.code());
    }
    let Some(record) = record else {
        let error = if name.is_some() {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::UnknownTopicId
        };
        return result.with_error_code(error.code());
    };
    let result = result
        .with_name(Some(TopicName(StrBytes::from_string(record.name.clone()))))
        .with_topic_id(record.id);
    match broker.delete_topic(&record.name) {
        Ok(_) => result,
        Err(e) => result
            .with_error_code(errors::metadata_error(&e).code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

/// CreatePartitions: grows topics; existing partitions and their data are untouched. Manual
/// assignments may only name this broker.
pub fn create_partitions(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: CreatePartitionsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let results = blocking(move || {
            let mut seen = std::collections::HashSet::new();
            request
                .topics
                .iter()
                .map(|topic| {
                    let result =
                        CreatePartitionsTopicResult::default().with_name(topic.name.clone());
                    let outcome = if !seen.insert(topic.name.to_string()) {
                        Err((
                            ResponseError::InvalidRequest,
                            "topic named twice".to_string(),
                        ))
                    } else {
                        grow_one(&broker, topic, request.validate_only)
                    };
                    match outcome {
                        Ok(()) => result,
                        Err((error, message)) => result
                            .with_error_code(error.code())
                            .with_error_message(Some(StrBytes::from_string(message))),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok_or_else(|| RequestError::Encode("create partitions task failed".into()))?;
        encode(
            &CreatePartitionsResponse::default().with_results(results),
            version,
        )
    }))
}

fn grow_one(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let name = topic.name.as_str();
    let Some(current) = broker.metadata.image().topic(name).cloned() else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic {name}"),
        ));
    };
    if is_internal_topic(name) {
        return Err((
            ResponseError::InvalidRequest,
            "an internal topic's partition count is fixed".into(),
        ));
    }
    if topic.count <= current.partitions {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "topic has {} partitions; the new count must be larger, got {}",
                current.partitions, topic.count
            ),
        ));
    }
    if topic.count > crate::metadata::MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "at most {} partitions",
                crate::metadata::MAX_PARTITIONS_PER_TOPIC
            ),
        ));
    }
    if let Some(assignments) = topic.assignments.as_ref().filter(|a| !a.is_empty()) {
        let added = (topic.count - current.partitions) as usize;
        let node = broker.config.node_id;
        if assignments.len() != added
            || assignments
                .iter()
                .any(|a| a.broker_ids.is_empty() || a.broker_ids.iter().any(|b| b.0 != node))
        {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("assignments must list {added} new partitions on broker {node}"),
            ));
        }
    }
    if validate_only {
        return Ok(());
    }
    broker
        .grow_topic(name, topic.count)
        .map(|_| ())
        .map_err(|e| (errors::metadata_error(&e), e.to_string()))
}

/// The cluster operations Kafka grants with no authorizer, as a bit set of AclOperation codes:
/// CREATE (5), ALTER (7), DESCRIBE (8), CLUSTER_ACTION (9), DESCRIBE_CONFIGS (10),
/// ALTER_CONFIGS (11), IDEMPOTENT_WRITE (12).
const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// DescribeCluster (KIP-700): this broker is the whole cluster and its controller.
pub fn describe_cluster(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeClusterRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let advertised = broker.advertised_endpoint(&ctx.listener);
    let node = broker.config.node_id;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.metadata.cluster_id.clone()))
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node))
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(i32::from(advertised.port))])
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        });
    // v1+: endpoint type 1 is brokers; 2 (controllers) is answered by the same node.
    if ctx.version >= 1 {
        response.endpoint_type = request.endpoint_type;
        if !matches!(request.endpoint_type, 1 | 2) {
            response.error_code = ResponseError::UnsupportedEndpointType.code();
            response.brokers.clear();
        }
    }
    Reply::Now(encode(&response, ctx.version))
}
