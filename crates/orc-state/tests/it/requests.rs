//! The daily report's and the series' sums ([`Store::request_stats`], [`Store::request_series`]),
//! the same on every backend.

use std::time::{Duration, UNIX_EPOCH};

use orc_state::{CacheCounts, CacheLookups, CallSource, Error, ModelMetric, RunState};

use crate::support::{Harness, at, new_run};

/// A request `secs` after [`at`]`(0)`.
#[allow(clippy::too_many_arguments)]
fn request(
    model: &str,
    secs: u64,
    latency_ms: f64,
    cost: f64,
    source: CallSource,
    cache_hit: Option<bool>,
    error_kind: Option<&str>,
    run: Option<(&str, &str)>,
) -> ModelMetric {
    ModelMetric {
        model: model.to_owned(),
        provider: if model == "large" {
            "anthropic"
        } else {
            "openai"
        }
        .to_owned(),
        at: at(secs),
        latency_ms,
        success: error_kind.is_none(),
        input_tokens: if source == CallSource::Upstream {
            100
        } else {
            0
        },
        output_tokens: if source == CallSource::Upstream {
            10
        } else {
            0
        },
        cost,
        source,
        cache_hit,
        error_kind: error_kind.map(str::to_owned),
        run_id: run.map(|r| r.0.to_owned()),
        pipeline_id: run.map(|r| r.1.to_owned()),
    }
}

/// The day's requests: two runs' (one with cache hits, one with a rate-limited call) and three
/// of the API (two timed out); one request and one run on each side of the day.
async fn fill(h: &Harness) {
    use CallSource::{Cache, Upstream};
    let s = &h.store;
    let summarize = Some(("r1", "summarize"));
    let report = Some(("r2", "report"));
    let mut day = Vec::new();
    for i in 0..3 {
        day.push(request(
            "small",
            600 + i,
            100.0,
            0.01,
            Upstream,
            Some(false),
            None,
            summarize,
        ));
    }
    for i in 0..2 {
        day.push(request(
            "small",
            603 + i,
            1.0,
            0.0,
            Cache,
            Some(true),
            None,
            summarize,
        ));
    }
    day.push(request(
        "large",
        1200,
        1000.0,
        0.5,
        Upstream,
        Some(false),
        None,
        report,
    ));
    day.push(request(
        "large",
        1201,
        50.0,
        0.0,
        Upstream,
        Some(false),
        Some("rate_limit"),
        report,
    ));
    day.push(request(
        "small", 1800, 200.0, 0.02, Upstream, None, None, None,
    ));
    for i in 0..2 {
        day.push(request(
            "small",
            1801 + i,
            30_000.0,
            0.0,
            Upstream,
            None,
            Some("timeout"),
            None,
        ));
    }
    s.record_model_metrics(&day).await.unwrap();
    s.record_model_metrics(&[
        request("small", 86_400, 5.0, 9.0, Upstream, None, None, None),
        request("huge", 86_401, 5.0, 9.0, Upstream, None, None, None),
    ])
    .await
    .unwrap();
    for (id, pipeline, secs) in [
        ("r1", "summarize", 10),
        ("r2", "report", 20),
        ("r3", "old", 90_000),
    ] {
        s.create_run(&new_run(id, pipeline, secs)).await.unwrap();
    }
    s.finish_run("r2", RunState::Failed, None).await.unwrap();
}

fn near(got: Option<f64>, want: f64) {
    let got = got.unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() <= want * orc_state::LATENCY_ERROR_BOUND,
        "{got} is not within 2 % of {want}"
    );
}

fn same(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

pub(crate) async fn stats_sum_the_period(h: &Harness) {
    fill(h).await;
    let r = h.store.request_stats(at(0), at(86_400)).await.unwrap();
    assert_eq!((r.requests, r.errors), (10, 3));
    assert_eq!(
        r.errors_by_kind,
        [("timeout".to_owned(), 2), ("rate_limit".to_owned(), 1)]
    );
    assert_eq!((r.response_cache.hits, r.response_cache.misses), (2, 5));
    same(r.cost_usd, 0.55);
    same(r.run_cost_usd, 0.53);
    assert_eq!((r.input_tokens, r.output_tokens), (800, 80));
    assert_eq!((r.runs, r.runs_with_requests), (2, 2));
    assert_eq!(
        r.runs_by_status,
        [("failed".to_owned(), 1), ("running".to_owned(), 1)]
    );
    // Minute 1_700_000_580 s holds the five requests at 600–604 s.
    assert_eq!(
        r.peak_minute,
        Some((UNIX_EPOCH + Duration::from_secs(1_700_000_580), 5))
    );
    // 1, 1, 50, 100, 100, 100, 200, 1000, 30 000, 30 000 ms.
    same(r.latency.mean_ms.unwrap(), 61_552.0 / 10.0);
    near(r.latency.p50_ms, 100.0);
    near(r.latency.p95_ms, 30_000.0);
    near(r.latency.p99_ms, 30_000.0);
    let models: Vec<_> = r
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.provider.as_str(), m.calls, m.errors))
        .collect();
    assert_eq!(
        models,
        [("large", "anthropic", 2, 1), ("small", "openai", 8, 2)],
        "most expensive first"
    );
    same(r.models[0].cost_usd, 0.5);
    near(r.models[0].latency.p50_ms, 50.0);
    let pipelines: Vec<_> = r
        .pipelines
        .iter()
        .map(|p| (p.pipeline_id.as_str(), p.runs, p.requests))
        .collect();
    assert_eq!(pipelines, [("report", 1, 2), ("summarize", 1, 5)]);
    same(r.pipelines[1].cost_usd, 0.03);

    // Only the calls that went upstream teach the router.
    let upstream = h.store.model_metrics("small", at(0), 0).await.unwrap();
    assert_eq!(upstream.len(), 7);
    assert!(upstream.iter().all(|m| m.source == CallSource::Upstream));
    assert_eq!(upstream[0].at, at(86_400));
    assert_eq!(upstream[1].error_kind.as_deref(), Some("timeout"));

    // A period without requests.
    let empty = h
        .store
        .request_stats(at(200_000), at(300_000))
        .await
        .unwrap();
    assert_eq!((empty.requests, empty.runs), (0, 0));
    assert_eq!(empty.latency.p50_ms, None);
    assert_eq!(empty.peak_minute, None);
    assert!(empty.models.is_empty());
}

