//! The network front: listeners, one task per connection, frames in, responses out in
//! request order.
//!
//! Depends on `api` (dispatch table) and nothing below it directly.

pub mod connection;
pub mod http;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::Listener;

/// Binds a listener. An empty host (`PLAINTEXT://:9092`) means every interface of both
/// address families: an IPv6 socket that also accepts IPv4, or IPv4 alone where the machine
/// has no IPv6.
pub async fn bind(listener: &Listener) -> std::io::Result<TcpListener> {
    if listener.host.is_empty() {
        let dual = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, listener.port));
        match bind_addr(dual, false) {
            Ok(l) => return Ok(l),
            Err(e) => tracing::info!(error = %e, "no IPv6; listening on IPv4 only"),
        }
        return bind_addr(
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, listener.port)),
            false,
        );
    }
    let mut last_error = None;
    for addr in tokio::net::lookup_host((listener.host.as_str(), listener.port)).await? {
        match bind_addr(addr, true) {
            Ok(l) => return Ok(l),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("listener host resolves to nothing")))
}

fn bind_addr(addr: SocketAddr, only_v6: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(only_v6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections on the listener named `listener_name` until `shutdown` flips to true,
/// then waits (within a bound) for every connection to finish the requests it read and write
/// the answers owed.
pub async fn serve(
    listener: TcpListener,
    listener_name: Arc<str>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);
    let open_connections = Arc::new(AtomicUsize::new(0));
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let max_connections = broker.config.max_connections;
    let max_per_ip = broker.config.max_connections_per_ip;
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff.reset();
                x
            }
            Err(e) => {
                // Out of file descriptors (EMFILE) and the like: wait longer each time rather
                // than spin, and say so once per wait, not per attempt.
                let wait = backoff.next(&e);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        if open_connections.load(Ordering::Relaxed) >= max_connections {
            tracing::warn!(%peer, max_connections, "connection refused: max.connections reached");
            continue;
        }
        let ip = peer.ip().to_canonical();
        {
            let mut per_ip = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= max_per_ip {
                tracing::warn!(%peer, max_per_ip, "connection refused: max.connections.per.ip reached");
                continue;
            }
            *count += 1;
        }
        let _ = stream.set_nodelay(true);
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        let open = open_connections.clone();
        let per_ip = per_ip.clone();
        let shutdown = shutdown.clone();
        let listener_name = listener_name.clone();
        open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            broker.metrics.connection_opened(&listener_name);
            connection::run(
                stream,
                peer,
                id,
                listener_name.clone(),
                broker.clone(),
                shutdown,
            )
            .await;
            broker.metrics.connection_closed(&listener_name);
            open.fetch_sub(1, Ordering::Relaxed);
            let mut per_ip = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        });
    }
    // Stop accepting: the listening socket closes here.
    drop(listener);
    let drained = tokio::time::timeout(
        connection::SHUTDOWN_DRAIN + std::time::Duration::from_secs(1),
        async { while connections.join_next().await.is_some() {} },
    )
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still busy at shutdown are closed"
        );
        connections.shutdown().await;
    }
}

/// Backoff after failed accepts: 10 ms doubling to 1 s, reset by a successful accept.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);

    fn next(&mut self, error: &std::io::Error) -> Duration {
        let wait = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::LONGEST);
        self.failures = self.failures.saturating_add(1);
        // One line for the first failure and then one per second at most.
        if self.failures == 1 || wait == Self::LONGEST {
            tracing::warn!(error = %error, failures = self.failures, wait_ms = wait.as_millis() as u64, "accept failed");
        }
        wait
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_grows_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let error = std::io::Error::other("too many open files");
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next(&error)).collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert_eq!(waits[1], Duration::from_millis(20));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(waits[9], Duration::from_secs(1));
        backoff.reset();
        assert_eq!(backoff.next(&error), Duration::from_millis(10));
    }
}
