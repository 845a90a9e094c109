//! The balancer's experiment, shared by `tests/balance.rs` (which asserts
//! its properties on a small load) and `examples/balance_experiment.rs`
//! (which measures it on a larger one, for BENCHMARKS.md): five KV servers
//! in process, each behind a [`DelayProxy`] on 127.0.0.1, one of them
//! slowed or stalled; a bounded load of GETs through the whole client
//! stack (`ClientBuilder::balance` or `balance_hedged`, `KvClient`).

#![allow(dead_code, reason = "each binary uses part of it")]

use super::proxy::DelayProxy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wirestack::balance::{BalanceConfig, BalanceHandle, Choose};
use wirestack::builder::{ClientBuilder, Stack};
use wirestack::hedge::{HedgeConfig, HedgeStats};
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig, Request, Response};
use wirestack::BoxError;

/// Five servers, each behind its proxy.
pub struct Cluster {
    servers: Vec<KvServer>,
    pub proxies: Vec<DelayProxy>,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        let mut servers = Vec::new();
        let mut proxies = Vec::new();
        for _ in 0..n {
            let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
                .await
                .expect("a KV server on 127.0.0.1");
            proxies.push(DelayProxy::start(server.local_addr()).await);
            servers.push(server);
        }
        Cluster { servers, proxies }
    }

    /// The proxies' addresses: what the clients balance over.
    pub fn addrs(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.addr().to_string()).collect()
    }

    pub async fn shutdown(self) {
        drop(self.proxies);
        for server in self.servers {
            server.abort();
        }
    }
}

/// How much load: `calls` GETs (after `warmup` more, not measured), at
/// most `concurrency` at a time, and never past `time_limit`.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub calls: usize,
    pub warmup: usize,
    pub concurrency: usize,
    pub time_limit: Duration,
    pub deadline: Duration,
}

/// The client: a chooser, hedged or not.
#[derive(Debug, Clone)]
pub struct Setup {
    pub choose: Choose,
    pub hedge: Option<HedgeConfig>,
    /// The peak-EWMA's decay, if not the default.
    pub decay: Option<Duration>,
}

/// What a run measured.
#[derive(Clone)]
pub struct Outcome {
    /// Latencies of the calls answered, sorted.
    pub latencies: Vec<Duration>,
    /// Calls that failed (a deadline, for a stalled endpoint).
    pub failures: usize,
    /// Calls measured (answered or failed).
    pub calls: usize,
    /// Share of the copies sent during the measured calls that went to
    /// endpoint `marked`.
    pub marked_share: f64,
    /// Copies sent to `marked` during the measured calls.
    pub marked_copies: u64,
    /// The hedge's counters over the measured calls.
    pub hedges: HedgeStats,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("calls", &self.calls)
            .field("failures", &self.failures)
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .field("p99.9", &self.percentile(0.999))
            .field("max", &self.latencies.last())
            .field("marked_share", &self.marked_share)
            .field("marked_copies", &self.marked_copies)
            .field("hedges", &self.hedges)
            .finish()
    }
}

impl Outcome {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    /// Hedges sent, as a share of the measured calls.
    pub fn extra(&self) -> f64 {
        self.hedges.hedges as f64 / self.calls.max(1) as f64
    }
}

/// Runs `load` against `cluster` with a client set up as `setup`; counts
/// the copies sent to endpoint `marked` (an index into the proxies).
pub async fn run(cluster: &Cluster, setup: &Setup, load: Load, marked: usize) -> Outcome {
    run_with(cluster, setup, load, marked, || {}).await
}

/// [`run`], calling `after_warmup` between the warmup and the measured
/// calls (to stall an endpoint under a warm client, say).
pub async fn run_with(
    cluster: &Cluster,
    setup: &Setup,
    load: Load,
    marked: usize,
    after_warmup: impl FnOnce(),
) -> Outcome {
    let builder = ClientBuilder::new(ClientCodec::new())
        .timeout(load.deadline)
        .balancing(BalanceConfig {
            decay: setup.decay.unwrap_or(BalanceConfig::default().decay),
            ..BalanceConfig::new(setup.choose)
        });
    let addrs = cluster.addrs();
    let marked = &addrs[marked];
    match &setup.hedge {
        None => {
            let stack = builder.balance::<Request, _>(addrs.iter());
            measure(stack.expect("five endpoints"), load, marked, after_warmup).await
        }
        Some(hedge) => {
            let stack = builder
                .hedging(hedge.clone())
                .balance_hedged::<Request, _>(addrs.iter());
            measure(stack.expect("five endpoints"), load, marked, after_warmup).await
        }
    }
}

async fn measure<S>(stack: Stack<S>, load: Load, marked: &str, after_warmup: impl FnOnce()) -> Outcome
where
    S: tower::Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let handle = stack.balance_handle().cloned().expect("a balanced stack");
    let hedges = || stack.hedge_stats();
    let client = KvClient::new(stack.clone());
    let copies = |handle: &BalanceHandle| -> (u64, u64) {
        let stats = handle.stats();
        let all = stats.iter().map(|e| e.chosen).sum();
        let marked = stats.iter().find(|e| e.name == marked).map_or(0, |e| e.chosen);
        (all, marked)
    };
    drive(&client, load.warmup, load).await;
    after_warmup();
    let (all_before, marked_before) = copies(&handle);
    let hedges_before = hedges();
    let (latencies, failures) = drive(&client, load.calls, load).await;
    let (all_after, marked_after) = copies(&handle);
    let hedges_after = hedges();
    let all = all_after - all_before;
    let marked_copies = marked_after - marked_before;
    let mut hedge_delta = hedges_after;
    hedge_delta.requests -= hedges_before.requests;
    hedge_delta.hedges -= hedges_before.hedges;
    hedge_delta.wins -= hedges_before.wins;
    hedge_delta.budget_exhausted -= hedges_before.budget_exhausted;
    Outcome {
        calls: latencies.len() + failures,
        latencies,
        failures,
        marked_share: marked_copies as f64 / all.max(1) as f64,
        marked_copies,
        hedges: hedge_delta,
    }
}

/// `calls` GETs, `load.concurrency` at a time, within `load.time_limit`:
/// the sorted latencies of those answered, and how many failed.
async fn drive<S>(client: &KvClient<S>, calls: usize, load: Load) -> (Vec<Duration>, usize)
where
    S: tower::Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..load.concurrency)
        .map(|worker| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                while next.fetch_add(1, Ordering::Relaxed) < calls && started.elapsed() < load.time_limit {
                    let key = format!("key{worker}");
                    let sent = Instant::now();
                    match client.get(key).await {
                        Ok(_) => latencies.push(sent.elapsed()),
                        Err(_) => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    let mut failures = 0;
    for worker in workers {
        let (answered, failed) = worker.await.expect("a load worker");
        latencies.extend(answered);
        failures += failed;
    }
    latencies.sort_unstable();
    (latencies, failures)
}
