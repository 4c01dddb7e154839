//! [`ModelClient`]: one handle for every provider call, over the shared HTTP client.

use std::future::Future;

use tokio::time::Instant;

use crate::error::Result;
use crate::http::{Http, HttpOptions};
use crate::provider::{self, Endpoint, Target};
use crate::request::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, EmbeddingRequest,
    EmbeddingResponse, ModelInfo,
};
use crate::retry::{RetryPolicy, call_with_retries, retrying};
use crate::secret::ApiKey;
use crate::spec::ModelSpec;
use crate::stream::ChatStream;
use crate::telemetry::CallMetrics;
use crate::usage::Usage;

/// Calls models of any provider through one pooled HTTP client.
///
/// Build one per process and clone it freely: clones share the connection pool and
/// the limit on calls in flight. Each call is retried under the client's
/// [`RetryPolicy`] when it fails in a retryable way.
///
/// Every upstream request of a chat, completion or embedding call (each retry
/// included) is recorded in the `orc_model_*` metrics of [`orc_telemetry::names`]:
/// its outcome and duration, its tokens and cost, its error kind, and for a stream
/// its time to first token.
#[derive(Debug, Clone)]
pub struct ModelClient {
    http: Http,
    retry: RetryPolicy,
}

impl ModelClient {
    /// A client with its own pool, as `options` describe, and the default retry policy.
    pub fn new(options: &HttpOptions) -> Result<Self> {
        Ok(ModelClient {
            http: Http::new(options)?,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy ([`RetryPolicy::none`] for single
    /// attempts).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The pooled client its calls go through, for requests that are not model calls: they
    /// share its connections and its limit on requests in flight.
    pub fn http(&self) -> crate::HttpClient {
        crate::HttpClient::of(self.http.clone())
    }

    /// Where a request for `spec` goes.
    fn target<'a>(&'a self, spec: &'a ModelSpec, key: Option<&'a ApiKey>) -> Target<'a> {
        Target {
            http: &self.http,
            spec,
            key,
        }
    }

    /// The retry policy calls run under.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends a chat request and returns the whole answer.
    ///
    /// With `req.stream` the provider is asked to stream and the stream is assembled
    /// (a truncated stream is retried like any retryable failure).
    pub async fn chat(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        req: &ChatRequest,
    ) -> Result<ChatResponse> {
        let metrics = CallMetrics::of(spec);
        let metrics = &metrics;
        let provider = provider::of(spec.provider);
        retrying(
            &self.retry,
            || metrics.retry(),
            || async {
                if req.stream {
                    self.open_stream(spec, key, req, metrics)
                        .await?
                        .finish()
                        .await
                } else {
                    let sent = provider.chat(self.target(spec, key), req);
                    metered(metrics, |r: &ChatResponse| r.usage, sent).await
                }
            },
        )
        .await
    }

    /// Sends a chat request as a stream, whatever `req.stream` says, and returns the
    /// text deltas as they come ([`ChatStream::finish`] gives the assembled answer).
    ///
    /// Opening the stream is retried; failures after the first byte are not, since
    /// the caller may have used the deltas already.
    pub async fn chat_stream(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        req: &ChatRequest,
    ) -> Result<ChatStream> {
        let metrics = CallMetrics::of(spec);
        let metrics = &metrics;
        retrying(
            &self.retry,
            || metrics.retry(),
            || self.open_stream(spec, key, req, metrics),
        )
        .await
    }

    /// Sends one streamed request. A request that fails to open is recorded now; one
    /// that opens is recorded by its stream when it ends.
    async fn open_stream(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        req: &ChatRequest,
        metrics: &CallMetrics,
    ) -> Result<ChatStream> {
        let started = Instant::now();
        let opened = provider::of(spec.provider)
            .chat_stream(self.target(spec, key), req)
            .await;
        match opened {
            Ok(stream) => Ok(stream.metered(metrics.clone(), started)),
            Err(error) => {
                metrics.request(started, Err(&error));
                Err(error)
            }
        }
    }

    /// Completes every prompt of `req` in one upstream call; one text per prompt, in
    /// order. Only the OpenAI-compatible protocol has completions.
    pub async fn complete(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        req: &CompletionRequest,
    ) -> Result<CompletionResponse> {
        let provider = provider::of(spec.provider);
        if !provider.serves(Endpoint::Complete) {
            return Err(provider::unsupported(spec, Endpoint::Complete));
        }
        if req.prompts.is_empty() {
            return Ok(CompletionResponse {
                model: spec.model.clone(),
                ..CompletionResponse::default()
            });
        }
        let metrics = CallMetrics::of(spec);
        retrying(
            &self.retry,
            || metrics.retry(),
            || {
                let sent = provider.complete(self.target(spec, key), req);
                metered(&metrics, |r: &CompletionResponse| r.usage, sent)
            },
        )
        .await
    }

    /// Embeds every input of `req` in one upstream call; one vector per input, in
    /// order. Only the OpenAI-compatible protocol has embeddings.
    pub async fn embed(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let provider = provider::of(spec.provider);
        if !provider.serves(Endpoint::Embed) {
            return Err(provider::unsupported(spec, Endpoint::Embed));
        }
        if req.inputs.is_empty() {
            return Ok(EmbeddingResponse {
                model: spec.model.clone(),
                ..EmbeddingResponse::default()
            });
        }
        let metrics = CallMetrics::of(spec);
        retrying(
            &self.retry,
            || metrics.retry(),
            || {
                let sent = provider.embed(self.target(spec, key), req);
                metered(&metrics, |r: &EmbeddingResponse| r.usage, sent)
            },
        )
        .await
    }

    /// The models the provider at `spec.base_url` offers. Not a model call: it is not
    /// counted in the model request metrics.
    pub async fn list_models(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
    ) -> Result<Vec<ModelInfo>> {
        let provider = provider::of(spec.provider);
        call_with_retries(&self.retry, || provider.list_models(self.target(spec, key))).await
    }
}

/// Awaits one upstream request, `sent`, and records it in `metrics` with the usage of
/// its answer.
async fn metered<T>(
    metrics: &CallMetrics,
    usage: impl FnOnce(&T) -> Usage,
    sent: impl Future<Output = Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let outcome = sent.await;
    metrics.request(started, outcome.as_ref().map(usage));
    outcome
}
