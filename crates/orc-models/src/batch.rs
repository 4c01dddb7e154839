//! Request batching: items for the same model and endpoint that arrive within a short
//! window go upstream as one request, where the API takes a list (embeddings,
//! completions).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::attempts::Attempts;
use crate::error::{Error, Result};
use crate::usage::Usage;

/// How items are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most items in one upstream request (`batch_size`).
    pub batch_size: usize,
    /// How long the first item of a batch waits for others (`max_wait_time`).
    pub max_wait: Duration,
    /// Upstream batch requests in flight at once, per model and endpoint
    /// (`max_concurrent_batches`).
    pub max_concurrent_batches: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch_size: 20,
            max_wait: Duration::from_millis(50),
            max_concurrent_batches: 5,
        }
    }
}

/// What one upstream batch call returns: one answer per item, in order, and the
/// usage of the whole call.
pub(crate) type BatchOutcome<T> = Result<(Vec<T>, Usage)>;

/// The future of one upstream batch call.
pub(crate) type BatchFuture<T> = Pin<Box<dyn Future<Output = BatchOutcome<T>> + Send>>;

/// The upstream call for a batch of inputs.
pub(crate) type BatchCall<T> = Arc<dyn Fn(Vec<String>) -> BatchFuture<T> + Send + Sync>;

/// One item's answer and its share of the batch's usage.
pub(crate) type ItemOutcome<T> = Result<(T, Usage)>;

struct Item<T> {
    input: String,
    reply: oneshot::Sender<ItemOutcome<T>>,
    /// Where the submitter counts its upstream attempts, if it does: the batch's
    /// attempts are made on its behalf.
    attempts: Option<Attempts>,
}

/// A queue of items for one model and endpoint, drained by a task that owns the
/// upstream calls. Dropping the batcher stops its task.
pub(crate) struct Batcher<T> {
    items: mpsc::Sender<Item<T>>,
    _task: AbortOnDropHandle<()>,
}

