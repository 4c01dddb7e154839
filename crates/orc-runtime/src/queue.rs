//! Runs across machines, the coordinator's side: a run whose runtime has a queue hands its
//! ready steps to `orc worker` processes ([`RunDispatch`], the engine's `Dispatch`) and waits
//! for their completions; [`crate::worker`] is the other side.
//!
//! The plan travels by key: the coordinator puts the compiled plan (JSON) in the queue's plans
//! stream under the digest of its bytes, and each step message names the key; a worker fetches
//! and compiles a plan once and keeps it. Messages stay small whatever the plan's size, no file
//! has to be shared, and a resumed run (same pipeline text) puts the same key again.
//!
//! Each hand-out is recorded in the state store first ([`orc_state::Store::dispatch_step`]),
//! which numbers the attempt: the message id is run + step + attempt (so a repeated publish is
//! dropped by the stream), and a worker stores its result only under that attempt, so a worker
//! that finishes a superseded attempt (the run's coordinator died and another took over) writes
//! nothing. A result a worker stored while no coordinator listened is taken from the store by
//! the next one, so the step is not run again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use orc_engine::{Dispatch, StepOutcome, StepTask};
use orc_pipeline::Compiled;
use orc_queue::Queue;
use orc_state::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;

/// A step on the wire, from a coordinator to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMessage {
    /// The run.
    pub run_id: String,
    /// The plans stream's key of the run's plan.
    pub plan: String,
    /// The attempt the worker stores its result under.
    pub attempt: u32,
    /// When the step was ready on the coordinator, before its hand-out was recorded and it was
    /// published (microseconds since the Unix epoch): a worker's claim latency counts from it.
    pub ready_us: i64,
    /// The step.
    pub task: StepTask,
}

/// A step's completion on the wire, from a worker to the run's coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt it completes.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// How it ended.
    pub outcome: StepOutcome,
}

/// The plans stream's key of a serialized plan: a digest of its bytes.
pub(crate) fn plan_key(plan: &[u8]) -> String {
    blake3::hash(plan).to_hex().to_string()
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<StepOutcome>>>>;

/// One run's hand-outs: publishes its steps, routes their completions back to the step waiting
/// for each.
#[derive(Debug)]
pub(crate) struct RunDispatch {
    queue: Queue,
    store: Store,
    run_id: String,
    plan: String,
    waiting: Waiting,
    _follow: AbortOnDropHandle<()>,
}

impl RunDispatch {
    /// Puts the run's plan in the queue and starts following the run's completions.
    pub(crate) async fn start(
        queue: Queue,
        store: Store,
        run_id: &str,
        compiled: &Compiled,
    ) -> Result<RunDispatch, String> {
        let plan = serde_json::to_vec(&*compiled.plan).map_err(|e| e.to_string())?;
        let key = plan_key(&plan);
        queue
            .put_plan(&key, Bytes::from(plan))
            .await
            .map_err(|e| e.to_string())?;
        let mut completions = queue.completions(run_id).await.map_err(|e| e.to_string())?;
        let waiting: Waiting = Arc::default();
        let routes = Arc::clone(&waiting);
        let follow = tokio::spawn(async move {
            while let Some(next) = completions.next().await {
                let payload = match next {
                    Ok(payload) => payload,
                    Err(e) => {
                        tracing::warn!("queue: {e}");
                        continue;
                    }
                };
                let Ok(done) = serde_json::from_slice::<Completion>(&payload) else {
                    tracing::warn!("queue: a completion that does not decode was ignored");
                    continue;
                };
                let waiter = routes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&done.step_id);
                // A step nobody waits for finished under an earlier coordinator: its result
                // is in the store, where the next hand-out of the step finds it.
                if let Some(waiter) = waiter {
                    tracing::debug!(step = %done.step_id, worker = %done.worker, "step completed");
                    let _ = waiter.send(done.outcome);
                }
            }
            // The queue's connection is gone for good: every waiting step fails.
            routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        Ok(RunDispatch {
            queue,
            store,
            run_id: run_id.to_owned(),
            plan: key,
            waiting,
            _follow: AbortOnDropHandle::new(follow),
        })
    }

    async fn hand_out(&self, task: StepTask) -> Result<StepOutcome, String> {
        let ready_us = now_us();
        let step_id = task.step_id.clone();
        let (tx, rx) = oneshot::channel();
        // Waiting before the hand-out, so the completion cannot come first.
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(step_id.clone(), tx);
        let forget = Forget(&self.waiting, &step_id);
        let dispatched = self
            .store
            .dispatch_step(&self.run_id, &step_id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(stored) = dispatched.outcome {
            return serde_json::from_value(stored)
                .map_err(|e| format!("the stored result of a worker cannot be read: {e}"));
        }
        let pool = task
            .pool
            .clone()
            .unwrap_or_else(|| self.queue.options().pool.clone());
        let message = StepMessage {
            run_id: self.run_id.clone(),
            plan: self.plan.clone(),
            attempt: dispatched.attempt,
            ready_us,
            task,
        };
        let payload = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
        let id = format!("{}/{}/{}", self.run_id, step_id, dispatched.attempt);
        self.queue
            .publish_step(&pool, &id, Bytes::from(payload))
            .await
            .map_err(|e| e.to_string())?;
        let outcome = rx
            .await
            .map_err(|_| "the queue's connection closed before the step completed".to_owned());
        drop(forget);
        outcome
    }
}

/// Takes a step off the waiting list however its hand-out ends (an error, a cancel).
struct Forget<'a>(&'a Waiting, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.1);
    }
}

impl Dispatch for RunDispatch {
    fn dispatch(
        &self,
        task: StepTask,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send + '_>> {
        Box::pin(self.hand_out(task))
    }
}
