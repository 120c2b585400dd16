//! One client connection: read 4-byte length-prefixed frames (bounded by
//! `socket.request.max.bytes`), decode the request header, dispatch through the API table,
//! and write responses strictly in request order.
//!
//! Handlers run their ordered part as each frame arrives, so appends from one connection land
//! in request order; the parts that wait (fsync, long poll) run concurrently and a writer task
//! resolves them in order. At most `MAX_IN_FLIGHT_REQUESTS` wait at once; beyond that the
//! reader stops reading. Anything malformed closes this connection with a log line.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::api::{self, api_versions, Deferred, Reply, RequestContext, ResponseBody};
use crate::broker::Broker;

/// Requests whose responses are not yet written, per connection.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 64;
/// Bytes of the fixed part of every request header: api key, version, correlation id.
const FIXED_HEADER_BYTES: usize = 8;

enum Pending {
    Ready(ResponseBody),
    Waiting(Deferred),
}

struct Outgoing {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    pending: Pending,
}

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    listener: Arc<str>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut reader, writer) = stream.into_split();
    let (queue, outgoing) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT_REQUESTS);
    let writer_task = tokio::spawn(write_responses(writer, outgoing, id));
    let max_frame = broker.config.socket_request_max_bytes;
    // Whether responses still owed should be written before closing: yes after a protocol
    // error (earlier requests were fine), no when the client is gone or the broker stops.
    let finish_owed = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max_frame) => frame,
            _ = shutdown.changed() => break false,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break false,
            Err(FrameError::Disconnected(e)) => {
                tracing::info!(connection = id, %peer, error = %e, "client went away");
                break false;
            }
            Err(FrameError::Invalid(reason)) => {
                tracing::warn!(connection = id, %peer, reason, "closing connection");
                break true;
            }
        };
        match dispatch(&broker, frame, id, peer, &listener) {
            Ok(Some(outgoing)) => {
                if queue.send(outgoing).await.is_err() {
                    break false;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(connection = id, %peer, reason, "closing connection");
                break true;
            }
        }
    };
    drop(queue);
    if finish_owed {
        let _ = writer_task.await;
    } else {
        // Long polls and fsync waits for a departed client are abandoned at once, so they do
        // not keep partitions (and their files) alive.
        writer_task.abort();
    }
    tracing::debug!(connection = id, %peer, "connection closed");
}

enum FrameError {
    /// The socket failed or closed in the middle of a frame.
    Disconnected(std::io::Error),
    /// The bytes are not a frame this broker accepts.
    Invalid(String),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
async fn read_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    max_frame: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Disconnected(e)),
    }
    let length = i32::from_be_bytes(length);
    let length = usize::try_from(length)
        .map_err(|_| FrameError::Invalid(format!("negative frame length {length}")))?;
    if length > max_frame {
        return Err(FrameError::Invalid(format!(
            "frame of {length} bytes exceeds socket.request.max.bytes {max_frame}"
        )));
    }
    if length < FIXED_HEADER_BYTES {
        return Err(FrameError::Invalid(format!(
            "frame of {length} bytes is too short for a request header"
        )));
    }
    // Read into spare capacity: no zero-filling of a buffer about to be overwritten.
    let mut frame = BytesMut::with_capacity(length);
    while frame.len() < length {
        let mut limited = (&mut *reader).take((length - frame.len()) as u64);
        match limited.read_buf(&mut frame).await {
            Ok(0) => {
                return Err(FrameError::Disconnected(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("frame ended after {} of {length} bytes", frame.len()),
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(FrameError::Disconnected(e)),
        }
    }
    Ok(Some(frame.freeze()))
}

/// Answers one request frame (the bytes after the length prefix) as a connection would, and
/// waits for the answer: `Ok(None)` when no response is due (acks=0), `Err` when the
/// connection would be closed. The entry point of the request fuzz target (`fuzz/`).
pub async fn answer_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Bytes>, String> {
    let listener: Arc<str> = Arc::from(broker.config.listeners.listeners[0].name.as_str());
    match dispatch(broker, frame, 0, peer, &listener)? {
        None => Ok(None),
        Some(Outgoing {
            pending: Pending::Ready(body),
            ..
        }) => body.map(Some).map_err(|e| e.to_string()),
        Some(Outgoing {
            pending: Pending::Waiting(deferred),
            ..
        }) => deferred.await.map(Some).map_err(|e| e.to_string()),
    }
}

/// Routes one frame. `Err` closes the connection.
fn dispatch(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    id: u64,
    peer: SocketAddr,
    listener: &Arc<str>,
) -> Result<Option<Outgoing>, String> {
    if frame.len() < FIXED_HEADER_BYTES {
        return Err(format!(
            "frame of {} bytes is too short for a request header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some(spec) = api::lookup(api_key) else {
        return Err(format!("unsupported API key {api_key} (v{version})"));
    };
    if version < spec.min_version || version > spec.max_version {
        if spec.key == ApiKey::ApiVersions {
            return Ok(Some(Outgoing {
                correlation_id,
                api_key: ApiKey::ApiVersions,
                version: 0,
                pending: Pending::Ready(api_versions::unsupported_version_response()),
            }));
        }
        return Err(format!(
            "unsupported version {version} of {:?} (serving {}..={})",
            spec.key, spec.min_version, spec.max_version
        ));
    }
    let header_version = spec.key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("malformed request header: {e}"))?;
    let ctx = RequestContext {
        header,
        api_key: spec.key,
        version,
        connection_id: id,
        peer,
        listener: listener.clone(),
    };
    let pending = match api::call(spec, broker, &ctx, frame) {
        Reply::Now(Err(e)) => return Err(e.to_string()),
        Reply::Now(body) => Pending::Ready(body),
        Reply::Later(deferred) => Pending::Waiting(deferred),
        Reply::Nothing => return Ok(None),
    };
    Ok(Some(Outgoing {
        correlation_id,
        api_key: spec.key,
        version,
        pending,
    }))
}

async fn write_responses(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    id: u64,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(next) = outgoing.recv().await {
        let body = match next.pending {
            Pending::Ready(body) => body,
            Pending::Waiting(deferred) => deferred.await,
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(connection = id, error = %e, "closing connection");
                return;
            }
        };
        // ApiVersions responses always use header v0 so any client can read them (KIP-511).
        let header_version = next.api_key.response_header_version(next.version);
        let header = ResponseHeader::default().with_correlation_id(next.correlation_id);
        let mut head = BytesMut::with_capacity(16);
        let header_size = header.compute_size(header_version).unwrap_or(4);
        head.put_i32((header_size + body.len()) as i32);
        if header.encode(&mut head, header_version).is_err() {
            return;
        }
        if writer.write_all(&head).await.is_err() || writer.write_all(&body).await.is_err() {
            return;
        }
        // Flush when nothing else is ready, so pipelined responses share a syscall.
        if outgoing.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}
