//! orc's executor: runs a compiled [`orc_pipeline::Plan`] with a ready-queue scheduler,
//! per-step timeouts that kill whole process groups, retries with back-off, routing and
//! failure policies, loops, and the built-in tools; returns the result document.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let text = std::fs::read_to_string("pipeline.yaml")?;
//! let compiled = orc_pipeline::compile(&text, &orc_engine::catalog()).map_err(|d| format!("{d:?}"))?;
//! let result = orc_engine::execute(&compiled, orc_engine::Options::default()).await?;
//! println!("{}", serde_json::to_string_pretty(&result)?);
//! # Ok(()) }
//! ```

mod auto;
mod dry_run;
mod events;
mod models;
mod node_id;
mod recovery;
mod remote;
mod resources;
mod result;
mod sandbox;
mod scheduler;
mod scope;
mod step;
mod supervisor;
mod tools;

pub use dry_run::{PlannedCall, plan_models};
pub use events::{Event, Observer};
pub use remote::{Dispatch, StepOutcome, StepRunner, StepTask, TaskMismatch};
pub use resources::{MemoryLimit, Resources};
pub use result::{ChoiceRecord, RunResult, RunStatus, StepAttempts, StepRecord, StepStatus, Usage};
pub use sandbox::Sandbox;
pub use scheduler::{
    Error, Journal, Options, Result, execute, new_run_id, preflight, resolve_inputs, run,
};
pub use step::Backoff;
pub use supervisor::{SUPERVISE_ARG, set_supervisor, supervise_if_asked};
pub use tools::{
    Envelope, SubRequest, SubRun, SubRunner, SubSource, call as call_tool, catalog,
    catalog_with_models,
};
