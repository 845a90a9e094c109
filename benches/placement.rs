//! What placing a key costs, by placement and number of endpoints: the
//! work a [`Router`](wirestack::route::Router) does for every request
//! before anything else, measured alone.
//!
//! `cargo bench --bench placement`
//!
//! * `rendezvous/N`: [`Rendezvous::pick`] over N endpoints (the default
//!   placement: one score per endpoint);
//! * `table/N`: [`RendezvousTable::pick`] over N endpoints (one hash and
//!   one table read);
//! * `ketama/N`: [`Ketama::pick`] over N endpoints (an MD5 of the key and a
//!   binary search of 160·N points).
//!
//! Each iteration places 1,000 keys shaped as `kv bench`'s
//! (`key:000000000123`), so a figure per iteration is nanoseconds per
//! thousand keys.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use wirestack::route::{Ketama, Rendezvous, RendezvousTable};

const KEYS: usize = 1_000;

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:7878", i / 256, i % 256))
        .collect()
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS as u64)
        .map(|i| format!("key:{:012}", i.wrapping_mul(7919) % 100_000).into_bytes())
        .collect()
}

fn placement(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(KEYS as u64));
    for n in [1, 8, 100] {
        let rendezvous = Rendezvous::new(names(n));
        group.bench_with_input(BenchmarkId::new("rendezvous", n), &rendezvous, |b, ring| {
            b.iter(|| keys.iter().map(|key| ring.pick(black_box(key))).sum::<usize>())
        });
        let table = RendezvousTable::new(names(n));
        group.bench_with_input(BenchmarkId::new("table", n), &table, |b, ring| {
            b.iter(|| keys.iter().map(|key| ring.pick(black_box(key))).sum::<usize>())
        });
        let ketama = Ketama::new(names(n));
        group.bench_with_input(BenchmarkId::new("ketama", n), &ketama, |b, ring| {
            b.iter(|| keys.iter().map(|key| ring.pick(black_box(key))).sum::<usize>())
        });
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
