//! Sessions end to end, against the `kv` binary over raw version 2 frames:
//! a SEQUENCED write is applied at most once across a `kill -9` and a
//! restart, and a resend after the restart gets the first answer.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
            .args(["serve", "--listen", "127.0.0.1:0", "--fsync", "always", "--data-dir"])
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
    assert_eq!(header[0], OK, "HELLO refused: {}", String::from_utf8_lossy(&value));
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
    answers(socket, n).await.into_iter().map(|(id, status, _)| (id, status)).collect()
}

async fn get(socket: &mut TcpStream, key: &str) -> Option<String> {
    socket.write_all(&frame(GET, u32::MAX, None, key.as_bytes(), b"")).await.unwrap();
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
            (seq as u32, frame(PUT, seq as u32, Some((seq, 1)), key(seq).as_bytes(), value.as_bytes()))
        })
        .collect();
    let first = round(&mut socket, writes).await;
    assert!(first.values().all(|&status| status == OK), "{first:?}");
    let deletes = (ANSWERED + 1..=ANSWERED + DELETES)
        .map(|seq| (seq as u32, frame(DELETE, seq as u32, Some((seq, 1)), format!("absent{seq}").as_bytes(), b"")))
        .collect();
    let first = round(&mut socket, deletes).await;
    assert!(first.values().all(|&status| status == NOT_FOUND), "{first:?}");
    // Then writes whose answers are never read: some may be applied.
    let last = ANSWERED + DELETES + UNANSWERED;
    let unanswered: Vec<u8> = (ANSWERED + DELETES + 1..=last)
        .flat_map(|seq| frame(PUT, seq as u32, Some((seq, 1)), format!("u{seq}").as_bytes(), b"first"))
        .collect();
    socket.write_all(&unanswered).await.unwrap();
    drop(process); // kill -9

    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, SESSION).await;
    // A plain write a resend must not undo.
    let later = round(&mut socket, vec![(1, frame(PUT, 1, None, b"absent201", b"later"))]).await;
    assert_eq!(later[&1], OK);
    // Every write again, with other values, on a new connection.
    let resends = (1..=last)
        .map(|seq| {
            let id = 1000 + seq as u32;
            let frame = match seq {
                s if s <= ANSWERED => frame(PUT, id, Some((s, 1)), key(s).as_bytes(), b"resent"),
                s if s <= ANSWERED + DELETES => frame(DELETE, id, Some((s, 1)), format!("absent{s}").as_bytes(), b""),
                s => frame(PUT, id, Some((s, 1)), format!("u{s}").as_bytes(), b"resent"),
            };
            (id, frame)
        })
        .collect();
    let again = round(&mut socket, resends).await;
    for seq in 1..=last {
        let expected = if seq > ANSWERED && seq <= ANSWERED + DELETES { NOT_FOUND } else { OK };
        assert_eq!(again[&(1000 + seq as u32)], expected, "seq {seq}");
    }
    // The answered writes were not applied again: each key holds its last first value.
    for k in 0..20u64 {
        let last_seq = (1..=ANSWERED).filter(|seq| seq % 20 == k).max().unwrap();
        assert_eq!(get(&mut socket, &format!("k{k}")).await.as_deref(), Some(&*format!("first-{last_seq}")));
    }
    assert_eq!(get(&mut socket, "absent201").await.as_deref(), Some("later"), "a resent DELETE applied again");
    // The unanswered ones were applied exactly once: by the first send or by the resend.
    for seq in ANSWERED + DELETES + 1..=last {
        let value = get(&mut socket, &format!("u{seq}")).await;
        assert!(matches!(value.as_deref(), Some("first" | "resent")), "u{seq}: {value:?}");
    }

    // And again after another kill -9: the resends' answers are in the log too.
    drop(process);
    let process = Process::start(dir.path());
    let mut socket = connect(process.addr, SESSION).await;
    let u = ANSWERED + DELETES + 1;
    let before = get(&mut socket, &format!("u{u}")).await;
    let again = round(&mut socket, vec![(7, frame(PUT, 7, Some((u, 1)), format!("u{u}").as_bytes(), b"third"))]).await;
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
