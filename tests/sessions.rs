//! Sessions end to end, against the `kv` binary: over raw version 2
//! frames, a SEQUENCED write is applied at most once across a `kill -9` and
//! a restart, and a resend after the restart gets the first answer; and the
//! exactly-once proof — many tasks through one `KvClient`, a network that
//! loses answers with their connections, the server killed with SIGKILL
//! again and again, and every write audited against the server's log (no
//! duplicate, no lost acknowledgement, no failed write that happened) and
//! the history checked for linearizability. `scripts/sessions-proof.sh`
//! runs the proof longer.
#![cfg(feature = "cli")]

#[path = "common/linearizability.rs"]
mod linearizability;

use bytes::Bytes;
use linearizability::{audit_writes, check, never_read, Action, Answer, Op, Recorder, WriteOutcome};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::keepalive::Keepalive;
use wirestack::kv::{ClientCodec, Hello, KvClient, KvError};
use wirestack::multiplex;
use wirestack::reconnect::ReconnectConfig;
use wirestack::retry::RetryConfig;
use wirestack::session::{ClientSession, SessionLayer, Stamped};

/// How long a test waits for an answer before calling it a hang.
const HANG: Duration = Duration::from_secs(20);

const OK: u8 = 0x00;
const NOT_FOUND: u8 = 0x01;
const BAD_REQUEST: u8 = 0x03;
const SESSION_EXPIRED: u8 = 0x0B;
const PUT: u8 = 0x03;
const DELETE: u8 = 0x04;
const GET: u8 = 0x02;
const SEQUENCED: u8 = 0x02;

/// A `kv serve` process on a data directory; SIGKILLed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    fn start(dir: &Path) -> Process {
        Process::start_with(dir, &[] as &[&str])
    }

    /// `kv serve --fsync always` on `dir`, with `more` flags.
    fn start_with(dir: &Path, more: &[impl AsRef<std::ffi::OsStr>]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--fsync",
                "always",
                "--data-dir",
            ])
            .arg(dir)
            .args(more)
            .env("KV_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kv serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("read the first line");
        let Some(addr) = line.strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!("kv serve did not start: {line:?}");
        };
        let addr = addr.trim().parse().expect("an address");
        Process { child, addr }
    }
}

impl Drop for Process {
    /// SIGKILL: no chance to answer, flush or fsync anything more.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A version 2 connection whose HELLO named `session`.
async fn connect(addr: SocketAddr, session: [u8; 16]) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let mut hello = vec![0x07];
    hello.extend_from_slice(&0u32.to_le_bytes());
    hello.extend_from_slice(&18u32.to_le_bytes());
    hello.extend_from_slice(&2u16.to_le_bytes());
    hello.extend_from_slice(&session);
    socket.write_all(&hello).await.expect("send HELLO");
    let mut header = [0u8; 5];
    read(&mut socket, &mut header).await;
    let mut value = vec![0u8; u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize];
    read(&mut socket, &mut value).await;
    assert_eq!(
        header[0],
        OK,
        "HELLO refused: {}",
        String::from_utf8_lossy(&value)
    );
    let window = u32::from_le_bytes(value[6..10].try_into().unwrap());
    assert!(window >= 512, "session_window {window}");
    socket
}

async fn read(socket: &mut TcpStream, buf: &mut [u8]) {
    tokio::time::timeout(HANG, socket.read_exact(buf))
        .await
        .expect("an answer in time")
        .expect("an answer");
}

/// A version 2 request frame, SEQUENCED when `seq` is given.
fn frame(command: u8, id: u32, seq: Option<(u64, u64)>, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut buf = vec![command, if seq.is_some() { SEQUENCED } else { 0 }];
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    if let Some((seq, acked_below)) = seq {
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&acked_below.to_le_bytes());
    }
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    buf
}

