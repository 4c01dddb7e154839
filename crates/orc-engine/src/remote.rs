//! Steps that run on another machine: the scheduler hands an action step to a [`Dispatch`]
//! (`orc run --queue`: a NATS JetStream work queue) instead of running it, and a worker runs it
//! with [`StepRunner`], the same step code a local run uses.
//!
//! What crosses the wire is a [`StepTask`]: where the step is in the plan, its time limit, and
//! a snapshot of the names its templates read (inputs, the `execution` namespace, the envelopes
//! of the steps it references, loop bindings), looked up on the coordinator when the step
//! became ready. The worker renders the step's templates over that snapshot, so a rendering
//! reads exactly what it would have read locally. The plan itself is not in the task: the
//! caller carries it by key (see orc-runtime's queue), and the worker compiles it once.
//!
//! Only steps that need nothing of the coordinator's process go out: not model steps (the
//! gateway's budget and in-flight calls are the coordinator's), not `cache: true` steps (the
//! step-result cache is the coordinator's), not steps with error handlers or handler steps,
//! not `pipeline-executor` steps (a sub-run needs the runtime), and not `pool: local` ones.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use minijinja::Value as JValue;
use orc_pipeline::templates::{Lookup, TemplateSet};
use orc_pipeline::{Action, Compiled, LOCAL_POOL, Param, Step, StepKind, TemplateId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::node_id::NodeId;
use crate::resources::{Resources, ToolLimits};
use crate::step::{self, Backoff, Done, Job};
use crate::tools::{self, Callee, Envelope};

/// A step handed to another machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTask {
    /// The step's id in the run (`<loop>_<i>_<step>` inside a loop).
    pub step_id: String,
    /// Indices from the plan's steps down through loop bodies to the step.
    pub path: Vec<u32>,
    /// The pool the step asks for (`pool:`); `None` is the run's.
    pub pool: Option<String>,
    /// Per-attempt time limit, milliseconds.
    pub timeout_ms: u64,
    /// Every root name the step's templates read, with its value when the step became ready
    /// (names that were not bound are absent, so they fail the render as they would locally).
    pub scope: Map<String, Value>,
}

/// What a worker hands back for a [`StepTask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// The action that ran, as rendered.
    pub action: String,
    /// The step's envelope.
    pub envelope: Envelope,
    /// Why it failed (`ToolError`, `Timeout`, `TemplateError`, `OutputMissing`, …).
    pub error_type: Option<String>,
    /// Times the call was made.
    pub attempts: u32,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Whether the last attempt ran into the time limit.
    pub timed_out: bool,
    /// When the step started on the worker.
    pub started_at: SystemTime,
    /// How long it took on the worker, seconds.
    pub duration: f64,
    /// The declared output's rendered location, once found there.
    pub location: Option<String>,
}

/// Where a run's coordinator sends the steps it does not run itself.
pub trait Dispatch: Send + Sync + std::fmt::Debug {
    /// Hands `task` to a worker and waits for its outcome; `Err` says why the step could not
    /// be handed out or its outcome not be had (the step then fails).
    fn dispatch(
        &self,
        task: StepTask,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send + '_>>;
}

/// Whether a ready action step may go to a worker (see the module's doc).
pub(crate) fn eligible(step: &Step, a: &Action, handling: bool) -> bool {
    step.pool.as_deref() != Some(LOCAL_POOL)
        && !crate::models::is_model_step(step)
        && step.cache != Some(true)
        && step.recovery.is_none()
        && !step.handles_errors
        && !handling
        && a.tool.as_deref() != Some(tools::PIPELINE_TOOL)
}

/// The task of a ready step: its place, its limit, and the names its templates read.
pub(crate) fn task(
    job: &Job,
    path: &[u32],
    pool: Option<&str>,
    templates: &TemplateSet,
) -> StepTask {
    let mut ids = Vec::new();
    collect(&job.action, &mut ids);
    collect(&job.params, &mut ids);
    if let Some(location) = job.output.as_deref().and_then(|o| o.location.as_ref()) {
        collect(location, &mut ids);
    }
    let roots: BTreeSet<String> = ids
        .into_iter()
        .flat_map(|id| templates.names(id))
        .filter_map(|name| {
            name.split(['.', '['])
                .next()
                .filter(|root| !root.is_empty())
                .map(str::to_owned)
        })
        .collect();
    let scope = roots
        .into_iter()
        .filter_map(|root| {
            let value = job.scope.lookup(&root)?;
            Some((root, serde_json::to_value(&value).ok()?))
        })
        .collect();
    StepTask {
        step_id: job.step_id.to_string(),
        path: path.to_vec(),
        pool: pool.map(str::to_owned),
        timeout_ms: u64::try_from(job.timeout.as_millis()).unwrap_or(u64::MAX),
        scope,
    }
}

/// The template ids of a parameter tree.
fn collect(p: &Param, out: &mut Vec<TemplateId>) {
    match p {
        Param::Lit(_) => {}
        Param::Tmpl(id) => out.push(*id),
        Param::List(items) => items.iter().for_each(|p| collect(p, out)),
        Param::Map(entries) => entries.iter().for_each(|(_, p)| collect(p, out)),
    }
}

/// Hands `task` to `dispatch` and turns its outcome into the step's end, as a local run's.
pub(crate) async fn run_remote(dispatch: Arc<dyn Dispatch>, task: StepTask, node: NodeId) -> Done {
    let started_at = SystemTime::now();
    let clock = std::time::Instant::now();
    match dispatch.dispatch(task).await {
        Ok(o) => Done {
            action: o.action,
            error_type: o.error_type.as_deref().map(error_kind),
            envelope: o.envelope,
            attempts: o.attempts,
            retries: o.retries,
            timed_out: o.timed_out,
            location: o.location,
            ..Done::blank(
                node,
                o.started_at,
                Duration::try_from_secs_f64(o.duration).unwrap_or_default(),
            )
        },
        Err(e) => Done {
            envelope: Envelope::fail(
                format!("the step could not run on a worker: {e}"),
                Value::Null,
            ),
            error_type: Some("ToolError"),
            ..Done::blank(node, started_at, clock.elapsed())
        },
    }
}

/// The kind a worker named, as the scheduler keeps it; an unknown one is `ToolError`.
fn error_kind(kind: &str) -> &'static str {
    const KINDS: [&str; 6] = [
        "ToolError",
        "Timeout",
        "TemplateError",
        "OutputMissing",
        "ModelError",
        "Cancelled",
    ];
    KINDS
        .into_iter()
        .find(|k| *k == kind)
        .unwrap_or("ToolError")
}

