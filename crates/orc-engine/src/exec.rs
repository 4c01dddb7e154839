//! The scheduler: a ready queue over the plan's step graph. A step starts the moment its own
//! dependencies have settled, within the global limit and its loop's `max_parallel`.
//! Loops expand into iteration steps when they become ready; routing skips what it jumps over.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use minijinja::Value as JValue;
use orc_pipeline::templates::{Lookup, TemplateSet};
use orc_pipeline::{Compiled, OnFailure, Param, Plan, Step, StepKind};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::models;
use crate::resources::{Admission, Resources, ToolLimits};
use crate::result::{RunResult, RunStatus, StepAttempts, StepRecord, StepStatus, Usage};
use crate::scope::{Frame, Shared, StepScope};
use crate::step::{self, Backoff, Done, Job, ModelJob};
use crate::tools::Envelope;

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Input values given by the caller (`-c` then `-i`); declared defaults fill the rest.
    pub inputs: Map<String, Value>,
    /// The run's id; generated when `None`.
    pub execution_id: Option<String>,
    /// Steps running at once, at most (`max_concurrent_tasks`).
    pub max_concurrent: usize,
    /// Per-step time limit when neither the step nor the pipeline sets one (`task_timeout`).
    pub task_timeout: Duration,
    /// Back-off between retries.
    pub backoff: Backoff,
    /// Cancelled on Ctrl-C: no new step starts, running ones are stopped.
    pub cancel: CancellationToken,
    /// Told when steps are added, start and finish (progress bars, metrics, tests).
    pub observer: Option<Arc<dyn Observer>>,
    /// Where model steps send their calls; `None` when no model is configured.
    pub models: Option<orc_models::Gateway>,
    /// Where each finished step is written before its dependents start; `None` for none.
    pub journal: Option<Arc<dyn Journal>>,
    /// Steps of an earlier attempt of this run that completed, by id: they are not run
    /// again, and their results are in scope for templates.
    pub resume: Arc<HashMap<String, StepRecord>>,
    /// The step-result cache: tool steps marked `cache: true` reuse the result of an
    /// identical earlier call (same tool, action and rendered parameters).
    pub step_cache: Option<orc_cache::Cache>,
    /// Memory admission and the CPU pool (`performance.resource_limits`).
    pub resources: Resources,
}

/// A durable log of finished steps (the state store's checkpoints).
///
/// [`Journal::append`] is awaited before the steps' dependents start; steps that finish
/// together are appended in one call.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Writes the records of steps that just finished.
    fn append<'a>(
        &'a self,
        records: &'a [StepRecord],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
    >;
}

/// Something that happened in a run, as the scheduler saw it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Steps were added to the graph (the plan at start, then loop iterations).
    StepsAdded {
        /// How many.
        count: usize,
    },
    /// A step's dependencies have settled: it waits for a free slot.
    StepReady {
        /// Its id.
        id: &'a str,
    },
    /// A step was handed to its tool.
    StepStarted {
        /// Its id.
        id: &'a str,
        /// Its tool, if it names one.
        tool: Option<&'a str>,
    },
    /// A model step with `stream: true` received more of its answer.
    ModelOutput {
        /// The step's id.
        id: &'a str,
        /// The text that arrived (a cached answer arrives whole).
        text: &'a str,
    },
    /// A step settled: completed, failed or skipped.
    StepFinished {
        /// Its id.
        id: &'a str,
        /// How it ended.
        status: StepStatus,
        /// Its record as it goes into the result document.
        record: Option<&'a StepRecord>,
    },
}

/// Receives scheduler events. Called on the scheduler's task: keep it quick and never block.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// One event.
    fn event(&self, event: Event<'_>);
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inputs: Map::new(),
            execution_id: None,
            max_concurrent: 50,
            task_timeout: Duration::from_secs(600),
            backoff: Backoff::default(),
            cancel: CancellationToken::new(),
            observer: None,
            models: None,
            journal: None,
            resume: Arc::default(),
            step_cache: None,
            resources: Resources::default(),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduler's task ended abnormally.
    #[error("the run's scheduler stopped: {0}")]
    Aborted(String),
    /// A model step's model cannot be used (unknown name, unset key, nothing eligible).
    #[error("{0}")]
    Models(String),
    /// A required input was not given.
    #[error("missing required input `{0}`; give it with `-i {0}=VALUE`")]
    MissingInput(String),
    /// The caller gave inputs the pipeline does not declare (the message names them).
    #[error("{0}")]
    UndeclaredInput(String),
    /// An input does not have its declared type.
    #[error("input `{name}` must be of type `{expected}`, got {got}")]
    InputType {
        /// The input.
        name: String,
        /// The declared type.
        expected: String,
        /// The given value, shown.
        got: String,
    },
    /// An input's declared default is a template that does not render.
    #[error("input `{name}`: {message}")]
    InputTemplate {
        /// The input.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The most iterations one `for_each` loop may have.
const MAX_ITERATIONS: usize = 1_000_000;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Expanded,
    Done,
}

#[derive(Debug, Clone)]
enum Outcome {
    Completed(Envelope),
    Failed {
        envelope: Envelope,
        error_type: &'static str,
    },
    Skipped {
        reason: &'static str,
        message: Option<String>,
    },
}

struct Node {
    id: Arc<str>,
    /// Indices from `plan.steps` down through loop bodies to this step.
    path: Box<[u32]>,
    frame: Option<Arc<Frame>>,
    /// Node index of the first step of this node's level (0 at top level).
    base: u32,
    deps: Vec<u32>,
    deps_left: u32,
    dependents: Vec<u32>,
    state: State,
    blocked: bool,
    released: bool,
    /// The loop node this is an iteration step of, and which iteration.
    parent: Option<(u32, u32)>,
    record: Option<StepRecord>,
}

struct LoopState {
    max_parallel: u32,
    active: u32,
    started: Vec<bool>,
    left: Vec<u32>,
    total_left: u32,
    iterations: u32,
    waiting: VecDeque<u32>,
    /// Node index of each `while` iteration's first step.
    bases: Vec<u32>,
    siblings: Arc<HashMap<String, u32>>,
    failed: Option<String>,
}

struct Run<'a> {
    plan: &'a Plan,
    templates: &'a Arc<TemplateSet>,
    shared: Arc<Shared>,
    opts: &'a Options,
    nodes: Vec<Node>,
    loops: HashMap<u32, LoopState>,
    ready: VecDeque<u32>,
    settle_queue: VecDeque<(u32, Outcome)>,
    order: Vec<u32>,
    running: usize,
    tasks: JoinSet<Done>,
    stop: Option<(String, &'static str)>,
    first_error: Option<(String, String)>,
    /// What stopped the run: the failure of a step whose policy is `fail`, or the state store.
    stopped_by: Option<(String, String)>,
    admission: Admission,
    limits: Arc<ToolLimits>,
}

fn now_rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn step_at<'p>(plan: &'p Plan, path: &[u32]) -> &'p Step {
    let mut steps: &[Step] = &plan.steps;
    let mut step = &steps[path[0] as usize];
    for &i in &path[1..] {
        steps = step.body().unwrap_or(&[]);
        step = &steps[i as usize];
    }
    step
}

