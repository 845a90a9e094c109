//! Recovery time: how long `Wal::open` takes to rebuild a store of
//! 1,000,000 keys, from a log of 1,000,000 records and from a snapshot —
//! and from a log of 1,000,000 SEQUENCED writes of one session (each
//! record a write and its session-table entry; `acked_below` trailing by
//! 100, so replay also keeps and drops answers as the server did).
//!
//! Each key is 11 bytes and each value 32; every iteration recovers into a
//! fresh store (its teardown is not timed).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;
use wirestack::kv::session::Begin;
use wirestack::kv::wal::{Claim, FsyncPolicy, Mutation, Wal, WalConfig};
use wirestack::kv::{Sequenced, Store};

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

/// The session of the sequenced log.
const SESSION: [u8; 16] = *b"recovery-bench-1";

/// Writes a log of `RECORDS` sequenced PUTs of distinct keys into `dir`,
/// as the server logs them: each claimed in the session table, then
/// appended with its ticket.
fn write_sequenced_log(dir: &Path, runtime: &tokio::runtime::Runtime) {
    let store = Store::new();
    let wal = Wal::open(dir, no_compaction(), store.clone()).expect("open");
    let value = Bytes::from(vec![b'v'; 32]);
    runtime.block_on(async {
        let mut last = None;
        for i in 0..RECORDS {
            let sequenced = Sequenced {
                seq: i + 1,
                acked_below: (i + 1).saturating_sub(100).max(1),
            };
            let Begin::Apply(ticket) = store.sessions().begin(SESSION, sequenced) else {
                panic!("seq {} was not new", i + 1);
            };
            let mutation = Mutation::Put {
                key: Bytes::from(format!("key{i:08}")),
                value: value.clone(),
                expires_at: None,
            };
            last = Some(wal.append_sequenced(mutation, Claim::new(None), ticket, sequenced));
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

    let sequenced = tempfile::tempdir().expect("temp dir");
    write_sequenced_log(sequenced.path(), &runtime);
    let store = recover(sequenced.path(), &runtime);
    assert_eq!(store.len() as u64, RECORDS);
    // The table came back: the last 101 answers (acked_below trails by 100).
    assert_eq!(store.sessions().answers_of(&SESSION), 101);
    drop(store);
    group.bench_function("log of 1M sequenced writes", |b| {
        b.iter_with_large_drop(|| recover(sequenced.path(), &runtime))
    });
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
