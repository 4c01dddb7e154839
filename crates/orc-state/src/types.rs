//! The records the store keeps and the options it opens with.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// How to open a [`Store`](crate::Store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOptions {
    /// Most connections the store opens (`performance.database.connection_pool_size`, default 50).
    /// PostgreSQL uses it as given. SQLite always has one writer and uses it, capped at 4, for
    /// its readers. Redis multiplexes one connection and ignores it.
    pub pool_size: u32,
    /// Longest any one operation may take, waiting for a connection included
    /// (`performance.database.query_timeout`, default 30 s); past it the call fails with
    /// [`Error::Timeout`](crate::Error::Timeout). Also PostgreSQL's `statement_timeout` and
    /// SQLite's busy timeout.
    pub query_timeout: Duration,
    /// Compress checkpoint payloads, result documents and registered pipelines' texts with zstd
    /// when that saves space (default on). Each record says whether it is compressed, so a store
    /// written with either setting reads back with the other.
    pub compression: bool,
    /// Keeps this store apart from others on the same server: the PostgreSQL schema that holds
    /// the tables (created when missing; `None` = the connection's default, normally `public`),
    /// or the Redis key prefix (`orc:state:<namespace>:`; `None` = `orc:state:`). SQLite stores
    /// are files and take no namespace. Letters, digits and `_`, at most 48 characters.
    pub namespace: Option<String>,
    /// How long status queries (`run`, `list_runs`) may be answered from memory; `None`
    /// asks the backend every time. Writes through this store forget every answer at once;
    /// other processes' writes show after at most this long.
    pub query_cache_ttl: Option<Duration>,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            pool_size: 50,
            query_timeout: Duration::from_secs(30),
            compression: true,
            namespace: None,
            query_cache_ttl: None,
        }
    }
}

/// Where a run is in its life. Stored as the lower-case name (`running`, `completed`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Started and not finished, or its process died (then it can be resumed).
    Running,
    /// Every step finished and the run succeeded.
    Completed,
    /// A step failed and the run stopped.
    Failed,
    /// Stopped by a signal or cancellation; resumable.
    Interrupted,
}

