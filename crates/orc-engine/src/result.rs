//! The result document: what `orc run` prints, compatible with the earlier system's and extended.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every step that ran succeeded.
    Completed,
    /// A step failed.
    Failed,
    /// Stopped by Ctrl-C or SIGTERM before the end.
    Interrupted,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Never started: the run stopped first.
    Pending,
    /// Ran and succeeded.
    Completed,
    /// Ran and failed or timed out.
    Failed,
    /// Was running when the run stopped (another step's failure, Ctrl-C, a lost store) and was
    /// stopped; a resume runs it again.
    Cancelled,
    /// Did not run: its condition was false, a route jumped over it, or a dependency failed.
    Skipped,
}

/// Tokens a step or run used (model steps; zero for tools).
pub use orc_models::Usage;

/// One step's record in the result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's id (for loop iterations, `<loop>_<i>_<step>`).
    pub id: String,
    /// The action that ran (`write`, `execute`, `echo`, `for_each`, …).
    pub action: String,
    /// The tool, for tool steps.
    pub tool: Option<String>,
    /// How it ended.
    pub status: StepStatus,
    /// Whether it succeeded.
    pub success: bool,
    /// The tool envelope `{result, success, error}`.
    pub value: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The kind of failure: `ToolError`, `Timeout`, `TemplateError`, `Cancelled`, `DependencyFailed`, `ConditionError`.
    pub error_type: Option<String>,
    /// Why it was skipped: `condition_false`, `condition_error`, `routed`, `dependency_failed`.
    pub reason: Option<String>,
    /// When its first attempt started (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When it finished.
    pub completed_at: Option<String>,
    /// Seconds from start to finish.
    pub duration: Option<f64>,
    /// Attempts after the first, by the step's own retry loop (`max_retries`).
    pub retries: u32,
    /// How many attempts each layer made: the step's retry loop, and for model steps
    /// orc-models' (its own retries and fallbacks).
    #[serde(default)]
    pub attempts: StepAttempts,
    /// Whether the last attempt hit its time limit.
    pub timed_out: bool,
    /// The ids it waited for.
    pub dependencies: Vec<String>,
    /// The model that answered (model steps).
    pub model: Option<String>,
    /// The model's provider (model steps).
    pub provider: Option<String>,
    /// Whether the answer came from a cache.
    pub cached: bool,
    /// Tokens used (model steps; for a `pipeline-executor` step, by its sub-run).
    pub usage: Option<Usage>,
    /// Cost in USD (model steps; for a `pipeline-executor` step, what its sub-run spent).
    pub cost: Option<f64>,
    /// For a `pipeline-executor` step, the sub-run's model calls whose model has no price
    /// (so `cost` leaves them out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unpriced_calls: u64,
    /// Seconds spent waiting for the model (model steps; the last attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_time: Option<f64>,
    /// Why this model answered (model steps): how it was chosen and the fallbacks taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_choice: Option<ChoiceRecord>,
    /// What an error handler (`on_error`) did: which one, the original error, its rendered
    /// action, whether its fallback value is the step's result, the handler step it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Value>,
    /// What the step declares it produces (`produces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produces: Option<String>,
    /// Where its declared output is (`location`, rendered), checked to exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The attempts each retry layer made for one step. Each failure is retried by one
/// layer only: orc-models retries model calls that failed in a way a retry can help
/// (429, 5xx, connection errors, timeouts of a request), and the step's retry loop
/// retries what orc-models does not own (a step that hit its `timeout`, a command
/// that ran and failed), never a failure a retry cannot help.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAttempts {
    /// Times the step's call was made: `retries + 1` for a step that ran; 0 for one
    /// that never ran it (skipped, not reached, answered from the step-result cache,
    /// or failed rendering its parameters).
    pub step: u32,
    /// Model steps: upstream requests orc-models made, over all of the step's
    /// attempts (0 when the answers came from the response cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<u32>,
}

/// How a model step's model was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// `named` (by the step, its parameters or the pipeline) or `router: <its reason>`.
    pub chosen_by: String,
    /// The fallbacks taken, in order, when the chosen model failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<orc_models::Fallback>,
}

/// The whole result of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The pipeline's id.
    pub pipeline_id: String,
    /// This run's id: `<pipeline>_<unix seconds>_<8 hex>`.
    pub execution_id: String,
    /// How the run ended.
    pub status: RunStatus,
    /// Whether no step that ran failed.
    pub success: bool,
    /// Every step, in plan order (loop iterations after their loop's position).
    pub steps: IndexMap<String, StepRecord>,
    /// The pipeline's `outputs`, rendered.
    pub outputs: serde_json::Map<String, Value>,
    /// What the pipeline's `enhanced_outputs` (or its list of outputs) says of each output:
    /// description and type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_specs: Vec<orc_pipeline::OutputSpec>,
    /// Step ids in the order they finished.
    pub execution_order: Vec<String>,
    /// Top-level steps grouped by dependency depth.
    pub execution_levels: Vec<Vec<String>>,
    /// When the run started.
    pub started_at: String,
    /// When it ended.
    pub completed_at: String,
    /// Seconds.
    pub duration: f64,
    /// The first failure, if any.
    pub error: Option<String>,
    /// Its kind.
    pub error_type: Option<String>,
    /// Tokens used by all model steps.
    pub usage: Usage,
    /// USD spent on model calls (unpriced models count as zero; see `unpriced_calls`).
    pub cost: f64,
    /// Model steps whose model has no price, so `cost` leaves them out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unpriced_calls: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
