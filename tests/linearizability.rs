//! The KV store is linearizable and the requests of a connection take effect
//! in order — checked on recorded histories of a real server under a
//! contended, pipelined load: in memory, with `--fsync never` and
//! `--fsync always`, across a `kill -9` of the `kv` binary — each under
//! protocol 1.1 and 2.0 (answers in any order; a connection's order binds
//! only requests on the same key, which is what the checker checks, key by
//! key) — through `KvClient`'s default stack (2.0) while the server is
//! killed and restarted, through a rolling restart (SIGTERM, GOAWAY), and
//! through a sharded `KvClient` while one of three servers is killed.
//!
//! The checker is `tests/common/linearizability.rs`; its own tests are in
//! `checker` below. Every load is bounded in operations and time; a run
//! takes a few seconds.

#[path = "common/linearizability.rs"]
mod linearizability;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use linearizability::{check, Action, Answer, Checked, Op, Recorder};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::kv::wal::{FsyncPolicy, WalConfig};
use wirestack::kv::{
    ClientCodec, Hello, KvClient, KvError, KvServer, KvServerConfig, Request, Response, Status,
};
use wirestack::multiplex::Outgoing;
use wirestack::route::{EndpointState, HealthConfig};
use wirestack::transport::Handshake;

/// PUT_TTL's TTL in these tests: an hour, far longer than any run, so that
/// the checker may treat PUT_TTL as PUT (no key expires during a check).
const TTL_MS: u64 = 3_600_000;

/// How long any one answer may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(20);

mod checker {
    use super::linearizability::{check, check_with, Action, Answer, Limits, Op, Violation};
    use bytes::Bytes;

    fn op(session: u64, action: Action, sent: u64, answer: Option<(u64, Answer)>) -> Op {
        Op {
            session: Some(session),
            key: Bytes::from_static(b"k"),
            action,
            sent,
            answer,
        }
    }

    fn put(session: u64, value: &'static str, sent: u64, answered: u64) -> Op {
        op(session, put_of(value), sent, Some((answered, Answer::Written)))
    }

    fn put_of(value: &'static str) -> Action {
        Action::Put(Bytes::from_static(value.as_bytes()))
    }

    fn get(session: u64, seen: Option<&'static str>, sent: u64, answered: u64) -> Op {
        let seen = seen.map(|v| Bytes::from_static(v.as_bytes()));
        op(session, Action::Get, sent, Some((answered, Answer::Value(seen))))
    }

    fn delete(session: u64, existed: bool, sent: u64, answered: u64) -> Op {
        op(
            session,
            Action::Delete,
            sent,
            Some((answered, Answer::Deleted(existed))),
        )
    }

