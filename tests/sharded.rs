//! Several KV servers behind one sharded client: keys spread evenly, a
//! server killed under load (its keys fail fast with the ejection error,
//! every operation on the other servers' keys succeeds), then restarted
//! (probed back in, its keys served again); and the CLI with a list of
//! addresses.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig};
use wirestack::pool::PoolConfig;
use wirestack::reconnect::ReconnectConfig;
use wirestack::retry::RetryConfig;
use wirestack::route::{Ejected, EndpointState, HealthConfig};

/// A `kv serve` process (in memory), killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kv serve --listen listen`, or `None` if it could not bind.
fn try_serve(listen: &str) -> Option<Served> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kv serve");
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    let Some(addr) = line.strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    Some(Served {
        addr: addr.trim().to_owned(),
        child,
    })
}

fn serve() -> Served {
    try_serve("127.0.0.1:0").expect("kv serve on a free port")
}

/// The ejection error in `error`'s chain of sources, if there is one.
fn ejected<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Ejected> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(ejected) = error.downcast_ref::<Ejected>() {
            return Some(ejected);
        }
        next = error.source();
    }
    None
}

/// Polls `done` every 10 ms for at most `limit`; `true` if it held.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn three_servers_hold_an_even_share_of_100_000_keys() {
    let config = || KvServerConfig::default();
    let servers = [
        KvServer::start("127.0.0.1:0", config()).await.unwrap(),
        KvServer::start("127.0.0.1:0", config()).await.unwrap(),
        KvServer::start("127.0.0.1:0", config()).await.unwrap(),
    ];
    let client = KvClient::sharded(servers.iter().map(KvServer::local_addr)).unwrap();
    for chunk in 0..100 {
        let pairs = (chunk * 1000..(chunk + 1) * 1000).map(|i| (format!("key:{i}"), "v"));
        client.put_many(pairs).await.unwrap();
    }
    let counts: Vec<usize> = servers.iter().map(|server| server.store().len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 100_000);
    let even = 100_000.0 / 3.0;
    for &count in &counts {
        assert!((count as f64 - even).abs() < even * 0.10, "{counts:?}");
    }
    // A batch across the servers comes back in the caller's order.
    let values = client
        .get_many((0..1000).rev().map(|i| format!("key:{i}")))
        .await
        .unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"v"[..])));
    assert_eq!(
        client.get_many(["key:7", "missing", "key:8"]).await.unwrap()[1],
        None
    );
}

