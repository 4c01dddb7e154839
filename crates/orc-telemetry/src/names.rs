//! Every metric orc records, declared once: its name (`orc_<subsystem>_<name>_<unit>[_total]`),
//! kind, unit, label keys and description.
//!
//! Record with the [`metrics`] macros and these constants, never a string literal:
//!
//! ```
//! use orc_telemetry::names::{self, label};
//!
//! metrics::counter!(names::STEPS_TOTAL,
//!     label::TOOL => "llm", label::ACTION => "generate", label::OUTCOME => "success")
//! .increment(1);
//! metrics::histogram!(names::STEP_DURATION_SECONDS,
//!     label::TOOL => "llm", label::ACTION => "generate", label::OUTCOME => "success")
//! .record(0.25);
//! ```
//!
//! Label values must come from a small set: a pipeline name, a tool, an action, a provider, a
//! model, a cache name, an outcome or an error kind. Never a run id, a step id inside a loop, a
//! prompt or a file path, which would create a new time series per run.
//!
//! Two monotonic figures are fractional, and [`metrics`] counters only count whole numbers, so
//! [`MODEL_COST_USD_TOTAL`] and [`PROCESS_CPU_SECONDS_TOTAL`] are gauges that only ever go up
//! (`gauge!(..).increment(usd)`, `gauge!(..).set(seconds)`). They keep the `_total` suffix, and
//! `rate()` and `increase()` work on them as on counters.

use metrics::Unit;

/// Label keys. Values must be bounded (see the [module documentation](self)).
pub mod label {
    /// The pipeline's name (not its run id).
    pub const PIPELINE: &str = "pipeline";
    /// How something ended: `success`, `failure`, `cancelled`, `timeout`, `skipped`, …
    pub const OUTCOME: &str = "outcome";
    /// A step's tool, such as `llm` or `shell`.
    pub const TOOL: &str = "tool";
    /// A step's action within its tool, such as `generate`.
    pub const ACTION: &str = "action";
    /// A model provider's name from the config.
    pub const PROVIDER: &str = "provider";
    /// A model's name from the config.
    pub const MODEL: &str = "model";
    /// A kind: of model error (`rate_limited`, `timeout`, `server`, …) or of batched request
    /// (`embeddings`, `completions`).
    pub const KIND: &str = "kind";
    /// The model a fallback moved away from.
    pub const FROM: &str = "from";
    /// The model a fallback moved to.
    pub const TO: &str = "to";
    /// A cache's name: `model`, `step`, `compile`, `query`, …
    pub const CACHE: &str = "cache";
    /// The route an HTTP request matched (`/v1/runs/{id}`, never the path it asked for), or
    /// `unmatched`.
    pub const ROUTE: &str = "route";
    /// An HTTP response's status code.
    pub const STATUS: &str = "status";
    /// A worker pool of the queue (`default`, or a step's `pool:`).
    pub const POOL: &str = "pool";
}

// --- pipeline runs ---------------------------------------------------------------------------

/// Counter {pipeline, outcome}: pipeline runs that ended.
pub const PIPELINE_RUNS_TOTAL: &str = "orc_pipeline_runs_total";
/// Histogram {pipeline, outcome}: wall time of a pipeline run, in seconds.
pub const PIPELINE_RUN_DURATION_SECONDS: &str = "orc_pipeline_run_duration_seconds";

// --- steps -----------------------------------------------------------------------------------

/// Counter {tool, action, outcome}: steps that ended.
pub const STEPS_TOTAL: &str = "orc_steps_total";
/// Histogram {tool, action, outcome}: how long a step ran, in seconds.
pub const STEP_DURATION_SECONDS: &str = "orc_step_duration_seconds";
/// Histogram {tool, action}: how long a ready step waited for a free slot, in seconds.
pub const STEP_QUEUE_WAIT_SECONDS: &str = "orc_step_queue_wait_seconds";

// --- scheduler -------------------------------------------------------------------------------

/// Gauge: steps whose dependencies are done, waiting for a slot.
pub const SCHEDULER_READY_STEPS: &str = "orc_scheduler_ready_steps";
/// Gauge: steps running now.
pub const SCHEDULER_RUNNING_STEPS: &str = "orc_scheduler_running_steps";