    fn refused(history: &[Op]) -> String {
        match check(history) {
            Err(violation @ Violation::NotLinearizable { .. }) => violation.to_string(),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn a_linearizable_history_passes() {
        let history = [
            put(1, "a", 0, 10),
            // Concurrent with the PUT: may see it or not.
            get(2, None, 1, 5),
            get(3, Some("a"), 2, 12),
            put(2, "b", 20, 30),
            delete(3, true, 25, 40),
            get(1, None, 41, 42),
            // Two concurrent writes and reads that order them b, then c.
            put(1, "b", 50, 60),
            put(2, "c", 51, 61),
            get(3, Some("b"), 52, 55),
            get(3, Some("c"), 56, 70),
        ];
        let checked = check(&history).unwrap();
        assert_eq!((checked.ops, checked.keys, checked.unanswered), (10, 1, 0));
    }

    #[test]
    fn a_stale_read_fails() {
        let history = [put(1, "a", 0, 10), put(1, "b", 11, 20), get(2, Some("a"), 21, 30)];
        let report = refused(&history);
        assert!(report.contains("GET by session Some(2), sent at 21"), "{report}");
    }

    #[test]
    fn a_read_from_the_future_fails() {
        // The GET was answered before the PUT of "a" was even sent.
        let history = [get(2, Some("a"), 0, 5), put(1, "a", 10, 20)];
        refused(&history);
    }

    #[test]
    fn a_lost_delete_fails() {
        let history = [
            put(1, "a", 0, 10),
            delete(1, true, 11, 20),
            get(2, Some("a"), 21, 30),
        ];
        refused(&history);
        // And a DELETE that says it found nothing where "a" was.
        refused(&[put(1, "a", 0, 10), delete(2, false, 11, 20)]);
    }

    #[test]
    fn a_session_orders_its_own_operations() {
        // All three overlap in real time; only the session order says the
        // GET comes after the PUT.
        let history = [put(1, "a", 0, 100), get(1, None, 1, 101)];
        refused(&history);
        let other_session = [put(1, "a", 0, 100), get(2, None, 1, 101)];
        check(&other_session).unwrap();
        // Sessions of `None` promise no order.
        let mut unordered = history.clone();
        for op in &mut unordered {
            op.session = None;
        }
        check(&unordered).unwrap();
    }

    #[test]
    fn an_unanswered_operation_may_have_happened_or_not() {
        let lost = op(1, put_of("a"), 0, None);
        // Seen later...
        check(&[lost.clone(), get(2, Some("a"), 50, 60)]).unwrap();
        // ... or never.
        check(&[lost.clone(), get(2, None, 50, 60)]).unwrap();
        // But not before it was sent.
        let early = op(1, put_of("a"), 10, None);
        refused(&[get(2, Some("a"), 0, 5), early]);
        // A lost DELETE may have found the key or not.
        let lost_delete = op(1, Action::Delete, 20, None);
        check(&[put(2, "a", 0, 10), lost_delete.clone(), get(2, None, 30, 40)]).unwrap();
        check(&[put(2, "a", 0, 10), lost_delete, get(2, Some("a"), 30, 40)]).unwrap();
        // And it takes its session's later operations with it.
        let history = [
            op(1, put_of("a"), 0, None),
            op(1, put_of("b"), 1, None),
            get(2, Some("b"), 50, 60),
            get(2, None, 61, 70),
        ];
        refused(&history);
    }

    #[test]
    fn keys_are_checked_alone() {
        let mut other = put(1, "x", 0, 10);
        other.key = Bytes::from_static(b"other");
        let history = [put(1, "a", 0, 10), other, get(2, Some("a"), 11, 20)];
        let checked = check(&history).unwrap();
        assert_eq!(checked.keys, 2);
    }

    #[test]
    fn a_search_over_its_bound_fails_loudly() {
        // 16 concurrent writes, then 16 concurrent reads that each saw a
        // different one of them: impossible, and proving it takes every
        // order of the writes the reads could follow.
        let values: Vec<&'static str> = (0..16).map(|i| &*format!("v{i}").leak()).collect();
        let mut history = Vec::new();
        for (i, v) in values.iter().enumerate() {
            history.push(put(i as u64, v, 0, 100));
            history.push(get(100 + i as u64, Some(v), 200, 300));
        }
        let limits = Limits {
            max_states_per_key: 1_000,
            ..Limits::default()
        };
        match check_with(&history, limits) {
            Err(Violation::Exhausted { .. }) => {}
            other => panic!("expected the bound to be hit, got {other:?}"),
        }
        let limits = Limits {
            max_ops_per_key: 10,
            ..Limits::default()
        };
        assert!(matches!(
            check_with(&history, limits),
            Err(Violation::Exhausted { .. })
        ));
        // With room enough, it is found out.
        refused(&history);
    }

    #[test]
    fn the_write_audit_counts_each_way_to_break_exactly_once() {
        use super::linearizability::{audit_writes, never_read, WriteOutcome};
        use std::collections::HashMap;
        let value = |v: &'static str| Bytes::from_static(v.as_bytes());
        let writes = [
            (value("ok"), WriteOutcome::Acknowledged),
            (value("twice"), WriteOutcome::Acknowledged),
            (value("lost"), WriteOutcome::Acknowledged),
            (value("failed"), WriteOutcome::Failed),
            (value("failed-and-applied"), WriteOutcome::Failed),
            (value("doubt-applied"), WriteOutcome::InDoubt),
            (value("doubt-not-applied"), WriteOutcome::InDoubt),
            (value("doubt-twice"), WriteOutcome::InDoubt),
        ];
        let applied: HashMap<Bytes, u32> = [
            ("ok", 1),
            ("twice", 2),
            ("failed-and-applied", 1),
            ("doubt-applied", 1),
            ("doubt-twice", 2),
            ("nobody's", 1),
        ]
        .into_iter()
        .map(|(v, n)| (value(v), n))
        .collect();
        let audit = audit_writes(&writes, &applied);
        let mut duplicates = audit.duplicates.clone();
        duplicates.sort();
        assert_eq!(duplicates, [value("doubt-twice"), value("twice")]);
        assert_eq!(audit.lost_acknowledgements, [value("lost")]);
        assert_eq!(audit.failed_but_applied, [value("failed-and-applied")]);
        assert_eq!(audit.strangers, [value("nobody's")]);
        assert_eq!(
            (
                audit.acknowledged,
                audit.failed,
                audit.in_doubt,
                audit.in_doubt_applied
            ),
            (3, 2, 3, 2)
        );
        assert!(!audit.is_exactly_once(), "{audit}");
        // Applied exactly as the outcomes say: passes.
        let applied: HashMap<Bytes, u32> = [("ok", 1), ("twice", 1), ("lost", 1), ("doubt-applied", 1)]
            .into_iter()
            .map(|(v, n)| (value(v), n))
            .collect();
        assert!(audit_writes(&writes, &applied).is_exactly_once());
        // On the history alone: a read of a failed write's value.
        let history = [
            put(1, "failed", 0, 10),
            get(2, Some("ok"), 11, 12),
            get(2, Some("failed"), 13, 14),
        ];
        let seen = never_read(&history, &[value("failed")]);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].sent, 13);
    }

