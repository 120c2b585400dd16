//! The broker's one typed configuration, spelled with Apache Kafka's property names.
//!
//! Sources, later ones win: built-in defaults (Kafka's own), a `server.properties`-style file,
//! `KAFKA_`-prefixed environment variables (mapped the way Kafka's docker image maps them:
//! `KAFKA_LOG_DIRS` -> `log.dirs`, `__` -> `_`, `___` -> `-`), then `--override key=value`.
//! Unknown properties are kept and reported with a warning, never a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod catalog;

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

/// The internal topic of the group coordinator.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The internal topic of the transaction coordinator.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Whether `name` is one of the coordinators' internal topics, which clients may read but not
/// write, delete, grow or trim (Kafka's `Topic.isInternal`).
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// A listener such as `PLAINTEXT://:9092`. An empty host means every interface of both
/// address families. Names are upper-cased, as Kafka normalises them.
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
        if name.is_empty() {
            return Err(invalid("expected NAME://host:port"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host: host.to_string(),
            port,
        })
    }

    /// Whether the host means every interface rather than an address clients can dial.
    pub fn has_wildcard_host(&self) -> bool {
        matches!(self.host.as_str(), "" | "0.0.0.0" | "::")
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// The host:port clients are told to dial for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// `listener.security.protocol.map` values. Only PLAINTEXT is served so far; the others are
/// refused at start rather than served as plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(text: &str) -> Option<SecurityProtocol> {
        match text.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// The listener settings, checked together the way Kafka's `KafkaConfig` checks them.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Listeners bound for clients, in the order given; controller listeners are not among them.
    pub listeners: Vec<Listener>,
    /// Explicit `advertised.listeners` entries by listener name; a listener without one
    /// advertises its own bound address.
    pub advertised: BTreeMap<String, Endpoint>,
    pub security_protocols: BTreeMap<String, SecurityProtocol>,
    pub inter_broker_listener_name: String,
    /// `controller.listener.names`: never advertised to clients, and not bound until the
    /// cluster work brings a controller.
    pub controller_listener_names: Vec<String>,
    /// Whether `listeners` was derived from `advertised.listeners`, as the apache/kafka image's
    /// entrypoint does when only the latter is set.
    pub derived_from_advertised: bool,
}

fn listener_list(key: &str, text: &str) -> Result<Vec<Listener>, ConfigError> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| Listener::parse(key, s.trim()))
        .collect()
}

