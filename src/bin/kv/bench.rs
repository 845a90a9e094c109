//! `kv bench`: a load generator for KV servers, with latency percentiles.
//!
//! Each of
//! [`BenchConfig::connections`] connections keeps [`BenchConfig::pipeline`]
//! requests in flight at a time (as `redis-benchmark -P` does: send a batch,
//! wait for all of it), and every request's latency — from its batch being
//! sent to its own answer — goes into an HDR histogram.
//!
//! The load is bounded both in count ([`BenchConfig::ops`]) and in time
//! ([`BenchConfig::duration`]); it stops at whichever comes first.

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};
use wirestack::kv::{ClientCodec, KvClient, KvError, Request, Response, Status};
use wirestack::pipeline::{Builder, Pipeline};
use wirestack::transport;

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
    /// The server.
    pub addr: SocketAddr,
    /// Stop after this many operations (all connections together).
    pub ops: u64,
    /// Stop after this long, whatever the count.
    pub duration: Duration,
    /// Requests in flight per connection (1 = sequential).
    pub pipeline: usize,
    /// Connections, each driven by its own task.
    pub connections: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Keys are `key:N` for N in `0..key_space`.
    pub key_space: u64,
    /// What to send.
    pub workload: Workload,
}

impl BenchConfig {
    /// A load of 100,000 64-byte operations on one connection, unpipelined.
    #[cfg(test)]
    pub(crate) fn new(addr: SocketAddr, workload: Workload) -> Self {
        BenchConfig {
            addr,
            ops: 100_000,
            duration: Duration::from_secs(60),
            pipeline: 1,
            connections: 1,
            value_size: 64,
            key_space: 100_000,
            workload,
        }
    }
}

/// What a load measured.
#[derive(Debug, Clone)]
pub(crate) struct BenchReport {
    /// Operations answered (errors included).
    pub ops: u64,
    /// Operations answered with an error status or lost with a connection.
    pub errors: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of every operation, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl BenchReport {
    /// Operations per second.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The latency at quantile `q` (0.0 to 1.0), in microseconds.
    pub(crate) fn percentile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }

    /// One JSON object: ops, seconds, ops_per_sec, p50_us, p95_us, p99_us,
    /// p999_us, max_us, errors.
    pub(crate) fn to_json(&self) -> String {
        format!(
            "{{\"ops\":{},\"seconds\":{:.6},\"ops_per_sec\":{:.1},\"p50_us\":{},\"p95_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{}}}",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.percentile_us(0.50),
            self.percentile_us(0.95),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.latency_us.max(),
            self.errors,
        )
    }

    /// A human-readable summary with a latency histogram table.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ops in {:.3} s: {:.0} ops/s, {} errors",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.errors
        );
        let _ = writeln!(
            out,
            "latency us: p50 {}  p95 {}  p99 {}  p99.9 {}  max {}",
            self.percentile_us(0.50),
            self.percentile_us(0.95),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.latency_us.max()
        );
        let _ = writeln!(out, "{:>12}  {:>10}  {:>8}", "<= us", "count", "cumul %");
        let total = self.latency_us.len().max(1);
        let mut cumulative = 0u64;
        for bucket in self.latency_us.iter_log(16, 2.0) {
            let count = bucket.count_since_last_iteration();
            if count == 0 {
                continue;
            }
            cumulative += count;
            let _ = writeln!(
                out,
                "{:>12}  {:>10}  {:>7.3}%",
                bucket.value_iterated_to(),
                count,
                100.0 * cumulative as f64 / total as f64
            );
        }
        out
    }
}

