//! Counters: requests per endpoint, accepted TCP connections, recent bodies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

/// The endpoints the fake serves (control endpoints under `/_fake/` are not
/// counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models` (either protocol)
    Models,
    /// `POST /v1/messages` (Anthropic)
    Messages,
    /// Anything else (answered 404)
    Other,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Models,
        Endpoint::Messages,
        Endpoint::Other,
    ];

    /// The key used in [`Stats::requests`] and the JSON stats: `chat_completions`, ….
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Models => "models",
            Endpoint::Messages => "messages",
            Endpoint::Other => "other",
        }
    }

    pub(crate) fn route(method: &hyper::Method, path: &str) -> Endpoint {
        use hyper::Method;
        match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Endpoint::ChatCompletions,
            (&Method::POST, "/v1/completions") => Endpoint::Completions,
            (&Method::POST, "/v1/embeddings") => Endpoint::Embeddings,
            (&Method::GET, "/v1/models") => Endpoint::Models,
            (&Method::POST, "/v1/messages") => Endpoint::Messages,
            _ => Endpoint::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of the server's counters (see [`crate::FakeProvider::stats`];
/// `GET /_fake/stats` serves the same as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received on every endpoint together (control endpoints excluded).
    pub total_requests: u64,
    /// Requests per endpoint, keyed by [`Endpoint::name`]; every endpoint is present.
    pub requests: BTreeMap<String, u64>,
    /// TCP connections accepted (each accepted socket counts once, whatever it
    /// carried, including the connection that asks for these stats over HTTP).
    pub connections_accepted: u64,
    /// TCP connections open right now (not zeroed by a reset).
    pub connections_open: u64,
    /// The most recent request bodies, oldest first (at most
    /// [`crate::Behaviour::recent_bodies`]).
    pub recent_requests: Vec<RecordedRequest>,
    /// Model requests (chat, completions, embeddings, messages) that passed
    /// authentication and parsing, by the model id they named.
    #[serde(default)]
    pub requests_by_model: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests received on `endpoint`.
    pub fn requests_to(&self, endpoint: Endpoint) -> u64 {
        self.requests.get(endpoint.name()).copied().unwrap_or(0)
    }

    /// Model requests that named `model` (see [`Stats::requests_by_model`]).
    pub fn requests_for(&self, model: &str) -> u64 {
        self.requests_by_model.get(model).copied().unwrap_or(0)
    }

    /// The recorded bodies sent to `endpoint`, oldest first.
    pub fn bodies_to(&self, endpoint: Endpoint) -> impl Iterator<Item = &serde_json::Value> {
        self.recent_requests
            .iter()
            .filter(move |r| r.endpoint == endpoint)
            .map(|r| &r.body)
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Where it went.
    pub endpoint: Endpoint,
    /// Its body: the parsed JSON, or a JSON string holding the raw text when
    /// the body is not JSON (`null` when empty).
    pub body: serde_json::Value,
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    total: AtomicU64,
    per_endpoint: [AtomicU64; Endpoint::ALL.len()],
    accepted: AtomicU64,
    open: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, endpoint: Endpoint) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.per_endpoint[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted socket, open until [`Counters::closed`].
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        for c in &self.per_endpoint {
            c.store(0, Ordering::Relaxed);
        }
        self.accepted.store(0, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        recent: &VecDeque<(Endpoint, Bytes)>,
        by_model: &HashMap<String, u64>,
    ) -> Stats {
        Stats {
            total_requests: self.total.load(Ordering::Relaxed),
            requests: Endpoint::ALL
                .iter()
                .map(|e| {
                    (
                        e.name().to_owned(),
                        self.per_endpoint[e.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            connections_open: self.open.load(Ordering::Relaxed),
            recent_requests: recent
                .iter()
                .map(|(endpoint, body)| RecordedRequest {
                    endpoint: *endpoint,
                    body: body_json(body),
                })
                .collect(),
            requests_by_model: by_model.iter().map(|(m, n)| (m.clone(), *n)).collect(),
        }
    }
}

fn body_json(body: &Bytes) -> serde_json::Value {
    if body.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}
