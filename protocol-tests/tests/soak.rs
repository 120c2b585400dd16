//! Issue 18's concurrency soak: four admin clients create, delete and grow the same few topic
//! names for 60 s (`STROM_SOAK_SECONDS`) while producers and consumers run. Afterwards every
//! topic in the metadata is fully usable, and no record crosses from one incarnation of a name
//! to the next.
//!
//! Which incarnation took a produce is known when the topic id read before the produce and the
//! one read after it are the same (ids are never reused, so the topic was that incarnation all
//! along). Each record's value is unique; a record read (by topic id) from an incarnation other
//! than the one it was verified in, or at another offset, is a crossing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use protocol_tests::{batch, BrokerProcess, Client};
use uuid::Uuid;

const NAMES: [&str; 3] = ["soak-a", "soak-b", "soak-c"];
const MAX_PARTITIONS: i32 = 8;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn soak_seconds() -> u64 {
    std::env::var("STROM_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// A small deterministic generator per thread (xorshift), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Shared {
    /// value -> (topic id, partition, offset) of every produce known to have landed there.
    verified: Mutex<HashMap<String, (Uuid, i32, i64)>>,
    violations: Mutex<Vec<String>>,
    stop: AtomicBool,
    creates: AtomicU64,
    deletes: AtomicU64,
    grows: AtomicU64,
    produced: AtomicU64,
    consumed: AtomicU64,
}

impl Shared {
    fn violation(&self, what: String) {
        if let Ok(mut v) = self.violations.lock() {
            if v.len() < 50 {
                v.push(what);
            }
        }
    }

    /// Checks one record read from incarnation `id` at (`partition`, `offset`).
    fn check_read(&self, id: Uuid, partition: i32, offset: i64, value: &str) {
        let verified = self
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(value).copied());
        if let Some(landed) = verified {
            if landed != (id, partition, offset) {
                self.violation(format!(
                    "record {value:?} was acknowledged in {landed:?} but read from \
                     ({id}, {partition}, {offset})"
                ));
            }
        }
        if !value.starts_with("soak/") {
            self.violation(format!("a record nobody wrote: {value:?}"));
        }
    }
}

/// (topic id, partition count) of a name, or None when it does not exist.
fn describe(client: &mut Client, topic: &str) -> Option<(Uuid, i32)> {
    let response = client
        .call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(name(topic)))]))
                .with_allow_auto_topic_creation(false),
        )
        .ok()?;
    let t = response.topics.first()?;
    (t.error_code == 0).then_some((t.topic_id, t.partitions.len() as i32))
}

fn admin(addr: std::net::SocketAddr, seed: u64, shared: Arc<Shared>) {
    let mut rng = Rng(seed);
    let mut client = Client::connect(addr).expect("connect");
    while !shared.stop.load(Ordering::Relaxed) {
        let topic = NAMES[rng.below(NAMES.len() as u64) as usize];
        match rng.below(3) {
            0 => {
                let partitions = 1 + rng.below(4) as i32;
                let request = CreateTopicsRequest::default()
                    .with_topics(vec![create_topics_request::CreatableTopic::default()
                        .with_name(name(topic))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)])
                    .with_timeout_ms(30_000);
                let code = client
                    .call(7, &request)
                    .map(|r| r.topics[0].error_code)
                    .unwrap_or(-100);
                match code {
                    0 => drop(shared.creates.fetch_add(1, Ordering::Relaxed)),
                    36 => {} // TOPIC_ALREADY_EXISTS
                    other => shared.violation(format!("CreateTopics {topic}: error {other}")),
                }
            }
            1 => {
                let request = DeleteTopicsRequest::default()
                    .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(name(topic)))])
                    .with_timeout_ms(30_000);
                let code = client
                    .call(6, &request)
                    .map(|r| r.responses[0].error_code)
                    .unwrap_or(-100);
                match code {
                    0 => drop(shared.deletes.fetch_add(1, Ordering::Relaxed)),
                    3 => {} // UNKNOWN_TOPIC_OR_PARTITION
                    other => shared.violation(format!("DeleteTopics {topic}: error {other}")),
                }
            }
            _ => {
                let Some((_, count)) = describe(&mut client, topic) else {
                    continue;
                };
                if count >= MAX_PARTITIONS {
                    continue;
                }
                let request = CreatePartitionsRequest::default()
                    .with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(name(topic))
                            .with_count(count + 1),
                    ])
                    .with_timeout_ms(30_000);
                let code = client
                    .call(3, &request)
                    .map(|r| r.results[0].error_code)
                    .unwrap_or(-100);
                match code {
                    0 => drop(shared.grows.fetch_add(1, Ordering::Relaxed)),
                    // UNKNOWN_TOPIC_OR_PARTITION (deleted meanwhile), INVALID_PARTITIONS
                    // (grown meanwhile, or re-created with more partitions).
                    3 | 37 => {}
                    other => shared.violation(format!("CreatePartitions {topic}: error {other}")),
                }
            }
        }
    }
}

