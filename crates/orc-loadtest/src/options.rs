//! What a load test is: its target, its load model and its weighted scenarios.

use std::time::Duration;

use serde_json::{Value, json};

use crate::template::Template;

/// Where the requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An `orc serve` base URL such as `http://127.0.0.1:8080`.
    Url(String),
    /// The service's routes over [`LoadTestOptions::runtime`] in this process: no socket.
    InProcess,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Url(url) => f.write_str(url),
            Target::InProcess => f.write_str("inprocess"),
        }
    }
}

/// The pause of a closed-model user between two requests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ThinkTime {
    /// None: the next request goes as soon as the last one answered.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between the two.
    Uniform(Duration, Duration),
}

impl ThinkTime {
    pub(crate) fn pick(self, rng: &mut fastrand::Rng) -> Option<Duration> {
        match self {
            ThinkTime::None => None,
            ThinkTime::Fixed(d) => Some(d).filter(|d| !d.is_zero()),
            ThinkTime::Uniform(min, max) => {
                let (lo, hi) = (min.as_nanos() as u64, max.as_nanos() as u64);
                Some(Duration::from_nanos(rng.u64(lo.min(hi)..=hi.max(lo))))
            }
        }
    }
}

/// A pipeline a scenario runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineSource {
    /// Registered in the service under this id (`PUT /v1/pipelines/{id}`).
    Registered(String),
    /// The pipeline's YAML, sent with each run (the service compiles it once, by its hash).
    Text {
        /// What the service's diagnostics call it.
        name: String,
        /// The YAML.
        text: String,
    },
}

/// What one request of a scenario does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Runs a pipeline and waits for its result (`POST /v1/runs?wait=true`); a run that does
    /// not complete counts as an error.
    Pipeline {
        /// The pipeline.
        pipeline: PipelineSource,
        /// Its inputs, per request.
        inputs: Template,
    },
    /// Any request to the service, such as a chat completion.
    Request {
        /// The method.
        method: http::Method,
        /// The path and query, from `/`.
        path: String,
        /// A JSON body, per request.
        body: Option<Template>,
        /// The status that counts as success (default: any 2xx).
        expect_status: Option<u16>,
    },
}

impl Action {
    /// The request's method, path and body (the body of a pipeline run is the runs API's).
    pub(crate) fn request(&self) -> (http::Method, String, Option<Template>) {
        match self {
            Action::Request {
                method, path, body, ..
            } => (method.clone(), path.clone(), body.clone()),
            Action::Pipeline { pipeline, inputs } => {
                let source = match pipeline {
                    PipelineSource::Registered(id) => vec![(
                        "pipeline_id".to_owned(),
                        Template::constant(Value::String(id.clone())),
                    )],
                    PipelineSource::Text { name, text } => vec![
                        ("pipeline".to_owned(), Template::constant(json!(text))),
                        ("name".to_owned(), Template::constant(json!(name))),
                    ],
                };
                let mut fields = source;
                fields.push(("inputs".to_owned(), inputs.clone()));
                (
                    http::Method::POST,
                    "/v1/runs?wait=true".to_owned(),
                    Some(Template::object(fields)),
                )
            }
        }
    }
}

/// One weighted scenario: each request picks a scenario at random in proportion to the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name in the report.
    pub name: String,
    /// Its share of the requests, relative to the other scenarios' weights.
    pub weight: u32,
    /// What each of its requests does.
    pub action: Action,
}

impl Scenario {
    /// A scenario of plain requests (`GET /healthz`, `POST /v1/chat/completions` with `body`).
    pub fn request(name: &str, method: http::Method, path: &str, body: Option<Value>) -> Self {
        Scenario {
            name: name.to_owned(),
            weight: 1,
            action: Action::Request {
                method,
                path: path.to_owned(),
                body: body.map(Template::constant),
                expect_status: None,
            },
        }
    }

    /// A scenario that runs `pipeline` with fixed `inputs`.
    pub fn pipeline(name: &str, pipeline: PipelineSource, inputs: Value) -> Self {
        Scenario {
            name: name.to_owned(),
            weight: 1,
            action: Action::Pipeline {
                pipeline,
                inputs: Template::constant(inputs),
            },
        }
    }

    /// The same scenario with another weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

/// A load test to build: what a scenario file describes, or what a program sets.
#[derive(Debug, Clone)]
pub struct LoadTestOptions {
    /// Where the requests go.
    pub target: Target,
    /// The bearer token sent with every request. Never printed.
    pub token: Option<Token>,
    /// Virtual users (closed model), or the most requests in flight at once (open model).
    pub users: u32,
    /// Users start one after another, evenly over this time (closed model); the open model's
    /// rate rises linearly from 0 over it.
    pub ramp_up: Duration,
    /// No request starts after this long from the start (the ramp-up included).
    pub duration: Option<Duration>,
    /// No more than this many requests in all.
    pub requests: Option<u64>,
    /// The pause of a closed-model user between its requests.
    pub think_time: ThinkTime,
    /// A request that takes longer is abandoned and counted as a `timeout` error.
    pub timeout: Duration,
    /// The hard cap: the test stops at this time whatever else it says; requests still in
    /// flight then are abandoned uncounted.
    pub max_duration: Duration,
    /// The open model: requests started at this rate per second whatever the answers' speed,
    /// their latency counted from the time each was due (so coordinated omission is
    /// corrected). `None`: the closed model, each user sends its next request when its last
    /// one answered.
    pub rate: Option<f64>,
    /// The weighted scenarios.
    pub scenarios: Vec<Scenario>,
    /// The runtime an [`Target::InProcess`] test drives.
    pub runtime: Option<orc_runtime::Runtime>,
}

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default hard cap on a test's length.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(3600);

impl LoadTestOptions {
    /// A closed-model test of `scenarios` against `target` by one user, which ends after
    /// `requests` requests; set the other fields as needed.
    pub fn new(target: Target, scenarios: Vec<Scenario>, requests: u64) -> Self {
        LoadTestOptions {
            target,
            token: None,
            users: 1,
            ramp_up: Duration::ZERO,
            duration: None,
            requests: Some(requests),
            think_time: ThinkTime::None,
            timeout: DEFAULT_TIMEOUT,
            max_duration: DEFAULT_MAX_DURATION,
            rate: None,
            scenarios,
            runtime: None,
        }
    }
}

/// A bearer token: `***` in `Debug` and `Display`, so no report, log or error shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Token(token)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
