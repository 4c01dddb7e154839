//! The model requests summed per hour and per minute as they are recorded, so that a report or a
//! series reads a few rows per hour or minute instead of one per request.
//!
//! A backend writes a batch's [`Rollup`] in the same transaction (script, pipeline) as the batch's
//! rows, adding to what the hour's and minute's sums hold:
//!
//! - per hour and report key ([`GroupKey`]: model, provider, pipeline, cache lookup, error kind,
//!   success): requests, cost, latency, tokens and the latency buckets' counts ([`Hist`]): what
//!   [`Store::request_stats`](crate::Store::request_stats) sums, a day being 24 hours of them;
//! - per minute: requests, errors, cache hits and misses, cost and latency buckets: the busiest
//!   minute and [`Store::request_series`](crate::Store::request_series) by whole minutes;
//! - per hour, the runs that made requests, for the count of distinct runs.
//!
//! A period that does not start or end on a whole hour (minute) reads its partial hours (minutes)
//! from the request rows ([`split`]), so every period sums exactly what it did before rollups.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Error;

use crate::latency;
use crate::records::{MetricGroup, MetricRecord, SlotGroup};

/// A minute, µs.
pub(crate) const MINUTE: i64 = 60_000_000;
/// An hour, µs.
pub(crate) const HOUR: i64 = 3_600_000_000;

/// Requests per latency bucket.
pub(crate) type Hist = BTreeMap<i64, i64>;

/// What the report groups requests by within an hour.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct GroupKey {
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) pipeline_id: Option<String>,
    pub(crate) cache_hit: Option<bool>,
    pub(crate) error_kind: Option<String>,
    pub(crate) success: bool,
}

impl GroupKey {
    /// The SQL tables' form of the keys that may be absent: `''` for no pipeline or error kind,
    /// `-1` for a request that did not consult the response cache (a unique key treats NULLs as
    /// different from each other).
    pub(crate) fn pipeline_column(&self) -> &str {
        self.pipeline_id.as_deref().unwrap_or("")
    }

    pub(crate) fn cache_hit_column(&self) -> i64 {
        self.cache_hit.map_or(-1, i64::from)
    }

    pub(crate) fn error_kind_column(&self) -> &str {
        self.error_kind.as_deref().unwrap_or("")
    }
}

/// The sums of one hour's requests that share a [`GroupKey`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sums {
    pub(crate) requests: i64,
    pub(crate) cost: f64,
    pub(crate) latency_ms: f64,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) buckets: Hist,
}

impl Sums {
    /// Adds `other`'s sums to these.
    pub(crate) fn add(&mut self, other: &Sums) {
        self.requests += other.requests;
        self.cost += other.cost;
        self.latency_ms += other.latency_ms;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        merge(&mut self.buckets, &other.buckets);
    }
}

/// The sums of one minute's requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MinuteSums {
    pub(crate) requests: i64,
    pub(crate) errors: i64,
    pub(crate) cache_hits: i64,
    pub(crate) cache_misses: i64,
    pub(crate) cost: f64,
    pub(crate) buckets: Hist,
}

/// What a batch of requests adds to the rollups. Ordered maps: every writer touches the rows in
/// the same order, so concurrent writers (PostgreSQL) do not deadlock on each other's rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollup {
    pub(crate) hours: BTreeMap<(i64, GroupKey), Sums>,
    pub(crate) minutes: BTreeMap<i64, MinuteSums>,
    /// Hour and run of each request a run made.
    pub(crate) runs: BTreeSet<(i64, String)>,
}

impl Rollup {
    pub(crate) fn of(records: &[MetricRecord]) -> Rollup {
        let mut r = Rollup::default();
        for m in records {
            let bucket = latency::bucket(m.latency_ms);
            let hour = m.at.div_euclid(HOUR);
            let key = GroupKey {
                model: m.model.clone(),
                provider: m.provider.clone(),
                pipeline_id: m.pipeline_id.clone(),
                cache_hit: m.cache_hit,
                error_kind: m.error_kind.clone(),
                success: m.success,
            };
            let s = r.hours.entry((hour, key)).or_default();
            s.requests += 1;
            s.cost += m.cost;
            s.latency_ms += m.latency_ms;
            s.input_tokens += m.input_tokens;
            s.output_tokens += m.output_tokens;
            *s.buckets.entry(bucket).or_default() += 1;
            let s = r.minutes.entry(m.at.div_euclid(MINUTE)).or_default();
            s.requests += 1;
            s.errors += i64::from(!m.success);
            s.cache_hits += i64::from(m.cache_hit == Some(true));
            s.cache_misses += i64::from(m.cache_hit == Some(false));
            s.cost += m.cost;
            *s.buckets.entry(bucket).or_default() += 1;
            if let Some(run) = &m.run_id {
                r.runs.insert((hour, run.clone()));
            }
        }
        r
    }
}

/// A histogram as stored: a JSON object from bucket to count, `{"97":3,"120":1}`.
pub(crate) fn hist_text(h: &Hist) -> String {
    let mut out = String::with_capacity(2 + h.len() * 10);
    out.push('{');
    for (i, (bucket, n)) in h.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{bucket}\":{n}");
    }
    out.push('}');
    out
}

/// A stored histogram read back.
pub(crate) fn parse_hist(text: &str) -> Result<Hist, String> {
    serde_json::from_str(text).map_err(|e| format!("a latency histogram `{text}`: {e}"))
}

