//! What the gateway tells a [`RequestSink`] of each request it answers or fails: one
//! [`RequestRecord`] per call of [`Gateway::chat`](crate::Gateway::chat),
//! [`open_stream`](crate::Gateway::open_stream) (and so
//! [`chat_streamed`](crate::Gateway::chat_streamed)), [`embed`](crate::Gateway::embed) and
//! [`complete`](crate::Gateway::complete), whatever answered it (the provider, the response
//! cache, an identical request in flight), fallbacks included. The runtime's sink writes them
//! to the state store for the daily report and the dashboard.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::error::Error;
use crate::pricing::price;
use crate::spec::ModelSpec;
use crate::usage::Usage;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A call to the provider made for this request.
    Upstream,
    /// The response cache.
    Cache,
    /// An identical request's call that was in flight at the same time.
    Shared,
}

/// The run a gateway handle's requests are made for ([`Gateway::with_origin`](crate::Gateway::with_origin)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The run's id.
    pub run_id: String,
    /// Its pipeline's id.
    pub pipeline_id: String,
}

/// One request through the gateway, as it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The model that answered (or, for a failure, the model asked for).
    pub model: String,
    /// Its provider (`openai`, `anthropic`).
    pub provider: &'static str,
    /// When the request ended.
    pub at: SystemTime,
    /// From the request to its answer (a stream: to its end), fallbacks included.
    pub latency: Duration,
    /// What answered it (`Upstream` for a failure).
    pub source: Source,
    /// `Some(true)` when the response cache answered, `Some(false)` when it was consulted and
    /// had nothing, `None` when it was not consulted.
    pub cache_hit: Option<bool>,
    /// For a failure, its kind: a [`FailureKind`](crate::FailureKind) label (`rate_limited`,
    /// `timeout`, …), `budget`, `cancelled` (a stream dropped before its end) or `client`.
    pub error_kind: Option<&'static str>,
    /// Tokens this request paid for (none for a cache hit or a shared answer).
    pub usage: Usage,
    /// USD this request paid.
    pub cost: f64,
    /// The run it was made for; `None` outside runs (the OpenAI-compatible API).
    pub origin: Option<Arc<Origin>>,
}

/// Receives every request's record. Called on the request's task, so it must not block: a
/// sink hands records on (a bounded channel) and drops what it cannot take.
pub trait RequestSink: Send + Sync + fmt::Debug {
    /// One request ended.
    fn record(&self, request: RequestRecord);
}

/// The label of a failure for [`RequestRecord::error_kind`].
pub fn error_kind(e: &Error) -> &'static str {
    match e.kind() {
        Some(kind) => kind.as_str(),
        None if e.is_budget_refusal() => "budget",
        None => "client",
    }
}

/// A sink with what every record of one request shares.
#[derive(Clone)]
pub(crate) struct Notifier {
    pub(crate) sink: Arc<dyn RequestSink>,
    pub(crate) origin: Option<Arc<Origin>>,
    /// Whether the request consults the response cache.
    pub(crate) cache_on: bool,
    pub(crate) started: Instant,
}

impl Notifier {
    /// The request was answered by `spec` from `source`, paying `usage`.
    pub(crate) fn answered(&self, spec: &ModelSpec, source: Source, usage: Usage) {
        self.send(spec, source, None, usage);
    }

    /// The request failed with `kind` (see [`error_kind`]).
    pub(crate) fn failed(&self, spec: &ModelSpec, kind: &'static str) {
        self.send(spec, Source::Upstream, Some(kind), Usage::default());
    }

    fn send(&self, spec: &ModelSpec, source: Source, kind: Option<&'static str>, usage: Usage) {
        self.sink.record(RequestRecord {
            model: spec.name.clone(),
            provider: spec.provider.as_str(),
            at: SystemTime::now(),
            latency: self.started.elapsed(),
            source,
            cache_hit: self.cache_on.then_some(source == Source::Cache),
            error_kind: kind,
            usage,
            cost: price(spec, usage).unwrap_or(0.0),
            origin: self.origin.clone(),
        });
    }
}
