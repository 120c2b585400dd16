//! The broker's one typed configuration, spelled with Apache Kafka's property names.
//!
//! Sources, later ones win: built-in defaults (Kafka's own), a `server.properties`-style file,
//! `KAFKA_`-prefixed environment variables (mapped the way Kafka's docker image maps them:
//! `KAFKA_LOG_DIRS` -> `log.dirs`, `__` -> `_`, `___` -> `-`), then `--override key=value`.
//! Unknown properties are kept and reported with a warning, never a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line} of {path}: expected key=value")]
    Syntax { path: PathBuf, line: usize },
    #[error("--override {0}: expected key=value")]
    Override(String),
    #[error("property {key}={value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// A listener such as `PLAINTEXT://:9092`. An empty host means every interface of both
/// address families.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(key: &str, text: &str) -> Result<Listener, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let (name, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| invalid("port is not a number"))?;
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// Kafka's defaults for the properties Strom reads.
const DEFAULTS: &[(&str, &str)] = &[
    ("listeners", "PLAINTEXT://:9092"),
    ("log.dirs", "strom-data"),
    ("node.id", "1"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("message.max.bytes", "1048588"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.hours", "168"),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.index.interval.bytes", "4096"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.flush.interval.ms", "9223372036854775807"),
    // Kafka's default is Long.MAX_VALUE, which leaves log.flush.interval.ms without effect
    // unless this is set too; Strom checks every second so that flush.ms works on its own.
    ("log.flush.scheduler.interval.ms", "1000"),
    ("log.flush.offset.checkpoint.interval.ms", "60000"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("connections.max.idle.ms", "600000"),
    ("queued.max.requests", "500"),
    ("strom.acks.all.fsync", "true"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offset.metadata.max.bytes", "4096"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("log.cleanup.policy", "delete"),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
    ),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    // KIP-937 (Kafka 3.6); the older difference.max.ms stands in for either one left at its
    // default (`LogConfig.getMessageTimestampBeforeMaxMs`).
    ("log.message.timestamp.before.max.ms", "9223372036854775807"),
    ("log.message.timestamp.after.max.ms", "9223372036854775807"),
    (
        "log.message.timestamp.difference.max.ms",
        "9223372036854775807",
    ),
];

/// Properties Strom knows by name but does not act on yet; accepted silently.
const ACCEPTED: &[&str] = &[
    "broker.id",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "log.dir",
    "log.roll.ms",
    "log.retention.minutes",
    "log.retention.ms",
    "cluster.id",
    "zookeeper.connect",
    "min.insync.replicas",
];

/// Environment variables of Kafka's docker image that are not broker properties.
const ENV_NOT_PROPERTIES: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// The raw property map, before it is typed.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    values: BTreeMap<String, String>,
}

impl Properties {
    pub fn set(&mut self, key: &str, value: &str) {
        self.values
            .insert(key.trim().to_string(), value.trim().to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Reads a `server.properties`-style file: `key=value` (or `key: value`) lines, `#` and `!`
    /// comments, blank lines ignored.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            path: path.to_path_buf(),
            source,
        })?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line: number + 1,
                })?;
            self.set(key, value);
        }
        Ok(())
    }

    /// Applies `KAFKA_`-prefixed variables the way Kafka's docker image does.
    pub fn load_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) {
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("KAFKA_") else {
                continue;
            };
            if rest.is_empty() || ENV_NOT_PROPERTIES.contains(&name.as_str()) {
                continue;
            }
            let key = rest
                .to_ascii_lowercase()
                .replace("___", "\u{1}")
                .replace("__", "\u{2}")
                .replace('_', ".")
                .replace('\u{1}', "-")
                .replace('\u{2}', "_");
            self.set(&key, &value);
        }
    }

    pub fn apply_override(&mut self, text: &str) -> Result<(), ConfigError> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| ConfigError::Override(text.to_string()))?;
        self.set(key, value);
        Ok(())
    }
}

