//! The catalog of topic-level configs, as Kafka defines them (names, types, defaults, and the
//! broker properties that set their defaults), and how a topic's effective config is described:
//! the topic's override, else the broker's setting, else Kafka's default.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// Whether `value` parses as this type.
    pub fn accepts(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok_and(f64::is_finite),
            ConfigType::String | ConfigType::List => true,
        }
    }
}

/// A broker property that sets a topic config's default, and the factor from its unit to the
/// topic config's (`log.retention.hours` -> `retention.ms` is 3,600,000).
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    /// In Kafka's order of precedence.
    pub synonyms: &'static [Synonym],
    pub documentation: &'static str,
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

const MAX_LONG: &str = "9223372036854775807";

macro_rules! def {
    ($name:literal, $ty:ident, $default:expr, [$($syn:expr),*], $doc:literal) => {
        TopicConfigDef {
            name: $name,
            config_type: ConfigType::$ty,
            default: $default,
            synonyms: &[$($syn),*],
            documentation: $doc,
        }
    };
}

/// Every topic config Kafka 3.8+ reports for a topic, in name order.
pub const TOPIC_CONFIG_DEFS: &[TopicConfigDef] = &[
    def!("cleanup.policy", List, "delete", [syn("log.cleanup.policy")],
        "delete (retention removes old segments), compact (keep the latest record per key), or both."),
    def!("compression.gzip.level", Int, "-1", [syn("compression.gzip.level")],
        "Level used when the topic recompresses with gzip."),
    def!("compression.lz4.level", Int, "9", [syn("compression.lz4.level")],
        "Level used when the topic recompresses with lz4."),
    def!("compression.type", String, "producer", [syn("compression.type")],
        "producer keeps batches as sent; a codec name recompresses them on append."),
    def!("compression.zstd.level", Int, "3", [syn("compression.zstd.level")],
        "Level used when the topic recompresses with zstd."),
    def!("delete.retention.ms", Long, "86400000", [syn("log.cleaner.delete.retention.ms")],
        "How long a tombstone stays readable in a compacted topic."),
    def!("file.delete.delay.ms", Long, "60000", [syn("log.segment.delete.delay.ms")],
        "Delay before a deleted segment's files are removed."),
    def!("flush.messages", Long, MAX_LONG, [syn("log.flush.interval.messages")],
        "Force an fsync after this many messages."),
    def!("flush.ms", Long, MAX_LONG, [syn("log.flush.interval.ms")],
        "Force an fsync after this much time."),
    def!("follower.replication.throttled.replicas", List, "", [],
        "Replicas throttled on the follower side."),
    def!("index.interval.bytes", Int, "4096", [syn("log.index.interval.bytes")],
        "Bytes of log between two offset index entries."),
    def!("leader.replication.throttled.replicas", List, "", [],
        "Replicas throttled on the leader side."),
    def!("local.retention.bytes", Long, "-2", [syn("log.local.retention.bytes")],
        "Local retention by size when tiered storage is on (-2: use retention.bytes)."),
    def!("local.retention.ms", Long, "-2", [syn("log.local.retention.ms")],
        "Local retention by time when tiered storage is on (-2: use retention.ms)."),
    def!("max.compaction.lag.ms", Long, MAX_LONG, [syn("log.cleaner.max.compaction.lag.ms")],
        "Longest time a record may stay uncompacted."),
    def!("max.message.bytes", Int, "1048588", [syn("message.max.bytes")],
        "Largest record batch the topic accepts."),
    def!("message.downconversion.enable", Boolean, "true", [syn("log.message.downconversion.enable")],
        "Whether old fetch versions may get down-converted batches."),
    def!("message.format.version", String, "3.0-IV1", [syn("log.message.format.version")],
        "Message format version (only v2 batches are stored)."),
    def!("message.timestamp.after.max.ms", Long, MAX_LONG, [syn("log.message.timestamp.after.max.ms")],
        "How far in the future a CreateTime timestamp may be."),
    def!("message.timestamp.before.max.ms", Long, MAX_LONG, [syn("log.message.timestamp.before.max.ms")],
        "How far in the past a CreateTime timestamp may be."),
    def!("message.timestamp.difference.max.ms", Long, MAX_LONG, [syn("log.message.timestamp.difference.max.ms")],
        "Largest difference between a CreateTime timestamp and the broker's clock."),
    def!("message.timestamp.type", String, "CreateTime", [syn("log.message.timestamp.type")],
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append."),
    def!("min.cleanable.dirty.ratio", Double, "0.5", [syn("log.cleaner.min.cleanable.ratio")],
        "Share of uncompacted log that makes a partition eligible for cleaning."),
    def!("min.compaction.lag.ms", Long, "0", [syn("log.cleaner.min.compaction.lag.ms")],
        "Shortest time a record stays uncompacted."),
    def!("min.insync.replicas", Int, "1", [syn("min.insync.replicas")],
        "In-sync replicas an acks=all write needs."),
    def!("preallocate", Boolean, "false", [syn("log.preallocate")],
        "Preallocate segment files."),
    def!("remote.log.copy.disable", Boolean, "false", [],
        "Stop copying segments to tiered storage."),
    def!("remote.log.delete.on.disable", Boolean, "false", [],
        "Delete tiered segments when tiered storage is turned off."),
    def!("remote.storage.enable", Boolean, "false", [],
        "Tiered storage for the topic."),
    def!("retention.bytes", Long, "-1", [syn("log.retention.bytes")],
        "Largest size a partition keeps before old segments are deleted (-1: no limit)."),
    def!("retention.ms", Long, "604800000",
        [syn("log.retention.ms"), Synonym { name: "log.retention.minutes", factor: 60_000 },
         Synonym { name: "log.retention.hours", factor: 3_600_000 }],
        "How long a segment is kept after its newest record (-1: forever)."),
    def!("segment.bytes", Int, "1073741824", [syn("log.segment.bytes")],
        "Size at which the active segment rolls."),
    def!("segment.index.bytes", Int, "10485760", [syn("log.index.size.max.bytes")],
        "Largest offset index of a segment."),
    def!("segment.jitter.ms", Long, "0",
        [syn("log.roll.jitter.ms"), Synonym { name: "log.roll.jitter.hours", factor: 3_600_000 }],
        "Random jitter subtracted from segment.ms."),
    def!("segment.ms", Long, "604800000",
        [syn("log.roll.ms"), Synonym { name: "log.roll.hours", factor: 3_600_000 }],
        "Age at which the active segment rolls."),
    def!("unclean.leader.election.enable", Boolean, "false", [syn("unclean.leader.election.enable")],
        "Whether an out-of-sync replica may become leader."),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIG_DEFS.iter().find(|d| d.name == name)
}

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

/// The broker setting of a topic config: the first synonym the broker sets, as
/// (property name, value as set, value in the topic config's unit).
fn broker_value(
    def: &TopicConfigDef,
    broker: &BTreeMap<String, String>,
) -> Option<(String, String, String)> {
    def.synonyms.iter().find_map(|s| {
        let raw = broker.get(s.name)?;
        let scaled = if s.factor == 1 {
            raw.clone()
        } else {
            raw.trim()
                .parse::<i64>()
                .map(|v| v.saturating_mul(s.factor).to_string())
                .unwrap_or_else(|_| raw.clone())
        };
        Some((s.name.to_string(), raw.clone(), scaled))
    })
}

/// The synonym Kafka names for the default: the coarsest unit (`log.retention.hours=168` for
/// `retention.ms`), with the default in that unit.
fn default_synonym(def: &TopicConfigDef) -> (String, String) {
    match def.synonyms.last() {
        None => (def.name.to_string(), def.default.to_string()),
        Some(s) if s.factor == 1 => (s.name.to_string(), def.default.to_string()),
        Some(s) => (
            s.name.to_string(),
            def.default
                .parse::<i64>()
                .map(|v| (v / s.factor).to_string())
                .unwrap_or_else(|_| def.default.to_string()),
        ),
    }
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