fn level_of<'p>(plan: &'p Plan, path: &[u32]) -> &'p [Step] {
    match path.split_last() {
        Some((_, [])) | None => &plan.steps,
        Some((_, parent)) => step_at(plan, parent).body().unwrap_or(&[]),
    }
}

/// The run's inputs: the caller's values over the declared defaults, checked.
///
/// An input the pipeline does not declare is an error unless the pipeline says
/// `extra_inputs: true`. Values given by the caller are data and are never rendered; a declared
/// default that is a template is rendered over the other inputs (`out: "{{ base }}/x"`), after
/// the defaults it reads, so a caller's value reaches it as data.
///
/// `orc run` calls this before it records the run, so a bad input runs and records nothing;
/// [`execute`] calls it again.
pub fn resolve_inputs(plan: &Plan, given: &Map<String, Value>) -> Result<Map<String, Value>> {
    if !plan.extra_inputs {
        check_declared(plan, given)?;
    }
    let mut inputs = Map::new();
    let mut templated: Vec<&str> = Vec::new();
    for input in &plan.inputs {
        match given.get(&input.name) {
            Some(v) => {
                if let Some(kind) = &input.kind
                    && !orc_pipeline::type_matches(kind, v)
                {
                    return Err(Error::InputType {
                        name: input.name.clone(),
                        expected: kind.clone(),
                        got: v.to_string(),
                    });
                }
                inputs.insert(input.name.clone(), v.clone());
            }
            None => match &input.default {
                Some(v) => {
                    if v.as_str().is_some_and(orc_pipeline::templates::is_template) {
                        templated.push(&input.name);
                    }
                    inputs.insert(input.name.clone(), v.clone());
                }
                None if input.required => return Err(Error::MissingInput(input.name.clone())),
                None => {
                    inputs.insert(input.name.clone(), Value::Null);
                }
            },
        }
    }
    for (k, v) in given {
        if !inputs.contains_key(k) {
            inputs.insert(k.clone(), v.clone());
        }
    }
    render_defaults(&mut inputs, templated)?;
    Ok(inputs)
}

/// Refuses inputs the pipeline does not declare, naming each and the closest declared name.
fn check_declared(plan: &Plan, given: &Map<String, Value>) -> Result<()> {
    let declared: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
    let unknown: Vec<String> = given
        .keys()
        .filter(|k| !declared.contains(&k.as_str()))
        .map(
            |k| match orc_pipeline::did_you_mean(k, declared.iter().copied()) {
                Some(s) => format!("`{k}` (did you mean `{s}`?)"),
                None => format!("`{k}`"),
            },
        )
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let declared = if declared.is_empty() {
        "the pipeline declares no inputs".to_string()
    } else {
        let shown: Vec<String> = declared.iter().take(20).map(|d| format!("`{d}`")).collect();
        let more = if declared.len() > shown.len() {
            ", …"
        } else {
            ""
        };
        format!("the pipeline declares {}{more}", shown.join(", "))
    };
    Err(Error::UndeclaredInput(format!(
        "the pipeline does not declare the input{} {}; {declared} (a pipeline that takes any input says `extra_inputs: true`)",
        if unknown.len() == 1 { "" } else { "s" },
        unknown.join(", "),
    )))
}

