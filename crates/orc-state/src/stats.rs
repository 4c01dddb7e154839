//! What the daily report and the dashboard's series read of the model requests and runs of a
//! period ([`Store::request_stats`](crate::Store::request_stats),
//! [`Store::request_series`](crate::Store::request_series)): the backends sum the rows per key
//! ([`MetricGroup`], [`SlotGroup`]) with indexed queries on `at` (and the runs' `started_at`),
//! read the other caches' lookups per minute ([`LookupRecord`]), and this module rolls the sums
//! up.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::codec::from_micros;
use crate::latency::{self, quantile};
use crate::records::{LookupRecord, MetricRecord, SlotGroup, StoredStats};
use crate::rollup::{self, GroupKey, MINUTE, Rollup, Sums, busier};

/// Response-time figures of a set of requests, in milliseconds; `None` without requests.
/// Percentiles come from log-scale buckets and are within 2 % of the exact value
/// ([`LATENCY_ERROR_BOUND`](crate::LATENCY_ERROR_BOUND)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// The mean.
    pub mean_ms: Option<f64>,
    /// The median.
    pub p50_ms: Option<f64>,
    /// The 95th percentile.
    pub p95_ms: Option<f64>,
    /// The 99th percentile.
    pub p99_ms: Option<f64>,
}

/// Lookups in one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    /// Lookups that found an answer.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
}

/// Lookups in one of orc's caches during one minute ([`Store::record_cache_lookups`](crate::Store::record_cache_lookups)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLookups {
    /// The cache's name in reports: `step`, `compile`, `status`, … (the model response cache's
    /// lookups are recorded with its requests, not here).
    pub cache: String,
    /// A time in the minute the lookups happened in; they are kept per minute.
    pub at: SystemTime,
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
}

impl CacheCounts {
    /// `hits / (hits + misses)`; `None` without lookups.
    // Counts fit an f64 well enough for a ratio.
    #[allow(clippy::cast_precision_loss)]
    pub fn hit_rate(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }
}

/// One model's requests in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    /// The model's configured name.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Requests (cache hits included).
    pub calls: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Response times.
    pub latency: Latency,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Spend, USD.
    pub cost_usd: f64,
}

/// One pipeline's runs and requests in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineUsage {
    /// The pipeline's id.
    pub pipeline_id: String,
    /// Runs started in the period.
    pub runs: u64,
    /// Model requests its runs made in the period.
    pub requests: u64,
    /// What those requests cost, USD.
    pub cost_usd: f64,
}

/// The model requests and runs of a period `[since, until)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestStats {
    /// Start of the period.
    pub since: SystemTime,
    /// End of the period (excluded).
    pub until: SystemTime,
    /// Runs started in the period.
    pub runs: u64,
    /// Those runs by status (`completed`, `failed`, …), most first.
    pub runs_by_status: Vec<(String, u64)>,
    /// Model requests (run steps and API requests, cache hits included).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Failed requests by kind, most first.
    pub errors_by_kind: Vec<(String, u64)>,
    /// The start of the busiest minute and its requests.
    pub peak_minute: Option<(SystemTime, u64)>,
    /// Response times.
    pub latency: Latency,
    /// The model response cache's lookups.
    pub response_cache: CacheCounts,
    /// The other caches' lookups ([`Store::record_cache_lookups`](crate::Store::record_cache_lookups)),
    /// by name: those of the minutes that start in the period.
    pub caches: BTreeMap<String, CacheCounts>,
    /// Spend, USD.
    pub cost_usd: f64,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// How many runs made requests in the period.
    pub runs_with_requests: u64,
    /// What the requests made by runs cost, USD.
    pub run_cost_usd: f64,
    /// Per model, most expensive first (then most calls).
    pub models: Vec<ModelUsage>,
    /// Per pipeline, most expensive first (then most runs).
    pub pipelines: Vec<PipelineUsage>,
}