/// Produce v9, acks=1, one record; (error code, base offset).
fn produce(client: &mut Client, topic: &str, partition: i32, value: &str) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch(&[value.as_bytes()], None, Compression::None))),
            ])]);
    match client.call(9, &request) {
        Ok(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        Err(_) => (-100, -1),
    }
}

fn producer(addr: std::net::SocketAddr, seed: u64, shared: Arc<Shared>) {
    let mut rng = Rng(seed);
    let mut client = Client::connect(addr).expect("connect");
    let mut sequence = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let topic = NAMES[rng.below(NAMES.len() as u64) as usize];
        let Some((id, count)) = describe(&mut client, topic) else {
            continue;
        };
        let partition = rng.below(count as u64) as i32;
        sequence += 1;
        let value = format!("soak/{seed}/{sequence}");
        match produce(&mut client, topic, partition, &value) {
            (0, offset) => {
                shared.produced.fetch_add(1, Ordering::Relaxed);
                if describe(&mut client, topic).map(|d| d.0) == Some(id) {
                    if let Ok(mut verified) = shared.verified.lock() {
                        verified.insert(value, (id, partition, offset));
                    }
                }
            }
            (3, _) => {} // deleted, or re-created with fewer partitions, meanwhile
            (code, _) => shared.violation(format!("Produce {topic}-{partition}: error {code}")),
        }
    }
}

/// Fetch v13 by topic id from `offset`: (error code, high watermark, (offset, value) pairs).
fn fetch(
    client: &mut Client,
    id: Uuid,
    partition: i32,
    offset: i64,
) -> (i16, i64, Vec<(i64, String)>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(256 << 10)])]);
    let Ok(response) = client.call(13, &request) else {
        return (-100, -1, Vec::new());
    };
    let Some(p) = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
    else {
        return (-101, -1, Vec::new());
    };
    let mut records = Vec::new();
    if let Some(bytes) = &p.records {
        let mut buf: Bytes = bytes.clone();
        if let Ok(sets) = RecordBatchDecoder::decode_all(&mut buf) {
            for set in sets {
                for record in set.records {
                    let value = record
                        .value
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                    records.push((record.offset, value));
                }
            }
        }
    }
    (p.error_code, p.high_watermark, records)
}

fn consumer(addr: std::net::SocketAddr, seed: u64, shared: Arc<Shared>) {
    let mut rng = Rng(seed);
    let mut client = Client::connect(addr).expect("connect");
    while !shared.stop.load(Ordering::Relaxed) {
        let topic = NAMES[rng.below(NAMES.len() as u64) as usize];
        let Some((id, count)) = describe(&mut client, topic) else {
            continue;
        };
        let partition = rng.below(count as u64) as i32;
        match fetch(&mut client, id, partition, 0) {
            (0, _, records) => {
                for (offset, value) in records {
                    shared.consumed.fetch_add(1, Ordering::Relaxed);
                    shared.check_read(id, partition, offset, &value);
                }
            }
            // UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION: deleted or shrunk meanwhile.
            (100 | 3, _, _) => {}
            (code, _, _) => {
                shared.violation(format!("Fetch {topic} ({id})-{partition}: error {code}"))
            }
        }
    }
}

