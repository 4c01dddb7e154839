//! The summary of a workload's timed runs: median, quartiles and extremes.

use serde::{Deserialize, Serialize};

/// Seconds per run, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The median run.
    pub median: f64,
    /// The fastest run.
    pub min: f64,
    /// The slowest run.
    pub max: f64,
    /// The first quartile (linear interpolation between runs).
    pub q1: f64,
    /// The third quartile.
    pub q3: f64,
}

impl Summary {
    /// The summary of `samples` (seconds); `None` when there is none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (sorted.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let (a, b) = (sorted[lo], sorted[hi]);
            a + (b - a) * (pos - lo as f64)
        };
        Some(Summary {
            median: at(0.5),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            q1: at(0.25),
            q3: at(0.75),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_quartiles_and_extremes() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (s.median, s.min, s.max, s.q1, s.q3),
            (3.0, 1.0, 5.0, 2.0, 4.0)
        );
        let s = Summary::of(&[1.0, 2.0]).unwrap_or_else(|| unreachable!());
        assert_eq!(s.median, 1.5);
        assert!(Summary::of(&[]).is_none());
    }
}
