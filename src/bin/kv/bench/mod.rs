//! `kv bench`: a load generator for KV and RESP servers, with latency
//! percentiles.
//!
//! Each of [`BenchConfig::connections`] connections keeps
//! [`BenchConfig::pipeline`] requests in flight at a time, as
//! `redis-benchmark -P` does: it sends them as one batch (one
//! [`Batch`] through a bare `Pipeline`: written in one go) and waits for all
//! of them. Every request's latency — from its batch being sent to the
//! batch's last answer — goes into an HDR histogram.
//!
//! With [`BenchConfig::depth`] instead, each connection keeps that many
//! *independent* calls in flight, starting a new one as each is answered,
//! and times each call alone: a GET answered before a slow PUT sent ahead
//! of it shows as fast, which is what head-of-line blocking (or its absence
//! under KV 2.0) looks like. GETs and PUTs then get histograms of their own
//! too.
//!
//! The same engine speaks the KV protocol (to `kv serve`) or RESP2 (to
//! `redis-server`): [`BenchConfig::protocol`]. Only the requests and the
//! codec differ, so two servers driven by it are measured alike.
//!
//! With [`BenchConfig::threads`] the load runs thread per core: each
//! thread a runtime of one worker with its share of the connections, so
//! that a connection's calls and the tasks of its connections stay on one
//! thread (see [`run_on_threads`]).
//!
//! The load is bounded both in count ([`BenchConfig::ops`]) and in time
//! ([`BenchConfig::duration`]); it stops at whichever comes first. The time
//! bound holds against a server that stops answering too: connecting must
//! finish within the duration, and a batch or call still unanswered
//! [`CUT_OFF_GRACE`] after it is cut off and counted as an error.

mod connection;
mod cpu;
mod hdr;
mod plot;
mod protocol;
mod report;
mod timeline;

pub(crate) use hdr::percentile_distribution;
pub(crate) use plot::draw;
pub(crate) use protocol::Protocol;
pub(crate) use report::BenchReport;

use bytes::{Bytes, BytesMut};
use connection::Connection;
use cpu::CpuTime;
use protocol::{KvWire, RespWire, Wire, V1, V2};
use report::MAX_LATENCY_US;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timeline::Timeline;
use wirestack::batch::Batch;
use wirestack::kv::AuthToken;
use wirestack::tls::rustls;
use wirestack::BoxError;

/// How long after [`BenchConfig::duration`] a batch or call sent before it
/// may still be answered; then it is cut off and counted as an error. (The
/// last batch of a busy connection nearly always straddles the end.)
pub(crate) const CUT_OFF_GRACE: Duration = Duration::from_secs(1);

/// What the load consists of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Workload {
    /// Only PUTs of random keys.
    Put,
    /// Only GETs of random keys.
    Get,
    /// GETs with this probability (0.0 to 1.0), PUTs otherwise.
    Mixed {
        /// The share of GETs.
        read_ratio: f64,
    },
    /// PUT every key of the key space exactly once, in order: loads a server
    /// for a memory measurement. The operation count is the key space.
    Fill,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Put => f.write_str("put"),
            Workload::Get => f.write_str("get"),
            Workload::Fill => f.write_str("fill"),
            Workload::Mixed { read_ratio } => write!(f, "mixed:{read_ratio}"),
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;

    /// Parses `put`, `get`, `fill` or `mixed:R` (R the share of GETs, 0..=1).
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "put" => Ok(Workload::Put),
            "get" => Ok(Workload::Get),
            "fill" => Ok(Workload::Fill),
            _ => {
                let ratio = text
                    .strip_prefix("mixed:")
                    .ok_or_else(|| format!("unknown workload {text:?}: use put, get, fill or mixed:R"))?;
                let read_ratio: f64 = ratio
                    .parse()
                    .map_err(|_| format!("mixed:R needs a number, got {ratio:?}"))?;
                if !(0.0..=1.0).contains(&read_ratio) {
                    return Err(format!("mixed:R needs 0 <= R <= 1, got {read_ratio}"));
                }
                Ok(Workload::Mixed { read_ratio })
            }
        }
    }
}