// --- model calls -----------------------------------------------------------------------------

/// Counter {provider, model, outcome}: requests sent to a model provider (each retry counts).
pub const MODEL_REQUESTS_TOTAL: &str = "orc_model_requests_total";
/// Histogram {provider, model}: time from sending a request to its last byte, in seconds.
pub const MODEL_REQUEST_DURATION_SECONDS: &str = "orc_model_request_duration_seconds";
/// Histogram {provider, model}: time from sending a streamed request to its first token.
pub const MODEL_TIME_TO_FIRST_TOKEN_SECONDS: &str = "orc_model_time_to_first_token_seconds";
/// Counter {provider, model}: prompt tokens billed.
pub const MODEL_INPUT_TOKENS_TOTAL: &str = "orc_model_input_tokens_total";
/// Counter {provider, model}: completion tokens billed.
pub const MODEL_OUTPUT_TOKENS_TOTAL: &str = "orc_model_output_tokens_total";
/// Histogram {provider, model}: prompt tokens of one request.
pub const MODEL_REQUEST_INPUT_TOKENS: &str = "orc_model_request_input_tokens";
/// Histogram {provider, model}: completion tokens of one request.
pub const MODEL_REQUEST_OUTPUT_TOKENS: &str = "orc_model_request_output_tokens";
/// Monotonic gauge {provider, model}: estimated spend in US dollars (see the module docs for why
/// a gauge).
pub const MODEL_COST_USD_TOTAL: &str = "orc_model_cost_usd_total";
/// Histogram {provider, model}: estimated cost of one request in US dollars.
pub const MODEL_REQUEST_COST_USD: &str = "orc_model_request_cost_usd";
/// Counter {provider, model, kind}: failed requests by error kind.
pub const MODEL_ERRORS_TOTAL: &str = "orc_model_errors_total";
/// Counter {provider, model}: requests sent again after a retryable error.
pub const MODEL_RETRIES_TOTAL: &str = "orc_model_retries_total";
/// Counter {from, to}: calls that moved to a fallback model.
pub const MODEL_FALLBACKS_TOTAL: &str = "orc_model_fallbacks_total";

// --- caches ----------------------------------------------------------------------------------

/// Counter {cache}: lookups that found an entry.
pub const CACHE_HITS_TOTAL: &str = "orc_cache_hits_total";
/// Counter {cache}: lookups that found nothing (a failing backend counts here too).
pub const CACHE_MISSES_TOTAL: &str = "orc_cache_misses_total";
/// Counter {cache}: backend errors and timeouts.
pub const CACHE_ERRORS_TOTAL: &str = "orc_cache_errors_total";
/// Counter {cache}: entries removed to respect a size bound.
pub const CACHE_EVICTIONS_TOTAL: &str = "orc_cache_evictions_total";

// --- batcher ---------------------------------------------------------------------------------

/// Histogram {provider, model, kind}: requests sent together in one batch.
pub const BATCH_SIZE: &str = "orc_batch_size";

// --- service (`orc serve`) ----------------------------------------------------------------

/// Counter {route, status}: HTTP requests answered.
pub const HTTP_REQUESTS_TOTAL: &str = "orc_http_requests_total";
/// Histogram {route}: time from a request's arrival to its response's headers.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "orc_http_request_duration_seconds";

// --- queue (`orc run --queue`, `orc worker`) ------------------------------------------------

/// Histogram: time from a step being ready on its coordinator to a worker taking it (the
/// hand-out's record in the store and the publish included).
pub const QUEUE_CLAIM_SECONDS: &str = "orc_queue_claim_seconds";
/// Counter: steps a worker took that had been delivered before (their worker died or went
/// silent past `AckWait`).
pub const QUEUE_REDELIVERIES_TOTAL: &str = "orc_queue_redeliveries_total";
/// Gauge {pool}: steps in the pool's stream that no worker has finished (waiting for a worker,
/// or taken and not yet acked), sampled every few seconds by coordinators and workers.
pub const QUEUE_DEPTH: &str = "orc_queue_depth";
/// Gauge: steps this worker runs now.
pub const WORKER_RUNNING_STEPS: &str = "orc_worker_running_steps";

