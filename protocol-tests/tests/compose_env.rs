//! The environment blocks of real docker-compose files (`compat/fixtures/compose-env/`) start
//! the broker as they start Kafka's images: each listener binds, each client is told its own
//! listener's advertised address, `CLUSTER_ID` is the cluster id clients see and the one
//! written to `meta.properties`, and JVM or replication settings draw no complaint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use protocol_tests::{free_port, strom_binary, Client};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/fixtures/compose-env")
}

/// The `environment:` block of the `kafka` service of one of our compose files (`docker/`),
/// plus the `ENV` the image sets, as a container would see them.
fn read_compose_env(name: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docker")
        .join(name);
    let text = std::fs::read_to_string(path).expect("compose file");
    let mut env = vec![(
        "KAFKA_LOG_DIRS".to_string(),
        "/var/lib/kafka/data".to_string(),
    )];
    let mut in_kafka = false;
    let mut in_environment = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent {
            0 | 2 => {
                in_kafka = trimmed == "kafka:";
                in_environment = false;
            }
            4 => in_environment = in_kafka && trimmed == "environment:",
            6 if in_environment => {
                let (k, v) = trimmed.split_once(':').expect("KEY: value");
                env.push((
                    k.trim().to_string(),
                    v.trim().trim_matches('\'').to_string(),
                ));
            }
            _ => {}
        }
    }
    assert!(
        env.len() > 3,
        "no environment for the kafka service in {name}"
    );
    env
}