/// Writes go in one session per server: each server learns of its own
/// session from that session's seq 1 (a session shared across servers would
/// reach one of them first with a later number, answered
/// `SESSION_EXPIRED`), and every write — single or batched, from many
/// tasks — is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_client_writes_in_one_session_per_server() {
    let servers = [
        KvServer::start("127.0.0.1:0", KvServerConfig::default())
            .await
            .unwrap(),
        KvServer::start("127.0.0.1:0", KvServerConfig::default())
            .await
            .unwrap(),
        KvServer::start("127.0.0.1:0", KvServerConfig::default())
            .await
            .unwrap(),
    ];
    let client = KvClient::sharded(servers.iter().map(KvServer::local_addr)).unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    client.put(format!("t{task}:{i}"), "v").await.unwrap();
                }
                client.delete(format!("t{task}:0")).await.unwrap();
                let pairs = (100..200).map(|i| (format!("t{task}:{i}"), "w"));
                client.put_many(pairs).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for server in &servers {
        assert_eq!(server.store().sessions().len(), 1, "a session per server");
    }
    let total: usize = servers.iter().map(|server| server.store().len()).sum();
    assert_eq!(total, 16 * 199);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_while_the_others_serve_and_comes_back_when_restarted() {
    let (a, b) = (serve(), serve());
    let mut c = serve();
    let addrs = vec![a.addr.clone(), b.addr.clone(), c.addr.clone()];
    let deadline = Duration::from_secs(2);
    // Backoffs tuned for a loopback cluster, where a refused connect takes
    // microseconds: retry and reconnect back off from 10 ms (defaults: 25
    // and 100 ms), so that a dead server is ejected after 3 quick attempts.
    let router = ClientBuilder::new(ClientCodec::new())
        .timeout(deadline)
        .retry(RetryConfig {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(200)),
            ..RetryConfig::default()
        })
        .reconnect(ReconnectConfig {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(1)),
            ..ReconnectConfig::default()
        })
        .pool(PoolConfig {
            max_connections: 2,
            grow_at: 4,
        })
        .health(HealthConfig {
            failures: 3,
            window: Duration::from_secs(2),
            probe_backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
            probe_timeout: Duration::from_millis(500),
        })
        .route(addrs)
        .unwrap();
    let handle = router.handle();
    let client = KvClient::new(router.clone());
    let keys: Vec<String> = (0..600).map(|i| format!("key:{i}")).collect();
    let (dead_keys, live_keys): (Vec<String>, Vec<String>) = keys
        .into_iter()
        .partition(|key| router.endpoint_of(key.as_bytes()) == c.addr);
    assert!(
        dead_keys.len() > 100 && live_keys.len() > 300,
        "{} {}",
        dead_keys.len(),
        live_keys.len()
    );
    for key in dead_keys.iter().chain(&live_keys) {
        client.put(key.clone(), key.clone()).await.unwrap();
    }

    // Load on the two servers that stay up, for the whole test: every
    // operation must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|task| {
            let (client, keys) = (client.clone(), live_keys.clone());
            let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                for n in (task..).step_by(4).take(2_000_000) {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    let key = keys[n % keys.len()].clone();
                    let outcome = match client.put(key.clone(), key.clone()).await {
                        Ok(()) => client
                            .get(key.clone())
                            .await
                            .map(|v| v.as_deref() == Some(key.as_bytes())),
                        Err(error) => Err(error),
                    };
                    match outcome {
                        Ok(true) => {}
                        Ok(false) => errors.lock().unwrap().push(format!("{key}: wrong value")),
                        Err(error) => errors.lock().unwrap().push(format!("{key}: {error}")),
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Kill one server. Its keys fail (first with the lost connection),
    // until it is ejected.
    let port = c.addr.clone();
    drop(c);
    // The first call for its keys fails over to the ejection: it retries
    // while the endpoint's failures accrue, and once the endpoint is
    // ejected its next attempt fails with the ejection, which is not
    // retried — it does not go on retrying until its deadline.
    let start = Instant::now();
    let first = client
        .get(dead_keys[0].clone())
        .await
        .expect_err("the killed server's key fails");
    let ejected_after = start.elapsed();
    assert!(
        ejected(&first).is_some(),
        "the call in flight ends with the ejection: {first}"
    );
    assert_ne!(handle.state(&port), Some(EndpointState::Up));

    // Ejected: every call for its keys fails at once with the ejection
    // error naming it, never by waiting for the deadline.
    let mut slowest = Duration::ZERO;
    for key in dead_keys.iter().take(50) {
        let started = Instant::now();
        let error = client.get(key.clone()).await.expect_err("its keys fail");
        slowest = slowest.max(started.elapsed());
        let ejected = ejected(&error).unwrap_or_else(|| panic!("not the ejection error: {error}"));
        assert_eq!(ejected.endpoint(), port);
    }
    assert!(slowest < deadline / 4, "failing fast took {slowest:?}");
    let ops_while_down = ops.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        ops.load(Ordering::Relaxed) > ops_while_down,
        "the other servers keep serving"
    );

    // Restart it on the same address: a probe brings it back.
    let mut restarted = None;
    for _ in 0..50 {
        restarted = try_serve(&port);
        if restarted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c = restarted.expect("kv serve restarts on its address");
    assert!(
        eventually(Duration::from_secs(10), || handle.state(&c.addr)
            == Some(EndpointState::Up))
        .await,
        "probed back in: {:?}",
        handle.stats()
    );
    for key in &dead_keys {
        client.put(key.clone(), "again").await.unwrap();
        assert_eq!(
            client.get(key.clone()).await.unwrap().as_deref(),
            Some(&b"again"[..])
        );
    }

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} failed operations on live servers: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let stats = handle.stats();
    let dead = stats.iter().find(|s| s.name == port).unwrap();
    assert_eq!(dead.ejections, 1, "{stats:?}");
    assert!(dead.probes >= 1, "{stats:?}");
    assert!(stats.iter().all(|s| s.state == EndpointState::Up), "{stats:?}");
    assert!(
        stats
            .iter()
            .all(|s| s.connections.is_some_and(|n| (1..=2).contains(&n))),
        "{stats:?}"
    );
    println!(
        "ejected {ejected_after:?} after the kill; slowest fast failure {slowest:?}; {} operations on the live servers",
        ops.load(Ordering::Relaxed)
    );
    drop((a, b));
}

#[test]
fn the_cli_spreads_keys_over_a_list_of_addresses() {
    let servers = [serve(), serve(), serve()];
    let list = servers
        .iter()
        .map(|s| s.addr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let kv = |args: &[&str], addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(args)
            .args(["--addr", addr])
            .output()
            .expect("run kv")
    };
    for i in 0..6 {
        let key = format!("cli:{i}");
        assert!(kv(&["put", &key, "value"], &list).status.success());
        let got = kv(&["get", &key], &list);
        assert_eq!((got.status.code(), &got.stdout[..]), (Some(0), &b"value\n"[..]));
        // On exactly one server.
        let homes = servers
            .iter()
            .filter(|s| kv(&["get", &key], &s.addr).status.code() == Some(0))
            .count();
        assert_eq!(homes, 1, "{key}");
        assert_eq!(kv(&["del", &key], &list).status.code(), Some(0));
        assert_eq!(kv(&["get", &key], &list).status.code(), Some(1));
    }
    let ping = kv(&["ping"], &list);
    assert!(ping.status.success());
    assert_eq!(String::from_utf8_lossy(&ping.stdout), "PONG\nPONG\nPONG\n");
    let bench = kv(
        &[
            "bench",
            "--ops",
            "3000",
            "--pipeline",
            "32",
            "--key-space",
            "300",
            "--json",
        ],
        &list,
    );
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(
        String::from_utf8_lossy(&bench.stdout).contains("\"errors\":0"),
        "{:?}",
        bench
    );
}
