//! CPU per request of the full client stack against the bare multiplexer
//! it sits on, at depth, measured the way the target is stated: process
//! CPU time (client and in-process server together, every thread) per GET,
//! in rounds that alternate full / bare so that both see the same machine.
//! Full is `KvClient::connect` (deadline, retry, reconnect, keepalive and a
//! session over a `Multiplex`, KV 2.0); bare is a `Multiplex` over KV 2.0
//! with no layer and no session. (Until 2026-12-05 bare was a `Pipeline`
//! over KV 1.1, which since the stack moved to 2.0 also counted the
//! protocol's difference.)
//!
//! `cargo bench --bench stack_cpu` (ROUNDS=N for more rounds; default 5;
//! ONLY=multiplexers for the second table alone)
//!
//! * `each/D`: D GETs in flight from one task, each its own call.
//! * `batch/D`: D GETs as one `Batch`.
//!
//! Prints the median µs of CPU per GET of each variant and full / bare.
//!
//! Then the two multiplexers against each other: a bare `Multiplex` over
//! KV 2.0 (HELLO, answers by request id) and a bare `Pipeline` over KV 1.1,
//! the same GETs at depth 64 and 1000 (`each/D` and `batch/D`), rounds
//! interleaved. There the server runs on a runtime of its own and only the
//! client's threads are counted (`/proc/self/task/*/comm`), so that what
//! the server's out-of-order path costs does not blur the client's figure.

use futures::stream::{FuturesOrdered, TryStreamExt};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};
use wirestack::batch::{Batch, BatchResponse};
use wirestack::kv::{ClientCodec, Hello, KvClient, KvServer, KvServerConfig, Request, Response};
use wirestack::multiplex::Multiplex;
use wirestack::pipeline::Pipeline;
use wirestack::transport::Handshake;
use wirestack::BoxError;

/// CPU time of every thread of this process so far, from the scheduler's
/// own accounting (nanoseconds).
fn process_cpu() -> Duration {
    threads_cpu(|_| true)
}

/// The name the server's runtime gives its threads in the multiplexer
/// comparison, so that they are left out of the client's CPU.
const SERVER_THREADS: &str = "kv-server";

/// CPU time so far of the threads whose name `counted` accepts.
fn threads_cpu(counted: impl Fn(&str) -> bool) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !counted(name.trim_end()) {
                continue;
            }
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
async fn measure<F, Fut>(depth: usize, round: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    measure_threads(depth, round, process_cpu).await
}

/// [`measure`], counting the CPU that `cpu` reads.
async fn measure_threads<F, Fut>(depth: usize, mut round: F, cpu: fn() -> Duration) -> f64
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
    let before = cpu();
    let mut gets = 0u64;
    while started.elapsed() < time {
        round().await;
        gets += depth as u64;
    }
    (cpu() - before).as_secs_f64() * 1e6 / gets as f64
}

/// A bare `Multiplex` over KV 2.0 (HELLO, answers by request id, no
/// session): the multiplexer under `KvClient::connect`'s stack, without
/// the stack.
async fn bare_multiplex(addr: std::net::SocketAddr) -> KvClient<Multiplex<Request, Response>> {
    let transport = wirestack::transport::connect(addr, ClientCodec::new())
        .await
        .unwrap();
    let transport = Hello::new().handshake(transport).await.unwrap();
    assert!(transport.codec().negotiated().is_some(), "the server speaks 2.0");
    KvClient::new(Multiplex::new(transport))
}

/// CPU of every thread but the server's.
fn client_cpu() -> Duration {
    threads_cpu(|name| !name.starts_with(SERVER_THREADS))
}

/// The multiplexers side by side: a bare `Multiplex` (KV 2.0) and a bare
/// `Pipeline` (KV 1.1) to a server on a runtime of its own; client CPU per
/// GET, rounds interleaved.
fn compare_multiplexers(rounds: usize) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("the server's runtime");
    let server = server_rt
        .block_on(KvServer::start("127.0.0.1:0", KvServerConfig::default()))
        .unwrap();
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let transport = wirestack::transport::connect(addr, ClientCodec::new())
                .await
                .unwrap();
            let pipeline = KvClient::new(Pipeline::new(transport));
            let multiplex = bare_multiplex(addr).await;
            pipeline.put("key", vec![b'x'; 64]).await.unwrap();
            if let Ok(only) = std::env::var("MULTIPLEXER") {
                // One multiplexer for a while, for a profiler or a syscall
                // count: MULTIPLEXER=multiplex|pipeline (DEPTH, default 1000).
                let depth = std::env::var("DEPTH")
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(1000);
                let us = match only.as_str() {
                    "multiplex" => measure_threads(depth, || each(&multiplex, depth), client_cpu).await,
                    _ => measure_threads(depth, || each(&pipeline, depth), client_cpu).await,
                };
                println!("{only} each/{depth}: {us:.3} us/GET");
                return;
            }
            println!();
            println!("| variant | multiplex us/GET | pipeline us/GET | multiplex / pipeline |");
            println!("| --- | ---: | ---: | ---: |");
            for depth in [64usize, 1000] {
                let (mut m, mut p) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    m.push(measure_threads(depth, || each(&multiplex, depth), client_cpu).await);
                    p.push(measure_threads(depth, || each(&pipeline, depth), client_cpu).await);
                }
                let (m, p) = (median(m), median(p));
                println!("| each/{depth} | {m:.3} | {p:.3} | {:.3} |", m / p);
                let (mut m, mut p) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    m.push(measure_threads(depth, || batch(&multiplex, depth), client_cpu).await);
                    p.push(measure_threads(depth, || batch(&pipeline, depth), client_cpu).await);
                }
                let (m, p) = (median(m), median(p));
                println!("| batch/{depth} | {m:.3} | {p:.3} | {:.3} |", m / p);
            }
        });
        task.await.unwrap();
    });
    server_rt.block_on(server.shutdown()).unwrap();
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
    if std::env::var("ONLY").is_ok_and(|only| only == "multiplexers") {
        compare_multiplexers(rounds);
        return;
    }
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
        let bare = bare_multiplex(server.local_addr()).await;
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
    if std::env::var("PROFILE").is_err() {
        compare_multiplexers(rounds);
    }
}
