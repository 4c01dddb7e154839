//! orc's metrics and profiling.
//!
//! - [`names`]: every metric name as a constant, with its kind, unit, labels and description.
//!   Other crates record with the [`metrics`] macros and these constants.
//! - [`Exporter`]: the Prometheus recorder, installed once per process as the global `metrics`
//!   recorder ([`Exporter::global`]), rendering real histograms with buckets per unit.
//! - [`MetricsServer`]: the `/metrics` HTTP endpoint Prometheus scrapes.
//! - [`process`]: resident memory and CPU time of the process.
//! - [`Profile`] and [`Trace`]: the profiling report of `orc run --profile` and the Chrome trace
//!   of a run, both built from the same [`StepTiming`]s and written atomically.
//!
//! The Grafana dashboard for these metrics is `crates/orc-telemetry/grafana/orc-dashboard.json`.
//!
//! ```no_run
//! # async fn serve() -> orc_telemetry::Result<()> {
//! use orc_telemetry::{Exporter, MetricsServer, names};
//! use tokio_util::sync::CancellationToken;
//!
//! let exporter = Exporter::global()?;
//! let server = MetricsServer::bind("127.0.0.1:9090".parse().unwrap(), exporter).await?;
//! let cancel = CancellationToken::new();
//! let serving = tokio::spawn(server.run(cancel.clone()));
//!
//! metrics::counter!(names::PIPELINE_RUNS_TOTAL,
//!     names::label::PIPELINE => "summarize", names::label::OUTCOME => "success")
//! .increment(1);
//!
//! cancel.cancel();
//! serving.await.unwrap();
//! # Ok(())
//! # }
//! ```

mod error;
mod exporter;
pub mod names;
pub mod process;
mod profile;
mod server;
mod trace;
mod write;

pub use error::{Error, Result};
pub use exporter::{Exporter, recording};
pub use profile::{
    CacheUse, CriticalPath, PROFILE_SCHEMA, Profile, RunInfo, SlowStep, StepProfile, StepTiming,
};
pub use server::{CONTENT_TYPE, MetricsServer};
pub use trace::{Trace, write_trace};
pub use write::write_json_atomically;