/// Runs the load; `progress` counts answered operations as they come, for a
/// progress display.
pub(crate) async fn run(config: BenchConfig, progress: Arc<AtomicU64>) -> Result<BenchReport, KvError> {
    let ops = match config.workload {
        Workload::Fill => config.key_space,
        _ => config.ops,
    };
    let shared = Arc::new(Plan {
        next_op: AtomicU64::new(0),
        ops,
        deadline: Instant::now() + config.duration,
        progress,
        value: Bytes::from(vec![b'x'; config.value_size]),
        config: config.clone(),
    });

    // Connect every client before the clock starts.
    let mut clients = Vec::with_capacity(config.connections);
    for _ in 0..config.connections.max(1) {
        let transport = transport::connect(config.addr, ClientCodec::new())
            .await
            .map_err(|e| KvError::Connection(e.into()))?;
        let pipeline = Builder::new()
            .max_in_flight(config.pipeline.max(1))
            .spawn(transport);
        clients.push(KvClient::new(pipeline));
    }
    if config.workload == (Workload::Get) {
        // Reads of an empty store measure NOT_FOUND; make the keys exist.
        preload(&clients[0], &shared).await?;
    }

    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(seed, client)| tokio::spawn(drive(client, shared.clone(), seed as u64 + 1)))
        .collect();
    let mut report = BenchReport {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
    };
    for task in tasks {
        let part = task
            .await
            .map_err(|e| KvError::Connection(format!("load task failed: {e}").into()))?;
        report.ops += part.ops;
        report.errors += part.errors;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = report.latency_us.add(&part.latency_us);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

struct Plan {
    next_op: AtomicU64,
    ops: u64,
    deadline: Instant,
    progress: Arc<AtomicU64>,
    value: Bytes,
    config: BenchConfig,
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
        Bytes::from(format!("key:{n:012}"))
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 us to 100 s at 3 significant figures: constant, valid bounds.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
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

async fn preload(client: &KvClient<Pipeline<Request, Response>>, plan: &Plan) -> Result<(), KvError> {
    let batch = 1_000u64;
    let mut start = 0;
    while start < plan.config.key_space {
        let end = (start + batch).min(plan.config.key_space);
        client
            .put_many((start..end).map(|n| (plan.key(n), plan.value.clone())))
            .await?;
        start = end;
    }
    Ok(())
}

async fn drive(client: KvClient<Pipeline<Request, Response>>, plan: Arc<Plan>, seed: u64) -> BenchReport {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut report = BenchReport {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
    };
    let mut service = client.service().clone();
    while let Some((first, count)) = plan.claim() {
        let sent = Instant::now();
        let mut answers = FuturesOrdered::new();
        for n in first..first + count {
            let request = next_request(&plan, &mut rng, n);
            match ServiceExt::<Request>::ready(&mut service).await {
                Ok(ready) => answers.push_back(ready.call(request)),
                Err(_) => {
                    report.errors += first + count - n;
                    break;
                }
            }
        }
        while let Some(answer) = answers.next().await {
            let latency = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            report.latency_us.saturating_record(latency.max(1));
            report.ops += 1;
            match answer {
                Ok(response) if matches!(response.status, Status::Ok | Status::NotFound) => {}
                _ => report.errors += 1,
            }
        }
        plan.progress.fetch_add(count, Ordering::Relaxed);
        if service.broken().is_some() {
            break;
        }
    }
    report
}

fn next_request(plan: &Plan, rng: &mut Rng, n: u64) -> Request {
    let random_key = |rng: &mut Rng| plan.key(rng.below(plan.config.key_space));
    let put = |key| Request::Put {
        key,
        value: plan.value.clone(),
    };
    match plan.config.workload {
        Workload::Put => put(random_key(rng)),
        Workload::Get => Request::Get { key: random_key(rng) },
        Workload::Mixed { read_ratio } if rng.chance(read_ratio) => Request::Get { key: random_key(rng) },
        Workload::Mixed { .. } => put(random_key(rng)),
        Workload::Fill => put(plan.key(n)),
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
        ] {
            assert!(json.contains(&format!("\"{field}\":")), "{json}");
        }
        assert!(report.to_text().contains("p99"));
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
}
