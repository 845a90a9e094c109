//! wirestack's `RedisClient` against redis-rs (multiplexed connection) and
//! fred on one redis-server, GETs of 64-byte values:
//!
//! * `sequential`: one task, one GET at a time;
//! * `64 tasks`: 64 tasks sharing one client, one GET at a time each;
//! * `batch of 64`: one task, explicit batches of 64 GETs (wirestack
//!   `get_many`, redis-rs `pipe()`, fred `pipeline()`);
//! * `1000 in flight`: one task, 1000 GET calls awaited together.
//!
//! With `MODE=memcached` it starts a memcached and compares
//! `MemcacheClient` with the `memcache` and `async-memcached` crates on the
//! same four loads (see `memcached.rs` for how each is driven);
//! `MODE=memcached-quiet` measures what memcached's quiet mode saves a
//! batch of gets (see `quiet.rs`).
//!
//! With `MODE=cluster` it starts a local Redis Cluster (three primaries)
//! and compares `RedisClient::cluster` with redis-rs's async cluster client
//! (`cluster-async`) on the same loads but the batch (redis-rs sends a
//! cluster pipeline to one node).
//!
//! Each cell reports ops/s and the client's CPU time per GET (getrusage of
//! this process: redis-server is another process), the median of
//! interleaved repetitions (every cell of every client in turn, REPS times).
//!
//! ```text
//! cargo run --release -p clients-bench            # starts its own redis-server
//! REDIS=127.0.0.1:6379 cargo run --release -p clients-bench
//! REPS=5 SECONDS=1 cargo run --release -p clients-bench
//! CLIENTS=wirestack LOADS=batch SECONDS=10 REPS=1 cargo run --release -p clients-bench
//! MODE=cluster cargo run --release -p clients-bench   # starts a local cluster
//! MODE=memcached cargo run --release -p clients-bench # starts its own memcached
//! ```
//!
//! Every load is bounded in time; all traffic goes to 127.0.0.1.

use bytes::Bytes;
use fred::prelude::{ClientLike, KeysInterface};
use futures::future::join_all;
use redis::AsyncCommands;
use std::future::Future;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wirestack::resp::cluster::ClusterService;
use wirestack::resp::RedisClient;

mod cluster;
mod memcached;
mod quiet;

const KEYS: usize = 1000;

fn key(i: usize) -> String {
    format!("key:{i:012}")
}

/// User and system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The three clients, each behind the same four loads.
#[derive(Clone)]
enum Client {
    Wirestack(RedisClient),
    RedisRs(redis::aio::MultiplexedConnection),
    Fred(fred::clients::Client),
    WirestackCluster(RedisClient<ClusterService>),
    RedisRsCluster(redis::cluster_async::ClusterConnection),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Wirestack(_) => "wirestack",
            Client::RedisRs(_) => "redis-rs",
            Client::Fred(_) => "fred",
            Client::WirestackCluster(_) => "wirestack cluster",
            Client::RedisRsCluster(_) => "redis-rs cluster",
        }
    }

    async fn get(&self, key: &str) {
        let value = match self {
            Client::Wirestack(client) => client.get(key).await.expect("GET").map(|v| v.len()),
            Client::RedisRs(connection) => {
                let mut connection = connection.clone();
                let value: Option<Vec<u8>> = connection.get(key).await.expect("GET");
                value.map(|v| v.len())
            }
            Client::Fred(client) => {
                let value: Option<Bytes> = client.get(key).await.expect("GET");
                value.map(|v| v.len())
            }
            Client::WirestackCluster(client) => client.get(key).await.expect("GET").map(|v| v.len()),
            Client::RedisRsCluster(connection) => {
                let mut connection = connection.clone();
                let value: Option<Vec<u8>> = connection.get(key).await.expect("GET");
                value.map(|v| v.len())
            }
        };
        assert_eq!(value, Some(64));
    }

    async fn get_batch(&self, keys: &[String]) {
        let found = match self {
            Client::Wirestack(client) => client.get_many(keys).await.expect("batch").len(),
            Client::RedisRs(connection) => {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.get(key);
                }
                let values: Vec<Option<Vec<u8>>> =
                    pipe.query_async(&mut connection.clone()).await.expect("pipe");
                values.len()
            }
            Client::Fred(client) => {
                let pipeline = client.pipeline();
                for key in keys {
                    let () = pipeline.get(key).await.expect("queue");
                }
                let values: Vec<Option<Bytes>> = pipeline.all().await.expect("pipeline");
                values.len()
            }
            Client::WirestackCluster(client) => client.get_many(keys).await.expect("batch").len(),
            Client::RedisRsCluster(_) => unreachable!("no batch load in cluster mode"),
        };
        assert_eq!(found, keys.len());
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Load {
    Sequential,
    Tasks64,
    Batch64,
    InFlight1000,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Sequential => "sequential",
            Load::Tasks64 => "64 tasks",
            Load::Batch64 => "batch of 64",
            Load::InFlight1000 => "1000 in flight",
        }
    }
}

