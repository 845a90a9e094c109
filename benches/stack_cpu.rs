//! CPU per request of the full client stack against the bare pipeline, at
//! depth, measured the way the target is stated: process CPU time (client
//! and in-process server together, every thread) per GET, in rounds that
//! alternate full / bare so that both see the same machine.
//!
//! `cargo bench --bench stack_cpu` (ROUNDS=N for more rounds; default 5)
//!
//! * `each/D`: D GETs in flight from one task, each its own call.
//! * `batch/D`: D GETs as one `Batch`.
//!
//! Prints the median µs of CPU per GET of each variant and full / bare.

use futures::stream::{FuturesOrdered, TryStreamExt};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};
use wirestack::batch::{Batch, BatchResponse};
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig, Request, Response};
use wirestack::pipeline::Pipeline;
use wirestack::BoxError;

/// CPU time of every thread of this process so far, from the scheduler's
/// own accounting (nanoseconds).
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            if let Ok(text) = std::fs::read_to_string(path) {
                total += text
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

async fn each<S>(client: &KvClient<S>, depth: usize)
where
    S: Service<Request, Response = Response> + Clone,
    S::Error: Into<BoxError> + std::fmt::Debug,
{
    let mut service = client.service().clone();
    let mut answers = FuturesOrdered::new();
    for _ in 0..depth {
        let ready = ServiceExt::<Request>::ready(&mut service).await.unwrap();
        answers.push_back(ready.call(Request::Get { key: "key".into() }));
    }
    let answers: Vec<Response> = answers.try_collect().await.unwrap();
    assert_eq!(answers.len(), depth);
}

async fn batch<S, E>(client: &KvClient<S>, depth: usize)
where
    S: Service<Request, Response = Response>
        + Service<Batch<Request>, Response = BatchResponse<Response, E>>
        + Clone,
    <S as Service<Request>>::Error: Into<BoxError>,
    <S as Service<Batch<Request>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let answers = client
        .batch((0..depth).map(|_| Request::Get { key: "key".into() }))
        .await
        .unwrap();
    assert_eq!(answers.len(), depth);
}

/// Runs `round` for about `TIME`; returns CPU µs per GET.
async fn measure<F, Fut>(depth: usize, mut round: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let time = Duration::from_millis(if std::env::var("PROFILE").is_ok() {
        5000
    } else {
        700
    });
    let started = Instant::now();
    let cpu = process_cpu();
    let mut gets = 0u64;
    while started.elapsed() < time {
        round().await;
        gets += depth as u64;
    }
    (process_cpu() - cpu).as_secs_f64() * 1e6 / gets as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
            .await
            .unwrap();
        let full = KvClient::connect(server.local_addr()).await.unwrap();
        let transport = wirestack::transport::connect(server.local_addr(), ClientCodec::new())
            .await
            .unwrap();
        let bare = KvClient::new(Pipeline::new(transport));
        full.put("key", vec![b'x'; 64]).await.unwrap();
        if let Ok(only) = std::env::var("PROFILE") {
            // One variant for a while, for a profiler: PROFILE=each|batch|each-bare|batch-bare.
            let depth: usize = std::env::var("DEPTH")
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(1000);
            let task = tokio::spawn(async move {
                let us = match only.as_str() {
                    "each" => measure(depth, || each(&full, depth)).await,
                    "batch" => measure(depth, || batch(&full, depth)).await,
                    "each-bare" => measure(depth, || each(&bare, depth)).await,
                    _ => measure(depth, || batch(&bare, depth)).await,
                };
                println!("{only}/{depth}: {us:.3} us/GET");
            });
            task.await.unwrap();
            return;
        }
        let task = tokio::spawn(async move {
            println!("| variant | full us/GET | bare us/GET | full / bare |");
            println!("| --- | ---: | ---: | ---: |");
            for depth in [64usize, 1000] {
                let (mut f, mut b) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    f.push(measure(depth, || each(&full, depth)).await);
                    b.push(measure(depth, || each(&bare, depth)).await);
                }
                let (f, b) = (median(f), median(b));
                println!("| each/{depth} | {f:.3} | {b:.3} | {:.3} |", f / b);
                let (mut f, mut b) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    f.push(measure(depth, || batch(&full, depth)).await);
                    b.push(measure(depth, || batch(&bare, depth)).await);
                }
                let (f, b) = (median(f), median(b));
                println!("| batch/{depth} | {f:.3} | {b:.3} | {:.3} |", f / b);
            }
        });
        task.await.unwrap();
        server.shutdown().await.unwrap();
    });
}
