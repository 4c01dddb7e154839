//! orc's model providers: clients for OpenAI-compatible servers (OpenAI, Ollama, vLLM,
//! llama.cpp) and Anthropic's Messages API, over one shared pooled HTTP client.
//!
//! - [`ModelSpec`] is an entry of the config file's `models:` list; [`ApiKey`] holds
//!   the key read from the variable it names, and never prints it.
//! - [`ModelClient`] makes the calls: [`chat`](ModelClient::chat) (plain or streamed
//!   and assembled), [`chat_stream`](ModelClient::chat_stream) (text deltas as they
//!   come), [`complete`](ModelClient::complete) (a list of prompts in one call),
//!   [`embed`](ModelClient::embed) and [`list_models`](ModelClient::list_models).
//! - Requests and responses serialize, so they can be cache keys
//!   ([`canonical_json`]) and values.
//! - Every [`Error`] says whether a retry can help; calls are retried under a
//!   [`RetryPolicy`] that honours `Retry-After`; [`Attempts`] counts the attempts a
//!   piece of work made (for the result document).
//! - [`Gateway`] is the one way a run calls models: response cache, in-flight
//!   sharing, batching, the [`Budget`] (reserve the worst case before a call, settle
//!   the real cost after), the [`Router`] (which model for a step that names none;
//!   what each call taught it; cool-downs) and fallback chains. Every [`Answer`] says
//!   which model answered and which [`Fallback`]s were taken.
//! - [`HttpClient`] is the same pooled client for requests that are not model calls (the
//!   `http-client` tool): [`ModelClient::http`] and [`Gateway::http`] hand it out.
//! - [`RoutingConfig`] and [`CostConfig`] are the config file's `routing:` and
//!   `cost:` sections, checked against the models with `validate`.
//! - Upstream requests, retries, tokens, cost, errors, fallbacks and batch sizes are
//!   recorded with the [`metrics`] macros under the names of
//!   [`orc_telemetry::names`], labelled by provider and configured model name.
//!
//! ```no_run
//! use orc_models::{ChatRequest, HttpOptions, ModelClient, ModelSpec};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let spec: ModelSpec = serde_json::from_str(
//!     r#"{"name": "small", "provider": "openai", "model": "gpt-4o-mini",
//!         "api_key_env": "OPENAI_API_KEY"}"#,
//! )?;
//! let key = spec.api_key()?; // Err names OPENAI_API_KEY if it is unset
//! let client = ModelClient::new(&HttpOptions::default())?; // one per process
//! let answer = client.chat(&spec, key.as_ref(), &ChatRequest::user("Say hi")).await?;
//! println!("{} ({} tokens out)", answer.text, answer.usage.output_tokens);
//! # Ok(())
//! # }
//! ```

pub mod actions;
mod attempts;
mod backoff;
mod batch;
mod budget;
mod client;
mod complexity;
mod connect;
mod error;
mod fallback;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway;
mod http;
mod inflight;
mod pricing;
mod provider;
mod provider_kind;
mod public;
mod registry;
mod request;
mod requests;
mod retry;
mod router;
mod routing;
mod secret;
mod spec;
mod sse;
mod stream;
mod telemetry;
mod usage;
mod web;

pub use attempts::Attempts;
pub use backoff::Backoff;
pub use batch::BatchOptions;
pub use budget::{Budget, BudgetLimits, BudgetSnapshot, HOUR, Reservation};
pub use client::ModelClient;
pub use complexity::{
    DEFAULT_MAX_OUTPUT_TOKENS, RequestFeatures, capability, complexity, estimate_tokens,
};
pub use error::{BudgetScope, CallSite, ConfigIssue, Error, FailureKind, Result};
pub use fallback::Fallback;
pub use gateway::{
    Answer, CACHE_KEY_VERSION, Gateway, GatewayOptions, GatewayStats, OnDelta, Source,
    StreamAnswer, cache_key,
};
pub use http::HttpOptions;
pub use pricing::{Estimate, estimate, price, worst_case_cost};
pub use provider_kind::ProviderKind;
pub use registry::{ESTIMATED_CALL_TOKENS, Model, Registry, Requirements};
pub use request::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, EmbeddingRequest,
    EmbeddingResponse, Message, ModelInfo, Role, WireRequest, canonical_json,
};
pub use requests::{Origin, RequestRecord, RequestSink, error_kind};
pub use retry::{RetryPolicy, call_with_retries};
pub use router::{
    CallOutcome, Decision, HISTORY_WEIGHT, MIN_CALLS_JUDGED, ModelStats, RECENT_DECISIONS,
    RouteRecord, RouteRequest, Router,
};
pub use routing::{
    Cooldown, CostConfig, FallbackStrategy, RoutingConfig, Strategy, check_budget, require_prices,
};
pub use secret::ApiKey;
pub use spec::{Cost, ModelSpec};
pub use stream::ChatStream;
pub use usage::Usage;
pub use web::{HttpClient, WebRequest, WebResponse};
