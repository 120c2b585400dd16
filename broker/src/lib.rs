//! Strom: a broker that speaks the Apache Kafka wire protocol.
//!
//! Rooms (see docs/ARCHITECTURE.md): `server` -> `api` -> {`log`, `metadata`, `txn`}.
//! `broker` holds the shared state handlers work on; `config` and `clock` are leaves.

pub mod api;
#[cfg(test)]
mod architecture_tests;
pub mod broker;
pub mod clock;
pub(crate) mod codec;
pub mod config;
pub(crate) mod files;
pub(crate) mod group;
pub mod log;
pub(crate) mod metadata;
pub(crate) mod metrics;
pub mod server;
pub mod test_support;
pub(crate) mod txn;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use broker::Broker;
pub use config::{BrokerConfig, Properties};

/// How often the group coordinator's deadlines (sessions, rebalances) are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Runs the broker until `shutdown` resolves: binds the listeners, serves, runs retention and
/// checkpoints, and on shutdown flushes everything and marks the shutdown clean.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    for key in &config.unknown {
        tracing::warn!(property = key, "unknown property ignored");
    }
    if !config.not_applicable.is_empty() {
        tracing::info!(
            variables = %config.not_applicable.join(", "),
            "JVM settings do not apply to Strom (no JVM); ignored"
        );
    }
    if config.listeners.derived_from_advertised {
        tracing::info!(
            "listeners is not set: binding every advertised.listeners port on all interfaces, \
             as Kafka's docker images do"
        );
    }
    let clock: Arc<dyn clock::Clock> = Arc::new(clock::SystemClock);
    let opening = config.clone();
    let broker =
        Arc::new(tokio::task::spawn_blocking(move || Broker::open(opening, clock)).await??);
    if let Some(groups) = broker.group_coordinator().cloned() {
        // Shards answer COORDINATOR_LOAD_IN_PROGRESS until their part is replayed.
        tokio::task::spawn_blocking(move || groups.load());
    }
    {
        // The transaction coordinator, if `__transaction_state` exists: replayed, and the
        // transactions it finds half-ended completed.
        let b = broker.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = b.ensure_txn_coordinator(false) {
                tracing::error!(error = %e, "cannot load the transaction coordinator");
            }
        });
    }
    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in &config.listeners.listeners {
        let bound = server::bind(listener).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!(
                    "cannot listen on {listener} (listeners): the address is in use; is another \
                     broker running? Pick another port with --override listeners=..."
                )
            } else {
                anyhow::anyhow!("cannot listen on {listener} (listeners): {e}")
            }
        })?;
        let local = bound.local_addr()?;
        let endpoint = config.listeners.endpoint_for(listener, local.port());
        broker.register_endpoint(&listener.name, endpoint.clone());
        tracing::info!(
            listener = %format!("{}://{}", listener.name, local),
            advertised = %format!("{}:{}", endpoint.host, endpoint.port),
            "listening"
        );
        servers.push(tokio::spawn(server::serve(
            bound,
            Arc::from(listener.name.as_str()),
            broker.clone(),
            stopped.clone(),
        )));
    }
    if let Some(http) = &config.http_listener {
        let bound = server::bind(http).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!(
                    "cannot serve metrics on {}:{} (strom.http.listener): the address is in \
                     use; is another broker running? Set strom.http.listener to another \
                     http://host:port, or to an empty value to turn it off",
                    http.host,
                    http.port
                )
            } else {
                anyhow::anyhow!(
                    "cannot serve metrics on {}:{} (strom.http.listener): {e}",
                    http.host,
                    http.port
                )
            }
        })?;
        tracing::info!(
            http = %format!("http://{}", bound.local_addr()?),
            "serving /metrics and /health"
        );
        servers.push(tokio::spawn(server::http::serve(
            bound,
            broker.clone(),
            stopped.clone(),
        )));
    }
    broker.metrics.broker_state.set(3);
    let log_dirs: Vec<String> = config
        .log_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    tracing::info!(log_dirs = %log_dirs.join(","), "strom is ready");
    let retention = spawn_every(
        Duration::from_millis(config.log_retention_check_interval_ms),
        stopped.clone(),
        broker.clone(),
        |b| b.apply_retention(),
    );
    let cleaner = config.log_cleaner_enable.then(|| {
        spawn_every(
            Duration::from_millis(config.log_cleaner_backoff_ms),
            stopped.clone(),
            broker.clone(),
            |b| b.clean_logs(),
        )
    });
    let checkpoint = spawn_every(
        Duration::from_millis(config.log_flush_offset_checkpoint_interval_ms),
        stopped.clone(),
        broker.clone(),
        |b| {
            if let Err(e) = b.logs.write_checkpoints() {
                tracing::error!(error = %e, "cannot write the offset checkpoints");
            }
        },
    );
    let time_flushes = spawn_every(
        Duration::from_millis(config.log_flush_scheduler_interval_ms),
        stopped.clone(),
        broker.clone(),
        |b| b.flush_due_logs(),
    );
    let group_timers = spawn_every(GROUP_TICK, stopped.clone(), broker.clone(), |b| {
        if let Some(groups) = b.group_coordinator() {
            groups.tick();
        }
    });
    let txn_timers = spawn_every(
        Duration::from_millis(config.txn.abort_timed_out_interval_ms.max(1) as u64),
        stopped.clone(),
        broker.clone(),
        |b| {
            if let Some(txns) = b.txn_coordinator() {
                txns.expire();
            }
        },
    );
    shutdown.await;
    // The stop sequence (docs/ARCHITECTURE.md): stop accepting; let every connection finish
    // the requests it read and write the answers owed, within `SHUTDOWN_DRAIN` (long polls
    // answer at once); meanwhile the cleaner and retention end at their next batch; then
    // flush every partition and mark the shutdown clean.
    tracing::info!("shutting down");
    let started = std::time::Instant::now();
    broker.begin_stop();
    let _ = stop.send(true);
    for server in servers {
        let _ = server.await;
    }
    let _ = retention.await;
    let _ = checkpoint.await;
    if let Some(cleaner) = cleaner {
        let _ = cleaner.await;
    }
    let _ = group_timers.await;
    let _ = txn_timers.await;
    let _ = time_flushes.await;
    tokio::task::spawn_blocking(move || broker.logs.shutdown()).await??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
    Ok(())
}

fn spawn_every(
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    broker: Arc<Broker>,
    work: fn(&Broker),
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => return,
            }
            let broker = broker.clone();
            let _ = tokio::task::spawn_blocking(move || work(&broker)).await;
        }
    })
}