/// The shape of a load.
#[derive(Debug, Clone)]
pub(crate) struct BenchConfig {
    /// The server, or several: each key goes to one of them.
    pub addrs: Vec<SocketAddr>,
    /// The servers' names, which place keys (as `--addr` wrote them); a
    /// server without one is named by its socket address.
    pub names: Vec<String>,
    /// Connect over TLS with this configuration and server name.
    pub tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    /// `AUTH` with this token on every connection, before the clock starts.
    pub token: Option<AuthToken>,
    /// Stop after this many operations (all connections together).
    pub ops: u64,
    /// Stop after this long, whatever the count.
    pub duration: Duration,
    /// Requests in flight per connection (1 = sequential).
    pub pipeline: usize,
    /// Independent calls in flight per connection, each timed alone,
    /// instead of `pipeline`'s batches.
    pub depth: Option<usize>,
    /// Connections, each driven by its own task.
    pub connections: usize,
    /// Run the load on this many threads, each a runtime of one worker
    /// with its share of the connections; 0: on the runtime `run` is
    /// called on.
    pub threads: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Bytes per value of a mixed load's PUTs, to keys of their own.
    pub put_value_size: Option<usize>,
    /// Keys are `key:N` for N in `0..key_space`.
    pub key_space: u64,
    /// What to send.
    pub workload: Workload,
    /// What to speak.
    pub protocol: Protocol,
    /// Record latencies by interval too, for a plot over time.
    pub timeline: bool,
}

impl BenchConfig {
    /// A load of 100,000 64-byte operations on one connection, unpipelined.
    #[cfg(test)]
    pub(crate) fn new(addr: SocketAddr, workload: Workload) -> Self {
        BenchConfig {
            addrs: vec![addr],
            names: Vec::new(),
            tls: None,
            token: None,
            ops: 100_000,
            duration: Duration::from_secs(60),
            pipeline: 1,
            depth: None,
            connections: 1,
            threads: 0,
            value_size: 64,
            put_value_size: None,
            key_space: 100_000,
            workload,
            protocol: Protocol::Kv,
            timeline: false,
        }
    }
}

/// Runs the load; `progress` counts answered operations as they come, for a
/// progress display.
pub(crate) async fn run(config: BenchConfig, progress: Arc<AtomicU64>) -> Result<BenchReport, BoxError> {
    match config.protocol {
        Protocol::Kv => run_with::<KvWire<V2>>(config, progress).await,
        Protocol::Kv1 => run_with::<KvWire<V1>>(config, progress).await,
        Protocol::Resp => run_with::<RespWire>(config, progress).await,
        #[cfg(feature = "memcache")]
        Protocol::Memcache => run_with::<protocol::MemcacheWire>(config, progress).await,
    }
}

async fn run_with<W: Wire>(config: BenchConfig, progress: Arc<AtomicU64>) -> Result<BenchReport, BoxError> {
    let ops = match config.workload {
        Workload::Fill => config.key_space,
        _ => config.ops,
    };
    // The keys are made before the clock starts: at a large --key-space
    // they take seconds, which are not the server's.
    let (keys, put_keys) = (
        keys("key", config.key_space),
        config
            .put_value_size
            .map(|_| keys("put", config.key_space))
            .unwrap_or_default(),
    );
    let plan = Arc::new(Plan {
        next_op: AtomicU64::new(0),
        ops,
        deadline: Instant::now() + config.duration,
        progress,
        keys,
        put_keys,
        value: Bytes::from(vec![b'x'; config.value_size]),
        put_value: Bytes::from(vec![b'y'; config.put_value_size.unwrap_or(config.value_size)]),
        config: config.clone(),
    });

    if config.threads > 0 {
        return run_on_threads::<W>(plan).await;
    }
    let connections = open_connections::<W>(&plan, 0..config.connections.max(1), true).await?;
    let started = Instant::now();
    let cpu_before = CpuTime::now();
    let timeline = config.timeline.then(|| Arc::new(Timeline::new(config.duration)));
    let seeded = (1..).zip(connections).collect();
    let mut report = drive_all::<W>(seeded, &plan, &timeline).await?;
    report.elapsed = started.elapsed();
    report.client_cpu = CpuTime::now().since(cpu_before);
    report.add_timeline(timeline.as_deref());
    Ok(report)
}

