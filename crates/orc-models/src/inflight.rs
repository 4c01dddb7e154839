//! In-flight de-duplication: identical requests that are in flight at the same time
//! share one upstream call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

type Cell<T> = Arc<OnceCell<T>>;

/// Calls in flight, by request key.
///
/// The first caller of a key runs the call; callers that arrive while it runs wait
/// for its outcome instead of calling again. If the first caller is cancelled, a
/// waiting caller runs the call itself. The entry is removed when the call ends, so a
/// later identical request calls again (the response cache answers it, if enabled).
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    /// Keyed by request digests: foldhash, not SipHash, hashes them.
    calls: Mutex<HashMap<[u8; 32], Cell<T>, foldhash::fast::RandomState>>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            calls: Mutex::new(HashMap::default()),
        }
    }
}

impl<T: Clone> InFlight<T> {
    /// Runs `call` for `key` unless an identical call is in flight, in which case its
    /// outcome is shared. The flag says whether the outcome came from another caller.
    pub(crate) async fn run<F, Fut>(&self, key: [u8; 32], call: F) -> (T, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = Arc::clone(
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        let ran = AtomicBool::new(false);
        let outcome = cell
            .get_or_init(|| {
                ran.store(true, Ordering::Relaxed);
                call()
            })
            .await
            .clone();
        let ran = ran.load(Ordering::Relaxed);
        if ran {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            if calls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                calls.remove(&key);
            }
        }
        (outcome, !ran)
    }

    /// How many distinct calls are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_calls_share_one() {
        let flight = Arc::new(InFlight::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (flight, calls) = (Arc::clone(&flight), Arc::clone(&calls));
            tasks.spawn(async move {
                flight
                    .run([1; 32], || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        7
                    })
                    .await
            });
        }
        let mut shared = 0;
        while let Some(joined) = tasks.join_next().await {
            let (value, was_shared) = joined.unwrap_or((0, false));
            assert_eq!(value, 7);
            shared += usize::from(was_shared);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(shared, 9);
        assert_eq!(flight.len(), 0, "the entry is gone once the call ends");
        let (_, was_shared) = flight.run([1; 32], || async { 8 }).await;
        assert!(!was_shared, "a later call runs again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_over() {
        let flight = Arc::new(InFlight::<u32>::default());
        let leader = {
            let flight = Arc::clone(&flight);
            tokio::spawn(async move {
                flight
                    .run([2; 32], || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let follower = {
            let flight = Arc::clone(&flight);
            tokio::spawn(async move { flight.run([2; 32], || async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        leader.abort();
        let (value, shared) = follower.await.unwrap_or((0, true));
        assert_eq!((value, shared), (2, false));
    }
}
