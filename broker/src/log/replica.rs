//! The replica layer: what an append must wait for before it is acknowledged, and how a reader
//! waits for data. Handlers and coordinators ask it "is this write committed?" and "wake me on
//! new data"; they do not drive the flusher themselves.
//!
//! Today a broker holds the only replica of each partition, so a write is committed when it is
//! on stable storage (acks=all with `strom.acks.all.fsync`, the default), and the high
//! watermark is the log end offset. With replication (Kafka's ISR protocol) the followers'
//! fetch positions will advance the high watermark here, and `committed` will wait for it.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::flusher::{FlushResult, Flusher};
use super::partition::{AppendInfo, PartitionLog};

/// How many replicas must have a write before it is acknowledged (the producer's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0 and acks=1: the leader's append.
    Leader,
    /// acks=-1 (all): every in-sync replica, each with the write durable.
    All,
}

impl Acks {
    pub fn from_request(acks: i16) -> Acks {
        if acks == -1 {
            Acks::All
        } else {
            Acks::Leader
        }
    }
}

/// A write's acknowledgement, once its replicas have it.
#[must_use]
#[derive(Debug)]
pub struct Pending(Option<oneshot::Receiver<FlushResult>>);

impl Pending {
    /// Acknowledged already.
    pub fn done() -> Pending {
        Pending(None)
    }

    /// Whether nothing is left to wait for.
    pub fn is_done(&self) -> bool {
        self.0.is_none()
    }

    /// `true` once the write is committed; `false` when it cannot be (a failed sync).
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some(receiver) => matches!(receiver.await, Ok(Ok(()))),
        }
    }

    /// As `wait`, for a thread outside the runtime.
    pub fn wait_blocking(self) -> bool {
        match self.0 {
            None => true,
            Some(receiver) => matches!(receiver.blocking_recv(), Ok(Ok(()))),
        }
    }
}

/// The broker's replica manager.
#[derive(Debug, Clone)]
pub struct Replicas {
    flusher: Flusher,
}

impl Replicas {
    pub fn new(flusher: Flusher) -> Replicas {
        Replicas { flusher }
    }

    /// Replicas whose files are made durable by `sync` (fault injection in tests).
    #[cfg(test)]
    pub fn start_with(sync: super::flusher::SyncFn) -> std::io::Result<Replicas> {
        Ok(Replicas::new(Flusher::start_with(sync)?))
    }

    /// After `info` was appended to `log`: what the producer's `acks` waits for, started now.
    /// acks=all waits for the sync (when the partition syncs what acks=all acknowledges); any
    /// other write only asks for a sync in the background when the flush policy
    /// (`flush.messages`) says one is due.
    pub fn acknowledge(&self, log: &Arc<PartitionLog>, info: &AppendInfo, acks: Acks) -> Pending {
        match acks {
            Acks::All if info.fsync_acks_all => self.committed(log.clone(), info.next_offset),
            _ => {
                if info.flush_due {
                    self.flusher
                        .flush_in_background(log.clone(), info.next_offset);
                }
                Pending::done()
            }
        }
    }

    /// Waits until every offset below `up_to` in `log` is committed: the coordinators' own
    /// writes (offsets, transaction state, markers), which are always acks=all.
    pub fn committed(&self, log: Arc<PartitionLog>, up_to: i64) -> Pending {
        Pending(Some(self.flusher.flush(log, up_to)))
    }

    /// Asks for a sync of `log` below `up_to` without waiting (`flush.ms`).
    pub fn flush_in_background(&self, log: Arc<PartitionLog>, up_to: i64) {
        self.flusher.flush_in_background(log, up_to);
    }
}

/// A reader's wait for new data in any of a set of partitions (a fetch's long poll).
#[derive(Debug)]
pub struct DataWatch {
    receivers: Vec<watch::Receiver<i64>>,
}

impl DataWatch {
    /// Watches `logs` from now on: appends made after this call wake the watch.
    pub fn new<'a>(logs: impl Iterator<Item = &'a Arc<PartitionLog>>) -> DataWatch {
        DataWatch {
            receivers: logs.map(|l| l.subscribe()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Resolves when one of the partitions has new data (`true`), or at `deadline` or when
    /// `stopping` turns true (`false`).
    pub async fn changed_before(
        &mut self,
        deadline: tokio::time::Instant,
        stopping: &mut watch::Receiver<bool>,
    ) -> bool {
        if self.receivers.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {},
                _ = stopping.wait_for(|stop| *stop) => {},
            }
            return false;
        }
        let changed = futures_util::future::select_all(
            self.receivers.iter_mut().map(|r| Box::pin(r.changed())),
        );
        tokio::select! {
            _ = changed => true,
            _ = tokio::time::sleep_until(deadline) => false,
            _ = stopping.wait_for(|stop| *stop) => false,
        }
    }
}
