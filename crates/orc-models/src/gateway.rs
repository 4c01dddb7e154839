//! [`Gateway`]: every model call of a run goes through it, in this order: response
//! cache, in-flight de-duplication, the budget's reservation, batching (where the API
//! takes a list) or the model's concurrency limit, then the provider over the pooled
//! client; after the call the reservation is settled and the router learns the
//! outcome, and a failure that another model may fix goes down the fallback chain.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::batch::{BatchCall, BatchFuture, BatchOptions, Batcher};
use tracing::Instrument as _;

use crate::budget::{Budget, Reservation};
use crate::client::ModelClient;
use crate::complexity::{DEFAULT_MAX_OUTPUT_TOKENS, RequestFeatures};
use crate::error::{Error, Result, cut};
use crate::fallback::Fallback;
use crate::inflight::InFlight;
use crate::pricing::{Estimate, estimate, price};
use crate::provider::{self, Endpoint};
use crate::registry::{Model, Registry, Requirements};
use crate::request::{
    ChatRequest, ChatResponse, CompletionRequest, EmbeddingRequest, WireRequest, canonical_json,
};
pub use crate::requests::Source;
use crate::requests::{Notifier, Origin, RequestSink, error_kind};
use crate::router::{CallOutcome, Decision, RouteRequest, Router};
use crate::spec::ModelSpec;
use crate::stream::{ChatStream, StreamEnd};
use crate::telemetry::{self, BatchKind, CallMetrics};
use crate::usage::Usage;

/// The version of the response cache's key format: bump it when the key or the
/// stored value changes shape, so old entries are never misread. Version 2 keys the
/// request as sent ([`WireRequest`]): version 1 keyed a request sent under a budget
/// without the `max_tokens` it was sent with, so its entries may hold cut answers.
pub const CACHE_KEY_VERSION: u32 = 2;

/// Receives a streamed answer's text as it arrives ([`Gateway::chat_streamed`]).
pub type OnDelta<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// An answer with what it cost and which model gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// Where it came from.
    pub source: Source,
    /// Tokens this request paid for: the call's usage when it went upstream, zero when
    /// it was answered from the cache or shared another request's call.
    pub usage: Usage,
    /// USD this request paid, from the answering model's `cost`; `None` when that
    /// model has no price and is not local.
    pub cost: Option<f64>,
    /// The model that answered: the one asked for, or the fallback that answered
    /// after it failed.
    pub model: Arc<ModelSpec>,
    /// The fallbacks taken before the answer, in order (empty when the model asked
    /// for answered): for the result document.
    pub fallback: Vec<Fallback>,
}

impl<T> Answer<T> {
    /// Whether the answer cost no upstream call of its own.
    pub fn cached(&self) -> bool {
        self.source != Source::Upstream
    }
}

/// Counters of one gateway, for `orc models stats` and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStats {
    /// Requests answered from the response cache.
    pub cache_hits: u64,
    /// Requests that looked in the cache and found nothing.
    pub cache_misses: u64,
    /// Requests that shared an identical request's call.
    pub shared: u64,
    /// Calls made to providers (a batch counts once).
    pub upstream_calls: u64,
    /// Fallbacks taken (each model tried after a failure counts once).
    pub fallbacks: u64,
    /// Calls a budget refused.
    pub budget_refusals: u64,
}

#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    shared: AtomicU64,
    upstream_calls: AtomicU64,
    fallbacks: AtomicU64,
    budget_refusals: AtomicU64,
}

/// Options of a [`Gateway`].
#[derive(Clone, Default)]
pub struct GatewayOptions {
    /// The response cache; `None` to call upstream every time.
    pub cache: Option<orc_cache::Cache>,
    /// How embeddings and completions are batched.
    pub batch: BatchOptions,
    /// Routing for steps that name no model, fallback chains and cool-downs, built from
    /// the same registry; `None` for [`Router::with_defaults`] (balanced, no
    /// fallbacks).
    pub router: Option<Router>,
    /// Spend limits every upstream call is reserved against; `None` for none.
    pub budget: Option<Budget>,
    /// Told of every request as it ends ([`RequestSink`]); `None` for nobody.
    pub requests: Option<Arc<dyn RequestSink>>,
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field(
                "cache",
                &self.cache.as_ref().map(orc_cache::Cache::describe),
            )
            .field("batch", &self.batch)
            .field("router", &self.router)
            .field("budget", &self.budget)
            .field("requests", &self.requests)
            .finish()
    }
}

/// A streamed answer as [`Gateway::open_stream`] returns it.
#[derive(Debug)]
pub struct StreamAnswer {
    /// The text deltas (a cached answer is replayed as one).
    pub stream: ChatStream,
    /// Where it comes from.
    pub source: Source,
    /// The model that answers.
    pub model: Arc<ModelSpec>,
    /// The fallbacks taken before a model opened the stream.
    pub fallback: Vec<Fallback>,
}

/// What a call needs: which endpoint, and its token bounds (for the budget).
#[derive(Debug, Clone, Copy)]
struct Need {
    endpoint: Endpoint,
    input: u64,
    output: u64,
}

