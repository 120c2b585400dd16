//! Kafka APIs: one module per API family. A handler decodes its request, calls the domain
//! services and returns the encoded response body.
//!
//! `SUPPORTED_APIS` is the one table of what the broker serves: ApiVersions advertises it and
//! the dispatcher routes by it, so they cannot disagree.
//!
//! The request lifecycle, as in Kafka: a request that has been read is handled, and the
//! requests of one connection take effect in the order they were sent, whether or not the
//! client stays to read the answers. A handler says how through its `Reply`:
//! - `Now`: the effect (if any) is done and the answer is ready;
//! - `Wait`: the effect is done (an append, a commit, a join registered with the coordinator);
//!   the future only *waits* (an fsync, a long poll, a rebalance) and is dropped when the client
//!   leaves;
//! - `Apply`: the effect needs blocking work (a metadata write, file deletion): the connection
//!   runs the future in a task of its own, to completion whether or not the client stays, and
//!   dispatches nothing else from that connection until it has finished.
//!
//! So a future returned as `Wait` must not change state; anything that does belongs in the
//! handler body or in an `Apply` future.

pub(crate) mod admin;
pub(crate) mod api_versions;
pub(crate) mod configs;
pub(crate) mod errors;
pub(crate) mod fetch;
pub(crate) mod groups;
pub(crate) mod legacy;
pub(crate) mod list_offsets;
pub(crate) mod log_admin;
pub(crate) mod metadata;
pub(crate) mod produce;
pub(crate) mod producer_id;
pub(crate) mod txn;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use crate::broker::Broker;

/// Why a request could not be answered at all; the connection is closed with a log line.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode the response: {0}")]
    Encode(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

pub type ResponseBody = Result<Bytes, RequestError>;
pub type Deferred = Pin<Box<dyn Future<Output = ResponseBody> + Send>>;

/// A handler's answer; see the module header for what each kind may do.
pub enum Reply {
    /// Answered at dispatch.
    Now(ResponseBody),
    /// Effect done at dispatch; the future only waits and is abandoned if the client leaves.
    Wait(Deferred),
    /// An effect that needs blocking work: run to completion in its own task, before the next
    /// request of the connection is dispatched.
    Apply(Deferred),
    /// acks=0 produce: the client expects no response.
    Nothing,
}

/// What a handler knows about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub connection_id: u64,
    pub peer: std::net::SocketAddr,
    /// The name of the listener the connection arrived on (`PLAINTEXT`, `PLAINTEXT_HOST`, ...).
    pub listener: Arc<str>,
}

impl RequestContext {
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// The client's address as Kafka shows it in group descriptions (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip().to_canonical())
    }
}

pub type Handler = fn(&Arc<Broker>, &RequestContext, Bytes) -> Reply;

/// Runs `spec`'s handler, counting the request and timing it until its response is ready
/// (Kafka's RequestsPerSec and TotalTimeMs, without the time spent queued for the socket).
pub fn call(spec: &ApiSpec, broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let labels = crate::metrics::RequestLabels {
        request: format!("{:?}", spec.key),
    };
    broker.metrics.requests.get_or_create(&labels).inc();
    // Wall time for a metric only; nothing decides on it.
    let started = std::time::Instant::now();
    let observe = move |broker: &Broker, labels: &crate::metrics::RequestLabels| {
        broker
            .metrics
            .request_time_ms
            .get_or_create(labels)
            .observe(started.elapsed().as_secs_f64() * 1000.0);
    };
    let timed = |deferred: Deferred, broker: &Arc<Broker>| -> Deferred {
        let broker = broker.clone();
        Box::pin(async move {
            let body = deferred.await;
            observe(&broker, &labels);
            body
        })
    };
    match (spec.handler)(broker, ctx, body) {
        Reply::Wait(deferred) => Reply::Wait(timed(deferred, broker)),
        Reply::Apply(deferred) => Reply::Apply(timed(deferred, broker)),
        reply => {
            drop(timed);
            let labels = crate::metrics::RequestLabels {
                request: format!("{:?}", spec.key),
            };
            broker
                .metrics
                .request_time_ms
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64() * 1000.0);
            reply
        }
    }
}

