//! The routes: `GET /_fake/stats`, `POST /_fake/reset`, and every other request as a model
//! provider's (the OpenAI-compatible and Anthropic endpoints, with their fault markers).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::behaviour::{Behaviour, Reply, Truncate};
use crate::body::{End, FakeBody};
use crate::shared::Shared;
use crate::stats::Endpoint;
use crate::text::{canonical_hash, first_words, fnv1a, words};
use crate::wire::{Answer, ApiError, GARBAGE, Parsed, Provider};
use crate::{anthropic, openai};

/// Largest request body read; larger ones get a 413.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The routes, over the state every connection shares. The `/_fake/` paths answer only their
/// own method; any other request to them is a provider's request like any other path's.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_fake/stats",
            get(stats).head(model_request).fallback(model_request),
        )
        .route("/_fake/reset", post(reset).fallback(model_request))
        .fallback(model_request)
        .with_state(shared)
}

/// Marks a response that is not to be sent: the connection serving it drops instead (an
/// injected fault, or a client gone mid-body). Returned by the connection's service as its
/// error, which makes hyper close the connection without a response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("orc-fake-provider: connection closed (injected fault)")
    }
}

impl StdError for CloseConnection {}

impl CloseConnection {
    /// Whether `response` is to be dropped rather than sent.
    pub(crate) fn marks(response: &Response) -> bool {
        response.extensions().get::<CloseConnection>().is_some()
    }
}

impl IntoResponse for CloseConnection {
    fn into_response(self) -> Response {
        let mut response = Response::default();
        response.extensions_mut().insert(self);
        response
    }
}

/// A response with the body the fake provider sends (framed, paced, maybe aborting).
type FakeResponse = hyper::Response<FakeBody>;

type Outcome = Result<FakeResponse, CloseConnection>;

/// `GET /_fake/stats`: the counters as JSON; `?bodies=false` leaves out the recorded bodies.
async fn stats(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let mut stats = shared.stats();
    if let Some(query) = uri.query()
        && query
            .split('&')
            .any(|q| q == "bodies=false" || q == "bodies=0")
    {
        stats.recent_requests.clear();
    }
    send(json_response(StatusCode::OK, &stats))
}

/// `POST /_fake/reset`: see [`crate::FakeProvider::reset`].
async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    send(json_response(
        StatusCode::OK,
        &serde_json::json!({"reset": true}),
    ))
}

/// Any other request: a model provider's.
async fn model_request(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match handle(shared, request).await {
        Ok(response) => send(response),
        Err(close) => close.into_response(),
    }
}

fn send(response: FakeResponse) -> Response {
    response.map(Body::new)
}

async fn handle(shared: Arc<Shared>, request: Request) -> Outcome {
    let (parts, body) = request.into_parts();
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
        let mut error = ApiError::injected(status, reply.retry_after);
        if reply.no_retry_after {
            error.retry_after = None;
        }
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
            with_content_type(
                hyper::Response::new(FakeBody::full(GARBAGE)),
                "application/json",
            )
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
        None => with_content_type(
            hyper::Response::new(FakeBody::full(bytes)),
            "application/json",
        ),
        Some(Truncate::Clean) => {
            let half = bytes.slice(..bytes.len() / 2);
            with_content_type(
                hyper::Response::new(FakeBody::full(half)),
                "application/json",
            )
        }
        Some(Truncate::Abort) => {
            let full_length = bytes.len();
            let half = bytes.slice(..full_length / 2);
            let mut response = with_content_type(
                hyper::Response::new(FakeBody::frames(vec![half], Duration::ZERO, End::Abort)),
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

fn with_content_type(mut response: FakeResponse, content_type: &'static str) -> FakeResponse {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> FakeResponse {
    let body = match serde_json::to_vec(value) {
        Ok(bytes) => FakeBody::full(bytes),
        Err(_) => FakeBody::empty(),
    };
    let mut response = with_content_type(Response::new(body), "application/json");
    *response.status_mut() = status;
    response
}

fn sse_response(frames: Vec<Bytes>, gap: Duration, end: End) -> FakeResponse {
    let mut response = with_content_type(
        hyper::Response::new(FakeBody::frames(frames, gap, end)),
        "text/event-stream",
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn error_response(error: &ApiError, provider: Provider) -> FakeResponse {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &error.body(provider));
    if let Some(after) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    response
}
