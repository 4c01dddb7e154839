//! The run lifecycle as a library: every front end (`orc run`, `orc serve`, `orc worker`)
//! starts, resumes, follows and queries runs through one [`Runtime`], so nothing a run does
//! differs between them.
//!
//! Built as options → [`RuntimeOptions::build`] → a cheap-to-clone [`Runtime`] that owns the
//! state store, the model gateway (with its response cache), the step-result cache, the compile
//! cache and the `<AUTO>` resolver, and the leases of the runs it runs.
//!
//! - [`config`]: the config file, its defaults and `ORC_…` overrides.
//! - [`dirs`]: where orc keeps its files (`ORC_HOME`, else the XDG directories).
//! - [`state`]: the state store as a run uses it: its record, lease and journal.
//! - [`models`]: the gateway and the `<AUTO>` resolver the config describes.
//! - [`plans`]: loading and compiling a pipeline through the compile cache.
//! - [`observe`]: step metrics and the observer that fans events out.
//! - [`report`]: the daily report and the dashboard's series and models data, from the store.
//! - [`subpipes`]: sub-pipelines' paths, inputs and the compile-time check of those a pipeline
//!   names (cycles, depth); the runner `pipeline-executor` steps call is the runtime's.

pub mod config;
mod confine;
pub mod dirs;
mod error;
mod live;
mod model_pick;
pub mod models;
pub mod observe;
pub mod plans;
mod queue;
pub mod report;
mod requests;
mod runtime;
pub mod state;
pub mod subpipes;

pub use error::Error;
pub use live::{Outcome, RunEvent};
pub use queue::{Completion, StepMessage};
pub use runtime::{
    ResumeOptions, Resumed, RunHandle, Runtime, RuntimeOptions, Source, StartOptions, WorkerReport,
    tokio_runtime, validate,
};