/// Reads `n` version 2 answers: (id, status, value), in the order they came.
async fn answers(socket: &mut TcpStream, n: usize) -> Vec<(u32, u8, Vec<u8>)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut header = [0u8; 10];
        read(socket, &mut header).await;
        let id = u32::from_le_bytes(header[2..6].try_into().unwrap());
        let mut value = vec![0u8; u32::from_le_bytes(header[6..10].try_into().unwrap()) as usize];
        read(socket, &mut value).await;
        out.push((id, header[0], value));
    }
    out
}

/// Sends every frame at once, then returns each one's status, by id.
async fn round(socket: &mut TcpStream, frames: Vec<(u32, Vec<u8>)>) -> std::collections::HashMap<u32, u8> {
    let n = frames.len();
    let bytes: Vec<u8> = frames.into_iter().flat_map(|(_, frame)| frame).collect();
    socket.write_all(&bytes).await.expect("send");
    answers(socket, n)
        .await
        .into_iter()
        .map(|(id, status, _)| (id, status))
        .collect()
}

async fn get(socket: &mut TcpStream, key: &str) -> Option<String> {
    socket
        .write_all(&frame(GET, u32::MAX, None, key.as_bytes(), b""))
        .await
        .unwrap();
    let (_, status, value) = answers(socket, 1).await.remove(0);
    (status == OK).then(|| String::from_utf8(value).unwrap())
}

const SESSION: [u8; 16] = *b"sessions-e2e-001";
/// Writes answered before the kill: 20 keys overwritten, then DELETEs of absent keys.
const ANSWERED: u64 = 200;
const DELETES: u64 = 5;
/// Writes sent with no answer read, then the kill.
const UNANSWERED: u64 = 95;

#[tokio::test]
async fn a_sequenced_write_is_applied_once_across_kill_9_and_a_resend_gets_its_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, SESSION).await;
    let key = |seq: u64| format!("k{}", seq % 20);
    let writes = (1..=ANSWERED)
        .map(|seq| {
            let value = format!("first-{seq}");
            (
                seq as u32,
                frame(
                    PUT,
                    seq as u32,
                    Some((seq, 1)),
                    key(seq).as_bytes(),
                    value.as_bytes(),
                ),
            )
        })
        .collect();
    let first = round(&mut socket, writes).await;
    assert!(first.values().all(|&status| status == OK), "{first:?}");
    let deletes = (ANSWERED + 1..=ANSWERED + DELETES)
        .map(|seq| {
            (
                seq as u32,
                frame(
                    DELETE,
                    seq as u32,
                    Some((seq, 1)),
                    format!("absent{seq}").as_bytes(),
                    b"",
                ),
            )
        })
        .collect();
    let first = round(&mut socket, deletes).await;
    assert!(first.values().all(|&status| status == NOT_FOUND), "{first:?}");
    // Then writes whose answers are never read: some may be applied.
    let last = ANSWERED + DELETES + UNANSWERED;
    let unanswered: Vec<u8> = (ANSWERED + DELETES + 1..=last)
        .flat_map(|seq| {
            frame(
                PUT,
                seq as u32,
                Some((seq, 1)),
                format!("u{seq}").as_bytes(),
                b"first",
            )
        })
        .collect();
    socket.write_all(&unanswered).await.unwrap();
    drop(process); // kill -9

    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, SESSION).await;
    // A plain write a resend must not undo.
    let later = round(
        &mut socket,
        vec![(1, frame(PUT, 1, None, b"absent201", b"later"))],
    )
    .await;
    assert_eq!(later[&1], OK);
    // Every write again, with other values, on a new connection.
    let resends = (1..=last)
        .map(|seq| {
            let id = 1000 + seq as u32;
            let frame = match seq {
                s if s <= ANSWERED => frame(PUT, id, Some((s, 1)), key(s).as_bytes(), b"resent"),
                s if s <= ANSWERED + DELETES => {
                    frame(DELETE, id, Some((s, 1)), format!("absent{s}").as_bytes(), b"")
                }
                s => frame(PUT, id, Some((s, 1)), format!("u{s}").as_bytes(), b"resent"),
            };
            (id, frame)
        })
        .collect();
    let again = round(&mut socket, resends).await;
    for seq in 1..=last {
        let expected = if seq > ANSWERED && seq <= ANSWERED + DELETES {
            NOT_FOUND
        } else {
            OK
        };
        assert_eq!(again[&(1000 + seq as u32)], expected, "seq {seq}");
    }
    // The answered writes were not applied again: each key holds its last first value.
    for k in 0..20u64 {
        let last_seq = (1..=ANSWERED).filter(|seq| seq % 20 == k).max().unwrap();
        assert_eq!(
            get(&mut socket, &format!("k{k}")).await.as_deref(),
            Some(&*format!("first-{last_seq}"))
        );
    }
    assert_eq!(
        get(&mut socket, "absent201").await.as_deref(),
        Some("later"),
        "a resent DELETE applied again"
    );
    // The unanswered ones were applied exactly once: by the first send or by the resend.
    for seq in ANSWERED + DELETES + 1..=last {
        let value = get(&mut socket, &format!("u{seq}")).await;
        assert!(
            matches!(value.as_deref(), Some("first" | "resent")),
            "u{seq}: {value:?}"
        );
    }

    // And again after another kill -9: the resends' answers are in the log too.
    drop(process);
    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, SESSION).await;
    let u = ANSWERED + DELETES + 1;
    let before = get(&mut socket, &format!("u{u}")).await;
    let again = round(
        &mut socket,
        vec![(
            7,
            frame(PUT, 7, Some((u, 1)), format!("u{u}").as_bytes(), b"third"),
        )],
    )
    .await;
    assert_eq!(again[&7], OK);
    assert_eq!(get(&mut socket, &format!("u{u}")).await, before);
}