    #[test]
    fn a_mismatched_answer_is_a_malformed_history() {
        let wrong = op(1, Action::Get, 0, Some((1, Answer::Written)));
        assert!(matches!(check(&[wrong]), Err(Violation::Malformed(_))));
    }
}

// ---------------------------------------------------------------------------
// The load: random PUT/PUT_TTL/GET/DELETE on a few keys.

/// A contended, pipelined load.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Speak protocol 2.0 (HELLO, request ids, answers in any order).
    v2: bool,
    connections: u64,
    /// Requests written back to back before their answers are read.
    depth: usize,
    ops_per_connection: usize,
    keys: usize,
}

impl Load {
    const SMALL: Load = Load {
        v2: false,
        connections: 8,
        depth: 8,
        ops_per_connection: 400,
        keys: 5,
    };
}

/// A random request of a unique value (`s<session>-<n>`) and what the
/// checker calls it.
fn random_request(rng: &mut fastrand::Rng, keys: usize, session: u64, n: usize) -> (Request, Action) {
    let key = Bytes::from(format!("k{}", rng.usize(..keys)));
    let value = Bytes::from(format!("s{session}-{n}"));
    match rng.u32(..100) {
        0..40 => (
            Request::Put {
                key,
                value: value.clone(),
            },
            Action::Put(value),
        ),
        40..50 => (
            Request::PutTtl {
                key,
                ttl_ms: TTL_MS,
                value: value.clone(),
            },
            Action::Put(value),
        ),
        50..85 => (Request::Get { key }, Action::Get),
        _ => (Request::Delete { key }, Action::Delete),
    }
}

fn key_of(request: &Request) -> Bytes {
    match request {
        Request::Put { key, .. }
        | Request::PutTtl { key, .. }
        | Request::Get { key }
        | Request::Delete { key } => key.clone(),
        _ => Bytes::new(),
    }
}

/// What an `OK` or `NOT_FOUND` says about `action`; any other status is a
/// failure of the test.
fn answer_of(action: &Action, response: &Response) -> Answer {
    match (action, response.status) {
        (Action::Put(_), Status::Ok) => Answer::Written,
        (Action::Get, Status::Ok) => Answer::Value(Some(response.value.clone())),
        (Action::Get, Status::NotFound) => Answer::Value(None),
        (Action::Delete, Status::Ok) => Answer::Deleted(true),
        (Action::Delete, Status::NotFound) => Answer::Deleted(false),
        _ => panic!("unexpected answer to {action:?}: {response:?}"),
    }
}