impl RunState {
    /// Every state, in declaration order.
    pub const ALL: [RunState; 4] = [
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::Interrupted,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not the name of a [`RunState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status `{0}` (expected running, completed, failed or interrupted)")]
pub struct UnknownRunState(pub String);

impl FromStr for RunState {
    type Err = UnknownRunState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownRunState(s.to_owned()))
    }
}

/// A run about to start, for [`Store::create_run`](crate::Store::create_run).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Unique id of the run (the result document's `execution_id`).
    pub run_id: String,
    /// The pipeline's `id`.
    pub pipeline_id: String,
    /// Where the pipeline file was read from.
    pub pipeline_path: String,
    /// Content hash of the pipeline, so a resume can tell that the file changed.
    pub pipeline_hash: String,
    /// The run's inputs.
    pub inputs: Value,
    /// When the run started.
    pub started_at: SystemTime,
}

/// A stored run, as [`Store::run`](crate::Store::run) and
/// [`Store::list_runs`](crate::Store::list_runs) return it. Times are kept to the microsecond.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Unique id of the run.
    pub run_id: String,
    /// The pipeline's `id`.
    pub pipeline_id: String,
    /// Where the pipeline file was read from.
    pub pipeline_path: String,
    /// Content hash of the pipeline.
    pub pipeline_hash: String,
    /// The run's inputs.
    pub inputs: Value,
    /// Where the run is.
    pub status: RunState,
    /// When the run started.
    pub started_at: SystemTime,
    /// When the run last finished (completed, failed or was interrupted); `None` while running.
    pub finished_at: Option<SystemTime>,
    /// How many checkpoints have been appended.
    pub steps_done: u64,
    /// Whether a process holds an unexpired lease on the run. A `Running` run nobody holds is
    /// abandoned: its process died (or lost the store) without recording how the run ended.
    pub held: bool,
}

/// A run's lease as its holder has it, from [`Store::claim`](crate::Store::claim): the owner
/// token and the lease's generation, which goes up each time another owner takes the run. Writes
/// made with it ([`Store::append_leased`](crate::Store::append_leased),
/// [`Store::finish_leased`](crate::Store::finish_leased)) are refused with
/// [`Error::LeaseLost`](crate::Error::LeaseLost) once another owner has taken the run over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run_id: String,
    /// Who holds it (a [`LeaseOwner`](crate::LeaseOwner) token, for orc).
    pub owner: String,
    /// The fencing generation.
    pub generation: i64,
}

/// What [`Store::dispatch_step`](crate::Store::dispatch_step) found.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// The attempt a worker stores its result under (from 1).
    pub attempt: u32,
    /// The result a worker already stored for the step, when one did.
    pub outcome: Option<Value>,
}

/// Where one attempt of a dispatched step stands, as a worker that was handed it finds it
/// ([`Store::attempt_state`](crate::Store::attempt_state)).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptState {
    /// The attempt is the step's current one and has no result yet: run the step.
    Current,
    /// The attempt is current and its result is stored (a worker stored it, then died or was
    /// cut off before it acked): do not run the step again, hand the stored result back.
    Finished(Value),
    /// A later attempt replaced it, or the step is unknown: nothing to do.
    Superseded,
}

/// What [`Store::claim`](crate::Store::claim) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the lease now.
    Held(Lease),
    /// Another owner holds an unexpired lease and is not provably dead.
    Refused {
        /// The holder, as stored.
        holder: String,
    },
}

impl Claim {
    /// The lease, when the claim succeeded.
    pub fn lease(self) -> Option<Lease> {
        match self {
            Claim::Held(lease) => Some(lease),
            Claim::Refused { .. } => None,
        }
    }
}

/// One finished step, appended to its run by [`Store::append`](crate::Store::append).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The step's id (for loop iterations, the expanded id).
    pub step_id: String,
    /// The step's status (`completed`, `failed`, `skipped`, …), as the engine names it.
    pub status: String,
    /// The step's envelope `{result, success, error}`; stored as JSON, compressed when
    /// [`StateOptions::compression`] is on and that saves space.
    pub envelope: Value,
    /// When the step started.
    pub started_at: Option<SystemTime>,
    /// When the step finished.
    pub completed_at: Option<SystemTime>,
    /// How many times the step ran (1 = no retry).
    pub attempts: u32,
    /// The model that answered, for model steps.
    pub model: Option<String>,
    /// Token usage, for model steps.
    pub usage: Option<Value>,
    /// Cost in USD, for model steps.
    pub cost: Option<f64>,
}

/// Which runs [`Store::list_runs`](crate::Store::list_runs) returns: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs in this state.
    pub status: Option<RunState>,
    /// Only runs of this pipeline.
    pub pipeline_id: Option<String>,
    /// At most this many runs; 0 = all.
    pub limit: u32,
    /// Only the runs after this one in the list's order: the next page (keyset paging, so a
    /// run started meanwhile neither repeats nor hides a run on the pages that follow).
    pub after: Option<RunCursor>,
}

/// A place in the list of runs, which is newest first, runs that started in the same
/// microsecond by id, descending (bytewise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    /// When the run started.
    pub started_at: SystemTime,
    /// Its id.
    pub run_id: String,
}

impl Default for RunFilter {
    /// Every run, at most 50.
    fn default() -> Self {
        RunFilter {
            status: None,
            pipeline_id: None,
            limit: 50,
            after: None,
        }
    }
}

/// One model request's outcome, recorded by
/// [`Store::record_model_metric`](crate::Store::record_model_metric): for the router (the calls
/// that went upstream), the daily report and the dashboard's series (every request, cache hits
/// included).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetric {
    /// The model's configured name.
    pub model: String,
    /// Its provider (`openai`, `anthropic`).
    pub provider: String,
    /// When the call finished.
    pub at: SystemTime,
    /// How long the call took, in milliseconds.
    pub latency_ms: f64,
    /// Whether it succeeded.
    pub success: bool,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Cost in USD.
    pub cost: f64,
    /// Where the answer came from: a call to the provider, the response cache, or an identical
    /// request's call in flight at the same time.
    pub source: CallSource,
    /// Whether the response cache answered: `Some(true)` a hit, `Some(false)` looked and
    /// missed, `None` not consulted (no cache, or the request asked not to use it).
    pub cache_hit: Option<bool>,
    /// What kind of failure, for a call that failed (`rate_limit`, `timeout`, `budget`, …).
    pub error_kind: Option<String>,
    /// The run the call was made for; `None` for a request to the OpenAI-compatible API.
    pub run_id: Option<String>,
    /// That run's pipeline.
    pub pipeline_id: Option<String>,
}

/// Where a model call's answer came from ([`ModelMetric::source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSource {
    /// A call to the provider made for this request.
    #[default]
    Upstream,
    /// The response cache.
    Cache,
    /// An identical request's call that was in flight at the same time.
    Shared,
}

impl CallSource {
    /// The name stored and shown: `upstream`, `cache`, `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallSource::Upstream => "upstream",
            CallSource::Cache => "cache",
            CallSource::Shared => "shared",
        }
    }

    /// The source a stored name stands for (an unknown one reads as `upstream`).
    pub(crate) fn parse(s: &str) -> CallSource {
        match s {
            "cache" => CallSource::Cache,
            "shared" => CallSource::Shared,
            _ => CallSource::Upstream,
        }
    }
}

/// A pipeline to register, for [`Store::put_pipeline`](crate::Store::put_pipeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPipeline {
    /// The registry id it is stored under (the `{id}` of `/v1/pipelines/{id}`): 1 to 200
    /// characters, no control characters, no leading or trailing white space.
    pub id: String,
    /// The pipeline's text (YAML), stored compressed when
    /// [`StateOptions::compression`] is on and that saves space.
    pub text: String,
    /// The caller's content hash of `text`: a put with the hash already stored changes nothing.
    pub hash: String,
    /// The `id:` the pipeline declares.
    pub pipeline_id: String,
    /// The `name:` the pipeline declares, if any.
    pub name: Option<String>,
    /// The `description:` the pipeline declares, if any.
    pub description: Option<String>,
    /// How many steps it has.
    pub steps: u32,
}

/// A registered pipeline without its text, as
/// [`Store::list_pipelines`](crate::Store::list_pipelines) returns it. Times are kept to the
/// microsecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRow {
    /// The registry id.
    pub id: String,
    /// The `id:` the pipeline declares.
    pub pipeline_id: String,
    /// The `name:` the pipeline declares, if any.
    pub name: Option<String>,
    /// The `description:` the pipeline declares, if any.
    pub description: Option<String>,
    /// The caller's content hash of the text.
    pub hash: String,
    /// How many steps it has.
    pub steps: u32,
    /// 1 when first registered, one more at each replacement with another hash.
    pub version: u64,
    /// When the id was first registered (kept across replacements).
    pub created_at: SystemTime,
    /// When the text last changed (`created_at` until the first replacement).
    pub updated_at: SystemTime,
}

/// A registered pipeline with its text, as [`Store::pipeline`](crate::Store::pipeline) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// Its registry row.
    pub row: PipelineRow,
    /// The text, exactly as put.
    pub text: String,
}
