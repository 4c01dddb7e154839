//! A loopback fake model provider for orc's model tests and benchmarks.
//!
//! [`FakeProvider`] is a real HTTP/1.1 server on `127.0.0.1` (keep-alive, no
//! TLS, no HTTP/2) that speaks two wire protocols:
//!
//! - OpenAI-compatible: `POST /v1/chat/completions` (plain and SSE streaming,
//!   with `usage` in the last chunk when `stream_options.include_usage`),
//!   `POST /v1/completions` (a prompt or a list of prompts: one choice each),
//!   `POST /v1/embeddings` (deterministic vectors) and `GET /v1/models`;
//! - Anthropic: `POST /v1/messages` (plain and streaming with Anthropic's event
//!   sequence), and `GET /v1/models` when the request has Anthropic headers.
//!
//! Answers are deterministic: `echo: <last user message>`, cut to
//! `max_tokens` words, with tokens counted as whitespace-separated words.
//! Faults are set per server with [`Behaviour`] (latency, a scripted queue of
//! [`Reply`]s, answer overrides, the model list, expected API keys) or per
//! request with a marker in the last user message or prompt:
//!
//! | marker | effect |
//! |---|---|
//! | `[[fake:status=429,retry_after=1]]` | that status, in the provider's error JSON (a 429 has `Retry-After`, 1 s by default) |
//! | `[[fake:status=429,retry_after=none]]` | a 429 without `Retry-After` |
//! | `[[fake:delay_ms=300]]` | answer after 300 ms |
//! | `[[fake:chunk_delay_ms=20]]` | 20 ms between stream events |
//! | `[[fake:truncate]]` | close the connection mid-body (a stream stops halfway, without its terminator) |
//! | `[[fake:truncate=clean]]` | end the body early but cleanly: half the JSON, or a stream without `[DONE]`/`message_stop` |
//! | `[[fake:garbage]]` | 200 with a body (or SSE data) that is not JSON |
//! | `[[fake:close]]` | close the connection without answering |
//! | `[[fake:fail_times=2]]` | fail (500, or the marker's other faults) the first 2 times this exact request is seen |
//! | `[[fake:answer=TEXT]]` | answer TEXT (must be the last key; may hold commas) |
//!
//! Per model (by the id a request names), [`Behaviour::with_model`] sets a
//! [`ModelBehaviour`]: its own latency, a failure rate (deterministic, spread
//! evenly), the status of those failures, and a context window beyond which the
//! request is answered 400 with the provider's "context length exceeded" error.
//! [`Stats::requests_for`] counts the requests that named each model.
//!
//! Markers are removed before the prompt is echoed or counted; a malformed or
//! unknown one is answered 400, naming it. Errors use each provider's JSON
//! shape: `{"error": {"message", "type", "param", "code"}}` for OpenAI,
//! `{"type": "error", "error": {"type", "message"}}` for Anthropic. Counters
//! ([`Stats`]: requests per endpoint, accepted TCP connections, the last
//! bodies) are read with [`FakeProvider::stats`] or `GET /_fake/stats`, and
//! zeroed with [`FakeProvider::reset`] or `POST /_fake/reset`.
//!
//! ```
//! use orc_fake_provider::{Behaviour, FakeProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let fake = FakeProvider::start(Behaviour::default()).await?;
//! let base_url = fake.openai_base_url(); // "http://127.0.0.1:PORT/v1"
//! assert!(base_url.ends_with("/v1"));
//! // … point a client at base_url, then:
//! assert_eq!(fake.stats().total_requests, 0);
//! fake.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The `orc-fake-provider` binary serves the same for benchmarks:
//! `orc-fake-provider --port N [--latency-ms N] [--max-seconds N] [--api-key KEY]
//! [--model ID]… [--reject-unknown-models]` prints `listening on 127.0.0.1:PORT`
//! and stops on SIGINT or SIGTERM.

mod anthropic;
mod behaviour;
mod body;
mod openai;
mod routes;
mod server;
mod shared;
mod stats;
mod text;
mod wire;

pub use behaviour::{Behaviour, DEFAULT_MODELS, Error, ModelBehaviour, Reply, Result, Truncate};
pub use server::FakeProvider;
pub use stats::{Endpoint, RecordedRequest, Stats};
