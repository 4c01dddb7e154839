//! `orc serve`: an HTTP service over orc's runtime.
//!
//! - [`openai`]: an OpenAI-compatible gateway (`/v1/chat/completions`, `/v1/embeddings`,
//!   `/v1/models`) served through orc's model gateway: response cache, in-flight
//!   de-duplication, batching, routing, fallbacks, budgets and metrics.

pub mod openai;
