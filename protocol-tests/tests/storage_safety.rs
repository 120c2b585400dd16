//! Storage safety against the broker process: the log-directory lock (a second broker on a live
//! data dir exits and touches nothing) and a disk that fills up under acks=all load (every
//! acknowledged record reads back, before and after a restart, and no offset is handed out
//! twice).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use protocol_tests::{batch, strom_binary, BrokerProcess, Client};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn create(client: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let response = client
        .call(
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                create_topics_request::CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.to_string()))
                                    .with_value(Some(StrBytes::from_string(v.to_string())))
                            })
                            .collect(),
                    ),
            ]),
        )
        .expect("create topics");
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// Produces one batch with acks=all; returns (error code, base offset).
fn produce(client: &mut Client, topic: &str, records: Bytes) -> anyhow::Result<(i16, i64)> {
    let response = client.call(
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ])]),
    )?;
    let p = &response.responses[0].partition_responses[0];
    Ok((p.error_code, p.base_offset))
}

/// Every record of partition 0, offset -> value, read with Fetch from the start.
fn read_all(client: &mut Client, topic: &str) -> BTreeMap<i64, Vec<u8>> {
    let mut records = BTreeMap::new();
    let mut offset = 0;
    loop {
        let response = client
            .call(
                11,
                &FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(8 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(4 << 20)])]),
            )
            .expect("fetch");
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch at {offset}: {partition:?}");
        let Some(mut bytes) = partition.records.clone().filter(|b| !b.is_empty()) else {
            assert_eq!(
                offset, partition.high_watermark,
                "nothing read below the end"
            );
            return records;
        };
        for set in RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched batches") {
            for record in set.records {
                if record.offset >= offset {
                    let value = record.value.expect("value").to_vec();
                    assert!(
                        records.insert(record.offset, value).is_none(),
                        "offset {} twice",
                        record.offset
                    );
                    offset = record.offset + 1;
                }
            }
        }
    }
}

fn value(i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("record-{i:08}-").into_bytes();
    v.resize(size, b'x');
    v
}

/// Checks that every acknowledged record is in `stored` at its acknowledged offset.
fn check_acknowledged(acked: &BTreeMap<i64, Vec<u8>>, stored: &BTreeMap<i64, Vec<u8>>) {
    let missing: Vec<i64> = acked
        .iter()
        .filter(|(offset, value)| stored.get(offset) != Some(value))
        .map(|(offset, _)| *offset)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records missing or changed, first offsets {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
fn a_second_broker_on_a_live_log_dir_exits_and_touches_nothing() {
    let mut broker = BrokerProcess::start(&["log.segment.bytes=65536"]);
    let mut client = broker.client();
    create(&mut client, "locked", &[]);
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), broker.addr);
        std::thread::spawn(move || {
            let mut client = Client::connect(addr).expect("connect");
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 100_000 {
                let v = value(i, 200);
                let (error, offset) =
                    produce(&mut client, "locked", batch(&[&v], None, Compression::None))
                        .expect("produce");
                assert_eq!(error, 0);
                acked.lock().expect("lock").insert(offset, v);
                i += 1;
            }
        })
    };
    let log_dir = broker.log_dir();
    for attempt in 0..5 {
        let started = Instant::now();
        let stderr_path = broker.data.path().join(format!("second-{attempt}.log"));
        let mut second = Command::new(strom_binary())
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("run a second broker");
        let status = loop {
            if let Some(status) = second.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = second.kill();
                let _ = second.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let status = status.unwrap_or_else(|| {
            panic!("attempt {attempt}: a second broker kept running on a live log dir: {stderr}")
        });
        assert!(!status.success(), "attempt {attempt}: {stderr}");
        assert!(
            stderr.contains("in use by another broker"),
            "attempt {attempt}: {stderr}"
        );
        assert!(stderr.contains(&log_dir.display().to_string()));
        assert!(
            !stderr.contains("truncated") && !stderr.contains("deleting"),
            "the second broker repaired something: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");
    assert!(broker.is_alive());
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 10, "the producer made progress");
    check_acknowledged(&acked, &read_all(&mut client, "locked"));
    broker.kill_and_restart();
    check_acknowledged(&acked, &read_all(&mut broker.client(), "locked"));
    broker.stop_and_restart();
    check_acknowledged(&acked, &read_all(&mut broker.client(), "locked"));
}

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// A tmpfs of `size` mounted on a fresh directory (needs root, as CI has).
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a small tmpfs failed: this test fills a real file system and needs root"
        );
        Tmpfs(dir)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// The exact failure behind the largest loss seen: the `.log` write of a batch succeeds (it