/// Opens the connections numbered `which` (of `0..connections`), and
/// preloads the keys through the first one if `preload` and the load is
/// GETs; all before the clock starts, within the duration.
async fn open_connections<W: Wire>(
    plan: &Plan,
    which: impl Iterator<Item = usize>,
    preload: bool,
) -> Result<Vec<Connection<W>>, BoxError> {
    let config = &plan.config;
    let connecting = async {
        let mut connections: Vec<Connection<W>> = Vec::new();
        for _ in which {
            connections.push(Connection::<W>::open(config).await?);
        }
        if let (true, Workload::Get, Some(first)) = (preload, config.workload, connections.first_mut()) {
            // Reads of an empty store measure NOT_FOUND; make the keys exist.
            self::preload::<W>(first, plan).await?;
        }
        Ok::<_, BoxError>(connections)
    };
    tokio::time::timeout_at(plan.deadline.into(), connecting)
        .await
        .map_err(|_| {
            format!(
                "the server did not answer the connection{} within --duration ({:?})",
                if config.workload == Workload::Get {
                    " and preload"
                } else {
                    ""
                },
                config.duration
            )
        })?
}

/// Drives every connection (with its seed) on a task of its own, on the
/// current runtime, until the plan runs out; their reports added up.
async fn drive_all<W: Wire>(
    connections: Vec<(u64, Connection<W>)>,
    plan: &Arc<Plan>,
    timeline: &Option<Arc<Timeline>>,
) -> Result<BenchReport, BoxError> {
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|(seed, connection)| match plan.config.depth {
            Some(depth) => tokio::spawn(drive_calls::<W>(connection, plan.clone(), seed, depth)),
            None => tokio::spawn(drive::<W>(connection, plan.clone(), seed, timeline.clone())),
        })
        .collect();
    let mut report = BenchReport::empty();
    for task in tasks {
        let part = task.await.map_err(|e| format!("load task failed: {e}"))?;
        report.add(&part);
    }
    Ok(report)
}

/// What the load threads of [`run_on_threads`] are told once every one of
/// them has connected.
#[derive(Clone)]
enum Start {
    /// The clock has started: drive the connections.
    Go(Option<Arc<Timeline>>),
    /// Another thread could not connect: stop.
    Abort,
}

/// Runs the load on [`BenchConfig::threads`] threads, each a runtime of
/// one worker that opens its share of the connections (dealt in turn) and
/// drives them, as thread-per-core servers run: a connection's
/// callers and the tasks of its connections run on one thread, so a burst
/// of calls reaches each server in one write instead of being stolen,
/// part-written, by an idle worker of a shared runtime. The clock starts
/// when every thread has connected.
async fn run_on_threads<W: Wire>(plan: Arc<Plan>) -> Result<BenchReport, BoxError> {
    let config = &plan.config;
    let connections = config.connections.max(1);
    let threads = config.threads.clamp(1, connections);
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Start>);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), BoxError>>(threads);
    let mut reports = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (plan, mut start, ready) = (plan.clone(), start_rx.clone(), ready_tx.clone());
        let (report_tx, report_rx) = tokio::sync::oneshot::channel();
        let load = async move {
            let which = (thread..connections).step_by(threads);
            let seeds: Vec<u64> = which.clone().map(|n| n as u64 + 1).collect();
            let opened = open_connections::<W>(&plan, which, thread == 0).await;
            let (connections, told) = match opened {
                Ok(connections) => (connections, ready.send(Ok(())).await),
                Err(error) => (Vec::new(), ready.send(Err(error)).await),
            };
            drop(ready);
            let timeline = match start.wait_for(Option::is_some).await.map(|start| start.clone()) {
                Ok(Some(Start::Go(timeline))) if told.is_ok() && !connections.is_empty() => timeline,
                _ => return Ok(BenchReport::empty()),
            };
            drive_all::<W>(seeds.into_iter().zip(connections).collect(), &plan, &timeline).await
        };
        std::thread::Builder::new()
            .name(format!("kv-bench-{thread}"))
            .spawn(move || {
                // One worker, and the load a task on it: a current-thread
                // runtime has no LIFO slot, and there the connection tasks
                // a burst of calls wakes run behind everything already
                // queued, in more and smaller writes.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("kv-bench-{thread}"))
                    .enable_all()
                    .build();
                let report = match runtime {
                    Ok(runtime) => runtime
                        .block_on(runtime.spawn(load))
                        .unwrap_or_else(|e| Err(format!("load thread failed: {e}").into())),
                    Err(error) => Err(format!("cannot start a load thread's runtime: {error}").into()),
                };
                let _ = report_tx.send(report);
            })
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        reports.push(report_rx);
    }
    drop(ready_tx);
    // Every thread answers within the duration (its connecting is bounded
    // by it), or ends without answering.
    let mut failure = None;
    for _ in 0..threads {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                failure.get_or_insert(error);
            }
            None => {
                failure.get_or_insert_with(|| "a load thread ended before it connected".into());
                break;
            }
        }
    }
    if let Some(error) = failure {
        let _ = start_tx.send(Some(Start::Abort));
        return Err(error);
    }
    let started = Instant::now();
    let cpu_before = CpuTime::now();
    let timeline = config.timeline.then(|| Arc::new(Timeline::new(config.duration)));
    let _ = start_tx.send(Some(Start::Go(timeline.clone())));
    let mut report = BenchReport::empty();
    for part in reports {
        let part = part.await.map_err(|_| "a load thread panicked")??;
        report.add(&part);
    }
    report.elapsed = started.elapsed();
    report.client_cpu = CpuTime::now().since(cpu_before);
    report.add_timeline(timeline.as_deref());
    Ok(report)
}

