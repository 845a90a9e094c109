//! `MODE=memcached`: wirestack's `MemcacheClient` against the two most used
//! Rust memcached clients on one memcached of our own, the same four loads
//! as the Redis comparison (GETs of 64-byte values):
//!
//! * `memcache` (rust-memcache, 0.21): blocking, the binary protocol, a
//!   pool of connections (r2d2). Its loads run on OS threads, as a blocking
//!   client is used: one thread for `sequential` and `batch of 64` (its
//!   multi-get `gets`), 64 threads sharing one client with a pool of 64
//!   connections for `64 tasks`. It has no way to keep 1000 calls in
//!   flight from one thread: that cell is `n/a`.
//! * `async-memcached` (Shopify, 0.9): tokio, the text protocol, one
//!   connection per `Client`, `&mut self` for every call. `64 tasks` get a
//!   client (connection) each; `sequential` and `1000 in flight` share one
//!   behind a `tokio::sync::Mutex` (so the 1000 calls take turns on its
//!   connection); `batch of 64` is its multi-get `get_multi`.
//! * wirestack: one `MemcacheClient` (one pipelined connection) shared by
//!   every task; `batch of 64` is `get_multi` (one multi-key `get`, as the
//!   others send), and `get_many` (an `mg` per key, what a sharded client
//!   sends) in a row of its own.

use super::{key, Gets, Load, Sample, KEYS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wirestack::builder::ClientBuilder;
use wirestack::memcache::{MemcacheClient, MemcacheCodec, Request};

/// The clients compared.
#[derive(Clone)]
enum Client {
    /// `get_multi` for a batch: one multi-key `get`, as the others send one.
    Wirestack(MemcacheClient),
    /// `get_many` for a batch: an `mg` per key (the batch load only).
    WirestackMg(MemcacheClient),
    /// One shared client (`sequential`, `batch of 64`, `1000 in flight`),
    /// and one per task for `64 tasks`.
    AsyncMemcached(
        Arc<Mutex<async_memcached::Client>>,
        Arc<Vec<Mutex<async_memcached::Client>>>,
    ),
    /// The blocking client: one for the single-thread loads, one with a
    /// pool of 64 connections for the 64 threads.
    Memcache(Arc<memcache::Client>, Arc<memcache::Client>),
}

impl Gets for Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Wirestack(_) => "wirestack",
            Client::WirestackMg(_) => "wirestack get_many (mg)",
            Client::AsyncMemcached(..) => "async-memcached",
            Client::Memcache(..) => "memcache (blocking)",
        }
    }

    async fn get(&self, task: usize, key: &str) {
        use async_memcached::AsciiProtocol;
        let len = match self {
            Client::Wirestack(client) | Client::WirestackMg(client) => {
                client.get(key).await.expect("mg").map(|v| v.len())
            }
            Client::AsyncMemcached(shared, own) => {
                let client = if task == 0 { &**shared } else { &own[task] };
                client
                    .lock()
                    .await
                    .get(key)
                    .await
                    .expect("get")
                    .and_then(|v| v.data)
                    .map(|v| v.len())
            }
            Client::Memcache(..) => unreachable!("the blocking client runs on threads"),
        };
        assert_eq!(len, Some(64));
    }

    async fn get_batch(&self, keys: &[String]) {
        use async_memcached::AsciiProtocol;
        let found = match self {
            Client::Wirestack(client) => {
                let values = client.get_multi(keys).await.expect("get_multi");
                values
                    .iter()
                    .filter(|v| v.as_ref().map(|v| v.len()) == Some(64))
                    .count()
            }
            Client::WirestackMg(client) => {
                let values = client.get_many(keys).await.expect("get_many");
                values
                    .iter()
                    .filter(|v| v.as_ref().map(|v| v.len()) == Some(64))
                    .count()
            }
            Client::AsyncMemcached(shared, _) => shared
                .lock()
                .await
                .get_multi(keys)
                .await
                .expect("get_multi")
                .len(),
            Client::Memcache(..) => unreachable!("the blocking client runs on threads"),
        };
        assert_eq!(found, keys.len());
    }
}

/// [`super::measure`] for the async clients, [`blocking`] for the other.
async fn measured(client: Client, load: Load, time: Duration) -> Option<Sample> {
    match &client {
        Client::Memcache(one, pooled) => {
            let (one, pooled) = (one.clone(), pooled.clone());
            tokio::task::spawn_blocking(move || blocking(&one, &pooled, load, time))
                .await
                .expect("the blocking load")
        }
        Client::WirestackMg(_) if load != Load::Batch64 => None,
        _ => Some(super::measure(&client, load, time).await),
    }
}