impl Need {
    /// A need with no token bounds: what is used when there is no budget to check.
    fn unbounded(endpoint: Endpoint) -> Self {
        Need {
            endpoint,
            input: 0,
            output: 0,
        }
    }

    fn of(endpoint: Endpoint, features: &RequestFeatures) -> Self {
        Need {
            endpoint,
            input: features.input_token_bound(),
            output: match endpoint {
                Endpoint::Embed => 0,
                Endpoint::Chat | Endpoint::Complete => features.output_token_bound(),
            },
        }
    }

    fn worst_case(&self, spec: &ModelSpec) -> Option<f64> {
        let usage = Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            ..Usage::default()
        };
        price(spec, usage)
    }
}

/// Answers a fallback can be noted on.
trait Answered {
    fn set_fallback(&mut self, tried: Vec<Fallback>);
}

impl<T> Answered for Answer<T> {
    fn set_fallback(&mut self, tried: Vec<Fallback>) {
        self.fallback = tried;
    }
}

impl Answered for StreamAnswer {
    fn set_fallback(&mut self, tried: Vec<Fallback>) {
        self.fallback = tried;
    }
}

type Vector = Vec<f32>;

/// The span of one model call (with its fallbacks): the model asked for and the endpoint.
fn call_span(model: &Model, kind: &'static str) -> tracing::Span {
    tracing::info_span!("model_call", model = %model.spec.name, kind)
}

/// The one way model calls are made. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
    /// Spend limits of this handle's calls: clones made by [`Gateway::with_budget`] share
    /// everything else (pool, cache, router, in-flight calls) with their own budget.
    budget: Option<Budget>,
    /// The run this handle's requests are made for ([`Gateway::with_origin`]).
    origin: Option<Arc<Origin>>,
}

struct Inner {
    registry: Registry,
    client: ModelClient,
    options: GatewayOptions,
    router: Router,
    limits: HashMap<String, Arc<Semaphore>>,
    chats: InFlight<Result<ChatResponse>>,
    items: InFlight<Result<(Arc<ItemAnswer>, Usage)>>,
    embedders: Mutex<HashMap<String, Arc<Batcher<Vector>>>>,
    completers: Mutex<HashMap<String, Arc<Batcher<String>>>>,
    counters: Arc<Counters>,
}

/// The answer to one item of a batchable request.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
enum ItemAnswer {
    Vector(Vector),
    Text(String),
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("models", &self.inner.registry.models().len())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `registry`'s models and `client`'s pool.
    pub fn new(registry: Registry, client: ModelClient, options: GatewayOptions) -> Self {
        let limits = registry
            .models()
            .iter()
            .filter_map(|m| {
                m.max_concurrency
                    .map(|n| (m.name.clone(), Arc::new(Semaphore::new(n.get()))))
            })
            .collect();
        let router = options
            .router
            .clone()
            .unwrap_or_else(|| Router::with_defaults(&registry));
        Gateway {
            budget: options.budget.clone(),
            origin: None,
            inner: Arc::new(Inner {
                registry,
                client,
                options,
                router,
                limits,
                chats: InFlight::default(),
                items: InFlight::default(),
                embedders: Mutex::default(),
                completers: Mutex::default(),
                counters: Arc::default(),
            }),
        }
    }

    /// The configured models.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The pooled HTTP client its model calls go through, for other requests (the
    /// `http-client` tool) to share.
    pub fn http(&self) -> crate::HttpClient {
        self.inner.client.http()
    }

    /// The response cache, when there is one.
    pub fn cache(&self) -> Option<&orc_cache::Cache> {
        self.inner.options.cache.as_ref()
    }

    /// The router: what it has learnt ([`Router::snapshot`]), its cool-downs.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// A handle on the same gateway (pool, response cache, router, in-flight calls, batchers,
    /// counters) whose calls are reserved against `budget` instead: each of several runs in one
    /// process spends against its own limits.
    #[must_use]
    pub fn with_budget(&self, budget: Option<Budget>) -> Gateway {
        Gateway {
            inner: Arc::clone(&self.inner),
            budget,
            origin: self.origin.clone(),
        }
    }

    /// A handle on the same gateway (and budget) whose requests are recorded as made for the
    /// run `origin` ([`RequestRecord::origin`]).
    #[must_use]
    pub fn with_origin(&self, origin: Origin) -> Gateway {
        Gateway {
            inner: Arc::clone(&self.inner),
            budget: self.budget.clone(),
            origin: Some(Arc::new(origin)),
        }
    }

    /// What records a request that starts now, when a sink listens.
    fn notifier(&self, use_cache: bool) -> Option<Notifier> {
        Some(Notifier {
            sink: Arc::clone(self.inner.options.requests.as_ref()?),
            origin: self.origin.clone(),
            cache_on: use_cache && self.inner.options.cache.is_some(),
            started: Instant::now(),
        })
    }

    /// The budget, when there is one.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// The gateway's counters so far.
    pub fn stats(&self) -> GatewayStats {
        let c = &self.inner.counters;
        GatewayStats {
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            shared: c.shared.load(Ordering::Relaxed),
            upstream_calls: c.upstream_calls.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            budget_refusals: c.budget_refusals.load(Ordering::Relaxed),
        }
    }

