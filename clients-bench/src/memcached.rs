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
//!   every task; `batch of 64` is `get_many`.

use super::{key, median, Load, KEYS};
use futures::future::join_all;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wirestack::builder::ClientBuilder;
use wirestack::memcache::{MemcacheClient, MemcacheCodec, Request};

/// The clients compared.
#[derive(Clone)]
enum Client {
    Wirestack(MemcacheClient),
    /// The blocking client: one for the single-thread loads, one with a
    /// pool of 64 connections for the 64 threads.
    Memcache(Arc<memcache::Client>, Arc<memcache::Client>),
    /// One shared client, and one per task for `64 tasks`.
    AsyncMemcached(
        Arc<tokio::sync::Mutex<async_memcached::Client>>,
        Arc<Vec<tokio::sync::Mutex<async_memcached::Client>>>,
    ),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Wirestack(_) => "wirestack",
            Client::Memcache(..) => "memcache (blocking)",
            Client::AsyncMemcached(..) => "async-memcached",
        }
    }
}

async fn wirestack_get(client: &MemcacheClient, key: &str) {
    let value = client.get(key).await.expect("mg");
    assert_eq!(value.map(|v| v.len()), Some(64));
}

async fn async_memcached_get(client: &tokio::sync::Mutex<async_memcached::Client>, key: &str) {
    use async_memcached::AsciiProtocol;
    let value = client.lock().await.get(key).await.expect("get");
    assert_eq!(value.and_then(|v| v.data).map(|v| v.len()), Some(64));
}

fn memcache_get(client: &memcache::Client, key: &str) {
    let value: Option<Vec<u8>> = client.get(key).expect("get");
    assert_eq!(value.map(|v| v.len()), Some(64));
}

/// Runs `load` on `client` for about `time`; returns (ops/s, CPU us per
/// op), or `None` for a load the client cannot run.
async fn measure(client: &Client, load: Load, time: Duration) -> Option<(f64, f64)> {
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(key).collect());
    let cpu = super::cpu_time();
    let started = Instant::now();
    let ops: usize = match (client, load) {
        (Client::Wirestack(client), Load::Sequential) => {
            let mut ops = 0;
            while started.elapsed() < time {
                wirestack_get(client, &keys[ops % KEYS]).await;
                ops += 1;
            }
            ops
        }
        (Client::Wirestack(client), Load::Tasks64) => {
            let tasks = (0..64).map(|t| {
                let (client, keys) = (client.clone(), keys.clone());
                tokio::spawn(async move {
                    let mut ops = 0;
                    while started.elapsed() < time {
                        wirestack_get(&client, &keys[(t * 13 + ops) % KEYS]).await;
                        ops += 1;
                    }
                    ops
                })
            });
            join_all(tasks)
                .await
                .into_iter()
                .map(|ops| ops.expect("task"))
                .sum()
        }
        (Client::Wirestack(client), Load::Batch64) => {
            let mut ops = 0;
            while started.elapsed() < time {
                let first = ops % (KEYS - 64);
                let values = client.get_many(&keys[first..first + 64]).await.expect("get_many");
                assert!(values.iter().all(|v| v.as_ref().map(|v| v.len()) == Some(64)));
                ops += 64;
            }
            ops
        }
        (Client::Wirestack(client), Load::InFlight1000) => {
            let mut ops = 0;
            while started.elapsed() < time {
                join_all(keys.iter().map(|key| wirestack_get(client, key))).await;
                ops += KEYS;
            }
            ops
        }
        (Client::AsyncMemcached(shared, _), Load::Sequential) => {
            let mut ops = 0;
            while started.elapsed() < time {
                async_memcached_get(shared, &keys[ops % KEYS]).await;
                ops += 1;
            }
            ops
        }
        (Client::AsyncMemcached(_, own), Load::Tasks64) => {
            let tasks = (0..64).map(|t| {
                let (own, keys) = (own.clone(), keys.clone());
                tokio::spawn(async move {
                    let mut ops = 0;
                    while started.elapsed() < time {
                        async_memcached_get(&own[t], &keys[(t * 13 + ops) % KEYS]).await;
                        ops += 1;
                    }
                    ops
                })
            });
            join_all(tasks)
                .await
                .into_iter()
                .map(|ops| ops.expect("task"))
                .sum()
        }
        (Client::AsyncMemcached(shared, _), Load::Batch64) => {
            use async_memcached::AsciiProtocol;
            let mut ops = 0;
            while started.elapsed() < time {
                let first = ops % (KEYS - 64);
                let values = shared
                    .lock()
                    .await
                    .get_multi(&keys[first..first + 64])
                    .await
                    .expect("get_multi");
                assert_eq!(values.len(), 64);
                ops += 64;
            }
            ops
        }
        (Client::AsyncMemcached(shared, _), Load::InFlight1000) => {
            let mut ops = 0;
            while started.elapsed() < time {
                join_all(keys.iter().map(|key| async_memcached_get(shared, key))).await;
                ops += KEYS;
            }
            ops
        }
        (Client::Memcache(one, _), Load::Sequential) => {
            let (one, keys) = (one.clone(), keys.clone());
            tokio::task::spawn_blocking(move || {
                let mut ops = 0;
                while started.elapsed() < time {
                    memcache_get(&one, &keys[ops % KEYS]);
                    ops += 1;
                }
                ops
            })
            .await
            .expect("thread")
        }
        (Client::Memcache(_, pooled), Load::Tasks64) => {
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
            tokio::task::spawn_blocking(move || threads.into_iter().map(|t| t.join().expect("thread")).sum())
                .await
                .expect("threads")
        }
        (Client::Memcache(one, _), Load::Batch64) => {
            let (one, keys) = (one.clone(), keys.clone());
            tokio::task::spawn_blocking(move || {
                let mut ops = 0;
                while started.elapsed() < time {
                    let first = ops % (KEYS - 64);
                    let batch: Vec<&str> = keys[first..first + 64].iter().map(String::as_str).collect();
                    let values: std::collections::HashMap<String, Vec<u8>> = one.gets(&batch).expect("gets");
                    assert_eq!(values.len(), 64);
                    ops += 64;
                }
                ops
            })
            .await
            .expect("thread")
        }
        (Client::Memcache(..), Load::InFlight1000) => return None,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (super::cpu_time() - cpu).as_secs_f64();
    Some((ops as f64 / elapsed, cpu * 1e6 / ops as f64))
}

