//! The compatibility matrix's Rust row: the `rdkafka` crate (librdkafka underneath) against a
//! running strom. The contract (arguments, JSON lines, scenarios) is compat/matrix/README.md:
//!
//!     strom-compat-rdkafka <bootstrap> <topic prefix> <scenario>...

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::get_rdkafka_version;
use rdkafka::{Offset, TopicPartitionList};

type Res<T = ()> = Result<T, String>;

const WAIT: Duration = Duration::from_secs(60);
const T0: i64 = 1_600_000_000_000;

/// One record as read back: (partition, offset, key, value, timestamp, headers).
#[derive(Debug, Clone)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<(bool, i64)>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

struct Ctx {
    bootstrap: String,
    prefix: String,
}

impl Ctx {
    fn topic(&self, scenario: &str) -> String {
        format!("{}{}", self.prefix, scenario.replace('.', "-"))
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    fn producer(&self, extra: &[(&str, &str)]) -> Res<FutureProducer> {
        let mut c = self.config();
        c.set("linger.ms", "5");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().map_err(|e| format!("producer: {e}"))
    }

    fn consumer(&self, extra: &[(&str, &str)]) -> Res<BaseConsumer> {
        let mut c = self.config();
        c.set("group.id", format!("{}reader", self.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().map_err(|e| format!("consumer: {e}"))
    }

    fn admin(&self) -> Res<AdminClient<DefaultClientContext>> {
        self.config().create().map_err(|e| format!("admin: {e}"))
    }
}

fn v(i: usize) -> Vec<u8> {
    format!("v{i}").into_bytes()
}

/// Sends every record and waits for all deliveries; fails on the first delivery error.
async fn send_all(producer: &FutureProducer, records: Vec<FutureRecord<'_, [u8], [u8]>>) -> Res {
    let futures: Vec<_> = records
        .into_iter()
        .map(|r| producer.send(r, Duration::from_secs(30)))
        .collect();
    for (i, f) in futures.into_iter().enumerate() {
        tokio::time::timeout(WAIT, f)
            .await
            .map_err(|_| format!("delivery {i} timed out"))?
            .map_err(|(e, _)| format!("delivery {i} failed: {e}"))?;
    }
    Ok(())
}

/// Reads `partitions` of `topic` from their beginnings (assign, no group) until `want` records
/// arrived or the wait is over; returns the records in arrival order.
fn read_all(ctx: &Ctx, topic: &str, partitions: &[i32], want: usize) -> Res<Vec<Rec>> {
    let consumer = ctx.consumer(&[])?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    poll_n(&consumer, want)
}

fn poll_n(consumer: &BaseConsumer, want: usize) -> Res<Vec<Rec>> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => return Err(format!("consume: {e}")),
            Some(Ok(m)) => out.push(Rec {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: match m.timestamp() {
                    Timestamp::CreateTime(t) => Some((true, t)),
                    Timestamp::LogAppendTime(t) => Some((false, t)),
                    Timestamp::NotAvailable => None,
                },
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    if out.len() < want {
        return Err(format!(
            "read {} of {want} records within {WAIT:?}",
            out.len()
        ));
    }
    Ok(out)
}

/// Polls a little longer to make sure nothing beyond the expected records arrives.
fn expect_no_more(consumer: &BaseConsumer, for_ms: u64) -> Res {
    let deadline = Instant::now() + Duration::from_millis(for_ms);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            return Err(format!(
                "unexpected extra record at partition {} offset {}",
                m.partition(),
                m.offset()
            ));
        }
    }
    Ok(())
}

fn values_once(recs: &[Rec], n: usize) -> Res {
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for r in recs {
        *seen.entry(r.value.clone().unwrap_or_default()).or_default() += 1;
    }
    for i in 0..n {
        match seen.get(&v(i)) {
            Some(1) => {}
            Some(c) => return Err(format!("v{i} read {c} times")),
            None => return Err(format!("v{i} missing")),
        }
    }
    if recs.len() != n {
        return Err(format!("read {} records, want {n}", recs.len()));
    }
    Ok(())
}

const ALL: [i32; 3] = [0, 1, 2];

/// `values` to partition 0 of `topic`, record i with timestamp T0 + i seconds.
fn timestamped<'a>(topic: &'a str, values: &'a [Vec<u8>]) -> Vec<FutureRecord<'a, [u8], [u8]>> {
    values
        .iter()
        .enumerate()
        .map(|(i, x)| {
            FutureRecord::to(topic)
                .partition(0)
                .payload(&x[..])
                .timestamp(T0 + i as i64 * 1000)
        })
        .collect()
}

async fn scenario(ctx: &Ctx, name: &str) -> Res<()> {
    let topic = ctx.topic(name);
    let t = topic.as_str();
    match name {
        "metadata" => {
            let c = ctx.consumer(&[])?;
            let md = c
                .fetch_metadata(Some(t), WAIT)
                .map_err(|e| format!("metadata: {e}"))?;
            let brokers: HashMap<i32, String> = md
                .brokers()
                .iter()
                .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
                .collect();
            let mt = md
                .topics()
                .iter()
                .find(|x| x.name() == t)
                .ok_or("topic not listed")?;
            if mt.partitions().len() != 3 {
                return Err(format!("{} partitions", mt.partitions().len()));
            }
            for p in mt.partitions() {
                let addr = brokers.get(&p.leader()).ok_or(format!(
                    "partition {} leader {} not a listed broker",
                    p.id(),
                    p.leader()
                ))?;
                if *addr != ctx.bootstrap {
                    return Err(format!(
                        "leader address {addr}, bootstrap {}",
                        ctx.bootstrap
                    ));
                }
            }
            Ok(())
        }
        "produce.keys" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..105).map(v).collect();
            let keys: Vec<Vec<u8>> = (0..100)
                .map(|i| format!("k{}", i % 10).into_bytes())
                .collect();
            let recs = (0..105)
                .map(|i| {
                    let r = FutureRecord::to(t).payload(&vals[i][..]);
                    if i < 100 {
                        r.key(&keys[i][..])
                    } else {
                        r
                    }
                })
                .collect();
            send_all(&p, recs).await?;
            let got = read_all(ctx, t, &ALL, 105)?;
            values_once(&got, 105)?;
            let mut by_key: HashMap<Vec<u8>, (i32, Vec<usize>)> = HashMap::new();
            for r in &got {
                let i: usize = std::str::from_utf8(&r.value.clone().unwrap_or_default()[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad value")?;
                match &r.key {
                    None if i >= 100 => {}
                    None => return Err(format!("v{i} lost its key")),
                    Some(_) if i >= 100 => return Err(format!("v{i} got a key")),
                    Some(k) => {
                        if *k != keys[i] {
                            return Err(format!("v{i} key {:?}", String::from_utf8_lossy(k)));
                        }
                        let e = by_key.entry(k.clone()).or_insert((r.partition, vec![]));
                        if e.0 != r.partition {
                            return Err(format!(
                                "key {:?} in two partitions",
                                String::from_utf8_lossy(k)
                            ));
                        }
                        e.1.push(i);
                    }
                }
            }
            for (k, (_, order)) in by_key {
                if order.windows(2).any(|w| w[0] > w[1]) {
                    return Err(format!(
                        "key {:?} out of order",
                        String::from_utf8_lossy(&k)
                    ));
                }
            }
            Ok(())
        }
        "produce.headers" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..10).map(v).collect();
            let recs = (0..10)
                .map(|i| {
                    let h = OwnedHeaders::new()
                        .insert(Header {
                            key: "h1",
                            value: Some("a"),
                        })
                        .insert(Header {
                            key: "h1",
                            value: Some("b"),
                        })
                        .insert(Header {
                            key: "bin",
                            value: Some(&b"\x00\xff\x01"[..]),
                        });
                    FutureRecord::to(t)
                        .partition(0)
                        .payload(&vals[i][..])
                        .headers(h)
                })
                .collect();
            send_all(&p, recs).await?;
            let got = read_all(ctx, t, &[0], 10)?;
            values_once(&got, 10)?;
            let want = vec![
                ("h1".to_string(), Some(b"a".to_vec())),
                ("h1".to_string(), Some(b"b".to_vec())),
                ("bin".to_string(), Some(b"\x00\xff\x01".to_vec())),
            ];
            for r in &got {
                if r.headers != want {
                    return Err(format!("headers {:?}", r.headers));
                }
            }
            Ok(())
        }
        "produce.timestamps" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..10).map(v).collect();
            send_all(&p, timestamped(t, &vals)).await?;
            let got = read_all(ctx, t, &[0], 10)?;
            for (i, r) in got.iter().enumerate() {
                if r.value.as_deref() != Some(&vals[i][..]) {
                    return Err(format!("record {i} is {:?}", r.value));
                }
                if r.timestamp != Some((true, T0 + i as i64 * 1000)) {
                    return Err(format!("record {i} timestamp {:?}", r.timestamp));
                }
            }
            Ok(())
        }
        "produce.gzip" | "produce.snappy" | "produce.lz4" | "produce.zstd" => {
            let codec = name.trim_start_matches("produce.");
            let p = ctx.producer(&[("compression.type", codec)])?;
            let vals: Vec<Vec<u8>> = (0..1000)
                .map(|i| {
                    let mut s = format!("v{i}-").into_bytes();
                    s.resize(100, b'x');
                    s
                })
                .collect();
            let recs = vals
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, recs).await?;
            let got = read_all(ctx, t, &ALL, 1000)?;
            let mut want: Vec<&Vec<u8>> = vals.iter().collect();
            let mut have: Vec<Vec<u8>> = got
                .into_iter()
                .map(|r| r.value.unwrap_or_default())
                .collect();
            want.sort();
            have.sort();
            if have.iter().ne(want) {
                return Err("values differ".into());
            }
            Ok(())
        }
        "produce.acks0" | "produce.acks1" | "produce.acksall" => {
            let acks = match name {
                "produce.acks0" => "0",
                "produce.acks1" => "1",
                _ => "all",
            };
            let p = ctx.producer(&[("acks", acks)])?;
            let vals: Vec<Vec<u8>> = (0..200).map(v).collect();
            let recs = vals
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, recs).await?;
            let got = read_all(ctx, t, &ALL, 200)?;
            values_once(&got, 200)
        }
        "produce.idempotent" => {
            let p = ctx.producer(&[("enable.idempotence", "true")])?;
            let vals: Vec<Vec<u8>> = (0..200).map(v).collect();
            let recs = vals
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, recs).await?;
            let got = read_all(ctx, t, &ALL, 200)?;
            values_once(&got, 200)?;
            for part in ALL {
                let offs: Vec<i64> = got
                    .iter()
                    .filter(|r| r.partition == part)
                    .map(|r| r.offset)
                    .collect();
                if offs.iter().enumerate().any(|(i, o)| *o != i as i64) {
                    return Err(format!("partition {part} offsets not dense from 0"));
                }
            }
            Ok(())
        }
        "consume.assign_seek" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..50).map(v).collect();
            let recs = vals
                .iter()
                .map(|x| FutureRecord::to(t).partition(0).payload(&x[..]))
                .collect();
            send_all(&p, recs).await?;
            let c = ctx.consumer(&[])?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(t, 0, Offset::Offset(20))
                .map_err(|e| e.to_string())?;
            c.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
            let got = poll_n(&c, 30)?;
            for (i, r) in got.iter().enumerate() {
                if r.offset != 20 + i as i64 || r.value.as_deref() != Some(&vals[20 + i][..]) {
                    return Err(format!(
                        "record {i}: offset {} value {:?}",
                        r.offset, r.value
                    ));
                }
            }
            Ok(())
        }
        "consume.from_beginning" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..30).map(v).collect();
            let recs = vals
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, recs).await?;
            let c = ctx.consumer(&[("group.id", &format!("{t}-g"))])?;
            c.subscribe(&[t]).map_err(|e| format!("subscribe: {e}"))?;
            let got = poll_n(&c, 30)?;
            values_once(&got, 30)
        }
        "consume.from_timestamp" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..20).map(v).collect();
            send_all(&p, timestamped(t, &vals)).await?;
            let c = ctx.consumer(&[])?;
            let mut q = TopicPartitionList::new();
            q.add_partition_offset(t, 0, Offset::Offset(T0 + 10_000))
                .map_err(|e| e.to_string())?;
            let found = c
                .offsets_for_times(q, WAIT)
                .map_err(|e| format!("offsets_for_times: {e}"))?;
            let off = found
                .find_partition(t, 0)
                .ok_or("no answer for partition 0")?
                .offset();
            if off != Offset::Offset(10) {
                return Err(format!("offsets_for_times gave {off:?}, want 10"));
            }
            c.assign(&found).map_err(|e| format!("assign: {e}"))?;
            let got = poll_n(&c, 1)?;
            if got[0].value.as_deref() != Some(&vals[10][..]) {
                return Err(format!("first value {:?}", got[0].value));
            }
            Ok(())
        }
        "group.subscribe_commit_resume" => {
            let p = ctx.producer(&[])?;
            let vals: Vec<Vec<u8>> = (0..50).map(v).collect();
            let first = vals[..40]
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, first).await?;
            let group = format!("{t}-group");
            {
                let a = ctx.consumer(&[("group.id", &group)])?;
                a.subscribe(&[t]).map_err(|e| format!("subscribe: {e}"))?;
                let got = poll_n(&a, 40)?;
                values_once(&got, 40)?;
                a.commit_consumer_state(CommitMode::Sync)
                    .map_err(|e| format!("commit: {e}"))?;
                a.unsubscribe();
            }
            let more = vals[40..]
                .iter()
                .map(|x| FutureRecord::to(t).payload(&x[..]))
                .collect();
            send_all(&p, more).await?;
            let b = ctx.consumer(&[("group.id", &group)])?;
            b.subscribe(&[t]).map_err(|e| format!("subscribe: {e}"))?;
            let got = poll_n(&b, 10)?;
            let mut have: Vec<Vec<u8>> = got
                .into_iter()
                .map(|r| r.value.unwrap_or_default())
                .collect();
            have.sort();
            let mut want: Vec<Vec<u8>> = vals[40..].to_vec();
            want.sort();
            if have != want {
                return Err(format!(
                    "B read {} records that are not the 10 new ones",
                    have.len()
                ));
            }
            expect_no_more(&b, 1500)
        }
        "admin.topics" => {
            let admin = ctx.admin()?;
            let new = format!("{t}-new");
            let opts = AdminOptions::new().operation_timeout(Some(WAIT));
            let r = admin
                .create_topics(&[NewTopic::new(&new, 2, TopicReplication::Fixed(1))], &opts)
                .await
                .map_err(|e| format!("create_topics: {e}"))?;
            if let Some(Err((_, code))) = r.first() {
                return Err(format!("create_topics: {code:?}"));
            }
            let c = ctx.consumer(&[])?;
            wait_for(|| {
                let md = c.fetch_metadata(Some(&new), Duration::from_secs(5)).ok()?;
                let mt = md.topics().iter().find(|x| x.name() == new)?;
                (mt.error().is_none() && mt.partitions().len() == 2).then_some(())
            })
            .ok_or("the new topic never showed with 2 partitions")?;
            let r = admin
                .delete_topics(&[&new], &opts)
                .await
                .map_err(|e| format!("delete_topics: {e}"))?;
            if let Some(Err((_, code))) = r.first() {
                return Err(format!("delete_topics: {code:?}"));
            }
            wait_for(|| {
                let md = c.fetch_metadata(None, Duration::from_secs(5)).ok()?;
                (!md.topics().iter().any(|x| x.name() == new)).then_some(())
            })
            .ok_or("the deleted topic is still listed")?;
            Ok(())
        }
        "admin.configs" => {
            let admin = ctx.admin()?;
            let opts = AdminOptions::new().request_timeout(Some(WAIT));
            let before = retention_ms(&admin, t, &opts).await?;
            if before.as_deref() != Some("604800000") {
                return Err(format!("retention.ms {before:?} before"));
            }
            let r =
                admin
                    .alter_configs(
                        &[AlterConfig::new(ResourceSpecifier::Topic(t))
                            .set("retention.ms", "3600000")],
                        &opts,
                    )
                    .await
                    .map_err(|e| format!("alter_configs: {e}"))?;
            if let Some(Err((code, _))) = r.first() {
                return Err(format!("alter_configs: {code:?}"));
            }
            let after = retention_ms(&admin, t, &opts).await?;
            if after.as_deref() != Some("3600000") {
                return Err(format!("retention.ms {after:?} after"));
            }
            Ok(())
        }
        "admin.partitions" => {
            let admin = ctx.admin()?;
            let opts = AdminOptions::new().operation_timeout(Some(WAIT));
            let r = admin
                .create_partitions(&[NewPartitions::new(t, 5)], &opts)
                .await
                .map_err(|e| format!("create_partitions: {e}"))?;
            if let Some(Err((_, code))) = r.first() {
                return Err(format!("create_partitions: {code:?}"));
            }
            let c = ctx.consumer(&[])?;
            wait_for(|| {
                let md = c.fetch_metadata(Some(t), Duration::from_secs(5)).ok()?;
                let mt = md.topics().iter().find(|x| x.name() == t)?;
                (mt.partitions().len() == 5).then_some(())
            })
            .ok_or("metadata never showed 5 partitions")?;
            Ok(())
        }
        other => Err(format!("unknown scenario {other}")),
    }
}