/// One raw connection of session `session`: writes `depth` requests at a
/// time, then reads their answers, recording every operation. When the
/// connection fails (the server was killed), the requests without an
/// answer are recorded as such and the session ends. Under 2.0 each
/// request of a round carries its place as its id and the answers, in any
/// order, are put back in place by it; the checker's session order binds
/// only operations on the same key, which is 2.0's promise.
async fn pipelined_session(addr: SocketAddr, session: u64, load: Load, recorder: Arc<Recorder>) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    stream.set_nodelay(true).unwrap();
    let mut framed = Framed::new(stream, ClientCodec::new());
    if load.v2 {
        framed = match Hello::new().handshake(framed).await {
            Ok(framed) => framed,
            // Killed before it could answer: nothing was sent.
            Err(_) => return,
        };
        assert!(framed.codec().negotiated().is_some(), "the server speaks 2.0");
    }
    let mut rng = fastrand::Rng::with_seed(session);
    let mut n = 0;
    while n < load.ops_per_connection {
        let batch: Vec<(Request, Action)> = (0..load.depth)
            .map(|i| random_request(&mut rng, load.keys, session, n + i))
            .collect();
        n += load.depth;
        let sent = recorder.now();
        let mut ops: Vec<Op> = batch
            .iter()
            .map(|(request, action)| Op {
                session: Some(session),
                key: key_of(request),
                action: action.clone(),
                sent,
                answer: None,
            })
            .collect();
        let mut written = true;
        for (place, (request, _)) in batch.into_iter().enumerate() {
            written &= if load.v2 {
                let tag = u32::try_from(place + 1).unwrap();
                let outgoing = Outgoing::Request {
                    tag,
                    budget: None,
                    request,
                };
                framed.feed(outgoing).await.is_ok()
            } else {
                framed.feed(request).await.is_ok()
            };
        }
        written &= SinkExt::<Request>::flush(&mut framed).await.is_ok();
        let mut lost = !written;
        for _ in 0..ops.len() {
            if lost {
                break;
            }
            match tokio::time::timeout(HANG, framed.next()).await {
                Ok(Some(Ok(response))) => {
                    let place = if load.v2 {
                        response.id as usize - 1
                    } else {
                        ops.iter().position(|op| op.answer.is_none()).unwrap()
                    };
                    let op = &mut ops[place];
                    assert!(
                        op.answer.is_none(),
                        "session {session}: two answers for one request"
                    );
                    op.answer = Some((recorder.now(), answer_of(&op.action, &response)));
                }
                Ok(_) => lost = true,
                Err(_) => panic!("session {session}: no answer within {HANG:?}"),
            }
        }
        recorder.record(ops);
        if lost {
            return;
        }
    }
}

/// Runs `load` against `addr` with sessions numbered from `first_session`.
fn start_load(
    addr: SocketAddr,
    first_session: u64,
    load: Load,
    recorder: &Arc<Recorder>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..load.connections)
        .map(|c| tokio::spawn(pipelined_session(addr, first_session + c, load, recorder.clone())))
        .collect()
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.expect("a load task failed");
    }
}

/// Reads every key once more, after everything else, on a session of its own.
async fn final_reads(addr: SocketAddr, session: u64, keys: usize, recorder: &Recorder) {
    final_reads_from(|_| addr, session, keys, recorder).await;
}

