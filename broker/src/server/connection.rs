//! One client connection: read 4-byte length-prefixed frames (bounded by
//! `socket.request.max.bytes`), decode the request header, dispatch through the API table,
//! and write responses strictly in request order.
//!
//! Every request read takes effect, in the order sent, whether or not the client stays (see
//! `api`'s header): the reader dispatches each frame as it arrives, so a handler's effect
//! happens there; an `Apply` effect runs in a task of its own, not tied to this connection,
//! and the reader awaits it before dispatching the next frame. Only waiting (fsync, long poll,
//! rebalance) is handed to the writer task, which resolves it and writes the responses in
//! request order; when the client leaves, the writer is aborted and nothing but that waiting
//! is lost. Anything malformed closes this connection with a log line.
//!
//! Bounds, so one client cannot pin the broker's memory: at most `MAX_IN_FLIGHT_REQUESTS`
//! answers owed, and at most `MAX_QUEUED_RESPONSE_BYTES` of answers computed but not yet
//! written; past either the reader stops reading, as Kafka mutes a channel. A frame's buffer
//! grows with the bytes received, not with the length it announces, and a frame that stops
//! making progress is dropped; a connection owed nothing that sends nothing for
//! `connections.max.idle.ms` is closed. `queued.max.requests` bounds the effects applied at
//! once broker-wide.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::api::{self, api_versions, Deferred, Reply, RequestContext, RequestError, ResponseBody};
use crate::broker::Broker;

/// Requests whose responses are not yet written, per connection.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 64;
/// Bytes of responses computed but not yet written, per connection, beyond which the reader
/// stops reading. One response larger than this is still served (alone).
pub const MAX_QUEUED_RESPONSE_BYTES: usize = 64 << 20;
/// Longest a frame that has begun may go without receiving a byte (or
/// `connections.max.idle.ms` when shorter).
const FRAME_PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest step a frame's buffer grows by before the bytes for it have arrived.
const FRAME_READ_CHUNK_BYTES: usize = 1 << 20;
/// How long a stopping broker waits for a connection's owed answers before closing it.
pub const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes of the fixed part of every request header: api key, version, correlation id.
const FIXED_HEADER_BYTES: usize = 8;

enum Pending {
    Ready(ResponseBody),
    Waiting(Deferred),
    /// An effect not yet started; `apply` runs it before anything else is dispatched.
    Effect(Deferred),
}

/// Runs an `Apply` effect in a task of its own, so it completes even if this connection's
/// task ends, and returns the answer.
async fn apply(effect: Deferred) -> ResponseBody {
    match tokio::spawn(effect).await {
        Ok(body) => body,
        Err(e) => Err(RequestError::Failed(format!("request task failed: {e}"))),
    }
}

struct Outgoing {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    pending: Pending,
    /// Held until the response is written: its share of `MAX_QUEUED_RESPONSE_BYTES`.
    budget: Option<OwnedSemaphorePermit>,
    /// Counts the request as owed until the response is written or dropped.
    owed: Option<Owed>,
}

/// One request whose answer is owed; the count tells the idle timer the client is waiting.
struct Owed(Arc<AtomicUsize>);

impl Owed {
    fn new(count: &Arc<AtomicUsize>) -> Owed {
        count.fetch_add(1, Ordering::Relaxed);
        Owed(count.clone())
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
    let limits = FrameLimits {
        max_frame_bytes: broker.config.socket_request_max_bytes,
        idle: Duration::from_millis(broker.config.connections_max_idle_ms),
        progress: FRAME_PROGRESS_TIMEOUT
            .min(Duration::from_millis(broker.config.connections_max_idle_ms)),
    };
    let owed_count = Arc::new(AtomicUsize::new(0));
    let response_budget = Arc::new(Semaphore::new(MAX_QUEUED_RESPONSE_BYTES));
    let ending = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, &limits, &owed_count) => frame,
            _ = shutdown.changed() => break Ending::BrokerStopping,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ending::ClientGone,
            Err(FrameError::Idle) => {
                tracing::info!(connection = id, %peer, idle_ms = limits.idle.as_millis() as u64, "closing idle connection (connections.max.idle.ms)");
                break Ending::ClientGone;
            }
            Err(FrameError::Disconnected(e)) => {
                tracing::info!(connection = id, %peer, error = %e, "client went away");
                break Ending::ClientGone;
            }
            Err(FrameError::Invalid(reason)) => {
                tracing::warn!(connection = id, %peer, reason, "closing connection");
                break Ending::ProtocolError;
            }
        };
        match dispatch(&broker, frame, id, peer, &listener) {
            Ok(Some(mut outgoing)) => {
                outgoing.owed = Some(Owed::new(&owed_count));
                if let Pending::Effect(effect) = outgoing.pending {
                    // `queued.max.requests`: effects applied at once, broker-wide.
                    let _slot = broker.apply_slots.acquire().await;
                    outgoing.pending = Pending::Ready(apply(effect).await);
                }
                if let Pending::Ready(Ok(body)) = &outgoing.pending {
                    // Stop reading while the answers not yet written are too large.
                    let share = body.len().clamp(1, MAX_QUEUED_RESPONSE_BYTES) as u32;
                    match response_budget.clone().acquire_many_owned(share).await {
                        Ok(permit) => outgoing.budget = Some(permit),
                        Err(_) => break Ending::ClientGone,
                    }
                }
                if queue.send(outgoing).await.is_err() {
                    break Ending::ClientGone;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(connection = id, %peer, reason, "closing connection");
                break Ending::ProtocolError;
            }
        }
    };
    drop(queue);
    match ending {
        // Earlier requests were fine: their answers are owed.
        Ending::ProtocolError => {
            let _ = writer_task.await;
        }
        // The answers owed are written, within a bound; long polls answer at once when the
        // broker stops (see api::fetch), so this is usually quick.
        Ending::BrokerStopping => {
            let abort = writer_task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_DRAIN, writer_task)
                .await
                .is_err()
            {
                tracing::info!(connection = id, %peer, "answers still waiting at shutdown dropped");
                abort.abort();
            }
        }
        // Only waiting is abandoned here (long polls, fsync waits, rebalances): every effect
        // already happened at dispatch or ran in its own task. Dropping the waits at once
        // keeps a departed client from holding partitions (and their files) alive.
        Ending::ClientGone => writer_task.abort(),
    }
    tracing::debug!(connection = id, %peer, "connection closed");
}

