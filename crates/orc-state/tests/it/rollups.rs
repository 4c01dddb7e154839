//! The hourly and per-minute rollups the report and the series read: the same figures as the
//! requests' rows, for periods on whole hours and minutes and for periods that cut them, on
//! every backend; and a store from before the rollups gets them when it is opened.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orc_state::{CallSource, ModelMetric, RequestStats, Store};

use crate::support::{Harness, Kind, before_rollups as before, options};

/// An hour's start: 2023-11-14T23:00:00Z.
const BASE: u64 = 1_700_002_800;

fn t(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(BASE) + Duration::from_micros(us)
}

fn us(t: SystemTime) -> u64 {
    let base = UNIX_EPOCH + Duration::from_secs(BASE);
    u64::try_from(t.duration_since(base).unwrap().as_micros()).unwrap()
}

/// Requests over three hours at uneven times, several in some minutes, written in batches of
/// different sizes (so that a batch adds to the sums stored by the ones before).
fn requests(n: usize) -> Vec<ModelMetric> {
    let mut rng = fastrand::Rng::with_seed(15);
    let mut out: Vec<ModelMetric> = (0..n)
        .map(|i| {
            let burst = i % 7 == 0;
            let at = if burst {
                // A busy minute: 01:41.
                101 * 60_000_000 + rng.u64(..60_000_000)
            } else {
                rng.u64(..3 * 3_600_000_000)
            };
            let model = ["small", "medium", "large"][rng.usize(..3)];
            let cache_hit = [None, Some(true), Some(false)][rng.usize(..3)];
            let failed = rng.u8(..10) == 0;
            let run = rng.usize(..12);
            ModelMetric {
                model: model.to_owned(),
                provider: if model == "large" {
                    "anthropic"
                } else {
                    "openai"
                }
                .to_owned(),
                at: t(at),
                latency_ms: 0.5 + rng.f64() * 4000.0,
                success: !failed,
                input_tokens: rng.u64(..1000),
                output_tokens: rng.u64(..100),
                cost: f64::from(rng.u32(..1000)) / 10_000.0,
                source: if cache_hit == Some(true) {
                    CallSource::Cache
                } else {
                    CallSource::Upstream
                },
                cache_hit,
                error_kind: failed.then(|| ["timeout", "rate_limited"][rng.usize(..2)].to_owned()),
                run_id: (run < 9).then(|| format!("run-{run}")),
                pipeline_id: (run < 9).then(|| ["a", "b", "c"][run % 3].to_owned()),
            }
        })
        .collect();
    out.sort_by_key(|m| m.at);
    out
}

async fn record(store: &Store, all: &[ModelMetric]) {
    let mut rest = all;
    for size in [1, 5, 40, 3, 200].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        store.record_model_metrics(batch).await.unwrap();
        rest = tail;
    }
}

fn same(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-9, "{what}: {got} != {want}");
}

/// The exact nearest-rank quantile of `values`.
fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * values.len() as f64).ceil() as usize).max(1);
    values[rank - 1]
}

fn near(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() <= want * orc_state::LATENCY_ERROR_BOUND,
        "{what}: {got} is not within 2 % of {want}"
    );
}

/// What the report of `[since, until)` must say, from the requests themselves.
fn check_stats(all: &[ModelMetric], since: SystemTime, until: SystemTime, r: &RequestStats) {
    let inside: Vec<&ModelMetric> = all
        .iter()
        .filter(|m| m.at >= since && m.at < until)
        .collect();
    let what = format!("{}..{} µs", us(since), us(until));
    assert!(!inside.is_empty(), "{what}: a period with requests");
    assert_eq!(r.requests, inside.len() as u64, "{what}");
    assert_eq!(
        r.errors,
        inside.iter().filter(|m| !m.success).count() as u64,
        "{what}"
    );
    same(r.cost_usd, inside.iter().map(|m| m.cost).sum(), &what);
    same(
        r.run_cost_usd,
        inside
            .iter()
            .filter(|m| m.pipeline_id.is_some())
            .map(|m| m.cost)
            .sum(),
        &what,
    );
    assert_eq!(
        r.input_tokens,
        inside.iter().map(|m| m.input_tokens).sum::<u64>(),
        "{what}"
    );
    let hits = inside.iter().filter(|m| m.cache_hit == Some(true)).count() as u64;
    let misses = inside.iter().filter(|m| m.cache_hit == Some(false)).count() as u64;
    assert_eq!(
        (r.response_cache.hits, r.response_cache.misses),
        (hits, misses),
        "{what}"
    );
    let runs: HashSet<&str> = inside.iter().filter_map(|m| m.run_id.as_deref()).collect();
    assert_eq!(r.runs_with_requests, runs.len() as u64, "{what}");
    let mut minutes: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &inside {
        let minute = m.at.duration_since(UNIX_EPOCH).unwrap().as_secs() / 60;
        *minutes.entry(minute).or_default() += 1;
    }
    let busiest = minutes.values().max().copied().unwrap();
    let first = minutes.iter().find(|(_, n)| **n == busiest).unwrap().0;
    assert_eq!(
        r.peak_minute,
        Some((UNIX_EPOCH + Duration::from_secs(first * 60), busiest)),
        "{what}"
    );
    #[allow(clippy::cast_precision_loss)]
    let mean = inside.iter().map(|m| m.latency_ms).sum::<f64>() / inside.len() as f64;
    same(r.latency.mean_ms.unwrap(), mean, &what);
    let mut latencies: Vec<f64> = inside.iter().map(|m| m.latency_ms).collect();
    near(r.latency.p50_ms, exact(&mut latencies, 0.5), &what);
    near(r.latency.p95_ms, exact(&mut latencies, 0.95), &what);
    for model in &r.models {
        let of: Vec<&&ModelMetric> = inside.iter().filter(|m| m.model == model.model).collect();
        assert_eq!(model.calls, of.len() as u64, "{what} {}", model.model);
        same(
            model.cost_usd,
            of.iter().map(|m| m.cost).sum(),
            &model.model,
        );
        let mut latencies: Vec<f64> = of.iter().map(|m| m.latency_ms).collect();
        near(
            model.latency.p95_ms,
            exact(&mut latencies, 0.95),
            &model.model,
        );
    }
    assert_eq!(r.models.len(), 3, "{what}");
    for p in &r.pipelines {
        let of = inside
            .iter()
            .filter(|m| m.pipeline_id.as_deref() == Some(p.pipeline_id.as_str()));
        assert_eq!(p.requests, of.count() as u64, "{what} {}", p.pipeline_id);
    }
}

