//! Scheduler and template overhead per step.
//!
//! Every step is a tool-less `action: echo` whose message is a template, so a run measures
//! the ready queue, dependency bookkeeping, template rendering and result records, and no
//! disk or process I/O. Plans are compiled once, outside the measurement. Throughput is in
//! steps, so criterion reports the time per step.
//!
//! Shapes mirror `orc bench`'s generated pipelines (`orc_bench::generate`):
//! - `chain/N`: step i echoes `"{{ s<i-1>.result | length }}>s<i>"`, so it waits for and
//!   reads the previous step (the length keeps every message the same size, so the cost per
//!   step does not grow along the chain);
//! - `fanout/N`: N independent echoes and one `join` templating every one's result.

#![allow(missing_docs)]

use std::fmt::Write as _;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orc_pipeline::Compiled;

fn ids(prefix: char, n: usize) -> Vec<String> {
    let width = 4.max(n.saturating_sub(1).to_string().len());
    (0..n).map(|i| format!("{prefix}{i:0width$}")).collect()
}

fn header(pid: &str) -> String {
    format!("id: {pid}\nname: {pid}\nsteps:\n")
}

fn echo(out: &mut String, id: &str, message: &str, deps: &[String]) {
    let _ = write!(
        out,
        "  - id: {id}\n    action: echo\n    parameters:\n      message: \"{message}\"\n"
    );
    if !deps.is_empty() {
        out.push_str("    dependencies:\n");
        for d in deps {
            let _ = writeln!(out, "      - {d}");
        }
    }
}

fn chain(n: usize) -> String {
    let ids = ids('s', n);
    let mut out = header(&format!("echo_chain_{n}"));
    for (i, id) in ids.iter().enumerate() {
        if i == 0 {
            echo(&mut out, id, "start", &[]);
        } else {
            let prev = &ids[i - 1];
            let message = format!("{{{{ {prev}.result | length }}}}>{id}");
            echo(&mut out, id, &message, std::slice::from_ref(prev));
        }
    }
    out
}

fn fanout(n: usize) -> String {
    let ids = ids('f', n);
    let mut out = header(&format!("echo_fanout_{n}"));
    for (i, id) in ids.iter().enumerate() {
        echo(&mut out, id, &format!("v{i}"), &[]);
    }
    let message = ids
        .iter()
        .map(|id| format!("{{{{ {id}.result }}}}"))
        .collect::<Vec<_>>()
        .join(",");
    echo(&mut out, "join", &message, &ids);
    out
}

fn compiled(text: &str) -> Compiled {
    match orc_pipeline::compile(text, &orc_engine::catalog()) {
        Ok(c) => c,
        Err(diags) => panic!("generated pipeline does not compile: {diags:?}"),
    }
}

fn run(rt: &tokio::runtime::Runtime, plan: &Compiled) -> bool {
    let opts = orc_engine::Options {
        execution_id: Some("bench".to_string()),
        ..orc_engine::Options::default()
    };
    match rt.block_on(orc_engine::run(plan.clone(), opts)) {
        Ok(result) => result.success,
        Err(e) => panic!("run did not start: {e}"),
    }
}

/// Writes the YAML text of a pipeline of N steps.
type Generator = fn(usize) -> String;

fn bench_schedule(c: &mut Criterion) {
    // The same runtime the `orc` binary uses.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);
    let cases: [(&str, Generator, usize); 3] = [
        ("chain", chain, 1_000),
        ("fanout", fanout, 1_000),
        ("fanout", fanout, 10_000),
    ];
    for (shape, generate, n) in cases {
        let plan = compiled(&generate(n));
        assert!(run(&rt, &plan), "{shape} {n}: a step failed");
        // Fan-outs run one more step, the join.
        let steps = plan.plan.steps.len() as u64;
        group.throughput(Throughput::Elements(steps));
        group.bench_with_input(BenchmarkId::new(shape, n), &plan, |b, plan| {
            b.iter(|| run(&rt, plan));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_schedule);
criterion_main!(benches);
