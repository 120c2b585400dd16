//! Cluster metadata: this broker, its topics (name, stable id, partition count, config
//! overrides) and the producer-id block. Single node: persisted as one small JSON document
//! written atomically; handlers read an immutable snapshot (`MetadataImage`).
//!
//! Must not depend on `server`, `api` or `kafka_protocol::messages`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::files::write_atomically;

pub mod topic_configs;

const METADATA_FILE: &str = "strom-metadata.json";
const META_PROPERTIES: &str = "meta.properties";
/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;
/// A ceiling on partitions per topic, so one request cannot exhaust file handles.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid number of partitions {0}")]
    InvalidPartitions(i32),
    #[error("invalid replication factor {0}: this cluster has one broker")]
    InvalidReplicationFactor(i16),
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// Creating the partitions would take the broker past what it can keep open (file
    /// descriptors), and so past what it could open again at the next start.
    #[error("{0}")]
    ResourceLimit(String),
    #[error("metadata storage error: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file is corrupt: {0}")]
    Corrupt(String),
    /// The data directory was formatted for another cluster (Kafka refuses this too).
    #[error(
        "{path} says cluster.id={stored}, but this broker is configured with cluster id \
         {configured} (CLUSTER_ID or cluster.id): the data directory belongs to another cluster; \
         give it an empty directory or the cluster id it was formatted with"
    )]
    ClusterIdMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },
    /// Two entries of `log.dirs` were formatted for different clusters.
    #[error(
        "{path} says cluster.id={stored} but {other_path} says cluster.id={other}: the log \
         directories belong to different clusters"
    )]
    DirsOfTwoClusters {
        path: PathBuf,
        stored: String,
        other_path: PathBuf,
        other: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetadataFile {
    version: u32,
    topics: Vec<TopicRecord>,
    producer_id_block_end: i64,
}

/// An immutable view of the metadata at one instant.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, Arc<TopicRecord>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    pub producer_id_block_end: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicRecord>> {
        self.topics.get(name)
    }
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicRecord>> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }
    fn to_file(&self) -> MetadataFile {
        MetadataFile {
            version: 1,
            topics: self.topics.values().map(|t| (**t).clone()).collect(),
            producer_id_block_end: self.producer_id_block_end,
        }
    }
    fn from_file(file: MetadataFile) -> MetadataImage {
        let mut image = MetadataImage {
            producer_id_block_end: file.producer_id_block_end,
            ..MetadataImage::default()
        };
        for topic in file.topics {
            image.topic_names_by_id.insert(topic.id, topic.name.clone());
            image.topics.insert(topic.name.clone(), Arc::new(topic));
        }
        image
    }
}

/// Kafka's topic name rules (`Topic.validate`): 1..=249 characters of `[a-zA-Z0-9._-]`,
/// not `.` or `..`.
/// Kafka refuses a topic whose name equals an existing one once '.' and '_' are treated alike
/// (`Topic.hasCollision`): both map to the same metric names.
fn check_collision<V>(
    topics: &std::collections::BTreeMap<String, V>,
    name: &str,
) -> Result<(), MetadataError> {
    let normalized = name.replace('.', "_");
    if topics
        .keys()
        .any(|t| t != name && t.replace('.', "_") == normalized)
    {
        return Err(MetadataError::InvalidTopicName {
            name: name.to_string(),
            reason: "collides with an existing topic ('.' and '_' name the same metrics)",
        });
    }
    Ok(())
}

pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason| MetadataError::InvalidTopicName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("topic name is empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("topic name cannot be '.' or '..'"));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(invalid("topic name is longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "topic name contains characters other than ASCII alphanumerics, '.', '_' and '-'",
        ));
    }
    Ok(())
}

#[derive(Debug)]
pub struct MetadataStore {
    path: PathBuf,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises writers so each change is persisted before the next one starts.
    write_lock: Mutex<()>,
    pub cluster_id: String,
    pub node_id: i32,
}

