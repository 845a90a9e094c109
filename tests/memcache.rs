//! The same client stack against a third protocol we did not design:
//! memcached's meta protocol against a real `memcached`, started by each
//! test on a free loopback port (`memcached -l 127.0.0.1 -p <port> -U 0`).
//!
//! If `memcached` is not installed these tests print a loud message and
//! pass without running — unless the `CI` environment variable is set, in
//! which case they fail: CI must run them. Set `MEMCACHED` to use a binary
//! that is not on the `PATH`.

use bytes::Bytes;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::memcache::{CasOutcome, MemcacheClient, MemcacheCodec, MemcacheError};
use wirestack::reconnect::ReconnectConfig;
use wirestack::retry::RetryConfig;
use wirestack::route::{Ejected, EndpointState, HealthConfig, Ketama, Placement};

/// A `memcached` child process, killed on drop.
struct Memcached {
    child: Child,
    addr: SocketAddr,
}

impl Memcached {
    /// Starts one on a free port, or returns `None` (after saying so
    /// loudly) when `memcached` is missing and `CI` is not set.
    fn start() -> Option<Memcached> {
        for _ in 0..5 {
            match Self::start_on(free_port()) {
                Ok(server) => return Some(server),
                Err(None) => return missing(),
                // Most likely the port was taken in between: try another.
                Err(Some(_)) => continue,
            }
        }
        panic!("memcached did not come up on any of 5 ports");
    }