async fn retention_ms(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    opts: &AdminOptions,
) -> Res<Option<String>> {
    let r = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], opts)
        .await
        .map_err(|e| format!("describe_configs: {e}"))?;
    let res = r
        .into_iter()
        .next()
        .ok_or("no resource")?
        .map_err(|e| format!("describe_configs: {e:?}"))?;
    let entry = res.get("retention.ms").ok_or("no retention.ms")?;
    Ok(entry.value.clone())
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: strom-compat-rdkafka <bootstrap> <topic prefix> <scenario>...");
        std::process::exit(2);
    }
    let ctx = Ctx {
        bootstrap: args[0].clone(),
        prefix: args[1].clone(),
    };
    let (_, librdkafka) = get_rdkafka_version();
    emit(serde_json::json!({
        "client": "rdkafka",
        "version": format!("rdkafka crate 0.39.0 (librdkafka {librdkafka})"),
    }));
    for name in &args[2..] {
        let outcome = tokio::time::timeout(Duration::from_secs(90), scenario(&ctx, name)).await;
        let (status, detail) = match outcome {
            Ok(Ok(())) => ("pass", String::new()),
            Ok(Err(e)) => ("fail", e),
            Err(_) => ("fail", "timed out after 90 s".to_string()),
        };
        emit(serde_json::json!({"scenario": name, "status": status, "detail": detail}));
    }
}
