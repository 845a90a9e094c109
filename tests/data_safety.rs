//! Data safety of `kv serve`: one server per data directory, limits the
//! log can replay, corruption that is never taken for a torn tail (and
//! `kv repair`), random damage to a log, and a shutdown with a deadline.
//!
//! Every wait has a deadline; nothing asserts how fast anything is.

use bytes::Bytes;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wirestack::kv::wal::{FsyncPolicy, Mutation, Wal, WalConfig, WalError};
use wirestack::kv::{ClientCodec, KvClient, Request, Response, Store};
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
        let mut child = spawn(Some(dir), extra);
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("read the first line");
        let Some(addr) = line.strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!(
                "kv serve did not start: {line:?}, stderr: {}",
                stderr_of(&mut child)
            );
        };
        Server {
            addr: addr.trim().to_owned(),
            child,
        }
    }

    async fn client(&self) -> Client {
        let transport = transport::connect(&self.addr, ClientCodec::new())
            .await
            .expect("connect");
        KvClient::new(Pipeline::new(transport))
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Waits for the process to exit by itself; its status and stderr.
    fn exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child, limit);
        (status, stderr_of(&mut self.child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: Option<&Path>, extra: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    if let Some(dir) = dir {
        command.arg("--data-dir").arg(dir);
    }
    command
        .args(extra)
        .env("KV_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kv serve")
}

/// Runs `kv serve` expecting it to refuse: its exit status, stdout, stderr.
fn refused(dir: Option<&Path>, extra: &[&str]) -> (ExitStatus, String, String) {
    let mut child = spawn(dir, extra);
    let status = wait_with_deadline(&mut child, Duration::from_secs(20));
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    (status, stdout, stderr_of(&mut child))
}

fn kv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(args)
        .output()
        .expect("run kv")
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
        assert!(Instant::now() < deadline, "kv did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wal_file(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_str().unwrap().starts_with("wal-"))
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

/// Where each record of a log file starts.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    offsets
}

#[tokio::test]
async fn a_second_server_on_a_data_dir_in_use_refuses_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &["--fsync", "always", "--compact-min-bytes", "4096"]);
    let client = first.client().await;
    for i in 0..170 {
        client.put(format!("k{i}"), format!("first-{i}")).await.unwrap();
    }

    let (status, stdout, stderr) = refused(Some(dir.path()), &["--fsync", "always"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(!stdout.contains("listening on"), "it never listened: {stdout}");
    let lock = dir.path().join("LOCK");
    assert!(
        stderr.contains(&lock.display().to_string()),
        "names the lock: {stderr}"
    );
    assert!(
        stderr.contains(&first.child.id().to_string()),
        "names the holder: {stderr}"
    );

    // The first server goes on; killed, every write it answered is there.
    client.put("after", "refusal").await.unwrap();
    drop(client);
    drop(first); // SIGKILL
    let restarted = Server::start(dir.path(), &["--fsync", "always"]);
    let client = restarted.client().await;
    let values = client.get_many((0..170).map(|i| format!("k{i}"))).await.unwrap();
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value.as_deref(), Some(format!("first-{i}").as_bytes()), "k{i}");
    }
    assert_eq!(
        client.get("after").await.unwrap().as_deref(),
        Some(&b"refusal"[..])
    );

    // Released with the log on SIGTERM: the next server starts at once.
    drop(client);
    restarted.signal("-TERM");
    let (status, _) = restarted.exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    drop(Server::start(dir.path(), &[]));
}

