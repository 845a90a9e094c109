//! Encode and decode throughput of the KV codecs, without any I/O.
//!
//! `cargo bench --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder};
use wirestack::kv::{ClientCodec, Request, Response, ServerCodec};

const BATCH: usize = 1_000;

fn requests(value_size: usize) -> Vec<Request> {
    let value = Bytes::from(vec![b'x'; value_size]);
    (0..BATCH)
        .map(|i| Request::Put {
            key: Bytes::from(format!("key:{i:012}")),
            value: value.clone(),
        })
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv_codec");
    for value_size in [64usize, 4096] {
        let batch = requests(value_size);
        let mut encoded = BytesMut::new();
        for request in &batch {
            ClientCodec::new().encode(request, &mut encoded).unwrap();
        }
        group.throughput(Throughput::Elements(BATCH as u64));

        group.bench_with_input(
            BenchmarkId::new("encode_request", value_size),
            &batch,
            |b, batch| {
                let mut codec = ClientCodec::new();
                let mut buf = BytesMut::with_capacity(encoded.len());
                b.iter(|| {
                    buf.clear();
                    for request in batch {
                        codec.encode(request, &mut buf).unwrap();
                    }
                    buf.len()
                })
            },
        );

        group.bench_with_input(
            BenchmarkId::new("decode_request", value_size),
            &encoded,
            |b, encoded| {
                let mut codec = ServerCodec::new();
                b.iter(|| {
                    let mut buf = encoded.clone();
                    let mut frames = 0;
                    while let Some(frame) = codec.decode(&mut buf).unwrap() {
                        criterion::black_box(frame);
                        frames += 1;
                    }
                    assert_eq!(frames, BATCH);
                })
            },
        );

        let responses: Vec<Response> = (0..BATCH)
            .map(|_| Response::ok(Bytes::from(vec![b'y'; value_size])))
            .collect();
        let mut encoded_responses = BytesMut::new();
        for response in &responses {
            ServerCodec::new()
                .encode(response.clone(), &mut encoded_responses)
                .unwrap();
        }
        group.bench_with_input(
            BenchmarkId::new("encode_response", value_size),
            &responses,
            |b, responses| {
                let mut codec = ServerCodec::new();
                let mut buf = BytesMut::with_capacity(encoded_responses.len());
                b.iter(|| {
                    buf.clear();
                    for response in responses {
                        codec.encode(response.clone(), &mut buf).unwrap();
                    }
                    buf.len()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decode_response", value_size),
            &encoded_responses,
            |b, encoded| {
                let mut codec = ClientCodec::new();
                b.iter(|| {
                    let mut buf = encoded.clone();
                    let mut frames = 0;
                    while let Some(frame) = codec.decode(&mut buf).unwrap() {
                        criterion::black_box(frame);
                        frames += 1;
                    }
                    assert_eq!(frames, BATCH);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