/// [`final_reads`], each key read from the server `home` names for it.
async fn final_reads_from(
    home: impl Fn(&[u8]) -> SocketAddr,
    session: u64,
    keys: usize,
    recorder: &Recorder,
) {
    let mut connections: Vec<(SocketAddr, Framed<TcpStream, ClientCodec>)> = Vec::new();
    let mut ops = Vec::new();
    for k in 0..keys {
        let key = Bytes::from(format!("k{k}"));
        let addr = home(&key);
        let framed = match connections.iter().position(|(a, _)| *a == addr) {
            Some(i) => &mut connections[i].1,
            None => {
                let stream = TcpStream::connect(addr)
                    .await
                    .expect("connect for the final reads");
                connections.push((addr, Framed::new(stream, ClientCodec::new())));
                &mut connections.last_mut().expect("just pushed").1
            }
        };
        let sent = recorder.now();
        framed.send(Request::Get { key: key.clone() }).await.unwrap();
        let response = framed.next().await.expect("an answer").unwrap();
        ops.push(Op {
            session: Some(session),
            key,
            action: Action::Get,
            sent,
            answer: Some((recorder.now(), answer_of(&Action::Get, &response))),
        });
    }
    recorder.record(ops);
}

fn assert_linearizable(history: &[Op]) -> Checked {
    match check(history) {
        Ok(checked) => {
            eprintln!("linearizable: {checked:?}");
            checked
        }
        Err(violation) => panic!("{violation}"),
    }
}

// ---------------------------------------------------------------------------
// The server, in process.

