//! [`Provider`]: what one wire protocol does (OpenAI-compatible servers, Anthropic's
//! Messages API), behind one trait, so the rest of the crate never asks which protocol
//! a model speaks. [`of`] is the one place a [`ProviderKind`] picks its provider.
//!
//! A provider sends one request and reads its answer: no retries, no metrics, no
//! budgets. [`ModelClient`](crate::ModelClient) adds those around it.

mod anthropic;
mod openai;

use futures::future::BoxFuture;

use crate::error::{CallSite, Error, FailureKind, Result};
use crate::http::Http;
use crate::provider_kind::ProviderKind;
use crate::request::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, EmbeddingRequest,
    EmbeddingResponse, ModelInfo,
};
use crate::secret::ApiKey;
use crate::spec::ModelSpec;
use crate::stream::ChatStream;

/// One upstream request of a provider, as a future that borrows what it was given.
pub(crate) type Call<'a, T> = BoxFuture<'a, Result<T>>;

/// Where a request goes: the pooled client, the model and its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) http: &'a Http,
    pub(crate) spec: &'a ModelSpec,
    pub(crate) key: Option<&'a ApiKey>,
}

/// The kinds of request a model may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A chat completion, plain or streamed.
    Chat,
    /// Text completions: a list of prompts in one call.
    Complete,
    /// Embeddings: a list of inputs in one call.
    Embed,
}

/// One wire protocol: how each kind of request is sent and its answer read.
pub(crate) trait Provider: Sync {
    /// Whether the protocol has `endpoint` (every protocol has chat).
    fn serves(&self, endpoint: Endpoint) -> bool;

    /// One plain (not streamed) chat completion.
    fn chat<'a>(&'a self, to: Target<'a>, req: &'a ChatRequest) -> Call<'a, ChatResponse>;

    /// Opens a streamed chat completion.
    fn chat_stream<'a>(&'a self, to: Target<'a>, req: &'a ChatRequest) -> Call<'a, ChatStream>;

    /// The models the server offers.
    fn list_models<'a>(&'a self, to: Target<'a>) -> Call<'a, Vec<ModelInfo>>;

    /// Completes every prompt of `req` in one call; only for a provider that
    /// [`serves`](Provider::serves) [`Endpoint::Complete`].
    fn complete<'a>(
        &'a self,
        to: Target<'a>,
        _req: &'a CompletionRequest,
    ) -> Call<'a, CompletionResponse> {
        Box::pin(std::future::ready(Err(unsupported(
            to.spec,
            Endpoint::Complete,
        ))))
    }

    /// Embeds every input of `req` in one call; only for a provider that
    /// [`serves`](Provider::serves) [`Endpoint::Embed`].
    fn embed<'a>(
        &'a self,
        to: Target<'a>,
        _req: &'a EmbeddingRequest,
    ) -> Call<'a, EmbeddingResponse> {
        Box::pin(std::future::ready(Err(unsupported(
            to.spec,
            Endpoint::Embed,
        ))))
    }
}

/// The provider of models of `kind`.
pub(crate) fn of(kind: ProviderKind) -> &'static dyn Provider {
    match kind {
        ProviderKind::OpenAi => &openai::OpenAi,
        ProviderKind::Anthropic => &anthropic::Anthropic,
    }
}

/// How the streamed answers of models of `kind` are read.
#[cfg(feature = "fuzzing")]
pub(crate) fn stream_events(kind: ProviderKind) -> &'static crate::stream::Events {
    match kind {
        ProviderKind::OpenAi => &openai::EVENTS,
        ProviderKind::Anthropic => &anthropic::EVENTS,
    }
}

/// The error of asking `spec`'s provider for an endpoint it does not have.
pub(crate) fn unsupported(spec: &ModelSpec, endpoint: Endpoint) -> Error {
    let what = match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Complete => "text completions",
        Endpoint::Embed => "embeddings",
    };
    Error::call(
        CallSite {
            provider: spec.provider,
            model: spec.model.clone(),
            status: None,
        },
        FailureKind::InvalidRequest,
        format!(
            "the {} API has no {what}; hint: use a chat request, or an OpenAI-compatible model",
            spec.provider
        ),
        None,
    )
}