/// The typed broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    /// The first entry of `log.dirs`: partitions and metadata live here.
    pub log_dir: PathBuf,
    /// Every entry of `log.dirs`; each is locked at start.
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub log: LogConfig,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// How often partitions are checked against `flush.ms`.
    pub log_flush_scheduler_interval_ms: u64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_io_max_bytes_per_second: f64,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A connection with no request in flight that sends nothing for this long is closed;
    /// a frame that has begun must make progress within min(this, 30 s).
    pub connections_max_idle_ms: u64,
    /// Broker-wide bound on requests whose effects are being applied at once (`Reply::Apply`);
    /// further connections stop reading until one finishes.
    pub queued_max_requests: usize,
    pub group: GroupConfig,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i32,
    /// Every property set explicitly (file, environment, overrides), as given.
    pub properties: BTreeMap<String, String>,
    /// Properties Strom does not know, reported once at start.
    pub unknown: Vec<String>,
}

/// Group coordinator settings (`group.*`, `offsets.*`, `offset.metadata.max.bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// Per-log settings; topic-level overrides use the topic property names (`segment.bytes`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub flush_messages: i64,
    /// `flush.ms` (`log.flush.interval.ms`): data unflushed for this long is fsynced.
    pub flush_ms: i64,
    pub max_message_bytes: i32,
    /// acks=-1 writes are acknowledged only after fsync.
    pub fsync_acks_all: bool,
    /// `cleanup.policy` includes `compact`.
    pub compact: bool,
    /// `cleanup.policy` includes `delete` (retention applies).
    pub delete: bool,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    /// `message.timestamp.type=LogAppendTime`: batches are stamped with the append time.
    pub log_append_time: bool,
    /// `compression.type` other than `producer`: batches are recompressed to this codec
    /// (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub compression: Option<String>,
    /// `message.timestamp.before.max.ms` / `after.max.ms` / `difference.max.ms` as set; see
    /// `timestamp_bounds_ms`.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub timestamp_difference_max_ms: i64,
}

impl LogConfig {
    /// Whether a produced batch must be decoded before it is stored: compacted topics check
    /// keys, and a topic codec or LogAppendTime rewrites the batch.
    pub fn rewrites_batches(&self) -> bool {
        self.compact || self.compression.is_some() || self.log_append_time
    }

    /// How far before and after the broker's clock a CreateTime record's timestamp may be. As
    /// in Kafka 3.6+ (KIP-937), a bound left at its default (`Long.MAX_VALUE`) falls back to
    /// the deprecated `message.timestamp.difference.max.ms`.
    pub fn timestamp_bounds_ms(&self) -> (i64, i64) {
        let or_difference = |v: i64| {
            if v == i64::MAX {
                self.timestamp_difference_max_ms
            } else {
                v
            }
        };
        (
            or_difference(self.timestamp_before_max_ms),
            or_difference(self.timestamp_after_max_ms),
        )
    }

    /// Whether produced records' timestamps must be checked against the clock.
    pub fn checks_timestamps(&self) -> bool {
        !self.log_append_time && self.timestamp_bounds_ms() != (i64::MAX, i64::MAX)
    }
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            fsync_acks_all: true,
            compact: false,
            delete: true,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            log_append_time: false,
            compression: None,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            timestamp_difference_max_ms: i64::MAX,
        }
    }
}

fn parse<T: std::str::FromStr>(props: &Properties, key: &str) -> Result<T, ConfigError> {
    let value = props
        .get(key)
        .or_else(|| DEFAULTS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
        .unwrap_or_default();
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: format!("not a valid {}", std::any::type_name::<T>()),
    })
}

fn parse_optional<T: std::str::FromStr>(
    props: &Properties,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    match props.get(key) {
        None => Ok(None),
        Some(_) => parse(props, key).map(Some),
    }
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: T,
    minimum: T,
) -> Result<T, ConfigError> {
    if value < minimum {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("must be at least {minimum}"),
        });
    }
    Ok(value)
}

