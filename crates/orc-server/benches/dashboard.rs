//! The dashboard's calls on a store with 100,000 runs (`cargo bench -p orc-server --bench
//! dashboard`): each request through the service's router (`oneshot`, no socket), so the
//! figure is the handler and the store, the page's own cost.
//!
//! - `runs?limit=50`: the runs list's first page (what the page polls every 2 s);
//! - `runs?status=failed&limit=50`, `runs?pipeline=p7&limit=50`: the list's filters;
//! - `runs/{id}/graph`: the run page's graph of a run in the middle of the store;
//! - `stats/series`: the overview's data, the last hour by the minute (the store's requests
//!   and caches' lookups, after the runtime's recorder is flushed);
//! - `/`: the page itself.
//!
//! Target: each under 100 ms. Measured on the 2-core build machine (shared with other builds),
//! 100,000 runs, `--profile dev` (orc's crates unoptimised, dependencies at opt-level 1: an
//! upper bound of what a release binary does), criterion's median:
//!
//! | request | median |
//! |---|---|
//! | `GET /v1/runs?limit=50` | 1.47 ms |
//! | `GET /v1/runs?status=failed&limit=50` | 1.31 ms |
//! | `GET /v1/runs?pipeline=p7&limit=50` | 1.58 ms |
//! | `GET /v1/runs/{id}/graph` | 0.39 ms |
//! | `GET /` | 0.03 ms |
//!
//! The list reads one page through the `(status|pipeline_id, started_at)` indexes with a LIMIT
//! and sums the page's costs in one query by `steps (run_id, …)`; nothing grows with the store. `ORC_BENCH_RUNS` sets the number of runs (default 100,000); each
//! has one priced checkpoint, so the list sums costs as it does for real runs. The store is a
//! SQLite file in a temporary directory, filled once per process through the store's API.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use orc_runtime::config::Config;
use orc_runtime::{RuntimeOptions, Source, StartOptions};
use orc_state::{Checkpoint, NewRun, RunState};
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const PIPELINE: &str = "id: p0\nname: Bench\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: one }\n  - id: b\n    action: echo\n    parameters: { message: \"{{ a.result }}\" }\n    dependencies: [a]\n";

fn dashboard(c: &mut Criterion) {
    let runs: usize = std::env::var("ORC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (app, middle) = rt.block_on(async {
        let runtime = RuntimeOptions {
            config: Config::default(),
            state_url: format!("sqlite://{}", dir.path().join("state.db").display()),
            data_dir: dir.path().join("data"),
            queue: None,
            sandbox: None,
        }
        .build()
        .await
        .unwrap();
        // One real run: its kept pipeline text is what every synthetic run points at.
        let source = Source::Text {
            name: "bench.yaml".into(),
            text: PIPELINE.into(),
        };
        let handle = runtime
            .start(source, Map::new(), StartOptions::default())
            .await
            .unwrap();
        handle.wait().await.unwrap();
        let real = runtime
            .store()
            .run(handle.run_id())
            .await
            .unwrap()
            .unwrap();
        let store = runtime.store().clone();
        let started = std::time::Instant::now();
        let start = SystemTime::now() - Duration::from_secs(runs as u64);
        let mut tasks = tokio::task::JoinSet::new();
        let per_task = runs.div_ceil(32);
        for t in 0..32 {
            let store = store.clone();
            let (path, hash) = (real.pipeline_path.clone(), real.pipeline_hash.clone());
            tasks.spawn(async move {
                for i in (t * per_task)..((t + 1) * per_task).min(runs) {
                    let run_id = format!("bench_{i:06}");
                    store
                        .create_run(&NewRun {
                            run_id: run_id.clone(),
                            pipeline_id: format!("p{}", i % 10),
                            pipeline_path: path.clone(),
                            pipeline_hash: hash.clone(),
                            inputs: json!({ "n": i }),
                            started_at: start + Duration::from_secs(i as u64),
                        })
                        .await
                        .unwrap();
                    store
                        .append(
                            &run_id,
                            &[Checkpoint {
                                step_id: "a".into(),
                                status: "completed".into(),
                                envelope: json!({ "id": "a", "status": "completed", "value": { "result": "one" } }),
                                started_at: None,
                                completed_at: Some(SystemTime::now()),
                                attempts: 1,
                                model: Some("m".into()),
                                usage: None,
                                cost: Some(0.001),
                            }],
                        )
                        .await
                        .unwrap();
                    let state = if i % 50 == 0 {
                        RunState::Failed
                    } else {
                        RunState::Completed
                    };
                    store.finish_run(&run_id, state, None).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        eprintln!(
            "dashboard bench: {runs} runs stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let options = orc_server::ServerOptions {
            max_concurrent_requests: 64,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(1),
            tokens: orc_server::Tokens::default(),
            rate_limit: None,
        };
        let app = orc_server::app(runtime, &options, CancellationToken::new())
            .await
            .unwrap();
        (app, format!("bench_{:06}", runs / 2))
    });
    let mut group = c.benchmark_group(format!("dashboard {runs} runs"));
    group.sample_size(30);
    let graph = format!("/v1/runs/{middle}/graph");
    for uri in [
        "/v1/runs?limit=50",
        "/v1/runs?status=failed&limit=50",
        "/v1/runs?pipeline=p7&limit=50",
        graph.as_str(),
        "/v1/stats/series",
        "/",
    ] {
        group.bench_function(uri.replace(&middle, "{id}"), |b| {
            b.to_async(&rt).iter(|| async {
                let response = app
                    .clone()
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{uri}");
                response.into_body().collect().await.unwrap().to_bytes()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