pub(crate) async fn series_have_a_point_per_step(h: &Harness) {
    fill(h).await;
    let points = h
        .store
        .request_series(at(0), at(3600), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(points.len(), 6);
    assert_eq!(points[3].at, at(1800));
    let counts: Vec<_> = points.iter().map(|p| (p.requests, p.errors)).collect();
    assert_eq!(counts, [(0, 0), (5, 0), (2, 1), (3, 2), (0, 0), (0, 0)]);
    assert_eq!(points[0].latency.p50_ms, None);
    near(points[1].latency.p50_ms, 100.0);
    near(points[2].latency.p95_ms, 1000.0);
    assert_eq!(
        (
            points[1].response_cache.hits,
            points[1].response_cache.misses
        ),
        (2, 3)
    );
    same(points[2].cost_usd, 0.5);
    // A step that does not divide the period: the last slot is shorter.
    let points = h
        .store
        .request_series(at(0), at(1000), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1].requests, 5);
}

pub(crate) async fn bad_periods_are_refused(h: &Harness) {
    let s = &h.store;
    let refused = |e: Error, what: &str| {
        assert!(matches!(&e, Error::InvalidValue { .. }), "{e}");
        assert!(e.to_string().contains(what), "{e}");
    };
    refused(s.request_stats(at(10), at(10)).await.unwrap_err(), "period");
    refused(
        s.request_series(at(10), at(5), Duration::from_secs(60))
            .await
            .unwrap_err(),
        "period",
    );
    refused(
        s.request_series(at(0), at(86_400), Duration::from_secs(1))
            .await
            .unwrap_err(),
        "86400 steps",
    );
    refused(
        s.request_series(at(0), at(60), Duration::from_millis(10))
            .await
            .unwrap_err(),
        "step",
    );
}

fn lookups(cache: &str, secs: u64, hits: u64, misses: u64) -> CacheLookups {
    CacheLookups {
        cache: cache.to_owned(),
        at: at(secs),
        hits,
        misses,
    }
}

fn counts(hits: u64, misses: u64) -> CacheCounts {
    CacheCounts { hits, misses }
}

pub(crate) async fn cache_lookups_add_up_per_minute(h: &Harness) {
    let s = &h.store;
    // Two writes in one minute add up; a write may hold several minutes and caches; empty
    // counts are not kept.
    s.record_cache_lookups(&[lookups("step", 600, 2, 1), lookups("compile", 610, 0, 1)])
        .await
        .unwrap();
    s.record_cache_lookups(&[
        lookups("step", 659, 3, 0),
        lookups("step", 1300, 1, 1),
        lookups("status", 1300, 0, 0),
        // Before the series, and in its last (cut short) minute's slot.
        lookups("step", 59, 7, 7),
        lookups("compile", 3599, 4, 0),
    ])
    .await
    .unwrap();
    s.record_cache_lookups(&[]).await.unwrap();

    let points = s
        .request_series(at(60), at(3600), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(points.len(), 6);
    let names: Vec<&String> = points[0].caches.keys().collect();
    assert_eq!(names, ["compile", "step"], "every cache in every point");
    assert_eq!(points[0].caches["step"], counts(5, 1));
    assert_eq!(points[0].caches["compile"], counts(0, 1));
    assert_eq!(points[2].caches["step"], counts(1, 1));
    assert_eq!(points[1].caches["step"], counts(0, 0));
    assert_eq!(points[5].caches["compile"], counts(4, 0));
    assert_eq!(points[0].requests, 0, "lookups are no model requests");

    // A period counts the minutes that start in it.
    let stats = s.request_stats(at(60), at(1200)).await.unwrap();
    assert_eq!(stats.caches["step"], counts(5, 1));
    assert_eq!(stats.caches["compile"], counts(0, 1));
    let stats = s.request_stats(at(0), at(3600)).await.unwrap();
    assert_eq!(stats.caches["step"], counts(13, 9));
    assert_eq!(stats.caches["compile"], counts(4, 1));
    assert!(!stats.caches.contains_key("status"));
    let none = s.request_stats(at(7200), at(9000)).await.unwrap();
    assert!(none.caches.is_empty());
}
