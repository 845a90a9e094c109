//! Durability of `kv serve --data-dir`: what was acknowledged survives
//! SIGKILL, torn tails are cut, damage elsewhere refuses to start,
//! compaction loses nothing, and TTLs survive restarts.

use bytes::Bytes;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wirestack::kv::wal::FsyncPolicy;
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig, Request, Response};
use wirestack::pipeline::Pipeline;
use wirestack::transport;

type Client = KvClient<Pipeline<Request, Response>>;

/// A `kv serve` process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = spawn(dir, extra);
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("read the first line");
        let addr = match line.strip_prefix("listening on ") {
            Some(addr) => addr.trim().to_owned(),
            None => {
                let _ = child.kill();
                let stderr = stderr_of(&mut child);
                panic!("kv serve did not start: {line:?}, stderr: {stderr}");
            }
        };
        Server { child, addr }
    }

    /// One plain pipelined connection, without reconnect or retry: when the
    /// server dies, its calls fail at once instead of retrying.
    async fn client(&self) -> Client {
        let transport = transport::connect(&self.addr, ClientCodec::new())
            .await
            .expect("connect");
        KvClient::new(Pipeline::new(transport))
    }

    /// SIGKILL: no chance to answer, flush or fsync anything more.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the exit status and everything the server logged.
    fn terminate(mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(10));
        (status, stderr_of(&mut self.child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("KV_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kv serve")
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    stderr
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "kv serve did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn newest_file(dir: &Path, prefix: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && !name.ends_with(".tmp")
        })
        .collect();
    files.sort();
    files
        .pop()
        .unwrap_or_else(|| panic!("no {prefix}* file in {}", dir.display()))
}

/// What each key must hold after a crash: the value of the last
/// acknowledged write (`None` for a delete), unless a write was in flight,
/// whose value is then allowed as well.
#[derive(Debug, Default)]
struct Expected {
    acknowledged: HashMap<String, Option<Bytes>>,
    in_flight: HashMap<String, Option<Bytes>>,
}

impl Expected {
    async fn check(&self, client: &Client) {
        let mut keys: Vec<_> = self.acknowledged.keys().cloned().collect();
        keys.sort();
        let found = client.get_many(keys.clone()).await.expect("get");
        for (key, found) in keys.iter().zip(found) {
            let acked = &self.acknowledged[key];
            let allowed = found == *acked || self.in_flight.get(key).is_some_and(|v| found == *v);
            assert!(
                allowed,
                "{key}: found {found:?}, acknowledged {acked:?}, in flight {:?}",
                self.in_flight.get(key)
            );
        }
    }

    /// After a check, the state found is the new truth.
    async fn settle(&mut self, client: &Client) {
        let in_flight: Vec<_> = self.in_flight.drain().collect();
        let found = client
            .get_many(in_flight.iter().map(|(key, _)| key.clone()))
            .await
            .expect("get");
        for ((key, value), found) in in_flight.into_iter().zip(found) {
            if found == value {
                self.acknowledged.insert(key, value);
            }
        }
    }
}

/// One connection writing and deleting keys of its own, one at a time,
/// until the server dies; records what was acknowledged.
async fn write_until_killed(
    client: Client,
    connection: usize,
    round: usize,
    key_space: usize,
    acknowledged: Arc<AtomicUsize>,
) -> Expected {
    let mut expected = Expected::default();
    let mut rng = fastrand::Rng::with_seed((connection * 1000 + round) as u64);
    for i in 0.. {
        let key = format!("c{connection}-k{}", rng.usize(..key_space));
        let value = (!rng.u8(..).is_multiple_of(8))
            .then(|| Bytes::from(format!("r{round}-{i}-{}", "x".repeat(rng.usize(..200)))));
        expected.in_flight.insert(key.clone(), value.clone());
        let done = match &value {
            Some(value) => client.put(key.clone(), value.clone()).await.map(drop),
            None => client.delete(key.clone()).await.map(drop),
        };
        if done.is_err() {
            // The server is gone; this write may or may not have landed.
            break;
        }
        expected.in_flight.remove(&key);
        expected.acknowledged.insert(key, value);
        acknowledged.fetch_add(1, Ordering::Relaxed);
    }
    expected
}

