//! The OpenAI-compatible endpoints: an OpenAI client (the official `openai` Python
//! package, say) pointed at `orc serve`'s `/v1` works unchanged, and every call goes
//! through orc's [`Gateway`]: response cache, in-flight de-duplication, embedding
//! batching, routing, fallbacks, budgets, per-model concurrency and metrics.
//!
//! | endpoint | answers |
//! |---|---|
//! | `POST /v1/chat/completions` | a `chat.completion`, or with `stream: true` server-sent `chat.completion.chunk`s ending in `data: [DONE]` |
//! | `POST /v1/embeddings` | a list of embeddings (`encoding_format` `float` or `base64`) |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the configured models, and `auto` |
//!
//! # Models
//!
//! `model` is a configured model's name or any spelling the registry accepts
//! (`provider:name`, `provider:model`, a provider model id only one model has); the
//! answer's `model` is the configured name of the model that answered, after any
//! fallback. `auto` lets orc's router choose among the models whose key is set (chat
//! only: vectors of different models do not mix, so embeddings name their model). An
//! unknown model is a 404 (`model_not_found`) listing the models that exist.
//!
//! # Requests
//!
//! Chat: `messages` with roles `system` (or `developer`), `user` and `assistant`, each
//! `content` a string or a list of `{"type": "text", "text": …}` parts (joined with
//! newlines); `max_tokens` or `max_completion_tokens`; `temperature`; `n: 1`;
//! `response_format` of type `text`, `json_object` or `json_schema` (its `schema` is
//! sent on; `strict` is not, so a provider may still stray from the schema);
//! `stream` and `stream_options.include_usage`. `user`, `metadata`, `store` and the
//! like are accepted and not acted on. Anything orc cannot do is refused with a 400
//! naming the field (`param`), never dropped: `n` > 1, tools and function calling,
//! images, audio and files, stop sequences, `top_p`, penalties, `seed`, log
//! probabilities, and any field it does not know. A field at the value that means
//! "not used" (`top_p: 1`, `tools: []`, `logprobs: false`, …) passes.
//!
//! Embeddings: `input` a string or a list of up to 2048 non-empty strings (token
//! arrays are refused); `dimensions` is refused.
//!
//! # The response cache
//!
//! Answers are cached by default ([`OpenAiOptions::use_cache`]). A client opts out for
//! one request with the header `Cache-Control: no-cache` (or `no-store`) or
//! `x-orc-cache: bypass`: the request then neither reads nor writes the cache (an
//! identical request in flight at the same moment may still be shared).
//!
//! Every answer says where it came from in `x-orc-cache`: `hit` (the cache), `miss`
//! (a provider call, now cached), `shared` (an identical request's call in flight),
//! `bypass` (a provider call the client kept out of the cache) or `off` (no cache is
//! configured). `x-orc-cost-usd` is what the request cost (0 for a hit), when the
//! answering model has a price; it is absent on streams, whose cost is known only at
//! their end. `x-orc-fallbacks` counts the fallbacks taken, when any were.
//!
//! A chat answer's `usage` counts the tokens of the answer as it was made, also when
//! it came from the cache (`x-orc-cost-usd` says what this request paid); an
//! embeddings answer's `usage` counts the tokens of the inputs sent to the provider
//! for this request (cached inputs count 0).
//!
//! # Errors
//!
//! Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`:
//!
//! | status | when |
//! |---|---|
//! | 400 | the body is not JSON or not of the expected shape (the message names the field and the line and column), a field orc cannot honour, a prompt over the context window, a request the provider refused as invalid |
//! | 404 | an unknown model |
//! | 429 | a budget refused the call (`insufficient_quota`, with `x-should-retry: false`), or the provider's rate limit held after orc's retries (`rate_limit_exceeded`, with `Retry-After` when the provider gave one) |
//! | 502 | the provider failed: 5xx, a broken or malformed answer, or refused orc's own credentials |
//! | 503 | no models are configured, a model's API key variable is unset, or every model is cooling down |
//! | 504 | the provider did not answer in time |
//!
//! A stream that fails after its first chunk ends with a `data: {"error": …}` event
//! (which the official clients raise as an error) and no `[DONE]`. Messages name the
//! provider, the model and the status, never an API key (orc's model client masks
//! keys in provider messages).
//!
//! Authentication, the concurrency limit, the body limit and timeouts are the
//! server's layers around these routes, not theirs.

mod chat;
mod embeddings;
mod error;
mod models;
mod request;
mod select;
mod stream;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use orc_models::{Gateway, Source};

use error::ApiError;

