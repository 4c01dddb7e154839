//! The metrics of model calls, under the names of [`orc_telemetry::names`]: the client
//! records each upstream request (and each retry), a [`ChatStream`](crate::ChatStream)
//! its time to first token and its end, the gateway each batch and each fallback.
//!
//! Labels are the provider (`as_str`) and the model's configured `name`, built once per
//! call (or per batcher) and cloned cheaply for every sample: never a prompt, a key or
//! a run id. Answers from the response cache or shared with another request are no
//! upstream requests and are not counted here (the cache counts its own hits).

use std::sync::Arc;
use std::time::Duration;

use metrics::SharedString;
use orc_telemetry::names::{self, label};
use tokio::time::Instant;

use crate::error::Error;
use crate::pricing::{cost_at, rate_of};
use crate::spec::{Cost, ModelSpec};
use crate::usage::Usage;

/// The `outcome` of a request that was answered.
const OK: &str = "ok";
/// The `outcome` of a request that failed.
const ERROR: &str = "error";
/// The `outcome` of a streamed request whose caller dropped the stream before its end.
const CANCELLED: &str = "cancelled";

/// What a batch carried, as the `kind` label of [`names::BATCH_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    Embeddings,
    Completions,
}

impl BatchKind {
    fn as_str(self) -> &'static str {
        match self {
            BatchKind::Embeddings => "embeddings",
            BatchKind::Completions => "completions",
        }
    }
}

/// The metrics of one model: its labels and its price, made once per call and cheap to
/// clone (the model's name is shared, not copied).
#[derive(Debug, Clone)]
pub(crate) struct CallMetrics {
    provider: &'static str,
    model: SharedString,
    /// What the model's tokens cost; `None` when it has no price.
    rate: Option<Cost>,
}

impl CallMetrics {
    pub(crate) fn of(spec: &ModelSpec) -> Self {
        CallMetrics {
            provider: spec.provider.as_str(),
            model: SharedString::from_shared(Arc::from(spec.name.as_str())),
            rate: rate_of(spec),
        }
    }

    /// One upstream request that started at `started` ended: answered with `usage`, or
    /// failed with the error.
    pub(crate) fn request(&self, started: Instant, outcome: Result<Usage, &Error>) {
        let elapsed = started.elapsed();
        match outcome {
            Ok(usage) => {
                self.ended(OK, Some(elapsed));
                self.billed(usage);
            }
            Err(error) => self.failed(elapsed, error),
        }
    }

    /// A streamed request whose caller dropped the stream before its end: counted, but
    /// neither timed (it has no last byte) nor billed (its usage is not known).
    pub(crate) fn request_cancelled(&self) {
        self.ended(CANCELLED, None);
    }

    /// A request is about to be sent again after a retryable error.
    pub(crate) fn retry(&self) {
        metrics::counter!(names::MODEL_RETRIES_TOTAL,
            label::PROVIDER => self.provider, label::MODEL => self.model.clone())
        .increment(1);
    }

    /// The first token of a streamed request arrived `after` it was sent.
    pub(crate) fn first_token(&self, after: Duration) {
        metrics::histogram!(names::MODEL_TIME_TO_FIRST_TOKEN_SECONDS,
            label::PROVIDER => self.provider, label::MODEL => self.model.clone())
        .record(after.as_secs_f64());
    }

    /// A batch of `size` inputs goes upstream in one request.
    pub(crate) fn batch(&self, kind: BatchKind, size: usize) {
        metrics::histogram!(names::BATCH_SIZE,
            label::PROVIDER => self.provider, label::MODEL => self.model.clone(),
            label::KIND => kind.as_str())
        .record(size as f64);
    }

    fn failed(&self, elapsed: Duration, error: &Error) {
        self.ended(ERROR, Some(elapsed));
        if let Some(kind) = error.kind() {
            metrics::counter!(names::MODEL_ERRORS_TOTAL,
                label::PROVIDER => self.provider, label::MODEL => self.model.clone(),
                label::KIND => kind.as_str())
            .increment(1);
        }
    }

    fn ended(&self, outcome: &'static str, elapsed: Option<Duration>) {
        metrics::counter!(names::MODEL_REQUESTS_TOTAL,
            label::PROVIDER => self.provider, label::MODEL => self.model.clone(),
            label::OUTCOME => outcome)
        .increment(1);
        if let Some(elapsed) = elapsed {
            metrics::histogram!(names::MODEL_REQUEST_DURATION_SECONDS,
                label::PROVIDER => self.provider, label::MODEL => self.model.clone())
            .record(elapsed.as_secs_f64());
        }
    }

    /// The tokens of an answered request, and their cost when the model has a price.
    fn billed(&self, usage: Usage) {
        let (provider, model) = (self.provider, &self.model);
        metrics::counter!(names::MODEL_INPUT_TOKENS_TOTAL,
            label::PROVIDER => provider, label::MODEL => model.clone())
        .increment(usage.input_tokens);
        metrics::counter!(names::MODEL_OUTPUT_TOKENS_TOTAL,
            label::PROVIDER => provider, label::MODEL => model.clone())
        .increment(usage.output_tokens);
        metrics::histogram!(names::MODEL_REQUEST_INPUT_TOKENS,
            label::PROVIDER => provider, label::MODEL => model.clone())
        .record(usage.input_tokens as f64);
        metrics::histogram!(names::MODEL_REQUEST_OUTPUT_TOKENS,
            label::PROVIDER => provider, label::MODEL => model.clone())
        .record(usage.output_tokens as f64);
        if let Some(rate) = self.rate {
            let usd = cost_at(rate, usage);
            metrics::gauge!(names::MODEL_COST_USD_TOTAL,
                label::PROVIDER => provider, label::MODEL => model.clone())
            .increment(usd);
            metrics::histogram!(names::MODEL_REQUEST_COST_USD,
                label::PROVIDER => provider, label::MODEL => model.clone())
            .record(usd);
        }
    }
}

/// A fallback is taken from the model named `from` to the model named `to`.
pub(crate) fn fallback(from: &str, to: &str) {
    metrics::counter!(names::MODEL_FALLBACKS_TOTAL,
        label::FROM => from.to_owned(), label::TO => to.to_owned())
    .increment(1);
}