/// One slot of a series ([`Store::request_series`](crate::Store::request_series)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// The slot's start.
    pub at: SystemTime,
    /// Model requests in it.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Response times (`mean_ms` is not kept per slot: `None`).
    pub latency: Latency,
    /// Spend, USD.
    pub cost_usd: f64,
    /// The model response cache's lookups.
    pub response_cache: CacheCounts,
    /// The other caches' lookups, by name: those of the minutes that start in the slot (they
    /// are kept per minute). Every cache with lookups anywhere in the series is named in every
    /// point, with zeros where it had none.
    pub caches: BTreeMap<String, CacheCounts>,
}

/// A sum of costs to the picodollar: sums of the same costs added in another order (per hour,
/// per row, per backend) differ in their last bits, and the report says the same whatever the
/// order.
fn usd(sum: f64) -> f64 {
    (sum * 1e12).round() / 1e12
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Latency figures from bucket counts, and a mean from a sum over `n` requests.
// Counts fit an f64 well enough for a mean.
#[allow(clippy::cast_precision_loss)]
fn latency_of(buckets: &[(i64, u64)], sum_ms: f64, n: u64) -> Latency {
    Latency {
        mean_ms: (n > 0).then(|| sum_ms / n as f64),
        p50_ms: quantile(buckets, 0.50),
        p95_ms: quantile(buckets, 0.95),
        p99_ms: quantile(buckets, 0.99),
    }
}

fn tally(cache: &mut CacheCounts, hit: Option<bool>, n: u64) {
    match hit {
        Some(true) => cache.hits += n,
        Some(false) => cache.misses += n,
        None => {}
    }
}

/// Most first, then by name.
fn by_count(map: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Lookups summed per cache.
fn lookups_by_cache(lookups: &[LookupRecord]) -> BTreeMap<String, CacheCounts> {
    let mut caches: BTreeMap<String, CacheCounts> = BTreeMap::new();
    for l in lookups {
        match caches.get_mut(&*l.cache) {
            Some(counts) => add_lookups(counts, l),
            None => {
                let mut counts = CacheCounts::default();
                add_lookups(&mut counts, l);
                caches.insert(l.cache.to_string(), counts);
            }
        }
    }
    caches
}

fn add_lookups(counts: &mut CacheCounts, l: &LookupRecord) {
    counts.hits += count(l.hits);
    counts.misses += count(l.misses);
}

/// The minutes (numbered from the epoch, `[lo, hi)`) that start in `[since, until)` (µs): the
/// cache lookups a period or a slot counts.
pub(crate) fn lookup_minutes(since: i64, until: i64) -> (i64, i64) {
    let first = |t: i64| t.div_euclid(MINUTE) + i64::from(t.rem_euclid(MINUTE) != 0);
    (first(since), first(until))
}

/// Rolls a backend's sums up into the report's figures; `lookups` are the other caches' of
/// the period's minutes (summed or not).
pub(crate) fn roll_up(
    since: SystemTime,
    until: SystemTime,
    stored: StoredStats,
    lookups: &[LookupRecord],
) -> RequestStats {
    #[derive(Default)]
    struct Model {
        provider: String,
        calls: u64,
        errors: u64,
        latency_sum: f64,
        buckets: Vec<(i64, u64)>,
        input: u64,
        output: u64,
        cost: f64,
    }
    let mut models: BTreeMap<String, Model> = BTreeMap::new();
    let mut pipelines: BTreeMap<String, PipelineUsage> = BTreeMap::new();
    let mut errors_by_kind: HashMap<String, u64> = HashMap::new();
    let mut buckets: Vec<(i64, u64)> = Vec::new();
    let (mut requests, mut errors, mut latency_sum, mut cost) = (0, 0, 0.0, 0.0);
    let (mut input, mut output, mut run_cost) = (0, 0, 0.0);
    let mut response_cache = CacheCounts::default();
    for g in &stored.groups {
        let n = count(g.requests);
        requests += n;
        latency_sum += g.latency_ms;
        cost += g.cost;
        input += count(g.input_tokens);
        output += count(g.output_tokens);
        tally(&mut response_cache, g.cache_hit, n);
        let m = models.entry(g.model.clone()).or_default();
        m.provider.clone_from(&g.provider);
        m.calls += n;
        m.latency_sum += g.latency_ms;
        m.input += count(g.input_tokens);
        m.output += count(g.output_tokens);
        m.cost += g.cost;
        for &(b, k) in &g.buckets {
            buckets.push((b, count(k)));
            m.buckets.push((b, count(k)));
        }
        if !g.success {
            errors += n;
            m.errors += n;
            let kind = g.error_kind.clone().unwrap_or_else(|| "unknown".to_owned());
            *errors_by_kind.entry(kind).or_default() += n;
        }
        if let Some(p) = &g.pipeline_id {
            run_cost += g.cost;
            let usage = pipelines
                .entry(p.clone())
                .or_insert_with(|| pipeline(p.clone()));
            usage.requests += n;
            usage.cost_usd += g.cost;
        }
    }
    let mut runs_by_status: HashMap<String, u64> = HashMap::new();
    let mut runs = 0;
    for (pipeline_id, status, n) in &stored.runs {
        let n = count(*n);
        runs += n;
        *runs_by_status.entry(status.clone()).or_default() += n;
        pipelines
            .entry(pipeline_id.clone())
            .or_insert_with(|| pipeline(pipeline_id.clone()))
            .runs += n;
    }
    let mut models: Vec<ModelUsage> = models
        .into_iter()
        .map(|(model, m)| ModelUsage {
            model,
            provider: m.provider,
            calls: m.calls,
            errors: m.errors,
            latency: latency_of(&m.buckets, m.latency_sum, m.calls),
            input_tokens: m.input,
            output_tokens: m.output,
            cost_usd: usd(m.cost),
        })
        .collect();
    models.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.calls.cmp(&a.calls))
            .then_with(|| a.model.cmp(&b.model))
    });
    let mut pipelines: Vec<PipelineUsage> = pipelines
        .into_values()
        .map(|p| PipelineUsage {
            cost_usd: usd(p.cost_usd),
            ..p
        })
        .collect();
    pipelines.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.runs.cmp(&a.runs))
            .then_with(|| a.pipeline_id.cmp(&b.pipeline_id))
    });
    RequestStats {
        since,
        until,
        runs,
        runs_by_status: by_count(runs_by_status),
        requests,
        errors,
        errors_by_kind: by_count(errors_by_kind),
        peak_minute: stored
            .peak_minute
            .map(|(minute, n)| (from_micros(minute.saturating_mul(60_000_000)), count(n))),
        latency: latency_of(&buckets, latency_sum, requests),
        response_cache,
        caches: lookups_by_cache(lookups),
        cost_usd: usd(cost),
        input_tokens: input,
        output_tokens: output,
        runs_with_requests: count(stored.runs_with_requests),
        run_cost_usd: usd(run_cost),
        models,
        pipelines,
    }
}