impl BrokerConfig {
    pub fn from_properties(props: &Properties) -> Result<BrokerConfig, ConfigError> {
        let listeners = props
            .get("listeners")
            .unwrap_or("PLAINTEXT://:9092")
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Listener::parse("listeners", s.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if listeners.is_empty() {
            return Err(ConfigError::Invalid {
                key: "listeners".into(),
                value: String::new(),
                reason: "at least one listener is required".into(),
            });
        }
        let advertised_listeners = match props.get("advertised.listeners") {
            Some(text) => text
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| Listener::parse("advertised.listeners", s.trim()))
                .collect::<Result<Vec<_>, _>>()?,
            None => listeners
                .iter()
                .map(|l| Listener {
                    host: if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                        "localhost".to_string()
                    } else {
                        l.host.clone()
                    },
                    ..l.clone()
                })
                .collect(),
        };
        // Kafka: log.dirs beats log.dir; a comma-separated list. An empty list is an error
        // (it would otherwise mean the working directory).
        let (dirs_key, dirs_value) = match props.get("log.dirs") {
            Some(v) => ("log.dirs", v),
            None => ("log.dir", props.get("log.dir").unwrap_or("strom-data")),
        };
        let log_dirs: Vec<PathBuf> = dirs_value
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let Some(log_dir) = log_dirs.first().cloned() else {
            return Err(ConfigError::Invalid {
                key: dirs_key.into(),
                value: dirs_value.into(),
                reason: "a comma-separated list of one or more directories".into(),
            });
        };

