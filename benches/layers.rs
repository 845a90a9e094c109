//! What each client layer costs per request, with no network: every stack
//! ends in a real `Pipeline` over an in-memory transport that answers each
//! request as soon as it is written, so the figures are the layers' own work
//! (clones, timers, budget bookkeeping) on top of the multiplexer's.
//!
//! `cargo bench --bench layers`
//!
//! `tower:` rows are the same stack built from tower's own `Timeout` and
//! `Retry` (with the same `RetryPolicy`), for comparison in the same run.
//!
//! `OBSERVE=1 cargo bench --bench layers` instead measures what metrics and
//! tracing cost the default stack, in rounds that interleave the variants
//! (A B C D, A B C D, ...; ROUNDS=N, default 15; ONLY=a,b for some of them),
//! and prints the median
//! ns per request of each:
//!
//! * `pipeline`: the bare pipeline, for scale;
//! * `stack`: deadline + retry + reconnect, no recorder, no subscriber;
//! * `stack+recorder`: the same stack built while the Prometheus recorder
//!   `kv serve` uses was installed (for this thread) and metrics were
//!   enabled (`wirestack::metrics::enable`): every layer records;
//! * `stack+info`: no recorder, a `tracing` subscriber at `info` (the
//!   request and attempt spans and the layers' `debug` events are off);
//! * `stack+debug` (only with `OBSERVE=debug`: a subscriber at `debug` in
//!   the process makes every other `debug` callsite ask it too): a
//!   subscriber at `debug` writing to a sink — every span and event is
//!   made and formatted.

