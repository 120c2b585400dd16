//! Named listeners as Kafka serves them: a client is told the advertised address of the
//! listener it connected through, in Metadata, FindCoordinator and DescribeCluster; listener
//! mistakes stop the broker at start with a message naming the listener.

use std::net::SocketAddr;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{free_port, start_refused, BrokerProcess, Client};

/// (host, port) that Metadata (v0 and v12), FindCoordinator (v0 and v4) and DescribeCluster
/// give this client; all of them must agree.
fn advertised_to(client: &mut Client) -> (String, i32) {
    let mut seen = Vec::new();
    for version in [0, 12] {
        let response = client
            .call(
                version,
                &MetadataRequest::default().with_topics(Some(vec![])),
            )
            .expect("metadata");
        assert_eq!(response.brokers.len(), 1);
        seen.push((
            response.brokers[0].host.to_string(),
            response.brokers[0].port,
        ));
    }
    let v0 = client
        .call(
            0,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        )
        .expect("find coordinator v0");
    assert_eq!(v0.error_code, 0);
    seen.push((v0.host.to_string(), v0.port));
    let v4 = client
        .call(
            4,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        )
        .expect("find coordinator v4");
    assert_eq!(v4.coordinators[0].error_code, 0);
    seen.push((v4.coordinators[0].host.to_string(), v4.coordinators[0].port));
    let cluster = client
        .call(0, &DescribeClusterRequest::default())
        .expect("describe cluster");
    seen.push((cluster.brokers[0].host.to_string(), cluster.brokers[0].port));
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "APIs disagree on the address: {seen:?}"
    );
    seen.swap_remove(0)
}

#[test]
fn each_client_is_told_the_address_of_its_own_listener() {
    let (internal, host, third) = (free_port(), free_port(), free_port());
    let broker = BrokerProcess::start(&[
        &format!(
            "listeners=INTERNAL://127.0.0.1:{internal},PLAINTEXT_HOST://127.0.0.1:{host},\
             CONTROLLER://127.0.0.1:{third},THIRD://127.0.0.1:0"
        ),
        &format!("advertised.listeners=INTERNAL://kafka:29092,PLAINTEXT_HOST://localhost:{host}"),
        "listener.security.protocol.map=INTERNAL:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,\
         CONTROLLER:PLAINTEXT,THIRD:PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=INTERNAL",
        "process.roles=broker,controller",
    ]);
    let at = |port: u16| Client::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(
        advertised_to(&mut at(internal).expect("internal listener")),
        ("kafka".to_string(), 29092)
    );
    assert_eq!(
        advertised_to(&mut at(host).expect("host listener")),
        ("localhost".to_string(), i32::from(host))
    );
    // The controller listener is never served to clients (no controller runs yet).
    assert!(at(third).is_err(), "controller listener must not be bound");
    // A listener without an advertised entry advertises the address it is bound to, with
    // port 0 resolved.
    let log = broker.log();
    let bound = log
        .lines()
        .find_map(|l| l.split("listener=THIRD://127.0.0.1:").nth(1))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u16>()
                .ok()
        })
        .unwrap_or_else(|| panic!("THIRD's bound port is logged:\n{log}"));
    assert_eq!(
        advertised_to(&mut at(bound).expect("third listener")),
        ("127.0.0.1".to_string(), i32::from(bound))
    );
}

#[test]
fn listeners_are_derived_from_advertised_listeners_when_unset() {
    let (a, b) = (free_port(), free_port());
    // As many compose files set them: only advertised listeners. The harness sets
    // listeners itself unless a test does; an empty value counts as unset, as an empty
    // KAFKA_LISTENERS does in Kafka's images.
    let broker = BrokerProcess::start(&[
        "listeners=",
        &format!("advertised.listeners=PLAINTEXT://localhost:{a},PLAINTEXT_HOST://localhost:{b}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    ]);
    for port in [a, b] {
        let mut client =
            Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("derived listener");
        assert_eq!(
            advertised_to(&mut client),
            ("localhost".to_string(), i32::from(port))
        );
    }
    let log = broker.log();
    assert!(log.contains("listeners is not set"), "{log}");
}

#[test]
fn listener_mistakes_stop_the_broker_with_a_message_naming_them() {
    let port = free_port();
    let cases: &[(&[&str], &str)] = &[
        (
            &["listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"],
            "SSL://127.0.0.1:0 uses SSL",
        ),
        (
            &[
                "listeners=CLIENTS://127.0.0.1:0",
                "listener.security.protocol.map=CLIENTS:SASL_SSL",
            ],
            "CLIENTS://127.0.0.1:0 uses SASL_SSL",
        ),
        (
            &["listeners=CLIENTS://127.0.0.1:0"],
            "listener CLIENTS has no entry",
        ),
        (
            &[
                "listeners=PLAINTEXT://127.0.0.1:0",
                "advertised.listeners=PLAINTEXT://0.0.0.0:9092",
            ],
            "wildcard address 0.0.0.0",
        ),
        (
            &[
                "listeners=PLAINTEXT://127.0.0.1:0",
                "advertised.listeners=EXTERNAL://example.com:9092",
            ],
            "listener EXTERNAL is not in listeners (PLAINTEXT)",
        ),
        (
            &[
                "listeners=PLAINTEXT://127.0.0.1:0",
                "inter.broker.listener.name=BROKER",
            ],
            "no listener named BROKER",
        ),
    ];
    for (overrides, expected) in cases {
        let mut args = Vec::new();
        for o in *overrides {
            args.push("--override");
            args.push(*o);
        }
        let (status, log) = start_refused(&args, &[]);
        assert!(!status.success(), "{overrides:?} started");
        assert!(
            log.contains(expected),
            "{overrides:?}: want {expected:?} in\n{log}"
        );
    }
    // The same through the environment, as a compose file sets it.
    let (status, log) = start_refused(
        &[],
        &[
            (
                "KAFKA_LISTENERS",
                &format!("SASL_PLAINTEXT://127.0.0.1:{port}"),
            ),
            (
                "KAFKA_ADVERTISED_LISTENERS",
                &format!("SASL_PLAINTEXT://localhost:{port}"),
            ),
        ],
    );
    assert!(!status.success());
    assert!(log.contains("uses SASL_PLAINTEXT"), "{log}");
}
