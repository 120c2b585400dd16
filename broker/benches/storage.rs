//! The storage hot path in isolation: batch validation (CRC-32C), append, and the fetch read
//! of whole batches. Run with `cargo bench -p strom`; figures are per batch of 10 x 1 KiB
//! records (throughput in bytes).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::Compression;
use strom::config::LogConfig;
use strom::log::{batch, PartitionLog, TopicPartition};

const RECORDS_PER_BATCH: usize = 10;
const VALUE_BYTES: usize = 1024;

fn sample_batch() -> Vec<u8> {
    let value = vec![b'x'; VALUE_BYTES];
    let values = vec![value.as_slice(); RECORDS_PER_BATCH];
    strom::test_support::record_batch(&values, 1_700_000_000_000, None, Compression::None)
        .expect("encode")
        .to_vec()
}

fn config() -> Arc<LogConfig> {
    Arc::new(LogConfig {
        segment_bytes: 1 << 30,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 4096,
        flush_messages: i64::MAX,
        max_message_bytes: 1 << 20,
        fsync_acks_all: true,
        ..LogConfig::default()
    })
}

fn storage(c: &mut Criterion) {
    let bytes = sample_batch();
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("validate", |b| {
        b.iter(|| batch::validate(std::hint::black_box(&bytes)).expect("valid"))
    });

    // A fresh log per sample: one ever-growing file would measure the disk's write-back rate
    // once the page cache's dirty limit is reached, not the append path.
    group.bench_function("append", |b| {
        b.iter_custom(|iterations| {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = PartitionLog::open(dir.path(), TopicPartition::new("b", 0), config(), 0, 0)
                .expect("open log");
            let started = std::time::Instant::now();
            for _ in 0..iterations {
                log.append(std::hint::black_box(&bytes), 0).expect("append");
            }
            started.elapsed()
        })
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let log = PartitionLog::open(dir.path(), TopicPartition::new("bench", 0), config(), 0, 0)
        .expect("open log");
    for _ in 0..2_000 {
        log.append(&bytes, 0).expect("append");
    }

    let end = log.offsets().high_watermark;
    let mut offset = 0;
    group.bench_function("read one batch", |b| {
        b.iter(|| {
            offset = (offset + RECORDS_PER_BATCH as i64) % end;
            log.read(offset, bytes.len()).expect("read").expect("data")
        })
    });
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("read 1 MiB", |b| {
        b.iter(|| {
            offset = (offset + 97 * RECORDS_PER_BATCH as i64) % end;
            log.read(offset, 1 << 20).expect("read").expect("data")
        })
    });
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