#[tokio::test]
async fn an_unknown_session_past_seq_1_is_expired_and_a_seq_past_the_window_refused() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, *b"sessions-e2e-002").await;
    let answers = round(
        &mut socket,
        vec![
            (1, frame(PUT, 1, Some((2, 1)), b"k", b"v")),
            (2, frame(PUT, 2, Some((1, 1)), b"k", b"v")),
            (3, frame(PUT, 3, Some((1 + 100_000, 1)), b"k", b"w")),
            (4, frame(GET, 4, Some((2, 1)), b"k", b"")),
        ],
    )
    .await;
    assert_eq!(
        (answers[&1], answers[&2], answers[&3], answers[&4]),
        (SESSION_EXPIRED, OK, BAD_REQUEST, BAD_REQUEST)
    );
    assert_eq!(get(&mut socket, "k").await.as_deref(), Some("v"));
}

// ---------------------------------------------------------------------------
// The proof: many tasks through one `KvClient`, a network that loses
// answers, the server killed with SIGKILL again and again; every write
// audited against the server's log.

/// How one proof run is sized: the suite's defaults, or (for
/// `scripts/sessions-proof.sh`) what the `SESSIONS_PROOF_*` variables say.
#[derive(Debug, Clone, Copy)]
struct Proof {
    /// Writes made in all (PUT and DELETE; GETs come on top).
    writes: u64,
    /// Tasks sharing the client, each one call at a time.
    tasks: u64,
    /// Keys the load is spread over.
    keys: usize,
    /// Out of a million answers, how many the network loses (each with its
    /// connection: TCP loses no answer alone).
    drops_per_million: u64,
    /// SIGKILLs of the server, each followed by a restart.
    kills: usize,
    /// The server's `--session-window`; `None`: its default.
    window: Option<u32>,
}

impl Proof {
    fn from_env() -> Proof {
        let var = |name: &str, default: u64| -> u64 {
            std::env::var(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
            })
        };
        let drop_share: f64 = std::env::var("SESSIONS_PROOF_DROP").map_or(0.002, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SESSIONS_PROOF_DROP={v:?} is not a share"))
        });
        Proof {
            writes: var("SESSIONS_PROOF_WRITES", 100_000),
            tasks: var("SESSIONS_PROOF_TASKS", 128),
            keys: var("SESSIONS_PROOF_KEYS", 256) as usize,
            drops_per_million: (drop_share * 1e6).round() as u64,
            kills: var("SESSIONS_PROOF_KILLS", 4) as usize,
            window: std::env::var("SESSIONS_PROOF_WINDOW")
                .ok()
                .map(|v| v.parse().expect("SESSIONS_PROOF_WINDOW is a number")),
        }
    }
}

