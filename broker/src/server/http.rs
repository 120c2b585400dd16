//! The HTTP listener (`strom.http.listener`, default `http://:9644`): `/metrics` in the
//! Prometheus (OpenMetrics) text format and `/health`, which answers 200 while the broker
//! serves Kafka requests. One request per connection, read with a size and time bound; nothing
//! here touches the Kafka listeners.
//!
//! `probe` is the client side that `strom healthcheck` runs, so a compose `healthcheck:` needs
//! no shell or curl in the image.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// Bytes of a request head we read at most; anything longer is refused.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent HTTP connections; more wait in the accept queue.
const MAX_HTTP_CONNECTIONS: usize = 64;

/// Serves `/metrics` and `/health` until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &broker).await {
                tracing::debug!(%peer, error = %e, "http request not answered");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, broker: &Arc<Broker>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > MAX_REQUEST_HEAD_BYTES {
                return Err(std::io::Error::other("request head too large"));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::other("closed before the request ended"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::other("request not sent in time"))??;
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let b = broker.clone();
            let text = tokio::task::spawn_blocking(move || b.render_metrics())
                .await
                .unwrap_or_default();
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        }
        ("GET" | "HEAD", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics or /health\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// `strom healthcheck`: GET `/health` from `host:port` with a short bound. `Ok` on 200.
pub fn probe(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .collect();
    let mut last = format!("{host}:{port} resolves to nothing");
    for addr in addrs {
        match get_health(addr, timeout) {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

fn get_health(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: strom\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&answer);
    let status = status.lines().next().unwrap_or("");
    if status.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("answered {status:?}"))
    }
}
