//! The server: our own accept loop (so every accepted socket is counted), one
//! hyper HTTP/1.1 connection task per socket, and the request handler.

use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::behaviour::{Behaviour, Reply, Truncate};
use crate::body::{End, FakeBody};
use crate::stats::{Counters, Endpoint, Stats};
use crate::text::{canonical_hash, first_words, fnv1a, words};
use crate::wire::{Answer, ApiError, GARBAGE, Parsed, Provider};
use crate::{anthropic, openai};

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Largest request body read; larger ones get a 413.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// How many distinct requests `fail_times` remembers before forgetting them all.
const MAX_SEEN: usize = 100_000;
/// The most bytes of request bodies kept for [`Stats`], whatever their number.
const MAX_RECORDED_BYTES: usize = 64 * 1024 * 1024;

/// A running fake provider on `127.0.0.1` (HTTP/1.1 with keep-alive). Dropping
/// it shuts the server down in the background (open connections get a 2 s grace
/// period to finish their requests); [`FakeProvider::shutdown`] waits for that.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FakeProvider {
    /// Starts a server on `127.0.0.1` on a free port.
    pub async fn start(behaviour: Behaviour) -> io::Result<FakeProvider> {
        FakeProvider::start_on(0, behaviour).await
    }

    /// Starts a server on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> io::Result<FakeProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(behaviour));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), cancel.clone()));
        Ok(FakeProvider {
            addr,
            shared,
            cancel,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, with `/v1`: `http://127.0.0.1:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Anthropic-style base URL, without `/v1` (clients append
    /// `/v1/messages`): `http://127.0.0.1:PORT`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Zeroes the request and connection counters and forgets the recorded
    /// bodies and the requests `fail_times` has seen. The script and answer
    /// overrides stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Appends `reply` to the scripted queue (see [`Behaviour::script`]).
    pub fn push_reply(&self, reply: Reply) {
        self.shared.lock().script.push_back(reply);
    }

    /// Adds an answer override (see [`Behaviour::answers`]).
    pub fn add_answer(&self, substring: impl Into<String>, answer: impl Into<String>) {
        self.shared
            .lock()
            .answers
            .push((substring.into(), answer.into()));
    }

    /// Stops accepting, lets open connections finish their requests (up to a
    /// grace period) and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // The loop never panics; a JoinError can only mean it already ended.
            let _ = task.await;
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// State every connection shares.
struct Shared {
    behaviour: Behaviour,
    counters: Counters,
    state: Mutex<State>,
}

/// The mutable part, behind a lock that is never held across an `.await`.
struct State {
    recent: VecDeque<(Endpoint, Bytes)>,
    /// Total length of the bodies in `recent`.
    recent_bytes: usize,
    script: VecDeque<Reply>,
    answers: Vec<(String, String)>,
    /// How often each request with `fail_times` has been seen, by canonical hash.
    seen: HashMap<u64, u32>,
    /// Model requests per model id.
    by_model: HashMap<String, u64>,
}

impl Shared {
    fn new(mut behaviour: Behaviour) -> Self {
        let state = State {
            recent: VecDeque::new(),
            recent_bytes: 0,
            script: std::mem::take(&mut behaviour.script).into(),
            answers: std::mem::take(&mut behaviour.answers),
            seen: HashMap::new(),
            by_model: HashMap::new(),
        };
        Shared {
            behaviour,
            counters: Counters::default(),
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> Stats {
        let state = self.lock();
        self.counters.snapshot(&state.recent, &state.by_model)
    }

    fn reset(&self) {
        let mut state = self.lock();
        self.counters.reset();
        state.recent.clear();
        state.recent_bytes = 0;
        state.seen.clear();
        state.by_model.clear();
    }

    /// Counts one more request naming `model`; returns the model's count.
    fn count_model(&self, model: &str) -> u64 {
        let mut state = self.lock();
        if let Some(count) = state.by_model.get_mut(model) {
            *count += 1;
            return *count;
        }
        state.by_model.insert(model.to_owned(), 1);
        1
    }

    fn record(&self, endpoint: Endpoint, body: Bytes) {
        self.counters.request(endpoint);
        let limit = self.behaviour.recent_bodies;
        if limit == 0 {
            return;
        }
        let mut state = self.lock();
        while state.recent.len() >= limit
            || (!state.recent.is_empty() && state.recent_bytes + body.len() > MAX_RECORDED_BYTES)
        {
            if let Some((_, old)) = state.recent.pop_front() {
                state.recent_bytes -= old.len();
            }
        }
        state.recent_bytes += body.len();
        state.recent.push_back((endpoint, body));
    }

    /// Counts one more sighting of the request with `key`; returns the count.
    fn seen(&self, key: u64) -> u32 {
        let mut state = self.lock();
        if state.seen.len() >= MAX_SEEN && !state.seen.contains_key(&key) {
            state.seen.clear();
        }
        let count = state.seen.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// The answer override for `prompt`, if any.
    fn answer_for(&self, prompt: &str) -> Option<String> {
        let state = self.lock();
        state
            .answers
            .iter()
            .find(|(needle, _)| prompt.contains(needle.as_str()))
            .map(|(_, answer)| answer.clone())
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let guard = OpenConnection::new(Arc::clone(&shared));
                    connections.spawn(serve_connection(stream, guard, cancel.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    // Each connection sees the cancellation and finishes within its grace
    // period; the extra second only covers scheduling.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
}

/// An accepted socket: counted when created, counted as closed when dropped.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.counters.accepted();
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.counters.closed();
    }
}

async fn serve_connection(stream: TcpStream, guard: OpenConnection, cancel: CancellationToken) {
    // Small writes (SSE events) go out at once.
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(&guard.0);
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        // A connection error (client gone, injected fault) just ends the connection.
        _ = connection.as_mut() => {}
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
    drop(guard);
}

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("orc-fake-provider: connection closed (injected fault)")
    }
}

impl StdError for CloseConnection {}

type Outcome = Result<Response<FakeBody>, CloseConnection>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Outcome {
    let (parts, body) = request.into_parts();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/_fake/stats") => {
            let mut stats = shared.stats();
            if let Some(query) = parts.uri.query()
                && query
                    .split('&')
                    .any(|q| q == "bodies=false" || q == "bodies=0")
            {
                stats.recent_requests.clear();
            }
            return Ok(json_response(StatusCode::OK, &stats));
        }
        (&Method::POST, "/_fake/reset") => {
            shared.reset();
            return Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"reset": true}),
            ));
        }
        _ => {}
    }
    let endpoint = Endpoint::route(&parts.method, parts.uri.path());
    let provider = provider_of(endpoint, &parts.headers);
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            shared.record(endpoint, Bytes::new());
            let error = ApiError::new(413, format!("request body over {MAX_BODY} bytes"));
            return Ok(error_response(&error, provider));
        }
        // The client went away mid-body.
        Err(_) => return Err(CloseConnection),
    };
    shared.record(endpoint, body.clone());

    let latency = shared.behaviour.latency;
    match endpoint {
        Endpoint::Other => {
            let message = format!(
                "Invalid URL ({} {}): orc-fake-provider serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models and /v1/messages",
                parts.method,
                parts.uri.path()
            );
            Ok(error_response(&ApiError::new(404, message), provider))
        }
        Endpoint::Models => {
            if let Err(error) = check_auth(&shared.behaviour, provider, &parts.headers) {
                return Ok(error_response(&error, provider));
            }
            pause(latency).await;
            let list = match provider {
                Provider::OpenAi => openai::models(&shared.behaviour.models),
                Provider::Anthropic => anthropic::models(&shared.behaviour.models),
            };
            Ok(json_response(StatusCode::OK, &list))
        }
        _ => match prepare(&shared, endpoint, provider, &parts.headers, &body) {
            Ok((parsed, reply)) => respond(&shared, endpoint, provider, parsed, reply, &body).await,
            Err(error) => Ok(error_response(&error, provider)),
        },
    }
}