/// Why the read loop ended.
enum Ending {
    ClientGone,
    ProtocolError,
    BrokerStopping,
}

enum FrameError {
    /// The socket failed or closed in the middle of a frame.
    Disconnected(std::io::Error),
    /// The bytes are not a frame this broker accepts.
    Invalid(String),
    /// Nothing owed and nothing sent for `connections.max.idle.ms`.
    Idle,
}

struct FrameLimits {
    max_frame_bytes: usize,
    idle: Duration,
    progress: Duration,
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames. Cancel-safe between
/// frames only (the caller stops reading for good when it cancels).
async fn read_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    limits: &FrameLimits,
    owed: &AtomicUsize,
) -> Result<Option<Bytes>, FrameError> {
    let mut length = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // Before a frame begins the connection may be idle; a client waiting for answers
        // (a long poll) is not.
        let wait = if got == 0 {
            limits.idle
        } else {
            limits.progress
        };
        match tokio::time::timeout(wait, reader.read(&mut length[got..])).await {
            Err(_) if got == 0 && owed.load(Ordering::Relaxed) > 0 => continue,
            Err(_) if got == 0 => return Err(FrameError::Idle),
            Err(_) => return Err(stalled(got, 4)),
            Ok(Ok(0)) if got == 0 => return Ok(None),
            Ok(Ok(0)) => return Err(ended(got, 4)),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(FrameError::Disconnected(e)),
        }
    }
    let length = i32::from_be_bytes(length);
    let length = usize::try_from(length)
        .map_err(|_| FrameError::Invalid(format!("negative frame length {length}")))?;
    if length > limits.max_frame_bytes {
        return Err(FrameError::Invalid(format!(
            "frame of {length} bytes exceeds socket.request.max.bytes {}",
            limits.max_frame_bytes
        )));
    }
    if length < FIXED_HEADER_BYTES {
        return Err(FrameError::Invalid(format!(
            "frame of {length} bytes is too short for a request header"
        )));
    }
    // Read into spare capacity (no zero-filling), grown as bytes arrive: a client announcing a
    // large frame and sending little of it holds little.
    let mut frame = BytesMut::with_capacity(length.min(FRAME_READ_CHUNK_BYTES));
    while frame.len() < length {
        let remaining = length - frame.len();
        if frame.capacity() == frame.len() {
            frame.reserve(remaining.min(frame.len().max(FRAME_READ_CHUNK_BYTES)));
        }
        let mut limited = (&mut *reader).take(remaining as u64);
        match tokio::time::timeout(limits.progress, limited.read_buf(&mut frame)).await {
            Err(_) => return Err(stalled(frame.len(), length)),
            Ok(Ok(0)) => return Err(ended(frame.len(), length)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(FrameError::Disconnected(e)),
        }
    }
    Ok(Some(frame.freeze()))
}

fn ended(got: usize, length: usize) -> FrameError {
    FrameError::Disconnected(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("frame ended after {got} of {length} bytes"),
    ))
}

fn stalled(got: usize, length: usize) -> FrameError {
    FrameError::Disconnected(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("frame stalled after {got} of {length} bytes"),
    ))
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
        Some(Outgoing {
            pending: Pending::Effect(effect),
            ..
        }) => apply(effect).await.map(Some).map_err(|e| e.to_string()),
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
                budget: None,
                owed: None,
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
        Reply::Wait(deferred) => Pending::Waiting(deferred),
        Reply::Apply(effect) => Pending::Effect(effect),
        Reply::Nothing => return Ok(None),
    };
    Ok(Some(Outgoing {
        correlation_id,
        api_key: spec.key,
        version,
        pending,
        budget: None,
        owed: None,
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
            // The reader applies effects before queueing them.
            Pending::Effect(effect) => apply(effect).await,
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