// --- process ---------------------------------------------------------------------------------

/// Gauge: resident memory of the orc process, in bytes.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "orc_process_resident_memory_bytes";
/// Monotonic gauge: user and system CPU time of the orc process, in seconds.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "orc_process_cpu_seconds_total";

/// What kind of series a metric is, as the exporter renders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up, by whole numbers.
    Counter,
    /// Set to a value, or moved up and down.
    Gauge,
    /// Observations counted into buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric orc records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric {
    /// Its name, one of this module's constants.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit of its values.
    pub unit: Unit,
    /// The label keys it is recorded with (from [`label`]).
    pub labels: &'static [&'static str],
    /// What it counts, shown as `# HELP`.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        unit,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};
use label::{
    ACTION, CACHE, FROM, KIND, MODEL, OUTCOME, PIPELINE, POOL, PROVIDER, ROUTE, STATUS, TO, TOOL,
};

/// Every metric orc records, in the order of this module.
#[rustfmt::skip]
pub const ALL: &[Metric] = &[
    metric(PIPELINE_RUNS_TOTAL, Counter, Unit::Count, &[PIPELINE, OUTCOME],
        "Pipeline runs that ended, by pipeline and outcome."),
    metric(PIPELINE_RUN_DURATION_SECONDS, Histogram, Unit::Seconds, &[PIPELINE, OUTCOME],
        "Wall time of a pipeline run."),
    metric(STEPS_TOTAL, Counter, Unit::Count, &[TOOL, ACTION, OUTCOME],
        "Steps that ended, by tool, action and outcome."),
    metric(STEP_DURATION_SECONDS, Histogram, Unit::Seconds, &[TOOL, ACTION, OUTCOME],
        "How long a step ran."),
    metric(STEP_QUEUE_WAIT_SECONDS, Histogram, Unit::Seconds, &[TOOL],
        "How long a ready step waited for a free slot."),
    metric(SCHEDULER_READY_STEPS, Gauge, Unit::Count, &[],
        "Steps whose dependencies are done, waiting for a slot."),
    metric(SCHEDULER_RUNNING_STEPS, Gauge, Unit::Count, &[],
        "Steps running now."),
    metric(MODEL_REQUESTS_TOTAL, Counter, Unit::Count, &[PROVIDER, MODEL, OUTCOME],
        "Requests sent to a model provider, each retry included."),
    metric(MODEL_REQUEST_DURATION_SECONDS, Histogram, Unit::Seconds, &[PROVIDER, MODEL],
        "Time from sending a model request to its last byte."),
    metric(MODEL_TIME_TO_FIRST_TOKEN_SECONDS, Histogram, Unit::Seconds, &[PROVIDER, MODEL],
        "Time from sending a streamed model request to its first token."),
    metric(MODEL_INPUT_TOKENS_TOTAL, Counter, Unit::Count, &[PROVIDER, MODEL],
        "Prompt tokens billed."),
    metric(MODEL_OUTPUT_TOKENS_TOTAL, Counter, Unit::Count, &[PROVIDER, MODEL],
        "Completion tokens billed."),
    metric(MODEL_REQUEST_INPUT_TOKENS, Histogram, Unit::Count, &[PROVIDER, MODEL],
        "Prompt tokens of one model request."),
    metric(MODEL_REQUEST_OUTPUT_TOKENS, Histogram, Unit::Count, &[PROVIDER, MODEL],
        "Completion tokens of one model request."),
    metric(MODEL_COST_USD_TOTAL, Gauge, Unit::Count, &[PROVIDER, MODEL],
        "Estimated model spend in US dollars (monotonic)."),
    metric(MODEL_REQUEST_COST_USD, Histogram, Unit::Count, &[PROVIDER, MODEL],
        "Estimated cost of one model request in US dollars."),
    metric(MODEL_ERRORS_TOTAL, Counter, Unit::Count, &[PROVIDER, MODEL, KIND],
        "Failed model requests, by error kind."),
    metric(MODEL_RETRIES_TOTAL, Counter, Unit::Count, &[PROVIDER, MODEL],
        "Model requests sent again after a retryable error."),
    metric(MODEL_FALLBACKS_TOTAL, Counter, Unit::Count, &[FROM, TO],
        "Model calls that moved to a fallback model."),
    metric(CACHE_HITS_TOTAL, Counter, Unit::Count, &[CACHE],
        "Cache lookups that found an entry."),
    metric(CACHE_MISSES_TOTAL, Counter, Unit::Count, &[CACHE],
        "Cache lookups that found nothing, failing backends included."),
    metric(CACHE_ERRORS_TOTAL, Counter, Unit::Count, &[CACHE],
        "Cache backend errors and timeouts."),
    metric(CACHE_EVICTIONS_TOTAL, Counter, Unit::Count, &[CACHE],
        "Cache entries removed to respect a size bound."),
    metric(BATCH_SIZE, Histogram, Unit::Count, &[PROVIDER, MODEL, KIND],
        "Requests sent together in one batch."),
    metric(HTTP_REQUESTS_TOTAL, Counter, Unit::Count, &[ROUTE, STATUS],
        "HTTP requests orc serve answered, by route and status."),
    metric(HTTP_REQUEST_DURATION_SECONDS, Histogram, Unit::Seconds, &[ROUTE],
        "Time from an HTTP request's arrival to its response."),
    metric(QUEUE_CLAIM_SECONDS, Histogram, Unit::Seconds, &[],
        "Time from a step being ready on its coordinator to a worker taking it."),
    metric(QUEUE_REDELIVERIES_TOTAL, Counter, Unit::Count, &[],
        "Steps a worker took that had been delivered before."),
    metric(QUEUE_DEPTH, Gauge, Unit::Count, &[POOL],
        "Steps in a pool's stream that no worker has finished."),
    metric(WORKER_RUNNING_STEPS, Gauge, Unit::Count, &[],
        "Steps this worker runs now."),
    metric(PROCESS_RESIDENT_MEMORY_BYTES, Gauge, Unit::Bytes, &[],
        "Resident memory of the orc process."),
    metric(PROCESS_CPU_SECONDS_TOTAL, Gauge, Unit::Seconds, &[],
        "User and system CPU time of the orc process (monotonic)."),
];