fn name_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ListenerSettings {
    fn from_properties(props: &Properties) -> Result<ListenerSettings, ConfigError> {
        let invalid = |key: &str, value: &str, reason: String| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        // An empty value counts as unset, as an empty KAFKA_LISTENERS does in Kafka's images.
        let set = |key: &str| props.get(key).filter(|text| !text.trim().is_empty());
        let advertised_text = set("advertised.listeners");
        let advertised_list = match advertised_text {
            Some(text) => listener_list("advertised.listeners", text)?,
            None => Vec::new(),
        };
        let controller_listener_names = props
            .get("controller.listener.names")
            .map(name_list)
            .unwrap_or_default();
        // The apache/kafka and Confluent images bind every advertised port on all interfaces
        // when only KAFKA_ADVERTISED_LISTENERS is given.
        let (all_listeners, derived_from_advertised) = match set("listeners") {
            Some(text) => (listener_list("listeners", text)?, false),
            None if !advertised_list.is_empty() => (
                advertised_list
                    .iter()
                    .map(|l| Listener {
                        host: String::new(),
                        ..l.clone()
                    })
                    .collect(),
                true,
            ),
            None => (listener_list("listeners", "PLAINTEXT://:9092")?, false),
        };
        let listeners_text = props.get("listeners").unwrap_or("");
        let mut seen_names = std::collections::BTreeSet::new();
        let mut seen_ports = std::collections::BTreeSet::new();
        for l in &all_listeners {
            if !seen_names.insert(l.name.clone()) {
                return Err(invalid(
                    "listeners",
                    listeners_text,
                    format!("listener name {} appears more than once", l.name),
                ));
            }
            if l.port != 0 && !seen_ports.insert(l.port) {
                return Err(invalid(
                    "listeners",
                    listeners_text,
                    format!("port {} is used by more than one listener", l.port),
                ));
            }
        }

        // Kafka's default map names each protocol after itself; in KRaft mode a controller
        // listener missing from an unset map is PLAINTEXT.
        let mut security_protocols = BTreeMap::new();
        match props.get("listener.security.protocol.map") {
            Some(text) => {
                for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let (name, protocol) = entry
                        .split_once(':')
                        .map(|(n, p)| (n.trim(), p.trim()))
                        .ok_or_else(|| {
                            invalid(
                                "listener.security.protocol.map",
                                text,
                                format!("entry '{entry}' is not LISTENER_NAME:PROTOCOL"),
                            )
                        })?;
                    let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                        invalid(
                            "listener.security.protocol.map",
                            text,
                            format!(
                                "'{protocol}' is not a security protocol \
                                 (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
                            ),
                        )
                    })?;
                    security_protocols.insert(name.to_ascii_uppercase(), protocol);
                }
            }
            None => {
                for p in [
                    SecurityProtocol::Plaintext,
                    SecurityProtocol::Ssl,
                    SecurityProtocol::SaslPlaintext,
                    SecurityProtocol::SaslSsl,
                ] {
                    security_protocols.insert(p.name().to_string(), p);
                }
                for name in &controller_listener_names {
                    security_protocols
                        .entry(name.clone())
                        .or_insert(SecurityProtocol::Plaintext);
                }
            }
        }
        for l in &all_listeners {
            if !security_protocols.contains_key(&l.name) {
                return Err(invalid(
                    "listener.security.protocol.map",
                    props.get("listener.security.protocol.map").unwrap_or(""),
                    format!(
                        "listener {} has no entry: add {}:PLAINTEXT (every name in listeners \
                         needs a security protocol)",
                        l.name, l.name
                    ),
                ));
            }
        }

        let listeners: Vec<Listener> = all_listeners
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .cloned()
            .collect();
        if listeners.is_empty() {
            return Err(invalid(
                "listeners",
                listeners_text,
                "no listener for clients: every listener is a controller listener \
                 (controller.listener.names)"
                    .to_string(),
            ));
        }
        for l in &listeners {
            let protocol = security_protocols[&l.name];
            if protocol != SecurityProtocol::Plaintext {
                return Err(invalid(
                    "listeners",
                    listeners_text,
                    format!(
                        "listener {l} uses {}, which Strom does not serve yet (no TLS or SASL); \
                         map it to PLAINTEXT in listener.security.protocol.map or remove it",
                        protocol.name()
                    ),
                ));
            }
        }

        let mut advertised = BTreeMap::new();
        for a in &advertised_list {
            let text = advertised_text.unwrap_or("");
            if controller_listener_names.contains(&a.name) {
                continue;
            }
            if !listeners.iter().any(|l| l.name == a.name) {
                return Err(invalid(
                    "advertised.listeners",
                    text,
                    format!(
                        "listener {} is not in listeners ({})",
                        a.name,
                        listeners
                            .iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if matches!(a.host.as_str(), "0.0.0.0" | "::") {
                return Err(invalid(
                    "advertised.listeners",
                    text,
                    format!(
                        "{a} advertises the wildcard address {}, which clients cannot dial; \
                         give the host name clients use to reach this broker",
                        a.host
                    ),
                ));
            }
            if a.port == 0 {
                return Err(invalid(
                    "advertised.listeners",
                    text,
                    format!("{a} advertises port 0"),
                ));
            }
            // Kafka advertises the machine's name for an empty host; a single node is reached
            // through published ports, where localhost is the name that works.
            let endpoint = Endpoint {
                host: if a.host.is_empty() {
                    "localhost".to_string()
                } else {
                    a.host.clone()
                },
                port: a.port,
            };
            if advertised.insert(a.name.clone(), endpoint).is_some() {
                return Err(invalid(
                    "advertised.listeners",
                    text,
                    format!("listener name {} appears more than once", a.name),
                ));
            }
        }

        let inter_broker_listener_name =
            match (
                props.get("inter.broker.listener.name"),
                props.get("security.inter.broker.protocol"),
            ) {
                (Some(_), Some(_)) => return Err(invalid(
                    "inter.broker.listener.name",
                    props.get("inter.broker.listener.name").unwrap_or(""),
                    "only one of inter.broker.listener.name and security.inter.broker.protocol \
                     may be set"
                        .to_string(),
                )),
                (Some(name), None) => Some(("inter.broker.listener.name", name)),
                (None, Some(protocol)) => Some(("security.inter.broker.protocol", protocol)),
                (None, None) => None,
            };
        let inter_broker_listener_name = match inter_broker_listener_name {
            Some((key, name)) => {
                let name = name.trim().to_ascii_uppercase();
                if !listeners.iter().any(|l| l.name == name) {
                    return Err(invalid(
                        key,
                        &name,
                        format!(
                            "no listener named {name} in listeners ({})",
                            listeners
                                .iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                name
            }
            // Kafka's default is PLAINTEXT; with no such listener a single node has no peer to
            // talk to, so the first client listener stands in.
            None => listeners
                .iter()
                .find(|l| l.name == "PLAINTEXT")
                .unwrap_or(&listeners[0])
                .name
                .clone(),
        };

        Ok(ListenerSettings {
            listeners,
            advertised,
            security_protocols,
            inter_broker_listener_name,
            controller_listener_names,
            derived_from_advertised,
        })
    }

    /// What clients arriving on `listener` are told to dial: its `advertised.listeners` entry,
    /// else its own address as bound (`bound_port` resolves port 0); a wildcard host advertises
    /// `localhost`.
    pub fn endpoint_for(&self, listener: &Listener, bound_port: u16) -> Endpoint {
        if let Some(endpoint) = self.advertised.get(&listener.name) {
            return endpoint.clone();
        }
        Endpoint {
            host: if listener.has_wildcard_host() {
                "localhost".to_string()
            } else {
                listener.host.clone()
            },
            port: bound_port,
        }
    }
}

/// Kafka's defaults for the properties Strom reads, except the broker properties that set topic
/// configs (`log.segment.bytes`, `log.retention.hours`, `message.max.bytes`, ...), whose defaults
/// are in the catalog (`catalog.rs`).
const DEFAULTS: &[(&str, &str)] = &[
    ("listeners", "PLAINTEXT://:9092"),
    ("log.dirs", "strom-data"),
    ("node.id", "1"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("log.retention.check.interval.ms", "300000"),
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
    ("strom.http.listener", "http://:9644"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offset.metadata.max.bytes", "4096"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.state.log.segment.bytes", "104857600"),
    ("transaction.max.timeout.ms", "900000"),
    ("transactional.id.expiration.ms", "604800000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
    ),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
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
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
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

/// Environment variables of Kafka's docker images that are not broker properties and say
/// nothing Strom could act on.
const ENV_NOT_PROPERTIES: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HOME",
    "KAFKA_ENABLE_KRAFT",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// JVM settings of Kafka's start scripts: accepted, and reported once as not applicable.
const JVM_ENV: &[&str] = &[
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_DEBUG",
    "KAFKA_JAVA_OPTS",
];
const JVM_ENV_PREFIXES: &[&str] = &["KAFKA_JMX_"];

/// The raw property map, before it is typed.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    values: BTreeMap<String, String>,
    /// Where each value came from ("line 3 of server.properties", "KAFKA_NUM_PARTITIONS",
    /// "--override"), for error messages.
    origins: BTreeMap<String, String>,
    not_applicable: Vec<String>,
}

impl Properties {
    pub fn set(&mut self, key: &str, value: &str) {
        self.values
            .insert(key.trim().to_string(), value.trim().to_string());
        self.origins.remove(key.trim());
    }

    fn set_from(&mut self, key: &str, value: &str, origin: String) {
        self.set(key, value);
        self.origins.insert(key.trim().to_string(), origin);
    }

    /// Where `key`'s value came from, if it was loaded from a file, the environment or an
    /// override.
    pub fn origin(&self, key: &str) -> Option<&str> {
        self.origins.get(key).map(String::as_str)
    }

    /// `e` with the origin of its property added ("property num.partitions=abc (from
    /// KAFKA_NUM_PARTITIONS): must be an integer").
    pub fn explain(&self, e: ConfigError) -> ConfigError {
        match e {
            ConfigError::Invalid { key, value, reason } => match self.origin(&key) {
                Some(origin) => ConfigError::Invalid {
                    value: format!("{value} (from {origin})"),
                    key,
                    reason,
                },
                None => ConfigError::Invalid { key, value, reason },
            },
            other => other,
        }
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
            self.set_from(
                key,
                value,
                format!("line {} of {}", number + 1, path.display()),
            );
        }
        Ok(())
    }

    /// Applies `KAFKA_`-prefixed variables the way Kafka's docker image does, Bitnami's
    /// `KAFKA_CFG_` prefix, and the cluster id variables of the images (`CLUSTER_ID` for
    /// apache/kafka and Confluent, `KAFKA_KRAFT_CLUSTER_ID` for Bitnami). JVM settings
    /// (`KAFKA_HEAP_OPTS`, `KAFKA_JMX_*`, ...) are remembered to be reported as not applicable.
    pub fn load_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) {
        let mut vars: Vec<(String, String)> = vars.into_iter().collect();
        // KAFKA_CFG_X beats KAFKA_X whatever the environment's order.
        vars.sort_by_key(|(name, _)| name.starts_with("KAFKA_CFG_"));
        for (name, value) in vars {
            if name == "CLUSTER_ID" || name == "KAFKA_KRAFT_CLUSTER_ID" {
                self.set_from("cluster.id", &value, name);
                continue;
            }
            if JVM_ENV.contains(&name.as_str())
                || JVM_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                self.not_applicable.push(name);
                continue;
            }
            let rest = match name.strip_prefix("KAFKA_CFG_") {
                Some(rest) => rest,
                None => match name.strip_prefix("KAFKA_") {
                    Some(rest) => rest,
                    None => continue,
                },
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
            self.set_from(&key, &value, name);
        }
    }

    /// The JVM variables found by `load_env`, which do not apply to Strom.
    pub fn not_applicable(&self) -> &[String] {
        &self.not_applicable
    }

    pub fn apply_override(&mut self, text: &str) -> Result<(), ConfigError> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| ConfigError::Override(text.to_string()))?;
        self.set_from(key, value, "--override".to_string());
        Ok(())
    }
}

/// The typed broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: ListenerSettings,
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
    pub txn: TxnConfig,
    /// `strom.http.listener`: where `/metrics` and `/health` are served; `None` when set empty.
    pub http_listener: Option<Listener>,
    /// `cluster.id` (`CLUSTER_ID` in the images): written to a fresh data directory's
    /// `meta.properties`; a directory formatted with another id is refused.
    pub cluster_id: Option<String>,
    /// JVM environment variables that were set (`KAFKA_HEAP_OPTS`, `KAFKA_JMX_PORT`, ...),
    /// reported once at start as not applicable.
    pub not_applicable: Vec<String>,
    /// Every property set explicitly (file, environment, overrides), as given.
    pub properties: BTreeMap<String, String>,
    /// Properties Strom does not know, reported once at start.
    pub unknown: Vec<String>,
}

/// Transaction coordinator settings (`transaction.*`, `transactional.id.expiration.ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    pub state_log_num_partitions: i32,
    pub state_log_segment_bytes: i32,
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    /// How often open transactions are checked against their timeout.
    pub abort_timed_out_interval_ms: i64,
    /// How often idle transactional ids are checked against `transactional.id.expiration.ms`.
    pub remove_expired_interval_ms: i64,
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
    /// Whether a partition should be cleaned now: it compacts, and enough of its closed bytes
    /// were written since the last pass (`min.cleanable.dirty.ratio`).
    pub fn cleaning_due(&self, dirty_bytes: u64, total_bytes: u64) -> bool {
        self.compact
            && total_bytes > 0
            && dirty_bytes > 0
            && dirty_bytes as f64 / total_bytes as f64 >= self.min_cleanable_dirty_ratio
    }

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
    /// Kafka's defaults, from the catalog.
    fn default() -> LogConfig {
        LogConfig::kafka_defaults()
    }
}

/// `strom.http.listener` (`http://host:port`, an empty host for every interface); empty or
/// `none` turns the HTTP listener off. `None` given means the default.
pub fn http_listener(text: Option<&str>) -> Result<Option<Listener>, ConfigError> {
    let text = text.unwrap_or("http://:9644").trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let listener = Listener::parse("strom.http.listener", text)?;
    if listener.name != "HTTP" {
        return Err(ConfigError::Invalid {
            key: "strom.http.listener".into(),
            value: text.into(),
            reason: "expected http://host:port (or empty to turn it off)".into(),
        });
    }
    Ok(Some(listener))
}

/// Kafka's `Uuid.fromString`: 16 bytes in URL-safe base64 without padding.
fn is_cluster_id(text: &str) -> bool {
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse<T: std::str::FromStr>(props: &Properties, key: &str) -> Result<T, ConfigError> {
    let value = props
        .get(key)
        .map(str::to_string)
        .or_else(|| {
            DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
        .or_else(|| catalog::broker_default(key))
        .unwrap_or_default();
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: expected_form::<T>().to_string(),
    })
}

/// What a value of type `T` must look like, in words (not Rust's type names).
fn expected_form<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "i32" => "must be an integer from -2147483648 to 2147483647",
        "i8" | "i16" | "i64" | "isize" => "must be an integer",
        "u8" | "u16" | "u32" | "u64" | "usize" => "must be a whole number (0 or more)",
        "bool" => "must be true or false",
        "f32" | "f64" => "must be a number",
        _ => "is not in the accepted form",
    }
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
        let listeners = ListenerSettings::from_properties(props)?;
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

        let message_max_bytes = at_least(
            "message.max.bytes",
            parse::<i32>(props, "message.max.bytes")?,
            0,
        )?;
        // Every topic config's broker property, from the catalog (`log.retention.ms` beats
        // `.minutes` beats `.hours`, and so on).
        let mut log = LogConfig::from_broker(&props.values)
            .map_err(|(key, value, reason)| ConfigError::Invalid { key, value, reason })?;
        log.fsync_acks_all = parse(props, "strom.acks.all.fsync")?;
        let group_min_session_timeout_ms = at_least(
            "group.min.session.timeout.ms",
            parse(props, "group.min.session.timeout.ms")?,
            0,
        )?;
        let known = |key: &str| {
            DEFAULTS.iter().any(|(k, _)| *k == key)
                || catalog::is_synonym(key)
                || ACCEPTED.contains(&key)
                || matches!(
                    key,
                    "listeners" | "advertised.listeners" | "security.inter.broker.protocol"
                )
                || key == "strom.http.listener"
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
            txn: TxnConfig {
                state_log_num_partitions: at_least(
                    "transaction.state.log.num.partitions",
                    parse(props, "transaction.state.log.num.partitions")?,
                    1,
                )?,
                state_log_segment_bytes: at_least(
                    "transaction.state.log.segment.bytes",
                    parse(props, "transaction.state.log.segment.bytes")?,
                    14,
                )?,
                max_timeout_ms: at_least(
                    "transaction.max.timeout.ms",
                    parse(props, "transaction.max.timeout.ms")?,
                    1,
                )?,
                id_expiration_ms: at_least(
                    "transactional.id.expiration.ms",
                    parse(props, "transactional.id.expiration.ms")?,
                    1,
                )?,
                abort_timed_out_interval_ms: at_least(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    parse(
                        props,
                        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    )?,
                    1,
                )?,
                remove_expired_interval_ms: at_least(
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                    parse(
                        props,
                        "transaction.remove.expired.transaction.cleanup.interval.ms",
                    )?,
                    1,
                )?,
            },
            http_listener: http_listener(props.get("strom.http.listener"))?,
            cluster_id: match props.get("cluster.id") {
                None => None,
                Some(id) if is_cluster_id(id) => Some(id.to_string()),
                Some(id) => {
                    return Err(ConfigError::Invalid {
                        key: "cluster.id".into(),
                        value: id.into(),
                        reason: "a cluster id is 22 characters of URL-safe base64 (a UUID), as \
                                 `kafka-storage.sh random-uuid` prints"
                            .into(),
                    })
                }
            },
            not_applicable: props.not_applicable.clone(),
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
        for def in catalog::TOPIC_CONFIG_DEFS {
            if let Some(synonym) = def.synonyms.last() {
                if let Some(value) = catalog::broker_default(synonym.name) {
                    out.insert(synonym.name.to_string(), (value, false));
                }
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn defaults_are_kafkas() -> TestResult {
        let config = BrokerConfig::from_properties(&Properties::default())?;
        let first = &config.listeners.listeners[0];
        assert_eq!(first.port, 9092);
        assert_eq!(first.host, "");
        assert_eq!(
            config.listeners.endpoint_for(first, 9092),
            Endpoint {
                host: "localhost".into(),
                port: 9092
            }
        );
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
        assert_eq!(props.not_applicable(), ["KAFKA_HEAP_OPTS".to_string()]);
        assert_eq!(props.get("some_underscore"), Some("1"));
        assert_eq!(props.get("some-dash"), Some("2"));
        Ok(())
    }

    #[test]
    fn bitnami_and_cluster_id_variables() -> TestResult {
        let mut props = Properties::default();
        props.load_env([
            ("KAFKA_CFG_NUM_PARTITIONS".to_string(), "4".to_string()),
            ("KAFKA_NUM_PARTITIONS".to_string(), "2".to_string()),
            (
                "KAFKA_KRAFT_CLUSTER_ID".to_string(),
                "abcdefghijklmnopqrstuv".to_string(),
            ),
            ("KAFKA_JMX_PORT".to_string(), "9101".to_string()),
        ]);
        let config = BrokerConfig::from_properties(&props)?;
        assert_eq!(config.num_partitions, 4);
        assert_eq!(config.cluster_id.as_deref(), Some("abcdefghijklmnopqrstuv"));
        assert_eq!(config.not_applicable, ["KAFKA_JMX_PORT".to_string()]);
        assert!(config.unknown.is_empty(), "{:?}", config.unknown);
        props.set("cluster.id", "not a uuid");
        assert!(BrokerConfig::from_properties(&props).is_err());
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

    /// An error names the property, where its value came from, and the accepted form in words.
    #[test]
    fn errors_say_where_a_value_came_from() -> TestResult {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("server.properties");
        std::fs::write(&file, "# a comment\nlog.segment.bytes=1x\n")?;
        let explained = |props: &Properties| {
            BrokerConfig::from_properties(props)
                .map(|_| ())
                .map_err(|e| props.explain(e).to_string())
        };
        let mut props = Properties::default();
        props.load_file(&file)?;
        assert_eq!(
            explained(&props),
            Err(format!(
                "property log.segment.bytes=1x (from line 2 of {}): must be an integer from \
                 -2147483648 to 2147483647",
                file.display()
            ))
        );
        let mut props = Properties::default();
        props.load_env([("KAFKA_NUM_PARTITIONS".to_string(), "many".to_string())]);
        assert_eq!(
            explained(&props),
            Err(
                "property num.partitions=many (from KAFKA_NUM_PARTITIONS): must be an integer \
                 from -2147483648 to 2147483647"
                    .to_string()
            )
        );
        // The override wins over the variable, and is named instead.
        props.apply_override("num.partitions=true")?;
        assert!(explained(&props).is_err_and(|e| e.contains("(from --override)")));
        props.apply_override("num.partitions=2")?;
        props.apply_override("auto.create.topics.enable=maybe")?;
        assert!(explained(&props).is_err_and(|e| e.ends_with("must be true or false")));
        Ok(())
    }

    fn listeners_of(pairs: &[(&str, &str)]) -> Result<ListenerSettings, ConfigError> {
        let mut props = Properties::default();
        for (k, v) in pairs {
            props.set(k, v);
        }
        BrokerConfig::from_properties(&props).map(|c| c.listeners)
    }

    fn error_text(pairs: &[(&str, &str)]) -> String {
        match listeners_of(pairs) {
            Ok(settings) => panic!("accepted: {settings:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_listener_advertises_its_own_entry() -> TestResult {
        let settings = listeners_of(&[
            (
                "listeners",
                "PLAINTEXT://:29092,controller://:9093,PLAINTEXT_HOST://127.0.0.1:9092",
            ),
            (
                "advertised.listeners",
                "PLAINTEXT://kafka:29092,PLAINTEXT_HOST://localhost:9092",
            ),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
        ])?;
        let names: Vec<&str> = settings.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["PLAINTEXT", "PLAINTEXT_HOST"],
            "controller not bound"
        );
        let host = &settings.listeners[1];
        assert_eq!(
            settings.endpoint_for(host, 9092),
            Endpoint {
                host: "localhost".into(),
                port: 9092
            }
        );
        assert_eq!(
            settings.endpoint_for(&settings.listeners[0], 29092).host,
            "kafka"
        );
        assert_eq!(settings.inter_broker_listener_name, "PLAINTEXT");
        Ok(())
    }

    #[test]
    fn a_listener_without_an_advertised_entry_advertises_its_bound_address() -> TestResult {
        let settings = listeners_of(&[
            ("listeners", "PLAINTEXT://127.0.0.1:0,OTHER://127.0.0.2:0"),
            ("advertised.listeners", "PLAINTEXT://broker-a:9092"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
            ),
        ])?;
        assert_eq!(
            settings.endpoint_for(&settings.listeners[1], 40123),
            Endpoint {
                host: "127.0.0.2".into(),
                port: 40123
            }
        );
        Ok(())
    }

    #[test]
    fn listeners_are_derived_from_advertised_ones_when_unset() -> TestResult {
        let settings = listeners_of(&[
            (
                "advertised.listeners",
                "PLAINTEXT://kafka:29092,PLAINTEXT_HOST://localhost:9092",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            ),
        ])?;
        assert!(settings.derived_from_advertised);
        let bound: Vec<(String, String, u16)> = settings
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.host.clone(), l.port))
            .collect();
        assert_eq!(
            bound,
            [
                ("PLAINTEXT".to_string(), String::new(), 29092),
                ("PLAINTEXT_HOST".to_string(), String::new(), 9092)
            ]
        );
        Ok(())
    }

    #[test]
    fn listener_mistakes_are_named_at_start() {
        let e = error_text(&[("listeners", "PLAINTEXT://:9092,SSL://:9093")]);
        assert!(
            e.contains("SSL://:9093") && e.contains("does not serve"),
            "{e}"
        );
        let e = error_text(&[
            ("listeners", "CLIENT://:9092"),
            ("listener.security.protocol.map", "CLIENT:SASL_PLAINTEXT"),
        ]);
        assert!(
            e.contains("CLIENT://:9092") && e.contains("SASL_PLAINTEXT"),
            "{e}"
        );
        let e = error_text(&[("listeners", "CLIENT://:9092")]);
        assert!(e.contains("listener CLIENT has no entry"), "{e}");
        let e = error_text(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]);
        assert!(e.contains("wildcard"), "{e}");
        let e = error_text(&[
            ("listeners", "PLAINTEXT://:9092"),
            ("advertised.listeners", "EXTERNAL://example.com:9092"),
        ]);
        assert!(
            e.contains("EXTERNAL is not in listeners (PLAINTEXT)"),
            "{e}"
        );
        let e = error_text(&[
            ("listeners", "PLAINTEXT://:9092"),
            ("inter.broker.listener.name", "BROKER"),
        ]);
        assert!(
            e.contains("inter.broker.listener.name") && e.contains("BROKER"),
            "{e}"
        );
        let e = error_text(&[
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("security.inter.broker.protocol", "PLAINTEXT"),
        ]);
        assert!(e.contains("only one of"), "{e}");
        let e = error_text(&[("listeners", "PLAINTEXT://:9092,OTHER://:9092")]);
        assert!(e.contains("port 9092"), "{e}");
        // A controller listener is never served, so its protocol does not matter yet.
        assert!(listeners_of(&[
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"
            ),
        ])
        .is_ok());
    }
}