/// fits in the page the file already has) and the `.index` write after it fails (it needs a new
/// page and the file system has none). The index is derived data: the append must succeed and
/// the offset advance, or the next batch reuses the offset and a restart cuts the log there.
#[test]
fn a_failed_index_write_on_a_full_disk_loses_nothing() {
    const PAGE: u64 = 4096;
    let fs = Tmpfs::mount("4m");
    let data = fs.path().join("logs");
    let dir_override = format!("log.dirs={}", data.display());
    // An index entry for every batch: 8 bytes each, a new index page every 512 batches.
    let mut broker = BrokerProcess::start(&[&dir_override, "log.index.interval.bytes=1"]);
    let mut client = broker.client();
    create(&mut client, "idx", &[]);
    let segment = data.join("idx-0").join("00000000000000000000");
    let log_size = || std::fs::metadata(segment.with_extension("log")).map_or(0, |m| m.len());
    let mut acked: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut produce_ok = |client: &mut Client, i: usize, size: usize| -> i16 {
        let v = value(i, size);
        let (error, offset) =
            produce(client, "idx", batch(&[&v], None, Compression::None)).expect("produce");
        if error == 0 {
            assert!(acked.insert(offset, v).is_none(), "offset {offset} twice");
        }
        error
    };
    let overhead = {
        assert_eq!(produce_ok(&mut client, 0, 100), 0);
        log_size() - 100
    };
    for i in 1..511 {
        assert_eq!(produce_ok(&mut client, i, 100), 0);
    }
    // The 512th batch fills the index's first page exactly and is sized to leave about half a
    // page free at the end of the log.
    let target = (log_size() + overhead) % PAGE;
    let size = (PAGE / 2 + PAGE - target) % PAGE + if target == PAGE / 2 { PAGE } else { 0 };
    assert_eq!(produce_ok(&mut client, 511, size as usize), 0);
    let index_size = std::fs::metadata(segment.with_extension("index")).map_or(0, |m| m.len());
    assert_eq!(index_size, 512 * 8, "one 8-byte index entry per batch");
    // Now fill the file system with another file.
    let filler_path = fs.path().join("filler");
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(&filler_path).expect("filler");
        let chunk = vec![0u8; PAGE as usize];
        while filler.write_all(&chunk).is_ok() {}
    }
    let room = PAGE - log_size() % PAGE;
    assert!(
        room > overhead + 10,
        "room for one small batch in the log's last page"
    );
    let error = produce_ok(&mut client, 1000, (room - overhead - 10) as usize);
    assert_eq!(error, 0, "the batch is in the log, so the append succeeds");
    std::fs::remove_file(&filler_path).expect("remove filler");
    for i in 1001..1020 {
        assert_eq!(produce_ok(&mut client, i, 100), 0);
    }
    check_acknowledged(&acked, &read_all(&mut client, "idx"));
    broker.kill_and_restart();
    check_acknowledged(&acked, &read_all(&mut broker.client(), "idx"));
}

/// Fills the data directory's file system with acks=all produces, then reads back: every
/// acknowledged record must be there at its offset, before and after a restart, and each
/// offset is handed out once. (Before the fix, a failed index write after a good log write
/// left the offset unadvanced: the next batch reused it and a restart lost the records after.)
#[test]
fn a_full_disk_loses_no_acknowledged_record() {
    let fs = Tmpfs::mount("3m");
    let data = fs.path().join("logs");
    let dir_override = format!("log.dirs={}", data.display());
    let mut broker = BrokerProcess::start(&[&dir_override, "log.segment.bytes=262144"]);
    let mut client = broker.client();
    create(&mut client, "full", &[]);
    let mut acked: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    // Batches of varying size, so the failing write falls on log and index writes alike.
    for i in 0..20_000 {
        if Instant::now() > deadline || refused >= 50 {
            break;
        }
        let v = value(i, 100 + (i * 37) % 3000);
        let (error, offset) =
            produce(&mut client, "full", batch(&[&v], None, Compression::None)).expect("produce");
        if error == 0 {
            assert!(
                acked.insert(offset, v).is_none(),
                "offset {offset} acknowledged twice"
            );
        } else {
            assert_eq!(error, 56, "KAFKA_STORAGE_ERROR when the disk is full");
            refused += 1;
        }
    }
    assert!(refused > 0, "the file system never filled up");
    assert!(acked.len() > 100);
    assert!(broker.is_alive());
    let stored = read_all(&mut client, "full");
    check_acknowledged(&acked, &stored);
    broker.kill_and_restart();
    let stored = read_all(&mut broker.client(), "full");
    check_acknowledged(&acked, &stored);
    // Space again: the partition takes appends, and nothing acknowledged was lost.
    let _ = std::fs::remove_file(data.join("strom-metadata.json.tmp"));
    let _ = broker.stop();
    Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(fs.path())
        .status()
        .expect("remount");
    broker.stop_and_restart();
    let mut client = broker.client();
    let v = value(999_999, 10);
    let (error, offset) =
        produce(&mut client, "full", batch(&[&v], None, Compression::None)).expect("produce");
    assert_eq!(error, 0);
    acked.insert(offset, v);
    check_acknowledged(&acked, &read_all(&mut client, "full"));
}
