//! Retrying calls that failed in a way another attempt may fix.

use std::future::Future;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The wait before each retry when the provider gave no `Retry-After`. Its
    /// `jitter` also adds up to a tenth (at most 1 s) to a `Retry-After`, so that
    /// many callers do not retry in step.
    pub backoff: Backoff,
    /// The longest `Retry-After` that is waited for; a provider that asks for more is
    /// not retried (the error is returned, so a caller can fall back to another model).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait after `error` before retry number `retry`; `None` when the
    /// error must not be retried.
    fn delay(&self, retry: u32, error: &Error) -> Option<Duration> {
        if !error.is_retryable() {
            return None;
        }
        match error.retry_after() {
            Some(after) if after > self.max_retry_after => None,
            Some(after) if self.backoff.jitter => {
                let extra = (after / 10).min(Duration::from_secs(1));
                Some(after + extra.mul_f64(fastrand::f64()))
            }
            Some(after) => Some(after),
            None => Some(self.backoff.delay(retry)),
        }
    }
}

/// Calls `f` until it succeeds, fails with an error that is not
/// [`Error::Retryable`], or `policy.max_attempts` attempts have been made; between
/// attempts it waits the back-off, or the provider's `Retry-After` when it gave one.
///
/// Returns the first success or the last error.
pub async fn call_with_retries<T, F, Fut>(policy: &RetryPolicy, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retrying(policy, || {}, f).await
}

/// [`call_with_retries`], calling `on_retry` each time a retry is about to be sent
/// (after its back-off), so that the caller can count it. Every attempt, the first
/// included, is counted in the [`Attempts`](crate::Attempts) of the work it runs for.
pub(crate) async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    mut on_retry: impl FnMut(),
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        crate::attempts::record_attempt();
        let error = match f().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if attempt >= policy.max_attempts {
            return Err(error);
        }
        let Some(delay) = policy.delay(attempt, &error) else {
            return Err(error);
        };
        tracing::warn!(
            attempt,
            max_attempts = policy.max_attempts,
            delay_ms = delay.as_millis() as u64,
            "model call failed, retrying: {error}"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
        on_retry();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;
    use crate::error::{CallSite, FailureKind};
    use crate::provider_kind::ProviderKind;

    fn failure(kind: FailureKind, status: u16, after: Option<Duration>) -> Error {
        let site = CallSite {
            provider: ProviderKind::OpenAi,
            model: "m".into(),
            status: Some(status),
        };
        Error::call(site, kind, "nope", after)
    }

    /// Runs `call_with_retries` over a script of results; returns the outcome and the
    /// (virtual) times of the attempts, relative to the start.
    async fn run(policy: &RetryPolicy, script: Vec<Result<u32>>) -> (Result<u32>, Vec<Duration>) {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let script = Mutex::new(script.into_iter());
        let outcome = call_with_retries(policy, || {
            if let Ok(mut times) = times.lock() {
                times.push(start.elapsed());
            }
            let next = script.lock().ok().and_then(|mut s| s.next());
            async move { next.unwrap_or(Ok(0)) }
        })
        .await;
        (outcome, times.into_inner().unwrap_or_default())
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_with_jitter() {
        let policy = RetryPolicy::default();
        let server = || Err(failure(FailureKind::Server, 500, None));
        let (outcome, times) = run(&policy, vec![server(), server(), server(), Ok(7)]).await;
        assert_eq!(outcome.ok(), Some(7));
        assert_eq!(times.len(), 4);
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps.iter().enumerate() {
            let full = policy.backoff.full(i as u32 + 1);
            assert!(
                *gap >= full / 2 && *gap <= full,
                "retry {}: {gap:?} vs {full:?}",
                i + 1
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let policy = RetryPolicy::default();
        let limited = Err(failure(
            FailureKind::RateLimited,
            429,
            Some(Duration::from_secs(3)),
        ));
        let (outcome, times) = run(&policy, vec![limited, Ok(1)]).await;
        assert_eq!(outcome.ok(), Some(1));
        let gap = times[1] - times[0];
        assert!(
            gap >= Duration::from_secs(3) && gap <= Duration::from_millis(3300),
            "{gap:?}"
        );
        let exact = RetryPolicy {
            backoff: Backoff {
                jitter: false,
                ..Backoff::default()
            },
            ..RetryPolicy::default()
        };
        let limited = Err(failure(
            FailureKind::RateLimited,
            429,
            Some(Duration::from_millis(1500)),
        ));
        let (_, times) = run(&exact, vec![limited, Ok(1)]).await;
        assert_eq!(times[1] - times[0], Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_limit_is_not_waited_for() {
        let policy = RetryPolicy::default();
        let limited = Err(failure(
            FailureKind::RateLimited,
            429,
            Some(Duration::from_secs(3600)),
        ));
        let (outcome, times) = run(&policy, vec![limited, Ok(1)]).await;
        assert_eq!(outcome.err().and_then(|e| e.status()), Some(429));
        assert_eq!(times, [Duration::ZERO]);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_not_retried() {
        let policy = RetryPolicy::default();
        let rejected = Err(failure(FailureKind::Rejected, 400, None));
        let (outcome, times) = run(&policy, vec![rejected, Ok(1)]).await;
        assert_eq!(outcome.err().and_then(|e| e.status()), Some(400));
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff {
                jitter: false,
                ..Backoff::default()
            },
            ..RetryPolicy::default()
        };
        let server = || Err(failure(FailureKind::Server, 503, None));
        let (outcome, times) = run(&policy, vec![server(), server(), server(), Ok(1)]).await;
        assert_eq!(outcome.err().and_then(|e| e.status()), Some(503));
        assert_eq!(
            times,
            [
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_millis(1500)
            ]
        );
        let (outcome, times) = run(&RetryPolicy::none(), vec![server(), Ok(1)]).await;
        assert!(outcome.is_err());
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_retry_is_announced_once() {
        let policy = RetryPolicy::default();
        let server = || Err(failure(FailureKind::Server, 500, None));
        let mut script = vec![server(), server(), Ok(3)].into_iter();
        let mut retries = 0;
        let outcome = retrying(
            &policy,
            || retries += 1,
            || {
                let next = script.next().unwrap_or(Ok(0));
                async move { next }
            },
        )
        .await;
        assert_eq!(outcome.ok(), Some(3));
        assert_eq!(retries, 2);
    }
}