/// The network between the client and the server: each connection goes to
/// wherever the server is now, and loses answers.
#[derive(Debug)]
struct LossyNet {
    server: Mutex<SocketAddr>,
    drops_per_million: u64,
    seed: u64,
    connections: AtomicU64,
    answers: AtomicU64,
    dropped: AtomicU64,
}

/// The client's connector (the builder's connector seam): TCP to the
/// server, through a [`LossyIo`].
#[derive(Debug, Clone)]
struct LossyConnector(Arc<LossyNet>);

impl tower::Service<wirestack::transport::Target> for LossyConnector {
    type Response = Framed<LossyIo, ClientCodec>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: wirestack::transport::Target) -> Self::Future {
        let net = self.0.clone();
        Box::pin(async move {
            let addr = *net.server.lock().unwrap();
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let n = net.connections.fetch_add(1, Ordering::Relaxed);
            let rng = fastrand::Rng::with_seed(net.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            Ok(Framed::new(
                LossyIo {
                    io: stream,
                    net,
                    rng,
                    buf: Vec::new(),
                    ready: 0,
                    hello_answered: false,
                    broken: false,
                },
                ClientCodec::new(),
            ))
        })
    }
}

/// A client's TCP connection that loses answers: it reads the server's
/// bytes frame by frame (HELLO's answer in the 1.1 framing, then 2.0
/// answers) and hands each whole frame on — but one in
/// `1e6 / drops_per_million` is lost, and the connection with it: that
/// read and every later read and write fail with `ConnectionReset`, so the
/// answers behind it are lost too, as when a connection breaks after the
/// server applied the writes.
struct LossyIo {
    io: TcpStream,
    net: Arc<LossyNet>,
    rng: fastrand::Rng,
    /// Bytes read from the server and not handed on yet.
    buf: Vec<u8>,
    /// How many bytes at the front of `buf` are whole frames kept.
    ready: usize,
    hello_answered: bool,
    /// An answer was lost: the connection is gone.
    broken: bool,
}

impl LossyIo {
    /// Judges the whole frames of `buf` after `ready`: kept (ready to hand
    /// on) or lost (the connection breaks there).
    fn judge(&mut self) {
        loop {
            let rest = &self.buf[self.ready..];
            let (header, len_at) = if self.hello_answered { (10, 6) } else { (5, 1) };
            if rest.len() < header {
                return;
            }
            let len = u32::from_le_bytes(rest[len_at..len_at + 4].try_into().unwrap()) as usize;
            if rest.len() < header + len {
                return;
            }
            if self.hello_answered {
                self.net.answers.fetch_add(1, Ordering::Relaxed);
                if self.rng.u64(..1_000_000) < self.net.drops_per_million {
                    self.net.dropped.fetch_add(1, Ordering::Relaxed);
                    self.buf.truncate(self.ready);
                    self.broken = true;
                    return;
                }
            }
            self.hello_answered = true;
            self.ready += header + len;
        }
    }
}

impl tokio::io::AsyncRead for LossyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.broken {
                return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = tokio::io::ReadBuf::new(&mut chunk);
            futures::ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // the server closed the connection
            }
            this.buf.extend_from_slice(read.filled());
            this.judge();
        }
    }
}

