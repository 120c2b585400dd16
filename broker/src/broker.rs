//! The broker's shared state: configuration, metadata, logs and producer ids, and the few
//! operations that span more than one room (creating a topic touches metadata and logs).
//! Handlers in `api/` receive an `Arc<Broker>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use thiserror::Error;

use crate::clock::Clock;
use crate::config::TRANSACTION_STATE_TOPIC;
use crate::config::{BrokerConfig, Endpoint, LogConfig};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::log::{LogManager, Opening, PartitionLog, TopicPartition};
use crate::metadata::topic_configs::topic_config_def;
use crate::metadata::{MetadataError, MetadataStore, TopicRecord, MAX_PARTITIONS_PER_TOPIC};
use crate::metrics::Metrics;
use crate::txn::coordinator::TxnCoordinator;
use crate::txn::producer_ids::ProducerIdAllocator;
use crate::txn::state::{TxnError, TxnLimits};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: MetadataStore,
    pub logs: LogManager,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    producer_ids: ProducerIdAllocator,
    /// Exists once the offsets topic does: created by the first FindCoordinator, as in Kafka.
    groups: OnceLock<Arc<GroupCoordinator>>,
    creating_groups: Mutex<()>,
    /// Exists once `__transaction_state` does: created by the first FindCoordinator for a
    /// transactional id, as in Kafka.
    txns: OnceLock<Arc<TxnCoordinator>>,
    creating_txns: Mutex<()>,
    /// Held across a topic's create, delete or create-partitions (`lock_topic_lifecycle`).
    topic_lifecycle: Mutex<()>,
    /// Turns true when the broker starts to stop (`begin_stop`).
    stop: tokio::sync::watch::Sender<bool>,
    /// `queued.max.requests` permits: requests whose effects are being applied at once.
    pub apply_slots: tokio::sync::Semaphore,
    /// Listener name -> the host:port its clients are told to dial, filled in as each listener
    /// is bound (port 0 resolves then).
    endpoints: RwLock<BTreeMap<String, Endpoint>>,
}

