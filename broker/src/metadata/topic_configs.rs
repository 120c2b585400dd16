//! How a topic's effective config is described: the topic's override, else the broker's setting,
//! else Kafka's default, from the catalog of topic-level configs (`config/catalog.rs`).

use std::collections::BTreeMap;

pub use crate::config::catalog::{
    broker_value, default_synonym, topic_config_def, ConfigType, TOPIC_CONFIG_DEFS,
};

/// Where a described value comes from (Kafka's `ConfigSource` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride = 1,
    StaticBroker = 4,
    Default = 5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub documentation: &'static str,
    /// The topic override, then the broker settings, then the default, as Kafka lists them.
    pub synonyms: Vec<ConfigSynonym>,
}

/// The topic's effective configs: every catalog entry with its value and source.
pub fn describe_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIG_DEFS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(value) = overrides.get(def.name) {
                synonyms.push(ConfigSynonym {
                    name: def.name.to_string(),
                    value: value.clone(),
                    source: ConfigSource::TopicOverride,
                });
            }
            let broker_setting = broker_value(def, broker);
            if let Some((name, raw, _)) = &broker_setting {
                synonyms.push(ConfigSynonym {
                    name: name.clone(),
                    value: raw.clone(),
                    source: ConfigSource::StaticBroker,
                });
            }
            let (default_name, default_value) = default_synonym(def);
            synonyms.push(ConfigSynonym {
                name: default_name,
                value: default_value,
                source: ConfigSource::Default,
            });
            // The effective value is in the topic config's unit.
            let (value, source) = match (overrides.get(def.name), &broker_setting) {
                (Some(v), _) => (v.clone(), ConfigSource::TopicOverride),
                (None, Some((_, _, scaled))) => (scaled.clone(), ConfigSource::StaticBroker),
                (None, None) => (def.default.to_string(), ConfigSource::Default),
            };
            DescribedConfig {
                name: def.name,
                value,
                source,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_and_defaults_parse() {
        for pair in TOPIC_CONFIG_DEFS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in TOPIC_CONFIG_DEFS {
            assert!(def.config_type.accepts(def.default), "{}", def.name);
        }
    }

    #[test]
    fn sources_follow_precedence() {
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "1024".to_string())]);
        let broker = BTreeMap::from([
            ("log.retention.hours".to_string(), "2".to_string()),
            ("log.segment.bytes".to_string(), "4096".to_string()),
        ]);
        let described = describe_topic_configs(&overrides, &broker);
        let find = |name: &str| described.iter().find(|c| c.name == name).cloned();
        let segment = find("segment.bytes").expect("listed");
        assert_eq!(
            (segment.value.as_str(), segment.source),
            ("1024", ConfigSource::TopicOverride)
        );
        assert_eq!(segment.synonyms.len(), 3);
        let retention = find("retention.ms").expect("listed");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("7200000", ConfigSource::StaticBroker)
        );
        assert_eq!(retention.synonyms[0].name, "log.retention.hours");
        assert_eq!(
            retention.synonyms[0].value, "2",
            "a synonym keeps the property's own unit"
        );
        assert_eq!(retention.synonyms[1].value, "168");
        let policy = find("cleanup.policy").expect("listed");
        assert_eq!(
            (policy.value.as_str(), policy.source),
            ("delete", ConfigSource::Default)
        );
    }
}
