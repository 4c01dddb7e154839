//! What a batch of recorded requests adds to the rollups (see [`crate::rollup`]), written on the
//! writer connection in the batch's transaction.

use rusqlite::{OptionalExtension, params};

use crate::rollup::{self, Rollup};

/// Adds a batch's sums to the stored rollups, on the writer connection inside the batch's
/// transaction: counts and sums by `+` in SQL, each histogram read, merged here and written back.
pub(super) fn add_rollup(c: &rusqlite::Connection, rollup: &Rollup) -> rusqlite::Result<()> {
    let mut read_hour = c.prepare_cached(
        "SELECT latency_hist FROM request_hours WHERE hour = ?1 AND model = ?2 AND provider = ?3
           AND pipeline_id = ?4 AND cache_hit = ?5 AND error_kind = ?6 AND success = ?7",
    )?;
    let mut hour = c.prepare_cached(
        "INSERT INTO request_hours (hour, model, provider, pipeline_id, cache_hit, error_kind, success,
                                    requests, cost, latency_ms, input_tokens, output_tokens, latency_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests,
             cost = cost + excluded.cost, latency_ms = latency_ms + excluded.latency_ms,
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             latency_hist = excluded.latency_hist",
    )?;
    for ((h, key), sums) in &rollup.hours {
        let keys = params![
            h,
            key.model,
            key.provider,
            key.pipeline_column(),
            key.cache_hit_column(),
            key.error_kind_column(),
            key.success
        ];
        let stored: Option<String> = read_hour.query_row(keys, |r| r.get(0)).optional()?;
        let hist = merged(stored.as_deref(), &sums.buckets)?;
        hour.execute(params![
            h,
            key.model,
            key.provider,
            key.pipeline_column(),
            key.cache_hit_column(),
            key.error_kind_column(),
            key.success,
            sums.requests,
            sums.cost,
            sums.latency_ms,
            sums.input_tokens,
            sums.output_tokens,
            hist
        ])?;
    }
    let mut read_minute =
        c.prepare_cached("SELECT latency_hist FROM request_minutes WHERE minute = ?1")?;
    let mut minute = c.prepare_cached(
        "INSERT INTO request_minutes (minute, requests, errors, cache_hits, cache_misses, cost, latency_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests,
             errors = errors + excluded.errors, cache_hits = cache_hits + excluded.cache_hits,
             cache_misses = cache_misses + excluded.cache_misses, cost = cost + excluded.cost,
             latency_hist = excluded.latency_hist",
    )?;
    for (m, sums) in &rollup.minutes {
        let stored: Option<String> = read_minute.query_row([m], |r| r.get(0)).optional()?;
        let hist = merged(stored.as_deref(), &sums.buckets)?;
        minute.execute(params![
            m,
            sums.requests,
            sums.errors,
            sums.cache_hits,
            sums.cache_misses,
            sums.cost,
            hist
        ])?;
    }
    let mut run =
        c.prepare_cached("INSERT OR IGNORE INTO request_runs (hour, run_id) VALUES (?1, ?2)")?;
    for (h, id) in &rollup.runs {
        run.execute(params![h, id])?;
    }
    Ok(())
}

/// A stored histogram (if any) with `added`'s counts, as text.
fn merged(stored: Option<&str>, added: &rollup::Hist) -> rusqlite::Result<String> {
    let Some(stored) = stored else {
        return Ok(rollup::hist_text(added));
    };
    let mut hist = rollup::parse_hist(stored).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })?;
    rollup::merge(&mut hist, added);
    Ok(rollup::hist_text(&hist))
}
