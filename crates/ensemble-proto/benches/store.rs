//! A table replica's store: applying inserts, cutting a snapshot into join chunks, and building
//! an empty replica from them. Records are shaped as `ensemble bench tables` writes them (keys
//! like `m12-345`, 16-byte values, encoded as the typed API encodes strings).
//!
//! `cargo bench -p ensemble-proto --bench store`

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ensemble_proto::table::{Kind, Op, Store, Version};

fn encoded(s: &str) -> Bytes {
    Bytes::from(postcard::to_allocvec(s).expect("a string encodes"))
}

fn insert(key: String, time: u64) -> Op {
    Op::Insert {
        key: encoded(&key),
        value: encoded(&"x".repeat(16)),
        version: Version { time, origin: 7 },
    }
}

/// A set holding `n` records of the bench's concurrent phase (`c1-2`, ...).
fn store_of(n: u64) -> Store {
    let mut store = Store::new(Kind::Set);
    let now = Instant::now();
    for i in 0..n {
        store.apply(
            now,
            &insert(format!("c{}-{i}", i % 100), i + 1),
            &mut Vec::new(),
        );
    }
    store
}

fn apply(c: &mut Criterion) {
    // Each iteration inserts a new batch of 1,000 keys (as one `insert_many` does) into a set
    // of 60,000 to 260,000 records, the sizes `ensemble bench tables` goes through.
    c.bench_function("apply 1,000 new keys to a set of 60,000-260,000", |b| {
        let mut store = store_of(60_000);
        let mut batch = 0u64;
        let now = Instant::now();
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                batch += 1;
                if batch.is_multiple_of(200) {
                    store = store_of(60_000);
                }
                let ops: Vec<Op> = (0..1000)
                    .map(|i| insert(format!("m{batch}-{i}"), 1_000_000 + batch * 1000 + i))
                    .collect();
                let t = Instant::now();
                for op in &ops {
                    store.apply(now, op, &mut Vec::new());
                }
                spent += t.elapsed();
            }
            spent
        });
    });
}

fn join(c: &mut Criterion) {
    let source = store_of(100_000);
    c.bench_function("cut 100,000 records into join chunks", |b| {
        b.iter(|| source.chunks(256 * 1024))
    });
    c.bench_function("build an empty replica from 100,000 records", |b| {
        b.iter_batched(
            || source.chunks(256 * 1024),
            |chunks| {
                let mut store = Store::new(Kind::Set);
                store.force_all(Instant::now(), chunks, &mut Vec::new());
                store
            },
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, apply, join);
criterion_main!(benches);
