//! Starting and stopping the broker the way users do: no arguments, a config file,
//! `KAFKA_*` environment variables, a dual-stack listener, SIGTERM.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{strom_binary, BrokerProcess, Client};

fn metadata_for(client: &mut Client, topic: &str) -> MetadataResponse {
    client
        .call(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))])),
        )
        .expect("metadata")
}

#[test]
fn zero_config_start_listens_on_9092_and_creates_its_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(
        TcpStream::connect("127.0.0.1:9092").is_err(),
        "something else already listens on 9092; this test needs the port free"
    );
    assert!(
        TcpStream::connect("127.0.0.1:9644").is_err(),
        "something else already listens on 9644; this test needs the port free"
    );
    let mut child = Command::new(strom_binary())
        .current_dir(cwd.path())
        .env_remove("KAFKA_LOG_DIRS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut connected = None;
    while Instant::now() < deadline && connected.is_none() {
        connected = Client::connect(SocketAddr::from(([127, 0, 0, 1], 9092))).ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut client = connected.expect("strom listens on 9092 with no arguments");
        let response = metadata_for(&mut client, "zero-config");
        assert_eq!(response.brokers[0].host.as_str(), "localhost");
        assert_eq!(response.brokers[0].port, 9092);
        assert_eq!(
            response.topics[0].partitions.len(),
            1,
            "num.partitions defaults to 1"
        );
        let meta = std::fs::read_to_string(cwd.path().join("strom-data/meta.properties"))
            .expect("meta.properties in the default data dir");
        assert!(
            meta.contains("cluster.id=") && meta.contains("node.id=1"),
            "{meta}"
        );
        assert!(cwd.path().join("strom-data/zero-config-0").is_dir());
        // Some clients resolve localhost to ::1: the default listener takes IPv6 too, where
        // the machine has it.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            TcpStream::connect("[::1]:9092").expect("default listener accepts IPv6");
        }
        // The metrics listener's default, http://:9644, is what `strom healthcheck` asks with
        // no arguments.
        let health = Command::new(strom_binary())
            .arg("healthcheck")
            .env_remove("KAFKA_STROM_HTTP_LISTENER")
            .output()
            .unwrap();
        assert!(health.status.success(), "{health:?}");
    }));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
}

#[test]
fn config_file_env_and_overrides_use_kafka_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        "# a Kafka server.properties\nnum.partitions=3\nauto.create.topics.enable=true\nsome.future.kafka.setting=1\n",
    )
    .unwrap();
    // The file sets 3 partitions; the environment turns auto-creation off; --override wins
    // over both and turns it back on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("broker.log");
    let mut child = Command::new(strom_binary())
        .arg("--config")
        .arg(&config)
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg("auto.create.topics.enable=true")
        .env("KAFKA_LOG_DIRS", dir.path().join("data"))
        .env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .env("KAFKA_HEAP_OPTS", "-Xmx1G")
        .env("KAFKA_STROM_HTTP_LISTENER", "http://127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = None;
    while Instant::now() < deadline && client.is_none() {
        client = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut client = client.expect("broker started");
    let response = metadata_for(&mut client, "from-file");
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 3);
    assert!(
        dir.path().join("data/from-file-2").is_dir(),
        "KAFKA_LOG_DIRS is log.dirs"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("some.future.kafka.setting"),
        "unknown property warned about:\n{text}"
    );
    assert!(
        !text.contains("heap.opts"),
        "KAFKA_HEAP_OPTS is not a property:\n{text}"
    );
}

#[test]
fn auto_creation_respects_broker_config() {
    let broker = BrokerProcess::start(&["auto.create.topics.enable=false"]);
    let mut client = broker.client();
    assert_eq!(metadata_for(&mut client, "nope").topics[0].error_code, 3);
    assert_eq!(
        metadata_for(&mut client, "bad name!").topics[0].error_code,
        17
    );
}

#[test]
fn empty_listener_host_serves_ipv4_and_ipv6() {
    let mut broker = BrokerProcess::start_listening_on("", &[]);
    let port = broker.addr.port();
    TcpStream::connect(("127.0.0.1", port)).expect("IPv4");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let mut client = Client::connect(format!("[::1]:{port}").parse().unwrap()).expect("IPv6");
        assert_eq!(metadata_for(&mut client, "v6").topics[0].error_code, 0);
    }
    let status = broker.stop().expect("exit status");
    assert!(status.success(), "{status:?}");
    assert!(broker.log().contains("shutdown complete"));
}

/// `log.dirs` with two entries: partitions are spread over both (as Kafka places them, on the
/// directory with the fewest), DescribeLogDirs reports each directory with its partitions, and
/// after kill -9 every record is read back from where it is.
#[test]
fn every_log_dir_holds_partitions() {
    let extra = tempfile::tempdir().expect("temp dir");
    let (a, b) = (extra.path().join("a"), extra.path().join("b"));
    let dirs = format!("log.dirs={},{}", a.display(), b.display());
    let mut broker = BrokerProcess::start(&[&dirs]);
    let mut client = broker.client();
    let created = client
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("spread")))
                    .with_num_partitions(4)
                    .with_replication_factor(1),
            ]),
        )
        .expect("create");
    assert_eq!(created.topics[0].error_code, 0);
    let produce = |client: &mut Client, partition: i32| {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("spread")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(protocol_tests::batch(
                            &[format!("in {partition}").as_bytes()],
                            None,
                            kafka_protocol::records::Compression::None,
                        ))),
                ])]);
        let response = client.call(9, &request).expect("produce");
        response.responses[0].partition_responses[0].error_code
    };
    for partition in 0..4 {
        assert_eq!(produce(&mut client, partition), 0);
    }
    for dir in [&a, &b] {
        let here: Vec<String> = std::fs::read_dir(dir)
            .expect("log dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("spread-"))
            .collect();
        assert_eq!(here.len(), 2, "{}: {here:?}", dir.display());
        // Each directory is stamped with the cluster id, as Kafka stamps every log dir.
        let meta = std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties");
        assert!(
            meta.contains("cluster.id=") && meta.contains("node.id="),
            "{meta}"
        );
    }
    let described = client
        .call(4, &DescribeLogDirsRequest::default().with_topics(None))
        .expect("describe log dirs");
    let mut per_dir: Vec<usize> = described
        .results
        .iter()
        .map(|r| {
            r.topics
                .iter()
                .filter(|t| t.name.as_str() == "spread")
                .map(|t| t.partitions.len())
                .sum()
        })
        .collect();
    per_dir.sort();
    assert_eq!(described.results.len(), 2, "{described:?}");
    // The offsets topic does not exist yet: two "spread" partitions in each directory.
    assert_eq!(per_dir, [2, 2]);

    broker.kill_and_restart();
    let mut client = broker.client();
    for partition in 0..4 {
        let listed = client
            .call(
                7,
                &ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("spread")))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_timestamp(-1),
                        ])]),
            )
            .expect("list offsets");
        assert_eq!(
            listed.topics[0].partitions[0].offset, 1,
            "partition {partition}"
        );
        assert_eq!(produce(&mut client, partition), 0);
    }
}
