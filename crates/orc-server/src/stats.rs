//! The dashboard's data and the daily report, from the state store through the runtime:
//!
//! - `GET /v1/stats/series?since=&until=&step=` (Unix seconds; defaults: the last hour by the
//!   minute, up to the end of the current second): requests, errors, p50/p95 response time, cost and cache lookups per step, empty
//!   steps included, at most [`MAX_SERIES_POINTS`] steps;
//! - `GET /v1/stats/models?since=&until=` (default: the last 24 hours): calls, success rate,
//!   latency percentiles, tokens and cost per model, and the router's recent decisions;
//! - `GET /v1/reports/daily?date=YYYY-MM-DD` (default: today, UTC): the daily report.
//!
//! A parameter that is not a number or date, an unknown parameter, an empty period or too many
//! steps is a 400 whose problem body names the parameter (`error.field`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use orc_runtime::report::{DailyReport, ModelsReport, Series, parse_date, today};
use orc_state::MAX_SERIES_POINTS;
use serde_json::Value;

use crate::AppState;
use crate::problem::Problem;

/// The series' default period and step.
const HOUR: u64 = 3600;
const MINUTE: u64 = 60;
/// The models page's default period.
const DAY: u64 = 86_400;

/// The routes, over the service's state (the caller adds auth and limits).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/stats/series", get(series))
        .route("/v1/stats/models", get(models))
        .route("/v1/reports/daily", get(daily))
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query's parameters, refusing any not in `known`.
fn params(query: Params, known: &[&str]) -> Result<HashMap<String, String>, Problem> {
    let Query(params) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            format!("unknown parameter `{unknown}`; use {}", known.join(", ")),
        ));
    }
    Ok(params)
}

fn invalid(field: &str, message: String) -> Problem {
    Problem::bad_request(message).with("field", Value::String(field.to_owned()))
}

/// The parameter `name` as Unix seconds (or a count of seconds), `None` when absent.
fn seconds(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Problem> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                invalid(
                    name,
                    format!("`{name}` must be a whole number of seconds, not `{v}`"),
                )
            })
        })
        .transpose()
}

/// The end of the current second: a default `until` that includes what just happened.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + 1)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `since` and `until` (default: `span` seconds up to now), `since` before `until`.
fn period(params: &HashMap<String, String>, span: u64) -> Result<(u64, u64), Problem> {
    let until = seconds(params, "until")?.unwrap_or_else(now);
    let since = seconds(params, "since")?.unwrap_or(until.saturating_sub(span));
    if since >= until {
        return Err(invalid(
            "since",
            format!("`since` ({since}) must be before `until` ({until})"),
        ));
    }
    Ok((since, until))
}

/// `GET /v1/stats/series`.
async fn series(State(app): State<AppState>, query: Params) -> Result<Json<Series>, Problem> {
    let params = params(query, &["since", "until", "step"])?;
    let (since, until) = period(&params, HOUR)?;
    let step = seconds(&params, "step")?.unwrap_or(MINUTE);
    if step == 0 {
        return Err(invalid(
            "step",
            "`step` must be at least 1 second".to_owned(),
        ));
    }
    let points = (until - since).div_ceil(step);
    if points > u64::from(MAX_SERIES_POINTS) {
        return Err(invalid(
            "step",
            format!(
                "{} s by steps of {step} s is {points} points; at most {MAX_SERIES_POINTS}: use a larger `step` or a shorter period",
                until - since
            ),
        ));
    }
    let series = app
        .runtime
        .stats_series(at(since), at(until), Duration::from_secs(step))
        .await?;
    Ok(Json(series))
}

/// `GET /v1/stats/models`.
async fn models(State(app): State<AppState>, query: Params) -> Result<Json<ModelsReport>, Problem> {
    let params = params(query, &["since", "until"])?;
    let (since, until) = period(&params, DAY)?;
    Ok(Json(app.runtime.model_stats(at(since), at(until)).await?))
}

/// `GET /v1/reports/daily`.
async fn daily(State(app): State<AppState>, query: Params) -> Result<Json<DailyReport>, Problem> {
    let params = params(query, &["date"])?;
    let date = match params.get("date") {
        Some(text) => parse_date(text).map_err(|e| invalid("date", format!("`date`: {e}")))?,
        None => today(),
    };
    Ok(Json(app.runtime.daily_report(date).await?))
}