fn pipeline(pipeline_id: String) -> PipelineUsage {
    PipelineUsage {
        pipeline_id,
        runs: 0,
        requests: 0,
        cost_usd: 0.0,
    }
}

/// One point per slot of `step` from `since` (`slots` of them, `since` being `since_us` µs),
/// empty slots included; `lookups` are the other caches' of the minutes that start in the
/// series.
pub(crate) fn series(
    since: SystemTime,
    since_us: i64,
    step: Duration,
    slots: u32,
    groups: &[SlotGroup],
    lookups: &[LookupRecord],
) -> Vec<SeriesPoint> {
    let names: BTreeMap<String, CacheCounts> = lookups
        .iter()
        .map(|l| (l.cache.to_string(), CacheCounts::default()))
        .collect();
    let mut points: Vec<(SeriesPoint, Vec<(i64, u64)>)> = (0..slots)
        .map(|i| {
            let point = SeriesPoint {
                at: since + step * i,
                requests: 0,
                errors: 0,
                latency: Latency::default(),
                cost_usd: 0.0,
                response_cache: CacheCounts::default(),
                caches: names.clone(),
            };
            (point, Vec::new())
        })
        .collect();
    let step_us = i64::try_from(step.as_micros()).unwrap_or(i64::MAX).max(1);
    for l in lookups {
        let slot = (l.minute.saturating_mul(MINUTE) - since_us).div_euclid(step_us);
        if let Some((point, _)) = usize::try_from(slot).ok().and_then(|i| points.get_mut(i))
            && let Some(counts) = point.caches.get_mut(&*l.cache)
        {
            add_lookups(counts, l);
        }
    }
    for g in groups {
        let Some((point, buckets)) = usize::try_from(g.slot).ok().and_then(|i| points.get_mut(i))
        else {
            continue;
        };
        point.requests += count(g.requests);
        point.errors += count(g.errors);
        point.cost_usd += g.cost;
        point.response_cache.hits += count(g.cache_hits);
        point.response_cache.misses += count(g.cache_misses);
        buckets.extend(g.buckets.iter().map(|&(b, k)| (b, count(k))));
    }
    points
        .into_iter()
        .map(|(mut point, buckets)| {
            point.latency = Latency {
                mean_ms: None,
                ..latency_of(&buckets, 0.0, 0)
            };
            point.cost_usd = usd(point.cost_usd);
            point
        })
        .collect()
}