/// Applies a topic's config overrides to the broker's log defaults, each checked as the catalog
/// says (`config/catalog.rs`).
pub fn log_config_for(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, MetadataError> {
    let mut config = defaults.clone();
    for (key, value) in overrides {
        let invalid = |reason: String| MetadataError::InvalidConfig {
            key: key.clone(),
            value: value.clone(),
            reason,
        };
        let def = topic_config_def(key).ok_or_else(|| invalid("unknown topic config".into()))?;
        crate::config::catalog::apply(&mut config, def, value).map_err(invalid)?;
    }
    // Cross-field rule of Kafka's `LogConfig.validateValues`.
    let lag = |key: &str, default: i64| {
        overrides
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let (min_lag, max_lag) = (
        lag("min.compaction.lag.ms", defaults.min_compaction_lag_ms),
        lag("max.compaction.lag.ms", i64::MAX),
    );
    if min_lag > max_lag {
        return Err(MetadataError::InvalidConfig {
            key: "min.compaction.lag.ms".into(),
            value: min_lag.to_string(),
            reason: format!("conflicts with max.compaction.lag.ms {max_lag}"),
        });
    }
    if !config.delete {
        // A compacted-only topic (the offsets topic among them) never loses segments to
        // retention: its old records are what the latest state is made of.
        config.retention_ms = -1;
        config.retention_bytes = -1;
    }
    Ok(config)
}

impl Broker {
    /// `/metrics`: the counters plus the gauges read from state now (log sizes, groups).
    pub fn render_metrics(&self) -> String {
        self.metrics.render(|log_size, groups| {
            for log in self.logs.all() {
                let tp = &log.topic_partition;
                log_size
                    .get_or_create(&crate::metrics::PartitionLabels {
                        topic: tp.topic.clone(),
                        partition: tp.partition.to_string(),
                    })
                    .set(i64::try_from(log.size_bytes()).unwrap_or(i64::MAX));
            }
            if let Some(Ok(listed)) = self.group_coordinator().map(|g| g.list()) {
                groups.set(listed.len() as i64);
            }
        })
    }

    /// Records what clients of a bound listener are told to dial.
    pub fn register_endpoint(&self, listener: &str, endpoint: Endpoint) {
        if let Ok(mut endpoints) = self.endpoints.write() {
            endpoints.insert(listener.to_string(), endpoint);
        }
    }

    /// The address Metadata, FindCoordinator and DescribeCluster give a client that arrived on
    /// `listener` (Kafka's rule: answer with the listener the request came in on). A context
    /// without a known listener (the fuzz entry point) gets the first client listener's.
    pub fn advertised_endpoint(&self, listener: &str) -> Endpoint {
        let endpoints = match self.endpoints.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(endpoint) = endpoints.get(listener) {
            return endpoint.clone();
        }
        let first = &self.config.listeners.listeners[0];
        endpoints
            .get(&first.name)
            .cloned()
            .unwrap_or_else(|| self.config.listeners.endpoint_for(first, first.port))
    }

    /// Opens the data directory and recovers every partition. Blocking.
    pub fn open(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker, StartError> {
        // The log directories are locked first: nothing in them, metadata included, is read
        // or repaired while another broker may be using them.
        let logs = LogManager::open_dirs(&config.log_dirs)?;
        let metadata = MetadataStore::open(
            &config.log_dirs,
            config.node_id,
            config.cluster_id.as_deref(),
        )?;
        let image = metadata.image();
        let now_ms = clock.now_ms();
        for topic in image.topics.values() {
            let log_config = Arc::new(
                log_config_for(&config.log, &topic.configs).unwrap_or_else(|_| config.log.clone()),
            );
            for partition in 0..topic.partitions {
                logs.open_partition(
                    &TopicPartition::new(topic.name.clone(), partition),
                    topic.id,
                    Opening::Existing,
                    log_config.clone(),
                    now_ms,
                )?;
            }
        }
        for (tp, topic_id) in logs.partition_dirs_on_disk()? {
            let owner = image
                .topic(&tp.topic)
                .filter(|t| tp.partition < t.partitions);
            match (owner, topic_id) {
                (Some(_), _) => {}
                // Its topic id names no topic: a delete a crash interrupted. Finish it, so a
                // later topic of the same name can never meet these files.
                (None, Some(id)) if image.topic_by_id(&id).is_none() => {
                    tracing::info!(partition = %tp, topic_id = %id, "finishing the delete of a removed topic's partition");
                    logs.remove_stray(&tp)?;
                }
                _ => {
                    tracing::warn!(partition = %tp, "directory of a partition that no topic owns; left alone")
                }
            }
        }
        let producer_ids = ProducerIdAllocator::new(image.producer_id_block_end);
        let config_queued_max_requests = config.queued_max_requests;
        let broker = Broker {
            config,
            metadata,
            logs,
            clock,
            producer_ids,
            groups: OnceLock::new(),
            creating_groups: Mutex::new(()),
            txns: OnceLock::new(),
            creating_txns: Mutex::new(()),
            topic_lifecycle: Mutex::new(()),
            stop: tokio::sync::watch::Sender::new(false),
            apply_slots: tokio::sync::Semaphore::new(
                config_queued_max_requests.min(tokio::sync::Semaphore::MAX_PERMITS),
            ),
            endpoints: RwLock::new(BTreeMap::new()),
            metrics: Metrics::default(),
        };
        if let Some(topic) = image.topic(OFFSETS_TOPIC) {
            let coordinator = broker.new_group_coordinator(topic.partitions)?;
            let _ = broker.groups.set(Arc::new(coordinator));
        }
        Ok(broker)
    }

    fn new_group_coordinator(&self, partitions: i32) -> Result<GroupCoordinator, StartError> {
        let logs = (0..partitions)
            .map(|p| {
                self.partition(OFFSETS_TOPIC, p).ok_or_else(|| {
                    StartError::Io(std::io::Error::other(format!(
                        "partition {p} of {OFFSETS_TOPIC} is missing"
                    )))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GroupCoordinator::new(
            self.config.group.clone(),
            logs,
            self.logs.replicas().clone(),
            self.clock.clone(),
        ))
    }

    /// The group coordinator, if the offsets topic exists. It may still be loading.
    pub fn group_coordinator(&self) -> Option<&Arc<GroupCoordinator>> {
        self.groups.get()
    }

    /// The group coordinator, creating the offsets topic first if needed. Blocking.
    pub fn ensure_group_coordinator(&self) -> Result<Arc<GroupCoordinator>, StartError> {
        if let Some(groups) = self.groups.get() {
            return Ok(groups.clone());
        }
        let _creating = self
            .creating_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(groups) = self.groups.get() {
            return Ok(groups.clone());
        }
        let partitions = match self.metadata.image().topic(OFFSETS_TOPIC) {
            Some(topic) => topic.partitions,
            None => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("compression.type".to_string(), "producer".to_string()),
                    (
                        "segment.bytes".to_string(),
                        self.config.offsets_topic_segment_bytes.to_string(),
                    ),
                ]);
                self.create_topic(
                    OFFSETS_TOPIC,
                    self.config.offsets_topic_num_partitions,
                    configs,
                )?
                .partitions
            }
        };
        let coordinator = Arc::new(self.new_group_coordinator(partitions)?);
        coordinator.load();
        let _ = self.groups.set(coordinator.clone());
        Ok(coordinator)
    }

    /// The transaction coordinator, if `__transaction_state` exists. It may still be loading.
    pub fn txn_coordinator(&self) -> Option<&Arc<TxnCoordinator>> {
        self.txns.get()
    }

    /// The transaction coordinator, creating `__transaction_state` first if `create` and it is
    /// missing; `None` when it is missing and not to be created. Blocking: the log is replayed
    /// here; the markers of transactions found half-ended are written in tasks of their own.
    pub fn ensure_txn_coordinator(
        self: &Arc<Self>,
        create: bool,
    ) -> Result<Option<Arc<TxnCoordinator>>, StartError> {
        if let Some(txns) = self.txns.get() {
            return Ok(Some(txns.clone()));
        }
        let _creating = self.creating_txns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(txns) = self.txns.get() {
            return Ok(Some(txns.clone()));
        }
        let partitions = match self.metadata.image().topic(TRANSACTION_STATE_TOPIC) {
            Some(topic) => topic.partitions,
            None if !create => return Ok(None),
            None => {
                // Kafka's `transactionTopicConfigs`.
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("compression.type".to_string(), "uncompressed".to_string()),
                    (
                        "segment.bytes".to_string(),
                        self.config.txn.state_log_segment_bytes.to_string(),
                    ),
                ]);
                self.create_topic(
                    TRANSACTION_STATE_TOPIC,
                    self.config.txn.state_log_num_partitions,
                    configs,
                )?
                .partitions
            }
        };
        let logs = (0..partitions)
            .map(|p| {
                self.partition(TRANSACTION_STATE_TOPIC, p).ok_or_else(|| {
                    StartError::Io(std::io::Error::other(format!(
                        "partition {p} of {TRANSACTION_STATE_TOPIC} is missing"
                    )))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let weak = Arc::downgrade(self);
        let write_marker: crate::txn::coordinator::MarkerWriter = {
            let weak = weak.clone();
            Arc::new(
                move |topic: &str, partition: i32, producer_id, epoch, marker| {
                    weak.upgrade()?
                        .write_txn_marker(topic, partition, producer_id, epoch, marker)
                },
            )
        };
        let allocate: crate::txn::coordinator::IdAllocator = Arc::new(move || {
            let broker = weak.upgrade().ok_or(TxnError::NotAvailable)?;
            broker.next_producer_id().map_err(|e| {
                tracing::error!(error = %e, "cannot reserve producer ids");
                TxnError::NotAvailable
            })
        });
        let coordinator = Arc::new(TxnCoordinator::new(
            TxnLimits {
                max_timeout_ms: self.config.txn.max_timeout_ms,
                id_expiration_ms: self.config.txn.id_expiration_ms,
            },
            logs,
            self.logs.replicas().clone(),
            self.clock.clone(),
            write_marker,
            allocate,
        ));
        // Set first: while it loads, its shards answer COORDINATOR_LOAD_IN_PROGRESS.
        let _ = self.txns.set(coordinator.clone());
        let unfinished = coordinator.load();
        for job in unfinished {
            tracing::info!(
                transactional_id = job.transactional_id,
                commit = job.commit,
                "completing a transaction prepared before the restart"
            );
            coordinator.spawn_markers(job);
        }
        Ok(Some(coordinator))
    }

    /// Writes a transaction marker for `producer_id` to a partition, through whoever owns it:
    /// the group coordinator for the offsets topic (it applies the marker to its pending
    /// offsets), the partition's log otherwise. `None` when there is no such partition. Not yet
    /// durable: the caller waits for the flusher when the log asks for it.
    pub fn write_txn_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        marker: crate::log::marker::Marker,
    ) -> Option<
        Result<
            (Arc<PartitionLog>, crate::log::partition::AppendInfo),
            crate::log::partition::AppendError,
        >,
    > {
        if topic == OFFSETS_TOPIC {
            if let Some(groups) = self.group_coordinator() {
                return groups.write_marker(partition, producer_id, epoch, marker);
            }
        }
        let log = self.partition(topic, partition)?;
        Some(
            log.append_marker(producer_id, epoch, marker, self.clock.now_ms())
                .map(|info| (log, info)),
        )
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs.get(&TopicPartition::new(topic, partition))
    }

    /// Asks the flusher to sync every partition whose oldest unflushed data is older than its
    /// `flush.ms` (Kafka's `log.flush.interval.ms`), without waiting for it.
    pub fn flush_due_logs(&self) {
        let now_ms = self.clock.now_ms();
        for log in self.logs.all() {
            if let Some(up_to) = log.flush_due_by_time(now_ms) {
                self.logs.replicas().flush_in_background(log, up_to);
            }
        }
    }

    /// Serializes create, delete and create-partitions, so the metadata change and the
    /// partition logs of one are done before another starts: a topic re-created while its
    /// predecessor is being deleted gets every one of its logs, and neither touches the
    /// other's files.
    fn lock_topic_lifecycle(&self) -> std::sync::MutexGuard<'_, ()> {
        self.topic_lifecycle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a topic and its partition logs. Blocking (fsyncs metadata).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        let log_config = Arc::new(log_config_for(&self.config.log, &configs)?);
        let _lifecycle = self.lock_topic_lifecycle();
        self.metadata.validate_new_topic(name, partitions)?;
        self.logs
            .check_open_file_budget(usize::try_from(partitions).unwrap_or(0))
            .map_err(MetadataError::ResourceLimit)?;
        let record = self.metadata.create_topic(name, partitions, configs)?;
        let now_ms = self.clock.now_ms();
        for partition in 0..partitions {
            let opened = self.logs.open_partition(
                &TopicPartition::new(name, partition),
                record.id,
                Opening::New,
                log_config.clone(),
                now_ms,
            );
            if let Err(e) = opened {
                // The topic is only in the metadata if all of it exists: undo, so that a
                // failed create leaves nothing a restart would have to open.
                tracing::error!(topic = name, partition, error = %e, "cannot create a partition log; the topic is not created");
                for created in 0..partition {
                    let tp = TopicPartition::new(name, created);
                    if let Err(e) = self.logs.remove_partition(&tp, record.id) {
                        tracing::error!(partition = %tp, error = %e, "cannot remove a partition of a failed create");
                    }
                }
                if let Err(e) = self.metadata.delete_topic(name) {
                    tracing::error!(topic = name, error = %e, "cannot take a failed create out of the metadata");
                }
                return Err(e.into());
            }
        }
        tracing::info!(topic = name, partitions, id = %record.id, "created topic");
        Ok(record)
    }

    /// Replaces a topic's config overrides after validating them, and applies them to its
    /// partitions at once. Blocking (fsyncs metadata).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        let log_config = Arc::new(log_config_for(&self.config.log, &configs)?);
        let record = self.metadata.set_topic_configs(name, configs)?;
        for partition in 0..record.partitions {
            if let Some(log) = self.partition(name, partition) {
                log.set_config(log_config.clone());
            }
        }
        tracing::info!(topic = name, configs = ?record.configs, "topic configs changed");
        Ok(record)
    }

    /// Adds partitions to a topic (CreatePartitions); existing ones are untouched. Blocking.
    pub fn grow_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        let _lifecycle = self.lock_topic_lifecycle();
        let current = self
            .metadata
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let log_config = Arc::new(log_config_for(&self.config.log, &current.configs)?);
        let now_ms = self.clock.now_ms();
        let new_partitions = current.partitions..partitions.min(MAX_PARTITIONS_PER_TOPIC);
        self.logs
            .check_open_file_budget(new_partitions.len())
            .map_err(MetadataError::ResourceLimit)?;
        // Logs first: a crash in between leaves directories no topic owns yet, which a retry
        // reuses, rather than a topic whose partitions have no log.
        for partition in new_partitions.clone() {
            let opened = self.logs.open_partition(
                &TopicPartition::new(name, partition),
                current.id,
                Opening::New,
                log_config.clone(),
                now_ms,
            );
            if let Err(e) = opened {
                tracing::error!(topic = name, partition, error = %e, "cannot create a partition log; no partition added");
                for created in new_partitions.start..partition {
                    let tp = TopicPartition::new(name, created);
                    if let Err(e) = self.logs.remove_partition(&tp, current.id) {
                        tracing::error!(partition = %tp, error = %e, "cannot remove a partition of a failed create");
                    }
                }
                return Err(e.into());
            }
        }
        let record = self.metadata.grow_topic(name, partitions)?;
        tracing::info!(topic = name, partitions, "added partitions");
        Ok(record)
    }

    /// Deletes a topic and its data. Blocking.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicRecord>, MetadataError> {
        let _lifecycle = self.lock_topic_lifecycle();
        let record = self.metadata.delete_topic(name)?;
        for partition in 0..record.partitions {
            self.logs
                .remove_partition(&TopicPartition::new(name, partition), record.id)?;
        }
        if let Some(groups) = self.groups.get() {
            if !groups.remove_topic_offsets(name) {
                tracing::error!(topic = name, "the deleted topic's committed offsets could not be removed durably; a crash may bring them back");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(record)
    }

    /// A new producer id, unique across restarts. Blocking when a new block is reserved.
    pub fn next_producer_id(&self) -> Result<i64, MetadataError> {
        self.producer_ids
            .next(|block_end| self.metadata.reserve_producer_ids(block_end))
    }

    /// Starts the stop: long polls answer at once, and the cleaner and retention end at their
    /// next batch or partition boundary.
    pub fn begin_stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Turns true when the broker starts to stop.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// One cleaner pass over every compacted partition. Blocking; ends early when stopping.
    pub fn clean_logs(&self) {
        let now_ms = self.clock.now_ms();
        let mut throttle = crate::log::cleaner::Throttle::new(
            self.config.log_cleaner_io_max_bytes_per_second,
            self.stop_signal(),
        );
        for log in self.logs.all() {
            if throttle.stopping() {
                return;
            }
            if !log.config().compact {
                continue;
            }
            match crate::log::cleaner::clean(&log, now_ms, &mut throttle) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    tracing::info!(partition = %log.topic_partition, "compaction pass stopped: the broker is stopping");
                    return;
                }
                Err(e) => {
                    tracing::error!(partition = %log.topic_partition, error = %e, "compaction failed")
                }
            }
        }
    }

    /// Deletes expired segments everywhere. Blocking; ends early when stopping.
    pub fn apply_retention(&self) {
        let now_ms = self.clock.now_ms();
        for log in self.logs.all() {
            if self.is_stopping() {
                return;
            }
            if let Err(e) = log.apply_retention(now_ms) {
                tracing::error!(partition = %log.topic_partition, error = %e, "retention failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_topics_are_exempt_from_retention() -> anyhow::Result<()> {
        let defaults = LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: 1_000,
            retention_ms: 1_000,
            retention_bytes: 10,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            max_message_bytes: 1 << 20,
            fsync_acks_all: true,
            ..LogConfig::default()
        };
        let compact = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("retention.ms".to_string(), "5".to_string()),
        ]);
        let config = log_config_for(&defaults, &compact)?;
        assert_eq!((config.retention_ms, config.retention_bytes), (-1, -1));
        let both = BTreeMap::from([("cleanup.policy".to_string(), "compact,delete".to_string())]);
        assert_eq!(log_config_for(&defaults, &both)?.retention_ms, 1_000);
        Ok(())
    }
}
