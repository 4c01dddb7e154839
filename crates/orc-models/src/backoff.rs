//! [`Backoff`]: how long to wait before each retry of something that failed. A leaf:
//! the model calls' [`RetryPolicy`](crate::RetryPolicy) waits by it, and any other
//! retry loop (a pipeline step's) can use the same policy.

use std::time::Duration;

/// Exponential back-off: `initial · 2^(retry-1)`, at most `max`; with `jitter`, a
/// random wait between half and all of that, so that many callers do not retry in
/// step.
///
/// ```
/// use std::time::Duration;
/// use orc_models::Backoff;
///
/// let backoff = Backoff::default(); // 500 ms doubling up to 30 s, with jitter
/// assert_eq!(backoff.full(1), Duration::from_millis(500));
/// assert_eq!(backoff.full(3), Duration::from_secs(2));
/// assert_eq!(backoff.full(20), Duration::from_secs(30));
/// let wait = backoff.delay(2);
/// assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry; it doubles with each retry after.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Whether the wait is randomized (half to all of the computed wait).
    pub jitter: bool,
}

impl Default for Backoff {
    /// 500 ms, doubling up to 30 s, with jitter.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first) without jitter:
    /// `initial · 2^(retry-1)`, at most `max`. The most [`Backoff::delay`] waits.
    pub fn full(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry number `retry` (1 for the first): [`Backoff::full`], or
    /// with `jitter` a random wait from half of it to all of it.
    pub fn delay(&self, retry: u32) -> Duration {
        let full = self.full(retry);
        if self.jitter {
            full / 2 + (full / 2).mul_f64(fastrand::f64())
        } else {
            full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let backoff = Backoff::default();
        assert_eq!(backoff.full(0), Duration::from_millis(500));
        assert_eq!(backoff.full(1), Duration::from_millis(500));
        assert_eq!(backoff.full(2), Duration::from_secs(1));
        assert_eq!(backoff.full(7), Duration::from_secs(30));
        assert_eq!(backoff.full(100), Duration::from_secs(30));
        assert_eq!(backoff.full(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_waits_half_to_all() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: true,
        };
        for retry in 1..8 {
            let full = backoff.full(retry);
            for _ in 0..50 {
                let wait = backoff.delay(retry);
                assert!(wait >= full / 2 && wait <= full, "{retry}: {wait:?}");
            }
        }
        let exact = Backoff {
            jitter: false,
            ..backoff
        };
        assert_eq!(exact.delay(3), Duration::from_secs(4));
    }
}
