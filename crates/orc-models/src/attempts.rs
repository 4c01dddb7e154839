//! Counting the upstream attempts a piece of work made: every attempt of
//! [`ModelClient`](crate::ModelClient)'s retry loop (the first and each retry, on
//! every model a fallback chain tried) while a future runs under
//! [`Attempts::scope`], whether the attempt was made in the future's own task or, for
//! a batched request, by the batcher on its behalf.
//!
//! Answers from the response cache, and answers shared with an identical request in
//! flight, made no attempt of their own: they count zero.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

tokio::task_local! {
    static COUNTER: Attempts;
}

/// A count of upstream attempts, shared by its clones.
///
/// ```
/// # async fn demo(gateway: orc_models::Gateway, model: orc_models::Model) -> orc_models::Result<()> {
/// let attempts = orc_models::Attempts::default();
/// let req = orc_models::ChatRequest::user("Say hi");
/// let answer = attempts.scope(gateway.chat(&model, &req, true)).await?;
/// // 0 when the cache answered; 2 after a 429 and a retry.
/// println!("{} after {} attempts", answer.value.text, attempts.get());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// The counter of the work running now, if it is being counted.
    pub(crate) fn current() -> Option<Attempts> {
        COUNTER.try_with(Attempts::clone).ok()
    }

    /// Whether `self` and `other` are the same counter.
    pub(crate) fn is(&self, other: &Attempts) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Adds `n` attempts.
    pub(crate) fn add(&self, n: u32) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The attempts counted so far (by every scope run with this counter or a clone,
    /// including work that was cancelled before it ended).
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Runs `work`, counting its upstream attempts here. In a nested scope, attempts
    /// count in the innermost counter only.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        COUNTER.scope(self.clone(), work).await
    }
}

/// Counts one attempt for the work running now, if it is being counted.
pub(crate) fn record_attempt() {
    // Outside a scope there is nothing to count into.
    let _ = COUNTER.try_with(|c| c.add(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attempts_are_counted_inside_the_scope_only() {
        record_attempt();
        let outer = Attempts::default();
        outer
            .scope(async {
                record_attempt();
                record_attempt();
            })
            .await;
        assert_eq!(outer.get(), 2);
        let inner = Attempts::default();
        outer
            .scope(async { inner.scope(async { record_attempt() }).await })
            .await;
        assert_eq!((outer.get(), inner.get()), (2, 1), "the innermost counts");
    }
}
