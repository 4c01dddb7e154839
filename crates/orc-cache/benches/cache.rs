//! Cost of one cache read or write per backend, for values the size of a model response.
//!
//! `get_hit/memory` is the path every model-cache hit takes (target: a whole model-cache hit
//! under 20 µs at p50); the file backend adds a spawn_blocking and a file read. Each read is
//! driven by `block_on` on a current-thread runtime, which adds well under a microsecond.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use orc_cache::{Backend, Cache, CacheOptions};

/// A chat completion's worth of JSON-ish text.
fn response() -> Vec<u8> {
    r#"{"role":"assistant","content":"The answer is forty-two, as computed above."},"#
        .repeat(30)
        .into_bytes()
}

fn caches(dir: &std::path::Path) -> Vec<(&'static str, Cache)> {
    let open = |backend, compression| {
        Cache::open(CacheOptions {
            backend,
            compression,
            ..CacheOptions::default()
        })
        .unwrap()
    };
    vec![
        ("memory", open(Backend::Memory, false)),
        ("memory+zstd", open(Backend::Memory, true)),
        (
            "file",
            open(
                Backend::File {
                    dir: dir.to_path_buf(),
                },
                false,
            ),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let value = response();
    let key = b"openai|gpt-4o-mini|chat|{\"messages\":[...],\"temperature\":0}";

    let mut group = c.benchmark_group("get_hit");
    for (name, cache) in caches(dir.path()) {
        rt.block_on(cache.put(key, &value));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| rt.block_on(cache.get(key)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("put");
    for (name, cache) in caches(dir.path()) {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| rt.block_on(cache.put(key, &value)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
