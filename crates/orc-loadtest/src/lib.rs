//! `orc loadtest`'s engine: load against `orc serve` (or the same routes over a runtime in this
//! process), measured with HDR histograms, reported as a table, JSON or an HTML page.
//!
//! - [`LoadTestOptions`]: what a scenario file describes ([`LoadTestOptions::from_file`]) or a
//!   program sets: the [`Target`], users, ramp-up, duration or request count, think time, and
//!   weighted [`Scenario`]s, each a pipeline run ([`Action::Pipeline`], through
//!   `POST /v1/runs?wait=true`) or any API request ([`Action::Request`]), with values that vary
//!   per request ([`Template`]: `{{ i }}`, `{{ user }}`, `{{ random }}`, `{one_of: […]}`).
//! - [`LoadTestOptions::build`] → a cheap-to-clone [`LoadTest`]; [`LoadTest::run`] → [`Report`].
//!
//! Two load models. **Closed** (the default): users start evenly over the ramp-up, each sends a
//! request, waits for the answer, thinks, and loops. **Open** (`rate`): requests are due at a
//! fixed rate (rising linearly over the ramp-up) whatever the answers' speed, and each one's
//! latency counts from when it was due, so a stall shows in the latency of every request it
//! delayed instead of being hidden by the requests that were never sent (coordinated omission).
//! Either way the test ends by itself: at its duration or request count, and at `max_duration`
//! whatever else it says.
//!
//! Each worker records into its own histograms for the current interval and hands them to one
//! collector task when the interval changes: no lock and no allocation per request, so the
//! generator is not the bottleneck of the service it measures.
//!
//! Why not goose: its scenarios are Rust functions registered on a `GooseAttack`, which owns
//! the command line, the logger and a Ctrl-C handler of its own and speaks HTTP only, while
//! orc's come from a YAML file, run under `orc`'s own command line, and drive an in-process
//! runtime too; it sends one message per request to a parent for its metrics and computes
//! percentiles from its own rounded buckets, where this engine keeps per-worker HDR
//! histograms; and it has no open (fixed-rate) model.
//!
//! ```no_run
//! # async fn example() -> Result<(), orc_loadtest::Error> {
//! use orc_loadtest::{LoadTestOptions, Scenario, Target};
//! let options = LoadTestOptions::new(
//!     Target::Url("http://127.0.0.1:8080".into()),
//!     vec![Scenario::request("health", http::Method::GET, "/healthz", None)],
//!     10_000,
//! );
//! let report = options.build().await?.run(Default::default(), None).await;
//! println!("{} requests/s, p99 {} ms", report.total.requests_per_second, report.total.latency_ms.p99);
//! # Ok(()) }
//! ```

mod engine;
mod error;
mod file;
mod html;
mod options;
mod record;
mod report;
mod table;
mod template;
mod transport;

pub use engine::{LoadTest, MAX_USERS, Progress};
pub use error::{Error, Result};
pub use file::parse_duration;
pub use options::{
    Action, DEFAULT_MAX_DURATION, DEFAULT_TIMEOUT, LoadTestOptions, PipelineSource, Scenario,
    Target, ThinkTime, Token,
};
pub use report::{Latency, LoadModel, Overhead, Point, Report, ScenarioStats, Stats, Timeline};
pub use template::Template;
