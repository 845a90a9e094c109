//! What the balancer and the hedge cost per call, against the pool alone,
//! with no network: every endpoint is a [`Pool`] over a service that
//! answers at once, so the figures are the layers' own work (the choice,
//! the in-flight count, the latency estimate, the hedge's timer).
//!
//! `cargo bench --bench balance`
//!
//! * `pool`: one pool, the stack a single endpoint has;
//! * `balance/one endpoint`: a balancer over one endpoint (an accrual over
//!   a pool): what a call costs the balancer without a choice to make;
//! * `balance/<chooser>`: five endpoints (each an accrual over a pool)
//!   behind a balancer choosing by round robin, least-loaded or
//!   peak-EWMA;
//! * `hedge/peak-EWMA`: the same behind a hedge whose delay is known, so
//!   that every call arms its timer (none fires: the answers are at once).
//!
//! Each iteration makes 100 calls one after the other on one task.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use wirestack::balance::{Balance, BalanceConfig, Choose};
use wirestack::hedge::{Hedge, HedgeConfig};
use wirestack::pool::{Pool, PoolConfig};
use wirestack::retry::Idempotent;
use wirestack::route::Probe;

#[derive(Debug, Clone)]
struct Get;

impl Probe for Get {
    fn probe() -> Self {
        Get
    }
}

impl Idempotent for Get {
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// Answers at once.
#[derive(Debug, Clone)]
struct Answer;

impl Service<Get> for Answer {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Get) -> Self::Future {
        ready(Ok(1))
    }
}

fn pool() -> Pool<Answer> {
    Pool::new(|| Answer, PoolConfig::default())
}

const CALLS: u64 = 100;

fn calls<S>(runtime: &Runtime, service: &S)
where
    S: Service<Get, Response = u32> + Clone,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        for _ in 0..CALLS {
            service.clone().oneshot(Get).await.expect("an answer");
        }
    });
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let mut group = c.benchmark_group("per call");
    group.throughput(Throughput::Elements(CALLS));
    let alone = pool();
    group.bench_function("pool", |b| b.iter(|| calls(&runtime, &alone)));
    let one = Balance::new([("endpoint", pool())], BalanceConfig::default()).expect("an endpoint");
    group.bench_function("balance/one endpoint", |b| b.iter(|| calls(&runtime, &one)));
    let five = || (0..5).map(|i| (format!("endpoint{i}"), pool()));
    for (name, choose) in [
        ("round robin", Choose::RoundRobin),
        ("least-loaded", Choose::LeastLoaded),
        ("peak-EWMA", Choose::PeakEwma),
    ] {
        let balance = Balance::new(five(), BalanceConfig::new(choose)).expect("five endpoints");
        group.bench_function(format!("balance/{name}"), |b| {
            b.iter(|| calls(&runtime, &balance))
        });
    }
    let balance = Balance::new(five(), BalanceConfig::default()).expect("five endpoints");
    let hedge = Hedge::new(
        balance,
        HedgeConfig {
            min_samples: 1,
            ..HedgeConfig::default()
        },
    );
    calls(&runtime, &hedge);
    assert!(
        hedge.handle().stats().delay.is_some(),
        "every call arms the timer"
    );
    group.bench_function("hedge/peak-EWMA", |b| b.iter(|| calls(&runtime, &hedge)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
