//! The checked, immutable form of a pipeline that the executor runs, as the compile cache
//! stores it: serializable, with templates and condition expressions as source text referenced
//! by index. [`crate::Compiled`] holds it beside its executable form (the templates compiled,
//! the expressions parsed).

use serde::{Deserialize, Serialize};

use crate::input_type::InputType;
use crate::yaml::Pos;

/// Index of a template in [`Plan::templates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateId(pub u32);

/// Index of a condition expression in [`Plan::exprs`] (parsed, in the executable form's
/// [`crate::expr::ExprSet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExprId(pub u32);

/// A compiled pipeline: every reference resolved to an index, every template checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Pipeline id (`id`, else `name`).
    pub id: String,
    /// Pipeline name.
    pub name: String,
    /// `x.y.z` version.
    pub version: String,
    /// Declared inputs, in document order.
    pub inputs: Vec<Input>,
    /// Whether the caller may give inputs the pipeline does not declare (`extra_inputs: true`);
    /// otherwise an undeclared input is an error before anything runs.
    #[serde(default)]
    pub extra_inputs: bool,
    /// Output names and the template or literal that computes each.
    pub outputs: Vec<(String, Param)>,
    /// The pipeline's default model, if it names one.
    pub model: Option<String>,
    /// The most USD one run of the pipeline may spend on models (`budget:`).
    #[serde(default)]
    pub budget: Option<f64>,
    /// `metadata.default_timeout`, seconds.
    pub default_timeout: Option<f64>,
    /// Top-level steps in document order.
    pub steps: Vec<Step>,
    /// Template sources, referenced by [`TemplateId`].
    pub templates: Vec<String>,
    /// Condition expression sources, referenced by [`ExprId`].
    pub exprs: Vec<String>,
    /// What `enhanced_outputs` declares about the outputs (py-orc's annotated outputs): each
    /// output's description and type, in document order.
    #[serde(default)]
    pub output_specs: Vec<OutputSpec>,
}

/// One entry of `enhanced_outputs`: what an output is, beside the value `outputs` computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The output's name.
    pub name: String,
    /// `description:`, as written.
    pub description: Option<String>,
    /// `type:`, as written (`auto-detect`, `object`, `markdown`, …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A declared pipeline input (`parameters:` or `inputs:`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    /// The name templates use.
    pub name: String,
    /// The value used when the caller gives none.
    pub default: Option<serde_json::Value>,
    /// Whether the caller must give a value (when there is no default).
    pub required: bool,
    /// The declared type, checked against given values.
    pub kind: Option<InputType>,
    /// `choices:` (or `enum:`, or `validation.allowed_values`): the values the input may take.
    #[serde(default)]
    pub choices: Option<Vec<serde_json::Value>>,
    /// `validation:` (and `range:`): the limits a value must keep.
    #[serde(default)]
    pub rules: InputRules,
}

/// The limits of an input's `validation:` (py-orc's forms) and `range: [min, max]`; unset
/// fields do not constrain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputRules {
    /// A regular expression the whole text must match (`pattern:`).
    pub pattern: Option<String>,
    /// Fewest characters of a text, or items of a list (`min_length:`).
    pub min_length: Option<u64>,
    /// Most characters of a text, or items of a list (`max_length:`).
    pub max_length: Option<u64>,
    /// Smallest number (`min:`, `minimum:`, `range[0]`).
    pub min: Option<f64>,
    /// Largest number (`max:`, `maximum:`, `range[1]`).
    pub max: Option<f64>,
}

impl InputRules {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == InputRules::default()
    }
}

/// A step at some level of the plan: top level or inside a loop body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// The id as written (inside a loop body, the short id).
    pub id: String,
    /// What the step does.
    pub kind: StepKind,
    /// Indices of the steps in the same list that must finish first.
    pub deps: Vec<u32>,
    /// Guard evaluated just before the step runs.
    pub condition: Option<Condition>,
    /// Where to jump when the condition is false.
    pub on_false: Option<u32>,
    /// Where to jump when the step succeeds.
    pub on_success: Option<u32>,
    /// What to do when the step fails.
    pub on_failure: OnFailure,
    /// Per-attempt time limit, seconds.
    pub timeout: Option<f64>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Whether its result may be reused from the step-result cache (`cache: true`).
    pub cache: Option<bool>,
    /// The model the step asks for (`model:` or `requires_model:`), if it says.
    #[serde(default)]
    pub model: Option<ModelChoice>,
    /// Where the step starts in the file.
    pub pos: Pos,
    /// Its error handlers (`on_error`, `error_handlers`).
    #[serde(default)]
    pub recovery: Option<Box<Recovery>>,
    /// The wait between its retries, when it sets one (`retry_config`); else the run's.
    #[serde(default)]
    pub retry_backoff: Option<RetryBackoff>,
    /// The output it declares (`produces`, `location`).
    #[serde(default)]
    pub output: Option<Box<DeclaredOutput>>,
    /// The worker pool it runs on when the run has a queue (`pool:`); `local` keeps it on the
    /// coordinator; `None` is the run's pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Whether it is another step's handler (`handler_task_id`): it runs only when that step
    /// failed, with `error` bound.
    #[serde(default)]
    pub handles_errors: bool,
}

