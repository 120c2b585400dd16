//! Topic administration: CreateTopics (with `validate_only`) and DeleteTopics (by name, and
//! by id from v6).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{blocking, decode, encode, errors, Reply, RequestContext, RequestError};
use crate::broker::{log_config_for, Broker};
use crate::group::OFFSETS_TOPIC;
use crate::metadata::MetadataError;

/// Kafka's `ConfigSource.DYNAMIC_TOPIC_CONFIG` and `DEFAULT_CONFIG`.
const SOURCE_TOPIC: i8 = 1;

pub fn create_topics(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: CreateTopicsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let results = blocking(move || {
            request
                .topics
                .iter()
                .map(|topic| create_one(&broker, topic, request.validate_only))
                .collect::<Vec<_>>()
        })
        .await
        .ok_or_else(|| RequestError::Encode("create topics task failed".into()))?;
        encode(
            &CreateTopicsResponse::default().with_topics(results),
            version,
        )
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
            .with_configs(Some(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                            .with_config_source(SOURCE_TOPIC)
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
    Reply::Later(Box::pin(async move {
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
    if !broker.config.delete_topic_enable {
        return result.with_error_code(ResponseError::TopicDeletionDisabled.code());
    }
    if record.as_ref().is_some_and(|r| r.name == OFFSETS_TOPIC) {
        // The group coordinator lives on it.
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