    /// Chooses a model for a step that names none, among `candidates` (the models that
    /// meet its `requires_model`), for a chat-like request with `features`: the
    /// candidates the budget cannot pay for are left out (when it can pay for none, its
    /// refusal is the error), then the router decides. Makes no call.
    pub fn route(
        &self,
        candidates: &[Arc<ModelSpec>],
        features: &RequestFeatures,
    ) -> Result<Decision> {
        let need = Need::of(Endpoint::Chat, features);
        let affordable: Vec<Arc<ModelSpec>>;
        let candidates = match &self.budget {
            None => candidates,
            Some(_) => {
                let mut refused = None;
                affordable = candidates
                    .iter()
                    .filter(|spec| match self.check_budget(spec, need) {
                        Ok(()) => true,
                        Err(e) => {
                            refused.get_or_insert(e);
                            false
                        }
                    })
                    .cloned()
                    .collect();
                if affordable.is_empty()
                    && let Some(refused) = refused
                {
                    return Err(refused);
                }
                &affordable
            }
        };
        let request = RouteRequest {
            candidates,
            estimated_input_tokens: features.estimated_input_tokens(),
            max_tokens: features.max_tokens,
            complexity: features.complexity(),
            stream: features.stream,
        };
        self.inner.router.route(&request)
    }

    /// The model for a step that names none: the models that meet `wanted` and whose
    /// key is set ([`Registry::candidates`]), chosen among by [`Gateway::route`].
    pub fn route_model(
        &self,
        wanted: &Requirements,
        features: &RequestFeatures,
    ) -> Result<(Model, Decision)> {
        let models = self.inner.registry.candidates(wanted)?;
        let specs: Vec<Arc<ModelSpec>> = models.iter().map(|m| Arc::clone(&m.spec)).collect();
        let decision = self.route(&specs, features)?;
        let model = models
            .into_iter()
            .find(|m| m.spec.name == decision.model.name)
            .ok_or(Error::NoCandidates)?;
        Ok((model, decision))
    }

    /// What `req` would cost on `spec`, and whether the response cache already holds
    /// its answer (looked up only with `use_cache`). Makes no call (`orc plan`).
    pub async fn estimate_chat(
        &self,
        spec: &ModelSpec,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<Estimate> {
        let mut estimate = estimate(spec, &RequestFeatures::of_chat(req));
        estimate.cached = use_cache && self.is_cached(spec, "chat", req).await?;
        Ok(estimate)
    }

    /// Whether the response cache holds the answer to `req` (of endpoint `kind`:
    /// `chat`, `embed`, `complete`) on `spec`, as this gateway would send it
    /// ([`Gateway::wire`]); a lookup like any other for the cache's own statistics.
    pub async fn is_cached<R: WireRequest>(
        &self,
        spec: &ModelSpec,
        kind: &str,
        req: &R,
    ) -> Result<bool> {
        let Some(cache) = self.inner.options.cache.as_ref() else {
            return Ok(false);
        };
        let key = digest(&cache_key(spec, kind, &*self.wire(req))?);
        Ok(cache.get(&key).await.is_some())
    }

    /// What a call needs: its token bounds are only measured when a budget will check
    /// them (measuring reads the whole prompt).
    fn need(&self, endpoint: Endpoint, features: impl FnOnce() -> RequestFeatures) -> Need {
        match self.budget {
            Some(_) => Need::of(endpoint, &features()),
            None => Need::unbounded(endpoint),
        }
    }

    /// Reserves a call's worst case on the budget, when there is one.
    fn reserve(&self, spec: &ModelSpec, need: Need) -> Result<Option<Reservation>> {
        let Some(budget) = &self.budget else {
            return Ok(None);
        };
        let reserved = need
            .worst_case(spec)
            .ok_or_else(|| Error::Unpriced {
                model: spec.name.clone(),
            })
            .and_then(|worst| budget.reserve(worst));
        reserved.map(Some).inspect_err(|_| {
            self.inner
                .counters
                .budget_refusals
                .fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Whether the budget could pay for a call to `spec` now.
    fn check_budget(&self, spec: &ModelSpec, need: Need) -> Result<(), Error> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let worst = need.worst_case(spec).ok_or_else(|| Error::Unpriced {
            model: spec.name.clone(),
        })?;
        budget.check(worst)
    }

    /// The request as this gateway sends it: under a budget, one with no
    /// `max_tokens` gets [`DEFAULT_MAX_OUTPUT_TOKENS`], so the reservation's worst
    /// case is one the provider enforces. The response cache and the in-flight
    /// table key this request, never the one asked for: an answer cut at the bound
    /// must not answer a request sent without it.
    pub fn wire<'r, R: WireRequest>(&self, req: &'r R) -> Cow<'r, R> {
        match &self.budget {
            Some(_) => req
                .with_output_bound(DEFAULT_MAX_OUTPUT_TOKENS)
                .map_or(Cow::Borrowed(req), Cow::Owned),
            None => Cow::Borrowed(req),
        }
    }

    /// Runs `call` on `model`, and on an error another model may fix, on the models of
    /// its fallback chain in turn (skipping those cooling down, those the budget cannot
    /// pay for, those without the endpoint, and, after a context-window error, those
    /// whose window is no larger). The answer notes every fallback taken; when all
    /// fail, the error does.
    async fn with_fallbacks<T, F, Fut>(&self, model: &Model, need: Need, mut call: F) -> Result<T>
    where
        T: Answered,
        F: FnMut(Model) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let first = match call(model.clone()).await {
            Ok(answer) => return Ok(answer),
            Err(error) => error,
        };
        if !first.is_fallback_eligible() {
            return Err(first);
        }
        let chain = match need.endpoint {
            // Vectors of different models do not mix: only a chain the user wrote.
            Endpoint::Embed => self
                .inner
                .router
                .explicit_fallbacks(&model.spec.name)
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            Endpoint::Chat | Endpoint::Complete => self.inner.router.fallbacks(&model.spec),
        };
        let mut tried: Vec<Fallback> = Vec::new();
        let mut from = Arc::clone(&model.spec);
        let mut last = first;
        for spec in chain {
            if spec.name == model.spec.name || tried.iter().any(|t| t.to == spec.name) {
                continue;
            }
            if let Some(why) = self.skip(&spec, &from, &last, need) {
                tracing::info!(model = %spec.name, "fallback skipped: {why}");
                continue;
            }
            let next = match self.inner.registry.resolve(&spec.name) {
                Ok(next) => next,
                Err(e) => {
                    tracing::info!(model = %spec.name, "fallback skipped: {e}");
                    continue;
                }
            };
            let note = Fallback {
                from: from.name.clone(),
                to: spec.name.clone(),
                reason: cut(&last.to_string(), 300),
            };
            tracing::warn!(from = %note.from, to = %note.to, "model call failed, falling back: {}", note.reason);
            self.inner
                .counters
                .fallbacks
                .fetch_add(1, Ordering::Relaxed);
            telemetry::fallback(&note.from, &note.to);
            tried.push(note);
            match call(next).await {
                Ok(mut answer) => {
                    answer.set_fallback(tried);
                    return Ok(answer);
                }
                Err(error) => {
                    let go_on = error.is_fallback_eligible();
                    last = error;
                    if !go_on {
                        break;
                    }
                    from = spec;
                }
            }
        }
        if tried.is_empty() {
            Err(last)
        } else {
            Err(Error::FallbacksFailed {
                tried,
                last: Box::new(last),
            })
        }
    }

