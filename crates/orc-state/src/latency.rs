//! Latencies as log-scale buckets, so that SQL (which has no percentile function) gets
//! percentiles from `GROUP BY latency_bucket` counts.
//!
//! Bucket `b` holds the latencies from `GROWTH^b` to `GROWTH^(b+1)` microseconds (bucket 0 also
//! everything under a microsecond); a percentile reads as the geometric middle of the bucket it
//! falls in, `GROWTH^(b+½)` µs. With `GROWTH` = 1.04 that is within a factor of √1.04 of the
//! true value: **at most 2 % off** (relative), at every scale from a microsecond to hours, in
//! about 60 buckets per decade (an hour is bucket 561).

/// The ratio of one bucket's upper bound to its lower bound.
const GROWTH: f64 = 1.04;

/// The largest relative error of a percentile read from buckets: √[`GROWTH`] − 1 (0.0198),
/// rounded up.
pub const LATENCY_ERROR_BOUND: f64 = 0.02;

/// The bucket of a latency of `ms` milliseconds (NaN and negatives in bucket 0).
// The logarithm of a finite positive f64 in microseconds is at most ~18,000 buckets.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn bucket(ms: f64) -> i64 {
    let us = ms * 1000.0;
    if us.is_nan() || us <= 1.0 {
        return 0;
    }
    (us.ln() / GROWTH.ln()).floor().min(1.0e6) as i64
}

/// The milliseconds a bucket stands for: its geometric middle.
// Bucket indices are small integers.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn middle_ms(bucket: i64) -> f64 {
    GROWTH.powf(bucket as f64 + 0.5) / 1000.0
}

/// The `q`-quantile (0 ≤ q ≤ 1) of the latencies counted per bucket in `counts` (any order,
/// a bucket may repeat), in milliseconds; `None` without any.
// Counts fit an f64 well enough to rank.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub(crate) fn quantile(counts: &[(i64, u64)], q: f64) -> Option<f64> {
    let mut sorted: Vec<(i64, u64)> = counts.iter().copied().filter(|c| c.1 > 0).collect();
    sorted.sort_unstable_by_key(|c| c.0);
    let total: u64 = sorted.iter().map(|c| c.1).sum();
    if total == 0 {
        return None;
    }
    // Nearest rank: the smallest latency with at least q·total at or below it.
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (bucket, count) in &sorted {
        seen += count;
        if seen >= rank {
            return Some(middle_ms(*bucket));
        }
    }
    sorted.last().map(|c| middle_ms(c.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_middle_is_within_the_error_bound_of_every_latency_in_it() {
        for ms in [
            0.0015, 0.02, 0.7, 1.0, 3.3, 42.0, 250.0, 999.9, 12_345.0, 3.6e6,
        ] {
            let got = middle_ms(bucket(ms));
            let error = (got - ms).abs() / ms;
            assert!(error <= LATENCY_ERROR_BOUND, "{ms} ms read as {got} ms");
        }
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(-3.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(3.6e6), 561);
    }

    #[test]
    fn quantiles_rank_the_counts() {
        // 90 calls of 10 ms, 10 of 1 s: the median is 10 ms, the 95th percentile 1 s.
        let counts = [(bucket(1000.0), 10), (bucket(10.0), 90)];
        let near = |got: Option<f64>, want: f64| {
            let got = got.unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() / want <= LATENCY_ERROR_BOUND,
                "{got} vs {want}"
            );
        };
        near(quantile(&counts, 0.5), 10.0);
        near(quantile(&counts, 0.90), 10.0);
        near(quantile(&counts, 0.95), 1000.0);
        near(quantile(&counts, 1.0), 1000.0);
        near(quantile(&counts, 0.0), 10.0);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(3, 0)], 0.5), None);
    }
}
