//! Group commit: one thread fsyncs partitions for every waiting acks=-1 producer at once.
//!
//! Requests queue up while an fsync runs; the next round drains the queue and syncs each dirty
//! partition once, so many producers share one fsync. The thread owns all fsync work, so the
//! async reactor never blocks on the disk.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::partition::PartitionLog;

/// Maximum number of queued flush requests before producers are pushed back.
pub const MAX_QUEUED_FLUSH_REQUESTS: usize = 65_536;

pub type FlushResult = Result<(), Arc<std::io::Error>>;

/// How a file is made durable: `fdatasync` (`File::sync_data`); tests inject failures here.
pub type SyncFn = fn(&std::fs::File) -> std::io::Result<()>;

struct FlushRequest {
    log: Arc<PartitionLog>,
    up_to: i64,
    done: Option<oneshot::Sender<FlushResult>>,
}

#[derive(Clone)]
pub struct Flusher {
    queue: mpsc::SyncSender<FlushRequest>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flusher")
    }
}

impl Flusher {
    pub fn start() -> std::io::Result<Flusher> {
        Self::start_with(std::fs::File::sync_data)
    }

    /// A flusher that makes files durable with `sync` (fault injection in tests).
    pub fn start_with(sync: SyncFn) -> std::io::Result<Flusher> {
        let (queue, requests) = mpsc::sync_channel(MAX_QUEUED_FLUSH_REQUESTS);
        std::thread::Builder::new()
            .name("strom-flusher".into())
            .spawn(move || run(requests, sync))?;
        Ok(Flusher { queue })
    }

    /// Resolves once every offset below `up_to` in `log` is on stable storage.
    pub fn flush(&self, log: Arc<PartitionLog>, up_to: i64) -> oneshot::Receiver<FlushResult> {
        let (done, receiver) = oneshot::channel();
        if log.flushed_offset() >= up_to {
            let _ = done.send(Ok(()));
            return receiver;
        }
        let request = FlushRequest {
            log,
            up_to,
            done: Some(done),
        };
        if let Err(mpsc::SendError(request)) = self.queue.send(request) {
            if let Some(done) = request.done {
                let _ = done.send(Err(Arc::new(std::io::Error::other("flusher stopped"))));
            }
        }
        receiver
    }

    /// Asks for a flush without waiting for it (flush-by-count policy).
    pub fn flush_in_background(&self, log: Arc<PartitionLog>, up_to: i64) {
        let _ = self.queue.try_send(FlushRequest {
            log,
            up_to,
            done: None,
        });
    }
}

fn run(requests: mpsc::Receiver<FlushRequest>, sync: SyncFn) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        let mut results: HashMap<*const PartitionLog, FlushResult> = HashMap::new();
        for request in &batch {
            let key = Arc::as_ptr(&request.log);
            if results.contains_key(&key) {
                continue;
            }
            results.insert(key, flush_log(&request.log, sync));
        }
        for request in batch {
            let result = results
                .get(&Arc::as_ptr(&request.log))
                .cloned()
                .unwrap_or(Ok(()));
            let result = match result {
                Ok(()) if request.log.flushed_offset() < request.up_to => Err(Arc::new(
                    std::io::Error::other("partition was truncated or deleted before its flush"),
                )),
                other => other,
            };
            if let Some(done) = request.done {
                let _ = done.send(result);
            }
        }
    }
}

fn flush_log(log: &PartitionLog, sync: SyncFn) -> FlushResult {
    let work = match log.flush_work() {
        Ok(Some(work)) => work,
        Ok(None) => return Ok(()),
        Err(reason) => return Err(Arc::new(std::io::Error::other(reason))),
    };
    for file in &work.files {
        if let Err(e) = sync(file) {
            log.flush_failed(work, &e);
            return Err(Arc::new(e));
        }
    }
    if let Some(dir) = &work.dir {
        if let Err(e) = std::fs::File::open(dir).and_then(|d| sync(&d)) {
            log.flush_failed(work, &e);
            return Err(Arc::new(e));
        }
    }
    log.mark_flushed(work.up_to);
    Ok(())
}