/// Anthropic for `/v1/messages`, and for other paths when the request carries
/// Anthropic's headers; OpenAI otherwise.
fn provider_of(endpoint: Endpoint, headers: &HeaderMap) -> Provider {
    let anthropic_headers =
        headers.contains_key("anthropic-version") || headers.contains_key("x-api-key");
    match endpoint {
        Endpoint::Messages => Provider::Anthropic,
        Endpoint::Models | Endpoint::Other if anthropic_headers => Provider::Anthropic,
        _ => Provider::OpenAi,
    }
}

fn check_auth(
    behaviour: &Behaviour,
    provider: Provider,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match provider {
        Provider::OpenAi => {
            let Some(expected) = &behaviour.openai_api_key else {
                return Ok(());
            };
            match header(header::AUTHORIZATION.as_str()) {
                None => Err(ApiError::new(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )),
                Some(value) if value.strip_prefix("Bearer ") == Some(expected.as_str()) => Ok(()),
                Some(_) => {
                    Err(ApiError::new(401, "Incorrect API key provided.").code("invalid_api_key"))
                }
            }
        }
        Provider::Anthropic => {
            let Some(key) = header("x-api-key") else {
                return Err(ApiError::new(401, "x-api-key header is required"));
            };
            if let Some(expected) = &behaviour.anthropic_api_key
                && key != expected
            {
                return Err(ApiError::new(401, "invalid x-api-key"));
            }
            if header("anthropic-version").is_none() {
                return Err(ApiError::bad_request(
                    "anthropic-version: header is required",
                ));
            }
            Ok(())
        }
    }
}