/// The names a [`StepTask`] carries, for the worker's templates.
struct Snapshot(std::collections::HashMap<String, JValue>);

impl Lookup for Snapshot {
    fn lookup(&self, name: &str) -> Option<JValue> {
        self.0.get(name).cloned()
    }
}

/// Runs [`StepTask`]s on a worker: the tools' CPU pool and data limits, shared by every step
/// this process runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StepRunner {
    limits: Arc<ToolLimits>,
    backoff: Backoff,
}

/// A task that does not fit its plan (another pipeline's, or a step that cannot go out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step `{step}`: {reason}")]
pub struct TaskMismatch {
    /// The task's step id.
    pub step: String,
    /// What does not fit.
    pub reason: String,
}

impl StepRunner {
    /// A runner within `resources` (`performance.resource_limits`).
    pub fn new(resources: &Resources) -> StepRunner {
        StepRunner {
            limits: ToolLimits::new(resources),
            backoff: Backoff::default(),
        }
    }

    /// Runs the step `task` names in `compiled`: its attempts and retries, its declared output's
    /// check, as a local run does.
    pub async fn run(
        &self,
        compiled: &Compiled,
        task: StepTask,
    ) -> Result<StepOutcome, TaskMismatch> {
        let mismatch = |reason: &str| TaskMismatch {
            step: task.step_id.clone(),
            reason: reason.to_owned(),
        };
        let step = step_at(&compiled.plan.steps, &task.path)
            .ok_or_else(|| mismatch("its place is not in the run's plan"))?;
        let StepKind::Action(a) = &step.kind else {
            return Err(mismatch("it is a loop, which runs on the coordinator"));
        };
        if !eligible(step, a, false) {
            return Err(mismatch("it runs on the coordinator only"));
        }
        let scope: Arc<dyn Lookup> = Arc::new(Snapshot(
            task.scope
                .iter()
                .map(|(k, v)| (k.clone(), orc_pipeline::templates::to_value(v)))
                .collect(),
        ));
        let step_id: Arc<str> = task.step_id.as_str().into();
        let job = Job {
            node: NodeId::at(0),
            tool: a.tool.clone(),
            callee: Callee::resolve(a.tool.as_deref()),
            action: a.action.clone(),
            params: a.params.clone(),
            scope,
            timeout: Duration::from_millis(task.timeout_ms),
            max_retries: step.max_retries,
            model: None,
            results: None,
            limits: Arc::clone(&self.limits),
            step_id,
            retry_backoff: step.retry_backoff,
            recovery: None,
            output: step.output.clone(),
        };
        let done = step::run(
            job,
            Arc::clone(&compiled.templates),
            Arc::clone(&compiled.exprs),
            self.backoff,
        )
        .await;
        Ok(StepOutcome {
            action: done.action,
            envelope: done.envelope,
            error_type: done.error_type.map(str::to_owned),
            attempts: done.attempts,
            retries: done.retries,
            timed_out: done.timed_out,
            started_at: done.started_at,
            duration: done.duration.as_secs_f64(),
            location: done.location,
        })
    }
}

/// The step at `path`, if the plan has one there.
fn step_at<'p>(steps: &'p [Step], path: &[u32]) -> Option<&'p Step> {
    let (&first, rest) = path.split_first()?;
    let mut step = steps.get(first as usize)?;
    for &i in rest {
        step = step.body()?.get(i as usize)?;
    }
    Some(step)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_is_a_tool_error() {
        assert_eq!(error_kind("Timeout"), "Timeout");
        assert_eq!(error_kind("SomethingElse"), "ToolError");
    }

    #[test]
    fn a_path_outside_the_plan_is_none() {
        let compiled = orc_pipeline::compile(
            "id: p\nname: P\nsteps:\n  - id: a\n    action: echo\n    parameters: {message: hi}\n",
            &crate::catalog(),
        )
        .unwrap();
        assert!(step_at(&compiled.plan.steps, &[0]).is_some());
        assert!(step_at(&compiled.plan.steps, &[1]).is_none());
        assert!(step_at(&compiled.plan.steps, &[0, 0]).is_none());
        assert!(step_at(&compiled.plan.steps, &[]).is_none());
    }
}