    /// Why the fallback `spec` is not tried after `from` failed with `error`, if so.
    fn skip(
        &self,
        spec: &ModelSpec,
        from: &ModelSpec,
        error: &Error,
        need: Need,
    ) -> Option<String> {
        if !provider::of(spec.provider).serves(need.endpoint) {
            return Some(format!("the {} API has no such endpoint", spec.provider));
        }
        if let Some(left) = self.inner.router.cooldown_left(&spec.name) {
            return Some(format!("cooling down for {:.1} s more", left.as_secs_f64()));
        }
        if error.kind() == Some(crate::error::FailureKind::ContextLength)
            && let (Some(have), Some(had)) = (spec.context_window, from.context_window)
            && have <= had
        {
            return Some(format!(
                "its context window ({have}) is no larger than {}'s ({had})",
                from.name
            ));
        }
        self.check_budget(spec, need).err().map(|e| e.to_string())
    }

    /// A chat answer: from the cache when `use_cache` and it is there, else from an
    /// identical call in flight, else from the provider (then cached, unless it failed).
    ///
    /// An upstream call is reserved on the budget first (a refusal is
    /// a budget refusal ([`Error::is_budget_refusal`], never retried or fallen back on), settled with its cost after,
    /// and recorded in the router. When it fails in a way another model may fix
    /// ([`Error::is_fallback_eligible`]), the model's fallbacks are tried in turn; the
    /// answer says which model answered ([`Answer::model`]) and the fallbacks taken
    /// ([`Answer::fallback`]).
    pub async fn chat(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<Answer<ChatResponse>> {
        let need = self.need(Endpoint::Chat, || RequestFeatures::of_chat(req));
        let notifier = self.notifier(use_cache);
        let answer = self
            .with_fallbacks(model, need, |m| async move {
                self.chat_on(&m, req, use_cache, need).await
            })
            .instrument(call_span(model, "chat"))
            .await;
        if let Some(n) = notifier {
            ended(&n, &model.spec, &answer);
        }
        answer
    }

    async fn chat_on(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
        need: Need,
    ) -> Result<Answer<ChatResponse>> {
        let req = &*self.wire(req);
        let key = digest(&cache_key(&model.spec, "chat", req)?);
        if use_cache && let Some(hit) = self.cache_get::<ChatResponse>(&key).await {
            return Ok(self.answer(&model.spec, hit, Source::Cache));
        }
        let (outcome, shared) = self
            .inner
            .chats
            .run(key, || async {
                let reservation = self.reserve(&model.spec, need)?;
                let _permit = self.permit(&model.spec).await;
                self.inner
                    .counters
                    .upstream_calls
                    .fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let response = self
                    .inner
                    .client
                    .chat(&model.spec, model.key.as_ref(), req)
                    .await;
                let usage = response.as_ref().map(|r| r.usage);
                settle(reservation, &model.spec, usage.as_ref().ok().copied());
                record(&self.inner.router, &model.spec, started, None, usage);
                let response = response?;
                if use_cache {
                    self.cache_put(&key, &response).await;
                }
                Ok(response)
            })
            .await;
        let response = outcome?;
        let source = if shared {
            self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
            Source::Shared
        } else {
            Source::Upstream
        };
        Ok(self.answer(&model.spec, response, source))
    }

    /// A chat answer like [`Gateway::chat`], read as a stream: `on_delta` receives each
    /// piece of text as it arrives (a cached answer arrives as one piece). Budget, router and
    /// fallbacks as [`Gateway::open_stream`].
    pub async fn chat_streamed(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
        on_delta: OnDelta<'_>,
    ) -> Result<Answer<ChatResponse>> {
        let StreamAnswer {
            mut stream,
            source,
            model: spec,
            fallback,
        } = self.open_stream(model, req, use_cache).await?;
        while let Some(delta) = futures::StreamExt::next(&mut stream).await {
            on_delta(&delta?);
        }
        let mut answer = self.answer(&spec, stream.finish().await?, source);
        answer.fallback = fallback;
        Ok(answer)
    }

    /// A chat answer as a stream of text deltas. A cached answer is replayed as a
    /// stream; a fresh one is cached once it has been read to its end. Budget,
    /// router and fallbacks as [`Gateway::open_stream`].
    pub async fn chat_stream(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<(ChatStream, Source)> {
        let answer = self.open_stream(model, req, use_cache).await?;
        Ok((answer.stream, answer.source))
    }

    /// A chat answer as a stream of text deltas, with the model that answers and the
    /// fallbacks taken to open it (a stream is only fallen back on before its first
    /// byte). The budget reserves the worst case when the stream opens and settles
    /// the real cost when it completes; a stream that fails or is dropped before its
    /// end is counted at its worst case, since the provider may bill what it
    /// generated. The router learns the latency and the time to first token.
    pub async fn open_stream(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<StreamAnswer> {
        let mut req = req.clone();
        req.stream = true;
        let need = self.need(Endpoint::Chat, || RequestFeatures::of_chat(&req));
        let req = &req;
        let notifier = self.notifier(use_cache);
        let notifier = notifier.as_ref();
        let opened = self
            .with_fallbacks(model, need, |m| async move {
                self.stream_on(&m, req, use_cache, need, notifier).await
            })
            .instrument(call_span(model, "chat_stream"))
            .await;
        // An upstream stream is recorded when it ends (see `stream_on`).
        match (&opened, notifier) {
            (Ok(answer), Some(n)) if answer.source != Source::Upstream => {
                n.answered(&answer.model, answer.source, Usage::default());
            }
            (Err(e), Some(n)) => n.failed(&model.spec, error_kind(e)),
            _ => {}
        }
        opened
    }

    async fn stream_on(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
        need: Need,
        notifier: Option<&Notifier>,
    ) -> Result<StreamAnswer> {
        let req = &*self.wire(req);
        let key = digest(&cache_key(&model.spec, "chat", req)?);
        if use_cache && let Some(hit) = self.cache_get::<ChatResponse>(&key).await {
            return Ok(StreamAnswer {
                stream: ChatStream::replay(hit),
                source: Source::Cache,
                model: Arc::clone(&model.spec),
                fallback: Vec::new(),
            });
        }
        let reservation = self.reserve(&model.spec, need)?;
        self.inner
            .counters
            .upstream_calls
            .fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let opened = self
            .inner
            .client
            .chat_stream(&model.spec, model.key.as_ref(), req)
            .await;
        let stream = match opened {
            Ok(stream) => stream.opened_at(started),
            Err(e) => {
                record(&self.inner.router, &model.spec, started, None, Err(&e));
                return Err(e);
            }
        };
        let stream = match (use_cache, self.inner.options.cache.clone()) {
            (true, Some(cache)) => stream.on_complete(move |response| {
                if let Ok(value) = serde_json::to_vec(response) {
                    tokio::spawn(async move { cache.put(&key, &value).await });
                }
            }),
            _ => stream,
        };
        let (router, spec) = (self.inner.router.clone(), Arc::clone(&model.spec));
        let notifier = notifier.cloned();
        let stream = stream.on_end(move |end| match end {
            StreamEnd::Complete(response, ttft) => {
                settle(reservation, &spec, Some(response.usage));
                record(&router, &spec, started, ttft, Ok(response.usage));
                if let Some(n) = notifier {
                    n.answered(&spec, Source::Upstream, response.usage);
                }
            }
            StreamEnd::Failed(error) => {
                if let Some(reservation) = reservation {
                    reservation.settle_reserved();
                }
                record(&router, &spec, started, None, Err(error));
                if let Some(n) = notifier {
                    n.failed(&spec, error_kind(error));
                }
            }
            StreamEnd::Dropped => {
                if let Some(reservation) = reservation {
                    reservation.settle_reserved();
                }
                if let Some(n) = notifier {
                    n.failed(&spec, "cancelled");
                }
            }
        });
        Ok(StreamAnswer {
            stream,
            source: Source::Upstream,
            model: Arc::clone(&model.spec),
            fallback: Vec::new(),
        })
    }

    /// One vector per input, in order. Each input is cached on its own; the inputs
    /// not in the cache are batched with other requests' inputs for the same model.
    /// Each input is reserved on the budget on its own. Only an explicit fallback
    /// chain is followed (vectors of different models do not mix).
    pub async fn embed(
        &self,
        model: &Model,
        inputs: Vec<String>,
        use_cache: bool,
    ) -> Result<Answer<Vec<Vector>>> {
        let need = self.need(Endpoint::Embed, || {
            RequestFeatures::of_texts(inputs.iter().map(String::as_str))
        });
        let inputs = &inputs;
        let notifier = self.notifier(use_cache);
        let answer = self
            .with_fallbacks(model, need, |m| async move {
                self.embed_on(&m, inputs, use_cache).await
            })
            .instrument(call_span(model, "embed"))
            .await;
        if let Some(n) = notifier {
            ended(&n, &model.spec, &answer);
        }
        answer
    }

    async fn embed_on(
        &self,
        model: &Model,
        inputs: &[String],
        use_cache: bool,
    ) -> Result<Answer<Vec<Vector>>> {
        let batcher = self.embedder(model);
        let answers = futures::future::join_all(inputs.iter().map(|input| {
            let need = self.need(Endpoint::Embed, || {
                RequestFeatures::of_texts([input.as_str()])
            });
            let req = EmbeddingRequest {
                inputs: vec![input.clone()],
            };
            self.item(model, "embed", req, use_cache, &batcher, need)
        }))
        .await;
        self.gather(model, answers, |a| match a {
            ItemAnswer::Vector(v) => Some(v),
            ItemAnswer::Text(_) => None,
        })
    }

    /// A completion of `prompt` (the text-completions endpoint), batched with other
    /// requests' prompts for the same model and parameters. Each prompt is reserved on
    /// the budget on its own.
    pub async fn complete(
        &self,
        model: &Model,
        req: CompletionRequest,
        use_cache: bool,
    ) -> Result<Answer<Vec<String>>> {
        let need = self.need(Endpoint::Complete, || RequestFeatures {
            max_tokens: req.max_tokens,
            ..RequestFeatures::of_texts(req.prompts.iter().map(String::as_str))
        });
        let req = &req;
        let notifier = self.notifier(use_cache);
        let answer = self
            .with_fallbacks(model, need, |m| async move {
                self.complete_on(&m, req, use_cache).await
            })
            .instrument(call_span(model, "complete"))
            .await;
        if let Some(n) = notifier {
            ended(&n, &model.spec, &answer);
        }
        answer
    }

    async fn complete_on(
        &self,
        model: &Model,
        req: &CompletionRequest,
        use_cache: bool,
    ) -> Result<Answer<Vec<String>>> {
        // Each prompt is keyed, shared and batched as it is sent.
        let wire = self.wire(req);
        let batcher = self.completer(model, &wire);
        let answers = futures::future::join_all(req.prompts.iter().map(|prompt| {
            let need = self.need(Endpoint::Complete, || RequestFeatures {
                max_tokens: req.max_tokens,
                ..RequestFeatures::of_texts([prompt.as_str()])
            });
            let one = CompletionRequest {
                prompts: vec![prompt.clone()],
                ..(*wire).clone()
            };
            self.item(model, "complete", one, use_cache, &batcher, need)
        }))
        .await;
        self.gather(model, answers, |a| match a {
            ItemAnswer::Text(t) => Some(t),
            ItemAnswer::Vector(_) => None,
        })
    }

    /// One item of a batchable request: cache, then in-flight sharing, then the batcher.
    async fn item<T, R>(
        &self,
        model: &Model,
        kind: &str,
        req: R,
        use_cache: bool,
        batcher: &Batcher<T>,
        need: Need,
    ) -> Result<(ItemAnswer, Source, Usage)>
    where
        T: Clone + Send + 'static + Into<ItemAnswer>,
        R: WireRequest + ItemInput,
    {
        let req = self.wire(&req);
        let hash = digest(&cache_key(&model.spec, kind, &*req)?);
        let key = hash;
        if use_cache && let Some(hit) = self.cache_get::<ItemAnswer>(&key).await {
            return Ok((hit, Source::Cache, Usage::default()));
        }
        let (outcome, shared) = self
            .inner
            .items
            .run(hash, || async {
                let reservation = self.reserve(&model.spec, need)?;
                let (answer, usage) = batcher.submit(req.input()).await?;
                settle(reservation, &model.spec, Some(usage));
                let answer: ItemAnswer = answer.into();
                if use_cache {
                    self.cache_put(&key, &answer).await;
                }
                Ok((Arc::new(answer), usage))
            })
            .await;
        let (answer, usage) = outcome?;
        if shared {
            self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
            return Ok(((*answer).clone(), Source::Shared, Usage::default()));
        }
        Ok(((*answer).clone(), Source::Upstream, usage))
    }

    fn gather<T>(
        &self,
        model: &Model,
        answers: Vec<Result<(ItemAnswer, Source, Usage)>>,
        unwrap: impl Fn(ItemAnswer) -> Option<T>,
    ) -> Result<Answer<Vec<T>>> {
        let mut values = Vec::with_capacity(answers.len());
        let mut usage = Usage::default();
        let mut all_cached = true;
        let mut any_shared = false;
        for answer in answers {
            let (answer, source, used) = answer?;
            usage += used;
            all_cached &= source != Source::Upstream;
            any_shared |= source == Source::Shared;
            values.push(unwrap(answer).ok_or_else(|| Error::Client {
                message: "a cached answer has the wrong shape".to_owned(),
            })?);
        }
        let source = match (all_cached, any_shared) {
            (false, _) => Source::Upstream,
            (true, true) => Source::Shared,
            (true, false) => Source::Cache,
        };
        Ok(Answer {
            value: values,
            source,
            usage,
            cost: price(&model.spec, usage),
            model: Arc::clone(&model.spec),
            fallback: Vec::new(),
        })
    }

    fn embedder(&self, model: &Model) -> Arc<Batcher<Vector>> {
        let id = model.spec.name.clone();
        self.batcher(
            &self.inner.embedders,
            id,
            model,
            BatchKind::Embeddings,
            |client, model, inputs| {
                Box::pin(async move {
                    let req = EmbeddingRequest { inputs };
                    let r = client.embed(&model.spec, model.key.as_ref(), &req).await?;
                    Ok((r.vectors, r.usage))
                })
            },
        )
    }

    fn completer(&self, model: &Model, req: &CompletionRequest) -> Arc<Batcher<String>> {
        let params = CompletionRequest {
            prompts: Vec::new(),
            ..req.clone()
        };
        let id = format!(
            "{}\n{}",
            model.spec.name,
            canonical_json(&params).unwrap_or_default()
        );
        self.batcher(
            &self.inner.completers,
            id,
            model,
            BatchKind::Completions,
            move |client, model, prompts| {
                let req = CompletionRequest {
                    prompts,
                    ..params.clone()
                };
                Box::pin(async move {
                    let r = client
                        .complete(&model.spec, model.key.as_ref(), &req)
                        .await?;
                    Ok((r.texts, r.usage))
                })
            },
        )
    }

    /// The batcher `id` names in `batchers`, started on first use: it sends each batch of
    /// inputs with `send` (given the shared client and the model), counts the call and
    /// records the batch's size (as `kind`).
    fn batcher<T, F>(
        &self,
        batchers: &Mutex<HashMap<String, Arc<Batcher<T>>>>,
        id: String,
        model: &Model,
        kind: BatchKind,
        send: F,
    ) -> Arc<Batcher<T>>
    where
        T: Clone + Send + 'static,
        F: Fn(ModelClient, Model, Vec<String>) -> BatchFuture<T> + Send + Sync + 'static,
    {
        let mut map = batchers.lock().unwrap_or_else(PoisonError::into_inner);
        let batcher = map.entry(id).or_insert_with(|| {
            let (client, model, counters, router) = (
                self.inner.client.clone(),
                model.clone(),
                Arc::clone(&self.inner.counters),
                self.inner.router.clone(),
            );
            let metrics = CallMetrics::of(&model.spec);
            let call: BatchCall<T> = Arc::new(move |inputs| {
                counters.upstream_calls.fetch_add(1, Ordering::Relaxed);
                metrics.batch(kind, inputs.len());
                let sent = send(client.clone(), model.clone(), inputs);
                let (router, spec) = (router.clone(), Arc::clone(&model.spec));
                Box::pin(async move {
                    let started = Instant::now();
                    let outcome = sent.await;
                    let usage = outcome.as_ref().map(|(_, usage)| *usage);
                    record(&router, &spec, started, None, usage);
                    outcome
                })
            });
            Arc::new(Batcher::start(self.inner.options.batch, call))
        });
        Arc::clone(batcher)
    }

    async fn permit(&self, spec: &ModelSpec) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let limit = self.inner.limits.get(&spec.name)?;
        Arc::clone(limit).acquire_owned().await.ok()
    }

    fn answer<T: HasUsage>(&self, spec: &Arc<ModelSpec>, value: T, source: Source) -> Answer<T> {
        let usage = match source {
            Source::Upstream => value.usage(),
            Source::Cache | Source::Shared => Usage::default(),
        };
        Answer {
            value,
            source,
            usage,
            cost: price(spec, usage),
            model: Arc::clone(spec),
            fallback: Vec::new(),
        }
    }

    async fn cache_get<T: DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let cache = self.inner.options.cache.as_ref()?;
        let found = cache.get(key).await;
        let value = found.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let counter = match value {
            Some(_) => &self.inner.counters.cache_hits,
            None => &self.inner.counters.cache_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        value
    }

    async fn cache_put<T: Serialize>(&self, key: &[u8], value: &T) {
        let Some(cache) = self.inner.options.cache.as_ref() else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec(value) {
            cache.put(key, &bytes).await;
        }
    }
}

/// Tells `n` how a request for `asked` ended.
fn ended<T>(n: &Notifier, asked: &ModelSpec, outcome: &Result<Answer<T>>) {
    match outcome {
        Ok(answer) => n.answered(&answer.model, answer.source, answer.usage),
        Err(e) => n.failed(asked, error_kind(e)),
    }
}

/// Settles a call's reservation: with the cost of `usage` when the call answered;
/// released (dropped) when it failed.
fn settle(reservation: Option<Reservation>, spec: &ModelSpec, usage: Option<Usage>) {
    if let (Some(reservation), Some(usage)) = (reservation, usage) {
        reservation.settle(price(spec, usage).unwrap_or(0.0));
    }
}

/// Tells the router how a call that started at `started` went. Errors that never
/// reached a provider (no failure kind) are not the model's and are not recorded.
fn record(
    router: &Router,
    spec: &ModelSpec,
    started: Instant,
    ttft: Option<std::time::Duration>,
    outcome: Result<Usage, &Error>,
) {
    let latency = started.elapsed();
    let outcome = match outcome {
        Ok(usage) => CallOutcome {
            ttft,
            ..CallOutcome::success(latency, usage, price(spec, usage))
        },
        Err(error) => match error.kind() {
            Some(kind) => CallOutcome::failure(latency, Some(kind)),
            None => return,
        },
    };
    router.record(&spec.name, &outcome);
}

/// The response cache's key: the key-format version, the provider, where it is
/// reached, the provider's model id, the endpoint, and the whole request serialized
/// canonically (fields in a fixed order, JSON Schema keys sorted). Two requests that
/// differ in any parameter differ here; two that differ only in key order do not.
/// The API key is never part of it. The gateway keys the request as it sends it
/// ([`Gateway::wire`]), so a parameter it adds (a budget's `max_tokens`) is part of
/// the key.
pub fn cache_key<R: Serialize + ?Sized>(spec: &ModelSpec, kind: &str, req: &R) -> Result<Vec<u8>> {
    let mut key = format!(
        "orc-model-cache/v{CACHE_KEY_VERSION}\n{}\n{}\n{}\n{kind}\n",
        spec.provider, spec.base_url, spec.model
    )
    .into_bytes();
    serde_json::to_writer(&mut key, req).map_err(|e| Error::Encode {
        message: e.to_string(),
    })?;
    Ok(key)
}

/// What the cache and the in-flight table are keyed by: the hash of [`cache_key`].
fn digest(key: &[u8]) -> [u8; 32] {
    *blake3::hash(key).as_bytes()
}

trait HasUsage {
    fn usage(&self) -> Usage;
}

impl HasUsage for ChatResponse {
    fn usage(&self) -> Usage {
        self.usage
    }
}

/// A one-item request: the item it carries.
trait ItemInput {
    fn input(&self) -> String;
}

impl ItemInput for EmbeddingRequest {
    fn input(&self) -> String {
        self.inputs.first().cloned().unwrap_or_default()
    }
}

impl ItemInput for CompletionRequest {
    fn input(&self) -> String {
        self.prompts.first().cloned().unwrap_or_default()
    }
}

impl From<Vector> for ItemAnswer {
    fn from(v: Vector) -> Self {
        ItemAnswer::Vector(v)
    }
}

impl From<String> for ItemAnswer {
    fn from(t: String) -> Self {
        ItemAnswer::Text(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;

    #[test]
    fn keys_differ_in_every_parameter_and_not_in_key_order() -> Result<()> {
        let spec = ModelSpec::new("m", ProviderKind::OpenAi);
        let key = |r: &ChatRequest| cache_key(&spec, "chat", r);
        let base = ChatRequest::user("hi");
        let mut a = base.clone();
        a.json_schema =
            Some(serde_json::json!({"type": "object", "properties": {"b": {}, "a": {}}}));
        let mut b = base.clone();
        b.json_schema =
            Some(serde_json::json!({"properties": {"a": {}, "b": {}}, "type": "object"}));
        assert_eq!(key(&a)?, key(&b)?);
        let variants = [
            ChatRequest {
                temperature: Some(0.5),
                ..base.clone()
            },
            ChatRequest {
                max_tokens: Some(9),
                ..base.clone()
            },
            ChatRequest {
                system: Some("s".into()),
                ..base.clone()
            },
            ChatRequest {
                stream: true,
                ..base.clone()
            },
            ChatRequest::user("hi!"),
            a,
        ];
        let mut keys = vec![key(&base)?];
        for v in &variants {
            keys.push(key(v)?);
        }
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        let mut other = spec.clone();
        other.base_url = "http://127.0.0.1:1/v1".into();
        assert_ne!(key(&base)?, cache_key(&other, "chat", &base)?);
        Ok(())
    }
}