/// Runs `rounds` of: start, write from `connections` connections, SIGKILL
/// at a random moment, restart and check every acknowledged write.
async fn crash_cycles(extra: &[&str], rounds: usize, connections: usize, key_space: usize) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut expected = Expected::default();
    for round in 0..rounds {
        let server = Server::start(&dir, extra);
        let checker = server.client().await;
        expected.check(&checker).await;
        expected.settle(&checker).await;

        let mut writers = Vec::new();
        let acknowledged = Arc::new(AtomicUsize::new(0));
        for connection in 0..connections {
            let client = server.client().await;
            writers.push(tokio::spawn(write_until_killed(
                client,
                connection,
                round,
                key_space,
                acknowledged.clone(),
            )));
        }
        // Once the writes are under way, the random moment of the crash.
        let deadline = Instant::now() + Duration::from_secs(10);
        while acknowledged.load(Ordering::Relaxed) < 50 {
            assert!(Instant::now() < deadline, "round {round}: no writes acknowledged");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
        server.kill();
        for writer in writers {
            let found = writer.await.unwrap();
            expected.acknowledged.extend(found.acknowledged);
            expected.in_flight.extend(found.in_flight);
        }
    }
    let server = Server::start(&dir, extra);
    expected.check(&server.client().await).await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = crash_cycles(&["--fsync", "always"], 6, 6, 500).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_concurrent_writes_then_sigkill_loses_nothing() {
    let tiny = [
        "--fsync",
        "always",
        "--compact-min-bytes",
        "8192",
        "--compact-ratio",
        "1.5",
    ];
    // A small key space: the logs outgrow the live data quickly.
    let dir = crash_cycles(&tiny, 5, 6, 40).await;
    let snapshot = newest_file(&dir, "snapshot-");
    assert!(snapshot.exists(), "compaction ran");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_and_the_server_starts() {
    use std::os::unix::fs::FileExt;
    for damage in ["truncate", "zeroed", "extend", "random"] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &["--fsync", "always"]);
        let client = server.client().await;
        for i in 0..10 {
            client.put(format!("k{i}"), format!("v{i}")).await.unwrap();
        }
        server.kill();

        // Under `always` the log is preallocated: after the kill it holds
        // its records, then zeros. The damage goes where the records end.
        let wal = newest_file(dir.path(), "wal-");
        let bytes = std::fs::read(&wal).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
        assert!(end < bytes.len() as u64, "preallocated: {end} of {}", bytes.len());
        let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
        let write_at_end = |tail: &[u8]| file.write_all_at(tail, end).unwrap();
        match damage {
            // The crash hit in the middle of writing the last record, which
            // made the file longer.
            "truncate" => file.set_len(end - 3).unwrap(),
            // ... or which went into the preallocated zeros: its end is
            // still zeros.
            "zeroed" => file.write_all_at(&[0; 3], end - 3).unwrap(),
            // The file grew before its data landed: random bytes, whose
            // "header" claims far more than any record holds.
            "random" => {
                let mut tail = 3_100_000_007u32.to_le_bytes().to_vec();
                tail.extend((0..29u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8 | 1));
                write_at_end(&tail);
            }
            // The header of one more record made it, its payload did not.
            _ => {
                let mut header = 100u32.to_le_bytes().to_vec();
                header.extend_from_slice(&[0xAB; 4 + 20]);
                write_at_end(&header);
            }
        }

        let server = Server::start(dir.path(), &["--fsync", "always"]);
        let client = server.client().await;
        let cut_short = damage == "truncate" || damage == "zeroed";
        let last = if cut_short { 9 } else { 10 };
        for i in 0..last {
            assert_eq!(
                client.get(format!("k{i}")).await.unwrap(),
                Some(Bytes::from(format!("v{i}"))),
                "{damage}: k{i}"
            );
        }
        assert_eq!(client.get("k9").await.unwrap().is_some(), !cut_short);
        // Writes go on after the cut.
        client.put("after", "cut").await.unwrap();
        let (status, stderr) = server.terminate();
        assert!(status.success(), "{damage}: {status}");
        assert!(stderr.contains("torn"), "{damage}: a warning says so: {stderr}");

        let server = Server::start(dir.path(), &["--fsync", "always"]);
        let client = server.client().await;
        assert_eq!(client.get("after").await.unwrap().as_deref(), Some(&b"cut"[..]));
    }
}

