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
//!
//! A step never waits for ever: one JetStream stopped delivering (`queue.max_deliver`; its
//! advisory names the message's stream sequence, which the publish returned) or one no worker
//! took within `queue.claim_timeout` (the pool's consumer has not delivered that far) fails,
//! and its message is removed from the stream.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

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
    /// The coordinator that handed it out (see [`RunDispatch`]); its worker's completion carries
    /// it back. Absent from the messages of an orc that did not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
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
    /// The coordinator that handed the step out, as its message named it. A completion without
    /// it (from an orc that did not send it) is taken when its attempt is the one waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
}

impl Completion {
    /// Whether this completes the hand-out `waiter` waits for, of coordinator `me`: a run id
    /// used again (a run deleted and started anew, another database on the same NATS) has the
    /// same completions subject, where the old run's completions are still kept.
    fn completes(&self, waiter: &Waiter, me: &str) -> bool {
        waiter.attempt == Some(self.attempt) && self.coordinator.as_deref().is_none_or(|c| c == me)
    }
}

/// The plans stream's key of a serialized plan: a digest of its bytes.
pub(crate) fn plan_key(plan: &[u8]) -> String {
    blake3::hash(plan).to_hex().to_string()
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A step handed out and not yet completed: where its outcome goes, and where its message is.
#[derive(Debug)]
struct Waiter {
    done: oneshot::Sender<Result<StepOutcome, String>>,
    pool: String,
    /// The attempt it was handed out as, once recorded.
    attempt: Option<u32>,
    /// The stream sequence of its message, once published.
    sequence: Option<u64>,
    /// When it was published.
    published: Instant,
    /// A worker took it (its message was delivered at least once).
    taken: bool,
}

type Waiting = Arc<Mutex<HashMap<String, Waiter>>>;

/// One run's hand-outs: publishes its steps, routes their completions back to the step waiting
/// for each, and fails a step no worker takes within `queue.claim_timeout` or that JetStream
/// stopped delivering after `queue.max_deliver` deliveries.
#[derive(Debug)]
pub(crate) struct RunDispatch {
    queue: Queue,
    store: Store,
    run_id: String,
    plan: String,
    /// Names this coordinator in its step messages (a digest of the run id, the process and
    /// the time it started), so that it takes only its own hand-outs' completions.
    me: String,
    waiting: Waiting,
    /// The pools whose undeliverable steps this run follows, with the task that does.
    watched: tokio::sync::Mutex<HashMap<String, AbortOnDropHandle<()>>>,
    _follow: AbortOnDropHandle<()>,
    _claims: AbortOnDropHandle<()>,
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
        let me = blake3::hash(format!("{run_id}\n{}\n{}", std::process::id(), now_us()).as_bytes())
            .to_hex()[..16]
            .to_owned();
        let waiting: Waiting = Arc::default();
        let routes = Arc::clone(&waiting);
        let mine = me.clone();
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
                // A step nobody waits for finished under an earlier coordinator: its result
                // is in the store, where the next hand-out of the step finds it.
                let ours = take(&routes, |id, w| {
                    id == done.step_id && done.completes(w, &mine)
                });
                if let Some(waiter) = ours {
                    tracing::debug!(step = %done.step_id, worker = %done.worker, "step completed");
                    let _ = waiter.done.send(Ok(done.outcome));
                }
            }
            // The queue's connection is gone for good: every waiting step fails.
            routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        let claims = tokio::spawn(watch_claims(queue.clone(), Arc::clone(&waiting)));
        Ok(RunDispatch {
            queue,
            store,
            run_id: run_id.to_owned(),
            plan: key,
            me,
            waiting,
            watched: tokio::sync::Mutex::default(),
            _follow: AbortOnDropHandle::new(follow),
            _claims: AbortOnDropHandle::new(claims),
        })
    }

    /// Follows `pool`'s undeliverable steps (once per pool), before a step is published to it,
    /// so no advisory of its message can come first.
    async fn watch_pool(&self, pool: &str) -> Result<(), String> {
        let mut watched = self.watched.lock().await;
        if watched.contains_key(pool) {
            return Ok(());
        }
        let mut exhausted = self
            .queue
            .exhausted(pool)
            .await
            .map_err(|e| e.to_string())?;
        let (queue, waiting, name) = (
            self.queue.clone(),
            Arc::clone(&self.waiting),
            pool.to_owned(),
        );
        let task = tokio::spawn(async move {
            while let Some(gone) = exhausted.next().await {
                let ours = take(&waiting, |_, w| {
                    w.pool == name && w.sequence == Some(gone.sequence)
                });
                let Some(waiter) = ours else { continue };
                // The server keeps the message but no longer delivers it: it goes.
                if let Err(e) = queue.remove_step(&name, gone.sequence).await {
                    tracing::warn!("queue: {e}");
                }
                let _ = waiter.done.send(Err(format!(
                    "the step was delivered to workers of pool `{name}` {} times (queue.max_deliver) and none completed it; a worker that takes it dies or goes silent for longer than queue.ack_wait",
                    gone.deliveries
                )));
            }
        });
        watched.insert(pool.to_owned(), AbortOnDropHandle::new(task));
        Ok(())
    }

    async fn hand_out(&self, task: StepTask) -> Result<StepOutcome, String> {
        let ready_us = now_us();
        let step_id = task.step_id.clone();
        let pool = task
            .pool
            .clone()
            .unwrap_or_else(|| self.queue.options().pool.clone());
        self.watch_pool(&pool).await?;
        let (tx, rx) = oneshot::channel();
        // Waiting before the hand-out, so the completion cannot come first.
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                step_id.clone(),
                Waiter {
                    done: tx,
                    pool: pool.clone(),
                    attempt: None,
                    sequence: None,
                    published: Instant::now(),
                    taken: false,
                },
            );
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
        if let Some(w) = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&step_id)
        {
            w.attempt = Some(dispatched.attempt);
        }
        let message = StepMessage {
            run_id: self.run_id.clone(),
            plan: self.plan.clone(),
            attempt: dispatched.attempt,
            ready_us,
            task,
            coordinator: Some(self.me.clone()),
        };
        let payload = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
        let id = format!("{}/{}/{}", self.run_id, step_id, dispatched.attempt);
        let sequence = self
            .queue
            .publish_step(&pool, &id, Bytes::from(payload))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(w) = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&step_id)
        {
            w.sequence = Some(sequence);
            w.published = Instant::now();
        }
        let outcome = match rx.await {
            Ok(outcome) => outcome,
            Err(_) => Err("the queue's connection closed before the step completed".to_owned()),
        };
        drop(forget);
        outcome
    }
}

