//! Compile time of large generated pipelines.
//!
//! The YAML is `orc bench`'s generated chains and fan-outs (`orc_bench::generate`), so the
//! bench needs no files.
//! Throughput is in steps, so criterion also reports the cost per step.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use orc_bench::generate::{chain, fanout};

/// Writes the YAML text of a pipeline of N steps.
type Generator = fn(usize) -> String;

fn bench_compile(c: &mut Criterion) {
    let catalog = orc_pipeline::Catalog::new().with_tool("filesystem", &["read", "write"]);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let shapes: [(&str, Generator); 2] = [("chain", chain), ("fanout", fanout)];
    for (shape, generate) in shapes {
        for n in [1_000, 10_000] {
            let text = generate(n);
            if let Err(diags) = orc_pipeline::compile(&text, &catalog) {
                panic!("generated {shape} {n} does not compile: {diags:?}");
            }
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(shape, n), &text, |b, text| {
                b.iter(|| orc_pipeline::compile(black_box(text), &catalog).is_ok());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
