//! wirestack's `RedisClient` against redis-rs (multiplexed connection) and
//! fred on one redis-server, GETs of 64-byte values:
//!
//! * `sequential`: one task, one GET at a time;
//! * `64 tasks`: 64 tasks sharing one client, one GET at a time each;
//! * `batch of 64`: one task, explicit batches of 64 GETs (wirestack
//!   `get_many`, redis-rs `pipe()`, fred `pipeline()`);
//! * `1000 in flight`: one task, 1000 GET calls awaited together.
//!
//! Two wirestack rows: `wirestack` is `RedisClient::connect` (the default
//! stack: deadline, retry, reconnect, keepalive over the pipeline) and
//! `wirestack bare` is `RedisClient::new(Pipeline::new(..))` (the pipeline
//! alone), so that what the stack costs over its pipeline is seen in the
//! same run.
//!
//! Every load runs in a task of its own, spawned on the runtime (never in
//! `block_on` on the main thread, where every wake-up would cross threads),
//! on two runtime flavours in turn: multi-thread with two workers
//! (`WORKERS=N` for another count) and current-thread. `FLAVOURS=multi` or
//! `FLAVOURS=current` picks one. The clients of each flavour connect on its
//! runtime; repetitions alternate flavours.
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
//! With `MODE=kv` it starts `kv serve` (the binary next to this one, or
//! `KV_BIN`; `cargo build --release --bin kv` first) and compares
//! `KvClient::connect` (the default stack over the tagged multiplexer, with
//! its session layer) with `KvClient::new(Pipeline::new(..))` on the same
//! loads (see `kv.rs`).
//!
//! Each cell reports ops/s, the client's CPU time per GET (getrusage of
//! this process: redis-server is another process) and, for `sequential`,
//! the median latency of one GET (p50; every GET timed), each the median of
//! interleaved repetitions (every cell of every client in turn, REPS times).
//! `EACH=1` prints every sample as well (to stderr), to see a run's spread;
//! `TIMER=1` keeps a timer registered on each runtime, so that it always
//! parks with a timeout, as it does under a client that arms timers.
//!
//! ```text
//! cargo run --release -p clients-bench            # starts its own redis-server
//! REDIS=127.0.0.1:6379 cargo run --release -p clients-bench
//! LOADS=seq REPS=7 cargo run --release -p clients-bench   # the single call
//! cargo build --release --bin kv && MODE=kv LOADS=seq cargo run --release -p clients-bench
//! REPS=5 SECONDS=1 cargo run --release -p clients-bench
//! CLIENTS=wirestack LOADS=batch SECONDS=10 REPS=1 cargo run --release -p clients-bench
//! CLIENTS='wirestack$' FLAVOURS=current LOADS=seq REPS=1 SECONDS=5 perf record -g target/release/clients-bench
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
use wirestack::pipeline::Pipeline;
use wirestack::resp::cluster::ClusterService;
use wirestack::resp::{RedisClient, RespCodec, Value};

mod cluster;
mod kv;
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

