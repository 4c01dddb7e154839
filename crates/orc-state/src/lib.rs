//! orc's durable state store: runs, the checkpoint of each finished step, leases that keep two
//! processes from resuming the same run, run history, model-call metrics and the registry of
//! pipelines `orc serve` keeps ([`Store::put_pipeline`]).
//!
//! One [`Store`] type, three backends chosen by URL: SQLite (`sqlite:///path/state.db`, the
//! embedded default; WAL mode), PostgreSQL (`postgres://…`, for many machines) and Redis
//! (`redis://…`). The SQL backends carry embedded migrations and refuse a database from a newer
//! orc; Redis keeps a schema-version key and does the same.
//!
//! A run's life: [`Store::create_run`], then [`Store::append`] once per finished step (or per
//! group of steps: one transaction), then [`Store::finish_run`] with the result document. To
//! resume, [`Store::claim`] the run, read [`Store::run`] and [`Store::checkpoints`], reopen it with
//! `finish_run(id, RunState::Running, None)`, and [`Store::release`] the lease when done.
//!
//! A lease is held by an owner token ([`LeaseOwner`] for orc: host, boot, pid, start time and a
//! nonce) and fenced by a generation that goes up at each change of owner: the holder keeps it
//! with [`Store::renew`], and writes with [`Store::append_leased`] and [`Store::finish_leased`],
//! which fail with [`Error::LeaseLost`] once another process has taken the run over.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use orc_state::{Checkpoint, NewRun, RunState, StateOptions, Store};
//!
//! let store = Store::open("sqlite::memory:", StateOptions::default()).await?;
//! store.create_run(&NewRun {
//!     run_id: "r1".into(),
//!     pipeline_id: "summarize".into(),
//!     pipeline_path: "pipelines/summarize.yaml".into(),
//!     pipeline_hash: "b3:…".into(),
//!     inputs: serde_json::json!({"topic": "tides"}),
//!     started_at: SystemTime::now(),
//! }).await?;
//! store.append("r1", &[Checkpoint {
//!     step_id: "fetch".into(),
//!     status: "completed".into(),
//!     envelope: serde_json::json!({"result": "…", "success": true, "error": null}),
//!     started_at: None,
//!     completed_at: Some(SystemTime::now()),
//!     attempts: 1,
//!     model: None,
//!     usage: None,
//!     cost: None,
//! }]).await?;
//! let lease = store.claim("r1", "host-a:4242", Duration::from_secs(30)).await?.lease().unwrap();
//! assert!(store.claim("r1", "host-b:17", Duration::from_secs(30)).await?.lease().is_none());
//! store.renew(&lease, Duration::from_secs(30)).await?;
//! store.finish_leased(&lease, RunState::Completed, Some(br#"{"success":true}"#)).await?;
//! let run = store.run("r1").await?.unwrap();
//! assert_eq!((run.status, run.steps_done), (RunState::Completed, 1));
//! # Ok::<(), orc_state::Error>(())
//! # }).unwrap();
//! ```

mod codec;
mod error;
mod latency;
mod owner;
mod postgres;
mod records;
mod redis_store;
mod rollup;
mod sql;
mod sqlite;
mod stats;
mod store;
mod types;
mod url;

pub use error::{Error, Result};
pub use latency::LATENCY_ERROR_BOUND;
pub use owner::LeaseOwner;
pub use stats::{
    CacheCounts, CacheLookups, Latency, ModelUsage, PipelineUsage, RequestStats, SeriesPoint,
};
pub use store::{MAX_SERIES_POINTS, Store};
pub use types::{
    AttemptState, CallSource, Checkpoint, Claim, Dispatched, Lease, ModelMetric, NewPipeline,
    NewRun, Pipeline, PipelineRow, RunCursor, RunFilter, RunRow, RunState, StateOptions,
    UnknownRunState,
};
pub use url::redact_url;
