//! Pipelined vs sequential requests against an in-process KV server on
//! 127.0.0.1, and the full client stack vs the bare multiplexer.
//!
//! `cargo bench --bench pipeline`
//!
//! * `std_net_floor`: a blocking `std::net` client with a hand-made frame and
//!   no runtime: the loopback floor for one request at a time.
//! * `sequential/{full,bare,multiplex}`: one GET at a time through the full
//!   stack (timeout → retry → reconnect → multiplex, KV 2.0), the bare
//!   `Pipeline` (KV 1.1) or the bare `Multiplex` (KV 2.0).
//! * `pipelined/{full,bare,multiplex}/D`: D GETs in flight at once from one
//!   task, each its own call through the stack (a queue slot, a completion,
//!   a deadline and a retry decision each).
//! * `batch/{full,bare,multiplex}/D`: D GETs as one `Batch` (`batch`): one call.
//! * `64_tasks`: 64 long-lived tasks sharing one full-stack client, each
//!   sending one GET at a time: pipelining by write coalescing alone, with
//!   no batching by the callers.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use futures::stream::{FuturesOrdered, TryStreamExt};
use std::future::Future;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use wirestack::batch::{Batch, BatchResponse};
use wirestack::kv::{ClientCodec, Hello, KvClient, KvServer, KvServerConfig, Request, Response};
use wirestack::multiplex::Multiplex;
use wirestack::pipeline::Pipeline;
use wirestack::transport::Handshake;
use wirestack::BoxError;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn std_net_floor(addr: std::net::SocketAddr) -> impl FnMut() {
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_nodelay(true).unwrap();
    let mut frame = vec![0x02u8];
    frame.extend_from_slice(&3u32.to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(b"key");
    let mut answer = [0u8; 5 + 64];
    move || {
        socket.write_all(&frame).unwrap();
        socket.read_exact(&mut answer).unwrap();
        assert_eq!(answer[0], 0);
    }
}

/// Runs `iters` rounds of `round` inside a task on the runtime's workers, as
/// an application would, and times them there: the bench thread only waits
/// for the total, so no round pays for waking it.
fn timed<F, Fut>(rt: &Runtime, iters: u64, round: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..iters {
                round().await;
            }
            started.elapsed()
        })
        .await
        .expect("the bench task")
    })
}

/// `depth` GETs in flight at once, each its own call.
async fn get_each<S>(client: KvClient<S>, depth: u64)
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
    assert_eq!(answers.len() as u64, depth);
}

/// `depth` GETs as one batch.
async fn get_batch<S, E>(client: KvClient<S>, depth: u64)
where
    S: Service<Request, Response = Response>
        + Service<Batch<Request>, Response = BatchResponse<Response, E>>
        + Clone,
    <S as Service<Request>>::Error: Into<BoxError>,
    <S as Service<Batch<Request>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let requests = (0..depth).map(|_| Request::Get { key: "key".into() });
    let responses = client.batch(requests).await.unwrap();
    assert_eq!(responses.len() as u64, depth);
}

/// Sequential, pipelined and batched GETs through one client.
fn bench_client<S, E>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, client: KvClient<S>)
where
    S: Service<Request, Response = Response>
        + Service<Batch<Request>, Response = BatchResponse<Response, E>>
        + Clone
        + Send
        + Sync
        + 'static,
    <S as Service<Request>>::Error: Into<BoxError> + Send + std::fmt::Debug,
    <S as Service<Request>>::Future: Send,
    <S as Service<Batch<Request>>>::Error: Into<BoxError> + Send,
    <S as Service<Batch<Request>>>::Future: Send,
    E: Into<BoxError> + Send + 'static,
{
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("sequential/{name}"), |b| {
        b.iter_custom(|iters| {
            let client = client.clone();
            timed(rt, iters, move || get_each(client.clone(), 1))
        })
    });
    for depth in [16u64, 64, 1000] {
        group.throughput(Throughput::Elements(depth));
        group.bench_with_input(
            BenchmarkId::new(format!("pipelined/{name}"), depth),
            &depth,
            |b, &depth| {
                b.iter_custom(|iters| {
                    let client = client.clone();
                    timed(rt, iters, move || get_each(client.clone(), depth))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new(format!("batch/{name}"), depth),
            &depth,
            |b, &depth| {
                b.iter_custom(|iters| {
                    let client = client.clone();
                    timed(rt, iters, move || get_batch(client.clone(), depth))
                })
            },
        );
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = runtime();
    let (server, full, bare, multiplex) = rt.block_on(async {
        let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
            .await
            .unwrap();
        let full = KvClient::connect(server.local_addr()).await.unwrap();
        let transport = wirestack::transport::connect(server.local_addr(), ClientCodec::new())
            .await
            .unwrap();
        let bare = KvClient::new(Pipeline::new(transport));
        let transport = wirestack::transport::connect(server.local_addr(), ClientCodec::new())
            .await
            .unwrap();
        let transport = Hello::new().handshake(transport).await.unwrap();
        let multiplex = KvClient::new(Multiplex::new(transport));
        full.put("key", vec![b'x'; 64]).await.unwrap();
        (server, full, bare, multiplex)
    });

    let mut group = c.benchmark_group("kv_get");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));

    group.throughput(Throughput::Elements(1));
    let mut floor = std_net_floor(server.local_addr());
    group.bench_function("std_net_floor", |b| b.iter(&mut floor));
    bench_client(&mut group, &rt, "full", full.clone());
    bench_client(&mut group, &rt, "bare", bare);
    bench_client(&mut group, &rt, "multiplex", multiplex);

    group.throughput(Throughput::Elements(64));
    group.bench_function("64_tasks", |b| {
        b.iter_custom(|iters| {
            // 64 tasks, each sending one GET at a time through its clone of
            // one client: `iters` rounds of 64 requests in all.
            let client = full.clone();
            rt.block_on(async move {
                let started = Instant::now();
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let client = client.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                client.get("key").await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kv_put");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential/full", |b| {
        b.iter_custom(|iters| {
            let client = full.clone();
            timed(&rt, iters, move || {
                let client = client.clone();
                async move { client.put("key", vec![b'x'; 64]).await.unwrap() }
            })
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("pipelined/full/64", |b| {
        b.iter_custom(|iters| {
            let client = full.clone();
            timed(&rt, iters, move || {
                let client = client.clone();
                async move {
                    let pairs = (0..64).map(|i| (format!("key{i}"), vec![b'x'; 64]));
                    client.put_many(pairs).await.unwrap()
                }
            })
        })
    });
    group.finish();

    rt.block_on(server.shutdown()).unwrap();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