/// Takes the first waiting step `pick` chooses off the list.
fn take(waiting: &Waiting, pick: impl Fn(&str, &Waiter) -> bool) -> Option<Waiter> {
    let mut waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
    let id = waiting.iter().find(|(id, w)| pick(id, w))?.0.clone();
    waiting.remove(&id)
}

/// Every so often, the published steps of the run that no worker has taken yet and that waited
/// longer than `queue.claim_timeout`: each pool's consumer says how far it has delivered; a step
/// past that is removed from its stream and fails (one a worker took meanwhile stays).
async fn watch_claims(queue: Queue, waiting: Waiting) {
    let limit = queue.options().claim_timeout;
    let mut tick = tokio::time::interval((limit / 4).clamp(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(5),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The pools of steps past their limit, with the steps.
        let mut late: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for (id, w) in waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if let Some(sequence) = w.sequence
                && !w.taken
                && w.published.elapsed() >= limit
            {
                late.entry(w.pool.clone())
                    .or_default()
                    .push((id.clone(), sequence));
            }
        }
        for (pool, steps) in late {
            let state = match queue.pool_state(&pool).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!("queue: {e}");
                    continue;
                }
            };
            for (id, sequence) in steps {
                let removed = sequence > state.delivered_up_to
                    && match queue.remove_step(&pool, sequence).await {
                        Ok(removed) => removed,
                        Err(e) => {
                            tracing::warn!("queue: {e}");
                            continue;
                        }
                    };
                let mut waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                if !removed {
                    // A worker took it: it is waited for as long as it takes.
                    if let Some(w) = waiting.get_mut(&id) {
                        w.taken = true;
                    }
                    continue;
                }
                if let Some(w) = waiting.remove(&id) {
                    let _ = w.done.send(Err(format!(
                        "no worker of pool `{pool}` took the step within {} s (queue.claim_timeout); is `orc worker --pool {pool}` running against this queue?",
                        limit.as_secs_f64()
                    )));
                }
            }
        }
    }
}

/// How often a process with a queue samples the depth of the pools it uses.
const DEPTH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Samples `orc_queue_depth{pool}` of every pool this process has used, every [`DEPTH_EVERY`],
/// for as long as the returned handle lives (a coordinator's and a worker's runtime own one).
pub(crate) fn sample_depth(queue: Queue) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEPTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for pool in queue.pools() {
                match queue.pool_state(&pool).await {
                    Ok(state) => {
                        metrics::gauge!(
                            orc_telemetry::names::QUEUE_DEPTH,
                            orc_telemetry::names::label::POOL => pool
                        )
                        .set(state.steps as f64);
                    }
                    Err(e) => tracing::debug!("queue: depth of pool `{pool}`: {e}"),
                }
            }
        }
    }))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn outcome() -> StepOutcome {
        StepOutcome {
            action: "execute".into(),
            envelope: orc_engine::Envelope::ok(serde_json::json!("done")),
            error_type: None,
            attempts: 1,
            retries: 0,
            timed_out: false,
            started_at: std::time::SystemTime::UNIX_EPOCH,
            duration: 0.1,
            location: None,
        }
    }

    fn waiter(attempt: u32) -> Waiter {
        Waiter {
            done: oneshot::channel().0,
            pool: "p".into(),
            attempt: Some(attempt),
            sequence: Some(7),
            published: Instant::now(),
            taken: false,
        }
    }

    #[test]
    fn a_completion_without_a_coordinator_still_decodes_and_completes_its_attempt() {
        let done = Completion {
            run_id: "r".into(),
            step_id: "s".into(),
            attempt: 2,
            worker: "w".into(),
            outcome: outcome(),
            coordinator: None,
        };
        let text = serde_json::to_string(&done).unwrap();
        assert!(!text.contains("coordinator"), "{text}");
        let old: Completion = serde_json::from_str(&text).unwrap();
        assert!(old.completes(&waiter(2), "me"));
        assert!(!old.completes(&waiter(3), "me"), "another attempt");
    }

    #[test]
    fn a_completion_of_another_coordinator_completes_nothing() {
        let done = Completion {
            run_id: "r".into(),
            step_id: "s".into(),
            attempt: 1,
            worker: "w".into(),
            outcome: outcome(),
            coordinator: Some("them".into()),
        };
        assert!(!done.completes(&waiter(1), "me"));
        assert!(done.completes(&waiter(1), "them"));
    }
}