/// Adds `from`'s counts to `into`'s.
pub(crate) fn merge(into: &mut Hist, from: &Hist) {
    for (bucket, n) in from {
        *into.entry(*bucket).or_default() += n;
    }
}

/// `[since, until)` as the whole `unit`s in it (their numbers, `[lo, hi)`), if any, and the
/// ranges (µs) of it outside them: at most one before and one after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) whole: Option<(i64, i64)>,
    pub(crate) edges: Vec<(i64, i64)>,
}

pub(crate) fn split(since: i64, until: i64, unit: i64) -> Split {
    let lo = since.div_euclid(unit) + i64::from(since.rem_euclid(unit) != 0);
    let hi = until.div_euclid(unit);
    if lo >= hi {
        return Split {
            whole: None,
            edges: vec![(since, until)],
        };
    }
    let (start, end) = (lo.saturating_mul(unit), hi.saturating_mul(unit));
    let edges = [(since, start), (end, until)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    Split {
        whole: Some((lo, hi)),
        edges,
    }
}

/// How a series of `step` over `[since, until)` reads: whole minutes from the minute rollups
/// when each falls in one step (the series starts on a minute and steps whole minutes), and
/// everything else from the rows.
pub(crate) fn series_split(since: i64, until: i64, step: i64) -> Split {
    if since.rem_euclid(MINUTE) == 0 && step % MINUTE == 0 {
        split(since, until, MINUTE)
    } else {
        Split {
            whole: None,
            edges: vec![(since, until)],
        }
    }
}

/// A stored rollup that does not read back.
pub(crate) fn corrupt(url: &str, reason: String) -> Error {
    Error::Corrupt {
        url: url.to_owned(),
        what: "the request rollups".to_owned(),
        reason,
    }
}

/// Stored cache lookups that do not read back.
pub(crate) fn corrupt_lookups(url: &str, reason: String) -> Error {
    Error::Corrupt {
        url: url.to_owned(),
        what: "the cache lookups".to_owned(),
        reason,
    }
}

/// An hour's stored sums as the report's group.
pub(crate) fn metric_group(key: GroupKey, sums: Sums) -> MetricGroup {
    MetricGroup {
        model: key.model,
        provider: key.provider,
        pipeline_id: key.pipeline_id,
        cache_hit: key.cache_hit,
        error_kind: key.error_kind,
        success: key.success,
        buckets: sums.buckets.into_iter().collect(),
        requests: sums.requests,
        cost: sums.cost,
        latency_ms: sums.latency_ms,
        input_tokens: sums.input_tokens,
        output_tokens: sums.output_tokens,
    }
}

/// A minute's stored sums as its slot's group in a series of `step` from `since`.
pub(crate) fn slot_group(minute: i64, sums: MinuteSums, since: i64, step: i64) -> SlotGroup {
    SlotGroup {
        slot: (minute.saturating_mul(MINUTE) - since).div_euclid(step.max(1)),
        requests: sums.requests,
        errors: sums.errors,
        cache_hits: sums.cache_hits,
        cache_misses: sums.cache_misses,
        cost: sums.cost,
        buckets: sums.buckets.into_iter().collect(),
    }
}

/// The busier of two minutes (the earlier of two as busy).
pub(crate) fn busier(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// The key of a stored hour row from the SQL tables' columns (see [`GroupKey::pipeline_column`]).
pub(crate) fn key_of_columns(
    model: String,
    provider: String,
    pipeline_id: String,
    cache_hit: i64,
    error_kind: String,
    success: bool,
) -> GroupKey {
    GroupKey {
        model,
        provider,
        pipeline_id: (!pipeline_id.is_empty()).then_some(pipeline_id),
        cache_hit: (cache_hit >= 0).then_some(cache_hit > 0),
        error_kind: (!error_kind.is_empty()).then_some(error_kind),
        success,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_period_splits_into_whole_units_and_edges() {
        let h = HOUR;
        assert_eq!(
            split(0, 24 * h, h),
            Split {
                whole: Some((0, 24)),
                edges: vec![]
            }
        );
        assert_eq!(
            split(10, 3 * h + 5, h),
            Split {
                whole: Some((1, 3)),
                edges: vec![(10, h), (3 * h, 3 * h + 5)]
            }
        );
        // No whole hour: all of it is an edge.
        assert_eq!(
            split(10, h + 5, h),
            Split {
                whole: None,
                edges: vec![(10, h + 5)]
            }
        );
        assert_eq!(
            split(h, 2 * h - 1, h),
            Split {
                whole: None,
                edges: vec![(h, 2 * h - 1)]
            }
        );
    }

    #[test]
    fn histograms_round_trip_and_merge() {
        let mut a: Hist = [(97, 3), (120, 1)].into_iter().collect();
        assert_eq!(hist_text(&a), r#"{"97":3,"120":1}"#);
        assert_eq!(parse_hist(&hist_text(&a)).unwrap(), a);
        assert_eq!(parse_hist("{}").unwrap(), Hist::new());
        // PostgreSQL's jsonb prints spaces.
        let b = parse_hist(r#"{"120": 2, "0": 1}"#).unwrap();
        merge(&mut a, &b);
        assert_eq!(hist_text(&a), r#"{"0":1,"97":3,"120":3}"#);
        assert!(parse_hist("[1]").is_err());
    }
}