/// The metric called `name`, if orc records one.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|metric| metric.name == name)
}

/// Registers the description and unit of every metric in [`ALL`] with the installed global
/// recorder (a no-op when none is installed). [`Exporter::global`](crate::Exporter::global) calls
/// it; calling it again is harmless.
pub fn describe_all() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.unit, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.unit, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.unit, metric.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_follow_the_naming_spec() {
        let mut seen = HashSet::new();
        for metric in ALL {
            let name = metric.name;
            assert!(seen.insert(name), "{name} is listed twice");
            assert!(name.starts_with("orc_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            match metric.kind {
                Kind::Counter => assert!(name.ends_with("_total"), "{name}"),
                Kind::Histogram => assert!(!name.ends_with("_total"), "{name}"),
                Kind::Gauge => {}
            }
            // A histogram's own series end in _bucket/_sum/_count: no metric may take those names.
            for suffix in ["_bucket", "_sum", "_count"] {
                assert!(!name.ends_with(suffix), "{name}");
            }
            if metric.unit == Unit::Seconds {
                assert!(name.contains("_seconds"), "{name}");
            }
            if metric.unit == Unit::Bytes {
                assert!(name.ends_with("_bytes"), "{name}");
            }
            for key in metric.labels {
                assert!(
                    !["run_id", "run", "step_id", "prompt", "path"].contains(key),
                    "{name} has the unbounded label {key}"
                );
            }
        }
    }

    #[test]
    fn find_knows_every_metric() {
        assert_eq!(find(STEPS_TOTAL).map(|m| m.kind), Some(Kind::Counter));
        assert_eq!(find(BATCH_SIZE).map(|m| m.kind), Some(Kind::Histogram));
        assert!(find("orc_nope_total").is_none());
    }
}
