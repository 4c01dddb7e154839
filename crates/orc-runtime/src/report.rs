//! The daily report and the dashboard's data: the state store's sums of a period's model
//! requests and runs ([`orc_state::Store::request_stats`]), shaped as the JSON documents that
//! `GET /v1/reports/daily`, `/v1/stats/series` and `/v1/stats/models` answer and
//! `orc report daily --json` prints.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use orc_state::{CacheCounts, ModelUsage, PipelineUsage};
use serde::Serialize;

use crate::Runtime;
use crate::error::Error;

/// How many pipelines and models the daily report names.
pub const TOP: usize = 5;

/// The daily report: what orc did on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Its start, Unix seconds.
    pub since: u64,
    /// Its end (excluded), Unix seconds.
    pub until: u64,
    /// Runs started that day.
    pub runs: u64,
    /// Those runs by status.
    pub runs_by_status: BTreeMap<String, u64>,
    /// Model requests (run steps and API requests, response-cache hits included).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// `errors / requests`; `null` without requests.
    pub error_rate: Option<f64>,
    /// Failed requests by kind, most first.
    pub errors_by_kind: Vec<KindCount>,
    /// The busiest minute; `null` without requests.
    pub peak_throughput: Option<Peak>,
    /// Response times of the requests.
    pub response_time_ms: ResponseTime,
    /// Per cache: `response` (the model response cache), and `step` (the step-result cache),
    /// `compile` (the compile cache) and `status` (the status-query cache) when they were
    /// looked up that day.
    pub caches: BTreeMap<String, CacheRate>,
    /// Spend.
    pub cost_usd: Spend,
    /// Tokens billed.
    pub tokens: Tokens,
    /// The most expensive pipelines (at most [`TOP`]), with their runs and requests.
    pub top_pipelines: Vec<PipelineUsage>,
    /// The most expensive models (at most [`TOP`]).
    pub top_models: Vec<ModelRow>,
    /// The largest relative error of the percentiles (they come from log-scale buckets).
    pub percentile_error_bound: f64,
}

/// A failure kind and how many requests failed so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    /// `rate_limited`, `timeout`, `budget`, …
    pub kind: String,
    /// How many.
    pub count: u64,
}

/// The busiest minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peak {
    /// Its start, Unix seconds.
    pub minute: u64,
    /// Requests in it.
    pub requests: u64,
    /// `requests / 60`.
    pub requests_per_second: f64,
}

/// Response times, milliseconds; `null` without requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResponseTime {
    /// The mean.
    pub mean: Option<f64>,
    /// The median.
    pub p50: Option<f64>,
    /// The 95th percentile.
    pub p95: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
}

/// One cache's lookups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheRate {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// `hits / (hits + misses)`; `null` without lookups.
    pub hit_rate: Option<f64>,
}

/// Spend, USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spend {
    /// All requests.
    pub total: f64,
    /// `total / requests`; `null` without requests.
    pub per_request: Option<f64>,
    /// What the requests made by runs cost, over the runs that made them; `null` without any.
    pub per_run: Option<f64>,
}

/// Tokens billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

/// One model's requests in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRow {
    /// The model's configured name.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Requests.
    pub calls: u64,
    /// Requests that failed.
    pub errors: u64,
    /// `(calls - errors) / calls`; `null` without calls.
    pub success_rate: Option<f64>,
    /// Median response time, ms.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub latency_p99_ms: Option<f64>,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Spend, USD.
    pub cost_usd: f64,
}

/// The models page's data: per model, and the router's recent decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelsReport {
    /// Start of the period, Unix seconds.
    pub since: u64,
    /// End of the period (excluded), Unix seconds.
    pub until: u64,
    /// Every configured model (with zero calls when it made none), then any other model
    /// that answered; most expensive first.
    pub models: Vec<ModelRow>,
    /// The router's recent decisions, newest first (kept in memory by this process: empty
    /// after a restart until a step without a model is routed).
    pub routing: Vec<Routing>,
}

/// One routing decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routing {
    /// When, Unix seconds (fractional).
    pub at: f64,
    /// The strategy in force.
    pub strategy: String,
    /// The model chosen.
    pub chosen: String,
    /// The candidates.
    pub candidates: Vec<String>,
    /// Why.
    pub reason: String,
}

/// A series of the model requests per step of a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Start, Unix seconds.
    pub since: u64,
    /// End (excluded), Unix seconds.
    pub until: u64,
    /// The step, seconds.
    pub step: u64,
    /// One point per step, empty ones included.
    pub points: Vec<Point>,
}

/// One step of a [`Series`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The step's start, Unix seconds.
    pub at: u64,
    /// Requests.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Median response time, ms; `null` without requests.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile, ms; `null` without requests.
    pub latency_p95_ms: Option<f64>,
    /// Spend, USD.
    pub cost_usd: f64,
    /// Per cache, its lookups: `response` (the model response cache) always; `step` (the
    /// step-result cache), `compile` (the compile cache) and `status` (the status-query cache)
    /// in every point when the series has lookups of them (kept per minute: each minute counts
    /// in the step it starts in).
    pub caches: BTreeMap<String, CacheCounts>,
}

pub use crate::requests::{COMPILE_CACHE, RESPONSE_CACHE, STATUS_CACHE, STEP_CACHE};

/// Parses a `YYYY-MM-DD` date; the error says what is wrong with it.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("`{text}` is not a date of the form YYYY-MM-DD ({e})"))
}

/// Today, UTC.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Unix seconds of `t` (0 before 1970).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// Counts fit an f64 well enough for ratios.
#[allow(clippy::cast_precision_loss)]
fn ratio(part: f64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part / whole as f64)
}