#[tokio::test]
async fn damage_before_the_tail_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--fsync", "always"]);
    let client = server.client().await;
    for i in 0..10 {
        client.put(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    server.kill();

    let wal = newest_file(dir.path(), "wal-");
    let mut bytes = std::fs::read(&wal).unwrap();
    // The first record starts after the 8-byte magic; hit its payload.
    bytes[8 + 8 + 2] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();

    let mut child = spawn(dir.path(), &["--fsync", "always"]);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    assert!(!status.success(), "refused to start: {status}");
    assert!(
        stderr.contains(&wal.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("offset 8"), "names the offset: {stderr}");
    // The data is left for the operator, not cut.
    assert_eq!(std::fs::read(&wal).unwrap(), bytes);
}

#[tokio::test]
async fn sigterm_fsyncs_and_a_restart_recovers_everything() {
    for policy in ["never", "everysec"] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &["--fsync", policy]);
        let client = server.client().await;
        client
            .put_many((0..500).map(|i| (format!("k{i}"), format!("v{i}"))))
            .await
            .unwrap();
        assert!(client.delete("k7").await.unwrap());
        let (status, _) = server.terminate();
        assert_eq!(status.code(), Some(0), "{policy}");

        let server = Server::start(dir.path(), &["--fsync", policy]);
        let client = server.client().await;
        let values = client.get_many((0..500).map(|i| format!("k{i}"))).await.unwrap();
        for (i, value) in values.iter().enumerate() {
            let expected = (i != 7).then(|| Bytes::from(format!("v{i}")));
            assert_eq!(*value, expected, "{policy}: k{i}");
        }
    }
}

fn durable(dir: &Path, fsync: FsyncPolicy) -> KvServerConfig {
    let mut config = KvServerConfig {
        data_dir: Some(dir.to_path_buf()),
        ..KvServerConfig::default()
    };
    config.wal.fsync = fsync;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_right_after_shutdown_finds_the_directory_free() {
    // Other threads of this process spawn children while it restarts: a
    // child holds a copy of every descriptor until it execs, the lock's too.
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("true").status();
                }
            })
        })
        .collect();
    let mut outcome = Ok(());
    for round in 0..150 {
        let started = tokio::time::timeout(
            Duration::from_secs(30),
            KvServer::start("127.0.0.1:0", durable(dir.path(), FsyncPolicy::Always)),
        )
        .await
        .expect("hang guard");
        let server = match started {
            Ok(server) => server,
            Err(error) => {
                outcome = Err(format!("round {round}: {error}"));
                break;
            }
        };
        let client = KvClient::connect(server.local_addr()).await.unwrap();
        client.put("round", round.to_string()).await.unwrap();
        drop(client);
        server.shutdown().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for spawner in spawners {
        spawner.join().unwrap();
    }
    outcome.unwrap();
}

#[tokio::test]
async fn ttls_survive_a_restart_as_absolute_times() {
    let dir = tempfile::tempdir().unwrap();
    let server = KvServer::start("127.0.0.1:0", durable(dir.path(), FsyncPolicy::Always))
        .await
        .unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    let short = Duration::from_millis(300);
    let written = Instant::now();
    client.put_with_ttl("short", "s", short).await.unwrap();
    client
        .put_with_ttl("long", "l", Duration::from_secs(3600))
        .await
        .unwrap();
    client.put_with_ttl("cleared", "c", short).await.unwrap();
    client.put("cleared", "forever").await.unwrap();
    server.shutdown().await.unwrap();

    // Restart before the short TTL is over: it is still there, and still
    // expires when it was going to (absolute time, not "300 ms from replay").
    let server = KvServer::start("127.0.0.1:0", durable(dir.path(), FsyncPolicy::Always))
        .await
        .unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    if written.elapsed() < short {
        assert_eq!(client.get("short").await.unwrap().as_deref(), Some(&b"s"[..]));
    }
    let deadline = written + short + Duration::from_secs(5);
    while client.get("short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the short TTL never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();

    // After it expired, a restart does not bring it back, nor keep it in memory.
    let server = KvServer::start("127.0.0.1:0", durable(dir.path(), FsyncPolicy::Always))
        .await
        .unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    assert_eq!(client.get("short").await.unwrap(), None);
    assert_eq!(client.get("long").await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(
        client.get("cleared").await.unwrap().as_deref(),
        Some(&b"forever"[..])
    );
    assert_eq!(server.store().len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_under_always_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let server = KvServer::start("127.0.0.1:0", durable(dir.path(), FsyncPolicy::Always))
        .await
        .unwrap();
    let mut connections = Vec::new();
    for c in 0..16 {
        let client = KvClient::connect(server.local_addr()).await.unwrap();
        connections.push(tokio::spawn(async move {
            for i in 0..50 {
                client.put(format!("c{c}-{i}"), "v").await.unwrap();
            }
            client
                .put_many((50..100).map(|i| (format!("c{c}-{i}"), Bytes::from_static(b"v"))))
                .await
                .unwrap();
        }));
    }
    for connection in connections {
        connection.await.unwrap();
    }
    let stats = server.wal().expect("a durable server").stats();
    assert_eq!(stats.records_written, 16 * 100);
    assert!(
        stats.fsyncs < stats.records_written,
        "group commit: {} records took {} fsyncs",
        stats.records_written,
        stats.fsyncs
    );
    server.shutdown().await.unwrap();
}