pub struct ApiSpec {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub handler: Handler,
}

/// Every API the broker serves, at the versions it serves fully.
pub const SUPPORTED_APIS: &[ApiSpec] = &[
    // Produce v0-2 and Fetch v0-3 carry message formats v0/v1, converted at the edge
    // (log/message_set.rs); Kafka 3.x served them, Kafka 4 does not (KIP-896).
    ApiSpec {
        key: ApiKey::Produce,
        min_version: 0,
        max_version: 11,
        handler: produce::handle,
    },
    ApiSpec {
        key: ApiKey::Fetch,
        min_version: 0,
        max_version: 16,
        handler: fetch::handle,
    },
    ApiSpec {
        key: ApiKey::ListOffsets,
        min_version: 0,
        max_version: 8,
        handler: list_offsets::handle,
    },
    ApiSpec {
        key: ApiKey::Metadata,
        min_version: 0,
        max_version: 12,
        handler: metadata::handle,
    },
    ApiSpec {
        key: ApiKey::ApiVersions,
        min_version: 0,
        max_version: 4,
        handler: api_versions::handle,
    },
    ApiSpec {
        key: ApiKey::CreateTopics,
        min_version: 0,
        max_version: 7,
        handler: admin::create_topics,
    },
    ApiSpec {
        key: ApiKey::DeleteTopics,
        min_version: 1,
        max_version: 6,
        handler: admin::delete_topics,
    },
    ApiSpec {
        key: ApiKey::InitProducerId,
        min_version: 0,
        max_version: 5,
        handler: producer_id::handle,
    },
    // The client forms of the transaction APIs: AddPartitionsToTxn v4+ is broker-to-broker,
    // EndTxn v5 needs transaction version 2 (not advertised as a feature).
    ApiSpec {
        key: ApiKey::AddPartitionsToTxn,
        min_version: 0,
        max_version: 3,
        handler: txn::add_partitions_to_txn,
    },
    ApiSpec {
        key: ApiKey::AddOffsetsToTxn,
        min_version: 0,
        max_version: 4,
        handler: txn::add_offsets_to_txn,
    },
    ApiSpec {
        key: ApiKey::EndTxn,
        min_version: 0,
        max_version: 4,
        handler: txn::end_txn,
    },
    ApiSpec {
        key: ApiKey::TxnOffsetCommit,
        min_version: 0,
        max_version: 4,
        handler: txn::txn_offset_commit,
    },
    // Kafka 4 serves v1 only (KIP-896).
    ApiSpec {
        key: ApiKey::WriteTxnMarkers,
        min_version: 1,
        max_version: 1,
        handler: txn::write_txn_markers,
    },
    ApiSpec {
        key: ApiKey::DescribeTransactions,
        min_version: 0,
        max_version: 0,
        handler: txn::describe_transactions,
    },
    ApiSpec {
        key: ApiKey::ListTransactions,
        min_version: 0,
        max_version: 1,
        handler: txn::list_transactions,
    },
    ApiSpec {
        key: ApiKey::FindCoordinator,
        min_version: 0,
        max_version: 5,
        handler: groups::find_coordinator,
    },
    ApiSpec {
        key: ApiKey::JoinGroup,
        min_version: 0,
        max_version: 9,
        handler: groups::join_group,
    },
    ApiSpec {
        key: ApiKey::SyncGroup,
        min_version: 0,
        max_version: 5,
        handler: groups::sync_group,
    },
    ApiSpec {
        key: ApiKey::Heartbeat,
        min_version: 0,
        max_version: 4,
        handler: groups::heartbeat,
    },
    ApiSpec {
        key: ApiKey::LeaveGroup,
        min_version: 0,
        max_version: 5,
        handler: groups::leave_group,
    },
    ApiSpec {
        key: ApiKey::OffsetCommit,
        min_version: 0,
        max_version: 9,
        handler: groups::offset_commit,
    },
    ApiSpec {
        key: ApiKey::OffsetFetch,
        min_version: 1,
        max_version: 9,
        handler: groups::offset_fetch,
    },
    ApiSpec {
        key: ApiKey::DescribeGroups,
        min_version: 0,
        max_version: 5,
        handler: groups::describe_groups,
    },
    ApiSpec {
        key: ApiKey::ListGroups,
        min_version: 0,
        max_version: 5,
        handler: groups::list_groups,
    },
    ApiSpec {
        key: ApiKey::DeleteGroups,
        min_version: 0,
        max_version: 2,
        handler: groups::delete_groups,
    },
    ApiSpec {
        key: ApiKey::OffsetDelete,
        min_version: 0,
        max_version: 0,
        handler: groups::offset_delete,
    },
    ApiSpec {
        key: ApiKey::DescribeConfigs,
        min_version: 0,
        max_version: 4,
        handler: configs::describe_configs,
    },
    ApiSpec {
        key: ApiKey::AlterConfigs,
        min_version: 0,
        max_version: 2,
        handler: configs::alter_configs,
    },
    ApiSpec {
        key: ApiKey::IncrementalAlterConfigs,
        min_version: 0,
        max_version: 1,
        handler: configs::incremental_alter_configs,
    },
    ApiSpec {
        key: ApiKey::CreatePartitions,
        min_version: 0,
        max_version: 3,
        handler: admin::create_partitions,
    },
    ApiSpec {
        key: ApiKey::DescribeCluster,
        min_version: 0,
        max_version: 2,
        handler: admin::describe_cluster,
    },
    ApiSpec {
        key: ApiKey::DeleteRecords,
        min_version: 0,
        max_version: 2,
        handler: log_admin::delete_records,
    },
    ApiSpec {
        key: ApiKey::DescribeLogDirs,
        min_version: 1,
        max_version: 4,
        handler: log_admin::describe_log_dirs,
    },
    ApiSpec {
        key: ApiKey::DescribeProducers,
        min_version: 0,
        max_version: 0,
        handler: log_admin::describe_producers,
    },
    ApiSpec {
        key: ApiKey::OffsetForLeaderEpoch,
        min_version: 2,
        max_version: 4,
        handler: list_offsets::offset_for_leader_epoch,
    },
    ApiSpec {
        key: ApiKey::DescribeTopicPartitions,
        min_version: 0,
        max_version: 0,
        handler: metadata::describe_topic_partitions,
    },
];

