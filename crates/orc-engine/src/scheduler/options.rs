//! How to run a plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::Journal;
use crate::events::Observer;
use crate::resources::Resources;
use crate::result::StepRecord;
use crate::step::Backoff;

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
    /// Runs the sub-pipelines of `pipeline-executor` steps (the runtime gives one); without
    /// it those steps fail.
    pub sub_runner: Option<Arc<dyn crate::tools::SubRunner>>,
    /// Where action steps go instead of running here (`orc run --queue`: workers on other
    /// machines); `None` runs every step in this process. Steps that need this process (model
    /// steps, `cache: true`, error handlers, sub-pipelines, `pool: local`) run here anyway.
    pub dispatch: Option<Arc<dyn crate::remote::Dispatch>>,
    /// The confinement of an untrusted pipeline's run (one posted to `orc serve`): its files,
    /// commands and network. `None` runs with the process's own rights.
    pub sandbox: Option<Arc<crate::Sandbox>>,
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
            sub_runner: None,
            dispatch: None,
            sandbox: None,
        }
    }
}