/// Renders the declared defaults that are templates, each after the templated defaults it
/// reads; the values they read are data, never rendered again.
fn render_defaults(inputs: &mut Map<String, Value>, mut pending: Vec<&str>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let env = orc_pipeline::templates::environment();
    let template_error = |name: &str, e: &minijinja::Error| Error::InputTemplate {
        name: name.to_string(),
        message: e.detail().map_or_else(|| e.to_string(), str::to_string),
    };
    // What each default reads: names, and whether it reads `inputs`/`parameters` whole.
    let mut reads: HashMap<&str, (Vec<String>, bool)> = HashMap::new();
    for &name in &pending {
        let src = inputs[name].as_str().unwrap_or_default();
        let tmpl = env
            .template_from_str(src)
            .map_err(|e| template_error(name, &e))?;
        let mut names = Vec::new();
        let mut whole = false;
        for path in tmpl.undeclared_variables(true) {
            let mut parts = path.split('.');
            match (parts.next(), parts.next()) {
                (Some("inputs" | "parameters"), Some(n)) => names.push(n.to_string()),
                (Some("inputs" | "parameters"), None) => whole = true,
                (Some(n), _) => names.push(n.to_string()),
                (None, _) => {}
            }
        }
        reads.insert(name, (names, whole));
    }
    while !pending.is_empty() {
        let unblocked = |name: &str| {
            reads[name]
                .0
                .iter()
                .all(|r| r == name || !pending.contains(&r.as_str()))
        };
        // A default that reads every input waits for the others while it can.
        let ready = pending
            .iter()
            .position(|&n| unblocked(n) && (!reads[n].1 || pending.len() == 1))
            .or_else(|| pending.iter().position(|&n| unblocked(n)));
        let Some(i) = ready else {
            return Err(Error::InputTemplate {
                name: pending[0].to_string(),
                message: format!(
                    "the defaults of {} refer to each other",
                    pending
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let name = pending.remove(i);
        let src = inputs[name].as_str().unwrap_or_default().to_string();
        let mut ctx = inputs.clone();
        for ns in ["inputs", "parameters"] {
            if !ctx.contains_key(ns) {
                ctx.insert(ns.to_string(), Value::Object(inputs.clone()));
            }
        }
        let out = env
            .render_str(&src, orc_pipeline::templates::to_value(&ctx))
            .map_err(|e| template_error(name, &e))?;
        inputs.insert(name.to_string(), Value::String(out));
    }
    Ok(())
}

/// A new run's id: `<pipeline>_<unix seconds>_<8 hex>`.
pub fn new_run_id(pipeline_id: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{pipeline_id}_{secs}_{:08x}", fastrand::u32(..))
}

fn execution_namespace(plan: &Plan, id: Option<&str>) -> (Value, SystemTime) {
    let started = SystemTime::now();
    let dt = chrono::DateTime::<chrono::Utc>::from(started);
    let id = id.map_or_else(|| new_run_id(&plan.id), str::to_string);
    (
        json!({
            "id": id,
            "started_at": dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "timestamp": dt.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
            "date": dt.format("%Y-%m-%d").to_string(),
            "time": dt.format("%H:%M:%S").to_string(),
        }),
        started,
    )
}

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

/// Runs a compiled pipeline to the end (or until cancelled) and returns its result document.
pub async fn execute(compiled: &Compiled, opts: Options) -> Result<RunResult> {
    let plan = &compiled.plan;
    let inputs = resolve_inputs(plan, &opts.inputs)?;
    models::check_plan(plan, opts.models.as_ref()).map_err(Error::Models)?;
    let (execution, started) = execution_namespace(plan, opts.execution_id.as_deref());
    let execution_id = execution["id"].as_str().unwrap_or_default().to_string();
    let shared = Arc::new(Shared::new(&inputs, execution, &plan.id));

    let mut run = Run {
        plan,
        templates: &compiled.templates,
        shared,
        opts: &opts,
        nodes: Vec::with_capacity(plan.steps.len()),
        loops: HashMap::new(),
        ready: VecDeque::new(),
        settle_queue: VecDeque::new(),
        order: Vec::with_capacity(plan.steps.len()),
        running: 0,
        tasks: JoinSet::new(),
        stop: None,
        first_error: None,
        stopped_by: None,
        admission: Admission::default(),
        limits: ToolLimits::new(&opts.resources),
    };
    run.add_level(&plan.steps, &[], None, None);
    let interrupted = run.drive().await;

    let completed = SystemTime::now();
    let mut steps = IndexMap::with_capacity(run.nodes.len());
    let mut success = true;
    for node in &mut run.nodes {
        let record = node.record.take().unwrap_or_else(|| {
            let step = step_at(plan, &node.path);
            let mut r = blank_record(&node.id, step, &[]);
            r.error = Some(match &run.stop {
                Some((why, _)) => format!("not run: {why}"),
                None => "not run".into(),
            });
            r
        });
        if record.status != StepStatus::Skipped && !record.success {
            success = false;
        }
        steps.insert(node.id.to_string(), record);
    }
    // Dependencies by id, now that every node has one.
    let ids: Vec<Arc<str>> = run.nodes.iter().map(|n| Arc::clone(&n.id)).collect();
    for (node, record) in run.nodes.iter().zip(steps.values_mut()) {
        record.dependencies = node
            .deps
            .iter()
            .map(|&d| ids[d as usize].to_string())
            .collect();
    }
    let outputs = run.outputs();
    let mut usage = Usage::default();
    let mut cost = 0.0;
    let mut unpriced_calls = 0;
    for record in steps.values().filter(|r| r.model.is_some()) {
        usage += record.usage.unwrap_or_default();
        match record.cost {
            Some(c) => cost += c,
            None => unpriced_calls += 1,
        }
    }
    // What stopped the run, else (a run that went to the end) its first failure.
    let (error, error_type) = run
        .stopped_by
        .clone()
        .or_else(|| run.first_error.clone())
        .map_or((None, None), |(e, t)| (Some(e), Some(t)));
    let status = if interrupted {
        RunStatus::Interrupted
    } else if success {
        RunStatus::Completed
    } else {
        RunStatus::Failed
    };
    Ok(RunResult {
        pipeline_id: plan.id.clone(),
        execution_id,
        status,
        success: success && !interrupted,
        steps,
        outputs,
        execution_order: run
            .order
            .iter()
            .map(|&i| ids[i as usize].to_string())
            .collect(),
        execution_levels: plan
            .levels()
            .into_iter()
            .map(|l| l.into_iter().map(|i| plan.steps[i].id.clone()).collect())
            .collect(),
        started_at: now_rfc3339(started),
        completed_at: now_rfc3339(completed),
        duration: completed
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64(),
        error,
        error_type,
        usage,
        cost,
        unpriced_calls,
    })
}

fn action_name(step: &Step) -> String {
    match &step.kind {
        StepKind::Action(a) => match &a.action {
            Param::Lit(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        StepKind::ForEach(_) => "for_each".into(),
        StepKind::While(_) => "while".into(),
    }
}

fn blank_record(id: &str, step: &Step, deps: &[String]) -> StepRecord {
    StepRecord {
        id: id.to_string(),
        action: action_name(step),
        tool: match &step.kind {
            StepKind::Action(a) => a.tool.clone(),
            _ => None,
        },
        status: StepStatus::Pending,
        success: false,
        value: None,
        error: None,
        error_type: None,
        reason: None,
        started_at: None,
        completed_at: None,
        duration: None,
        retries: 0,
        attempts: StepAttempts::default(),
        timed_out: false,
        dependencies: deps.to_vec(),
        model: None,
        provider: None,
        cached: false,
        usage: None,
        cost: None,
        model_time: None,
        model_choice: None,
    }
}

impl Run<'_> {
    /// Adds the nodes of one level (top level, or one loop iteration); returns its base index.
    fn add_level(
        &mut self,
        steps: &[Step],
        prefix_path: &[u32],
        frame: Option<Arc<Frame>>,
        parent: Option<(u32, u32)>,
    ) -> u32 {
        let base = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        let id_prefix = match (&frame, parent) {
            (Some(_), Some((l, k))) => format!("{}_{k}_", self.nodes[l as usize].id),
            _ => String::new(),
        };
        for (j, step) in steps.iter().enumerate() {
            let idx = base + u32::try_from(j).unwrap_or(u32::MAX);
            let id: Arc<str> = if id_prefix.is_empty() {
                Arc::from(step.id.as_str())
            } else {
                Arc::from(format!("{id_prefix}{}", step.id))
            };
            self.shared.register(Arc::clone(&id), idx);
            let mut path = prefix_path.to_vec();
            path.push(u32::try_from(j).unwrap_or(u32::MAX));
            let deps: Vec<u32> = step.deps.iter().map(|&d| base + d).collect();
            self.nodes.push(Node {
                id,
                path: path.into_boxed_slice(),
                frame: frame.clone(),
                base,
                deps_left: u32::try_from(deps.len()).unwrap_or(u32::MAX),
                deps,
                dependents: Vec::new(),
                state: State::Waiting,
                blocked: false,
                released: false,
                parent,
                record: None,
            });
        }
        self.emit(Event::StepsAdded { count: steps.len() });
        for j in 0..steps.len() {
            let idx = base as usize + j;
            for d in self.nodes[idx].deps.clone() {
                self.nodes[d as usize]
                    .dependents
                    .push(u32::try_from(idx).unwrap_or(u32::MAX));
            }
        }
        for j in 0..steps.len() {
            let idx = base + u32::try_from(j).unwrap_or(u32::MAX);
            if self.nodes[idx as usize].deps_left == 0 {
                self.make_ready(idx);
            }
        }
        base
    }

    fn emit(&self, event: Event<'_>) {
        if let Some(obs) = &self.opts.observer {
            obs.event(event);
        }
    }

    fn make_ready(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        if node.state != State::Waiting {
            return;
        }
        if node.blocked && !node.released {
            self.settle_queue.push_back((
                i,
                Outcome::Skipped {
                    reason: "dependency_failed",
                    message: Some("a dependency failed".into()),
                },
            ));
            return;
        }
        node.state = State::Ready;
        self.ready.push_back(i);
        self.emit(Event::StepReady {
            id: &self.nodes[i as usize].id,
        });
    }

    fn scope(&self, i: u32) -> Arc<dyn Lookup> {
        Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: self.nodes[i as usize].frame.clone(),
        })
    }

    /// The event loop: launch what is ready, wait for a step to finish, settle it, repeat.
    /// Returns whether the run was interrupted.
    async fn drive(&mut self) -> bool {
        loop {
            self.drain_settles();
            if self.stop.is_none() {
                self.launch();
                self.drain_settles();
            }
            if self.running == 0
                && (self.ready.is_empty() || self.stop.is_some())
                && self.settle_queue.is_empty()
            {
                return false;
            }
            if self.running == 0 {
                continue;
            }
            tokio::select! {
                biased;
                () = self.opts.cancel.cancelled() => {
                    self.stop.get_or_insert(("the run was interrupted".into(), "Cancelled"));
                    self.cancel_running().await;
                    return true;
                }
                joined = self.tasks.join_next() => {
                    let Some(joined) = joined else { continue };
                    // Steps that finished together settle together, with one journal write.
                    let mut finished = Vec::new();
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        self.running -= 1;
                        match joined {
                            Ok(done) => finished.push(done),
                            Err(e) => tracing::error!("a step task ended abnormally: {e}"),
                        }
                        next = self.tasks.try_join_next();
                    }
                    self.finish_tasks(finished).await;
                }
            }
            if self.stop.is_some() && self.running > 0 {
                self.cancel_running().await;
            }
        }
    }

    async fn cancel_running(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let why = self
            .stop
            .as_ref()
            .map_or_else(|| "cancelled".to_string(), |(w, _)| w.clone());
        let running: Vec<u32> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state == State::Running)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        self.running = 0;
        for i in running {
            let envelope = Envelope::fail(format!("cancelled: {why}"), Value::Null);
            self.record(
                i,
                &Outcome::Failed {
                    envelope,
                    error_type: "Cancelled",
                },
                None,
            );
            // Stopped because the run stopped, not a failure of its own.
            if let Some(r) = self.nodes[i as usize].record.as_mut() {
                r.status = StepStatus::Cancelled;
            }
            self.nodes[i as usize].state = State::Done;
        }
    }

    fn launch(&mut self) {
        while self.running < self.opts.max_concurrent.max(1) && self.stop.is_none() {
            if self.ready.is_empty()
                || !self
                    .admission
                    .admit(self.opts.resources.memory.as_ref(), self.running)
            {
                break;
            }
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            if self.nodes[i as usize].state != State::Ready {
                continue;
            }
            if let Some((l, k)) = self.nodes[i as usize].parent
                && !self.admit(l, k)
            {
                if let Some(ls) = self.loops.get_mut(&l) {
                    ls.waiting.push_back(i);
                }
                continue;
            }
            let step = step_at(self.plan, &self.nodes[i as usize].path);
            if matches!(step.kind, StepKind::Action(_))
                && let Some(saved) = self.resumed(i)
            {
                let envelope = saved
                    .value
                    .as_ref()
                    .and_then(|v| serde_json::from_value::<Envelope>(v.clone()).ok())
                    .unwrap_or_else(|| Envelope::ok(Value::Null));
                self.nodes[i as usize].record = Some(saved);
                self.settle_inner(i, Outcome::Completed(envelope));
                continue;
            }
            if let Some(cond) = &step.condition {
                match step::condition(cond, self.templates, &self.scope(i)) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.settle(
                            i,
                            Outcome::Skipped {
                                reason: "condition_false",
                                message: None,
                            },
                        );
                        continue;
                    }
                    Err(e) => {
                        self.settle(
                            i,
                            Outcome::Skipped {
                                reason: "condition_error",
                                message: Some(format!("condition: {e}")),
                            },
                        );
                        continue;
                    }
                }
            }
            match &step.kind {
                StepKind::Action(a) => {
                    // The compiler keeps it in range; whatever a plan holds, it never panics.
                    let timeout = step.timeout.or(self.plan.default_timeout).map_or(
                        self.opts.task_timeout,
                        |t| {
                            Duration::try_from_secs_f64(t.min(orc_pipeline::MAX_TIMEOUT_SECS))
                                .unwrap_or(self.opts.task_timeout)
                        },
                    );
                    let job =
                        Job {
                            node: i,
                            tool: a.tool.clone(),
                            action: a.action.clone(),
                            params: a.params.clone(),
                            scope: self.scope(i),
                            timeout,
                            max_retries: step.max_retries,
                            model: models::is_model_step(step).then(|| ModelJob {
                                gateway: self.opts.models.clone(),
                                observer: self.opts.observer.clone(),
                                step_id: self.nodes[i as usize].id.clone(),
                                choice: Arc::new(models::Choice {
                                    step: step.model.clone(),
                                    pipeline: self.plan.model.clone(),
                                }),
                                use_cache: step.cache != Some(false),
                            }),
                            results: self.opts.step_cache.clone().filter(|_| {
                                step.cache == Some(true) && !models::is_model_step(step)
                            }),
                            limits: Arc::clone(&self.limits),
                        };
                    self.nodes[i as usize].state = State::Running;
                    self.nodes[i as usize].record = Some(StepRecord {
                        started_at: Some(now_rfc3339(SystemTime::now())),
                        ..blank_record(&self.nodes[i as usize].id, step, &[])
                    });
                    self.running += 1;
                    self.emit(Event::StepStarted {
                        id: &self.nodes[i as usize].id,
                        tool: a.tool.as_deref(),
                    });
                    let span = tracing::info_span!(
                        "step",
                        step = %self.nodes[i as usize].id,
                        tool = a.tool.as_deref().unwrap_or("")
                    );
                    self.tasks.spawn(
                        step::run(job, Arc::clone(self.templates), self.opts.backoff)
                            .instrument(span),
                    );
                }
                StepKind::ForEach(f) => self.expand_for_each(i, step, f),
                StepKind::While(_) => {
                    self.nodes[i as usize].state = State::Expanded;
                    self.loops.insert(i, self.new_loop(step, 1));
                    self.next_while_iteration(i, 0);
                }
            }
        }
    }

    /// Whether a step of iteration `k` of loop `l` may start now.
    fn admit(&mut self, l: u32, k: u32) -> bool {
        let Some(ls) = self.loops.get_mut(&l) else {
            return true;
        };
        let k = k as usize;
        if ls.started.get(k).copied().unwrap_or(true) {
            return true;
        }
        if ls.active < ls.max_parallel {
            ls.active += 1;
            ls.started[k] = true;
            return true;
        }
        false
    }

    fn new_loop(&self, step: &Step, max_parallel: u32) -> LoopState {
        let body = step.body().unwrap_or(&[]);
        LoopState {
            max_parallel,
            active: 0,
            started: Vec::new(),
            left: Vec::new(),
            total_left: 0,
            iterations: 0,
            waiting: VecDeque::new(),
            bases: Vec::new(),
            siblings: Arc::new(
                body.iter()
                    .enumerate()
                    .map(|(j, s)| (s.id.clone(), u32::try_from(j).unwrap_or(u32::MAX)))
                    .collect(),
            ),
            failed: None,
        }
    }

    fn expand_for_each(&mut self, i: u32, step: &Step, f: &orc_pipeline::ForEach) {
        let scope = self.scope(i);
        let items: std::result::Result<Vec<JValue>, String> = match &f.items {
            Param::Lit(Value::Array(items)) => Ok(items
                .iter()
                .map(orc_pipeline::templates::to_value)
                .collect()),
            Param::Tmpl(id) => self
                .templates
                .evaluate(*id, &scope)
                .map_err(|e| e.message)
                .and_then(|v| items_of(&v)),
            other => step::render(other, self.templates, &scope)
                .and_then(|v| items_of(&orc_pipeline::templates::to_value(&v))),
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                let envelope = Envelope::fail(format!("for_each: {e}"), Value::Null);
                self.settle(
                    i,
                    Outcome::Failed {
                        envelope,
                        error_type: "TemplateError",
                    },
                );
                return;
            }
        };
        if items.len() > MAX_ITERATIONS {
            let envelope = Envelope::fail(
                format!(
                    "for_each: {} items; a loop runs at most {MAX_ITERATIONS} iterations",
                    items.len()
                ),
                Value::Null,
            );
            self.settle(
                i,
                Outcome::Failed {
                    envelope,
                    error_type: "TemplateError",
                },
            );
            return;
        }
        let body = step.body().unwrap_or(&[]);
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let mut ls = self.new_loop(step, f.max_parallel);
        ls.iterations = n;
        ls.started = vec![false; items.len()];
        ls.left = vec![u32::try_from(body.len()).unwrap_or(u32::MAX); items.len()];
        ls.total_left = n.saturating_mul(u32::try_from(body.len()).unwrap_or(u32::MAX));
        let siblings = Arc::clone(&ls.siblings);
        self.nodes[i as usize].state = State::Expanded;
        self.loops.insert(i, ls);
        if n == 0 || body.is_empty() {
            self.complete_loop(i);
            return;
        }
        let loop_id = JValue::from(self.nodes[i as usize].id.as_ref());
        let parent_frame = self.nodes[i as usize].frame.clone();
        let path = self.nodes[i as usize].path.clone();
        let len = items.len();
        for (k, item) in items.into_iter().enumerate() {
            let bindings = vec![
                ("item", item.clone()),
                ("index", JValue::from(k)),
                ("is_first", JValue::from(k == 0)),
                ("is_last", JValue::from(k + 1 == len)),
                ("position", JValue::from(k + 1)),
                ("length", JValue::from(len)),
                ("remaining", JValue::from(len - k - 1)),
                ("has_next", JValue::from(k + 1 < len)),
                ("has_prev", JValue::from(k > 0)),
                ("loop_id", loop_id.clone()),
            ];
            let base = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
            let frame = Arc::new(Frame {
                bindings,
                loop_var: f.loop_var.clone().map(|v| (v, item)),
                siblings: Arc::clone(&siblings),
                base,
                parent: parent_frame.clone(),
            });
            self.add_level(
                body,
                &path,
                Some(frame),
                Some((i, u32::try_from(k).unwrap_or(u32::MAX))),
            );
        }
    }

    /// Starts iteration `k` of a `while` loop if its condition holds, else completes the loop.
    fn next_while_iteration(&mut self, i: u32, k: u32) {
        let step = step_at(self.plan, &self.nodes[i as usize].path);
        let StepKind::While(w) = &step.kind else {
            return;
        };
        let siblings = self
            .loops
            .get(&i)
            .map(|l| Arc::clone(&l.siblings))
            .unwrap_or_default();
        let prev_base = k
            .checked_sub(1)
            .and_then(|prev| self.loops.get(&i)?.bases.get(prev as usize).copied());
        let loop_id = JValue::from(self.nodes[i as usize].id.as_ref());
        let bindings = vec![
            ("iteration", JValue::from(k)),
            ("index", JValue::from(k)),
            ("is_first", JValue::from(k == 0)),
            ("position", JValue::from(k + 1)),
            ("loop_id", loop_id.clone()),
            ("loop_name", loop_id),
        ];
        let parent = self.nodes[i as usize].frame.clone();
        // The condition sees the new iteration's bindings and the previous iteration's steps.
        let probe = Arc::new(Frame {
            bindings: bindings.clone(),
            loop_var: None,
            siblings: if prev_base.is_some() {
                Arc::clone(&siblings)
            } else {
                Arc::default()
            },
            base: prev_base.unwrap_or(0),
            parent: parent.clone(),
        });
        let scope: Arc<dyn Lookup> = Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: Some(probe),
        });
        if k > 0 {
            if let Some(until) = &w.until {
                match step::condition(until, self.templates, &scope) {
                    Ok(true) => return self.complete_loop(i),
                    Ok(false) => {}
                    Err(e) => return self.fail_loop(i, format!("until: {e}")),
                }
            }
            if k >= w.max_iterations {
                return self.complete_loop(i);
            }
        }
        match step::condition(&w.condition, self.templates, &scope) {
            Ok(true) => {}
            Ok(false) => return self.complete_loop(i),
            Err(e) => return self.fail_loop(i, format!("while: {e}")),
        }
        let body = step.body().unwrap_or(&[]);
        if body.is_empty() {
            return self.complete_loop(i);
        }
        let base = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        if let Some(ls) = self.loops.get_mut(&i) {
            ls.iterations = k + 1;
            ls.started.push(false);
            ls.bases.push(base);
            ls.left.push(u32::try_from(body.len()).unwrap_or(u32::MAX));
            ls.total_left = ls
                .total_left
                .saturating_add(u32::try_from(body.len()).unwrap_or(0));
        }
        let frame = Arc::new(Frame {
            bindings,
            loop_var: None,
            siblings,
            base,
            parent,
        });
        let path = self.nodes[i as usize].path.clone();
        self.add_level(body, &path, Some(frame), Some((i, k)));
    }

    fn complete_loop(&mut self, i: u32) {
        let ls = self.loops.get(&i);
        let n = ls.map_or(0, |l| l.iterations);
        let outcome = match ls.and_then(|l| l.failed.clone()) {
            Some(e) => Outcome::Failed {
                envelope: Envelope::fail(e, Value::Null),
                error_type: "ConditionError",
            },
            None => Outcome::Completed(Envelope::ok(Value::String(format!(
                "Completed {n} iterations"
            )))),
        };
        self.settle_queue.push_back((i, outcome));
    }

    fn fail_loop(&mut self, i: u32, message: String) {
        if let Some(ls) = self.loops.get_mut(&i) {
            ls.failed = Some(message);
        }
        self.complete_loop(i);
    }

    /// Records finished steps, writes them to the journal, then lets their dependents go.
    async fn finish_tasks(&mut self, finished: Vec<Done>) {
        let mut settled = Vec::with_capacity(finished.len());
        for done in finished {
            let i = done.node;
            let outcome = if done.envelope.success {
                Outcome::Completed(done.envelope.clone())
            } else {
                Outcome::Failed {
                    envelope: done.envelope.clone(),
                    error_type: done.error_type.unwrap_or("ToolError"),
                }
            };
            self.record(i, &outcome, Some(&done));
            settled.push((i, outcome));
        }
        if let Some(journal) = &self.opts.journal {
            let records: Vec<StepRecord> = settled
                .iter()
                .filter_map(|(i, _)| self.nodes[*i as usize].record.clone())
                .collect();
            if let Err(e) = journal.append(&records).await {
                tracing::error!("state store: {e}");
                self.stop
                    .get_or_insert((format!("the state store failed: {e}"), "StateError"));
                if self.stopped_by.is_none() {
                    self.stopped_by =
                        Some((format!("the state store failed: {e}"), "StateError".into()));
                }
            }
        }
        for (i, outcome) in settled {
            self.settle_inner(i, outcome);
        }
    }

    /// The record of a step an earlier attempt of this run completed, if any.
    fn resumed(&self, i: u32) -> Option<StepRecord> {
        if self.opts.resume.is_empty() {
            return None;
        }
        let record = self.opts.resume.get(&*self.nodes[i as usize].id)?;
        (record.status == StepStatus::Completed).then(|| record.clone())
    }

    fn settle(&mut self, i: u32, outcome: Outcome) {
        self.settle_queue.push_back((i, outcome));
        self.drain_settles();
    }

    fn drain_settles(&mut self) {
        while let Some((i, outcome)) = self.settle_queue.pop_front() {
            if self.nodes[i as usize].state == State::Done {
                continue;
            }
            self.record(i, &outcome, None);
            self.settle_inner(i, outcome);
        }
    }

    /// Fills in the node's record from its outcome.
    fn record(&mut self, i: u32, outcome: &Outcome, done: Option<&Done>) {
        let node = &self.nodes[i as usize];
        let step = step_at(self.plan, &node.path);
        let mut r = node
            .record
            .clone()
            .unwrap_or_else(|| blank_record(&node.id, step, &[]));
        let finished = SystemTime::now();
        if let Some(d) = done {
            r.action = d.action.clone();
            r.retries = d.retries;
            r.attempts = StepAttempts {
                step: d.attempts,
                model: d.model_attempts,
            };
            r.timed_out = d.timed_out;
            r.started_at = Some(now_rfc3339(d.started_at));
            r.duration = Some(d.duration.as_secs_f64());
            r.cached = d.cached;
            if let Some(m) = &d.model {
                r.model = Some(m.model.clone());
                r.provider = Some(m.provider.to_string());
                r.cached = m.cached;
                r.usage = Some(m.usage);
                r.cost = m.cost;
                r.model_time = Some(m.elapsed.as_secs_f64());
                r.model_choice = Some(m.choice.clone());
            }
        }
        r.completed_at = Some(now_rfc3339(finished));
        match outcome {
            Outcome::Completed(e) => {
                r.status = StepStatus::Completed;
                r.success = true;
                r.value = Some(e.to_json());
            }
            Outcome::Failed {
                envelope,
                error_type,
            } => {
                r.status = StepStatus::Failed;
                r.success = false;
                r.error.clone_from(&envelope.error);
                r.error_type = Some((*error_type).to_string());
                r.value = Some(envelope.to_json());
                if self.first_error.is_none() && *error_type != "Cancelled" {
                    self.first_error = Some((
                        format!(
                            "step `{}` failed: {}",
                            node.id,
                            envelope.error.as_deref().unwrap_or("")
                        ),
                        (*error_type).to_string(),
                    ));
                }
            }
            Outcome::Skipped { reason, message } => {
                r.status = StepStatus::Skipped;
                r.success = false;
                r.reason = Some((*reason).to_string());
                r.error.clone_from(message);
                if *reason == "condition_error" {
                    r.error_type = Some("ConditionError".into());
                }
            }
        }
        self.nodes[i as usize].record = Some(r);
    }

    /// Marks a node done and lets its dependents, its loop and routing react.
    fn settle_inner(&mut self, i: u32, outcome: Outcome) {
        let step = step_at(self.plan, &self.nodes[i as usize].path);
        self.nodes[i as usize].state = State::Done;
        self.order.push(i);
        if let Some(obs) = &self.opts.observer {
            let record = self.nodes[i as usize].record.as_ref();
            obs.event(Event::StepFinished {
                id: &self.nodes[i as usize].id,
                status: record.map_or(StepStatus::Pending, |r| r.status),
                record,
            });
        }
        let (blocking, route) = match &outcome {
            Outcome::Completed(_) => {
                self.publish_value(i);
                (false, step.on_success)
            }
            Outcome::Skipped { reason, .. } => (
                *reason == "dependency_failed",
                (*reason == "condition_false")
                    .then_some(step.on_false)
                    .flatten(),
            ),
            Outcome::Failed { .. } => {
                self.publish_value(i);
                match step.on_failure {
                    OnFailure::Continue => (false, None),
                    OnFailure::Skip => (true, None),
                    OnFailure::Goto(t) => (true, Some(t)),
                    OnFailure::Fail => {
                        if self.stop.is_none() {
                            let id = self.nodes[i as usize].id.clone();
                            self.stop = Some((
                                format!("the run stopped after step `{id}` failed"),
                                "StepFailed",
                            ));
                            // The run's error is this step's: it is the one that stopped the
                            // run, whatever `continue` steps failed before it.
                            if let Some(r) = &self.nodes[i as usize].record {
                                self.stopped_by = Some((
                                    format!(
                                        "step `{id}` failed: {}",
                                        r.error.as_deref().unwrap_or("")
                                    ),
                                    r.error_type.clone().unwrap_or_default(),
                                ));
                            }
                        }
                        (true, None)
                    }
                }
            }
        };
        if let Some(t) = route {
            self.jump(i, t);
        }
        for d in self.nodes[i as usize].dependents.clone() {
            let dep = &mut self.nodes[d as usize];
            if blocking {
                dep.blocked = true;
            }
            dep.deps_left = dep.deps_left.saturating_sub(1);
            if dep.deps_left == 0 {
                self.make_ready(d);
            }
        }
        if let Some((l, k)) = self.nodes[i as usize].parent {
            self.iteration_step_done(l, k);
        }
    }

    /// Makes a settled step's envelope, as its record holds it, visible to templates.
    fn publish_value(&self, i: u32) {
        if let Some(value) = self.nodes[i as usize]
            .record
            .as_ref()
            .and_then(|r| r.value.as_ref())
        {
            self.shared
                .publish(i, orc_pipeline::templates::to_value(value));
        }
    }

    /// Skips the steps between `from` and the level step `to`, and lets `to` run.
    fn jump(&mut self, from: u32, to: u32) {
        let node = &self.nodes[from as usize];
        let base = node.base;
        let level = level_of(self.plan, &node.path);
        let from_j = from - base;
        for j in orc_pipeline::jumped_over(level, from_j as usize, to as usize) {
            let n = base + u32::try_from(j).unwrap_or(u32::MAX);
            if matches!(self.nodes[n as usize].state, State::Waiting | State::Ready) {
                self.settle_queue.push_back((
                    n,
                    Outcome::Skipped {
                        reason: "routed",
                        message: None,
                    },
                ));
            }
        }
        self.nodes[(base + to) as usize].released = true;
    }

    fn iteration_step_done(&mut self, l: u32, k: u32) {
        let Some(ls) = self.loops.get_mut(&l) else {
            return;
        };
        let k = k as usize;
        if let Some(left) = ls.left.get_mut(k) {
            *left = left.saturating_sub(1);
            ls.total_left = ls.total_left.saturating_sub(1);
            if *left > 0 {
                return;
            }
        }
        if ls.started.get(k).copied().unwrap_or(false) {
            ls.active = ls.active.saturating_sub(1);
        }
        // Readmit steps that were waiting for a free iteration slot.
        let waiting: Vec<u32> = ls.waiting.drain(..).collect();
        for w in waiting.into_iter().rev() {
            self.ready.push_front(w);
        }
        let step = step_at(self.plan, &self.nodes[l as usize].path);
        match &step.kind {
            StepKind::While(_) => {
                let next = u32::try_from(k + 1).unwrap_or(u32::MAX);
                self.next_while_iteration(l, next);
            }
            _ => {
                if self.loops.get(&l).is_some_and(|ls| ls.total_left == 0) {
                    self.complete_loop(l);
                }
            }
        }
    }

    fn outputs(&self) -> Map<String, Value> {
        let scope: Arc<dyn Lookup> = Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: None,
        });
        let mut out = Map::new();
        for (name, p) in &self.plan.outputs {
            let v = match p {
                Param::Tmpl(id) => match self.templates.render(*id, &scope) {
                    Ok(text) => coerce(&text),
                    Err(e) => {
                        tracing::warn!("output `{name}` could not be rendered: {e}");
                        Value::Null
                    }
                },
                other => step::render(other, self.templates, &scope).unwrap_or(Value::Null),
            };
            out.insert(name.clone(), v);
        }
        out
    }
}

