//! The network front: listeners, one task per connection, frames in, responses out in
//! request order.
//!
//! Depends on `api` (dispatch table) and nothing below it directly.

pub mod connection;
pub mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Accepts connections on the listener named `listener_name` until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    listener_name: Arc<str>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);
    let open_connections = Arc::new(AtomicUsize::new(0));
    let max_connections = broker.config.max_connections;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if open_connections.load(Ordering::Relaxed) >= max_connections {
            tracing::warn!(%peer, max_connections, "connection refused: max.connections reached");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        let open = open_connections.clone();
        let shutdown = shutdown.clone();
        let listener_name = listener_name.clone();
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
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
        });
    }
}
