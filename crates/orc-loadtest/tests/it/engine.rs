//! The closed and open models against the tiny server: request counts, weights, errors by
//! kind, coordinated omission, and every way a test ends.

use std::time::Duration;

use http::Method;
use orc_loadtest::{Action, LoadTestOptions, Report, Scenario, Target, Template, ThinkTime};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::server::Tiny;

fn get(name: &str, path: &str) -> Scenario {
    Scenario::request(name, Method::GET, path, None)
}

async fn run(options: LoadTestOptions) -> Report {
    options
        .build()
        .await
        .unwrap()
        .run(CancellationToken::new(), None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_sends_the_requests_asked_for_in_proportion_to_the_weights() {
    let tiny = Tiny::start().await;
    let echo = Scenario {
        name: "echo".into(),
        weight: 1,
        action: Action::Request {
            method: Method::POST,
            path: "/echo".into(),
            body: Some(Template::new(&json!({"n": "{{ i }}", "user": "u{{ user }}"})).unwrap()),
            expect_status: Some(200),
        },
    };
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("fast", "/fast").weight(3), echo],
        400,
    );
    options.users = 4;
    let report = run(options).await;

    assert_eq!(report.total.requests, 400);
    assert_eq!(tiny.hits(), 400);
    assert_eq!(report.total.errors, 0, "{:?}", report.total.errors_by_kind);
    let fast = &report.scenarios[0];
    assert_eq!(fast.name, "fast");
    assert_eq!(fast.weight, 3);
    let share = fast.stats.requests as f64 / 400.0;
    assert!(
        (0.65..=0.85).contains(&share),
        "fast took {share} of the requests, not about 0.75"
    );
    assert_eq!(
        fast.stats.requests + report.scenarios[1].stats.requests,
        report.total.requests
    );
    let l = report.total.latency_ms;
    assert!(
        l.min > 0.0 && l.min <= l.p50 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    assert!(report.total.requests_per_second > 0.0);
    let over_time: u64 = report.timeline.points.iter().map(|p| p.requests).sum();
    assert_eq!(over_time, 400);
    assert!(report.overhead.cpu_seconds > 0.0, "{:?}", report.overhead);
    assert!(report.stopped.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_kind() {
    let tiny = Tiny::start().await;
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("fail", "/fail"), get("slow", "/slow")],
        12,
    );
    options.users = 3;
    options.timeout = Duration::from_millis(100);
    let report = run(options).await;
    assert_eq!(report.total.requests, 12);
    assert_eq!(report.total.errors, 12);
    let fail = &report.scenarios[0].stats.errors_by_kind;
    let slow = &report.scenarios[1].stats.errors_by_kind;
    assert_eq!(fail.keys().collect::<Vec<_>>(), ["status 503"], "{fail:?}");
    assert_eq!(slow.keys().collect::<Vec<_>>(), ["timeout"], "{slow:?}");
    assert_eq!(report.total.error_rate, 1.0);
    assert_eq!(
        report.scenarios[1].stats.first_errors["timeout"],
        "no answer within 100ms"
    );

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = run(LoadTestOptions::new(
        Target::Url(format!("http://127.0.0.1:{port}")),
        vec![get("nobody", "/")],
        3,
    ))
    .await;
    assert_eq!(
        report.total.errors_by_kind.get("connect"),
        Some(&3),
        "{:?}",
        report.total.errors_by_kind
    );
    // What the client said, without the target's URL.
    let said = &report.total.first_errors["connect"];
    assert!(said.contains("refused"), "{said}");
    assert!(!said.contains(&port.to_string()), "{said}");
}

/// At 100 requests/s with one request in flight, a 300 ms stall of the first answer delays the
/// ~30 requests due meanwhile: their latency counts from when they were due, not when they
/// could leave, so the stall shows in them (a closed-model measurement would show one slow
/// request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_counts_latency_from_when_each_request_was_due() {
    let tiny = Tiny::start().await;
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("stall", "/stall")],
        1,
    );
    options.requests = None;
    options.duration = Some(Duration::from_secs(1));
    options.rate = Some(100.0);
    let report = run(options).await;
    let total = &report.total;
    assert!(
        (80..=101).contains(&total.requests),
        "{} requests",
        total.requests
    );
    assert_eq!(total.errors, 0);
    let delayed = total.histogram.count_between(100_000, u64::MAX);
    assert!(
        delayed >= 15,
        "only {delayed} requests over 100 ms: {:?}",
        total.latency_ms
    );
    assert!(total.latency_ms.max >= 290.0, "{:?}", total.latency_ms);
    assert!(
        matches!(report.model, orc_loadtest::LoadModel::Open { rate, max_in_flight: 1, .. } if rate == 100.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_ends_at_its_duration_its_hard_cap_or_when_cancelled() {
    let tiny = Tiny::start().await;
    // Duration: two users thinking 50 ms between requests for half a second.
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("fast", "/fast")],
        1,
    );
    options.requests = None;
    options.duration = Some(Duration::from_millis(500));
    options.users = 2;
    options.think_time = ThinkTime::Fixed(Duration::from_millis(50));
    let report = run(options).await;
    assert!(report.elapsed_seconds < 1.5, "{}", report.elapsed_seconds);
    assert!(
        (10..=24).contains(&report.total.requests),
        "{}",
        report.total.requests
    );
    assert!(report.stopped.is_none());

    // The hard cap: 100 slow requests asked for, 400 ms allowed.
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("slow", "/slow")],
        100,
    );
    options.max_duration = Duration::from_millis(400);
    let report = run(options).await;
    assert_eq!(report.stopped.as_deref(), Some("max_duration"));
    assert!(report.elapsed_seconds < 1.0, "{}", report.elapsed_seconds);
    assert!(report.total.requests <= 2, "{}", report.total.requests);

    // Cancelled: no new request starts; the test reports what it did.
    let mut options = LoadTestOptions::new(
        Target::Url(tiny.base.clone()),
        vec![get("fast", "/fast")],
        1,
    );
    options.requests = None;
    options.duration = Some(Duration::from_secs(30));
    options.think_time = ThinkTime::Fixed(Duration::from_millis(10));
    let test = options.build().await.unwrap();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::watch::channel(orc_loadtest::Progress::default());
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        })
    };
    let report = test.run(cancel, Some(tx)).await;
    stopper.await.unwrap();
    assert_eq!(report.stopped.as_deref(), Some("cancelled"));
    assert!(report.elapsed_seconds < 2.0, "{}", report.elapsed_seconds);
    assert!(report.total.requests > 0);
    // The last progress sent counts every request.
    assert_eq!(rx.borrow_and_update().requests, report.total.requests);
}

#[tokio::test]
async fn options_that_cannot_make_a_test_are_refused() {
    let mut options = LoadTestOptions::new(Target::InProcess, vec![get("x", "/")], 1);
    let err = options.clone().build().await.unwrap_err().to_string();
    assert!(err.contains("needs a runtime"), "{err}");
    options.requests = None;
    let err = options.clone().build().await.unwrap_err().to_string();
    assert!(err.contains("must end"), "{err}");
    options.requests = Some(1);
    options.scenarios.clear();
    let err = options.build().await.unwrap_err().to_string();
    assert!(err.contains("no scenario"), "{err}");
}
