//! Sessions end to end, against the `kv` binary over raw version 2 frames:
//! a SEQUENCED write is applied at most once across a `kill -9` and a
//! restart, and a resend after the restart gets the first answer.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirestack::kv::{KvClient, KvError};

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
// Through `KvClient`: answers lost, connections reset, the server killed.

/// A TCP proxy to the current server that loses answers: every
/// `drop_every`-th chunk the server sends is not forwarded, and the
/// connection is closed both ways instead (the answers in it are lost, as
/// when a connection breaks after the server applied the write).
async fn lossy_proxy(upstream: Arc<Mutex<SocketAddr>>, drop_every: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let chunks = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let target = *upstream.lock().unwrap();
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                        if chunks.fetch_add(1, Ordering::Relaxed) % drop_every == drop_every - 1 {
                            break; // lost: the connection goes down with it
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    addr
}

/// What one task saw: writes answered, writes failed as possibly applied,
/// and the invariant's violations.
#[derive(Debug, Default)]
struct Seen {
    acknowledged: u64,
    maybe_applied: u64,
    not_applied: u64,
    violations: Vec<String>,
}

/// Whether `error` says the write may have been applied (the deadline,
/// retries given up after a lost connection, an expired session), as
/// opposed to one that certainly was not.
fn may_have_applied(error: &KvError) -> bool {
    matches!(
        error,
        KvError::TimedOut | KvError::Connection(_) | KvError::Protocol(_) | KvError::SessionExpired { .. }
    )
}

/// One task owns key `k{task}` and repeats PUT (a value unique to the
/// round), DELETE, GET. As nobody else writes the key, every answer is
/// known once the previous step was acknowledged: a DELETE after an
/// acknowledged PUT finds the key (`true`) — `false` means the PUT was
/// lost or the DELETE applied twice; a GET after an acknowledged DELETE
/// finds nothing — a value means a PUT was applied again after it. After a
/// write fails as possibly applied the state is unknown until the next
/// acknowledged PUT. A write that fails as *not* applied must not have
/// taken effect: a PUT refused so is followed by a DELETE that must find
/// nothing from this round.
async fn owner<S>(client: KvClient<S>, task: usize, rounds: u64) -> Seen
where
    S: tower::Service<wirestack::kv::Request, Response = wirestack::kv::Response> + Clone,
    S::Error: Into<wirestack::BoxError>,
{
    let key = format!("k{task}");
    let mut seen = Seen::default();
    // The key is known to be absent: the last round's DELETE was acknowledged.
    let mut absent = true;
    for round in 0..rounds {
        let value = format!("t{task}-r{round}");
        let known = match client.put(key.clone(), value.clone()).await {
            Ok(()) => {
                seen.acknowledged += 1;
                true
            }
            Err(error) if may_have_applied(&error) => {
                seen.maybe_applied += 1;
                false
            }
            Err(error) => {
                // Reported not applied: it must not have taken effect.
                seen.not_applied += 1;
                if absent {
                    if let Ok(Some(found)) = client.get(key.clone()).await {
                        seen.violations.push(format!(
                            "{key} round {round}: a PUT failed as not applied ({error}) left {found:?}"
                        ));
                    }
                }
                absent = false;
                continue;
            }
        };
        absent = false;
        match client.delete(key.clone()).await {
            Ok(true) => {
                seen.acknowledged += 1;
                absent = true;
            }
            Ok(false) if known => {
                seen.violations.push(format!(
                    "{key} round {round}: DELETE after an acknowledged PUT found nothing"
                ));
                continue;
            }
            Ok(false) => {
                seen.acknowledged += 1;
                absent = true;
            }
            Err(error) if may_have_applied(&error) => {
                seen.maybe_applied += 1;
                continue;
            }
            Err(_) => {
                seen.not_applied += 1;
                continue;
            }
        }
        match client.get(key.clone()).await {
            Ok(None) => {}
            Ok(Some(value)) => seen.violations.push(format!(
                "{key} round {round}: {value:?} is back after an acknowledged DELETE"
            )),
            Err(_) => {} // a read that failed proves nothing
        }
    }
    seen
}

const TASKS: usize = 8;
const ROUNDS: u64 = 60;
const KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_kv_client_with_lost_answers_and_kill_9_every_write_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Mutex::new(Some(Process::start(dir.path()))));
    let first = server.lock().unwrap().as_ref().unwrap().addr;
    let upstream = Arc::new(Mutex::new(first));
    let proxy = lossy_proxy(upstream.clone(), 40).await;
    let client = KvClient::connect(proxy).await.unwrap();

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(owner(client.clone(), task, ROUNDS)))
        .collect();
    // Meanwhile: kill -9 and restart, KILLS times, each after the writes
    // made some progress (a hang guard, not a timing).
    let progress = client.clone();
    let killer = tokio::spawn({
        let (server, upstream, dir) = (server.clone(), upstream.clone(), dir.path().to_path_buf());
        async move {
            let mut kills = 0;
            for _ in 0..KILLS {
                let before = progress.service().retry_stats().requests;
                let waited = tokio::time::timeout(HANG, async {
                    while progress.service().retry_stats().requests < before + 150 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
                if waited.await.is_err() {
                    return kills;
                }
                // Dropping the process is kill -9; the new one takes the
                // data directory once the old one is gone.
                let old = server.lock().unwrap().take();
                drop(old);
                let dir = dir.clone();
                let restarted = tokio::task::spawn_blocking(move || Process::start(&dir))
                    .await
                    .unwrap();
                *upstream.lock().unwrap() = restarted.addr;
                *server.lock().unwrap() = Some(restarted);
                kills += 1;
            }
            kills
        }
    });
    let mut total = Seen::default();
    for task in tasks {
        let seen = tokio::time::timeout(HANG * 6, task)
            .await
            .expect("the load finished")
            .unwrap();
        total.acknowledged += seen.acknowledged;
        total.maybe_applied += seen.maybe_applied;
        total.violations.extend(seen.violations);
    }
    assert_eq!(
        killer.await.unwrap(),
        KILLS,
        "the server was not killed as often as planned"
    );
    let stats = client.service().retry_stats();
    eprintln!(
        "{} writes acknowledged, {} possibly applied, {stats:?}",
        total.acknowledged, total.maybe_applied
    );
    assert!(total.violations.is_empty(), "{:#?}", total.violations);
    assert!(
        stats.retries > 0,
        "nothing was ever resent: the faults did not bite"
    );
    assert!(total.acknowledged >= TASKS as u64 * ROUNDS, "{total:?}");
}
