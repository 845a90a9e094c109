//! Keepalive against a real server that stops answering: `kv serve` frozen
//! with SIGSTOP (its socket open, its process not running — what a hung
//! host or a silent partition looks like from the client).
//!
//! The client's deadline is set far beyond the keepalive bounds, so the
//! *kind* of error proves which one found the silence: a call that ends
//! "lost with the connection" (`KvError::Connection` caused by
//! `Error::Unresponsive`) was failed by keepalive; one that waited for its
//! deadline would end `TimedOut`. No test here measures time to pass or
//! fail; the time it took is printed for the record.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wirestack::builder::ClientBuilder;
use wirestack::kv::{ClientCodec, Hello, KvClient, KvError, Request};
use wirestack::multiplex;
use wirestack::pipeline;

/// A `kv serve` process, continued and killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KV_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kv serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("read the first line");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|addr| addr.trim().parse().ok())
            .unwrap_or_else(|| panic!("kv serve did not start: {line:?}"));
        Server { child, addr }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
        if signal == "-STOP" {
            wait_until_stopped(self.child.id());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until process `pid` is stopped (state `T` in `/proc/PID/stat`):
/// `kill` returns once the signal is sent, and a busy process may still
/// answer a request before it stops. A hang guard bounds the wait.
fn wait_until_stopped(pid: u32) {
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..1_000 {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("T" | "t")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} did not stop");
}

/// Whether `error`'s chain holds the multiplexers' `Unresponsive`.
fn is_unresponsive(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(pipeline::Error::Unresponsive(_)) = error.downcast_ref::<pipeline::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The default `KvClient` (protocol 2.0, keepalive on with its defaults):
/// a write in flight when the server freezes fails "lost with the
/// connection", found by keepalive, long before its 60 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_the_calls_in_flight_through_keepalive() {
    let server = Server::start();
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_secs(60))
            .on_connect(Hello::new())
            .multiplex(multiplex::Builder::new().keepalive(Default::default()))
            .connect::<Request>(server.addr)
            .await
            .unwrap(),
    );
    client.put("k", "before").await.unwrap();
    server.signal("-STOP");
    let started = Instant::now();
    let error = client
        .put("k", "during")
        .await
        .expect_err("the server is stopped");
    eprintln!(
        "the frozen server was found after {:?}: {error}",
        started.elapsed()
    );
    assert!(matches!(error, KvError::Connection(_)), "{error:?}");
    assert!(is_unresponsive(&error), "not found by keepalive: {error:?}");
}

/// The same through `KvClient::connect`, whose defaults turn keepalive on.
/// Its writes go in a session, so the write lost with the frozen
/// connection is resent (safe: the server applies it once) until the
/// deadline: the retry shows that keepalive failed the connection first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_client_has_keepalive_on() {
    let server = Server::start();
    let client = KvClient::connect(server.addr).await.unwrap();
    client.put("k", "before").await.unwrap();
    server.signal("-STOP");
    let started = Instant::now();
    let error = client
        .put("k", "during")
        .await
        .expect_err("the server is stopped");
    eprintln!("found after {:?}: {error}", started.elapsed());
    assert!(matches!(error, KvError::TimedOut), "{error:?}");
    let stats = client.service().retry_stats();
    assert!(
        stats.retries >= 1,
        "never lost by keepalive, so never resent: {stats:?}"
    );
}

/// A server that goes on answering is never taken for a frozen one: an idle
/// connection, pinged at each interval, stays up and serves (pings answered).
#[tokio::test(start_paused = false)]
async fn an_idle_connection_to_a_live_server_stays_up() {
    let server = Server::start();
    let keepalive = wirestack::keepalive::Keepalive::new()
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500));
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .on_connect(Hello::new())
            .multiplex(multiplex::Builder::new().keepalive(keepalive))
            .connect::<Request>(server.addr)
            .await
            .unwrap(),
    );
    client.put("k", "v").await.unwrap();
    // Several intervals of silence from the caller: pings go out and come back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(client.service().reconnect_stats().reconnects(), 0);
}