/// The clients, each behind the same four loads.
#[derive(Clone)]
enum Client {
    Wirestack(RedisClient),
    /// The pipeline alone, no layer over it.
    WirestackBare(RedisClient<Pipeline<Value, Value>>),
    RedisRs(redis::aio::MultiplexedConnection),
    Fred(fred::clients::Client),
    WirestackCluster(RedisClient<ClusterService>),
    RedisRsCluster(redis::cluster_async::ClusterConnection),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Wirestack(_) => "wirestack",
            Client::WirestackBare(_) => "wirestack bare",
            Client::RedisRs(_) => "redis-rs",
            Client::Fred(_) => "fred",
            Client::WirestackCluster(_) => "wirestack cluster",
            Client::RedisRsCluster(_) => "redis-rs cluster",
        }
    }

    async fn get(&self, key: &str) {
        let value = match self {
            Client::Wirestack(client) => client.get(key).await.expect("GET").map(|v| v.len()),
            Client::WirestackBare(client) => client.get(key).await.expect("GET").map(|v| v.len()),
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
            Client::WirestackBare(client) => client.get_many(keys).await.expect("batch").len(),
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

/// What one run of a load measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// GETs per second.
    ops: f64,
    /// The client's CPU time per GET, in microseconds.
    cpu: f64,
    /// The median latency of one GET in microseconds, where the load
    /// times each (`sequential`).
    p50: Option<f64>,
}

impl Sample {
    /// `ops` GETs in `elapsed` seconds that took `cpu` seconds of CPU.
    fn new(ops: usize, elapsed: f64, cpu: f64, p50: Option<f64>) -> Self {
        Sample {
            ops: ops as f64 / elapsed,
            cpu: cpu * 1e6 / ops as f64,
            p50,
        }
    }
}

/// The median of `nanos`, in microseconds.
fn p50_us(mut nanos: Vec<u32>) -> Option<f64> {
    if nanos.is_empty() {
        return None;
    }
    let middle = nanos.len() / 2;
    Some(f64::from(*nanos.select_nth_unstable(middle).1) / 1e3)
}

/// Runs `load` on `client` for about `time`.
async fn measure<C: Gets>(client: &C, load: Load, time: Duration) -> Sample {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    // Room for every GET a sequential load can make in `time` (one per
    // 5 us is more than loopback allows), so that it never reallocates.
    let mut latencies: Vec<u32> = Vec::new();
    if load == Load::Sequential {
        latencies.reserve((time.as_secs_f64() * 200_000.0) as usize);
    }
    let cpu = cpu_time();
    let started = Instant::now();
    let ops: usize = match load {
        Load::Sequential => {
            // One clock read per GET, as the other loads: its end is the
            // next one's start.
            let (mut ops, mut sent) = (0, started);
            while sent - started < time {
                client.get(0, &keys[ops % KEYS]).await;
                let answered = Instant::now();
                let nanos = (answered - sent).as_nanos();
                latencies.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                sent = answered;
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
    Sample::new(ops, elapsed, cpu, p50_us(latencies))
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
    match std::env::var("MODE").as_deref() {
        Ok("cluster") => return cluster_main(reps, seconds),
        Ok("memcached") => return memcached::main(reps, seconds, false),
        Ok("memcached-quiet") => return memcached::main(reps, seconds, true),
        Ok("kv") => return kv::main(reps, seconds),
        _ => {}
    }
    let (addr, _server) = match std::env::var("REDIS") {
        Ok(addr) => (addr.parse().expect("REDIS=IP:PORT"), None),
        Err(_) => {
            let (addr, server) = start_redis();
            (addr, Some(server))
        }
    };
    let loads = picked_loads();
    let runs = run_flavours(&loads, reps, time, || redis_clients(addr), measured);
    println!("redis-server on {addr}; GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s");
    report(&loads, &runs);
}

/// The Redis clients compared (`CLIENTS` picks some), connected to `addr`
/// on the current runtime; the keys preloaded.
async fn redis_clients(addr: SocketAddr) -> Vec<Client> {
    let wirestack = RedisClient::connect(addr).await.expect("wirestack connects");
    wirestack
        .set_many((0..KEYS).map(|i| (key(i), [b'x'; 64])))
        .await
        .expect("preload");
    let transport = wirestack::transport::connect(addr, RespCodec::new())
        .await
        .expect("wirestack bare connects");
    let bare = RedisClient::new(Pipeline::new(transport));
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
    [
        Client::Wirestack(wirestack),
        Client::WirestackBare(bare),
        Client::RedisRs(redis_rs),
        Client::Fred(fred),
    ]
    .into_iter()
    .filter(|client| picked("CLIENTS", client.name()))
    .collect()
}

/// The loads `LOADS` picks (all four without it).
fn picked_loads() -> Vec<Load> {
    [Load::Sequential, Load::Tasks64, Load::Batch64, Load::InFlight1000]
        .into_iter()
        .filter(|load| picked("LOADS", load.name()))
        .collect()
}

/// `CLIENTS=wirestack,fred` and `LOADS=batch` (name prefixes; a name
/// ending in `$` is matched whole: `CLIENTS='wirestack$'`) pick cells, for
/// a profiler; every one is picked without them.
fn picked(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |list| {
        list.split(',').map(str::trim).any(|p| match p.strip_suffix('$') {
            Some(whole) => name == whole,
            None => name.starts_with(p),
        })
    })
}

/// [`measure`], for [`run_flavours`]: every client runs every load.
async fn measured<C: Gets>(client: C, load: Load, time: Duration) -> Option<Sample> {
    Some(measure(&client, load, time).await)
}

/// The clients' names, for [`report`].
fn names<C: Gets>(clients: &[C]) -> Vec<&'static str> {
    clients.iter().map(Gets::name).collect()
}

/// Each cell's samples, one per repetition, by load and client; none for a
/// load a client cannot run.
type Cells = Vec<Vec<Vec<Sample>>>;

/// A tokio runtime the loads run on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavour {
    /// Multi-thread, with this many workers.
    Multi(usize),
    /// Current-thread: the loads, the clients' tasks and the I/O driver on
    /// one thread.
    Current,
}

impl Flavour {
    /// The flavours `FLAVOURS` picks (`multi`, `current`; both without
    /// it); the multi-thread one with `WORKERS` workers (2 without it).
    fn picked() -> Vec<Flavour> {
        let workers = std::env::var("WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(2);
        [Flavour::Multi(workers), Flavour::Current]
            .into_iter()
            .filter(|flavour| picked("FLAVOURS", flavour.key()))
            .collect()
    }

    fn key(self) -> &'static str {
        match self {
            Flavour::Multi(_) => "multi",
            Flavour::Current => "current",
        }
    }

    fn describe(self) -> String {
        match self {
            Flavour::Multi(workers) => format!("multi-thread runtime, {workers} workers"),
            Flavour::Current => "current-thread runtime".to_string(),
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Flavour::Multi(workers) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(workers);
                builder
            }
            Flavour::Current => tokio::runtime::Builder::new_current_thread(),
        };
        builder.enable_all().build().expect("a runtime")
    }
}