struct Plan {
    next_op: AtomicU64,
    ops: u64,
    deadline: Instant,
    progress: Arc<AtomicU64>,
    /// `key:N` for every N of the key space, made once: a request's key is
    /// a reference count, not a string formatted for it.
    keys: Vec<Bytes>,
    /// `put:N`, the keys of a mixed load's PUTs when they have a size of
    /// their own; empty otherwise (PUTs use `keys`).
    put_keys: Vec<Bytes>,
    value: Bytes,
    /// The value of a mixed load's PUTs.
    put_value: Bytes,
    config: BenchConfig,
}

/// `key:000000000000`, `key:000000000001`, ... (for `prefix` "key") slices
/// of one buffer.
fn keys(prefix: &str, key_space: u64) -> Vec<Bytes> {
    let count = usize::try_from(key_space).unwrap_or(usize::MAX);
    let mut buffer = BytesMut::with_capacity(count.saturating_mul(16));
    let mut ends = Vec::with_capacity(count);
    for n in 0..key_space {
        buffer.extend_from_slice(format!("{prefix}:{n:012}").as_bytes());
        ends.push(buffer.len());
    }
    let buffer = buffer.freeze();
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let key = buffer.slice(start..end);
            start = end;
            key
        })
        .collect()
}

impl Plan {
    /// Claims up to `pipeline` operations; the first index and how many.
    fn claim(&self) -> Option<(u64, u64)> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let want = self.config.pipeline.max(1) as u64;
        let first = self.next_op.fetch_add(want, Ordering::Relaxed);
        (first < self.ops).then(|| (first, want.min(self.ops - first)))
    }

    fn key(&self, n: u64) -> Bytes {
        let index = usize::try_from(n).unwrap_or(usize::MAX);
        self.keys.get(index).cloned().unwrap_or_default()
    }

    /// Claims one operation; its index.
    fn claim_one(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.next_op.fetch_add(1, Ordering::Relaxed);
        (n < self.ops).then_some(n)
    }

    /// A mixed load's PUT of a random key.
    fn mixed_put<W: Wire>(&self, rng: &mut Rng) -> W::Request {
        let n = rng.below(self.config.key_space);
        let index = usize::try_from(n).unwrap_or(usize::MAX);
        match self.put_keys.get(index) {
            Some(key) => W::put(key.clone(), self.put_value.clone()),
            None => W::put(self.key(n), self.value.clone()),
        }
    }
}

/// A small, fast, seedable generator for key choice (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

async fn preload<W: Wire>(connection: &mut Connection<W>, plan: &Plan) -> Result<(), BoxError> {
    let batch = 1_000u64;
    let mut start = 0;
    while start < plan.config.key_space {
        let end = (start + batch).min(plan.config.key_space);
        let requests: Batch<W::Request> = (start..end)
            .map(|n| W::put(plan.key(n), plan.value.clone()))
            .collect();
        let answers = connection.send(requests).await?;
        if !answers.iter().all(|answer| answer.as_ref().is_ok_and(W::is_ok)) {
            return Err("the server refused the preload".into());
        }
        start = end;
    }
    Ok(())
}