impl tokio::io::AsyncWrite for LossyIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.broken {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.broken {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How a write's call ended, by the error's promise (`KvError`'s docs).
fn write_outcome<T>(result: &Result<T, KvError>) -> WriteOutcome {
    match result {
        Ok(_) => WriteOutcome::Acknowledged,
        Err(KvError::Disconnected(_) | KvError::Busy { .. } | KvError::Server { .. }) => WriteOutcome::Failed,
        Err(
            KvError::TimedOut
            | KvError::Connection(_)
            | KvError::Protocol(_)
            | KvError::SessionExpired { .. },
        ) => WriteOutcome::InDoubt,
        Err(other) => panic!("unexpected error for a write: {other}"),
    }
}

/// One task of the proof's load: random GET (15 %), PUT (70 %) and DELETE
/// (15 %) on `keys` keys, one call at a time, until the shared count of
/// writes is spent. Each PUT writes a value of its own; every call and its
/// outcome go into `recorder`.
async fn proof_task<S>(
    client: KvClient<S>,
    task: u64,
    keys: usize,
    writes_left: Arc<AtomicI64>,
    deletes: Arc<AtomicU64>,
    recorder: Arc<Recorder>,
) where
    S: tower::Service<wirestack::kv::Request, Response = wirestack::kv::Response> + Clone,
    S::Error: Into<wirestack::BoxError>,
{
    let mut rng = fastrand::Rng::with_seed(task);
    for n in 0u64.. {
        let key = Bytes::from(format!("k{}", rng.usize(..keys)));
        let roll = rng.u32(..100);
        if roll >= 15 && writes_left.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return;
        }
        let sent = recorder.now();
        let (action, answer) = match roll {
            ..15 => {
                let Ok(value) = client.get(key.clone()).await else {
                    continue; // a read that failed changed nothing and told nothing
                };
                (Action::Get, Answer::Value(value))
            }
            15..85 => {
                let value = Bytes::from(format!("{task}.{n}"));
                let result = client.put(key.clone(), value.clone()).await;
                let outcome = write_outcome(&result);
                recorder.outcome(value.clone(), outcome);
                match outcome {
                    WriteOutcome::Acknowledged => (Action::Put(value), Answer::Written),
                    WriteOutcome::InDoubt => {
                        recorder.record([Op {
                            session: None,
                            key,
                            action: Action::Put(value),
                            sent,
                            answer: None,
                        }]);
                        continue;
                    }
                    WriteOutcome::Failed => {
                        // Not applied: it is not part of the history (a read of its
                        // value fails the check); the server may be down, so pause.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
            _ => {
                let result = client.delete(key.clone()).await;
                deletes.fetch_add(1, Ordering::Relaxed);
                match write_outcome(&result) {
                    WriteOutcome::Acknowledged => (Action::Delete, Answer::Deleted(result.unwrap())),
                    WriteOutcome::InDoubt => {
                        recorder.record([Op {
                            session: None,
                            key,
                            action: Action::Delete,
                            sent,
                            answer: None,
                        }]);
                        continue;
                    }
                    WriteOutcome::Failed => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        // Calls of one task follow each other in time already; a retried call
        // may go on another connection, so no session order is claimed.
        recorder.record([Op {
            session: None,
            key,
            action,
            sent,
            answer: Some((recorder.now(), answer)),
        }]);
    }
}

/// What the server's log says it applied: how many times each PUT value was
/// written, and each sequenced write's (session, seq).
#[derive(Debug, Default)]
struct Logged {
    puts: HashMap<Bytes, u32>,
    sequenced: HashMap<([u8; 16], u64), u32>,
    records: u64,
}

/// Reads every log file of `dir` (record format: `src/kv/wal/record.rs`):
/// the whole history of the server's writes, as long as it never compacted
/// (the proof's server is told not to; a snapshot file fails the test).
fn read_logs(dir: &Path) -> Logged {
    let mut logged = Logged::default();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("wal-") || name == "LOCK" || name.ends_with(".lock"),
            "{name}: the log was compacted (or is not a log), so it no longer holds every write"
        );
        if !name.starts_with("wal-") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"wskvWAL1", "{name}: not a log file");
        let mut at = 8;
        while at < bytes.len() {
            // Under `always` the log is preallocated: a server still running,
            // or killed, leaves zeros after its last record.
            if bytes[at..].iter().all(|&byte| byte == 0) {
                break;
            }
            assert!(at + 8 <= bytes.len(), "{name}: a torn header at {at}");
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            let payload = &bytes[at + 8..at + 8 + len];
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&bytes[at..at + 4]);
            hasher.update(payload);
            assert_eq!(hasher.finalize(), crc, "{name}: a bad record at {at}");
            at += 8 + len;
            logged.records += 1;
            let mut write = payload;
            if write[0] == 0x04 {
                let session: [u8; 16] = write[1..17].try_into().unwrap();
                let seq = u64::from_le_bytes(write[17..25].try_into().unwrap());
                *logged.sequenced.entry((session, seq)).or_default() += 1;
                write = &write[33..];
            }
            let key_len = u32::from_le_bytes(write[1..5].try_into().unwrap()) as usize;
            let value = match write[0] {
                0x01 => &write[5 + key_len..],
                0x02 => &write[5 + key_len + 8..],
                0x03 => continue,
                kind => panic!("{name}: record kind {kind:#x} in a log"),
            };
            *logged.puts.entry(Bytes::copy_from_slice(value)).or_default() += 1;
        }
    }
    logged
}

/// Waits until `writes_left` is down to `target`; false if the load stopped
/// making progress for [`HANG`] (a hang guard, not a timing).
async fn wait_for_writes(writes_left: &AtomicI64, target: i64) -> bool {
    let mut last = (writes_left.load(Ordering::Relaxed), tokio::time::Instant::now());
    while last.0 > target {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = writes_left.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() > HANG {
            return false;
        }
    }
    true
}

/// Longer than the client's retries last (8 backoffs of 25 ms doubling to
/// 1 s: at most 3.6 s), so that calls made while the server is down fail
/// as not sent — the outcome whose writes must never happen.
const LONG_OUTAGE: Duration = Duration::from_millis(4_500);

/// The exactly-once proof: `SESSIONS_PROOF_WRITES` writes (100 000) by 128
/// tasks sharing one default-stack `KvClient` whose connections lose 0.2 %
/// of answers (each with its connection), while `kv serve --fsync always`
/// is killed with SIGKILL and restarted 4 times, one outage outlasting the
/// retries. Then every write is audited against the server's log: 0
/// duplicates, 0 lost acknowledgements, 0 writes reported failed that took
/// effect — and the history, final reads included, is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_kv_client_with_lost_answers_and_repeated_kill_9() {
    let proof = Proof::from_env();
    let seed = fastrand::u64(..);
    eprintln!("{proof:?}, seed {seed}");
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // No compaction: the log keeps every write, for the audit.
    let mut serve_args = vec!["--compact-min-bytes".to_owned(), "1000000000000000".to_owned()];
    if let Some(window) = proof.window {
        serve_args.extend(["--session-window".to_owned(), window.to_string()]);
    }
    let mut server = Process::start_with(dir.path(), &serve_args);
    let net = Arc::new(LossyNet {
        server: Mutex::new(server.addr),
        drops_per_million: proof.drops_per_million,
        seed,
        connections: AtomicU64::new(0),
        answers: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    // `KvClient::connect`'s stack, over the lossy connector, set for a
    // network this bad: a retry budget that pays for resending every call
    // in flight on each lost connection (the default allows one retry in
    // five requests), and reconnects within milliseconds (the default
    // backoff, 100 ms doubling to 5 s, starts over only after a connection
    // lived 5 s; here one breaks every few milliseconds).
    let session = ClientSession::new();
    let stack = ClientBuilder::new(ClientCodec::new())
        .connector(LossyConnector(net.clone()))
        .on_connect(Hello::new().with_session(session.clone()))
        .retry(RetryConfig {
            retry_ratio: 2.0,
            ..RetryConfig::default()
        })
        .reconnect(ReconnectConfig {
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(20)),
            ..ReconnectConfig::default()
        })
        .multiplex(multiplex::Builder::new().keepalive(Keepalive::default()))
        .connect_pinned::<Stamped<wirestack::kv::Request>>(server.addr)
        .await
        .unwrap();
    let client = KvClient::new(stack.layer(&SessionLayer::new(session)));

    let recorder = Arc::new(Recorder::default());
    let writes_left = Arc::new(AtomicI64::new(proof.writes as i64));
    let deletes = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..proof.tasks)
        .map(|task| {
            tokio::spawn(proof_task(
                client.clone(),
                task,
                proof.keys,
                writes_left.clone(),
                deletes.clone(),
                recorder.clone(),
            ))
        })
        .collect();
    // Kill -9 at even steps of the load; the second outage outlasts the retries.
    let mut kills = 0;
    for kill in 0..proof.kills {
        let step = proof.writes as i64 / (proof.kills as i64 + 1);
        let target = proof.writes as i64 - step * (kill as i64 + 1);
        assert!(
            wait_for_writes(&writes_left, target).await,
            "the load stopped before kill {kill}"
        );
        drop(server); // SIGKILL
        if kill == 1 {
            // The long outage.
            tokio::time::sleep(LONG_OUTAGE).await;
        }
        let dir = dir.path().to_path_buf();
        let args = serve_args.clone();
        server = tokio::task::spawn_blocking(move || Process::start_with(&dir, &args))
            .await
            .unwrap();
        *net.server.lock().unwrap() = server.addr;
        kills += 1;
    }
    for task in tasks {
        tokio::time::timeout(HANG * 30, task)
            .await
            .expect("the load finished")
            .unwrap();
    }
    let load_took = started.elapsed();
    // Final reads, on a connection of their own that loses nothing.
    let reader = KvClient::connect(server.addr).await.unwrap();
    for k in 0..proof.keys {
        let key = Bytes::from(format!("k{k}"));
        let sent = recorder.now();
        let value = reader.get(key.clone()).await.unwrap();
        let answer = Some((recorder.now(), Answer::Value(value)));
        recorder.record([Op {
            session: None,
            key,
            action: Action::Get,
            sent,
            answer,
        }]);
    }
    drop(server); // the log is complete: nothing is in flight

    let outcomes = recorder.outcomes();
    let history = recorder.history();
    let logged = read_logs(dir.path());
    let audit = audit_writes(&outcomes, &logged.puts);
    let stats = client.service().retry_stats();
    let (answers, dropped) = (
        net.answers.load(Ordering::Relaxed),
        net.dropped.load(Ordering::Relaxed),
    );
    eprintln!(
        "{audit}\n{} log records; {answers} answers, {dropped} lost with their connection, {} connections, \
         {kills} kills; {stats:?}; load {load_took:?}",
        logged.records,
        net.connections.load(Ordering::Relaxed),
    );
    assert!(audit.is_exactly_once(), "{audit}");
    let twice: Vec<_> = logged.sequenced.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sequenced writes logged twice: {twice:?}");
    let failed: Vec<Bytes> = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == WriteOutcome::Failed)
        .map(|(value, _)| value.clone())
        .collect();
    let seen = never_read(&history, &failed);
    assert!(seen.is_empty(), "writes reported failed were read: {seen:?}");
    let checked = check(&history).unwrap_or_else(|violation| panic!("{violation}"));
    eprintln!("linearizable: {checked:?}; took {:?}", started.elapsed());
    // The faults bit: answers were lost, writes resent, some failed as not sent.
    assert_eq!(kills, proof.kills);
    assert!(
        dropped > 0 && stats.retries > 0,
        "the faults did not bite: {stats:?}"
    );
    if proof.kills >= 2 {
        assert!(
            audit.failed > 0,
            "no write failed as not applied: the long outage did not bite"
        );
    }
    // Every write has an outcome: each one the load made ended, and was counted.
    let puts = (audit.acknowledged + audit.failed + audit.in_doubt) as u64;
    assert_eq!(puts + deletes.load(Ordering::Relaxed), proof.writes, "{audit}");
}