/// Options of the OpenAI-compatible routes.
#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// Whether answers are read from and written to orc's response cache when the
    /// client does not opt out (see the module docs). Default: `true`.
    pub use_cache: bool,
    /// How often a streamed answer that is waiting on its provider sends an SSE
    /// comment, so idle connections are not cut by proxies. Default: 15 s.
    pub keep_alive: Duration,
}

impl Default for OpenAiOptions {
    fn default() -> Self {
        OpenAiOptions {
            use_cache: true,
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// The OpenAI-compatible routes over `gateway` (`None` when no model is configured),
/// with the default [`OpenAiOptions`].
pub fn routes(gateway: Option<Gateway>) -> Router {
    routes_with(gateway, OpenAiOptions::default())
}

/// The OpenAI-compatible routes over `gateway` (`None` when no model is configured).
pub fn routes_with(gateway: Option<Gateway>, options: OpenAiOptions) -> Router {
    let state = AppState {
        gateway,
        options: Arc::new(options),
        created: unix_now(),
    };
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .with_state(state)
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    gateway: Option<Gateway>,
    options: Arc<OpenAiOptions>,
    /// When the routes were made: the `created` of every model.
    created: u64,
}

impl AppState {
    /// The gateway, or the 503 of a server without models.
    fn gateway(&self) -> Result<&Gateway, ApiError> {
        match &self.gateway {
            Some(gateway) if !gateway.registry().is_empty() => Ok(gateway),
            _ => Err(ApiError::NoModels),
        }
    }

    /// Whether this request may use the response cache: the default, unless the
    /// client opted out.
    fn use_cache(&self, headers: &HeaderMap) -> bool {
        self.options.use_cache && !opts_out_of_cache(headers)
    }
}

/// `x-orc-cache`: where the answer came from (response header), and `bypass` from a
/// client (request header).
const ORC_CACHE: HeaderName = HeaderName::from_static("x-orc-cache");
/// What the request cost, in USD.
const ORC_COST: HeaderName = HeaderName::from_static("x-orc-cost-usd");
/// How many fallbacks were taken.
const ORC_FALLBACKS: HeaderName = HeaderName::from_static("x-orc-fallbacks");

/// Whether the request says `Cache-Control: no-cache` / `no-store` or
/// `x-orc-cache: bypass`.
fn opts_out_of_cache(headers: &HeaderMap) -> bool {
    let bypass = headers
        .get_all(ORC_CACHE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.trim().eq_ignore_ascii_case("bypass"));
    let no_cache = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|d| d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store"));
    bypass || no_cache
}

/// The `x-orc-…` headers of an answer.
fn orc_headers(
    gateway: &Gateway,
    source: Source,
    use_cache: bool,
    cost: Option<f64>,
    fallbacks: usize,
) -> HeaderMap {
    let label = match source {
        Source::Cache => "hit",
        Source::Shared => "shared",
        Source::Upstream if gateway.cache().is_none() => "off",
        Source::Upstream if !use_cache => "bypass",
        Source::Upstream => "miss",
    };
    let mut headers = HeaderMap::new();
    headers.insert(ORC_CACHE, HeaderValue::from_static(label));
    if let Some(cost) = cost.filter(|c| c.is_finite())
        && let Ok(value) = HeaderValue::from_str(&cost.to_string())
    {
        headers.insert(ORC_COST, value);
    }
    if fallbacks > 0 {
        headers.insert(ORC_FALLBACKS, HeaderValue::from(fallbacks));
    }
    headers
}

/// `POST /v1/chat/completions`'s `body` read as the route reads it: the model asked for,
/// or the status of the refusal.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_chat_request(body: &[u8]) -> Result<String, u16> {
    use axum::response::IntoResponse as _;
    axum::Json::<wire::ChatCompletionRequest>::from_bytes(body)
        .map_err(ApiError::from)
        .and_then(|axum::Json(body)| request::Chat::try_from(body))
        .map(|chat| chat.model)
        .map_err(|e| e.into_response().status().as_u16())
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh `chatcmpl-…` id: the time and a process-wide counter, so ids never repeat
/// within a process and hardly across processes.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("chatcmpl-orc{nanos:016x}{n:06x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_opt_out_spellings() {
        let with = |name: HeaderName, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            opts_out_of_cache(&headers)
        };
        assert!(with(header::CACHE_CONTROL, "no-cache"));
        assert!(with(header::CACHE_CONTROL, "max-age=0, No-Store"));
        assert!(with(ORC_CACHE, "bypass"));
        assert!(!with(header::CACHE_CONTROL, "max-age=60"));
        assert!(!with(ORC_CACHE, "hit"));
        assert!(!opts_out_of_cache(&HeaderMap::new()));
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(completion_id(), completion_id());
    }
}