/// Sums records the way the SQL backends' report query does (Redis reads the rows of a period's
/// partial hours and sums them here): the groups, the busiest minute and the runs that made
/// requests.
pub(crate) fn fold_records(records: &[MetricRecord]) -> StoredStats {
    let rollup = Rollup::of(records);
    let mut groups: BTreeMap<GroupKey, Sums> = BTreeMap::new();
    for ((_, key), sums) in rollup.hours {
        groups.entry(key).or_default().add(&sums);
    }
    let runs: std::collections::HashSet<&str> =
        rollup.runs.iter().map(|(_, run)| run.as_str()).collect();
    StoredStats {
        groups: groups
            .into_iter()
            .map(|(key, sums)| rollup::metric_group(key, sums))
            .collect(),
        peak_minute: rollup
            .minutes
            .iter()
            .fold(None, |peak, (m, s)| busier(peak, Some((*m, s.requests)))),
        runs_with_requests: i64::try_from(runs.len()).unwrap_or(i64::MAX),
        runs: Vec::new(),
    }
}

/// Sums records per slot the way the SQL backends' series query does.
pub(crate) fn fold_slots(records: &[MetricRecord], since: i64, step: i64) -> Vec<SlotGroup> {
    let mut groups: BTreeMap<i64, (SlotGroup, BTreeMap<i64, i64>)> = BTreeMap::new();
    for r in records {
        let slot = (r.at - since).div_euclid(step.max(1));
        let (g, buckets) = groups.entry(slot).or_insert_with(|| {
            let group = SlotGroup {
                slot,
                requests: 0,
                errors: 0,
                cache_hits: 0,
                cache_misses: 0,
                cost: 0.0,
                buckets: Vec::new(),
            };
            (group, BTreeMap::new())
        });
        g.requests += 1;
        g.errors += i64::from(!r.success);
        g.cache_hits += i64::from(r.cache_hit == Some(true));
        g.cache_misses += i64::from(r.cache_hit == Some(false));
        g.cost += r.cost;
        *buckets.entry(latency::bucket(r.latency_ms)).or_default() += 1;
    }
    groups
        .into_values()
        .map(|(mut g, buckets)| {
            g.buckets = buckets.into_iter().collect();
            g
        })
        .collect()
}
