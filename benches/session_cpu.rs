//! CPU per write with sessions against without, through `KvClient::connect`
//! at depth 64, same run: process CPU time (client and in-process server
//! together, every thread) per PUT, in rounds that alternate the two so
//! that both see the same machine.
//!
//! `cargo bench --bench session_cpu` (ROUNDS=N, default 5; WRITES=N per
//! round, default 20000; FSYNC=always for a data directory with
//! `--fsync always`, default memory only; ONLY=with or ONLY=without runs
//! the rounds of one side alone, for a profiler; FIRST=without runs each
//! round's "without" before its "with", to check that the order does not
//! matter)
//!
//! "with" is a server with sessions (the default window): every PUT is
//! stamped, logged with its session entry and recorded in the table.
//! "without" is the same server with `session_window` 0: the client stamps
//! nothing, as against a server that has no sessions.

use futures::stream::{self, StreamExt};
use std::time::Duration;
use wirestack::kv::wal::{FsyncPolicy, WalConfig};
use wirestack::kv::{KvClient, KvServer, KvServerConfig, SessionConfig};

/// CPU time of every thread of this process so far (nanoseconds, from the
/// scheduler's accounting; as `stack_cpu` reads it).
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += text
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const DEPTH: usize = 64;

/// µs of CPU per PUT of `writes` PUTs, `DEPTH` in flight, against a fresh server.
async fn round(sessions: bool, writes: usize, fsync: bool, dir: &std::path::Path) -> f64 {
    let config = KvServerConfig {
        sessions: SessionConfig {
            window: if sessions {
                SessionConfig::default().window
            } else {
                0
            },
            ..SessionConfig::default()
        },
        data_dir: fsync.then(|| dir.join(if sessions { "with" } else { "without" })),
        wal: WalConfig {
            fsync: FsyncPolicy::Always,
            ..WalConfig::default()
        },
        ..KvServerConfig::default()
    };
    let server = KvServer::start("127.0.0.1:0", config).await.unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    let value = vec![b'x'; 64];
    // Warm up: connection, table, allocator.
    for i in 0..1000 {
        client.put(format!("k{}", i % 1000), value.clone()).await.unwrap();
    }
    let started = process_cpu();
    stream::iter(0..writes)
        .map(|i| {
            let (client, value) = (client.clone(), value.clone());
            async move { client.put(format!("k{}", i % 1000), value).await.unwrap() }
        })
        .buffer_unordered(DEPTH)
        .collect::<Vec<()>>()
        .await;
    let spent = process_cpu() - started;
    drop(client);
    server.shutdown().await.unwrap();
    if fsync {
        let _ = std::fs::remove_dir_all(dir.join(if sessions { "with" } else { "without" }));
    }
    spent.as_secs_f64() * 1e6 / writes as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let (rounds, writes) = (env("ROUNDS", 5), env("WRITES", 20_000));
    let fsync = std::env::var("FSYNC").is_ok_and(|f| f == "always");
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let only = std::env::var("ONLY").ok();
        let (run_with, run_without) = match only.as_deref() {
            Some("with") => (true, false),
            Some("without") => (false, true),
            _ => (true, true),
        };
        let without_first = std::env::var("FIRST").is_ok_and(|f| f == "without");
        for _ in 0..rounds {
            if run_without && without_first {
                without.push(round(false, writes, fsync, dir.path()).await);
            }
            if run_with {
                with.push(round(true, writes, fsync, dir.path()).await);
            }
            if run_without && !without_first {
                without.push(round(false, writes, fsync, dir.path()).await);
            }
        }
        let mode = if fsync { "--fsync always" } else { "memory" };
        match (run_with, run_without) {
            (true, true) => {
                let (w, wo) = (median(with), median(without));
                println!("| {mode}, depth {DEPTH} | {w:.2} | {wo:.2} | {:.3} |", w / wo);
            }
            (true, false) => println!("{mode}, depth {DEPTH}, with: {:.2} µs/PUT", median(with)),
            _ => println!("{mode}, depth {DEPTH}, without: {:.2} µs/PUT", median(without)),
        }
    });
}