pub fn lookup(api_key: i16) -> Option<&'static ApiSpec> {
    SUPPORTED_APIS.iter().find(|s| s.key as i16 == api_key)
}

pub fn decode<T: Decodable>(ctx: &RequestContext, mut body: Bytes) -> Result<T, RequestError> {
    T::decode(&mut body, ctx.version).map_err(|e| RequestError::Decode {
        api: ctx.api_key,
        version: ctx.version,
        reason: e.to_string(),
    })
}

pub fn encode<T: Encodable>(response: &T, version: i16) -> ResponseBody {
    let size = response
        .compute_size(version)
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(size);
    response
        .encode(&mut buf, version)
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Runs blocking work (metadata writes, file deletion) off the reactor.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_crate_decodes() {
        for spec in SUPPORTED_APIS {
            let crate_range = spec.key.valid_versions();
            assert!(spec.min_version <= spec.max_version, "{:?}", spec.key);
            assert!(spec.max_version <= crate_range.max, "{:?}", spec.key);
            // OffsetCommit v0-1 are served by hand (groups.rs), as are Produce v0-2, Fetch v0-3,
            // ListOffsets v0, DescribeConfigs v0 and CreateTopics v0-1 (legacy.rs).
            if !matches!(
                spec.key,
                ApiKey::Produce
                    | ApiKey::Fetch
                    | ApiKey::OffsetCommit
                    | ApiKey::ListOffsets
                    | ApiKey::DescribeConfigs
                    | ApiKey::CreateTopics
            ) {
                assert!(spec.min_version >= crate_range.min, "{:?}", spec.key);
            }
        }
    }

    #[test]
    fn no_duplicate_keys() {
        for (i, a) in SUPPORTED_APIS.iter().enumerate() {
            for b in &SUPPORTED_APIS[i + 1..] {
                assert_ne!(a.key, b.key);
            }
        }
    }
}