    /// Starts one on `port`; `Err(None)` if the binary is missing.
    fn start_on(port: u16) -> Result<Memcached, Option<String>> {
        let binary = binary();
        let spawned = Command::new(&binary)
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
            // Only used when run as root, which memcached refuses otherwise.
            .args(["-u", "nobody", "-m", "64"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(None),
            Err(error) => panic!("could not start {binary}: {error}"),
        };
        let mut server = Memcached {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(Some(format!("memcached exited: {status}")));
            }
            if raw(server.addr, b"mn\r\n").is_ok_and(|reply| reply == b"MN\r\n") {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(Some("memcached did not answer within 10 s".into()))
    }

    /// The keys this server holds, as `lru_crawler metadump` lists them
    /// (URL-encoded there, decoded here).
    fn keys(&self) -> Vec<Vec<u8>> {
        let dump = raw_until(self.addr, b"lru_crawler metadump all\r\n", b"END\r\n").unwrap();
        String::from_utf8_lossy(&dump)
            .lines()
            .filter_map(|line| line.strip_prefix("key="))
            .map(|rest| url_decode(rest.split(' ').next().unwrap_or_default()))
            .collect()
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> String {
    std::env::var("MEMCACHED").unwrap_or_else(|_| "memcached".into())
}

fn missing() -> Option<Memcached> {
    let binary = binary();
    if std::env::var_os("CI").is_some() {
        panic!("`{binary}` not found, and CI is set: install the memcached package so that the memcached tests run");
    }
    let _ = writeln!(
        io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! `{binary}` not found: SKIPPING the tests against memcached.\n\
         !! Install it (Debian: apt-get install memcached) to run them.\n\
         !! With CI set, this is a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    );
    None
}

/// `%XX` escapes decoded.
fn url_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Sends `command` on a fresh blocking connection and reads one answer
/// (whatever arrives first), without the code under test.
fn raw(addr: SocketAddr, command: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(command)?;
    let mut reply = vec![0u8; 4096];
    let n = stream.read(&mut reply)?;
    reply.truncate(n);
    Ok(reply)
}

/// The TTL memcached has left for `key`, in seconds (`mg <key> t`, asked
/// without the code under test).
fn remaining_ttl(addr: SocketAddr, key: &str) -> i64 {
    let answer = raw(addr, format!("mg {key} t\r\n").as_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .trim_end()
        .strip_prefix("HD t")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or_else(|| panic!("not a TTL: {answer:?}"))
}

/// Sends `command` and reads until the answer ends with `end`.
fn raw_until(addr: SocketAddr, command: &[u8], end: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(command)?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while !reply.ends_with(end) {
        let n = stream.read(&mut buffer)?;
        if n == 0 || reply.len() > 16 << 20 {
            return Err(io::Error::other("closed before the end of the answer"));
        }
        reply.extend_from_slice(&buffer[..n]);
    }
    Ok(reply)
}

/// Waits (at most `limit`) until `done` holds.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn every_command_does_what_memcached_says() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let cache = MemcacheClient::connect(server.addr).await.unwrap();

    cache.noop().await.unwrap();
    assert_eq!(cache.get("missing").await.unwrap(), None);
    cache.set("greeting", "hello").await.unwrap();
    assert_eq!(
        cache.get("greeting").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );

    // TTL and client flags come back with the item.
    cache
        .set_with("flagged", "v", Some(Duration::from_secs(3600)), 0xdead_beef)
        .await
        .unwrap();
    let item = cache.get_item("flagged").await.unwrap().unwrap();
    assert_eq!((item.value.as_ref(), item.flags), (&b"v"[..], 0xdead_beef));
    assert!(item.cas > 0);
    let ttl = remaining_ttl(server.addr, "flagged");
    assert!((3590..=3600).contains(&ttl), "{ttl}");

    // delete: true once, then false.
    assert!(cache.delete("greeting").await.unwrap());
    assert!(!cache.delete("greeting").await.unwrap());
    assert_eq!(cache.get("greeting").await.unwrap(), None);

    // incr/decr through ma: a missing key is None, decr stops at 0, a
    // value that is not a number is the server's client error.
    assert_eq!(cache.incr("counter", 1).await.unwrap(), None);
    cache.set("counter", "10").await.unwrap();
    assert_eq!(cache.incr("counter", 5).await.unwrap(), Some(15));
    assert_eq!(cache.decr("counter", 20).await.unwrap(), Some(0));
    cache.set("counter", u64::MAX.to_string()).await.unwrap();
    assert_eq!(cache.incr("counter", 2).await.unwrap(), Some(1));
    cache.set("word", "ten").await.unwrap();
    assert!(matches!(
        cache.incr("word", 1).await,
        Err(MemcacheError::Client(_))
    ));

    // touch: false for a missing key, true (and a new TTL) for a present one.
    assert!(!cache
        .touch("missing", Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert!(cache.touch("word", Some(Duration::from_secs(600))).await.unwrap());
    let ttl = remaining_ttl(server.addr, "word");
    assert!((590..=600).contains(&ttl), "{ttl}");

    // Batches: one flush, answers in order, misses as None.
    cache
        .set_many((0..100).map(|i| (format!("many:{i}"), format!("value {i}"))))
        .await
        .unwrap();
    let keys: Vec<String> = (0..100)
        .map(|i| format!("many:{i}"))
        .chain(["many:none".to_string()])
        .collect();
    let values = cache.get_many(&keys).await.unwrap();
    assert_eq!(values.len(), 101);
    for (i, value) in values.iter().take(100).enumerate() {
        assert_eq!(value.as_deref(), Some(format!("value {i}").as_bytes()));
    }
    assert_eq!(values[100], None);
    // The same through one multi-key get, a miss in the middle.
    let mut keys = keys;
    keys.swap(50, 100);
    let multi = cache.get_multi(&keys).await.unwrap();
    assert_eq!(multi.len(), 101);
    assert_eq!(multi[50], None);
    assert_eq!(multi[100].as_deref(), Some(&b"value 50"[..]));
    assert_eq!(multi[7].as_deref(), Some(&b"value 7"[..]));
    // A key the text protocol cannot carry: sent as mg commands instead.
    cache.set("needs base64", "b").await.unwrap();
    let mixed = cache
        .get_multi(["many:1", "needs base64", "many:none"])
        .await
        .unwrap();
    assert_eq!(
        mixed,
        [Some(Bytes::from("value 1")), Some(Bytes::from("b")), None]
    );

    // A key memcached cannot take never reaches it.
    assert!(matches!(cache.get("").await, Err(MemcacheError::InvalidKey(_))));
    assert!(matches!(
        cache.set("k".repeat(251), "v").await,
        Err(MemcacheError::InvalidKey(_))
    ));
    assert_eq!(cache.service().reconnect_stats().reconnects(), 0);
}

#[tokio::test]
async fn binary_values_and_keys_that_need_base64_round_trip_and_are_stored_raw() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let cache = MemcacheClient::connect(server.addr).await.unwrap();

    // Every byte value, CR LF included, in a value of 512 KiB.
    let value = Bytes::from((0..=255u8).cycle().take(512 << 10).collect::<Vec<_>>());
    cache.set("binary", value.clone()).await.unwrap();
    assert_eq!(cache.get("binary").await.unwrap(), Some(value.clone()));
    cache.set("empty", "").await.unwrap();
    assert_eq!(cache.get("empty").await.unwrap().as_deref(), Some(&b""[..]));

    // Keys with spaces, CR LF, NUL, UTF-8, and the longest binary key.
    let longest: Vec<u8> = (0..186u8).collect();
    let keys: [&[u8]; 5] = [
        b"a key with spaces",
        b"line\r\nbreak",
        b"nul\0byte",
        "ключ".as_bytes(),
        &longest,
    ];
    for (i, key) in keys.iter().enumerate() {
        let value = format!("value {i}");
        cache.set(key, value.clone()).await.unwrap();
        assert_eq!(cache.get(key).await.unwrap().as_deref(), Some(value.as_bytes()));
    }
    assert!(cache.delete(b"nul\0byte").await.unwrap());
    assert_eq!(cache.incr(b"a key with spaces", 1).await.ok(), None);

    // memcached stored the raw bytes, not their base64: another client
    // sees the key this one was given.
    let stored = server.keys();
    for key in [&keys[0], &keys[1], &keys[3], &keys[4]] {
        assert!(stored.contains(&key.to_vec()), "{key:?} not in {stored:?}");
    }
    assert!(!stored.contains(&b"nul\0byte".to_vec()), "deleted");
}

#[tokio::test]
async fn a_value_over_the_item_size_limit_is_a_typed_error_and_the_connection_survives() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let cache = MemcacheClient::connect(server.addr).await.unwrap();
    cache.set("before", "ok").await.unwrap();

    // memcached's default item limit is 1 MiB.
    let huge = Bytes::from(vec![b'x'; 2 << 20]);
    let error = cache.set("huge", huge).await.expect_err("over the limit");
    assert!(matches!(error, MemcacheError::TooLarge(_)), "{error}");
    assert_eq!(cache.get("huge").await.unwrap(), None);

    // The server swallowed the value: the same connection goes on.
    assert_eq!(cache.get("before").await.unwrap().as_deref(), Some(&b"ok"[..]));
    assert_eq!(cache.service().reconnect_stats().reconnects(), 0);
}

#[tokio::test]
async fn ttls_expire_and_touch_sets_a_new_one() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let cache = MemcacheClient::connect(server.addr).await.unwrap();

    cache
        .set_with("short", "lived", Some(Duration::from_secs(1)), 0)
        .await
        .unwrap();
    cache.set("forever", "here").await.unwrap();
    cache.set("touched", "soon gone").await.unwrap();
    assert!(cache
        .touch("touched", Some(Duration::from_secs(1)))
        .await
        .unwrap());

    // memcached's clock ticks in whole seconds: bounded waits, no timing
    // assertion.
    let gone = eventually(Duration::from_secs(10), || async {
        cache.get("short").await.unwrap().is_none() && cache.get("touched").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "the keys with a TTL never expired");
    assert_eq!(cache.get("forever").await.unwrap().as_deref(), Some(&b"here"[..]));
}

#[tokio::test]
async fn compare_and_swap_stores_only_over_the_version_it_read() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let cache = MemcacheClient::connect(server.addr).await.unwrap();
    cache.set("balance", "100").await.unwrap();

    let read = cache.get_item("balance").await.unwrap().unwrap();
    // Another writer changes it in between.
    cache.set("balance", "50").await.unwrap();
    assert_eq!(
        cache.cas("balance", "90", read.cas, None, 0).await.unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(cache.get("balance").await.unwrap().as_deref(), Some(&b"50"[..]));

    // With the current token it is stored, and the token moves on.
    let fresh = cache.get_item("balance").await.unwrap().unwrap();
    assert_eq!(
        cache.cas("balance", "40", fresh.cas, None, 3).await.unwrap(),
        CasOutcome::Stored
    );
    let after = cache.get_item("balance").await.unwrap().unwrap();
    assert_eq!((after.value.as_ref(), after.flags), (&b"40"[..], 3));
    assert_ne!(after.cas, fresh.cas);

    assert!(cache.delete("balance").await.unwrap());
    assert_eq!(
        cache.cas("balance", "1", after.cas, None, 0).await.unwrap(),
        CasOutcome::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_mid_load_is_reconnected_to() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let port = server.addr.port();
    let cache = MemcacheClient::new(
        ClientBuilder::new(MemcacheCodec::new())
            .timeout(Duration::from_secs(2))
            .reconnect(ReconnectConfig {
                backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(200)),
                ..ReconnectConfig::default()
            })
            .connect(server.addr)
            .await
            .unwrap(),
    );

    // Load: set then get, bounded in count and time. Failures are allowed
    // only while the server is down.
    let stop = Arc::new(AtomicBool::new(false));
    let ok_after_restart = Arc::new(AtomicU64::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|task| {
            let cache = cache.clone();
            let (stop, ok, restarted, wrong) = (
                stop.clone(),
                ok_after_restart.clone(),
                restarted.clone(),
                wrong.clone(),
            );
            tokio::spawn(async move {
                let started = Instant::now();
                for n in 0..200_000u64 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                    let key = format!("load:{task}:{}", n % 100);
                    let value = format!("{n}");
                    let after = restarted.load(Ordering::Relaxed);
                    if cache.set(&key, value.clone()).await.is_err() {
                        continue;
                    }
                    match cache.get(&key).await {
                        Ok(Some(got)) if got == value.as_bytes() => {
                            if after {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Lost with the restart between the set and the get.
                        Ok(None) | Err(_) => {}
                        Ok(Some(got)) => wrong.lock().unwrap().push(format!("{key}: {got:?}")),
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut restarted_server = None;
    for _ in 0..50 {
        if let Ok(server) = Memcached::start_on(port) {
            restarted_server = Some(server);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _server = restarted_server.expect("memcached restarts on its port");
    restarted.store(true, Ordering::Relaxed);

    let recovered = eventually(Duration::from_secs(10), || async {
        ok_after_restart.load(Ordering::Relaxed) > 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(recovered, "no load succeeded after the restart");
    let wrong = std::mem::take(&mut *wrong.lock().unwrap());
    assert!(
        wrong.is_empty(),
        "wrong values: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert!(cache.service().reconnect_stats().reconnects() >= 1);
    cache.noop().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_hold_keys_where_ketama_puts_them_and_a_killed_one_is_ejected() {
    let Some(a) = Memcached::start() else {
        return;
    };
    let (b, c) = (Memcached::start().unwrap(), Memcached::start().unwrap());
    let names: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|server| server.addr.to_string())
        .collect();
    let router = ClientBuilder::new(MemcacheCodec::new())
        .timeout(Duration::from_secs(2))
        .retry(RetryConfig {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(200)),
            ..RetryConfig::default()
        })
        .reconnect(ReconnectConfig {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(1)),
            ..ReconnectConfig::default()
        })
        .health(HealthConfig {
            failures: 3,
            window: Duration::from_secs(2),
            probe_backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
            probe_timeout: Duration::from_millis(500),
        })
        .route(names.clone())
        .unwrap()
        .with_placement(Placement::Ketama);
    let handle = router.handle();
    let cache = MemcacheClient::new(router.clone());

    // Every key lands on the server ketama names, and only there.
    let ring = Ketama::new(&names);
    let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
    cache.set_many(keys.iter().map(|key| (key, "v"))).await.unwrap();
    let held: Vec<Vec<Vec<u8>>> = [&a, &b, &c].iter().map(|server| server.keys()).collect();
    for key in &keys {
        let home = ring.pick(key.as_bytes());
        assert_eq!(router.endpoint_of(key.as_bytes()), names[home]);
        for (index, keys) in held.iter().enumerate() {
            let here = keys.contains(&key.as_bytes().to_vec());
            assert_eq!(here, index == home, "{key} on server {index}, ketama says {home}");
        }
    }
    assert!(
        held.iter().all(|keys| keys.len() > 30),
        "{:?}",
        held.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // Kill c: its keys fail, then fail fast with the ejection naming it;
    // the others' keys are served throughout.
    let dead = names[2].clone();
    let c_port = c.addr.port();
    let (dead_keys, live_keys): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|key| ring.pick(key.as_bytes()) == 2);
    drop(c);
    let first = cache
        .get(dead_keys[0])
        .await
        .expect_err("the killed server's key fails");
    assert!(
        ejected(&first).is_some(),
        "the call ends with the ejection: {first}"
    );
    assert_ne!(handle.state(&dead), Some(EndpointState::Up));
    for key in dead_keys.iter().take(20) {
        let error = cache.get(key).await.expect_err("its keys fail");
        assert!(matches!(error, MemcacheError::Disconnected(_)), "{error}");
        assert_eq!(ejected(&error).map(Ejected::endpoint), Some(dead.as_str()));
    }
    for key in &live_keys {
        assert_eq!(cache.get(key).await.unwrap().as_deref(), Some(&b"v"[..]), "{key}");
    }
    // Batches over the live servers still succeed.
    let values = cache.get_many(live_keys.iter().take(50)).await.unwrap();
    assert!(values.iter().all(Option::is_some));

    // Restarted on its port (empty, as a restarted memcached is), it is
    // probed back in with `mn`, and its keys are its again.
    let port = c_port;
    let mut restarted = None;
    for _ in 0..50 {
        if let Ok(server) = Memcached::start_on(port) {
            restarted = Some(server);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = restarted.expect("memcached restarts on its port");
    let back = eventually(Duration::from_secs(10), || async {
        handle.state(&dead) == Some(EndpointState::Up)
    })
    .await;
    assert!(back, "probed back in: {:?}", handle.stats());
    for key in dead_keys.iter().take(20) {
        assert_eq!(
            cache.get(key).await.unwrap(),
            None,
            "{key}: a restarted memcached is empty"
        );
        cache.set(key, "again").await.unwrap();
    }
    let held = c.keys();
    assert!(dead_keys
        .iter()
        .take(20)
        .all(|key| held.contains(&key.as_bytes().to_vec())));
    let stats = handle.stats();
    let dead_stats = stats.iter().find(|s| s.name == dead).unwrap();
    assert_eq!(dead_stats.ejections, 1, "{stats:?}");
    assert!(dead_stats.probes >= 1, "{stats:?}");
    drop((a, b, c));
}

/// A fake server that answers every line with `answer`, to see what the
/// client makes of a server that breaks the protocol.
async fn fake_server(answer: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 || socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_server_out_of_step_or_out_of_protocol_is_a_protocol_error_never_a_panic() {
    let answers: [&'static [u8]; 4] = [
        // Another request's token.
        b"EN O4242\r\n",
        // A value longer than the codec accepts: refused before allocating.
        b"VA 18446744073709551615 O0\r\n",
        // Not the meta protocol.
        b"+OK\r\n",
        // A token that is not a number.
        b"HD Oabc\r\n",
    ];
    for answer in answers {
        let addr = fake_server(answer).await;
        let cache = MemcacheClient::new(
            ClientBuilder::new(MemcacheCodec::new())
                .timeout(Duration::from_secs(2))
                .no_retry()
                .connect(addr)
                .await
                .unwrap(),
        );
        let error = cache.get("key").await.expect_err("a broken answer");
        assert!(
            matches!(error, MemcacheError::Protocol(_)),
            "{:?}: {error}",
            String::from_utf8_lossy(answer)
        );
    }
}

/// `kv bench --protocol memcache` drives memcached with the engine that
/// drives `kv serve`: every key of a `fill` is then in memcached with the
/// value size asked for, and no operation failed.
#[cfg(feature = "cli")]
#[tokio::test]
async fn kv_bench_fills_memcached_through_the_meta_protocol() {
    let Some(server) = Memcached::start() else {
        return;
    };
    let output = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args([
            "bench",
            "--addr",
            &server.addr.to_string(),
            "--protocol",
            "memcache",
        ])
        .args(["--workload", "fill", "--key-space", "500", "--value-size", "100"])
        .args([
            "--pipeline",
            "16",
            "--connections",
            "2",
            "--duration",
            "30",
            "--json",
        ])
        .output()
        .expect("kv bench runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("\"ops\":500"), "{report}");
    assert!(report.contains("\"errors\":0"), "{report}");
    let cache = MemcacheClient::connect(server.addr).await.unwrap();
    let keys: Vec<String> = (0..500).map(|n| format!("key:{n:012}")).collect();
    let values = cache.get_many(&keys).await.unwrap();
    assert!(values
        .iter()
        .all(|value| value.as_ref().map(|v| v.len()) == Some(100)));
}

/// A server that reads one request line and closes the connection without
/// answering — every answer is lost after its request was written — and
/// counts the requests it read.
async fn answer_losing_server() -> (SocketAddr, Arc<AtomicU64>) {
    use tokio::io::AsyncBufReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        for _ in 0..256 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let mut reader = tokio::io::BufReader::new(socket);
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).await.is_ok_and(|n| n > 0) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_lost_answer_is_retried_for_a_get_and_a_set_but_never_for_an_incr_or_a_cas() {
    let (addr, seen) = answer_losing_server().await;
    let fast = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
    let cache = MemcacheClient::new(
        ClientBuilder::new(MemcacheCodec::new())
            .timeout(Duration::from_secs(5))
            .retry(RetryConfig {
                max_retries: 3,
                backoff: fast,
                min_retries_per_sec: 1000,
                ..RetryConfig::default()
            })
            .reconnect(ReconnectConfig {
                backoff: fast,
                ..ReconnectConfig::default()
            })
            .connect(addr)
            .await
            .unwrap(),
    );
    let attempts = |seen: &AtomicU64| seen.swap(0, Ordering::Relaxed);

    // Not idempotent: sent once, and the caller learns it may have been applied.
    let error = cache.incr("n", 1).await.expect_err("no answer");
    assert!(matches!(error, MemcacheError::Connection(_)), "{error}");
    assert_eq!(attempts(&seen), 1);
    let error = cache.cas("k", "v", 7, None, 0).await.expect_err("no answer");
    assert!(matches!(error, MemcacheError::Connection(_)), "{error}");
    assert_eq!(attempts(&seen), 1);

    // Idempotent: sent again (a retry that finds the connection still
    // down fails fast as not sent and is retried too, so how many reach
    // the server depends on the reconnect's timing: more than one).
    let error = cache.get("k").await.expect_err("no answer");
    assert!(
        matches!(
            error,
            MemcacheError::Connection(_) | MemcacheError::Disconnected(_)
        ),
        "{error}"
    );
    assert!((2..=4).contains(&attempts(&seen)));
    cache.set("k", "v").await.expect_err("no answer");
    assert!((2..=4).contains(&attempts(&seen)));
}
