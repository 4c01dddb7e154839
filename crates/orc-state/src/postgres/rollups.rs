//! What a batch of recorded requests adds to the rollups (see [`crate::rollup`]), in the batch's
//! transaction.

use crate::rollup::{self, Rollup};

/// The sum of two stored histograms (`a` and `b`, jsonb), in SQL.
macro_rules! merged_hist {
    ($a:literal, $b:literal) => {
        concat!(
            "(SELECT COALESCE(jsonb_object_agg(k, n), '{}') FROM (SELECT k, sum(v)::int8 AS n FROM (
                 SELECT key AS k, value::int8 AS v FROM jsonb_each_text(",
            $a,
            ") UNION ALL SELECT key, value::int8 FROM jsonb_each_text(",
            $b,
            ")) AS e GROUP BY k) AS s)"
        )
    };
}

/// Adds a batch's sums to the stored rollups inside its transaction: one statement per table,
/// rows in key order (see [`Rollup`]), so that concurrent writers lock them in the same order.
pub(super) async fn add_rollup(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rollup: &Rollup,
) -> std::result::Result<(), sqlx::Error> {
    let hours: Vec<_> = rollup.hours.iter().collect();
    if !hours.is_empty() {
        sqlx::query(concat!(
            "INSERT INTO request_hours AS t (hour, model, provider, pipeline_id, cache_hit, error_kind,
                 success, requests, cost, latency_ms, input_tokens, output_tokens, latency_hist)
             SELECT h, m, p, pl, hit, k, s, n, c, l, i, o, hist::jsonb
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], $7::bool[],
                         $8::int8[], $9::float8[], $10::float8[], $11::int8[], $12::int8[], $13::text[])
                  AS u(h, m, p, pl, hit, k, s, n, c, l, i, o, hist)
             ON CONFLICT (hour, model, provider, pipeline_id, cache_hit, error_kind, success) DO UPDATE SET
                 requests = t.requests + excluded.requests, cost = t.cost + excluded.cost,
                 latency_ms = t.latency_ms + excluded.latency_ms,
                 input_tokens = t.input_tokens + excluded.input_tokens,
                 output_tokens = t.output_tokens + excluded.output_tokens,
                 latency_hist = ",
            merged_hist!("t.latency_hist", "excluded.latency_hist")
        ))
        .bind(hours.iter().map(|((h, _), _)| *h).collect::<Vec<i64>>())
        .bind(hours.iter().map(|((_, k), _)| k.model.clone()).collect::<Vec<_>>())
        .bind(hours.iter().map(|((_, k), _)| k.provider.clone()).collect::<Vec<_>>())
        .bind(
            hours
                .iter()
                .map(|((_, k), _)| k.pipeline_column().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(
            hours
                .iter()
                .map(|((_, k), _)| i16::try_from(k.cache_hit_column()).unwrap_or(-1))
                .collect::<Vec<i16>>(),
        )
        .bind(
            hours
                .iter()
                .map(|((_, k), _)| k.error_kind_column().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(hours.iter().map(|((_, k), _)| k.success).collect::<Vec<bool>>())
        .bind(hours.iter().map(|(_, s)| s.requests).collect::<Vec<i64>>())
        .bind(hours.iter().map(|(_, s)| s.cost).collect::<Vec<f64>>())
        .bind(hours.iter().map(|(_, s)| s.latency_ms).collect::<Vec<f64>>())
        .bind(hours.iter().map(|(_, s)| s.input_tokens).collect::<Vec<i64>>())
        .bind(hours.iter().map(|(_, s)| s.output_tokens).collect::<Vec<i64>>())
        .bind(
            hours
                .iter()
                .map(|(_, s)| rollup::hist_text(&s.buckets))
                .collect::<Vec<String>>(),
        )
        .execute(&mut **tx)
        .await?;
    }
    let minutes: Vec<_> = rollup.minutes.iter().collect();
    if !minutes.is_empty() {
        sqlx::query(concat!(
            "INSERT INTO request_minutes AS t (minute, requests, errors, cache_hits, cache_misses, cost, latency_hist)
             SELECT m, n, e, h, x, c, hist::jsonb
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::float8[], $7::text[])
                  AS u(m, n, e, h, x, c, hist)
             ON CONFLICT (minute) DO UPDATE SET
                 requests = t.requests + excluded.requests, errors = t.errors + excluded.errors,
                 cache_hits = t.cache_hits + excluded.cache_hits,
                 cache_misses = t.cache_misses + excluded.cache_misses, cost = t.cost + excluded.cost,
                 latency_hist = ",
            merged_hist!("t.latency_hist", "excluded.latency_hist")
        ))
        .bind(minutes.iter().map(|(m, _)| **m).collect::<Vec<i64>>())
        .bind(minutes.iter().map(|(_, s)| s.requests).collect::<Vec<i64>>())
        .bind(minutes.iter().map(|(_, s)| s.errors).collect::<Vec<i64>>())
        .bind(minutes.iter().map(|(_, s)| s.cache_hits).collect::<Vec<i64>>())
        .bind(minutes.iter().map(|(_, s)| s.cache_misses).collect::<Vec<i64>>())
        .bind(minutes.iter().map(|(_, s)| s.cost).collect::<Vec<f64>>())
        .bind(
            minutes
                .iter()
                .map(|(_, s)| rollup::hist_text(&s.buckets))
                .collect::<Vec<String>>(),
        )
        .execute(&mut **tx)
        .await?;
    }
    if !rollup.runs.is_empty() {
        sqlx::query(
            "INSERT INTO request_runs (hour, run_id)
             SELECT * FROM UNNEST($1::int8[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(rollup.runs.iter().map(|(h, _)| *h).collect::<Vec<i64>>())
        .bind(
            rollup
                .runs
                .iter()
                .map(|(_, r)| r.clone())
                .collect::<Vec<String>>(),
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
