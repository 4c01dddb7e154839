//! The entry points: check, set up the run's state, drive it, assemble the result.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use orc_pipeline::{Compiled, Plan};
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::ids::execution_namespace;
use super::inputs::resolve_inputs;
use super::journal::Writer;
use super::node::Nodes;
use super::state::Run;
use super::{Error, Options, Result};
use crate::models;
use crate::resources::{Admission, ToolLimits};
use crate::result::RunResult;
use crate::scope::Shared;
use crate::tools::{Bindings, SubRuns};

/// Runs a compiled pipeline like [`execute`], with the scheduler as a task of the current
/// runtime rather than of the caller.
///
/// A caller that drives the run with `Runtime::block_on` polls it on its own thread, so every
/// step costs two cross-thread wake-ups (scheduler → worker → scheduler). As a task, the
/// scheduler shares a worker with the step tasks it spawns, and a step that finishes at once
/// hands back without waking another thread.
pub async fn run(compiled: Compiled, opts: Options) -> Result<RunResult> {
    // The scheduler and its steps stay in the caller's span (the runtime's `run` span).
    let task = tokio::spawn(
        async move { execute(&compiled, opts).await }.instrument(tracing::Span::current()),
    );
    tokio_util::task::AbortOnDropHandle::new(task)
        .await
        .map_err(|e| Error::Aborted(e.to_string()))?
}

/// Checks what [`execute`] checks before it starts any step: the inputs (required ones given,
/// declared types, templated values that render) and the models of the model steps. A caller
/// that records runs calls it first, so that a run refused here is never recorded.
pub fn preflight(
    plan: &Plan,
    inputs: &Map<String, Value>,
    gateway: Option<&orc_models::Gateway>,
) -> Result<()> {
    resolve_inputs(plan, inputs)?;
    models::check_plan(plan, gateway).map_err(Error::Models)
}

/// Creates the run's `output_path` directory when a template of the pipeline names it, as
/// py-orc's runner did: a step's shell command may write into it before any `filesystem` write
/// (which creates parent directories itself) has. A directory that cannot be made is left to
/// the step that uses it to report, and so is one outside a confined run's workspace.
async fn make_output_dir(
    plan: &Plan,
    inputs: &Map<String, Value>,
    sandbox: Option<&crate::Sandbox>,
) {
    let Some(dir) = inputs
        .get(super::inputs::OUTPUT_PATH)
        .and_then(Value::as_str)
    else {
        return;
    };
    if dir.is_empty() || !plan.templates.iter().any(|t| t.contains("output_path")) {
        return;
    }
    let dir = match sandbox.map(|s| s.resolve(dir)) {
        None => std::path::PathBuf::from(dir),
        Some(Ok(inside)) => inside,
        Some(Err(e)) => {
            tracing::warn!("the output directory is not made: {e}");
            return;
        }
    };
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "could not create the output directory");
    }
}

/// Runs a compiled pipeline to the end (or until cancelled) and returns its result document.
pub async fn execute(compiled: &Compiled, opts: Options) -> Result<RunResult> {
    let plan = &compiled.plan;
    let inputs = resolve_inputs(plan, &opts.inputs)?;
    models::check_plan(plan, opts.models.as_ref()).map_err(Error::Models)?;
    make_output_dir(plan, &inputs, opts.sandbox.as_deref()).await;
    let (execution, started) = execution_namespace(plan, opts.execution_id.as_deref());
    let execution_id = execution["id"].as_str().unwrap_or_default().to_string();
    let shared = Arc::new(Shared::new(&inputs, execution, &plan.id));

    let mut run = Run {
        plan,
        templates: &compiled.templates,
        exprs: &compiled.exprs,
        shared,
        opts: &opts,
        nodes: Nodes::with_capacity(plan.steps.len()),
        loops: HashMap::new(),
        ready: VecDeque::new(),
        settle_queue: VecDeque::new(),
        order: Vec::with_capacity(plan.steps.len()),
        running: 0,
        tasks: JoinSet::new(),
        stop: None,
        first_error: None,
        stopped_by: None,
        journal: opts.journal.clone().map(Writer::start),
        admission: Admission::default(),
        limits: ToolLimits::of_run(
            &opts.resources,
            opts.models.as_ref().map(orc_models::Gateway::http),
            opts.sandbox.clone(),
        ),
        tools: Bindings::of(plan).with_sub_runs(opts.sub_runner.clone().map(|runner| SubRuns {
            runner,
            inputs: Arc::new(inputs.clone()),
        })),
    };
    run.add_level(&plan.steps, &[], None, None);
    let interrupted = run.drive().await;

    Ok(run.into_result(interrupted, execution_id, started))
}