        // Kafka: log.retention.ms beats .minutes beats .hours; -1 means unlimited.
        let retention_ms = if let Some(ms) = parse_optional::<i64>(props, "log.retention.ms")? {
            ms
        } else if let Some(min) = parse_optional::<i64>(props, "log.retention.minutes")? {
            min.saturating_mul(60_000)
        } else {
            parse::<i64>(props, "log.retention.hours")?.saturating_mul(3_600_000)
        };
        let segment_ms = match parse_optional::<i64>(props, "log.roll.ms")? {
            Some(ms) => ms,
            None => parse::<i64>(props, "log.roll.hours")?.saturating_mul(3_600_000),
        };
        let message_max_bytes = at_least(
            "message.max.bytes",
            parse::<i32>(props, "message.max.bytes")?,
            0,
        )?;
        let cleanup_policy_text: String = parse(props, "log.cleanup.policy")?;
        let cleanup_policy: Vec<&str> = cleanup_policy_text.split(',').map(str::trim).collect();
        if cleanup_policy
            .iter()
            .any(|p| !matches!(*p, "delete" | "compact"))
        {
            return Err(ConfigError::Invalid {
                key: "log.cleanup.policy".into(),
                value: cleanup_policy_text.clone(),
                reason: "must be a list of 'delete' and 'compact'".into(),
            });
        }
        let log = LogConfig {
            segment_bytes: at_least(
                "log.segment.bytes",
                parse::<u64>(props, "log.segment.bytes")?,
                14,
            )?,
            segment_ms: at_least("log.roll.ms", segment_ms, 1)?,
            retention_ms,
            retention_bytes: parse(props, "log.retention.bytes")?,
            index_interval_bytes: parse(props, "log.index.interval.bytes")?,
            flush_messages: at_least(
                "log.flush.interval.messages",
                parse::<i64>(props, "log.flush.interval.messages")?,
                1,
            )?,
            flush_ms: at_least(
                "log.flush.interval.ms",
                parse::<i64>(props, "log.flush.interval.ms")?,
                0,
            )?,
            max_message_bytes: message_max_bytes,
            fsync_acks_all: parse(props, "strom.acks.all.fsync")?,
            compact: cleanup_policy.contains(&"compact"),
            delete: cleanup_policy.contains(&"delete"),
            delete_retention_ms: at_least(
                "log.cleaner.delete.retention.ms",
                parse(props, "log.cleaner.delete.retention.ms")?,
                0,
            )?,
            min_compaction_lag_ms: at_least(
                "log.cleaner.min.compaction.lag.ms",
                parse(props, "log.cleaner.min.compaction.lag.ms")?,
                0,
            )?,
            min_cleanable_dirty_ratio: parse(props, "log.cleaner.min.cleanable.ratio")?,
            log_append_time: match props.get("log.message.timestamp.type") {
                None | Some("CreateTime") => false,
                Some("LogAppendTime") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: "log.message.timestamp.type".into(),
                        value: other.into(),
                        reason: "must be CreateTime or LogAppendTime".into(),
                    })
                }
            },
            timestamp_before_max_ms: at_least(
                "log.message.timestamp.before.max.ms",
                parse(props, "log.message.timestamp.before.max.ms")?,
                0,
            )?,
            timestamp_after_max_ms: at_least(
                "log.message.timestamp.after.max.ms",
                parse(props, "log.message.timestamp.after.max.ms")?,
                0,
            )?,
            timestamp_difference_max_ms: at_least(
                "log.message.timestamp.difference.max.ms",
                parse(props, "log.message.timestamp.difference.max.ms")?,
                0,
            )?,
            compression: match props.get("compression.type") {
                None | Some("producer") => None,
                Some(c @ ("uncompressed" | "gzip" | "snappy" | "lz4" | "zstd")) => {
                    Some(c.to_string())
                }
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: "compression.type".into(),
                        value: other.into(),
                        reason: "unknown compression type".into(),
                    })
                }
            },
        };
        let group_min_session_timeout_ms = at_least(
            "group.min.session.timeout.ms",
            parse(props, "group.min.session.timeout.ms")?,
            0,
        )?;
        let known = |key: &str| {
            DEFAULTS.iter().any(|(k, _)| *k == key)
                || ACCEPTED.contains(&key)
                || key == "advertised.listeners"
        };
        let unknown = props.values.keys().filter(|k| !known(k)).cloned().collect();
        Ok(BrokerConfig {
            node_id: match parse_optional::<i32>(props, "node.id")? {
                Some(id) => id,
                None => match parse_optional::<i32>(props, "broker.id")? {
                    Some(id) if id >= 0 => id,
                    _ => 1,
                },
            },
            listeners,
            advertised_listeners,
            log_dir,
            log_dirs,
            num_partitions: at_least("num.partitions", parse(props, "num.partitions")?, 1)?,
            auto_create_topics_enable: parse(props, "auto.create.topics.enable")?,
            delete_topic_enable: parse(props, "delete.topic.enable")?,
            message_max_bytes,
            log,
            log_retention_check_interval_ms: at_least(
                "log.retention.check.interval.ms",
                parse(props, "log.retention.check.interval.ms")?,
                1,
            )?,
            log_flush_scheduler_interval_ms: at_least(
                "log.flush.scheduler.interval.ms",
                parse(props, "log.flush.scheduler.interval.ms")?,
                1,
            )?,
            log_flush_offset_checkpoint_interval_ms: at_least(
                "log.flush.offset.checkpoint.interval.ms",
                parse(props, "log.flush.offset.checkpoint.interval.ms")?,
                1,
            )?,
            log_cleaner_enable: parse(props, "log.cleaner.enable")?,
            log_cleaner_io_max_bytes_per_second: parse(
                props,
                "log.cleaner.io.max.bytes.per.second",
            )?,
            log_cleaner_backoff_ms: at_least(
                "log.cleaner.backoff.ms",
                parse(props, "log.cleaner.backoff.ms")?,
                1,
            )?,
            socket_request_max_bytes: at_least(
                "socket.request.max.bytes",
                parse(props, "socket.request.max.bytes")?,
                64,
            )?,
            max_connections: parse(props, "max.connections")?,
            max_connections_per_ip: at_least(
                "max.connections.per.ip",
                parse(props, "max.connections.per.ip")?,
                1,
            )?,
            connections_max_idle_ms: at_least(
                "connections.max.idle.ms",
                parse(props, "connections.max.idle.ms")?,
                1,
            )?,
            queued_max_requests: at_least(
                "queued.max.requests",
                parse(props, "queued.max.requests")?,
                1,
            )?,
            group: GroupConfig {
                initial_rebalance_delay_ms: at_least(
                    "group.initial.rebalance.delay.ms",
                    parse(props, "group.initial.rebalance.delay.ms")?,
                    0,
                )?,
                min_session_timeout_ms: group_min_session_timeout_ms,
                max_session_timeout_ms: at_least(
                    "group.max.session.timeout.ms",
                    parse(props, "group.max.session.timeout.ms")?,
                    group_min_session_timeout_ms,
                )?,
                max_size: at_least("group.max.size", parse(props, "group.max.size")?, 1)?,
                offsets_retention_ms: at_least(
                    "offsets.retention.minutes",
                    parse::<i64>(props, "offsets.retention.minutes")?,
                    1,
                )?
                .saturating_mul(60_000),
                offsets_retention_check_interval_ms: at_least(
                    "offsets.retention.check.interval.ms",
                    parse(props, "offsets.retention.check.interval.ms")?,
                    1,
                )?,
                offset_metadata_max_bytes: parse(props, "offset.metadata.max.bytes")?,
            },
            offsets_topic_num_partitions: at_least(
                "offsets.topic.num.partitions",
                parse(props, "offsets.topic.num.partitions")?,
                1,
            )?,
            offsets_topic_segment_bytes: at_least(
                "offsets.topic.segment.bytes",
                parse(props, "offsets.topic.segment.bytes")?,
                14,
            )?,
            properties: props.values.clone(),
            unknown,
        })
    }

    /// Broker properties as DescribeConfigs reports them: (name, value, set explicitly), every
    /// property with a default plus every other one that was set, in name order.
    pub fn described_properties(&self) -> Vec<(String, String, bool)> {
        let mut out: BTreeMap<String, (String, bool)> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), (v.to_string(), false)))
            .collect();
        for (k, v) in &self.properties {
            out.insert(k.clone(), (v.clone(), true));
        }
        out.insert(
            "node.id".into(),
            (
                self.node_id.to_string(),
                self.properties.contains_key("node.id"),
            ),
        );
        out.into_iter().map(|(k, (v, set))| (k, v, set)).collect()
    }

    /// The advertised listener clients are told about.
    pub fn advertised(&self) -> &Listener {
        &self.advertised_listeners[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn defaults_are_kafkas() -> TestResult {
        let config = BrokerConfig::from_properties(&Properties::default())?;
        assert_eq!(config.listeners[0].port, 9092);
        assert_eq!(config.listeners[0].host, "");
        assert_eq!(config.advertised().host, "localhost");
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.log.retention_ms, 168 * 3_600_000);
        assert_eq!(config.socket_request_max_bytes, 104_857_600);
        Ok(())
    }

    #[test]
    fn env_maps_like_kafka_docker() -> TestResult {
        let mut props = Properties::default();
        props.load_env([
            ("KAFKA_LOG_DIRS".to_string(), "/x".to_string()),
            ("KAFKA_HEAP_OPTS".to_string(), "-Xmx1g".to_string()),
            ("KAFKA_SOME__UNDERSCORE".to_string(), "1".to_string()),
            ("KAFKA_SOME___DASH".to_string(), "2".to_string()),
        ]);
        assert_eq!(props.get("log.dirs"), Some("/x"));
        assert_eq!(props.get("heap.opts"), None);
        assert_eq!(props.get("some_underscore"), Some("1"));
        assert_eq!(props.get("some-dash"), Some("2"));
        Ok(())
    }

    #[test]
    fn retention_precedence_and_unknown_keys() -> TestResult {
        let mut props = Properties::default();
        props.set("log.retention.minutes", "2");
        props.set("log.retention.ms", "5");
        props.set("made.up.key", "x");
        let config = BrokerConfig::from_properties(&props)?;
        assert_eq!(config.log.retention_ms, 5);
        assert_eq!(config.unknown, vec!["made.up.key".to_string()]);
        Ok(())
    }

    #[test]
    fn bad_values_are_errors() -> TestResult {
        let mut props = Properties::default();
        props.set("num.partitions", "zero");
        assert!(BrokerConfig::from_properties(&props).is_err());
        let mut props = Properties::default();
        props.set("listeners", "nonsense");
        assert!(BrokerConfig::from_properties(&props).is_err());
        Ok(())
    }
}