use criterion::{criterion_group, Criterion, Throughput};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{Sink, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use wirestack::deadline::Deadline;
use wirestack::kv::{Request, Response};
use wirestack::pipeline::Pipeline;
use wirestack::reconnect::{Reconnect, ReconnectConfig};
use wirestack::retry::{Retry, RetryPolicy};

/// A transport that answers every request it is given, in order.
#[derive(Default)]
struct Echo {
    answers: VecDeque<Response>,
    reader: Option<Waker>,
}

impl Sink<Request> for Echo {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, _: Request) -> Result<(), Infallible> {
        self.answers.push_back(Response::ok_empty());
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Echo {
    type Item = Result<Response, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.answers.pop_front() {
            Some(answer) => Poll::Ready(Some(Ok(answer))),
            None => {
                self.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Hands out a new pipeline over an [`Echo`] as each "connection".
fn connector() -> impl Service<
    (),
    Response = Pipeline<Request, Response>,
    Error = Infallible,
    Future = Ready<Result<Pipeline<Request, Response>, Infallible>>,
> {
    tower::service_fn(|()| ready(Ok::<_, Infallible>(Pipeline::new(Echo::default()))))
}

/// Requests in flight at once, as a pipelined caller keeps them.
const DEPTH: usize = 64;
const BATCH: u64 = 1_024;

/// `BATCH` requests, `DEPTH` in flight at a time, each its own call.
fn run_batch<S>(rt: &Runtime, service: &S)
where
    S: Service<Request, Response = Response> + Clone,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let mut service = service.clone();
        let mut in_flight = FuturesUnordered::<S::Future>::new();
        for _ in 0..BATCH {
            if in_flight.len() == DEPTH {
                in_flight.next().await.unwrap().unwrap();
            }
            let ready = ServiceExt::<Request>::ready(&mut service).await.unwrap();
            in_flight.push(ready.call(Request::Get { key: "key".into() }));
        }
        while let Some(answer) = in_flight.next().await {
            answer.unwrap();
        }
    })
}

fn bench_layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (bare, reconnect) = rt.block_on(async {
        let reconnect = Reconnect::new(connector(), (), ReconnectConfig::default());
        reconnect.wait_connected().await.unwrap();
        (Pipeline::new(Echo::default()), reconnect)
    });
    let timeout = Duration::from_secs(5);
    let retry = Retry::new(RetryPolicy::default(), reconnect.clone());
    let deadline = Deadline::new(reconnect.clone(), timeout);
    let full = Deadline::new(retry.clone(), timeout);
    let tower_retry = tower::retry::Retry::new(RetryPolicy::default(), reconnect.clone());
    let tower_timeout = tower::timeout::Timeout::new(reconnect.clone(), timeout);
    let tower_full = tower::timeout::Timeout::new(tower_retry.clone(), timeout);

    let mut group = c.benchmark_group("layer_overhead");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("pipeline", |b| b.iter(|| run_batch(&rt, &bare)));
    group.bench_function("reconnect", |b| b.iter(|| run_batch(&rt, &reconnect)));
    group.bench_function("retry+reconnect", |b| b.iter(|| run_batch(&rt, &retry)));
    group.bench_function("deadline+reconnect", |b| b.iter(|| run_batch(&rt, &deadline)));
    group.bench_function("deadline+retry+reconnect", |b| b.iter(|| run_batch(&rt, &full)));
    group.bench_function("tower:retry+reconnect", |b| {
        b.iter(|| run_batch(&rt, &tower_retry))
    });
    group.bench_function("tower:timeout+reconnect", |b| {
        b.iter(|| run_batch(&rt, &tower_timeout))
    });
    group.bench_function("tower:timeout+retry+reconnect", |b| {
        b.iter(|| run_batch(&rt, &tower_full))
    });
    group.finish();
}

criterion_group!(benches, bench_layers);

fn main() {
    if std::env::var_os("OBSERVE").is_some() {
        observe();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// The default stack over a fresh reconnect layer (registering its
/// handles with whatever recorder is installed now).
fn default_stack(
    rt: &Runtime,
) -> impl Service<Request, Response = Response, Error = wirestack::BoxError> + Clone {
    let reconnect = rt.block_on(async {
        let reconnect = Reconnect::new(connector(), (), ReconnectConfig::default());
        reconnect.wait_connected().await.unwrap();
        reconnect
    });
    Deadline::new(
        Retry::new(RetryPolicy::default(), reconnect),
        Duration::from_secs(5),
    )
}

/// One way of running a batch, measured against the others.
type Variant<'a> = Box<dyn FnMut(&Runtime) + 'a>;

/// ns per request of `rounds` runs of `BATCH` requests.
fn time(rt: &Runtime, rounds: u32, run: &mut dyn FnMut(&Runtime)) -> f64 {
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        run(rt);
    }
    started.elapsed().as_nanos() as f64 / f64::from(rounds) / BATCH as f64
}

fn observe() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = rt.block_on(async { Pipeline::new(Echo::default()) });
    let plain = default_stack(&rt);
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let upkeep = recorder.handle();
    let recorded = {
        let _installed = metrics::set_default_local_recorder(&recorder);
        // After `bare` and `plain` were built: they measure no latencies.
        wirestack::metrics::enable();
        default_stack(&rt)
    };
    let info = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let info = tracing::Dispatch::new(info);
    let debug = (std::env::var("OBSERVE").as_deref() == Ok("debug")).then(|| {
        let debug = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::sink)
            .finish();
        tracing::Dispatch::new(debug)
    });

    let mut variants: Vec<(&str, Variant<'_>)> = vec![
        ("pipeline", Box::new(|rt: &Runtime| run_batch(rt, &bare))),
        ("stack", Box::new(|rt: &Runtime| run_batch(rt, &plain))),
        (
            "stack+recorder",
            Box::new(|rt: &Runtime| run_batch(rt, &recorded)),
        ),
        (
            "stack+info",
            Box::new(|rt: &Runtime| tracing::dispatcher::with_default(&info, || run_batch(rt, &plain))),
        ),
    ];
    if let Some(debug) = &debug {
        variants.push((
            "stack+debug",
            Box::new(|rt: &Runtime| tracing::dispatcher::with_default(debug, || run_batch(rt, &plain))),
        ));
    }
    // ONLY=a,b: only these variants.
    if let Ok(only) = std::env::var("ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        variants.retain(|(name, _)| only.contains(name));
    }
    // Warm up, then interleave: each round runs every variant once.
    for (_, run) in variants.iter_mut() {
        time(&rt, 200, run.as_mut());
    }
    let mut samples = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in variants.iter_mut().enumerate() {
            samples[i].push(time(&rt, 300, run.as_mut()));
        }
        // What the exporter does every few seconds: histogram samples are
        // folded in, so that memory stays bounded.
        upkeep.run_upkeep();
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let stack = variants
        .iter()
        .position(|(name, _)| *name == "stack")
        .unwrap_or(0);
    let base = median(&mut samples[stack].clone());
    println!("| variant | ns per request (median of {rounds}) | / stack |");
    println!("| --- | ---: | ---: |");
    for ((name, _), values) in variants.iter().zip(samples.iter_mut()) {
        let ns = median(values);
        println!("| {name} | {ns:.1} | {:.3} |", ns / base);
    }
}
