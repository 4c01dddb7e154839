//! What a load test measured: per scenario and in total, over time, and what the generator
//! itself cost. Serializes as the `--json` document; [`Report::table`] is the terminal's view.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Response times are recorded in microseconds, with two significant figures (1 %), from 1 µs
/// to an hour; longer ones count as an hour.
pub(crate) const SIGFIG: u8 = 2;
pub(crate) const HIGHEST_US: u64 = 3_600_000_000;

/// An empty histogram of response times in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant bounds that `new_with_bounds` accepts
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIG).expect("valid histogram bounds")
}

/// The result of a load test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the requests went (`inprocess` or the base URL).
    pub target: String,
    /// The load model.
    pub model: LoadModel,
    /// Seconds from the start to the last answer.
    pub elapsed_seconds: f64,
    /// All scenarios together.
    pub total: Stats,
    /// Each scenario, in the file's order.
    pub scenarios: Vec<ScenarioStats>,
    /// Throughput and response times over time.
    pub timeline: Timeline,
    /// What generating the load cost this process.
    pub overhead: Overhead,
    /// Why the test ended before its duration or request count, if it did (`cancelled`,
    /// `max_duration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// How the load was generated.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LoadModel {
    /// Users each send a request when their last one answered.
    Closed {
        /// Virtual users.
        users: u32,
        /// Seconds over which they started.
        ramp_up_seconds: f64,
    },
    /// Requests started at a fixed rate; latency counted from when each was due.
    Open {
        /// Requests per second asked for.
        rate: f64,
        /// The most requests in flight at once.
        max_in_flight: u32,
        /// Seconds over which the rate rose from 0.
        ramp_up_seconds: f64,
    },
}

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioStats {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Its figures.
    #[serde(flatten)]
    pub stats: Stats,
}

/// Counts, throughput and response times of a set of requests.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Requests that ended (answered, failed or timed out).
    pub requests: u64,
    /// Those that succeeded.
    pub ok: u64,
    /// Those that did not.
    pub errors: u64,
    /// `errors / requests` (0 when there were none).
    pub error_rate: f64,
    /// Requests per second over the test's elapsed time.
    pub requests_per_second: f64,
    /// Response times of the successful requests, in milliseconds.
    pub latency_ms: Latency,
    /// Errors by kind: `status 503`, `timeout`, `connect`, `run failed`, …
    pub errors_by_kind: BTreeMap<String, u64>,
    /// What the first error of each kind said (the answer's body, or the client's error),
    /// shortened.
    pub first_errors: BTreeMap<String, String>,
    /// The successful requests' response times in microseconds, for merging or other
    /// percentiles.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// Response-time figures in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Latency {
    /// The mean.
    pub mean: f64,
    /// The fastest.
    pub min: f64,
    /// Percentiles.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Latency {
    /// The figures of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            mean: h.mean() / 1000.0,
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl Stats {
    pub(crate) fn new(
        histogram: Histogram<u64>,
        errors: BTreeMap<String, (u64, String)>,
        elapsed: f64,
    ) -> Stats {
        let (errors_by_kind, first_errors) = errors
            .into_iter()
            .map(|(kind, (n, detail))| ((kind.clone(), n), (kind, detail)))
            .unzip::<_, _, BTreeMap<_, _>, BTreeMap<_, _>>();
        let ok = histogram.len();
        let errors: u64 = errors_by_kind.values().sum();
        let requests = ok + errors;
        Stats {
            requests,
            ok,
            errors,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            requests_per_second: if elapsed > 0.0 {
                requests as f64 / elapsed
            } else {
                0.0
            },
            latency_ms: Latency::of(&histogram),
            errors_by_kind,
            first_errors,
            histogram,
        }
    }
}

/// Figures per interval of the test.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Timeline {
    /// The length of each interval, in seconds.
    pub interval_seconds: f64,
    /// One point per interval, from the start.
    pub points: Vec<Point>,
}

/// One interval of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Seconds from the start to the interval's start.
    pub t: f64,
    /// Requests that ended in it.
    pub requests: u64,
    /// Those that failed.
    pub errors: u64,
    /// Requests per second in it.
    pub requests_per_second: f64,
    /// Median response time (ms).
    pub p50_ms: f64,
    /// 95th percentile (ms).
    pub p95_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Slowest (ms).
    pub max_ms: f64,
}

/// What generating the load cost this process.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overhead {
    /// CPU seconds (user + system) this process spent during the test.
    pub cpu_seconds: f64,
    /// That, per request, in microseconds.
    pub cpu_us_per_request: f64,
    /// That, as a share of one core over the test (1.0 = one core busy).
    pub cores_busy: f64,
    /// What the figures include.
    pub includes: String,
}
