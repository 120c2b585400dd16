//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and the broker.
//!
//! Topic configs are described from the catalog in `metadata/topic_configs.rs` (every config
//! Kafka reports, with its source: topic override, broker setting, or default). Changes are
//! validated as a whole, persisted, and applied to the topic's partitions at once. Broker
//! configs are static here (set in the properties file, environment or `--override`); changing
//! them is refused per resource.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;
use crate::metadata::topic_configs::{
    describe_topic_configs, topic_config_def, ConfigSource, ConfigType,
};
use crate::metadata::MetadataError;

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// Kafka's `ConfigType` codes in DescribeConfigs v3+.
fn type_code(t: ConfigType) -> i8 {
    match t {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

pub fn describe_configs(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let decoded = if ctx.version == 0 {
        super::legacy::decode_as(ctx, body, 1, &[0])
    } else {
        decode(ctx, body)
    };
    let request: DescribeConfigsRequest = match decoded {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let image = broker.metadata.image();
    let synonyms_wanted = request.include_synonyms;
    let docs_wanted = version >= 3 && request.include_documentation;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|k| k == name));
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = image.topic(&resource.resource_name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(s("unknown topic")));
                    };
                    let configs = describe_topic_configs(&topic.configs, &broker.config.properties)
                        .into_iter()
                        .filter(|c| wanted(c.name))
                        .map(|c| {
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(s(c.name))
                                .with_value(Some(s(c.value)))
                                .with_read_only(false)
                                .with_config_source(c.source as i8)
                                .with_is_sensitive(false)
                                .with_config_type(type_code(c.config_type));
                            if synonyms_wanted {
                                entry.synonyms = c
                                    .synonyms
                                    .into_iter()
                                    .map(|syn| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(s(syn.name))
                                            .with_value(Some(s(syn.value)))
                                            .with_source(syn.source as i8)
                                    })
                                    .collect();
                            }
                            // Kafka sends null unless documentation is asked for.
                            entry.documentation = docs_wanted.then(|| s(c.documentation));
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(s(format!("unknown broker {name}"))));
                    }
                    let configs = broker
                        .config
                        .described_properties()
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, set)| {
                            let source = if set {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            };
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(s(k.clone()))
                                .with_value(Some(s(v.clone())))
                                .with_read_only(true)
                                .with_config_source(source as i8)
                                .with_config_type(type_code(ConfigType::String))
                                .with_documentation(None);
                            if synonyms_wanted {
                                entry.synonyms = vec![DescribeConfigsSynonym::default()
                                    .with_name(s(k))
                                    .with_value(Some(s(v)))
                                    .with_source(source as i8)];
                            }
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(format!("unsupported resource type {other}")))),
            }
        })
        .collect();
    let response = DescribeConfigsResponse::default().with_results(results);
    if version == 0 {
        return Reply::Now(Ok(super::legacy::describe_configs_v0(&response)));
    }
    Reply::Now(encode(&response, version))
}

/// The outcome of one resource of an alter request.
type Outcome = Result<(), (ResponseError, String)>;

fn refuse_broker(resource_type: i8) -> Option<Outcome> {
    match resource_type {
        RESOURCE_TOPIC => None,
        RESOURCE_BROKER => Some(Err((
            ResponseError::InvalidRequest,
            "broker configs are static in Strom: set them in the properties file".into(),
        ))),
        other => Some(Err((
            ResponseError::InvalidRequest,
            format!("unsupported resource type {other}"),
        ))),
    }
}

fn metadata_outcome(e: &MetadataError) -> (ResponseError, String) {
    (errors::metadata_error(e), e.to_string())
}

/// Validates `configs` for `topic` and, unless `validate_only`, stores and applies them.
fn replace_topic_configs(
    broker: &Broker,
    topic: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Outcome {
    if broker.metadata.image().topic(topic).is_none() {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            "unknown topic".into(),
        ));
    }
    crate::broker::log_config_for(&broker.config.log, &configs)
        .map_err(|e| metadata_outcome(&e))?;
    if validate_only {
        return Ok(());
    }
    broker
        .set_topic_configs(topic, configs)
        .map(|_| ())
        .map_err(|e| metadata_outcome(&e))
}

pub fn alter_configs(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AlterConfigsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let outcome = match refuse_broker(resource.resource_type) {
                Some(refused) => refused,
                None => {
                    // AlterConfigs replaces the whole set of overrides.
                    let configs: BTreeMap<String, String> = resource
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value
                                .as_ref()
                                .map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    let b = broker.clone();
                    let topic = resource.resource_name.to_string();
                    let validate_only = request.validate_only;
                    blocking(move || replace_topic_configs(&b, &topic, configs, validate_only))
                        .await
                        .unwrap_or(Err((ResponseError::UnknownServerError, String::new())))
                }
            };
            responses.push(alter_response(
                resource.resource_type,
                resource.resource_name,
                outcome,
            ));
        }
        encode(
            &AlterConfigsResponse::default().with_responses(responses),
            version,
        )
    }))
}

fn alter_response(
    resource_type: i8,
    resource_name: StrBytes,
    outcome: Outcome,
) -> alter_configs_response::AlterConfigsResourceResponse {
    let response = alter_configs_response::AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name);
    match outcome {
        Ok(()) => response,
        Err((error, message)) => response
            .with_error_code(error.code())
            .with_error_message(Some(s(message))),
    }
}

