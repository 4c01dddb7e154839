//! How many requests per second the generator sends to a trivial loopback endpoint (a tiny
//! axum server in this process, on its own one-thread runtime), closed model, 64 users, keep-
//! alive connections. The target: at least 20,000 per second on the 2-core machine, so that
//! `orc loadtest` is never the bottleneck when it measures `orc serve`.
//!
//! `cargo bench -p orc-loadtest --bench loopback`: criterion prints the throughput (elements are
//! requests) of each sample, a test of 50,000 requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_docs
)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orc_loadtest::{LoadTestOptions, Scenario, Target};
use tokio_util::sync::CancellationToken;

const REQUESTS: u64 = 50_000;

fn loopback(c: &mut Criterion) {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    server.spawn(async move { axum::serve(listener, app).await });

    let generator = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for users in [16, 64] {
        let mut options = LoadTestOptions::new(
            Target::Url(base.clone()),
            vec![Scenario::request("trivial", http::Method::GET, "/", None)],
            REQUESTS,
        );
        options.users = users;
        let test = generator.block_on(options.build()).unwrap();
        let mut group = c.benchmark_group("loopback");
        group.throughput(Throughput::Elements(REQUESTS));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(20));
        group.bench_function(format!("closed_{users}_users"), |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let report = generator.block_on(test.run(CancellationToken::new(), None));
                    assert_eq!(report.total.errors, 0, "{:?}", report.total.errors_by_kind);
                    assert_eq!(report.total.requests, REQUESTS);
                    took += Duration::from_secs_f64(report.elapsed_seconds);
                }
                took
            });
        });
        group.finish();
        let report = generator.block_on(test.run(CancellationToken::new(), None));
        eprintln!(
            "closed, {users} users: {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms; whole process {:.1} µs CPU per request (generator and server)",
            report.total.requests_per_second,
            report.total.latency_ms.p50,
            report.total.latency_ms.p99,
            report.overhead.cpu_us_per_request
        );
    }
}

criterion_group!(benches, loopback);
criterion_main!(benches);