/// The items of a `for_each`: a list as it is; text that holds a JSON or Python list; else comma-separated text.
fn items_of(v: &JValue) -> std::result::Result<Vec<JValue>, String> {
    if let Some(s) = v.as_str() {
        let t = s.trim();
        if t.starts_with('[') {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t) {
                return Ok(items
                    .iter()
                    .map(orc_pipeline::templates::to_value)
                    .collect());
            }
            if let Ok(Value::Array(items)) = orc_data::parse_python_literal(t) {
                return Ok(items
                    .iter()
                    .map(orc_pipeline::templates::to_value)
                    .collect());
            }
        }
        if t.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(t.split(',').map(|p| JValue::from(p.trim())).collect());
    }
    match v.try_iter() {
        Ok(iter) if v.as_object().is_none() || v.len().is_some() => Ok(iter.collect()),
        _ => Err(format!("cannot iterate over `{v}`")),
    }
}

/// The earlier system's output coercion: digits to int, float-looking to float,
/// `true`/`false` to bool, JSON or Python literals to their values.
fn coerce(text: &str) -> Value {
    let t = text.trim();
    if !t.is_empty()
        && t.chars().all(|c| c.is_ascii_digit())
        && let Ok(i) = t.parse::<i64>()
    {
        return Value::from(i);
    }
    if t.contains(['.', 'e', 'E'])
        && t.parse::<f64>().is_ok_and(f64::is_finite)
        && let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    match t.to_ascii_lowercase().as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')) {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
        if let Ok(v) = orc_data::parse_python_literal(t) {
            return v;
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn coercion_matches_the_earlier_system() {
        assert_eq!(coerce("11"), json!(11));
        assert_eq!(coerce("1.5"), json!(1.5));
        assert_eq!(coerce("True"), json!(true));
        assert_eq!(coerce("{'a': [1, None]}"), json!({"a": [1, null]}));
        assert_eq!(coerce("hello world"), json!("hello world"));
        assert_eq!(coerce("1.0.0"), json!("1.0.0"));
    }

    fn plan(text: &str) -> Arc<Plan> {
        orc_pipeline::compile(text, &crate::tools::catalog())
            .unwrap()
            .plan
    }

    fn given(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    const STEP: &str = "steps:\n  - id: a\n    action: echo\n";

    #[test]
    fn undeclared_inputs_are_refused_unless_the_pipeline_takes_any() {
        let p = plan(&format!(
            "name: t\nparameters:\n  out_dir: ./out\n  greeting: hi\n{STEP}"
        ));
        let Err(Error::UndeclaredInput(msg)) =
            resolve_inputs(&p, &given(json!({"out_dirr": "/tmp/x", "zzz": 1})))
        else {
            panic!("undeclared inputs were accepted");
        };
        assert!(
            msg.contains("`out_dirr` (did you mean `out_dir`?)") && msg.contains("`zzz`"),
            "{msg}"
        );
        assert!(msg.contains("extra_inputs: true"), "{msg}");
        let p = plan(&format!("name: t\nextra_inputs: true\n{STEP}"));
        let inputs = resolve_inputs(&p, &given(json!({"anything": "{{ 7*7 }}"}))).unwrap();
        assert_eq!(inputs["anything"], "{{ 7*7 }}");
    }

    #[test]
    fn caller_values_are_data_and_defaults_render_over_them() {
        let p = plan(&format!(
            "name: t\nparameters:\n  full: \"{{{{ out }}}}/f\"\n  out: \"{{{{ base }}}}/x\"\n  base: ./b\n  x: 1\n  all: \"{{{{ inputs.base }}}}+{{{{ inputs.out }}}}\"\n{STEP}"
        ));
        let inputs = resolve_inputs(&p, &Map::new()).unwrap();
        assert_eq!(inputs["out"], "./b/x");
        assert_eq!(inputs["full"], "./b/x/f");
        assert_eq!(inputs["all"], "./b+./b/x");
        let inputs = resolve_inputs(
            &p,
            &given(json!({"base": "{{ 7*7 }}", "x": "{{ 'a' | file_exists }}"})),
        )
        .unwrap();
        assert_eq!(inputs["x"], "{{ 'a' | file_exists }}");
        assert_eq!(inputs["out"], "{{ 7*7 }}/x");
        assert_eq!(inputs["full"], "{{ 7*7 }}/x/f");
        // A caller's value replaces a templated default and is not rendered either.
        let inputs = resolve_inputs(&p, &given(json!({"out": "{{ base }}"}))).unwrap();
        assert_eq!(inputs["out"], "{{ base }}");
        assert_eq!(inputs["full"], "{{ base }}/f");
    }

    #[test]
    fn defaults_that_read_each_other_are_an_error() {
        let p = plan(&format!(
            "name: t\nparameters:\n  a: \"{{{{ b }}}}\"\n  b: \"{{{{ a }}}}\"\n{STEP}"
        ));
        let Err(Error::InputTemplate { message, .. }) = resolve_inputs(&p, &Map::new()) else {
            panic!("a cycle of defaults rendered");
        };
        assert!(message.contains("refer to each other"), "{message}");
        // Given one of them, the other renders over it.
        let inputs = resolve_inputs(&p, &given(json!({"a": "{{ b }}"}))).unwrap();
        assert_eq!(inputs["b"], "{{ b }}");
    }
}