/// Every record of a partition of incarnation `id`, read to its high watermark.
fn read_partition(client: &mut Client, id: Uuid, partition: i32) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (code, high_watermark, records) = fetch(client, id, partition, offset);
        assert_eq!(code, 0, "fetch {id}-{partition} at {offset}");
        if offset >= high_watermark {
            return out;
        }
        let before = out.len();
        for (o, v) in records {
            if o >= offset {
                offset = o + 1;
                out.push((o, v));
            }
        }
        assert!(
            out.len() > before,
            "{id}-{partition}: no progress at {offset}"
        );
    }
}

#[test]
fn admin_clients_racing_producers_and_consumers_leave_every_topic_whole() {
    let broker = BrokerProcess::start(&["num.partitions=1"]);
    let shared = Arc::new(Shared::default());
    let mut threads = Vec::new();
    for seed in 1..=4u64 {
        let shared = shared.clone();
        let addr = broker.addr;
        threads.push(std::thread::spawn(move || {
            admin(addr, 0x9e37_79b9 * seed, shared)
        }));
    }
    for seed in 11..=12u64 {
        let (a, b) = (shared.clone(), shared.clone());
        let addr = broker.addr;
        threads.push(std::thread::spawn(move || {
            producer(addr, 0x85eb_ca6b * seed, a)
        }));
        threads.push(std::thread::spawn(move || {
            consumer(addr, 0xc2b2_ae35 * seed, b)
        }));
    }
    let started = Instant::now();
    let seconds = soak_seconds();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
        if shared.violations.lock().map_or(true, |v| !v.is_empty()) {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a soak thread panicked");
    }
    let violations = shared
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    assert!(violations.is_empty(), "during the soak: {violations:#?}");
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let verified = shared
        .verified
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    println!(
        "soak {seconds} s: {} creates, {} deletes, {} grows, {} produced ({} verified), {} \
         records consumed",
        count(&shared.creates),
        count(&shared.deletes),
        count(&shared.grows),
        count(&shared.produced),
        verified.len(),
        count(&shared.consumed)
    );
    // The run proved something only if every kind of operation happened many times.
    assert!(count(&shared.creates) >= 10 && count(&shared.deletes) >= 10);
    assert!(count(&shared.grows) >= 5 && verified.len() >= 100);

    // Afterwards: every record verified in a live incarnation is there at its offset, nothing
    // else crossed, and every partition of every topic takes and serves records.
    let mut client = broker.client();
    for topic in NAMES {
        let Some((id, count)) = describe(&mut client, topic) else {
            continue;
        };
        for partition in 0..count {
            let records = read_partition(&mut client, id, partition);
            for (offset, value) in &records {
                shared.check_read(id, partition, *offset, value);
            }
            let stored: HashMap<i64, &String> = records.iter().map(|(o, v)| (*o, v)).collect();
            for (value, (vid, vp, vo)) in &verified {
                if (*vid, *vp) == (id, partition) {
                    assert_eq!(
                        stored.get(vo).copied(),
                        Some(value),
                        "an acknowledged record of {topic} ({id})-{partition} is missing"
                    );
                }
            }
            let (code, offset) = produce(&mut client, topic, partition, "soak/after");
            assert_eq!(code, 0, "{topic}-{partition} does not take records");
            let (code, _, records) = fetch(&mut client, id, partition, offset);
            assert_eq!(code, 0);
            assert_eq!(records.first().map(|r| r.1.as_str()), Some("soak/after"));
        }
        // One more incarnation: it starts empty.
        let delete = DeleteTopicsRequest::default()
            .with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(topic)))
            ])
            .with_timeout_ms(30_000);
        assert_eq!(
            client.call(6, &delete).expect("delete").responses[0].error_code,
            0
        );
        let create = CreateTopicsRequest::default()
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(MAX_PARTITIONS)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        assert_eq!(
            client.call(7, &create).expect("create").topics[0].error_code,
            0
        );
        let (new_id, _) = describe(&mut client, topic).expect("re-created");
        for partition in 0..MAX_PARTITIONS {
            let (code, high_watermark, records) = fetch(&mut client, new_id, partition, 0);
            assert_eq!(
                (code, high_watermark),
                (0, 0),
                "{topic}-{partition} inherited data"
            );
            assert!(records.is_empty());
        }
    }
    let log = broker.log();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
}
