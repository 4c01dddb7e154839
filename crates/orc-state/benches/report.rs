//! The daily report and the dashboard's series on a SQLite store holding a million model
//! requests (`cargo bench -p orc-state --bench report`; target: the daily report under 500 ms).
//!
//! The store is filled once, before anything is timed, with `ORC_BENCH_REQUESTS` requests
//! (default 1,000,000) spread evenly over `ORC_BENCH_DAYS` days (default 10), written in
//! batches of 10,000 (one transaction each) the way the runtime's recorder writes them:
//! three models, five pipelines, a tenth of them cache hits, one in fifty failed, log-normal-ish
//! latencies, 200 runs a day in the runs table, and lookups of three other caches in every
//! minute (what the series and the report read beside the requests). Then:
//!
//! - `daily report (1 of N days)`: [`Store::request_stats`] of one day, what
//!   `GET /v1/reports/daily` and `orc report daily` read;
//! - `series 24 h by the minute`: [`Store::request_series`] of that day by 60 s steps (1440
//!   points), the dashboard's densest series;
//! - `daily report (all in one day)`: the worst case, every request on the same day (a second
//!   store, filled the same way);
//! - `record 1 request`, `record a batch of 100 requests`: [`Store::record_model_metrics`] into
//!   that store, the rows and what they add to the hourly and per-minute sums.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use orc_state::{CacheLookups, CallSource, ModelMetric, NewRun, StateOptions, Store};
use serde_json::json;

/// 2026-03-01T00:00:00Z.
const START: u64 = 1_772_323_200;
const DAY: u64 = 86_400;
const BATCH: usize = 10_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START) + Duration::from_millis(secs)
}

/// The `i`th request of `n`, spread over `days`.
#[allow(clippy::cast_precision_loss)]
fn request(i: u64, n: u64, days: u64) -> ModelMetric {
    let span_ms = days * DAY * 1000;
    let at_ms = i * span_ms / n.max(1);
    let model = ["small", "medium", "large"][(i % 3) as usize];
    let pipeline = ["research", "summarize", "triage", "extract", "translate"][(i % 5) as usize];
    let cached = i.is_multiple_of(10);
    let failed = i % 50 == 7;
    // A spread of latencies from ~50 ms to ~5 s.
    let latency_ms = if cached {
        0.3
    } else {
        50.0 * (1.0 + (i.wrapping_mul(2_654_435_761) % 1000) as f64 / 10.0)
    };
    ModelMetric {
        model: model.to_owned(),
        provider: if model == "large" {
            "anthropic"
        } else {
            "openai"
        }
        .to_owned(),
        at: at(at_ms),
        latency_ms,
        success: !failed,
        input_tokens: if cached { 0 } else { 800 },
        output_tokens: if cached { 0 } else { 120 },
        cost: if cached || failed { 0.0 } else { 0.0004 },
        source: if cached {
            CallSource::Cache
        } else {
            CallSource::Upstream
        },
        cache_hit: Some(cached),
        error_kind: failed.then(|| ["timeout", "rate_limited"][(i % 2) as usize].to_owned()),
        run_id: (!i.is_multiple_of(4)).then(|| format!("run-{}", i / 40)),
        pipeline_id: (!i.is_multiple_of(4)).then(|| pipeline.to_owned()),
    }
}

/// A SQLite store in `dir` with `n` requests over `days` days and 200 runs a day.
async fn fill(dir: &std::path::Path, n: u64, days: u64) -> Store {
    let url = format!("sqlite://{}", dir.join("state.db").display());
    let store = Store::open(
        &url,
        StateOptions {
            query_timeout: Duration::from_secs(600),
            ..StateOptions::default()
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        batch.push(request(i, n, days));
        if batch.len() == BATCH {
            store.record_model_metrics(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.record_model_metrics(&batch).await.unwrap();
    // The other caches' lookups: every minute of the span, three caches, written as the
    // runtime writes them (a minute's worth at a time here, to fill faster).
    let mut lookups = Vec::with_capacity(BATCH);
    for minute in 0..days * DAY / 60 {
        for (k, cache) in ["step", "compile", "status"].into_iter().enumerate() {
            lookups.push(CacheLookups {
                cache: cache.to_owned(),
                at: at(minute * 60_000),
                hits: minute % 7 + k as u64,
                misses: minute % 3,
            });
        }
        if lookups.len() >= BATCH {
            store.record_cache_lookups(&lookups).await.unwrap();
            lookups.clear();
        }
    }
    store.record_cache_lookups(&lookups).await.unwrap();
    for day in 0..days {
        for r in 0..200 {
            store
                .create_run(&NewRun {
                    run_id: format!("run-{day}-{r}"),
                    pipeline_id: ["research", "summarize", "triage"][r % 3].to_owned(),
                    pipeline_path: "p.yaml".to_owned(),
                    pipeline_hash: "h".to_owned(),
                    inputs: json!({}),
                    started_at: at(day * DAY * 1000 + r as u64 * 400_000),
                })
                .await
                .unwrap();
        }
    }
    println!(
        "filled {n} requests over {days} day(s) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = env("ORC_BENCH_REQUESTS", 1_000_000);
    let days = env("ORC_BENCH_DAYS", 10).max(1);
    let day = (at(0) + Duration::from_secs(DAY * (days / 2)), DAY);
    let (since, until) = (day.0, day.0 + Duration::from_secs(day.1));

    let dir = tempfile::tempdir().unwrap();
    let store = tokio.block_on(fill(dir.path(), n, days));
    let report = tokio.block_on(store.request_stats(since, until)).unwrap();
    println!(
        "one day: {} requests, {} runs, p95 {:?} ms",
        report.requests, report.runs, report.latency.p95_ms
    );
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("daily report (1 of {days} days)"), |b| {
        b.to_async(&tokio)
            .iter(|| async { store.request_stats(since, until).await.unwrap() });
    });
    group.bench_function("series 24 h by the minute", |b| {
        b.to_async(&tokio).iter(|| async {
            store
                .request_series(since, until, Duration::from_secs(60))
                .await
                .unwrap()
        });
    });
    drop(store);

    let busy = tempfile::tempdir().unwrap();
    let store = tokio.block_on(fill(busy.path(), n, 1));
    let (since, until) = (at(0), at(DAY * 1000));
    group.bench_function("daily report (all in one day)", |b| {
        b.to_async(&tokio)
            .iter(|| async { store.request_stats(since, until).await.unwrap() });
    });
    // What recording costs, into the day's store: one request alone (the runtime's recorder
    // when requests are sparse) and a batch of 100 (when they come faster than it writes).
    let store = &store;
    let mut i = 0;
    group.bench_function("record 1 request", |b| {
        b.to_async(&tokio).iter(|| {
            i += 7919;
            let m = request(i % n, n, 1);
            async move { store.record_model_metric(&m).await.unwrap() }
        });
    });
    group.bench_function("record a batch of 100 requests", |b| {
        b.to_async(&tokio).iter(|| {
            let batch: Vec<ModelMetric> = (0..100)
                .map(|_| {
                    i += 7919;
                    request(i % n, n, 1)
                })
                .collect();
            async move { store.record_model_metrics(&batch).await.unwrap() }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