#[tokio::test]
async fn deleting_the_lock_file_does_not_let_a_second_server_start() {
    // An operator takes the pid in a refusal for a stale lock and deletes it.
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &["--fsync", "always"]);
    let client = first.client().await;
    client.put("k", "first").await.unwrap();
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();

    let (status, stdout, stderr) = refused(Some(dir.path()), &["--fsync", "always"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(!stdout.contains("listening on"), "it never listened: {stdout}");
    assert!(stderr.contains("in use"), "{stderr}");
    // The first server goes on.
    client.put("k", "still first").await.unwrap();
    assert_eq!(
        client.get("k").await.unwrap().as_deref(),
        Some(&b"still first"[..])
    );
}

#[test]
fn limits_the_log_cannot_hold_are_refused_at_startup() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    for limits in [
        ["--max-value-bytes", "1073700000"],
        ["--max-key-bytes", "4294967295"],
    ] {
        let (status, stdout, stderr) = refused(Some(&dir), &limits);
        assert_eq!(status.code(), Some(2), "{limits:?}: {stderr}");
        assert!(!stdout.contains("listening on"), "{stdout}");
        assert!(stderr.contains(limits[0]), "names the flag: {stderr}");
        assert!(stderr.contains("log record"), "says why: {stderr}");
        assert!(!dir.exists(), "refused before touching the data directory");
    }
    // In memory there is no log to hold them.
    let mut child = spawn(None, &["--max-value-bytes", "1073700000"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_flipped_length_bit_mid_log_refuses_to_start_and_kv_repair_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--fsync", "always"]);
    let client = server.client().await;
    let puts = (0..640).map(|i| (format!("k{i}"), Bytes::from(format!("value-{i}"))));
    client.put_many(puts).await.unwrap();
    drop(client);
    server.signal("-TERM");
    assert_eq!(server.exit(Duration::from_secs(20)).0.code(), Some(0));

    let wal = wal_file(dir.path());
    let mut bytes = std::fs::read(&wal).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 640);
    let damaged = offsets[57];
    bytes[damaged + 2] ^= 1 << 5; // bit 21 of record 57's length
    std::fs::write(&wal, &bytes).unwrap();

    let (status, stdout, stderr) = refused(Some(dir.path()), &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(!stdout.contains("listening on"));
    assert!(
        stderr.contains(&wal.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains(&format!("offset {damaged}")),
        "names the offset: {stderr}"
    );
    assert!(stderr.contains("kv repair"), "says what to do: {stderr}");
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "nothing was cut");

    let data_dir = dir.path().to_str().unwrap();
    let check = kv(&["repair", "--data-dir", data_dir, "--dry-run"]);
    assert_eq!(check.status.code(), Some(1), "damage found");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains(&format!("offset {damaged}")), "{report}");
    assert!(
        report.contains("582 valid records"),
        "counts what a cut drops: {report}"
    );
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "a dry run changes nothing");

    let fix = kv(&["repair", "--data-dir", data_dir]);
    assert_eq!(
        fix.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fix.stderr)
    );
    let backup = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_str().unwrap().starts_with("repair-"))
        .expect("a backup directory");
    assert_eq!(
        std::fs::read(backup.join(wal.file_name().unwrap())).unwrap(),
        bytes
    );

    let server = Server::start(dir.path(), &[]);
    let client = server.client().await;
    let values = client.get_many((0..640).map(|i| format!("k{i}"))).await.unwrap();
    for (i, value) in values.iter().enumerate() {
        let expected = (i < 57).then(|| format!("value-{i}"));
        assert_eq!(value.as_deref(), expected.as_deref().map(str::as_bytes), "k{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs about 6 GiB of memory: run by scripts/big-values.sh"]
async fn the_largest_value_the_limits_allow_survives_a_crash_and_a_compaction() {
    let key = b"big";
    let max_key = 16u32;
    let max_value = u32::try_from(Wal::MAX_ENTRY_BYTES).unwrap() - max_key;
    let dir = tempfile::tempdir().unwrap();
    let (max_key_flag, max_value_flag) = (max_key.to_string(), max_value.to_string());
    let flags = [
        "--fsync",
        "always",
        "--max-key-bytes",
        &max_key_flag,
        "--max-value-bytes",
        &max_value_flag,
        "--max-buffered-bytes",
        "3221225472",
    ];
    let connect = |server: &Server| {
        let addr = server.addr.clone();
        async move {
            let limits = wirestack::kv::Limits {
                max_key_bytes: max_key,
                max_value_bytes: max_value,
            };
            let transport = transport::connect(addr, ClientCodec::with_limits(limits))
                .await
                .unwrap();
            KvClient::new(Pipeline::new(transport))
        }
    };
    let server = Server::start(dir.path(), &flags);
    let client = connect(&server).await;
    let value = Bytes::from(vec![0xB1; max_value as usize]);
    client.put(&key[..], value.clone()).await.unwrap();
    client.put("small", "after").await.unwrap();
    // Past --compact-min-bytes: a compaction writes the big value into a
    // snapshot; wait for it to be there.
    let deadline = Instant::now() + Duration::from_secs(120);
    let snapshot_written = |dir: &Path| {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.starts_with("snapshot-") && !name.ends_with(".tmp")
        })
    };
    while !snapshot_written(dir.path()) {
        assert!(Instant::now() < deadline, "no compaction");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    drop(server); // SIGKILL

    let server = Server::start(dir.path(), &flags);
    let client = connect(&server).await;
    assert_eq!(client.get(&key[..]).await.unwrap(), Some(value));
    assert_eq!(client.get("small").await.unwrap().as_deref(), Some(&b"after"[..]));
}

/// A small deterministic generator (xorshift64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn mutation(rng: &mut Rng, i: u64) -> Mutation {
    let key = Bytes::from(format!("key-{}", rng.below(150)));
    match rng.below(10) {
        0 => Mutation::Delete { key },
        n => Mutation::Put {
            key,
            value: Bytes::from(vec![b'a' + (i % 26) as u8; rng.below(90) as usize + 1]),
            // Far in the future: the expected state does not move.
            expires_at: (n == 1).then_some(u64::MAX / 2),
        },
    }
}

