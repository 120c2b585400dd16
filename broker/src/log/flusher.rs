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
        match self.queue.try_send(request) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(request)) => stopped(request),
            // A full queue pushes back on the caller, but never by blocking a runtime thread
            // (every connection on it would stall): on a runtime the wait for room moves to
            // the blocking pool; the caller still waits for its answer.
            Err(mpsc::TrySendError::Full(request)) => {
                let queue = self.queue.clone();
                let send = move || {
                    if let Err(mpsc::SendError(request)) = queue.send(request) {
                        stopped(request);
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn_blocking(send)),
                    Err(_) => send(),
                }
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

fn stopped(request: FlushRequest) {
    if let Some(done) = request.done {
        let _ = done.send(Err(Arc::new(std::io::Error::other("flusher stopped"))));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use kafka_protocol::records::Compression;

    use super::super::batch::tests::encode_batch;
    use super::super::partition::TopicPartition;
    use super::*;
    use crate::config::LogConfig;

    static ENTERED: AtomicBool = AtomicBool::new(false);
    static OPEN: AtomicBool = AtomicBool::new(false);

    /// An fsync that hangs until the test lets it go, as a stalled disk does.
    fn gated_sync(file: &std::fs::File) -> std::io::Result<()> {
        ENTERED.store(true, Ordering::Release);
        while !OPEN.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        file.sync_data()
    }

    /// A full flush queue never blocks the runtime thread that asks for a flush (issue 18's
    /// review: a blocking `SyncSender::send` on a reactor thread stalls every connection
    /// served by it). The caller still waits for its answer, and every request is served.
    #[test]
    fn a_full_queue_does_not_block_the_runtime() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let log = Arc::new(PartitionLog::open(
            dir.path(),
            TopicPartition::new("t", 0),
            Arc::new(LogConfig::default()),
            0,
            0,
        )?);
        log.append(&encode_batch(&[b"x"], Compression::None)?, 0)?;
        let flusher = Flusher::start_with(gated_sync)?;
        let first = flusher.flush(log.clone(), 1);
        while !ENTERED.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The flusher is stuck in an fsync: these fill its queue and go past it.
        let requests = MAX_QUEUED_FLUSH_REQUESTS + 100;
        let (asked, all_asked) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || -> Result<usize, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let receivers: Vec<_> = (0..requests)
                    .map(|_| flusher.flush(log.clone(), 1))
                    .collect();
                let _ = asked.send(());
                let mut served = 0;
                for receiver in receivers {
                    if matches!(receiver.await, Ok(Ok(()))) {
                        served += 1;
                    }
                }
                Ok(served)
            })
        });
        let in_time = all_asked.recv_timeout(Duration::from_secs(30)).is_ok();
        OPEN.store(true, Ordering::Release);
        assert!(
            in_time,
            "flush() blocked the runtime thread on a full queue"
        );
        assert_eq!(worker.join().map_err(|_| "worker panicked")??, requests);
        assert!(matches!(first.blocking_recv(), Ok(Ok(()))));
        Ok(())
    }
}
