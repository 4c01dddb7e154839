//! `orc worker`: pulls the steps of its pool from the queue, runs each with the engine's step
//! code, stores the result in the state store under the step's attempt, acks, and publishes the
//! completion to the run's coordinator. A long step sends in-progress acks every third of
//! `AckWait`, so the queue does not hand it to another worker while it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use orc_engine::{StepOutcome, StepRunner};
use orc_pipeline::{Compiled, Diagnostics, Plan};
use orc_queue::{Delivery, Queue};
use orc_state::{AttemptState, Store};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Runtime;
use crate::error::Error;
use crate::queue::{Completion, StepMessage, now_us};

/// How many compiled plans a worker keeps.
const PLANS_KEPT: usize = 64;

/// How long one pull waits for steps before it asks again (and looks at its cancel token).
const PULL_WAIT: Duration = Duration::from_secs(1);

/// What a worker did, when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerReport {
    /// Steps it ran and whose result it stored.
    pub completed: u64,
    /// Steps it was handed that had been superseded or already had a result.
    pub skipped: u64,
}

/// What every step task of a worker shares.
#[derive(Debug)]
struct Shared {
    queue: Queue,
    store: Store,
    runner: StepRunner,
    name: String,
    heartbeat: Duration,
    plans: Mutex<HashMap<String, Arc<Compiled>>>,
    completed: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
}