async fn drive<W: Wire>(
    mut connection: Connection<W>,
    plan: Arc<Plan>,
    seed: u64,
    timeline: Option<Arc<Timeline>>,
) -> BenchReport {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut report = BenchReport::empty();
    let mut over_time = timeline.as_deref().map(timeline::Recorder::new);
    let cut_off = (plan.deadline + CUT_OFF_GRACE).into();
    while let Some((first, count)) = plan.claim() {
        let requests: Batch<W::Request> = (first..first + count)
            .map(|n| next_request::<W>(&plan, &mut rng, n))
            .collect();
        let sent = Instant::now();
        let Ok(answers) = tokio::time::timeout_at(cut_off, connection.send(requests)).await else {
            // Unanswered when the time is up: failed operations.
            report.ops += count;
            report.errors += count;
            break;
        };
        let latency = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let latency = latency.clamp(1, MAX_LATENCY_US);
        let _ = report.latency_us.record_n(latency, count);
        if let Some(over_time) = &mut over_time {
            over_time.record(latency, count);
        }
        report.ops += count;
        let good = match &answers {
            Ok(answers) => answers
                .iter()
                .filter(|answer| answer.as_ref().is_ok_and(W::is_ok))
                .count() as u64,
            Err(_) => 0,
        };
        report.errors += count - good.min(count);
        plan.progress.fetch_add(count, Ordering::Relaxed);
        if connection.is_broken() {
            break;
        }
    }
    report
}

/// Keeps `depth` calls of `connection` in flight, each timed alone, until
/// the plan runs out; GETs and PUTs are also recorded apart.
async fn drive_calls<W: Wire>(
    connection: Connection<W>,
    plan: Arc<Plan>,
    seed: u64,
    depth: usize,
) -> BenchReport {
    use futures::stream::{FuturesUnordered, StreamExt};

    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut report = BenchReport::empty().with_kinds();
    let mut in_flight = FuturesUnordered::new();
    let cut_off = (plan.deadline + CUT_OFF_GRACE).into();
    loop {
        while in_flight.len() < depth && !connection.is_broken() {
            let Some(n) = plan.claim_one() else {
                break;
            };
            let request = next_request::<W>(&plan, &mut rng, n);
            let kind = W::kind(&request);
            let call = connection.call(request);
            let sent = Instant::now();
            in_flight.push(async move { (kind, call.await, sent.elapsed()) });
        }
        let next = match tokio::time::timeout_at(cut_off, in_flight.next()).await {
            Ok(next) => next,
            Err(_) => {
                // Unanswered when the time is up: failed operations.
                let cut = in_flight.len() as u64;
                report.ops += cut;
                report.errors += cut;
                break;
            }
        };
        let Some((kind, answer, elapsed)) = next else {
            break;
        };
        let latency = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        report.record(kind, latency.clamp(1, MAX_LATENCY_US));
        if !answer.as_ref().is_ok_and(W::is_ok) {
            report.errors += 1;
        }
        plan.progress.fetch_add(1, Ordering::Relaxed);
    }
    report
}