fn files_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with("wal-") || name.starts_with("snapshot-")
        })
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn contents(store: &Store) -> HashMap<Bytes, Bytes> {
    let mut map = HashMap::new();
    store.for_each_live(|key, value, _| {
        map.insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    });
    map
}

#[tokio::test]
async fn random_damage_to_a_data_dir_refuses_or_keeps_every_answered_write() {
    random_damage(false).await;
}

/// As above, after a crash of a server that preallocated its log under
/// `always`: the newest log ends in zeros, and a damaged last record is
/// followed by them.
#[tokio::test]
async fn random_damage_to_a_preallocated_log_refuses_or_keeps_every_answered_write() {
    random_damage(true).await;
}

async fn random_damage(preallocated: bool) {
    // A data directory of 1200 answered writes: a snapshot and the logs
    // after it (a small compaction threshold).
    let base = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        compact_min_bytes: 16 * 1024,
        compact_ratio: 1.5,
    };
    let wal = Wal::open(base.path(), config.clone(), Store::new()).unwrap();
    let mut rng = Rng(0x5EED_0011);
    for i in 0..1200 {
        wal.append(mutation(&mut rng, i)).await.unwrap();
    }
    let expected = contents(wal.store());
    wal.shutdown().await.unwrap();
    let files = files_of(base.path());
    assert!(files.len() >= 2, "a snapshot and a log: {files:?}");
    let total: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();

    let (mut refusals, mut starts) = (0, 0);
    for run in 0..300u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged: Vec<_> = files
            .iter()
            .map(|(path, bytes)| (dir.path().join(path.file_name().unwrap()), bytes.clone()))
            .collect();
        let mut rng = Rng(0xDA4A_6E00 + run);
        let last = damaged.len() - 1;
        if run % 5 == 4 {
            // A crash mid-write: the newest log ends in part of a record
            // that was never answered, or in zeros.
            let mut record = Vec::new();
            let extra = rng.below(200) as usize + 1;
            record.extend_from_slice(&(extra as u32 + 5).to_le_bytes());
            record.extend_from_slice(&[0x5A; 4]);
            record.extend_from_slice(&[0x01, 3, 0, 0, 0]);
            record.resize(record.len() + extra, 0x33);
            let keep = rng.below(record.len() as u64 - 1) as usize + 1;
            let tail = if run % 10 == 4 {
                vec![0; keep]
            } else {
                record[..keep].to_vec()
            };
            damaged[last].1.extend_from_slice(&tail);
        } else if preallocated && run % 2 == 0 {
            // Damage to the last records, which the zeros now follow.
            let bytes = &mut damaged[last].1;
            let at = bytes.len() - 1 - rng.below(200.min(bytes.len() as u64 - 8)) as usize;
            bytes[at] ^= rng.below(255) as u8 + 1;
        } else {
            // Damage: one to three bytes anywhere in any file, changed.
            for _ in 0..=rng.below(3) {
                let mut at = rng.below(total as u64) as usize;
                let file = damaged.iter().position(|(_, b)| {
                    at < b.len() || {
                        at -= b.len();
                        false
                    }
                });
                let file = file.unwrap_or(last);
                let at = at.min(damaged[file].1.len() - 1);
                damaged[file].1[at] ^= rng.below(255) as u8 + 1;
            }
        }
        if preallocated {
            damaged[last].1.extend_from_slice(&[0; 4096]);
        }
        for (path, bytes) in &damaged {
            std::fs::write(path, bytes).unwrap();
        }
        match Wal::open(dir.path(), config.clone(), Store::new()) {
            Ok(wal) => {
                starts += 1;
                assert_eq!(
                    contents(wal.store()),
                    expected,
                    "run {run}: started without an answered write"
                );
                wal.shutdown().await.unwrap();
            }
            Err(WalError::Corrupt { .. }) => {
                refusals += 1;
                for (path, bytes) in &damaged {
                    assert_eq!(
                        &std::fs::read(path).unwrap(),
                        bytes,
                        "run {run}: refused, yet changed a file"
                    );
                }
            }
            Err(other) => panic!("run {run}: {other}"),
        }
    }
    println!("{refusals} refusals, {starts} starts");
    assert!(
        refusals >= 200 && starts >= 50,
        "{refusals} refusals, {starts} starts"
    );
}

