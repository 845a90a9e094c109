//! What each client layer costs per request, with no I/O: every stack ends
//! in a service that answers at once, so the figures are the layers' own
//! work (clones, timers, budget bookkeeping), free of network noise.
//!
//! `cargo bench --bench layers`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use wirestack::kv::{Request, Response};
use wirestack::reconnect::{Reconnect, ReconnectConfig};
use wirestack::retry::RetryPolicy;
use wirestack::BoxError;

/// Answers every request at once: the bottom of every stack measured here.
#[derive(Clone, Debug)]
struct Instant;

impl Service<Request> for Instant {
    type Response = Response;
    type Error = BoxError;
    type Future = Ready<Result<Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request) -> Self::Future {
        ready(Ok(Response::ok_empty()))
    }
}

/// Hands out [`Instant`] services as "connections".
fn connector(
) -> impl Service<(), Response = Instant, Error = Infallible, Future = Ready<Result<Instant, Infallible>>> {
    tower::service_fn(|()| ready(Ok::<_, Infallible>(Instant)))
}

const BATCH: u64 = 1_000;

fn run_batch<S>(rt: &Runtime, service: &S)
where
    S: Service<Request, Response = Response> + Clone,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        for _ in 0..BATCH {
            let mut service = service.clone();
            let ready = service.ready().await.unwrap();
            ready.call(Request::Get { key: "key".into() }).await.unwrap();
        }
    })
}

fn bench_layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reconnect = rt.block_on(async {
        let reconnect = Reconnect::new(connector(), (), ReconnectConfig::default());
        reconnect.wait_connected().await.unwrap();
        reconnect
    });
    let retry = tower::retry::Retry::new(RetryPolicy::default(), reconnect.clone());
    let timeout = tower::timeout::Timeout::new(reconnect.clone(), Duration::from_secs(5));
    let full = tower::timeout::Timeout::new(retry.clone(), Duration::from_secs(5));

    let mut group = c.benchmark_group("layer_overhead");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("none", |b| b.iter(|| run_batch(&rt, &Instant)));
    group.bench_function("reconnect", |b| b.iter(|| run_batch(&rt, &reconnect)));
    group.bench_function("retry+reconnect", |b| b.iter(|| run_batch(&rt, &retry)));
    group.bench_function("timeout+reconnect", |b| b.iter(|| run_batch(&rt, &timeout)));
    group.bench_function("timeout+retry+reconnect", |b| b.iter(|| run_batch(&rt, &full)));
    group.finish();
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
