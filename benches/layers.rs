//! What each client layer costs per request, with no network: every stack
//! ends in a real `Pipeline` over an in-memory transport that answers each
//! request as soon as it is written, so the figures are the layers' own work
//! (clones, timers, budget bookkeeping) on top of the multiplexer's.
//!
//! `cargo bench --bench layers`
//!
//! `tower:` rows are the same stack built from tower's own `Timeout` and
//! `Retry` (with the same `RetryPolicy`), for comparison in the same run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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
criterion_main!(benches);