async fn in_process_run(data_dir: Option<&Path>, fsync: FsyncPolicy, v2: bool) {
    let config = KvServerConfig {
        data_dir: data_dir.map(Path::to_path_buf),
        wal: WalConfig {
            fsync,
            ..WalConfig::default()
        },
        ..KvServerConfig::default()
    };
    let server = KvServer::start("127.0.0.1:0", config).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let load = Load { v2, ..Load::SMALL };
    finish(start_load(server.local_addr(), 0, load, &recorder)).await;
    final_reads(server.local_addr(), 1_000, load.keys, &recorder).await;
    server.shutdown().await.unwrap();
    let history = recorder.history();
    let checked = assert_linearizable(&history);
    assert_eq!(checked.ops, history.len(), "every operation was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_in_memory_is_linearizable() {
    in_process_run(None, FsyncPolicy::Never, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_never_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    in_process_run(Some(dir.path()), FsyncPolicy::Never, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_always_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    in_process_run(Some(dir.path()), FsyncPolicy::Always, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_in_memory_is_linearizable_under_2_0() {
    in_process_run(None, FsyncPolicy::Never, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_never_is_linearizable_under_2_0() {
    let dir = tempfile::tempdir().unwrap();
    in_process_run(Some(dir.path()), FsyncPolicy::Never, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_always_is_linearizable_under_2_0() {
    let dir = tempfile::tempdir().unwrap();
    in_process_run(Some(dir.path()), FsyncPolicy::Always, true).await;
}

// ---------------------------------------------------------------------------
// The `kv` binary, killed.

/// A `kv serve` process; SIGKILLed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    fn start(dir: &Path, listen: &str, fsync: &str) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["serve", "--listen", listen, "--fsync", fsync, "--data-dir"])
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

    /// SIGKILL: no chance to answer, flush or fsync anything more.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits for the process to end: a graceful shutdown
    /// (GOAWAY on every 2.0 connection, what was read answered).
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().expect("reap");
        assert!(exit.success(), "kv serve ended badly on SIGTERM: {exit:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `recorder` has `answered` answers; a hang guard, not a timing.
async fn wait_for_answers(recorder: &Recorder, answered: usize) {
    let waited = tokio::time::timeout(HANG, async {
        while recorder.answered() < answered {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    waited.await.expect("the load made progress");
}

async fn kill_9_run(fsync: &str, v2: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(dir.path(), "127.0.0.1:0", fsync);
    let recorder = Arc::new(Recorder::default());
    // Far more than is done before the kill: the load is cut by it.
    let load = Load {
        v2,
        ops_per_connection: 100_000,
        ..Load::SMALL
    };
    let tasks = start_load(server.addr, 0, load, &recorder);
    wait_for_answers(&recorder, fastrand::usize(1_000..2_500)).await;
    server.kill();
    finish(tasks).await;
    let unanswered = recorder.history().iter().filter(|op| op.answer.is_none()).count();
    assert!(unanswered > 0, "the kill should cut requests in flight");

    // The same directory again: recovery, then more load and final reads.
    let server = Process::start(dir.path(), "127.0.0.1:0", fsync);
    let after = Load {
        v2,
        ops_per_connection: 100,
        ..Load::SMALL
    };
    finish(start_load(server.addr, 100, after, &recorder)).await;
    final_reads(server.addr, 1_000, load.keys, &recorder).await;
    let checked = assert_linearizable(&recorder.history());
    assert!(checked.unanswered > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_always_is_linearizable_across_a_kill_9() {
    kill_9_run("always", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_always_is_linearizable_across_a_kill_9_under_2_0() {
    kill_9_run("always", true).await;
}

/// `never` promises nothing against an OS crash, but a killed process
/// loses nothing the OS has: what any read saw survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_never_is_linearizable_across_a_kill_9() {
    kill_9_run("never", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fsync_never_is_linearizable_across_a_kill_9_under_2_0() {
    kill_9_run("never", true).await;
}

// ---------------------------------------------------------------------------
// The client stack, across a restart.

/// How a `KvClient` call ended, for the history.
enum Outcome {
    Answered(Answer),
    /// It may or may not have been applied.
    Unknown,
    /// It was certainly not applied: not sent, or refused.
    NotApplied,
}

fn outcome_of(action: &Action, result: Result<Response, KvError>) -> Outcome {
    match result {
        Ok(response) if matches!(response.status, Status::Ok | Status::NotFound) => {
            Outcome::Answered(answer_of(action, &response))
        }
        // Refusals: the server did nothing (SESSION_EXPIRED: a sequenced
        // write of a session it no longer knows is not applied).
        Ok(response)
            if matches!(
                response.status,
                Status::Busy | Status::Storage | Status::SessionExpired
            ) =>
        {
            Outcome::NotApplied
        }
        Ok(response) => panic!("unexpected answer to {action:?}: {response:?}"),
        Err(KvError::Disconnected(_)) => Outcome::NotApplied,
        Err(KvError::Connection(_) | KvError::Protocol(_) | KvError::TimedOut) => Outcome::Unknown,
        Err(other) => panic!("unexpected error for {action:?}: {other}"),
    }
}

/// One task of the client load: calls one at a time through the shared
/// client until `stop` (at most `MAX_CLIENT_OPS`). Writes that failed "not
/// sent" go to `not_sent`.
async fn client_task<S>(
    client: KvClient<S>,
    task: u64,
    keys: usize,
    stop: Arc<AtomicBool>,
    recorder: Arc<Recorder>,
    not_sent: Arc<Mutex<Vec<Bytes>>>,
    unknown: Arc<AtomicUsize>,
) where
    S: tower::Service<Request, Response = Response> + Clone,
    S::Error: Into<wirestack::BoxError>,
{
    let mut rng = fastrand::Rng::with_seed(task);
    for n in 0..MAX_CLIENT_OPS {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (request, action) = random_request(&mut rng, keys, task, n);
        let key = key_of(&request);
        let sent = recorder.now();
        let result = client.call(request).await;
        let answered = recorder.now();
        let answer = match outcome_of(&action, result) {
            Outcome::Answered(answer) => Some((answered, answer)),
            Outcome::Unknown => {
                unknown.fetch_add(1, Ordering::Relaxed);
                None
            }
            Outcome::NotApplied => {
                if let Action::Put(value) = &action {
                    not_sent.lock().unwrap().push(value.clone());
                }
                // The server is down: do not spin through the op budget.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        recorder.record([Op {
            // Calls of one task are ordered by time already; a retried call
            // may land on another connection, so no session order is claimed.
            session: None,
            key,
            action,
            sent,
            answer,
        }]);
    }
}

/// A write that failed "not sent" (`Disconnected`, an ejection) was never
/// applied: no read of `history` may see its value.
fn assert_never_seen(history: &[Op], not_sent: &[Bytes]) {
    for op in history {
        if let Some((_, Answer::Value(Some(value)))) = &op.answer {
            assert!(
                !not_sent.contains(value),
                "a write that failed as not sent was applied: {value:?} read by {op:?}"
            );
        }
    }
}

/// Most calls one task of the client load makes.
const MAX_CLIENT_OPS: usize = 2_000;

/// The default retry policy's longest run of backoffs (25 ms doubling to
/// 1 s, 8 retries) is 3.6 s: an outage longer than that makes some calls
/// give up while the server is down, reporting "not sent".
const LONG_OUTAGE: Duration = Duration::from_millis(4_000);

/// Two outages of a server with `--fsync always` under 24 tasks sharing one
/// `KvClient`: a short one that the retries ride out, and one longer than
/// the retries last, so that calls fail with every error there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_client_stack_is_linearizable_across_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(dir.path(), "127.0.0.1:0", "always");
    let addr = server.addr;
    let client = KvClient::connect(addr).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let not_sent = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = 5;
    let tasks: Vec<_> = (0..24)
        .map(|task| {
            let (client, stop, recorder, not_sent) =
                (client.clone(), stop.clone(), recorder.clone(), not_sent.clone());
            tokio::spawn(client_task(
                client,
                task,
                keys,
                stop,
                recorder,
                not_sent,
                Arc::default(),
            ))
        })
        .collect();
    for outage in [Duration::from_millis(100), LONG_OUTAGE] {
        let answered = recorder.answered();
        wait_for_answers(&recorder, answered + fastrand::usize(300..900)).await;
        server.kill();
        tokio::time::sleep(outage).await;
        server = Process::start(dir.path(), &addr.to_string(), "always");
        // What survived, read before the retries can overwrite it: the
        // writes that were in flight at the kill.
        final_reads(server.addr, 1_000 + outage.as_millis() as u64, keys, &recorder).await;
    }
    wait_for_answers(&recorder, recorder.answered() + 300).await;
    stop.store(true, Ordering::Relaxed);
    finish(tasks).await;
    final_reads(server.addr, 1_000, keys, &recorder).await;

    let history = recorder.history();
    let not_sent = not_sent.lock().unwrap().clone();
    assert_never_seen(&history, &not_sent);
    let checked = assert_linearizable(&history);
    let (reconnects, retries) = (client.service().reconnect_stats(), client.service().retry_stats());
    eprintln!("{reconnects:?}, {retries:?}, {} writes not sent", not_sent.len());
    assert_eq!(reconnects.reconnects(), 2, "{reconnects:?}");
    // The long outage outlasted the retries: writes failed "not sent".
    assert!(!not_sent.is_empty());
    assert!(checked.ops > 0);
}

/// Three `kv serve --fsync always` behind one sharded `KvClient` (24 tasks
/// sharing it): one (the home of `k0`) is killed for longer than the
/// retries last — its calls fail until it is ejected, then fail at once,
/// "not sent" — and restarted on its address, where a probe finds it. A key
/// lives on one server only, so the history must stay linearizable, and no
/// write reported "not sent" (ejected or disconnected) may ever be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_client_is_linearizable_across_a_restart_of_one_server() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers: Vec<Option<Process>> = dirs
        .iter()
        .map(|dir| Some(Process::start(dir.path(), "127.0.0.1:0", "always")))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().flatten().map(|server| server.addr).collect();
    let router = ClientBuilder::new(ClientCodec::new())
        .health(HealthConfig {
            failures: 3,
            window: Duration::from_secs(10),
            probe_backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
            probe_timeout: Duration::from_millis(500),
        })
        .route::<Request, _>(addrs.clone())
        .unwrap();
    let home = |key: &[u8]| -> SocketAddr { router.endpoint_of(key).parse().expect("an address") };
    let keys = 12;
    // The victim is the home of `k0`, so it holds at least one key.
    let victim = addrs
        .iter()
        .position(|&addr| addr == home(b"k0"))
        .expect("a server");

    let client = KvClient::new(router.clone());
    let recorder = Arc::new(Recorder::default());
    let not_sent = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let spawn = |tasks: std::ops::Range<u64>| -> Vec<_> {
        tasks
            .map(|task| {
                let (client, stop, recorder, not_sent) =
                    (client.clone(), stop.clone(), recorder.clone(), not_sent.clone());
                tokio::spawn(client_task(
                    client,
                    task,
                    keys,
                    stop,
                    recorder,
                    not_sent,
                    Arc::default(),
                ))
            })
            .collect()
    };
    let tasks = spawn(0..24);
    wait_for_answers(&recorder, fastrand::usize(300..900)).await;
    servers[victim].take().expect("running").kill();
    tokio::time::sleep(LONG_OUTAGE).await;
    servers[victim] = Some(Process::start(
        dirs[victim].path(),
        &addrs[victim].to_string(),
        "always",
    ));
    // Probed back in: calls for its keys are answered again.
    let handle = router.handle();
    let back = tokio::time::timeout(HANG, async {
        while handle.state(&addrs[victim].to_string()) != Some(EndpointState::Up) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    back.await.expect("the restarted server is probed back in");
    // Fresh tasks (the first ones may have used up their calls while the
    // server was out): load after the restart, its keys included.
    let after = spawn(100..104);
    wait_for_answers(&recorder, recorder.answered() + 300).await;
    stop.store(true, Ordering::Relaxed);
    finish(tasks).await;
    finish(after).await;
    final_reads_from(home, 1_000, keys, &recorder).await;

    let history = recorder.history();
    let not_sent = not_sent.lock().unwrap().clone();
    assert_never_seen(&history, &not_sent);
    let checked = assert_linearizable(&history);
    let stats = handle.stats();
    eprintln!("{stats:?}, {} writes not sent", not_sent.len());
    let victim_stats = &stats[victim];
    assert_eq!(victim_stats.name, addrs[victim].to_string());
    assert_eq!(victim_stats.ejections, 1, "{stats:?}");
    assert!(stats.iter().all(|s| s.state == EndpointState::Up), "{stats:?}");
    assert!(
        !not_sent.is_empty(),
        "calls for the killed server's keys failed not sent"
    );
    assert!(checked.ops > 0);
}

/// A rolling restart under load: `kv serve --fsync always` is stopped with
/// SIGTERM and started again on its address, three times, while 24 tasks
/// share one default `KvClient` (protocol 2.0). A graceful stop sends GOAWAY
/// on every connection and answers every request it read, so no call may
/// end "may have been applied": each one is answered, or failed as not
/// applied and never seen; the history stays linearizable; and every
/// restart is one reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_call_and_leaves_none_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(dir.path(), "127.0.0.1:0", "always");
    let addr = server.addr;
    let client = KvClient::connect(addr).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let not_sent = Arc::new(Mutex::new(Vec::new()));
    let unknown = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = 5;
    let tasks: Vec<_> = (0..24)
        .map(|task| {
            let (client, stop, recorder, not_sent, unknown) = (
                client.clone(),
                stop.clone(),
                recorder.clone(),
                not_sent.clone(),
                unknown.clone(),
            );
            tokio::spawn(client_task(client, task, keys, stop, recorder, not_sent, unknown))
        })
        .collect();
    let restarts = 3;
    for _ in 0..restarts {
        let answered = recorder.answered();
        wait_for_answers(&recorder, answered + fastrand::usize(200..600)).await;
        server.terminate();
        server = Process::start(dir.path(), &addr.to_string(), "always");
    }
    wait_for_answers(&recorder, recorder.answered() + 300).await;
    stop.store(true, Ordering::Relaxed);
    finish(tasks).await;
    final_reads(server.addr, 1_000, keys, &recorder).await;

    let history = recorder.history();
    let not_sent = not_sent.lock().unwrap().clone();
    assert_never_seen(&history, &not_sent);
    let checked = assert_linearizable(&history);
    let reconnects = client.service().reconnect_stats();
    eprintln!(
        "{reconnects:?}, {} writes not applied, {checked:?}",
        not_sent.len()
    );
    assert_eq!(
        unknown.load(Ordering::Relaxed),
        0,
        "a graceful restart left calls in doubt"
    );
    assert_eq!(checked.unanswered, 0, "{checked:?}");
    assert_eq!(reconnects.reconnects(), restarts, "{reconnects:?}");
}
