//! The one catalog of log settings: every topic-level config Kafka defines, with its type, its
//! default, the broker properties that set it for every topic (its synonyms, in Kafka's order of
//! precedence, with the factor from their unit), and, for the ones Strom acts on, how a value is
//! checked and applied to a `LogConfig`.
//!
//! Each default is written here once. From this table come Kafka's defaults
//! (`LogConfig::default`), the broker's log settings (`LogConfig::from_broker`, each from the
//! first synonym set), the broker properties' own defaults (the coarsest synonym carries the
//! default, as `log.retention.hours=168` does), a topic's overrides (`apply`), and what
//! DescribeConfigs reports (`metadata/topic_configs.rs`).

use std::collections::BTreeMap;

use super::LogConfig;

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

/// The broker setting of a topic config: the first synonym the broker sets, as
/// (property name, value as set, value in the topic config's unit).
pub fn broker_value(
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
pub fn default_synonym(def: &TopicConfigDef) -> (String, String) {
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

/// The broker-level default of a broker property that sets a topic config: only the last
/// synonym (the coarsest unit) carries one, as in Kafka (`log.retention.hours` has 168,
/// `log.retention.ms` none).
pub fn broker_default(property: &str) -> Option<String> {
    TOPIC_CONFIG_DEFS.iter().find_map(|def| {
        let last = def.synonyms.last()?;
        (last.name == property).then(|| default_synonym(def).1)
    })
}

/// Whether `property` is a broker property that sets a topic config.
pub fn is_synonym(property: &str) -> bool {
    TOPIC_CONFIG_DEFS
        .iter()
        .any(|def| def.synonyms.iter().any(|s| s.name == property))
}

/// What an integer value of `config_type` must look like, in words.
fn integer_form(config_type: ConfigType) -> &'static str {
    match config_type {
        ConfigType::Int => "must be an integer from -2147483648 to 2147483647",
        _ => "must be an integer",
    }
}

fn integer(def: &TopicConfigDef, value: &str) -> Result<i64, String> {
    let v = value.trim();
    let parsed = match def.config_type {
        ConfigType::Int => v.parse::<i32>().map(i64::from).ok(),
        _ => v.parse::<i64>().ok(),
    };
    parsed.ok_or_else(|| integer_form(def.config_type).to_string())
}

fn at_least(value: i64, minimum: i64) -> Result<i64, String> {
    if value < minimum {
        return Err(format!("must be at least {minimum}"));
    }
    Ok(value)
}

/// Kafka's bounds on numeric topic configs that Strom stores but does not act on
/// (`LogConfig`'s validators in Kafka).
fn kafka_range(key: &str) -> Option<fn(i64) -> bool> {
    Some(match key {
        "min.insync.replicas" | "max.compaction.lag.ms" => |v| v >= 1,
        "segment.jitter.ms" | "file.delete.delay.ms" => |v| v >= 0,
        "segment.index.bytes" => |v| (4..=i64::from(i32::MAX)).contains(&v),
        "local.retention.ms" | "local.retention.bytes" => |v| v >= -2,
        "compression.gzip.level" => |v| v == -1 || (1..=9).contains(&v),
        "compression.lz4.level" => |v| (1..=17).contains(&v),
        "compression.zstd.level" => |v| (-131_072..=22).contains(&v),
        _ => return None,
    })
}

/// Checks `value` for topic config `def` and, for the configs Strom acts on, sets the matching
/// `LogConfig` field; `Err` says why the value is refused, in words.
pub fn apply(config: &mut LogConfig, def: &TopicConfigDef, value: &str) -> Result<(), String> {
    let int = || integer(def, value);
    match def.name {
        "segment.bytes" => config.segment_bytes = at_least(int()?, 14)?.unsigned_abs(),
        "segment.ms" => config.segment_ms = at_least(int()?, 1)?,
        "retention.ms" => config.retention_ms = at_least(int()?, -1)?,
        "retention.bytes" => config.retention_bytes = int()?,
        "index.interval.bytes" => config.index_interval_bytes = at_least(int()?, 0)?.unsigned_abs(),
        "flush.messages" => config.flush_messages = at_least(int()?, 1)?,
        "flush.ms" => config.flush_ms = at_least(int()?, 0)?,
        "max.message.bytes" => {
            config.max_message_bytes =
                i32::try_from(at_least(int()?, 0)?).map_err(|_| integer_form(def.config_type))?
        }
        "delete.retention.ms" => config.delete_retention_ms = at_least(int()?, 0)?,
        "min.compaction.lag.ms" => config.min_compaction_lag_ms = at_least(int()?, 0)?,
        "message.timestamp.before.max.ms" => config.timestamp_before_max_ms = at_least(int()?, 0)?,
        "message.timestamp.after.max.ms" => config.timestamp_after_max_ms = at_least(int()?, 0)?,
        "message.timestamp.difference.max.ms" => {
            config.timestamp_difference_max_ms = at_least(int()?, 0)?
        }
        "min.cleanable.dirty.ratio" => {
            config.min_cleanable_dirty_ratio = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or("must be a number between 0 and 1")?
        }
        "cleanup.policy" => {
            // An empty list is valid in Kafka: neither retention nor compaction.
            let policies: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if !policies.iter().all(|p| matches!(*p, "delete" | "compact")) {
                return Err("must be a list of 'delete' and 'compact'".into());
            }
            config.compact = policies.contains(&"compact");
            config.delete = policies.contains(&"delete");
        }
        "compression.type" => {
            config.compression = match value.trim() {
                "producer" => None,
                c @ ("uncompressed" | "gzip" | "snappy" | "lz4" | "zstd") => Some(c.to_string()),
                _ => return Err("unknown compression type".into()),
            }
        }
        "message.timestamp.type" => {
            config.log_append_time = match value.trim() {
                "CreateTime" => false,
                "LogAppendTime" => true,
                _ => return Err("must be CreateTime or LogAppendTime".into()),
            }
        }
        key => {
            if !def.config_type.accepts(value) {
                return Err(match def.config_type {
                    ConfigType::Boolean => "must be true or false".into(),
                    ConfigType::Double => "must be a number".into(),
                    other => integer_form(other).into(),
                });
            }
            if let Some(allowed) = kafka_range(key) {
                if !allowed(int()?) {
                    return Err("out of the range Kafka allows".into());
                }
            }
        }
    }
    Ok(())
}

impl LogConfig {
    /// The settings before any default is applied; `kafka_defaults` fills every field.
    fn unset() -> LogConfig {
        LogConfig {
            segment_bytes: 0,
            segment_ms: 0,
            retention_ms: 0,
            retention_bytes: 0,
            index_interval_bytes: 0,
            flush_messages: 0,
            flush_ms: 0,
            max_message_bytes: 0,
            fsync_acks_all: true,
            compact: false,
            delete: false,
            delete_retention_ms: 0,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.0,
            log_append_time: false,
            compression: None,
            timestamp_before_max_ms: 0,
            timestamp_after_max_ms: 0,
            timestamp_difference_max_ms: 0,
        }
    }

    /// Kafka's defaults, from the catalog. (A test checks that every default applies.)
    pub(crate) fn kafka_defaults() -> LogConfig {
        let mut config = LogConfig::unset();
        for def in TOPIC_CONFIG_DEFS {
            let _ = apply(&mut config, def, def.default);
        }
        config
    }

    /// The broker's log settings: each topic config from the first of its broker properties
    /// that is set, else Kafka's default. `Err((property, value as set, reason))`.
    pub(crate) fn from_broker(
        properties: &BTreeMap<String, String>,
    ) -> Result<LogConfig, (String, String, String)> {
        let mut config = LogConfig::kafka_defaults();
        for def in TOPIC_CONFIG_DEFS {
            if let Some((name, raw, scaled)) = broker_value(def, properties) {
                apply(&mut config, def, &scaled).map_err(|reason| (name, raw, reason))?;
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_and_every_default_applies() {
        for pair in TOPIC_CONFIG_DEFS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        let mut config = LogConfig::unset();
        for def in TOPIC_CONFIG_DEFS {
            assert!(def.config_type.accepts(def.default), "{}", def.name);
            assert_eq!(apply(&mut config, def, def.default), Ok(()), "{}", def.name);
        }
    }

    /// The defaults are Kafka's, written out once more here only to check the table.
    #[test]
    fn defaults_are_kafkas() {
        let d = LogConfig::default();
        assert_eq!(d.segment_bytes, 1 << 30);
        assert_eq!(d.segment_ms, 7 * 24 * 3_600_000);
        assert_eq!(d.retention_ms, 7 * 24 * 3_600_000);
        assert_eq!(d.retention_bytes, -1);
        assert_eq!(d.index_interval_bytes, 4096);
        assert_eq!((d.flush_messages, d.flush_ms), (i64::MAX, i64::MAX));
        assert_eq!(d.max_message_bytes, 1_048_588);
        assert!(d.fsync_acks_all && d.delete && !d.compact && !d.log_append_time);
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert_eq!(d.min_compaction_lag_ms, 0);
        assert_eq!(d.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(d.compression, None);
        assert_eq!(d.timestamp_bounds_ms(), (i64::MAX, i64::MAX));
        assert_eq!(
            broker_default("log.retention.hours").as_deref(),
            Some("168")
        );
        assert_eq!(broker_default("log.retention.ms"), None);
        assert_eq!(
            broker_default("log.segment.bytes").as_deref(),
            Some("1073741824")
        );
        assert_eq!(
            broker_default("message.max.bytes").as_deref(),
            Some("1048588")
        );
    }

    #[test]
    fn broker_properties_follow_precedence_and_units() {
        let props = BTreeMap::from([
            ("log.retention.minutes".to_string(), "2".to_string()),
            ("log.roll.hours".to_string(), "1".to_string()),
            (
                "log.cleanup.policy".to_string(),
                "compact,delete".to_string(),
            ),
        ]);
        let config = LogConfig::from_broker(&props).expect("valid");
        assert_eq!(config.retention_ms, 120_000);
        assert_eq!(config.segment_ms, 3_600_000);
        assert!(config.compact && config.delete);
        let bad = BTreeMap::from([("log.segment.bytes".to_string(), "13".to_string())]);
        assert_eq!(
            LogConfig::from_broker(&bad).err(),
            Some((
                "log.segment.bytes".to_string(),
                "13".to_string(),
                "must be at least 14".to_string()
            ))
        );
    }
}