/// Checks and parses a model request and decides how to answer it.
fn prepare(
    shared: &Shared,
    endpoint: Endpoint,
    provider: Provider,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Parsed, Reply), ApiError> {
    let behaviour = &shared.behaviour;
    check_auth(behaviour, provider, headers)?;
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    if !request.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let mut parsed = match endpoint {
        Endpoint::ChatCompletions => openai::parse_chat(&request)?,
        Endpoint::Completions => openai::parse_completions(&request)?,
        Endpoint::Embeddings => openai::parse_embeddings(&request)?,
        Endpoint::Messages => anthropic::parse_messages(&request)?,
        Endpoint::Models | Endpoint::Other => {
            return Err(ApiError::new(404, "not a model endpoint"));
        }
    };
    if behaviour.reject_unknown_models && !behaviour.models.contains(&parsed.model) {
        let message = match provider {
            Provider::OpenAi => format!(
                "The model `{}` does not exist or you do not have access to it.",
                parsed.model
            ),
            Provider::Anthropic => format!("model: {}", parsed.model),
        };
        return Err(ApiError::new(404, message).code("model_not_found"));
    }

    let rule = behaviour.model(&parsed.model);
    let nth = shared.count_model(&parsed.model);
    if let Some(window) = rule.and_then(|r| r.context_window)
        && parsed.input_tokens > window
    {
        return Err(ApiError::context_length(
            provider,
            parsed.input_tokens,
            window,
        ));
    }

    let mut reply = shared.lock().script.pop_front().unwrap_or_default();
    reply.merge(std::mem::take(&mut parsed.marker));
    if let Some(rule) = rule {
        if reply.delay.is_none() {
            reply.delay = rule.latency;
        }
        if !reply.has_fault() && rule.fails(nth) {
            reply.status = Some(
                rule.failure_status
                    .filter(|s| (400..=599).contains(s))
                    .unwrap_or(500),
            );
        }
    }
    if let Some(times) = reply.fail_times {
        if shared.seen(canonical_hash(endpoint.name(), &request)) > times {
            reply.clear_faults();
        } else if !reply.has_fault() {
            reply.status = Some(500);
        }
    }
    Ok((parsed, reply))
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Answers a checked model request as `reply` says.
async fn respond(
    shared: &Shared,
    endpoint: Endpoint,
    provider: Provider,
    parsed: Parsed,
    reply: Reply,
    body: &Bytes,
) -> Outcome {
    pause(reply.delay.unwrap_or(shared.behaviour.latency)).await;
    if reply.close {
        return Err(CloseConnection);
    }
    if let Some(status) = reply.status {
        let error = ApiError::injected(status, reply.retry_after);
        return Ok(error_response(&error, provider));
    }
    let streaming = parsed.stream && endpoint != Endpoint::Embeddings;
    if reply.garbage {
        return Ok(if streaming {
            let frames = match provider {
                Provider::OpenAi => openai::garbage_stream(),
                Provider::Anthropic => anthropic::garbage_stream(),
            };
            sse_response(frames, Duration::ZERO, End::Complete)
        } else {
            with_content_type(Response::new(FakeBody::full(GARBAGE)), "application/json")
        });
    }

    let id = fnv1a(body);
    let answers: Vec<Answer> = parsed
        .prompts
        .iter()
        .map(|prompt| answer(shared, &reply, prompt, parsed.max_tokens))
        .collect();
    let first = answers.first();
    let gap = reply.chunk_delay.unwrap_or(Duration::ZERO);
    if streaming {
        let mut frames = match (endpoint, first) {
            (Endpoint::ChatCompletions, Some(a)) => openai::chat_stream(&parsed, a, id),
            (Endpoint::Messages, Some(a)) => anthropic::message_stream(&parsed, a, id),
            _ => openai::completions_stream(&parsed, &answers, id),
        };
        let end = match reply.truncate {
            None => End::Complete,
            Some(truncate) => {
                frames.truncate((frames.len() / 2).max(1));
                match truncate {
                    Truncate::Abort => End::Abort,
                    Truncate::Clean => End::Complete,
                }
            }
        };
        return Ok(sse_response(frames, gap, end));
    }
    let value = match (endpoint, first) {
        (Endpoint::ChatCompletions, Some(a)) => openai::chat(&parsed, a, id),
        (Endpoint::Messages, Some(a)) => anthropic::message(&parsed, a, id),
        (Endpoint::Embeddings, _) => {
            openai::embeddings(&parsed, shared.behaviour.embedding_dimensions)
        }
        _ => openai::completions(&parsed, &answers, id),
    };
    let bytes = Bytes::from(value.to_string());
    Ok(match reply.truncate {
        None => with_content_type(Response::new(FakeBody::full(bytes)), "application/json"),
        Some(Truncate::Clean) => {
            let half = bytes.slice(..bytes.len() / 2);
            with_content_type(Response::new(FakeBody::full(half)), "application/json")
        }
        Some(Truncate::Abort) => {
            let full_length = bytes.len();
            let half = bytes.slice(..full_length / 2);
            let mut response = with_content_type(
                Response::new(FakeBody::frames(vec![half], Duration::ZERO, End::Abort)),
                "application/json",
            );
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_length));
            response
        }
    })
}

