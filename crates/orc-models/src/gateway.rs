//! [`Gateway`]: every model call of a run goes through it, in this order: response
//! cache, in-flight de-duplication, batching (where the API takes a list) or the
//! model's concurrency limit, then the provider over the pooled client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::batch::{BatchCall, BatchFuture, BatchOptions, Batcher};
use crate::client::ModelClient;
use crate::error::{Error, Result};
use crate::inflight::InFlight;
use crate::registry::{Model, Registry};
use crate::request::{
    ChatRequest, ChatResponse, CompletionRequest, EmbeddingRequest, Usage, canonical_json,
};
use crate::spec::ModelSpec;
use crate::stream::ChatStream;

/// The version of the response cache's key format: bump it when the key or the
/// stored value changes shape, so old entries are never misread.
pub const CACHE_KEY_VERSION: u32 = 1;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A call to the provider made for this request.
    Upstream,
    /// The response cache.
    Cache,
    /// An identical request's call that was in flight at the same time.
    Shared,
}

/// An answer with what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// Where it came from.
    pub source: Source,
    /// Tokens this request paid for: the call's usage when it went upstream, zero when
    /// it was answered from the cache or shared another request's call.
    pub usage: Usage,
    /// USD this request paid, from the model's `cost`; `None` when the model has no
    /// price and is not local.
    pub cost: Option<f64>,
}

impl<T> Answer<T> {
    /// Whether the answer cost no upstream call of its own.
    pub fn cached(&self) -> bool {
        self.source != Source::Upstream
    }
}

/// The USD price of `usage` on `spec`: zero for local models, `None` when unpriced.
pub fn price(spec: &ModelSpec, usage: Usage) -> Option<f64> {
    if spec.local {
        return Some(0.0);
    }
    spec.cost.map(|c| {
        (usage.input_tokens as f64 * c.input_per_1k + usage.output_tokens as f64 * c.output_per_1k)
            / 1000.0
    })
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
}

#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    shared: AtomicU64,
    upstream_calls: AtomicU64,
}

/// Options of a [`Gateway`].
#[derive(Clone, Default)]
pub struct GatewayOptions {
    /// The response cache; `None` to call upstream every time.
    pub cache: Option<orc_cache::Cache>,
    /// How embeddings and completions are batched.
    pub batch: BatchOptions,
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field(
                "cache",
                &self.cache.as_ref().map(orc_cache::Cache::describe),
            )
            .field("batch", &self.batch)
            .finish()
    }
}

type Vector = Vec<f32>;