/// What the series of `[since, until)` by `step` must say.
async fn check_series(
    store: &Store,
    all: &[ModelMetric],
    since: SystemTime,
    until: SystemTime,
    step: Duration,
) {
    let points = store.request_series(since, until, step).await.unwrap();
    let what = format!("{}..{} µs by {step:?}", us(since), us(until));
    let mut total = 0;
    for (i, p) in points.iter().enumerate() {
        let end = (p.at + step).min(until);
        let inside: Vec<&ModelMetric> = all.iter().filter(|m| m.at >= p.at && m.at < end).collect();
        let what = format!("{what}, step {i}");
        assert_eq!(p.requests, inside.len() as u64, "{what}");
        assert_eq!(
            p.errors,
            inside.iter().filter(|m| !m.success).count() as u64,
            "{what}"
        );
        assert_eq!(
            p.response_cache.hits,
            inside.iter().filter(|m| m.cache_hit == Some(true)).count() as u64,
            "{what}"
        );
        same(p.cost_usd, inside.iter().map(|m| m.cost).sum(), &what);
        if inside.is_empty() {
            assert_eq!(p.latency.p50_ms, None, "{what}");
        } else {
            let mut latencies: Vec<f64> = inside.iter().map(|m| m.latency_ms).collect();
            near(p.latency.p95_ms, exact(&mut latencies, 0.95), &what);
        }
        total += p.requests;
    }
    assert!(total > 0, "{what}: a series with requests");
}

pub(crate) async fn rollups_give_the_rows_figures(h: &Harness) {
    let all = requests(1500);
    record(&h.store, &all).await;
    let hour = 3_600_000_000;
    let minute = 60_000_000;
    // Whole hours; cut hours and minutes at both ends; within one hour; within one minute.
    for (a, b) in [
        (0, 3 * hour),
        (hour, 2 * hour),
        (17 * minute + 500_000, 2 * hour + 13 * minute + 7_000_000),
        (hour + 5, 3 * hour - 5),
        (20 * minute, 50 * minute + 1),
        (101 * minute + 10, 101 * minute + 40_000_000),
    ] {
        let r = h.store.request_stats(t(a), t(b)).await.unwrap();
        check_stats(&all, t(a), t(b), &r);
    }
    // Whole minutes by the minute and by ten; a start off the minute; a last step cut short.
    let s = Duration::from_secs;
    check_series(&h.store, &all, t(0), t(3 * hour), s(60)).await;
    check_series(&h.store, &all, t(0), t(3 * hour), s(600)).await;
    check_series(&h.store, &all, t(7_000_000), t(3 * hour), s(600)).await;
    check_series(&h.store, &all, t(hour), t(2 * hour + 90_000_123), s(300)).await;
    check_series(&h.store, &all, t(0), t(hour), s(45)).await;
}

/// Takes the rollups out of the store and sets its schema back to the version before them.
async fn before_rollups(h: &Harness) {
    match h.kind {
        Kind::Sqlite => {
            let mut c = h.sqlite_connection().await;
            before().execute(&mut c).await.unwrap();
            sqlx::Connection::close(c).await.unwrap();
        }
        Kind::Postgres => {
            let mut c = h.pg_connection().await;
            before().execute(&mut c).await.unwrap();
        }
        Kind::Redis => {
            let mut c = h.redis_connection().await;
            let prefix = h.redis_prefix();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}rollup:*"))
                .query_async(&mut c)
                .await
                .unwrap();
            assert!(!keys.is_empty());
            // Some rollups gone, and a key that a build stopped half-way left: the next build
            // starts over.
            redis::cmd("DEL")
                .arg(&keys[..1])
                .query_async::<()>(&mut c)
                .await
                .unwrap();
            redis::cmd("HSET")
                .arg(format!("{prefix}rollup:hour:1"))
                .arg("junk")
                .arg(1)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
            redis::cmd("SET")
                .arg(format!("{prefix}schema"))
                .arg(4)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        }
    }
}

pub(crate) async fn an_older_store_gets_rollups_of_its_requests(h: &Harness) {
    let all = requests(600);
    record(&h.store, &all).await;
    before_rollups(h).await;
    let store = h.reopen(options(None)).await.unwrap();
    let hour = 3_600_000_000;
    for (a, b) in [(0, 3 * hour), (hour + 5, 3 * hour - 5)] {
        let r = store.request_stats(t(a), t(b)).await.unwrap();
        check_stats(&all, t(a), t(b), &r);
    }
    check_series(&store, &all, t(0), t(3 * hour), Duration::from_secs(60)).await;
    // Requests recorded after the migration add to what it built.
    let more = requests(100);
    record(&store, &more).await;
    let both: Vec<ModelMetric> = all.iter().chain(&more).cloned().collect();
    let r = store.request_stats(t(0), t(3 * hour)).await.unwrap();
    check_stats(&both, t(0), t(3 * hour), &r);
}
