//! Helpers for wire-level tests: start the real `strom` binary on an ephemeral port with a
//! fresh data directory, and talk to it with requests encoded by `kafka-protocol`.
//!
//! The binary is `$STROM_BIN`, or `target/debug/strom` of this workspace (built by
//! `cargo build` before the tests run).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::Compression;

pub fn strom_binary() -> PathBuf {
    if let Ok(path) = std::env::var("STROM_BIN") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    target.join("debug").join("strom")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running broker process, killed when dropped.
pub struct BrokerProcess {
    child: Option<Child>,
    listener_host: String,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
    overrides: Vec<String>,
    log_path: PathBuf,
}

impl BrokerProcess {
    pub fn start(overrides: &[&str]) -> BrokerProcess {
        Self::start_listening_on("127.0.0.1", overrides)
    }

    /// Starts with `listeners=PLAINTEXT://<host>:<free port>`; an empty host means every
    /// interface, as in Kafka's default `PLAINTEXT://:9092`.
    pub fn start_listening_on(host: &str, overrides: &[&str]) -> BrokerProcess {
        let data = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut broker = BrokerProcess {
            child: None,
            listener_host: host.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path: data.path().join("broker.log"),
            data,
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        };
        broker.spawn();
        broker
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data.path().join("logs")
    }

    fn spawn(&mut self) {
        // Another test may grab the same free port between our probe and the broker's bind;
        // then the broker exits and we try another port.
        for _ in 0..10 {
            if self.spawn_once() {
                return;
            }
            self.addr.set_port(free_port());
        }
        panic!("broker did not start; log:\n{}", self.log());
    }

    fn spawn_once(&mut self) -> bool {
        let binary = strom_binary();
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build` first or set STROM_BIN",
            binary.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("broker log file");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let listener = format!("PLAINTEXT://{}:{}", self.listener_host, self.addr.port());
        let mut command = Command::new(binary);
        // A test that sets its own listeners takes care of their ports.
        if !self.overrides.iter().any(|o| o.starts_with("listeners=")) {
            command
                .arg("--override")
                .arg(format!("listeners={listener}"));
        }
        // Tests start brokers in parallel: metrics on a port of their own (logged at start).
        if !self
            .overrides
            .iter()
            .any(|o| o.starts_with("strom.http.listener="))
        {
            command
                .arg("--override")
                .arg("strom.http.listener=http://127.0.0.1:0");
        }
        command
            .arg("--override")
            .arg(format!("log.dirs={}", self.log_dir().display()))
            .stdout(Stdio::null())
            .stderr(log);
        for o in &self.overrides {
            command.arg("--override").arg(o);
        }
        let mut child = command.spawn().expect("start strom");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let log = self.log();
            if log
                .get(log_start..)
                .is_some_and(|l| l.contains("strom is ready"))
            {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's peak resident set size (`VmHWM` in /proc), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// SIGKILL, then start again on the same port and data directory.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }

    /// Starts the broker again after `stop` (on the same data directory and port).
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// SIGTERM (clean shutdown), then start again.
    pub fn stop_and_restart(&mut self) {
        let _ = self.stop();
        self.spawn();
    }

    /// SIGTERM, waiting for the process to exit; returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("broker did not stop on SIGTERM; log:\n{}", self.log());
        }
        None
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr).expect("connect")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the broker with `args` and `env` where it is expected to refuse to start: waits (bounded)
/// for it to exit and returns its exit status and everything it logged. Panics if it keeps
/// running.
pub fn start_refused(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("broker.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = Command::new(strom_binary());
    command
        .args(args)
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .arg("--override")
        .arg("strom.http.listener=http://127.0.0.1:0")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start strom");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return (
                status,
                std::fs::read_to_string(&log_path).unwrap_or_default(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "broker kept running; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// A blocking Kafka protocol client over one TCP connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Encodes a request (header + body) into a length-prefixed frame.
    pub fn frame<R: Request>(&mut self, version: i16, request: &R) -> Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let api_key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("bad key"))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("protocol-tests")));
        let mut body = BytesMut::new();
        header.encode(&mut body, api_key.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        Ok((correlation_id, frame.freeze()))
    }

    pub fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.stream.write_all(frame)?;
        Ok(())
    }

    /// Reads one response frame, checks its correlation id, returns the body after the header.
    pub fn read_response(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes> {
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id {} where {} was expected",
                header.correlation_id,
                correlation_id
            );
        }
        Ok(frame)
    }

    pub fn read_frame(&mut self) -> Result<Bytes> {
        let mut length = [0u8; 4];
        self.stream
            .read_exact(&mut length)
            .context("reading response length")?;
        let length = i32::from_be_bytes(length);
        if !(0..=256 << 20).contains(&length) {
            bail!("implausible response length {length}");
        }
        let mut body = vec![0u8; length as usize];
        self.stream
            .read_exact(&mut body)
            .context("reading response body")?;
        Ok(Bytes::from(body))
    }

    /// Sends a request and decodes its response.
    /// Creates `topic` with `partitions` partitions (CreateTopics v5, replication factor 1) and
    /// panics unless the broker answers NONE: the setup step of most wire tests.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        use kafka_protocol::messages::{create_topics_request, CreateTopicsRequest, TopicName};
        let response = self
            .call(
                5,
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1),
                ]),
            )
            .expect("create topics");
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }

    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        let (correlation_id, frame) = self.frame(version, request)?;
        self.send_frame(&frame)?;
        let api_key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("bad key"))?;
        let mut body = self.read_response(api_key, version, correlation_id)?;
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            bail!("{} bytes left after the response", body.remaining());
        }
        Ok(response)
    }

    /// Sends a request the `kafka-protocol` crate cannot encode (a version Kafka 4 dropped) as
    /// `body` with a v1 request header; returns the response body after the correlation id.
    pub fn raw_call(&mut self, key: i16, version: i16, body: &[u8]) -> Result<Bytes> {
        let mut frame = BytesMut::new();
        frame.put_i32((10 + body.len()) as i32);
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(4242);
        frame.put_i16(-1); // null client id
        frame.put_slice(body);
        self.send_frame(&frame)?;
        let mut response = self.read_frame()?;
        anyhow::ensure!(response.get_i32() == 4242, "correlation id");
        Ok(response)
    }

    /// True when the broker closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    )
                }
            }
        }
    }
}

/// A RecordBatch v2 with the given values, as a producer would send it.
pub fn batch(
    values: &[&[u8]],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> Bytes {
    strom::test_support::record_batch(values, 1_700_000_000_000, producer, compression)
        .expect("encode batch")
}

/// One message of formats v0/v1 (magic 0 or 1), as a pre-0.11 producer writes it into a
/// message set: offset, size, CRC-32 (IEEE), magic, attributes, timestamp (magic 1), key, value.
pub fn put_legacy_message(
    out: &mut BytesMut,
    magic: i8,
    offset: i64,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut message = BytesMut::new();
    message.put_i8(magic);
    message.put_i8(attributes);
    if magic == 1 {
        message.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                message.put_i32(b.len() as i32);
                message.put_slice(b);
            }
            None => message.put_i32(-1),
        }
    }
    out.put_i64(offset);
    out.put_i32(message.len() as i32 + 4);
    out.put_u32(crc32fast::hash(&message));
    out.put_slice(&message);
}

/// A message of formats v0/v1 read back from a Fetch v0-3 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    pub offset: i64,
    pub magic: i8,
    pub attributes: i8,
    /// -1 for magic 0.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Every whole message of a message set, each CRC-checked; a partial message at the end (as
/// a fetch may send) is left out.
pub fn parse_legacy_messages(mut set: Bytes) -> Result<Vec<LegacyMessage>> {
    fn field(b: &mut Bytes) -> Result<Option<Bytes>> {
        anyhow::ensure!(b.remaining() >= 4, "truncated length");
        let n = b.get_i32();
        if n < 0 {
            return Ok(None);
        }
        anyhow::ensure!(b.remaining() >= n as usize, "truncated field");
        Ok(Some(b.split_to(n as usize)))
    }
    let mut out = Vec::new();
    while set.remaining() >= 12 {
        let offset = set.get_i64();
        let size = set.get_i32();
        anyhow::ensure!(size >= 14, "message size {size}");
        if set.remaining() < size as usize {
            break;
        }
        let mut message = set.split_to(size as usize);
        let crc = message.get_u32();
        anyhow::ensure!(crc32fast::hash(&message) == crc, "CRC mismatch at {offset}");
        let magic = message.get_i8();
        let attributes = message.get_i8();
        let timestamp = if magic == 1 { message.get_i64() } else { -1 };
        let key = field(&mut message)?;
        let value = field(&mut message)?;
        anyhow::ensure!(!message.has_remaining(), "bytes after the value");
        out.push(LegacyMessage {
            offset,
            magic,
            attributes,
            timestamp,
            key,
            value,
        });
    }
    Ok(out)
}