/// Kafka's checks of an IncrementalAlterConfigs resource before any config is looked at
/// (`ConfigAdminManager.preprocess`): a key named twice, or a value missing from an operation
/// that needs one, makes the request invalid and changes nothing.
fn check_operations(
    operations: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<(), (ResponseError, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for op in operations {
        if !seen.insert(op.name.as_str()) {
            return Err((
                ResponseError::InvalidRequest,
                "Error due to duplicate config keys".into(),
            ));
        }
        if op.config_operation != OP_DELETE && op.value.is_none() {
            return Err((
                ResponseError::InvalidRequest,
                format!("Null value not supported for : {}", op.name.as_str()),
            ));
        }
    }
    Ok(())
}

/// Applies KIP-339 operations to the current overrides.
fn apply_operations(
    current: &BTreeMap<String, String>,
    operations: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, (ResponseError, String)> {
    let mut configs = current.clone();
    let invalid = |message: String| (ResponseError::InvalidConfig, message);
    for op in operations {
        let name = op.name.to_string();
        let Some(def) = topic_config_def(&name) else {
            return Err(invalid(format!("unknown topic config {name}")));
        };
        let value = op.value.as_ref().map(|v| v.to_string());
        match op.config_operation {
            OP_SET => {
                let value = value.ok_or_else(|| invalid(format!("{name}: SET needs a value")))?;
                configs.insert(name, value);
            }
            OP_DELETE => {
                configs.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.config_type != ConfigType::List {
                    return Err(invalid(format!(
                        "{name} is not a list: APPEND and SUBTRACT apply to lists only"
                    )));
                }
                let effective = configs
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| def.default.to_string());
                let mut items: Vec<String> = effective
                    .split(',')
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty())
                    .collect();
                let given: Vec<String> = value
                    .unwrap_or_default()
                    .split(',')
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty())
                    .collect();
                if op.config_operation == OP_APPEND {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                configs.insert(name, items.join(","));
            }
            other => return Err(invalid(format!("unknown operation {other} on {name}"))),
        }
    }
    Ok(configs)
}

pub fn incremental_alter_configs(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: IncrementalAlterConfigsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let topic = resource.resource_name.to_string();
            let broker_validated = resource.resource_type == RESOURCE_BROKER
                && request.validate_only
                && (topic.is_empty() || topic == broker.config.node_id.to_string());
            let outcome = match check_operations(&resource.configs) {
                Err(e) => Err(e),
                // Kafka validates broker configs without knowing every key (dynamic broker
                // configs may name any); Strom's broker configs are static, so only a
                // validate-only request can succeed.
                Ok(()) if broker_validated => Ok(()),
                Ok(()) => match refuse_broker(resource.resource_type) {
                    Some(refused) => refused,
                    None => match broker.metadata.image().topic(&topic) {
                        None => Err((
                            ResponseError::UnknownTopicOrPartition,
                            "unknown topic".into(),
                        )),
                        Some(record) => {
                            match apply_operations(&record.configs, &resource.configs) {
                                Err(e) => Err(e),
                                Ok(configs) => {
                                    let b = broker.clone();
                                    let validate_only = request.validate_only;
                                    blocking(move || {
                                        replace_topic_configs(&b, &topic, configs, validate_only)
                                    })
                                    .await
                                    .unwrap_or(Err((
                                        ResponseError::UnknownServerError,
                                        String::new(),
                                    )))
                                }
                            }
                        }
                    },
                },
            };
            let response = alter_response(resource.resource_type, resource.resource_name, outcome);
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(response.error_code)
                    .with_error_message(response.error_message)
                    .with_resource_type(response.resource_type)
                    .with_resource_name(response.resource_name),
            );
        }
        encode(
            &IncrementalAlterConfigsResponse::default().with_responses(responses),
            version,
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use incremental_alter_configs_request::AlterableConfig;

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(operation)
            .with_value(value.map(s))
    }

    #[test]
    fn incremental_operations() {
        let current = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let next = apply_operations(
            &current,
            &[
                op("retention.ms", OP_DELETE, None),
                op("segment.bytes", OP_SET, Some("2048")),
                op("cleanup.policy", OP_APPEND, Some("compact")),
            ],
        );
        let next = next.unwrap_or_default();
        let again = apply_operations(&next, &[op("cleanup.policy", OP_APPEND, Some("compact"))]);
        assert_eq!(
            again.ok().as_ref(),
            Some(&next),
            "APPEND keeps a list a set"
        );
        assert!(check_operations(&[
            op("retention.ms", OP_SET, Some("1")),
            op("retention.ms", OP_DELETE, None)
        ])
        .is_err());
        assert!(check_operations(&[op("retention.ms", OP_SET, None)]).is_err());
        assert!(check_operations(&[op("retention.ms", OP_DELETE, None)]).is_ok());
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next.get("segment.bytes").map(String::as_str), Some("2048"));
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let fewer = apply_operations(&next, &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))]);
        assert_eq!(
            fewer
                .unwrap_or_default()
                .get("cleanup.policy")
                .map(String::as_str),
            Some("compact")
        );
        for bad in [
            op("retention.ms", OP_APPEND, Some("5")),
            op("no.such.config", OP_SET, Some("1")),
            op("retention.ms", OP_SET, None),
            op("retention.ms", 9, Some("1")),
        ] {
            assert!(matches!(
                apply_operations(&current, &[bad]),
                Err((ResponseError::InvalidConfig, _))
            ));
        }
    }
}