fn memcache_get(client: &memcache::Client, key: &str) {
    let value: Option<Vec<u8>> = client.get(key).expect("get");
    assert_eq!(value.map(|v| v.len()), Some(64));
}

/// The loads of the blocking client, on threads; `None` for the one it
/// cannot run (1000 calls in flight from one thread).
fn blocking(
    one: &memcache::Client,
    pooled: &Arc<memcache::Client>,
    load: Load,
    time: Duration,
) -> Option<Sample> {
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(key).collect());
    let cpu = super::cpu_time();
    let started = Instant::now();
    let ops: usize = match load {
        Load::Sequential => {
            let mut ops = 0;
            while started.elapsed() < time {
                memcache_get(one, &keys[ops % KEYS]);
                ops += 1;
            }
            ops
        }
        Load::Tasks64 => {
            let threads: Vec<_> = (0..64)
                .map(|t| {
                    let (pooled, keys) = (pooled.clone(), keys.clone());
                    std::thread::spawn(move || {
                        let mut ops = 0;
                        while started.elapsed() < time {
                            memcache_get(&pooled, &keys[(t * 13 + ops) % KEYS]);
                            ops += 1;
                        }
                        ops
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).sum()
        }
        Load::Batch64 => {
            let mut ops = 0;
            while started.elapsed() < time {
                let first = ops % (KEYS - 64);
                let batch: Vec<&str> = keys[first..first + 64].iter().map(String::as_str).collect();
                let values: std::collections::HashMap<String, Vec<u8>> = one.gets(&batch).expect("gets");
                assert_eq!(values.len(), 64);
                ops += 64;
            }
            ops
        }
        Load::InFlight1000 => return None,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (super::cpu_time() - cpu).as_secs_f64();
    Some(Sample::new(ops, elapsed, cpu, None))
}

/// A memcached of our own on a free loopback port.
fn start_memcached() -> (SocketAddr, super::Server) {
    super::start_server("memcached", |port| {
        // -u: memcached refuses to run as root without it (ignored otherwise).
        ["-l", "127.0.0.1", "-p", port, "-U", "0", "-u", "nobody"]
            .map(String::from)
            .to_vec()
    })
}

/// Runs the comparison and prints its table; or, with `quiet`, the
/// quiet-mode measurement ([`super::quiet`]).
pub(crate) fn main(reps: usize, seconds: f64, quiet: bool) {
    let time = Duration::from_secs_f64(seconds);
    let (addr, _server) = match std::env::var("MEMCACHED") {
        Ok(addr) => (addr.parse().expect("MEMCACHED=IP:PORT"), None),
        Err(_) => {
            let (addr, server) = start_memcached();
            (addr, Some(server))
        }
    };
    if quiet {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        return runtime.block_on(super::quiet::run(addr, reps, time));
    }
    let loads = super::picked_loads();
    let runs = super::run_flavours(&loads, reps, time, || clients(addr), measured);
    println!("memcached on {addr}; GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s");
    super::report(&loads, &runs);
}

/// The clients compared (`CLIENTS` picks some), connected to `addr` on the
/// current runtime; the keys preloaded.
async fn clients(addr: SocketAddr) -> Vec<Client> {
    // OPAQUE=0: wirestack without opaque tokens, to measure what they cost.
    let codec = if std::env::var("OPAQUE").as_deref() == Ok("0") {
        MemcacheCodec::new().without_opaque()
    } else {
        MemcacheCodec::new()
    };
    let wirestack = MemcacheClient::new(
        ClientBuilder::new(codec)
            .connect_pinned::<Request>(addr)
            .await
            .expect("wirestack connects"),
    );
    wirestack
        .set_many((0..KEYS).map(|i| (key(i), &[b'x'; 64][..])))
        .await
        .expect("preload");
    let url = format!("memcache://{addr}");
    let memcache_one = memcache::Client::connect(url.as_str()).expect("memcache connects");
    let memcache_pool = memcache::Client::with_pool_size(url.as_str(), 64).expect("memcache connects");
    let shared = async_memcached::Client::new(format!("tcp://{addr}"))
        .await
        .expect("async-memcached connects");
    let mut own = Vec::new();
    for _ in 0..64 {
        let client = async_memcached::Client::new(format!("tcp://{addr}"))
            .await
            .expect("async-memcached connects");
        own.push(Mutex::new(client));
    }
    let clients = [
        Client::Wirestack(wirestack.clone()),
        Client::WirestackMg(wirestack),
        Client::Memcache(Arc::new(memcache_one), Arc::new(memcache_pool)),
        Client::AsyncMemcached(Arc::new(Mutex::new(shared)), Arc::new(own)),
    ];
    clients
        .into_iter()
        .filter(|client| super::picked("CLIENTS", client.name()))
        .collect()
}