impl Runtime {
    /// Runs as a worker of the runtime's queue: `concurrency` steps at once, until `stop` is
    /// cancelled; then it takes no more steps and waits for the running ones.
    pub async fn work(
        &self,
        concurrency: usize,
        stop: CancellationToken,
    ) -> Result<WorkerReport, Error> {
        let queue = self.inner.queue.clone().ok_or_else(|| {
            Error::Refused("no queue: give `--queue nats://HOST:PORT` or set `queue.url`".into())
        })?;
        let work = queue
            .work()
            .await
            .map_err(|e| Error::Queue(e.to_string()))?;
        let owner = orc_state::LeaseOwner::this_process().await.to_string();
        let shared = Arc::new(Shared {
            heartbeat: queue.options().ack_wait / 3,
            queue,
            store: self.inner.store.clone(),
            runner: StepRunner::new(&super::resources(
                &self.inner.config,
                None,
                self.inner.step_cache.as_ref(),
            )),
            name: owner,
            plans: Mutex::default(),
            completed: Default::default(),
            skipped: Default::default(),
        });
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = JoinSet::new();
        tracing::info!(
            pool = %shared.queue.options().pool,
            concurrency,
            "worker: waiting for steps"
        );
        while !stop.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            // One free slot at least, then as many steps as there are free slots.
            let first = tokio::select! {
                () = stop.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            // Asks for as many steps as there are free slots; takes each as it comes. Slots
            // only free up meanwhile (this loop is the only taker), so each has one.
            let free = 1 + slots.available_permits();
            let mut pull = match work.pull(free, PULL_WAIT).await {
                Ok(pull) => pull,
                Err(e) => {
                    tracing::warn!("worker: {e}");
                    drop(first);
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let mut first = Some(first);
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => None,
                    next = pull.next() => next,
                };
                let delivery = match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => {
                        tracing::debug!("worker: {e}");
                        break;
                    }
                    None => break,
                };
                let permit = match first.take() {
                    Some(p) => p,
                    None => match Arc::clone(&slots).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let shared = Arc::clone(&shared);
                tasks.spawn(async move {
                    let running = metrics::gauge!(orc_telemetry::names::WORKER_RUNNING_STEPS);
                    running.increment(1);
                    handle(&shared, delivery).await;
                    running.decrement(1);
                    drop(permit);
                });
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(WorkerReport {
            completed: shared.completed.load(std::sync::atomic::Ordering::Relaxed),
            skipped: shared.skipped.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// One delivered step, from its payload to its ack. An in-progress ack goes out every third of
/// `AckWait` for as long as the worker is at it (the store's writes included), so the queue
/// hands the step to another worker only when this one died or went silent.
async fn handle(shared: &Shared, delivery: Delivery) {
    let message: StepMessage = match serde_json::from_slice(delivery.payload()) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("worker: a step message that does not decode is dropped: {e}");
            let _ = delivery.reject().await;
            return;
        }
    };
    let (run, step, attempt) = (&message.run_id, &message.task.step_id, message.attempt);
    let n = delivery.delivered();
    let waited = (now_us() - message.ready_us).max(0) as f64 / 1e6;
    tracing::debug!(run = %run, step = %step, attempt, delivery = n, claim_ms = waited * 1e3, "worker: step taken");
    if n > 1 {
        tracing::warn!(run = %run, step = %step, attempt, "worker: step delivered again (delivery {n})");
        metrics::counter!(orc_telemetry::names::QUEUE_REDELIVERIES_TOTAL).increment(1);
    }
    metrics::histogram!(orc_telemetry::names::QUEUE_CLAIM_SECONDS).record(waited);
    let work = process(shared, &message);
    tokio::pin!(work);
    let mut beat = tokio::time::interval(shared.heartbeat.max(Duration::from_millis(100)));
    beat.tick().await;
    let settled = loop {
        tokio::select! {
            settled = &mut work => break settled,
            _ = beat.tick() => {
                if let Err(e) = delivery.in_progress().await {
                    tracing::warn!(run = %run, step = %step, "worker: {e}");
                }
            }
        }
    };
    match settled {
        Settled::Skipped => {
            shared
                .skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Settled::Completed => {
            shared
                .completed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Left unacked: delivered again after `AckWait`.
        Settled::Later => return,
        Settled::Never => {
            let _ = delivery.reject().await;
            return;
        }
    }
    if let Err(e) = delivery.ack().await {
        tracing::warn!(run = %run, step = %step, "worker: {e}");
    }
}

/// How a delivered step ends for the queue.
enum Settled {
    /// Ran, stored and handed back: ack.
    Completed,
    /// Superseded or already done by another delivery: ack.
    Skipped,
    /// The store could not be reached: leave it for a later delivery.
    Later,
    /// It can never be handled: reject it.
    Never,
}

/// Checks that the attempt is current, runs the step, stores its result under the attempt and
/// publishes its completion. An attempt whose result is already stored is not run again: its
/// completion is published again instead, since the worker that stored it may have died before
/// it told the coordinator (which ignores a completion it already has).
async fn process(shared: &Shared, message: &StepMessage) -> Settled {
    let (run, step, attempt) = (&message.run_id, &message.task.step_id, message.attempt);
    match shared.store.attempt_state(run, step, attempt).await {
        Ok(AttemptState::Current) => {}
        Ok(AttemptState::Superseded) => {
            tracing::info!(run = %run, step = %step, attempt, "worker: step skipped: superseded");
            return Settled::Skipped;
        }
        Ok(AttemptState::Finished(stored)) => {
            let outcome = match serde_json::from_value::<StepOutcome>(stored) {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(run = %run, step = %step, "worker: the stored result cannot be read: {e}");
                    return Settled::Never;
                }
            };
            tracing::info!(run = %run, step = %step, attempt, "worker: step already done: its stored result is handed back");
            return match complete(shared, message, outcome).await {
                Settled::Completed => Settled::Skipped,
                other => other,
            };
        }
        Err(e) => {
            tracing::error!(run = %run, step = %step, "worker: {e}");
            return Settled::Later;
        }
    }
    let outcome = match run_step(shared, message).await {
        Ok(outcome) => outcome,
        Err(PlanUnreachable(e)) => {
            tracing::warn!(run = %run, step = %step, "worker: the run's plan cannot be read now: {e}");
            return Settled::Later;
        }
    };
    let value = match serde_json::to_value(&outcome) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(run = %run, step = %step, "worker: the step's result cannot be encoded: {e}");
            return Settled::Never;
        }
    };
    match shared
        .store
        .finish_dispatched(run, step, attempt, &value)
        .await
    {
        Ok(true) => tracing::debug!(run = %run, step = %step, attempt, "worker: step stored"),
        Ok(false) => {
            tracing::info!(run = %run, step = %step, attempt, "worker: the step's attempt was superseded; its result is dropped");
            return Settled::Skipped;
        }
        Err(e) => {
            tracing::error!(run = %run, step = %step, "worker: the step's result was not stored: {e}");
            return Settled::Later;
        }
    }
    complete(shared, message, outcome).await
}

/// Publishes a stored result to the run's coordinator. Until the queue has it the step stays
/// unacked ([`Settled::Later`]): it is delivered again, finds its result stored and comes
/// back here, so the coordinator is told in the end.
async fn complete(shared: &Shared, message: &StepMessage, outcome: StepOutcome) -> Settled {
    let (run, step) = (&message.run_id, &message.task.step_id);
    let completion = Completion {
        run_id: run.clone(),
        step_id: step.clone(),
        attempt: message.attempt,
        worker: shared.name.clone(),
        outcome,
        coordinator: message.coordinator.clone(),
    };
    let payload = match serde_json::to_vec(&completion) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::error!(run = %run, step = %step, "worker: {e}");
            return Settled::Never;
        }
    };
    match shared
        .queue
        .publish_completion(run, Bytes::from(payload))
        .await
    {
        Ok(()) => Settled::Completed,
        Err(e) => {
            tracing::error!(run = %run, step = %step, "worker: {e}");
            Settled::Later
        }
    }
}

/// The queue could not be asked for the run's plan (the server is away): the step is left for
/// a later delivery, not failed.
struct PlanUnreachable(String);

/// Runs the step; a plan that is not in the queue or does not compile, or a step that does not
/// fit it, is a failed step.
async fn run_step(shared: &Shared, message: &StepMessage) -> Result<StepOutcome, PlanUnreachable> {
    let started_at = std::time::SystemTime::now();
    let compiled = match plan(shared, &message.plan).await {
        Ok(c) => c,
        Err(PlanError::Queue(e)) => return Err(PlanUnreachable(e)),
        Err(PlanError::Unusable(e)) => return Ok(failed(e, started_at)),
    };
    Ok(
        match shared.runner.run(&compiled, message.task.clone()).await {
            Ok(outcome) => outcome,
            Err(e) => failed(e.to_string(), started_at),
        },
    )
}

/// Why a worker has no plan for a step.
enum PlanError {
    /// The queue did not answer.
    Queue(String),
    /// The plan is not there or does not compile here.
    Unusable(String),
}

fn failed(message: String, started_at: std::time::SystemTime) -> StepOutcome {
    StepOutcome {
        action: String::new(),
        envelope: orc_engine::Envelope::fail(
            format!("the worker could not run the step: {message}"),
            serde_json::Value::Null,
        ),
        error_type: Some("ToolError".into()),
        attempts: 0,
        retries: 0,
        timed_out: false,
        started_at,
        duration: 0.0,
        location: None,
    }
}

/// The compiled plan under `key`: from memory, else from the queue's plans stream (compiled off
/// the async threads).
async fn plan(shared: &Shared, key: &str) -> Result<Arc<Compiled>, PlanError> {
    if let Some(c) = shared
        .plans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
    {
        return Ok(Arc::clone(c));
    }
    let bytes = shared
        .queue
        .plan(key)
        .await
        .map_err(|e| PlanError::Queue(e.to_string()))?
        .ok_or_else(|| {
            PlanError::Unusable(format!(
                "the run's plan `{key}` is not in the queue's plans stream"
            ))
        })?;
    let compiled = tokio::task::spawn_blocking(move || {
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Compiled::from_plan(plan, Diagnostics::default())
            .ok_or_else(|| "the run's plan does not compile in this orc".to_owned())
    })
    .await
    .map_err(|e| PlanError::Unusable(e.to_string()))?
    .map_err(PlanError::Unusable)?;
    let compiled = Arc::new(compiled);
    let mut plans = shared.plans.lock().unwrap_or_else(PoisonError::into_inner);
    if plans.len() >= PLANS_KEPT {
        plans.clear();
    }
    plans.insert(key.to_owned(), Arc::clone(&compiled));
    Ok(compiled)
}