impl<T: Clone + Send + 'static> Batcher<T> {
    /// Starts the batcher's task on the current runtime.
    pub(crate) fn start(options: BatchOptions, call: BatchCall<T>) -> Self {
        let capacity = options.batch_size.max(1) * options.max_concurrent_batches.max(1) * 4;
        let (items, rx) = mpsc::channel(capacity);
        let task = tokio::spawn(drain(rx, options, call));
        Batcher {
            items,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Queues `input` and waits for its answer.
    pub(crate) async fn submit(&self, input: String) -> ItemOutcome<T> {
        let (reply, answer) = oneshot::channel();
        let item = Item {
            input,
            reply,
            attempts: Attempts::current(),
        };
        if self.items.send(item).await.is_err() {
            return Err(Error::Client {
                message: "the batcher stopped".to_owned(),
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::Client {
                message: "the batch call was dropped before it answered".to_owned(),
            })
        })
    }
}

async fn drain<T: Clone + Send + 'static>(
    mut rx: mpsc::Receiver<Item<T>>,
    options: BatchOptions,
    call: BatchCall<T>,
) {
    let limit = Arc::new(Semaphore::new(options.max_concurrent_batches.max(1)));
    let mut calls = JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + options.max_wait;
        while batch.len() < options.batch_size.max(1) {
            // Items already queued join without waiting.
            match rx.try_recv() {
                Ok(item) => {
                    batch.push(item);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        while calls.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let call = Arc::clone(&call);
        calls.spawn(async move {
            let _permit = permit;
            send(batch, call).await;
        });
    }
    while calls.join_next().await.is_some() {}
}

/// Sends one batch upstream (identical inputs once) and hands each item its answer
/// with its share of the usage.
async fn send<T: Clone>(batch: Vec<Item<T>>, call: BatchCall<T>) {
    let mut inputs: Vec<String> = Vec::with_capacity(batch.len());
    let mut slots = Vec::with_capacity(batch.len());
    for item in &batch {
        let slot = match inputs.iter().position(|i| *i == item.input) {
            Some(at) => at,
            None => {
                inputs.push(item.input.clone());
                inputs.len() - 1
            }
        };
        slots.push(slot);
    }
    let count = inputs.len();
    let weights: Vec<u64> = inputs.iter().map(|i| i.len().max(1) as u64).collect();
    let attempts = Attempts::default();
    let outcome = attempts.scope(call(inputs)).await;
    // Each piece of work counts the batch's attempts once, however many of its items
    // the batch carried.
    let mut counted: Vec<&Attempts> = Vec::new();
    for counter in batch.iter().filter_map(|item| item.attempts.as_ref()) {
        if !counted.iter().any(|c| c.is(counter)) {
            counter.add(attempts.get());
            counted.push(counter);
        }
    }
    match outcome {
        Ok((answers, usage)) if answers.len() == count => {
            let shares = split_usage(usage, &weights);
            let mut given = vec![false; count];
            for (item, slot) in batch.into_iter().zip(slots) {
                // The usage of an input sent once is counted once.
                let share = if given[slot] {
                    Usage::default()
                } else {
                    given[slot] = true;
                    shares[slot]
                };
                let _ = item.reply.send(Ok((answers[slot].clone(), share)));
            }
        }
        Ok((answers, _)) => {
            let error = Error::Client {
                message: format!(
                    "the provider answered {} items for a batch of {count}",
                    answers.len()
                ),
            };
            for item in batch {
                let _ = item.reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for item in batch {
                let _ = item.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Splits a batch's usage over its inputs in proportion to their lengths, so the
/// shares add up to the whole.
fn split_usage(total: Usage, weights: &[u64]) -> Vec<Usage> {
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let share = |whole: u64, w: u64| -> u64 {
        u64::try_from(u128::from(whole) * u128::from(w) / u128::from(sum)).unwrap_or(u64::MAX)
    };
    let mut shares: Vec<Usage> = weights
        .iter()
        .map(|w| Usage {
            input_tokens: share(total.input_tokens, *w),
            cached_input_tokens: share(total.cached_input_tokens, *w),
            output_tokens: share(total.output_tokens, *w),
        })
        .collect();
    // Rounding leftovers go to the first input.
    let given = shares.iter().fold(Usage::default(), |a, b| a + *b);
    if let Some(first) = shares.first_mut() {
        first.input_tokens += total.input_tokens.saturating_sub(given.input_tokens);
        first.cached_input_tokens += total
            .cached_input_tokens
            .saturating_sub(given.cached_input_tokens);
        first.output_tokens += total.output_tokens.saturating_sub(given.output_tokens);
    }
    shares
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn echo_call(
        calls: Arc<AtomicUsize>,
        sizes: Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> BatchCall<String> {
        Arc::new(move |inputs: Vec<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            sizes.lock().unwrap().push(inputs.len());
            Box::pin(async move {
                let usage = Usage {
                    input_tokens: inputs.len() as u64 * 3,
                    ..Usage::default()
                };
                Ok((
                    inputs.into_iter().map(|i| i.to_uppercase()).collect(),
                    usage,
                ))
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn items_within_the_window_share_a_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let options = BatchOptions {
            batch_size: 8,
            max_wait: Duration::from_millis(50),
            max_concurrent_batches: 2,
        };
        let batcher = Arc::new(Batcher::start(
            options,
            echo_call(Arc::clone(&calls), Arc::clone(&sizes)),
        ));
        let mut tasks = JoinSet::new();
        for i in 0..20 {
            let batcher = Arc::clone(&batcher);
            tasks.spawn(async move { (i, batcher.submit(format!("item{i}")).await) });
        }
        let mut tokens = 0;
        while let Some(joined) = tasks.join_next().await {
            let (i, outcome) = joined.unwrap();
            let (answer, usage) = outcome.unwrap();
            assert_eq!(answer, format!("ITEM{i}"));
            tokens += usage.input_tokens;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "ceil(20 / 8) calls");
        assert_eq!(tokens, 60, "the shares add up to the calls' usage");
        assert!(sizes.lock().unwrap().iter().all(|s| *s <= 8));
    }

    #[tokio::test(start_paused = true)]
    async fn identical_inputs_go_once_and_errors_reach_every_item() {
        let calls = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::start(
            BatchOptions::default(),
            echo_call(calls, Arc::clone(&sizes)),
        ));
        let (a, b) = tokio::join!(batcher.submit("same".into()), batcher.submit("same".into()));
        assert_eq!(a.unwrap().0, "SAME");
        assert_eq!(b.unwrap().0, "SAME");
        assert_eq!(*sizes.lock().unwrap(), [1]);

        let failing: BatchCall<String> = Arc::new(|_| {
            Box::pin(async {
                Err(Error::Client {
                    message: "boom".into(),
                })
            })
        });
        let batcher = Arc::new(Batcher::start(BatchOptions::default(), failing));
        let (a, b) = tokio::join!(batcher.submit("x".into()), batcher.submit("y".into()));
        assert!(a.is_err() && b.is_err());
    }

    #[test]
    fn usage_shares_add_up() {
        let total = Usage {
            input_tokens: 10,
            cached_input_tokens: 1,
            output_tokens: 7,
        };
        let shares = split_usage(total, &[1, 1, 1]);
        let sum = shares.iter().fold(Usage::default(), |a, b| a + *b);
        assert_eq!(sum, total);
    }
}