/// The model a step asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelChoice {
    /// A model reference the catalog knows (`model: NAME` or `requires_model: NAME`).
    Named(String),
    /// `requires_model: none`: the step needs no model.
    NoModel,
    /// `requires_model: {…}`: any model that meets these requirements.
    Requirements(ModelRequirements),
}

/// What a model must offer to run a step (`requires_model: {…}`); unset fields do not constrain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRequirements {
    /// Tokens the model must accept, at least.
    pub context_window: Option<u64>,
    /// Tags of which the model must have at least one (`code`, `reasoning`, or a level such as `high`), as written.
    pub expertise: Vec<String>,
    /// Smallest model size, in billions of parameters.
    pub min_size: Option<f64>,
    /// Largest model size, in billions of parameters.
    pub max_size: Option<f64>,
    /// Most a call may cost, in US dollars.
    pub cost_limit: Option<f64>,
}

/// What a step does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StepKind {
    /// Call a tool (or a tool-less action such as `echo`).
    Action(Action),
    /// Run `body` once per item.
    ForEach(ForEach),
    /// Run `body` while a condition holds.
    While(While),
}

/// A call to a tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// The tool (`filesystem`, `terminal`, …), or `None` for tool-less actions (`echo`, …).
    pub tool: Option<String>,
    /// The action, possibly a template.
    pub action: Param,
    /// Rendered parameters.
    pub params: Param,
}

/// A `for_each` loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForEach {
    /// The items: a literal list or a template.
    pub items: Param,
    /// The steps of one iteration.
    pub body: Vec<Step>,
    /// Iterations that may run at once (at least 1).
    pub max_parallel: u32,
    /// Extra name bound to the item.
    pub loop_var: Option<String>,
    /// `max_concurrent: "{{ … }}"`: a template giving `max_parallel` when the loop starts.
    #[serde(default)]
    pub max_parallel_from: Option<TemplateId>,
    /// A step written with py-orc's `foreach:` (one action mapped over the items): the loop's
    /// result is the list of its iterations' results, `null` for one that did not complete.
    #[serde(default)]
    pub collect: bool,
}

/// A `while` loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct While {
    /// Checked before every iteration.
    pub condition: Condition,
    /// Checked after every iteration; true ends the loop.
    pub until: Option<Condition>,
    /// The steps of one iteration.
    pub body: Vec<Step>,
    /// Upper bound on iterations.
    pub max_iterations: u32,
    /// `max_iterations: "{{ … }}"`: a template giving the bound when the loop starts
    /// (`max_iterations` is then the default).
    #[serde(default)]
    pub max_iterations_from: Option<TemplateId>,
}

/// A step guard or loop condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Condition {
    /// `true`, `false`, `yes`, `no`, `1`, `0`.
    Literal(bool),
    /// A `{{ }}` template: the value of a lone `{{ expression }}`, else the rendered text read
    /// as a condition (which of the two, the executable form's [`crate::templates::TemplateSet`]
    /// decides once).
    Template(TemplateId),
    /// An expression in orc's condition language, parsed once in the executable form's
    /// [`crate::expr::ExprSet`].
    Expr(ExprId),
}

/// What a failure does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// Stop the run (default).
    Fail,
    /// Carry on; dependents run.
    Continue,
    /// Skip every transitive dependent.
    Skip,
    /// Jump to the step with this index, skipping the steps in between.
    Goto(u32),
}

/// A parameter value: literal JSON, a template, or a container of either.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Param {
    /// A value with no template in it.
    Lit(serde_json::Value),
    /// A string that is a template.
    Tmpl(TemplateId),
    /// A list with templates inside.
    List(Vec<Param>),
    /// A mapping with templates inside.
    Map(Vec<(String, Param)>),
}

/// The pool name that keeps a step on the run's coordinator (`pool: local`).
pub const LOCAL_POOL: &str = "local";

/// Whether `name` can name a worker pool: 1 to 64 ASCII letters, digits, `-` and `_` (it is a
/// token of a NATS subject and part of a stream's name).
pub fn is_pool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Step {
    /// The loop body, for loop steps.
    pub fn body(&self) -> Option<&[Step]> {
        match &self.kind {
            StepKind::ForEach(f) => Some(&f.body),
            StepKind::While(w) => Some(&w.body),
            StepKind::Action(_) => None,
        }
    }
}