/// A memcached of our own on a free loopback port, stopped on drop.
struct Memcached(Child);

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_memcached() -> (SocketAddr, Memcached) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = Memcached(
        Command::new("memcached")
            // -u: memcached refuses to run as root without it (ignored otherwise).
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-u",
                "nobody",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("memcached (Debian: apt-get install memcached)"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (addr, server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("memcached did not start");
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if quiet {
        return runtime.block_on(super::quiet::run(addr, reps, time));
    }
    runtime.block_on(async move {
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
            own.push(tokio::sync::Mutex::new(client));
        }
        let clients = [
            Client::Wirestack(wirestack),
            Client::Memcache(Arc::new(memcache_one), Arc::new(memcache_pool)),
            Client::AsyncMemcached(Arc::new(tokio::sync::Mutex::new(shared)), Arc::new(own)),
        ];
        let picked = |var: &str, name: &str| {
            std::env::var(var).map_or(true, |list| list.split(',').any(|p| name.starts_with(p.trim())))
        };
        let clients: Vec<Client> = clients
            .into_iter()
            .filter(|client| picked("CLIENTS", client.name()))
            .collect();
        let loads: Vec<Load> = [Load::Sequential, Load::Tasks64, Load::Batch64, Load::InFlight1000]
            .into_iter()
            .filter(|load| picked("LOADS", load.name()))
            .collect();
        // Every load on every client, `reps` times interleaved.
        let mut cells = vec![vec![(Vec::new(), Vec::new()); clients.len()]; loads.len()];
        for _ in 0..reps {
            for (l, &load) in loads.iter().enumerate() {
                for (c, client) in clients.iter().enumerate() {
                    let client = client.clone();
                    let measured = tokio::spawn(async move { measure(&client, load, time).await })
                        .await
                        .expect("the load task");
                    if let Some((ops, cpu)) = measured {
                        cells[l][c].0.push(ops);
                        cells[l][c].1.push(cpu);
                    }
                }
            }
        }
        println!("memcached on {addr}; GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s");
        println!();
        println!("| load | client | GET/s | client CPU us per GET |");
        println!("| --- | --- | ---: | ---: |");
        for (l, load) in loads.iter().enumerate() {
            for (c, client) in clients.iter().enumerate() {
                let (ops, cpu) = cells[l][c].clone();
                if ops.is_empty() {
                    println!("| {} | {} | n/a | n/a |", load.name(), client.name());
                } else {
                    println!(
                        "| {} | {} | {:.0} | {:.2} |",
                        load.name(),
                        client.name(),
                        median(ops),
                        median(cpu)
                    );
                }
            }
        }
    });
}