/// The one way model calls are made. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    client: ModelClient,
    options: GatewayOptions,
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
        Gateway {
            inner: Arc::new(Inner {
                registry,
                client,
                options,
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

    /// The response cache, when there is one.
    pub fn cache(&self) -> Option<&orc_cache::Cache> {
        self.inner.options.cache.as_ref()
    }

    /// The gateway's counters so far.
    pub fn stats(&self) -> GatewayStats {
        let c = &self.inner.counters;
        GatewayStats {
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            shared: c.shared.load(Ordering::Relaxed),
            upstream_calls: c.upstream_calls.load(Ordering::Relaxed),
        }
    }

    /// A chat answer: from the cache when `use_cache` and it is there, else from an
    /// identical call in flight, else from the provider (then cached, unless it failed).
    pub async fn chat(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<Answer<ChatResponse>> {
        let hash = digest(&cache_key(&model.spec, "chat", req)?);
        let key = hash;
        if use_cache && let Some(hit) = self.cache_get::<ChatResponse>(&key).await {
            return Ok(self.answer(&model.spec, hit, Source::Cache));
        }
        let (outcome, shared) = self
            .inner
            .chats
            .run(hash, || async {
                let _permit = self.permit(&model.spec).await;
                self.inner
                    .counters
                    .upstream_calls
                    .fetch_add(1, Ordering::Relaxed);
                let response = self
                    .inner
                    .client
                    .chat(&model.spec, model.key.as_ref(), req)
                    .await?;
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

    /// A chat answer as a stream of text deltas. A cached answer is replayed as a
    /// stream; a fresh one is cached once it has been read to its end.
    pub async fn chat_stream(
        &self,
        model: &Model,
        req: &ChatRequest,
        use_cache: bool,
    ) -> Result<(ChatStream, Source)> {
        let mut req = req.clone();
        req.stream = true;
        let key = digest(&cache_key(&model.spec, "chat", &req)?);
        if use_cache && let Some(hit) = self.cache_get::<ChatResponse>(&key).await {
            return Ok((ChatStream::replay(hit), Source::Cache));
        }
        self.inner
            .counters
            .upstream_calls
            .fetch_add(1, Ordering::Relaxed);
        let stream = self
            .inner
            .client
            .chat_stream(&model.spec, model.key.as_ref(), &req)
            .await?;
        let stream = match (use_cache, self.inner.options.cache.clone()) {
            (true, Some(cache)) => stream.on_complete(move |response| {
                if let Ok(value) = serde_json::to_vec(response) {
                    tokio::spawn(async move { cache.put(&key, &value).await });
                }
            }),
            _ => stream,
        };
        Ok((stream, Source::Upstream))
    }

    /// One vector per input, in order. Each input is cached on its own; the inputs
    /// not in the cache are batched with other requests' inputs for the same model.
    pub async fn embed(
        &self,
        model: &Model,
        inputs: Vec<String>,
        use_cache: bool,
    ) -> Result<Answer<Vec<Vector>>> {
        let batcher = self.embedder(model);
        let answers = futures::future::join_all(inputs.into_iter().map(|input| {
            let req = EmbeddingRequest {
                inputs: vec![input],
            };
            self.item(model, "embed", req, use_cache, &batcher)
        }))
        .await;
        self.gather(model, answers, |a| match a {
            ItemAnswer::Vector(v) => Some(v),
            ItemAnswer::Text(_) => None,
        })
    }

    /// A completion of `prompt` (the text-completions endpoint), batched with other
    /// requests' prompts for the same model and parameters.
    pub async fn complete(
        &self,
        model: &Model,
        req: CompletionRequest,
        use_cache: bool,
    ) -> Result<Answer<Vec<String>>> {
        let batcher = self.completer(model, &req);
        let answers = futures::future::join_all(req.prompts.iter().map(|prompt| {
            let one = CompletionRequest {
                prompts: vec![prompt.clone()],
                ..req.clone()
            };
            self.item(model, "complete", one, use_cache, &batcher)
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
    ) -> Result<(ItemAnswer, Source, Usage)>
    where
        T: Clone + Send + 'static + Into<ItemAnswer>,
        R: Serialize + ItemInput,
    {
        let hash = digest(&cache_key(&model.spec, kind, &req)?);
        let key = hash;
        if use_cache && let Some(hit) = self.cache_get::<ItemAnswer>(&key).await {
            return Ok((hit, Source::Cache, Usage::default()));
        }
        let (outcome, shared) = self
            .inner
            .items
            .run(hash, || async {
                let (answer, usage) = batcher.submit(req.input()).await?;
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
        })
    }

    fn embedder(&self, model: &Model) -> Arc<Batcher<Vector>> {
        let id = model.spec.name.clone();
        self.batcher(&self.inner.embedders, id, model, |client, model, inputs| {
            Box::pin(async move {
                let req = EmbeddingRequest { inputs };
                let r = client.embed(&model.spec, model.key.as_ref(), &req).await?;
                Ok((r.vectors, r.usage))
            })
        })
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
    /// inputs with `send` (given the shared client and the model) and counts the call.
    fn batcher<T, F>(
        &self,
        batchers: &Mutex<HashMap<String, Arc<Batcher<T>>>>,
        id: String,
        model: &Model,
        send: F,
    ) -> Arc<Batcher<T>>
    where
        T: Clone + Send + 'static,
        F: Fn(ModelClient, Model, Vec<String>) -> BatchFuture<T> + Send + Sync + 'static,
    {
        let mut map = batchers.lock().unwrap_or_else(PoisonError::into_inner);
        let batcher = map.entry(id).or_insert_with(|| {
            let (client, model, counters) = (
                self.inner.client.clone(),
                model.clone(),
                Arc::clone(&self.inner.counters),
            );
            let call: BatchCall<T> = Arc::new(move |inputs| {
                counters.upstream_calls.fetch_add(1, Ordering::Relaxed);
                send(client.clone(), model.clone(), inputs)
            });
            Arc::new(Batcher::start(self.inner.options.batch, call))
        });
        Arc::clone(batcher)
    }

    async fn permit(&self, spec: &ModelSpec) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let limit = self.inner.limits.get(&spec.name)?;
        Arc::clone(limit).acquire_owned().await.ok()
    }

    fn answer<T: HasUsage>(&self, spec: &ModelSpec, value: T, source: Source) -> Answer<T> {
        let usage = match source {
            Source::Upstream => value.usage(),
            Source::Cache | Source::Shared => Usage::default(),
        };
        Answer {
            value,
            source,
            usage,
            cost: price(spec, usage),
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

/// The response cache's key: the key-format version, the provider, where it is
/// reached, the provider's model id, the endpoint, and the whole request serialized
/// canonically (fields in a fixed order, JSON Schema keys sorted). Two requests that
/// differ in any parameter differ here; two that differ only in key order do not.
/// The API key is never part of it.
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
    use crate::spec::Provider;

    #[test]
    fn keys_differ_in_every_parameter_and_not_in_key_order() -> Result<()> {
        let spec = ModelSpec::new("m", Provider::OpenAi);
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