fn next_request<W: Wire>(plan: &Plan, rng: &mut Rng, n: u64) -> W::Request {
    let random_key = |rng: &mut Rng| plan.key(rng.below(plan.config.key_space));
    match plan.config.workload {
        Workload::Put => W::put(random_key(rng), plan.value.clone()),
        Workload::Get => W::get(random_key(rng)),
        Workload::Mixed { read_ratio } if rng.chance(read_ratio) => W::get(random_key(rng)),
        Workload::Mixed { .. } => plan.mixed_put::<W>(rng),
        Workload::Fill => W::put(plan.key(n), plan.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirestack::kv::KvServer;

    #[test]
    fn workloads_parse() {
        assert_eq!("put".parse(), Ok(Workload::Put));
        assert_eq!("get".parse(), Ok(Workload::Get));
        assert_eq!("fill".parse(), Ok(Workload::Fill));
        assert_eq!("mixed:0.9".parse(), Ok(Workload::Mixed { read_ratio: 0.9 }));
        assert!("mixed:1.5".parse::<Workload>().is_err());
        assert!("mixed:x".parse::<Workload>().is_err());
        assert!("scan".parse::<Workload>().is_err());
    }

    #[tokio::test]
    async fn a_bounded_load_reports_every_operation() {
        let server = KvServer::start("127.0.0.1:0", Default::default()).await.unwrap();
        let mut config = BenchConfig::new(server.local_addr(), Workload::Mixed { read_ratio: 0.5 });
        config.ops = 2_000;
        config.pipeline = 16;
        config.connections = 2;
        config.key_space = 100;
        let progress = Arc::new(AtomicU64::new(0));
        let report = run(config, progress.clone()).await.unwrap();
        assert_eq!(report.ops, 2_000);
        assert_eq!(report.errors, 0);
        assert_eq!(report.latency_us.len(), 2_000);
        assert_eq!(progress.load(Ordering::Relaxed), 2_000);
        let json = report.to_json();
        for field in [
            "ops",
            "seconds",
            "ops_per_sec",
            "p50_us",
            "p95_us",
            "p99_us",
            "p999_us",
            "max_us",
            "errors",
            "client_cpu_us_per_op",
            "client_cpu_user_s",
            "client_cpu_sys_s",
        ] {
            assert!(json.contains(&format!("\"{field}\":")), "{json}");
        }
        assert!(report.to_text().contains("p99"));
        // 2,000 operations through a client and a server in this process
        // take CPU time, and it is reported per operation.
        assert!(report.client_cpu.total() > Duration::ZERO);
        assert!(report.client_cpu_us_per_op() > 0.0);
        assert!(report.to_text().contains("client CPU: "), "{}", report.to_text());
        server.shutdown().await.unwrap();
    }

    /// A RESP server of our own for the test: SET answers `+OK`, GET `$1 x`,
    /// anything else an error; it counts the commands.
    async fn resp_server(commands: Arc<AtomicU64>) -> SocketAddr {
        use wirestack::resp::{RespCodec, Value};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = tower::service_fn(move |command: Value| {
            commands.fetch_add(1, Ordering::Relaxed);
            let name = match &command {
                Value::Array(args) => match args.first() {
                    Some(Value::Bulk(name)) => name.clone(),
                    _ => Bytes::new(),
                },
                _ => Bytes::new(),
            };
            let answer = match &name[..] {
                b"SET" => Value::simple("OK"),
                b"GET" => Value::bulk("x"),
                _ => Value::error("ERR unknown command"),
            };
            async move { Ok::<_, std::convert::Infallible>(answer) }
        });
        tokio::spawn(wirestack::server::Server::new(RespCodec::new()).serve(
            listener,
            tower::make::Shared::new(service),
            std::future::pending(),
        ));
        addr
    }

    #[tokio::test]
    async fn the_same_engine_speaks_resp() {
        let commands = Arc::new(AtomicU64::new(0));
        let addr = resp_server(commands.clone()).await;
        let mut config = BenchConfig::new(addr, Workload::Get);
        config.protocol = Protocol::Resp;
        config.ops = 1_000;
        config.pipeline = 64;
        config.key_space = 100;
        let report = run(config, Arc::default()).await.unwrap();
        assert_eq!((report.ops, report.errors), (1_000, 0));
        // The preload's 100 SETs, then the 1,000 GETs.
        assert_eq!(commands.load(Ordering::Relaxed), 1_100);
    }

    #[test]
    fn protocols_parse() {
        assert_eq!("kv".parse(), Ok(Protocol::Kv));
        assert_eq!("kv1".parse(), Ok(Protocol::Kv1));
        assert_eq!("resp".parse(), Ok(Protocol::Resp));
        #[cfg(feature = "memcache")]
        assert_eq!("memcache".parse(), Ok(Protocol::Memcache));
        assert!("http".parse::<Protocol>().is_err());
    }

    /// Both KV versions drive the same load: `kv` (2.0, a `Multiplex`) and
    /// `kv1` (1.1, a `Pipeline`).
    #[tokio::test]
    async fn both_kv_versions_drive_the_same_load() {
        for protocol in [Protocol::Kv, Protocol::Kv1] {
            let server = KvServer::start("127.0.0.1:0", Default::default()).await.unwrap();
            let mut config = BenchConfig::new(server.local_addr(), Workload::Get);
            config.protocol = protocol;
            config.ops = 500;
            config.depth = Some(8);
            config.key_space = 100;
            let report = run(config, Arc::default()).await.unwrap();
            assert_eq!((report.ops, report.errors), (500, 0), "{protocol}");
            server.shutdown().await.unwrap();
        }
    }

    #[tokio::test]
    async fn calls_in_flight_are_timed_alone_and_by_kind() {
        let server = KvServer::start("127.0.0.1:0", Default::default()).await.unwrap();
        let mut config = BenchConfig::new(server.local_addr(), Workload::Mixed { read_ratio: 0.9 });
        config.ops = 2_000;
        config.depth = Some(16);
        config.key_space = 50;
        config.put_value_size = Some(1_000);
        let report = run(config, Arc::default()).await.unwrap();
        assert_eq!((report.ops, report.errors), (2_000, 0));
        let kinds = report.kinds.as_ref().expect("GETs and PUTs recorded apart");
        assert_eq!(kinds.get_us.len() + kinds.put_us.len(), 2_000);
        assert!(kinds.get_us.len() > kinds.put_us.len() && !kinds.put_us.is_empty());
        assert!(
            report.to_json().contains("\"get_p99_us\":"),
            "{}",
            report.to_json()
        );
        assert!(report.to_text().contains("PUT ("), "{}", report.to_text());
        // The PUTs went to keys of their own, with values of their size.
        let put_key = server
            .store()
            .get(b"put:000000000000")
            .or_else(|| (0..50).find_map(|n| server.store().get(format!("put:{n:012}").as_bytes())));
        assert_eq!(put_key.map(|value| value.len()), Some(1_000));
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn fill_writes_the_whole_key_space() {
        let server = KvServer::start("127.0.0.1:0", Default::default()).await.unwrap();
        let mut config = BenchConfig::new(server.local_addr(), Workload::Fill);
        config.key_space = 1_000;
        config.pipeline = 64;
        let report = run(config, Arc::default()).await.unwrap();
        assert_eq!(report.ops, 1_000);
        assert_eq!(server.store().len(), 1_000);
        server.shutdown().await.unwrap();
    }

    /// On threads of their own (`--threads`), the connections are dealt
    /// out, the keys preloaded once, and every operation is counted: here
    /// 3 connections on 2 threads, each a router over two servers.
    #[tokio::test]
    async fn a_load_on_threads_reports_every_operation() {
        let servers = [
            KvServer::start("127.0.0.1:0", Default::default()).await.unwrap(),
            KvServer::start("127.0.0.1:0", Default::default()).await.unwrap(),
        ];
        for (depth, pipeline) in [(Some(8), 1), (None, 16)] {
            let mut config = BenchConfig::new(servers[0].local_addr(), Workload::Get);
            config.addrs = servers.iter().map(KvServer::local_addr).collect();
            config.threads = 2;
            config.connections = 3;
            config.ops = 3_000;
            config.depth = depth;
            config.pipeline = pipeline;
            config.key_space = 100;
            config.timeline = true;
            let progress = Arc::new(AtomicU64::new(0));
            let report = run(config, progress.clone()).await.unwrap();
            assert_eq!((report.ops, report.errors), (3_000, 0), "depth {depth:?}");
            assert_eq!(report.latency_us.len(), 3_000);
            assert_eq!(progress.load(Ordering::Relaxed), 3_000);
            assert!(report.client_cpu.total() > Duration::ZERO);
            if depth.is_none() {
                assert!(
                    !report.intervals.is_empty(),
                    "the timeline is kept on threads too"
                );
            }
        }
        // Every key was preloaded, and split over both servers.
        assert_eq!(servers[0].store().len() + servers[1].store().len(), 100);
        assert!(servers.iter().all(|server| !server.store().is_empty()));
        for server in servers {
            server.shutdown().await.unwrap();
        }
    }

    /// Threads that cannot connect end the load before the clock starts,
    /// with their error, instead of leaving it waiting for them.
    #[tokio::test]
    async fn a_load_thread_that_cannot_connect_fails_the_load() {
        let server = KvServer::start("127.0.0.1:0", Default::default()).await.unwrap();
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut config = BenchConfig::new(server.local_addr(), Workload::Put);
        // Every connection is routed over a closed port too.
        config.addrs = vec![server.local_addr(), closed];
        config.threads = 2;
        config.connections = 2;
        config.duration = Duration::from_secs(10);
        let error = tokio::time::timeout(Duration::from_secs(30), run(config, Arc::default()))
            .await
            .expect("the load ends")
            .unwrap_err();
        assert!(error.to_string().contains("refused"), "{error}");
        server.shutdown().await.unwrap();
    }
}