/// The answer to one prompt: the scripted or marker text, else an answer
/// override, else `echo: PROMPT`; cut to `max_tokens` words.
fn answer(shared: &Shared, reply: &Reply, prompt: &str, max_tokens: Option<usize>) -> Answer {
    let full = match &reply.text {
        Some(text) => text.clone(),
        None => shared
            .answer_for(prompt)
            .unwrap_or_else(|| format!("echo: {prompt}")),
    };
    let (text, truncated) = match max_tokens {
        Some(max) => first_words(&full, max),
        None => (full.as_str(), false),
    };
    Answer {
        output_tokens: words(text),
        text: text.to_owned(),
        truncated,
    }
}

fn with_content_type(
    mut response: Response<FakeBody>,
    content_type: &'static str,
) -> Response<FakeBody> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<FakeBody> {
    let body = match serde_json::to_vec(value) {
        Ok(bytes) => FakeBody::full(bytes),
        Err(_) => FakeBody::empty(),
    };
    let mut response = with_content_type(Response::new(body), "application/json");
    *response.status_mut() = status;
    response
}

fn sse_response(frames: Vec<Bytes>, gap: Duration, end: End) -> Response<FakeBody> {
    let mut response = with_content_type(
        Response::new(FakeBody::frames(frames, gap, end)),
        "text/event-stream",
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn error_response(error: &ApiError, provider: Provider) -> Response<FakeBody> {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &error.body(provider));
    if let Some(after) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    response
}
