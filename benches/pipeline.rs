//! Pipelined vs sequential requests against an in-process KV server on
//! 127.0.0.1: what the multiplexer buys over one request at a time.
//!
//! `cargo bench --bench pipeline`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::runtime::Runtime;
use wirestack::kv::{self, KvClient, Request, ServerConfig};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = runtime();
    let (server, client) = rt.block_on(async {
        let server = kv::spawn_server("127.0.0.1:0", ServerConfig::default())
            .await
            .unwrap();
        let client = KvClient::connect(server.local_addr()).await.unwrap();
        client.put("key", vec![b'x'; 64]).await.unwrap();
        (server, client)
    });

    let mut group = c.benchmark_group("kv_get");
    group.measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(1));
    group.bench_function("std_net_floor", |b| {
        // The loopback floor: a blocking client with no runtime, no
        // multiplexer and a hand-made frame, against the same server.
        let mut socket = std::net::TcpStream::connect(server.local_addr()).unwrap();
        socket.set_nodelay(true).unwrap();
        let mut frame = vec![0x02u8];
        frame.extend_from_slice(&3u32.to_le_bytes());
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.extend_from_slice(b"key");
        let mut answer = [0u8; 5 + 64];
        b.iter(|| {
            socket.write_all(&frame).unwrap();
            socket.read_exact(&mut answer).unwrap();
            assert_eq!(answer[0], 0);
        })
    });
    group.bench_function("sequential", |b| {
        b.to_async(&rt)
            .iter(|| async { client.get("key").await.unwrap() })
    });

    for depth in [16u64, 64, 1000] {
        group.throughput(Throughput::Elements(depth));
        group.bench_with_input(BenchmarkId::new("pipelined", depth), &depth, |b, &depth| {
            b.to_async(&rt).iter(|| async {
                let requests = (0..depth).map(|_| Request::Get { key: "key".into() });
                client.call_many(requests).await.unwrap()
            })
        });
    }

    group.throughput(Throughput::Elements(64));
    group.bench_function("64_tasks_one_client", |b| {
        b.to_async(&rt).iter(|| async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move { client.get("key").await.unwrap() })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kv_put");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential", |b| {
        b.to_async(&rt)
            .iter(|| async { client.put("key", vec![b'x'; 64]).await.unwrap() })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("pipelined/64", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .put_many((0..64).map(|i| (format!("key{i}"), vec![b'x'; 64])))
                .await
                .unwrap()
        })
    });
    group.finish();

    rt.block_on(server.shutdown());
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