impl Plan {
    /// Total number of steps, counting loop bodies once.
    pub fn step_count(&self) -> usize {
        fn count(steps: &[Step]) -> usize {
            steps.iter().map(|s| 1 + s.body().map_or(0, count)).sum()
        }
        count(&self.steps)
    }
}

// py-orc's error handling and declared outputs: a step's error handlers (`on_error`,
// `error_handlers`), its retry back-off (`retry_config`) and the file it declares it writes
// (`produces`, `location`). Read by `compile::recovery`, run by the engine's `recovery`.

/// Names a handler's templates (and a handler step's) can use besides the step's own: the
/// failed step's error, as py-orc's handler context binds it.
pub const ERROR_BINDINGS: &[&str] = &[
    "error",
    "error_message",
    "error_type",
    "failed_task_id",
    "failed_task_name",
    "execution_attempt",
];

/// A step's error handlers, tried in order (py-orc's `priority`, then as written) when the
/// step has failed after its retries; the first that applies decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovery {
    /// The handlers, in the order they are tried.
    pub handlers: Vec<Handler>,
}

/// One error handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handler {
    /// Error types it handles (py-orc's names, such as `FileNotFoundError`, or orc's kinds,
    /// such as `Timeout`); empty or `*` for any.
    pub error_types: Vec<String>,
    /// Regular expressions, any of which the error's message matches (case-insensitive).
    pub error_patterns: Vec<String>,
    /// Exit codes or HTTP statuses it handles.
    pub error_codes: Vec<serde_json::Value>,
    /// Whether it is on (`enabled:`, a literal or a condition read with `error` bound).
    pub enabled: Option<Condition>,
    /// What the handler says it does (`handler_action`, `action`, or the prose of
    /// `on_error: "…"`), rendered with `error` bound and recorded; orc runs no prose.
    pub action: Option<Param>,
    /// The step's result when the handler applies (`fallback_value`): the step completes.
    pub fallback: Option<Param>,
    /// A step of the same level that runs, with `error` bound, when this handler applies
    /// (`handler_task_id`).
    pub step: Option<u32>,
    /// Attempts of the step made again, whatever the failure, before the handler applies
    /// (`retry_with_handler` with `max_handler_retries`; `retry_count`).
    pub retries: u32,
    /// What the failure does to the run once handled (without a fallback).
    pub then: Then,
    /// Whether a fallback that cannot be rendered still lets the run go on
    /// (`continue_on_handler_failure`).
    pub continue_on_handler_failure: bool,
    /// The level the handled error is logged at (`log_level`).
    pub log_level: LogLevel,
    /// Where the handler is written.
    pub pos: Pos,
}

/// What a handled failure does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Then {
    /// The failure is handled: the step's dependents run (`on_failure: continue`).
    Continue,
    /// The step's own failure policy applies (`propagate_error: true`, or py-orc's legacy
    /// mapping with `continue_on_error: false`).
    Propagate,
}

/// A handler's `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warning`
    Warning,
    /// `error` and `critical` (the default)
    Error,
}

/// The wait between a step's retries when it sets one (`retry_config`, `retry: {…}`):
/// `delay · factor^(n-1)`, at most `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryBackoff {
    /// Seconds before the first retry.
    pub delay: f64,
    /// Growth of the wait from one retry to the next (1 for a fixed wait).
    pub factor: f64,
    /// The longest wait, seconds.
    pub max_delay: f64,
}

impl RetryBackoff {
    /// The wait before retry number `n` (1 for the first), seconds.
    pub fn seconds(&self, n: u32) -> f64 {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        (self.delay * self.factor.powi(exp)).min(self.max_delay)
    }
}

/// The output a step declares (`produces`, `location`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeclaredOutput {
    /// What it produces, as written (`markdown-file`, `json`, …).
    pub produces: Option<String>,
    /// The file (or, ending in `/`, directory) it writes: checked to exist after the step
    /// succeeds.
    pub location: Option<Param>,
}

#[cfg(test)]
mod recovery_tests {
    use super::*;

    #[test]
    fn the_wait_grows_by_the_factor_up_to_the_longest() {
        let b = RetryBackoff {
            delay: 0.5,
            factor: 3.0,
            max_delay: 4.0,
        };
        assert!((b.seconds(1) - 0.5).abs() < 1e-9);
        assert!((b.seconds(2) - 1.5).abs() < 1e-9);
        assert!((b.seconds(3) - 4.0).abs() < 1e-9);
        assert!((b.seconds(40) - 4.0).abs() < 1e-9);
    }
}
