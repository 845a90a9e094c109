//! Recovery time: how long `Wal::open` takes to rebuild a store of
//! 1,000,000 keys, from a log of 1,000,000 records and from a snapshot.
//!
//! Each key is 11 bytes and each value 32; every iteration recovers into a
//! fresh store (its teardown is not timed).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;
use wirestack::kv::wal::{FsyncPolicy, Mutation, Wal, WalConfig};
use wirestack::kv::Store;

const RECORDS: u64 = 1_000_000;

fn no_compaction() -> WalConfig {
    WalConfig {
        fsync: FsyncPolicy::Never,
        compact_min_bytes: u64::MAX,
        ..WalConfig::default()
    }
}

/// Writes a log of `RECORDS` PUTs of distinct keys into `dir`.
fn write_log(dir: &Path, runtime: &tokio::runtime::Runtime) {
    let wal = Wal::open(dir, no_compaction(), Store::new()).expect("open");
    let value = Bytes::from(vec![b'v'; 32]);
    runtime.block_on(async {
        let mut last = None;
        for i in 0..RECORDS {
            last = Some(wal.append(Mutation::Put {
                key: Bytes::from(format!("key{i:08}")),
                value: value.clone(),
                expires_at: None,
            }));
        }
        if let Some(last) = last {
            last.await.expect("append");
        }
        wal.shutdown().await.expect("shutdown");
    });
}

/// Turns the log in `dir` into a snapshot and an empty log.
fn compact(dir: &Path, runtime: &tokio::runtime::Runtime) {
    let config = WalConfig {
        compact_min_bytes: 0,
        ..no_compaction()
    };
    let wal = Wal::open(dir, config, Store::new()).expect("open");
    runtime.block_on(async {
        // Compaction is considered after a batch; this one starts it.
        wal.append(Mutation::Delete {
            key: Bytes::from_static(b"none"),
        })
        .await
        .expect("append");
        wal.shutdown().await.expect("shutdown");
    });
    assert_eq!(wal.stats().compactions, 1);
}

fn recover(dir: &Path, runtime: &tokio::runtime::Runtime) -> Store {
    let store = Store::new();
    let wal = Wal::open(dir, no_compaction(), store.clone()).expect("recover");
    runtime.block_on(wal.shutdown()).expect("shutdown");
    store
}

fn recovery(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), &runtime);
    assert_eq!(recover(dir.path(), &runtime).len() as u64, RECORDS);

    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(RECORDS));
    group.bench_function("log of 1M records", |b| {
        b.iter_with_large_drop(|| recover(dir.path(), &runtime))
    });
    compact(dir.path(), &runtime);
    group.bench_function("snapshot of 1M keys", |b| {
        b.iter_with_large_drop(|| recover(dir.path(), &runtime))
    });
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
