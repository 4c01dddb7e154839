//! Scheduler events turned into what watches a run: step metrics, the run's outcome metric,
//! and the observer that hands events to several others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use metrics::{counter, gauge, histogram};
use orc_engine::{Event, Observer, RunResult, StepStatus};
use orc_telemetry::names::{self, label};

/// Hands every event to several observers in turn.
#[derive(Debug)]
pub struct Tee(pub Vec<Arc<dyn Observer>>);

impl Observer for Tee {
    fn event(&self, event: Event<'_>) {
        for o in &self.0 {
            o.event(event);
        }
    }
}

/// The combined observer of `observers`, if any.
pub fn tee(mut observers: Vec<Arc<dyn Observer>>) -> Option<Arc<dyn Observer>> {
    match observers.len() {
        0 => None,
        1 => observers.pop(),
        _ => Some(Arc::new(Tee(observers))),
    }
}

/// A step status as the `outcome` label and reports spell it.
pub fn outcome(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Failed => "failed",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Skipped => "skipped",
        StepStatus::Pending => "not_run",
    }
}

/// Step and scheduler metrics: steps by tool, action and outcome, their duration and queue wait,
/// and the ready and running gauges.
#[derive(Debug, Default)]
pub struct StepMetrics {
    state: Mutex<StepClock>,
}

#[derive(Debug, Default)]
struct StepClock {
    ready: HashMap<String, Instant>,
    running: usize,
}

impl Observer for StepMetrics {
    fn event(&self, event: Event<'_>) {
        if let Event::ModelOutput { .. } = event {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::StepsAdded { .. } | Event::ModelOutput { .. } => {}
            Event::StepReady { id } => {
                s.ready.insert(id.to_owned(), Instant::now());
            }
            Event::StepStarted { id, tool } => {
                if let Some(at) = s.ready.remove(id) {
                    histogram!(names::STEP_QUEUE_WAIT_SECONDS, label::TOOL => tool.unwrap_or_default().to_owned())
                        .record(at.elapsed().as_secs_f64());
                }
                s.running += 1;
            }
            Event::StepFinished { id, status, record } => {
                if s.ready.remove(id).is_none() && record.is_some_and(|r| r.started_at.is_some()) {
                    s.running = s.running.saturating_sub(1);
                }
                let tool = record.and_then(|r| r.tool.clone()).unwrap_or_default();
                let action = record.map(|r| r.action.clone()).unwrap_or_default();
                let labels = [
                    (label::TOOL, tool),
                    (label::ACTION, action),
                    (label::OUTCOME, outcome(status).to_owned()),
                ];
                counter!(names::STEPS_TOTAL, &labels).increment(1);
                if let Some(seconds) = record.and_then(|r| r.duration) {
                    histogram!(names::STEP_DURATION_SECONDS, &labels).record(seconds);
                }
            }
        }
        // Counts fit an f64 exactly.
        #[allow(clippy::cast_precision_loss)]
        {
            gauge!(names::SCHEDULER_READY_STEPS).set(s.ready.len() as f64);
            gauge!(names::SCHEDULER_RUNNING_STEPS).set(s.running as f64);
        }
    }
}

/// Records the run's outcome and duration.
pub fn record_run(result: &RunResult) {
    let labels = [
        (label::PIPELINE, result.pipeline_id.clone()),
        (
            label::OUTCOME,
            match result.status {
                orc_engine::RunStatus::Completed => "completed",
                orc_engine::RunStatus::Failed => "failed",
                orc_engine::RunStatus::Interrupted => "interrupted",
            }
            .to_owned(),
        ),
    ];
    counter!(names::PIPELINE_RUNS_TOTAL, &labels).increment(1);
    histogram!(names::PIPELINE_RUN_DURATION_SECONDS, &labels).record(result.duration);
}