impl MetadataStore {
    /// Loads the metadata from the first of `log_dirs`. Every directory gets a
    /// `meta.properties` (cluster id, node id, its own directory id) as in Kafka: written on
    /// first start with `cluster_id` when given (`CLUSTER_ID`, as `kafka-storage format` takes
    /// it), else the id a formatted directory already holds, else a fresh one; directories
    /// formatted for another cluster or node are refused.
    pub fn open(
        log_dirs: &[PathBuf],
        node_id: i32,
        cluster_id: Option<&str>,
    ) -> Result<MetadataStore, MetadataError> {
        let log_dir = log_dirs
            .first()
            .ok_or_else(|| MetadataError::Corrupt("no log directory".into()))?;
        for dir in log_dirs {
            std::fs::create_dir_all(dir)?;
        }
        let cluster_id = load_or_create_meta_properties(log_dirs, node_id, cluster_id)?;
        let path = log_dir.join(METADATA_FILE);
        let image = match std::fs::read(&path) {
            Ok(bytes) => MetadataImage::from_file(
                serde_json::from_slice(&bytes)
                    .map_err(|e| MetadataError::Corrupt(e.to_string()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataImage::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(MetadataStore {
            path,
            image: RwLock::new(Arc::new(image)),
            write_lock: Mutex::new(()),
            cluster_id,
            node_id,
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `change` to a copy of the image, persists it, then publishes it.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut MetadataImage) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.image()).clone();
        let result = change(&mut next)?;
        let bytes = serde_json::to_vec_pretty(&next.to_file())
            .map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        write_atomically(&self.path, &bytes)?;
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(result)
    }

    /// Checks a new topic's name and partition count against Kafka's rules and this
    /// broker's limits, without creating anything.
    pub fn validate_new_topic(&self, name: &str, partitions: i32) -> Result<(), MetadataError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(MetadataError::InvalidPartitions(partitions));
        }
        let image = self.image();
        if image.topics.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        check_collision(&image.topics, name)
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        self.validate_new_topic(name, partitions)?;
        self.update(|image| {
            if image.topics.contains_key(name) {
                return Err(MetadataError::TopicExists(name.to_string()));
            }
            check_collision(&image.topics, name)?;
            let record = Arc::new(TopicRecord {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions,
                configs,
            });
            image.topic_names_by_id.insert(record.id, name.to_string());
            image.topics.insert(name.to_string(), record.clone());
            Ok(record)
        })
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicRecord>, MetadataError> {
        self.update(|image| {
            let record = image
                .topics
                .remove(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            image.topic_names_by_id.remove(&record.id);
            Ok(record)
        })
    }

    /// Replaces a topic's config overrides.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        self.update(|image| {
            let current = image
                .topics
                .get(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            let record = Arc::new(TopicRecord {
                configs,
                ..(**current).clone()
            });
            image.topics.insert(name.to_string(), record.clone());
            Ok(record)
        })
    }

    /// Grows a topic to `partitions` (CreatePartitions); shrinking is refused.
    pub fn grow_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<TopicRecord>, MetadataError> {
        self.update(|image| {
            let current = image
                .topics
                .get(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            if partitions <= current.partitions || partitions > MAX_PARTITIONS_PER_TOPIC {
                return Err(MetadataError::InvalidPartitions(partitions));
            }
            let record = Arc::new(TopicRecord {
                partitions,
                ..(**current).clone()
            });
            image.topics.insert(name.to_string(), record.clone());
            Ok(record)
        })
    }

    /// Persists a new end for the producer-id block.
    pub fn reserve_producer_ids(&self, block_end: i64) -> Result<(), MetadataError> {
        self.update(|image| {
            image.producer_id_block_end = block_end;
            Ok(())
        })
    }
}

/// The cluster id `meta.properties` in `dir` holds, or `None` when there is no such file; a
/// node id other than `node_id` is refused.
fn read_meta_properties(dir: &Path, node_id: i32) -> Result<Option<String>, MetadataError> {
    let path = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let cluster_id = value("cluster.id")
        .ok_or_else(|| MetadataError::Corrupt(format!("{} has no cluster.id", path.display())))?;
    if let Some(stored) = value("node.id") {
        if stored != node_id.to_string() {
            return Err(MetadataError::Corrupt(format!(
                "{} says node.id={stored} but the config says {node_id}",
                path.display()
            )));
        }
    }
    Ok(Some(cluster_id))
}

fn load_or_create_meta_properties(
    dirs: &[PathBuf],
    node_id: i32,
    configured: Option<&str>,
) -> Result<String, MetadataError> {
    let mut found: Option<(PathBuf, String)> = None;
    let mut unformatted = Vec::new();
    for dir in dirs {
        let Some(stored) = read_meta_properties(dir, node_id)? else {
            unformatted.push(dir);
            continue;
        };
        let path = dir.join(META_PROPERTIES);
        if let Some(configured) = configured.filter(|c| *c != stored) {
            return Err(MetadataError::ClusterIdMismatch {
                path,
                stored,
                configured: configured.to_string(),
            });
        }
        match &found {
            Some((other_path, other)) if *other != stored => {
                return Err(MetadataError::DirsOfTwoClusters {
                    path,
                    stored,
                    other_path: other_path.clone(),
                    other: other.clone(),
                })
            }
            Some(_) => {}
            None => found = Some((path, stored)),
        }
    }
    let cluster_id = match (found, configured) {
        (Some((_, id)), _) => id,
        (None, Some(configured)) => configured.to_string(),
        (None, None) => new_cluster_id(),
    };
    for dir in unformatted {
        let text = format!(
            "#\n#Written by strom\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\ndirectory.id={}\n",
            base64url(Uuid::new_v4().as_bytes())
        );
        write_atomically(&dir.join(META_PROPERTIES), text.as_bytes())?;
    }
    Ok(cluster_id)
}

/// Kafka cluster ids are a random UUID in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    base64url(Uuid::new_v4().as_bytes())
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn topic_names() -> TestResult {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        Ok(())
    }

    #[test]
    fn a_configured_cluster_id_is_written_and_a_different_one_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = MetadataStore::open(
            &[dir.path().to_path_buf()],
            1,
            Some("MkU3OEVBNTcwNTJENDM2Qk"),
        )?;
        assert_eq!(store.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
        let text = std::fs::read_to_string(dir.path().join(META_PROPERTIES))?;
        assert!(
            text.contains("cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n"),
            "{text}"
        );
        drop(store);
        assert_eq!(
            MetadataStore::open(&[dir.path().to_path_buf()], 1, None)?.cluster_id,
            "MkU3OEVBNTcwNTJENDM2Qk"
        );
        match MetadataStore::open(
            &[dir.path().to_path_buf()],
            1,
            Some("abcdefghijklmnopqrstuv"),
        ) {
            Err(e @ MetadataError::ClusterIdMismatch { .. }) => {
                assert!(e.to_string().contains("MkU3OEVBNTcwNTJENDM2Qk"), "{e}")
            }
            other => panic!("expected a cluster id mismatch, got {other:?}"),
        }
        Ok(())
    }

    /// Every log directory is stamped with the same cluster and node, each with its own
    /// directory id; a directory added later joins the cluster the others belong to, and
    /// directories of two clusters are refused.
    #[test]
    fn every_log_dir_gets_meta_properties() -> TestResult {
        let root = tempfile::tempdir()?;
        let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|d| root.path().join(d)).collect();
        let cluster_id = MetadataStore::open(&dirs, 1, None)?.cluster_id;
        let read = |dir: &Path| std::fs::read_to_string(dir.join(META_PROPERTIES));
        let directory_id = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("directory.id="))
                .map(str::to_string)
        };
        let (a, b) = (read(&dirs[0])?, read(&dirs[1])?);
        for text in [&a, &b] {
            assert!(
                text.contains(&format!("cluster.id={cluster_id}\n")),
                "{text}"
            );
            assert!(text.contains("node.id=1\n"), "{text}");
        }
        assert_ne!(directory_id(&a), directory_id(&b));
        // A third directory added later is stamped with the same cluster id.
        let mut three = dirs.clone();
        three.push(root.path().join("c"));
        assert_eq!(MetadataStore::open(&three, 1, None)?.cluster_id, cluster_id);
        assert!(read(&three[2])?.contains(&format!("cluster.id={cluster_id}\n")));
        // One directory formatted for another cluster: refused, naming both files.
        let other = tempfile::tempdir()?;
        MetadataStore::open(
            &[other.path().to_path_buf()],
            1,
            Some("abcdefghijklmnopqrstuv"),
        )?;
        let mixed = vec![dirs[0].clone(), other.path().to_path_buf()];
        match MetadataStore::open(&mixed, 1, None) {
            Err(e @ MetadataError::DirsOfTwoClusters { .. }) => {
                assert!(e.to_string().contains("abcdefghijklmnopqrstuv"), "{e}");
                assert!(e.to_string().contains(&cluster_id), "{e}");
            }
            other => panic!("expected directories of two clusters, got {other:?}"),
        }
        // A node id of another broker in any directory is refused.
        assert!(MetadataStore::open(&three, 2, None).is_err());
        Ok(())
    }

    #[test]
    fn persists_topics_and_cluster_id() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = MetadataStore::open(&[dir.path().to_path_buf()], 1, None)?;
        assert_eq!(store.cluster_id.len(), 22);
        let topic = store.create_topic("t", 3, BTreeMap::new())?;
        assert!(matches!(
            store.create_topic("t", 1, BTreeMap::new()),
            Err(MetadataError::TopicExists(_))
        ));
        let reopened = MetadataStore::open(&[dir.path().to_path_buf()], 1, None)?;
        assert_eq!(reopened.cluster_id, store.cluster_id);
        assert_eq!(reopened.image().topic("t").ok_or("no topic")?.id, topic.id);
        assert!(MetadataStore::open(&[dir.path().to_path_buf()], 2, None).is_err());
        reopened.delete_topic("t")?;
        assert!(reopened.image().topic_by_id(&topic.id).is_none());
        Ok(())
    }
}
