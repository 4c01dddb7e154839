//! orc's standard benchmark workloads, run by `orc bench`.
//!
//! A [`Suite`] is built from [`Options`] (the `orc` binary, timed runs per workload, quick
//! mode, a name filter, a time limit per workload), runs each selected [`Workload`] once
//! untimed and then `runs` times timed, and returns a [`Report`]: every workload's median,
//! quartiles and extremes, time per operation and throughput, with the orc version, git
//! commit, cores and date. [`baseline`] saves a report by name and [`baseline::compare`]s a
//! new one with it.
//!
//! The workloads: `compile` (a generated 10,000-step chain, in process), `chain`, `fanout` and
//! `diamond` (generated pipelines of file writes run as whole `orc run` processes in a temp
//! `ORC_HOME`), `model_direct` and `model_gateway` (chat calls against the loopback
//! [`orc_fake_provider`], straight and through orc's gateway), `cache_hit` (the gateway's
//! memory response cache), `checkpoint_append` (SQLite checkpoints) and the `serve_*` workloads
//! (a child `orc serve`: its start and idle memory, runs, chat completions beside the same posted
//! straight to the fake provider, requests held in flight, event-stream followers, driven by
//! `orc loadtest`'s engine), whose [`Figure`]s (ratios, percentiles, memory) are held to the
//! service's targets. Nothing leaves loopback or the temp dir.
//!
//! ```no_run
//! # fn main() -> orc_bench::Result<()> {
//! let suite = orc_bench::Suite::new(orc_bench::Options {
//!     orc: "orc".into(),
//!     runs: 5,
//!     quick: true,
//!     filter: vec!["chain".into()],
//!     time_limit: std::time::Duration::from_secs(60),
//! })?;
//! let report = suite.run(|_| {})?;
//! print!("{}", report.table());
//! # Ok(())
//! # }
//! ```

pub mod baseline;
pub mod checkpoint;
mod error;
pub mod generate;
mod load;
mod models;
mod pipelines;
mod process;
mod report;
mod serve;
mod stats;
mod suite;
mod workload;

pub use error::{Error, Result};
pub use report::{Bound, Figure, Measured, Report, duration};
pub use stats::Summary;
pub use suite::{Options, Suite};
pub use workload::Workload;