/// One flavour's measurements: its clients' names and their cells.
type Run = (Flavour, Vec<&'static str>, Cells);

/// On a runtime of each picked flavour, connects the clients `connect`
/// makes (on that runtime) and runs every load on every client `reps`
/// times, each run by `measure` in a task of its own; repetitions
/// alternate flavours, so that both see the same machine.
fn run_flavours<C, Connect, Connected, F, Fut>(
    loads: &[Load],
    reps: usize,
    time: Duration,
    connect: Connect,
    measure: F,
) -> Vec<Run>
where
    C: Gets,
    Connect: Fn() -> Connected,
    Connected: Future<Output = Vec<C>>,
    F: Fn(C, Load, Duration) -> Fut,
    Fut: Future<Output = Option<Sample>> + Send + 'static,
{
    let mut runs: Vec<_> = Flavour::picked()
        .into_iter()
        .map(|flavour| {
            let runtime = flavour.runtime();
            if std::env::var_os("TIMER").is_some() {
                // TIMER=1: a timer always registered, so that the runtime
                // parks with a timeout whatever the clients arm.
                runtime.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
            }
            let clients = runtime.block_on(connect());
            let cells: Cells = vec![vec![Vec::new(); clients.len()]; loads.len()];
            (flavour, runtime, clients, cells)
        })
        .collect();
    for _ in 0..reps {
        for (_, runtime, clients, cells) in &mut runs {
            runtime.block_on(run_cells(clients, loads, time, &measure, cells));
        }
    }
    runs.into_iter()
        .map(|(flavour, runtime, clients, cells)| {
            let names = names(&clients);
            // Their connections' tasks end with the runtime.
            let entered = runtime.enter();
            drop(clients);
            drop(entered);
            (flavour, names, cells)
        })
        .collect()
}

/// One repetition: every load on every client, each in a task of its own.
/// With `EACH=1`, every sample is printed (to stderr) as it is measured.
/// (`TIMER=1` keeps a timer registered on every runtime: see
/// [`run_flavours`].)
async fn run_cells<C, F, Fut>(clients: &[C], loads: &[Load], time: Duration, measure: &F, cells: &mut Cells)
where
    C: Gets,
    F: Fn(C, Load, Duration) -> Fut,
    Fut: Future<Output = Option<Sample>> + Send + 'static,
{
    let each = std::env::var_os("EACH").is_some();
    for (l, &load) in loads.iter().enumerate() {
        for (c, client) in clients.iter().enumerate() {
            let measured = tokio::spawn(measure(client.clone(), load, time))
                .await
                .expect("the load task");
            if let (Some(sample), true) = (measured, each) {
                eprintln!("{} | {} | {sample:?}", load.name(), client.name());
            }
            cells[l][c].extend(measured);
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// A table per flavour: the median of each cell's repetitions.
fn report(loads: &[Load], runs: &[Run]) {
    for (flavour, clients, cells) in runs {
        println!();
        println!("{}:", flavour.describe());
        println!();
        println!("| load | client | GET/s | client CPU us per GET | p50 us |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for (l, load) in loads.iter().enumerate() {
            for (c, client) in clients.iter().enumerate() {
                let samples = &cells[l][c];
                let of =
                    |field: fn(&Sample) -> Option<f64>| median(samples.iter().filter_map(field).collect());
                match (of(|s| Some(s.ops)), of(|s| Some(s.cpu))) {
                    (Some(ops), Some(cpu)) => {
                        let p50 = of(|s| s.p50).map_or("-".to_string(), |p50| format!("{p50:.1}"));
                        println!("| {} | {client} | {ops:.0} | {cpu:.2} | {p50} |", load.name());
                    }
                    _ => println!("| {} | {client} | n/a | n/a | - |", load.name()),
                }
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
    let loads = [Load::Sequential, Load::Tasks64, Load::InFlight1000];
    let runs = run_flavours(&loads, reps, time, || cluster_clients(seeds.clone()), measured);
    println!(
        "a local Redis Cluster of three primaries ({}); GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s",
        seeds.join(", ")
    );
    report(&loads, &runs);
    drop(cluster);
}

/// The two cluster clients, connected to `seeds` on the current runtime;
/// the keys preloaded.
async fn cluster_clients(seeds: Vec<String>) -> Vec<Client> {
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
    vec![
        Client::WirestackCluster(wirestack),
        Client::RedisRsCluster(redis_rs),
    ]
}