// Counts fit an f64 well enough for ratios.
#[allow(clippy::cast_precision_loss)]
fn model_row(m: &ModelUsage) -> ModelRow {
    ModelRow {
        model: m.model.clone(),
        provider: m.provider.clone(),
        calls: m.calls,
        errors: m.errors,
        success_rate: ratio(m.calls.saturating_sub(m.errors) as f64, m.calls),
        latency_p50_ms: m.latency.p50_ms,
        latency_p95_ms: m.latency.p95_ms,
        latency_p99_ms: m.latency.p99_ms,
        input_tokens: m.input_tokens,
        output_tokens: m.output_tokens,
        cost_usd: m.cost_usd,
    }
}

/// The start of `date` (UTC).
fn midnight(date: NaiveDate) -> SystemTime {
    let secs = date
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

impl Runtime {
    /// The daily report of `date` (UTC): runs started that day, the model requests made that
    /// day, their busiest minute, response times, each cache's hit rate, errors by kind and
    /// spend, the most expensive pipelines and models.
    pub async fn daily_report(&self, date: NaiveDate) -> Result<DailyReport, Error> {
        self.flush_requests().await;
        let since = midnight(date);
        let until = since + Duration::from_secs(86_400);
        let s = self.store().request_stats(since, until).await?;
        let mut runs_by_status = BTreeMap::new();
        for (status, n) in &s.runs_by_status {
            runs_by_status.insert(status.clone(), *n);
        }
        Ok(DailyReport {
            date: date.format("%Y-%m-%d").to_string(),
            since: unix(since),
            until: unix(until),
            runs: s.runs,
            runs_by_status,
            requests: s.requests,
            // Counts fit an f64 well enough for a ratio.
            #[allow(clippy::cast_precision_loss)]
            error_rate: ratio(s.errors as f64, s.requests),
            errors: s.errors,
            errors_by_kind: s
                .errors_by_kind
                .iter()
                .map(|(kind, count)| KindCount {
                    kind: kind.clone(),
                    count: *count,
                })
                .collect(),
            // Counts fit an f64 well enough for a rate.
            #[allow(clippy::cast_precision_loss)]
            peak_throughput: s.peak_minute.map(|(minute, requests)| Peak {
                minute: unix(minute),
                requests,
                requests_per_second: requests as f64 / 60.0,
            }),
            response_time_ms: ResponseTime {
                mean: s.latency.mean_ms,
                p50: s.latency.p50_ms,
                p95: s.latency.p95_ms,
                p99: s.latency.p99_ms,
            },
            caches: std::iter::once((RESPONSE_CACHE.to_owned(), s.response_cache))
                .chain(s.caches.clone())
                .map(|(name, c)| {
                    let rate = CacheRate {
                        hits: c.hits,
                        misses: c.misses,
                        hit_rate: c.hit_rate(),
                    };
                    (name, rate)
                })
                .collect(),
            cost_usd: Spend {
                total: s.cost_usd,
                per_request: ratio(s.cost_usd, s.requests),
                per_run: ratio(s.run_cost_usd, s.runs_with_requests),
            },
            tokens: Tokens {
                input: s.input_tokens,
                output: s.output_tokens,
            },
            top_pipelines: s.pipelines.iter().take(TOP).cloned().collect(),
            top_models: s.models.iter().take(TOP).map(model_row).collect(),
            percentile_error_bound: orc_state::LATENCY_ERROR_BOUND,
        })
    }

    /// The model requests of `[since, until)` per `step`: one point per step, empty ones
    /// included. Refused ([`Error::Refused`]) when the period is empty, the step under a
    /// second, or the points more than [`orc_state::MAX_SERIES_POINTS`].
    pub async fn stats_series(
        &self,
        since: SystemTime,
        until: SystemTime,
        step: Duration,
    ) -> Result<Series, Error> {
        self.flush_requests().await;
        let points = self.store().request_series(since, until, step).await?;
        Ok(Series {
            since: unix(since),
            until: unix(until),
            step: step.as_secs(),
            points: points
                .into_iter()
                .map(|p| Point {
                    at: unix(p.at),
                    requests: p.requests,
                    errors: p.errors,
                    latency_p50_ms: p.latency.p50_ms,
                    latency_p95_ms: p.latency.p95_ms,
                    cost_usd: p.cost_usd,
                    caches: std::iter::once((RESPONSE_CACHE.to_owned(), p.response_cache))
                        .chain(p.caches)
                        .collect(),
                })
                .collect(),
        })
    }

    /// Per model, the requests of `[since, until)`, and the router's recent decisions.
    pub async fn model_stats(
        &self,
        since: SystemTime,
        until: SystemTime,
    ) -> Result<ModelsReport, Error> {
        self.flush_requests().await;
        let s = self.store().request_stats(since, until).await?;
        let mut models: Vec<ModelRow> = s.models.iter().map(model_row).collect();
        for spec in &self.config().models {
            if !models.iter().any(|m| m.model == spec.name) {
                models.push(ModelRow {
                    model: spec.name.clone(),
                    provider: spec.provider.as_str().to_owned(),
                    calls: 0,
                    errors: 0,
                    success_rate: None,
                    latency_p50_ms: None,
                    latency_p95_ms: None,
                    latency_p99_ms: None,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: 0.0,
                });
            }
        }
        let routing = self
            .gateway()
            .map(|g| g.router().recent_decisions())
            .unwrap_or_default()
            .into_iter()
            .map(|d| Routing {
                at: unix_f64(d.at),
                strategy: d.strategy,
                chosen: d.chosen,
                candidates: d.candidates,
                reason: d.reason,
            })
            .collect();
        Ok(ModelsReport {
            since: unix(since),
            until: unix(until),
            models,
            routing,
        })
    }
}
