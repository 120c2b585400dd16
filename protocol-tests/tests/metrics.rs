//! The HTTP listener: `/metrics` counters move with traffic, `/health` answers, and
//! `strom healthcheck` exits 0 while the broker serves and 1 when it does not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{batch, strom_binary, BrokerProcess};

/// The port the broker logged for its HTTP listener (`http://127.0.0.1:0` in the harness).
fn http_port(broker: &BrokerProcess) -> u16 {
    let log = broker.log();
    log.lines()
        .rev()
        .filter(|l| l.contains("serving /metrics and /health"))
        .filter_map(|l| l.split("http=http://127.0.0.1:").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .next()
        .unwrap_or_else(|| panic!("no http listener in the log:\n{log}"))
}

/// GET `path`; returns (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the sample `series` (name with labels, exactly), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> bool {
    let mut command = Command::new(strom_binary());
    command.arg("healthcheck").args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .output()
        .expect("run strom healthcheck")
        .status
        .success()
}

#[test]
fn counters_move_after_a_produce_and_a_fetch() {
    let broker = BrokerProcess::start(&[]);
    let port = http_port(&broker);
    let (status, body) = get(port, "/health");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, "ok\n");
    assert!(get(port, "/nope").0.starts_with("HTTP/1.1 404"));

    let (_, before) = get(port, "/metrics");
    assert_eq!(
        sample(
            &before,
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"metered\"}"
        ),
        None,
        "{before}"
    );
    assert_eq!(
        sample(&before, "kafka_server_kafkaserver_brokerstate"),
        Some(3.0)
    );

    let mut client = broker.client();
    let topic = TopicName(StrBytes::from_static_str("metered"));
    let metadata = client
        .call(
            12,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic.clone()))])),
        )
        .unwrap();
    assert_eq!(metadata.topics[0].error_code, 0);
    let records = batch(&[b"one", b"two", b"three"], None, Compression::None);
    let produced = client
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records.clone())),
                    ])]),
        )
        .unwrap();
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let fetched = client
        .call(
            12,
            &FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic)
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .unwrap();
    let served = fetched.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(served > 0);

    let (_, after) = get(port, "/metrics");
    let value = |series: &str| {
        sample(&after, series).unwrap_or_else(|| panic!("{series} missing:\n{after}"))
    };
    assert_eq!(
        value("kafka_server_brokertopicmetrics_messagesin_total{topic=\"metered\"}"),
        3.0
    );
    assert_eq!(
        value("kafka_server_brokertopicmetrics_bytesin_total{topic=\"metered\"}"),
        records.len() as f64
    );
    assert_eq!(
        value("kafka_server_brokertopicmetrics_bytesout_total{topic=\"metered\"}"),
        served as f64
    );
    assert!(value("kafka_network_requestmetrics_requests_total{request=\"Produce\"}") >= 1.0);
    assert!(value("kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"}") >= 1.0);
    assert!(
        value("kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"}") >= 1.0
    );
    assert!(value("kafka_log_log_size{topic=\"metered\",partition=\"0\"}") >= records.len() as f64);
}

#[test]
fn healthcheck_exits_zero_while_serving_and_one_after() {
    let mut broker = BrokerProcess::start(&[]);
    let url = format!("http://127.0.0.1:{}", http_port(&broker));
    assert!(healthcheck(&[&url], &[]));
    // As a compose healthcheck runs it: the address from the container's environment.
    assert!(healthcheck(&[], &[("KAFKA_STROM_HTTP_LISTENER", &url)]));
    broker.stop();
    assert!(!healthcheck(&[&url], &[]));
    assert!(!healthcheck(&[], &[("KAFKA_STROM_HTTP_LISTENER", "")]));
}
