//! Records as the backends write and read them: times in microseconds since the Unix epoch,
//! JSON as text, payloads packed. [`Store`](crate::Store) converts between these and the public types.

use crate::codec::Packed;

/// A run as a backend returns it, before decoding.
#[derive(Debug, Clone)]
pub(crate) struct StoredRun {
    pub(crate) run_id: String,
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_path: String,
    pub(crate) pipeline_hash: String,
    /// JSON text.
    pub(crate) inputs: String,
    pub(crate) status: String,
    pub(crate) started_at: i64,
    pub(crate) finished_at: Option<i64>,
    pub(crate) steps_done: i64,
    /// Whether an unexpired lease is held on it.
    pub(crate) held: bool,
}

/// What a backend's claim found.
#[derive(Debug, Clone)]
pub(crate) enum RawClaim {
    /// Claimed; the lease's generation.
    Held(i64),
    /// Another owner holds an unexpired lease (empty: it was let go meanwhile).
    Refused(String),
}

/// The owner and generation a write under a lease must still match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fence<'a> {
    pub(crate) owner: &'a str,
    pub(crate) generation: i64,
}

/// A checkpoint as a backend returns it, before decoding.
#[derive(Debug, Clone)]
pub(crate) struct StoredStep {
    /// Its position in the run, from 0.
    pub(crate) seq: i64,
    pub(crate) step_id: String,
    pub(crate) status: String,
    pub(crate) started_at: Option<i64>,
    pub(crate) completed_at: Option<i64>,
    pub(crate) attempts: i64,
    pub(crate) model: Option<String>,
    /// JSON text.
    pub(crate) usage: Option<String>,
    pub(crate) cost: Option<f64>,
    pub(crate) compressed: bool,
    pub(crate) payload: Vec<u8>,
}

/// A checkpoint ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct NewStep<'a> {
    pub(crate) step_id: &'a str,
    pub(crate) status: &'a str,
    pub(crate) started_at: Option<i64>,
    pub(crate) completed_at: Option<i64>,
    pub(crate) attempts: i64,
    pub(crate) model: Option<&'a str>,
    /// JSON text.
    pub(crate) usage: Option<String>,
    pub(crate) cost: Option<f64>,
    pub(crate) compressed: bool,
    pub(crate) payload: Vec<u8>,
}

/// A run ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct NewRunRecord<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) pipeline_id: &'a str,
    pub(crate) pipeline_path: &'a str,
    pub(crate) pipeline_hash: &'a str,
    /// JSON text.
    pub(crate) inputs: String,
    pub(crate) started_at: i64,
}

/// A model metric ready to be written, or as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MetricRecord {
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) at: i64,
    pub(crate) latency_ms: f64,
    pub(crate) success: bool,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cost: f64,
    /// `upstream`, `cache` or `shared`; members written before schema 4 (Redis) are upstream.
    #[serde(default = "upstream")]
    pub(crate) source: String,
    #[serde(default)]
    pub(crate) cache_hit: Option<bool>,
    #[serde(default)]
    pub(crate) error_kind: Option<String>,
    #[serde(default)]
    pub(crate) run_id: Option<String>,
    #[serde(default)]
    pub(crate) pipeline_id: Option<String>,
}

fn upstream() -> String {
    "upstream".to_owned()
}

/// One cache's lookups in one minute, ready to be added to the stored sums, or as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LookupRecord {
    /// The minute, numbered from the Unix epoch.
    pub(crate) minute: i64,
    /// Shared by the records of one cache read back.
    pub(crate) cache: std::sync::Arc<str>,
    pub(crate) hits: i64,
    pub(crate) misses: i64,
}

/// The model requests of a period that share every key column, summed: the report's rows
/// before they are rolled up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricGroup {
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) pipeline_id: Option<String>,
    pub(crate) cache_hit: Option<bool>,
    pub(crate) error_kind: Option<String>,
    pub(crate) success: bool,
    /// Requests per latency bucket ([`crate::latency`]); rows recorded before schema 5 have
    /// none and count in means, not percentiles.
    pub(crate) buckets: Vec<(i64, i64)>,
    pub(crate) requests: i64,
    pub(crate) cost: f64,
    /// The sum of the latencies, ms.
    pub(crate) latency_ms: f64,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
}

/// Some of the model requests of one time slot of a series, summed (a slot may have several).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotGroup {
    /// The slot: `(at - since) / step`.
    pub(crate) slot: i64,
    pub(crate) requests: i64,
    pub(crate) errors: i64,
    pub(crate) cache_hits: i64,
    pub(crate) cache_misses: i64,
    pub(crate) cost: f64,
    /// Requests per latency bucket.
    pub(crate) buckets: Vec<(i64, i64)>,
}

/// What a backend reads for a report of a period.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredStats {
    pub(crate) groups: Vec<MetricGroup>,
    /// The busiest minute: its number since the epoch (µs / 60,000,000) and its requests.
    pub(crate) peak_minute: Option<(i64, i64)>,
    /// How many runs made the period's requests.
    pub(crate) runs_with_requests: i64,
    /// Runs started in the period: pipeline, status, how many.
    pub(crate) runs: Vec<(String, String, i64)>,
}

/// A registered pipeline's row as a backend returns it, before decoding.
#[derive(Debug, Clone)]
pub(crate) struct StoredPipeline {
    pub(crate) id: String,
    pub(crate) pipeline_id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) hash: String,
    pub(crate) steps: i64,
    pub(crate) version: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// A pipeline ready to be registered.
#[derive(Debug, Clone)]
pub(crate) struct NewPipelineRecord<'a> {
    pub(crate) id: &'a str,
    pub(crate) pipeline_id: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) hash: &'a str,
    pub(crate) steps: i64,
    /// `created_at` of a new id, `updated_at` of a changed one.
    pub(crate) now: i64,
    /// The text, packed.
    pub(crate) text: Packed,
}