#[tokio::test]
async fn a_torn_tail_of_random_bytes_is_cut_whatever_its_header_claims() {
    // What a crash can leave where the file system extends a file before
    // the data lands: the log's records, then 1 to 64 random bytes.
    let base = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    };
    let wal = Wal::open(base.path(), config.clone(), Store::new()).unwrap();
    let mut rng = Rng(0x7A11_0023);
    for i in 0..60 {
        wal.append(mutation(&mut rng, i)).await.unwrap();
    }
    let expected = contents(wal.store());
    wal.shutdown().await.unwrap();
    let path = wal_file(base.path());
    let log = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&log);
    let valid_record = &log[offsets[0]..offsets[1]];

    for len in 1..=64usize {
        for claim in [
            None,
            Some(3_100_000_007u32),
            Some(0),
            Some((len as u32).saturating_sub(8)),
            Some(5),
        ] {
            let mut tail: Vec<u8> = (0..len).map(|_| rng.below(255) as u8 + 1).collect();
            if let (Some(claim), true) = (claim, len >= 8) {
                tail[..4].copy_from_slice(&claim.to_le_bytes());
            }
            let what = format!("{len} bytes claiming {claim:?}: {tail:02x?}");
            // Random bytes whose length field matches exactly what follows
            // make a whole record with a bad checksum, which a flipped bit
            // in an answered last record also makes: refused, not cut.
            let whole =
                len >= 8 + 5 && u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize == len - 8;

            // Nothing valid after it: cut, and every answered write is there.
            let dir = tempfile::tempdir().unwrap();
            let damaged = dir.path().join(path.file_name().unwrap());
            std::fs::write(&damaged, [log.as_slice(), &tail].concat()).unwrap();
            if whole {
                let refused = Wal::open(dir.path(), config.clone(), Store::new());
                assert!(
                    matches!(refused, Err(WalError::Corrupt { .. })),
                    "{what}: {refused:?}"
                );
            } else {
                let wal = Wal::open(dir.path(), config.clone(), Store::new())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(contents(wal.store()), expected, "{what}");
                wal.shutdown().await.unwrap();
                assert_eq!(std::fs::read(&damaged).unwrap(), log, "{what}: the tail is cut");
            }

            // A valid record after it: refused, and nothing is cut.
            let bytes = [log.as_slice(), &tail, valid_record].concat();
            std::fs::write(&damaged, &bytes).unwrap();
            match Wal::open(dir.path(), config.clone(), Store::new()) {
                Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, log.len() as u64, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
            assert_eq!(std::fs::read(&damaged).unwrap(), bytes, "{what}");
        }
    }
}

/// Opens a connection that asks for `value_key` `count` times, pipelined,
/// and reads the answers at about `bytes_per_tick` every 50 ms.
async fn slow_reader(
    addr: &str,
    value_key: &[u8],
    count: usize,
    bytes_per_tick: usize,
) -> tokio::task::JoinHandle<()> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut get = vec![0x02];
    get.extend_from_slice(&(value_key.len() as u32).to_le_bytes());
    get.extend_from_slice(&0u32.to_le_bytes());
    get.extend_from_slice(value_key);
    let requests = get.repeat(count);
    tokio::spawn(async move {
        let (mut reader, mut writer) = socket.split();
        let write = writer.write_all(&requests);
        let read = async {
            let mut buf = vec![0u8; bytes_per_tick];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        let _ = tokio::join!(write, read);
    })
}

/// A server with 30 answered writes and a peer reading a 120 MiB backlog
/// of answers at 320 KiB/s: it would take six minutes to drain.
async fn server_with_a_slow_reader(dir: &Path, extra: &[&str]) -> (Server, tokio::task::JoinHandle<()>) {
    let server = Server::start(dir, extra);
    let client = server.client().await;
    for i in 0..30 {
        client.put(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    client.put("big", vec![7u8; 512 * 1024]).await.unwrap();
    let reader = slow_reader(&server.addr, b"big", 240, 16 * 1024).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (server, reader)
}

async fn assert_answered_writes_survive(dir: &Path) {
    let server = Server::start(dir, &[]);
    let client = server.client().await;
    let values = client.get_many((0..30).map(|i| format!("k{i}"))).await.unwrap();
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()), "k{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_cannot_hold_shutdown_past_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (server, reader) = server_with_a_slow_reader(
        dir.path(),
        &["--fsync", "always", "--shutdown-timeout-ms", "1300"],
    )
    .await;
    server.signal("-TERM");
    let (status, stderr) = server.exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutdown deadline passed"), "{stderr}");
    reader.abort();
    // The log was closed and the directory released: a restart has it all.
    assert_answered_writes_survive(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_after_closing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // No deadline: only the second signal ends the drain.
    let (server, reader) =
        server_with_a_slow_reader(dir.path(), &["--fsync", "everysec", "--shutdown-timeout-ms", "0"]).await;
    server.signal("-INT");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still draining after the first signal"
    );
    server.signal("-TERM");
    let (status, stderr) = server.exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr}");
    reader.abort();
    assert_answered_writes_survive(dir.path()).await;
}