/// What the loads need of a client: its name, one GET, a batch of GETs.
trait Gets: Clone + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// One GET of `key` by load task `task` (a client that is one
    /// connection per task takes that task's).
    fn get(&self, task: usize, key: &str) -> impl Future<Output = ()> + Send;
    /// One batch of GETs, as the client sends a batch.
    fn get_batch(&self, keys: &[String]) -> impl Future<Output = ()> + Send;
}

impl Gets for Client {
    fn name(&self) -> &'static str {
        Client::name(self)
    }

    fn get(&self, _task: usize, key: &str) -> impl Future<Output = ()> + Send {
        Client::get(self, key)
    }

    fn get_batch(&self, keys: &[String]) -> impl Future<Output = ()> + Send {
        Client::get_batch(self, keys)
    }
}

/// Runs `load` on `client` for about `time`; returns (ops/s, CPU us per op).
async fn measure<C: Gets>(client: &C, load: Load, time: Duration) -> (f64, f64) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let cpu = cpu_time();
    let started = Instant::now();
    let ops: usize = match load {
        Load::Sequential => {
            let mut ops = 0;
            while started.elapsed() < time {
                client.get(0, &keys[ops % KEYS]).await;
                ops += 1;
            }
            ops
        }
        Load::Tasks64 => {
            let tasks = (0..64).map(|t| {
                let client = client.clone();
                let keys = keys.clone();
                tokio::spawn(async move {
                    let mut ops = 0;
                    while started.elapsed() < time {
                        client.get(t, &keys[(t * 13 + ops) % KEYS]).await;
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
        Load::Batch64 => {
            let mut ops = 0;
            while started.elapsed() < time {
                let first = ops % (KEYS - 64);
                client.get_batch(&keys[first..first + 64]).await;
                ops += 64;
            }
            ops
        }
        Load::InFlight1000 => {
            let mut ops = 0;
            while started.elapsed() < time {
                join_all(keys.iter().map(|key| client.get(0, key))).await;
                ops += KEYS;
            }
            ops
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    (ops as f64 / elapsed, cpu * 1e6 / ops as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A server process of our own on a free loopback port, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` with the arguments `args` makes for a free port and
/// waits until it accepts connections there.
fn start_server(program: &str, args: impl FnOnce(&str) -> Vec<String>) -> (SocketAddr, Server) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = Server(
        Command::new(program)
            .args(args(&port.to_string()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (Debian: apt-get install {program}): {e}")),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (addr, server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{program} did not start");
}

fn start_redis() -> (SocketAddr, Server) {
    start_server("redis-server", |port| {
        [
            "--bind",
            "127.0.0.1",
            "--port",
            port,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(String::from)
        .to_vec()
    })
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let seconds: f64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let time = Duration::from_secs_f64(seconds);
    if std::env::var("MODE").as_deref() == Ok("cluster") {
        return cluster_main(reps, seconds);
    }
    match std::env::var("MODE").as_deref() {
        Ok("memcached") => return memcached::main(reps, seconds, false),
        Ok("memcached-quiet") => return memcached::main(reps, seconds, true),
        _ => {}
    }
    let (addr, _server) = match std::env::var("REDIS") {
        Ok(addr) => (addr.parse().expect("REDIS=IP:PORT"), None),
        Err(_) => {
            let (addr, server) = start_redis();
            (addr, Some(server))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let wirestack = RedisClient::connect(addr).await.expect("wirestack connects");
        wirestack
            .set_many((0..KEYS).map(|i| (key(i), [b'x'; 64])))
            .await
            .expect("preload");
        let url = format!("redis://{addr}/");
        let redis_rs = redis::Client::open(url.as_str())
            .expect("a redis-rs client")
            .get_multiplexed_async_connection()
            .await
            .expect("redis-rs connects");
        let fred = fred::clients::Client::new(
            fred::types::config::Config::from_url(&url).expect("a fred config"),
            None,
            None,
            None,
        );
        fred.init().await.expect("fred connects");
        // CLIENTS=wirestack,fred and LOADS=batch (name prefixes) pick cells,
        // for a profiler.
        let clients: Vec<Client> = [
            Client::Wirestack(wirestack),
            Client::RedisRs(redis_rs),
            Client::Fred(fred),
        ]
        .into_iter()
        .filter(|client| picked("CLIENTS", client.name()))
        .collect();
        let loads: Vec<Load> = [Load::Sequential, Load::Tasks64, Load::Batch64, Load::InFlight1000]
            .into_iter()
            .filter(|load| picked("LOADS", load.name()))
            .collect();
        let cells = run_cells(&clients, &loads, reps, time, measured).await;
        println!("redis-server on {addr}; GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s");
        report(&loads, &names(&clients), &cells);
    });
}

/// `CLIENTS=wirestack,fred` and `LOADS=batch` (name prefixes) pick cells,
/// for a profiler; every one is picked without them.
fn picked(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |list| list.split(',').any(|p| name.starts_with(p.trim())))
}

/// [`measure`], for [`run_cells`]: every client runs every load.
async fn measured<C: Gets>(client: C, load: Load, time: Duration) -> Option<(f64, f64)> {
    Some(measure(&client, load, time).await)
}

/// The clients' names, for [`report`].
fn names<C: Gets>(clients: &[C]) -> Vec<&'static str> {
    clients.iter().map(Gets::name).collect()
}

/// Each cell's (ops/s, CPU us per op) of every repetition; none for a load
/// a client cannot run.
type Cells = Vec<Vec<(Vec<f64>, Vec<f64>)>>;

/// Every load on every client, `reps` times interleaved, each run by
/// `measure` on a task of its own.
async fn run_cells<C, F, Fut>(clients: &[C], loads: &[Load], reps: usize, time: Duration, measure: F) -> Cells
where
    C: Clone,
    F: Fn(C, Load, Duration) -> Fut,
    Fut: Future<Output = Option<(f64, f64)>> + Send + 'static,
{
    let mut cells = vec![vec![(Vec::new(), Vec::new()); clients.len()]; loads.len()];
    for _ in 0..reps {
        for (l, &load) in loads.iter().enumerate() {
            for (c, client) in clients.iter().enumerate() {
                let measured = tokio::spawn(measure(client.clone(), load, time))
                    .await
                    .expect("the load task");
                if let Some((ops, cpu)) = measured {
                    cells[l][c].0.push(ops);
                    cells[l][c].1.push(cpu);
                }
            }
        }
    }
    cells
}

fn report(loads: &[Load], clients: &[&str], cells: &Cells) {
    println!();
    println!("| load | client | GET/s | client CPU us per GET |");
    println!("| --- | --- | ---: | ---: |");
    for (l, load) in loads.iter().enumerate() {
        for (c, client) in clients.iter().enumerate() {
            let (ops, cpu) = cells[l][c].clone();
            if ops.is_empty() {
                println!("| {} | {client} | n/a | n/a |", load.name());
            } else {
                println!(
                    "| {} | {client} | {:.0} | {:.2} |",
                    load.name(),
                    median(ops),
                    median(cpu)
                );
            }
        }
    }
}

/// `MODE=cluster`: wirestack's cluster client against redis-rs's on a local
/// three-primary cluster.
fn cluster_main(reps: usize, seconds: f64) {
    let time = Duration::from_secs_f64(seconds);
    let cluster = cluster::LocalCluster::start();
    let seeds = cluster.seeds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let wirestack = RedisClient::cluster(&seeds).await.expect("wirestack connects");
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
            wirestack
                .set_many(chunk.iter().map(|&i| (key(i), [b'x'; 64])))
                .await
                .expect("preload");
        }
        let urls: Vec<String> = seeds.iter().map(|seed| format!("redis://{seed}/")).collect();
        let redis_rs = redis::cluster::ClusterClient::new(urls)
            .expect("a redis-rs cluster client")
            .get_async_connection()
            .await
            .expect("redis-rs connects");
        let clients = [Client::WirestackCluster(wirestack), Client::RedisRsCluster(redis_rs)];
        let loads = [Load::Sequential, Load::Tasks64, Load::InFlight1000];
        let cells = run_cells(&clients, &loads, reps, time, measured).await;
        println!(
            "a local Redis Cluster of three primaries ({}); GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s",
            seeds.join(", ")
        );
        report(&loads, &names(&clients), &cells);
    });
    drop(cluster);
}