fn read_env(name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("fixture");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn is_listener_key(key: &str) -> bool {
    key.ends_with("_LISTENERS") || key.ends_with("QUORUM_VOTERS")
}

/// Rewrites what belongs to the machine, not the configuration: every port number in the
/// listener and voter lists to a free one (one mapping for the whole file), bound hosts to
/// 127.0.0.1, `KAFKA_LOG_DIRS` into `data`, and metrics on a free port. Returns the environment and the port mapping.
fn for_this_machine(
    env: &[(String, String)],
    data: &Path,
) -> (Vec<(String, String)>, BTreeMap<u16, u16>) {
    let mut ports = BTreeMap::new();
    let mut out = Vec::new();
    for (key, value) in env {
        let value = if key.ends_with("LOG_DIRS") {
            data.display().to_string()
        } else if is_listener_key(key) {
            let bound = key.ends_with("_LISTENERS") && !key.contains("ADVERTISED");
            value
                .split(',')
                .map(|item| {
                    let (head, port) = item.rsplit_once(':').expect("host:port");
                    let port: u16 = port.parse().expect("port");
                    let mapped = *ports.entry(port).or_insert_with(free_port);
                    let head = match head.split_once("://") {
                        Some((name, _)) if bound => format!("{name}://127.0.0.1"),
                        _ => head.to_string(),
                    };
                    format!("{head}:{mapped}")
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            value.clone()
        };
        out.push((key.clone(), value));
    }
    out.push((
        "KAFKA_STROM_HTTP_LISTENER".to_string(),
        "http://127.0.0.1:0".to_string(),
    ));
    (out, ports)
}

fn value<'a>(env: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    env.iter()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// name -> (host, port) of a listener list.
fn listeners(list: &str) -> BTreeMap<String, (String, u16)> {
    list.split(',')
        .map(|item| {
            let (name, rest) = item.split_once("://").expect("NAME://");
            let (host, port) = rest.rsplit_once(':').expect("host:port");
            (
                name.to_string(),
                (host.to_string(), port.parse().expect("port")),
            )
        })
        .collect()
}

struct Started {
    child: Child,
    log: PathBuf,
}

impl Started {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the broker with exactly `env` as its environment, in `cwd`. `Err(log)` if it exits.
fn start(env: &[(String, String)], cwd: &Path) -> Result<Started, String> {
    let log = cwd.join(format!("broker-{}.log", free_port()));
    let mut child = Command::new(strom_binary())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start strom");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("strom is ready") {
            return Ok(Started { child, log });
        }
        if let Ok(Some(_)) = child.try_wait() {
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "not ready after 30 s:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    ))
}

/// Starts one fixture and checks what a client sees through each of its listeners.
fn check_fixture(file: &str) {
    check_env(file, read_env(file));
}

fn check_env(file: &str, original: Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let (env, ports) = for_this_machine(&original, &dir.path().join("data"));
    let broker = start(&env, dir.path()).unwrap_or_else(|log| panic!("{file}: {log}"));
    let log = broker.log();

    let cluster_id = value(&original, &["CLUSTER_ID", "KAFKA_KRAFT_CLUSTER_ID"]).unwrap();
    let node_id: i32 = value(&original, &["KAFKA_NODE_ID", "KAFKA_CFG_NODE_ID"])
        .unwrap()
        .parse()
        .unwrap();
    let bound = listeners(value(&env, &["KAFKA_LISTENERS", "KAFKA_CFG_LISTENERS"]).unwrap());
    let advertised = listeners(
        value(
            &env,
            &[
                "KAFKA_ADVERTISED_LISTENERS",
                "KAFKA_CFG_ADVERTISED_LISTENERS",
            ],
        )
        .unwrap(),
    );
    let controller = value(
        &original,
        &[
            "KAFKA_CONTROLLER_LISTENER_NAMES",
            "KAFKA_CFG_CONTROLLER_LISTENER_NAMES",
        ],
    )
    .unwrap_or("");
    assert!(advertised.len() >= 2, "{file}: a two-listener example");
    for (name, (_, port)) in &bound {
        let connected = Client::connect(SocketAddr::from(([127, 0, 0, 1], *port)));
        if name == controller {
            assert!(connected.is_err(), "{file}: controller listener bound");
            continue;
        }
        let mut client = connected.unwrap_or_else(|e| panic!("{file}: {name}: {e}\n{log}"));
        let response = client
            .call(12, &MetadataRequest::default().with_topics(Some(vec![])))
            .unwrap();
        let (host, advertised_port) = &advertised[name];
        let told = (
            response.brokers[0].host.to_string(),
            response.brokers[0].port,
        );
        assert_eq!(
            told,
            (host.clone(), i32::from(*advertised_port)),
            "{file}: listener {name}"
        );
        assert_eq!(response.brokers[0].node_id.0, node_id, "{file}");
        assert_eq!(response.cluster_id.as_deref(), Some(cluster_id), "{file}");
        let cluster = client.call(0, &DescribeClusterRequest::default()).unwrap();
        assert_eq!(cluster.cluster_id.as_str(), cluster_id, "{file}");
    }
    assert!(!ports.is_empty());

    let data = if value(&original, &["KAFKA_LOG_DIRS", "KAFKA_CFG_LOG_DIRS"]).is_some() {
        dir.path().join("data")
    } else {
        dir.path().join("strom-data")
    };
    let meta = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(
        meta.contains(&format!("cluster.id={cluster_id}\n")),
        "{file}: {meta}"
    );
    assert!(!log.contains("unknown property"), "{file}: warned:\n{log}");
    let jvm = original
        .iter()
        .any(|(k, _)| k == "KAFKA_HEAP_OPTS" || k.starts_with("KAFKA_JMX_"));
    let reported = log.matches("JVM settings do not apply").count();
    assert_eq!(
        reported,
        usize::from(jvm),
        "{file}: JVM settings reported\n{log}"
    );
}

#[test]
fn apache_kafka_single_node_example() {
    check_fixture("apache-kafka-single-node.env");
}

#[test]
fn confluent_cp_kafka_kraft_example() {
    check_fixture("confluent-cp-kafka-kraft.env");
}

#[test]
fn bitnami_example() {
    check_fixture("bitnami-kafka.env");
}

#[test]
fn our_dev_compose_file() {
    check_env("docker-compose.yml", read_compose_env("docker-compose.yml"));
}

#[test]
fn our_app_stack_compose_file() {
    check_env(
        "app-stack.compose.yml",
        read_compose_env("app-stack.compose.yml"),
    );
}

#[test]
fn a_data_dir_formatted_for_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let original = read_env("apache-kafka-single-node.env");
    let (env, _) = for_this_machine(&original, &dir.path().join("data"));
    drop(start(&env, dir.path()).expect("first start"));
    let mut other = env.clone();
    for (k, v) in &mut other {
        if k == "CLUSTER_ID" {
            *v = "MkU3OEVBNTcwNTJENDM2Qk".to_string();
        }
    }
    let log = match start(&other, dir.path()) {
        Ok(started) => panic!("started with another cluster id:\n{}", started.log()),
        Err(log) => log,
    };
    assert!(
        log.contains("cluster.id=4L6g3nShT-eMCtK--X86sw")
            && log.contains("MkU3OEVBNTcwNTJENDM2Qk")
            && log.contains("belongs to another cluster"),
        "{log}"
    );
    // The same id as before starts.
    drop(start(&env, dir.path()).expect("same cluster id"));
}
