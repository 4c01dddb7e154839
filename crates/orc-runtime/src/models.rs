//! The model layer as the config file describes it: the gateway (registry, pooled
//! client, response cache, batching) and the resolver of `<AUTO>` tags.

use std::path::PathBuf;
use std::time::Duration;

use orc_cache::{Backend, Cache, CacheOptions};
use orc_models::{
    BatchOptions, Budget, ChatRequest, Gateway, GatewayOptions, HttpOptions, Message, ModelClient,
    ModelStats, Registry, Requirements, Router,
};
use orc_pipeline::{AutoRequest, AutoResolver};

use crate::config::{CacheSettings, Config, ConfigError};
use crate::plans;

/// The Redis a `backend: redis` cache uses when it names no `url` (the performance guide's
/// file names none).
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The model response cache the config describes; `None` when it is disabled.
pub fn model_cache(config: &Config) -> Result<Option<Cache>, ConfigError> {
    let settings = &config.performance.caching.model_cache;
    if !settings.enabled {
        return Ok(None);
    }
    open_cache(settings, "model", "performance.caching.model_cache").map(Some)
}

/// The step-result cache the config describes; `None` when it is disabled.
pub fn step_cache(config: &Config) -> Result<Option<Cache>, ConfigError> {
    let settings = &config.performance.caching.pipeline_cache;
    if !settings.enabled {
        return Ok(None);
    }
    open_cache(settings, "steps", "performance.caching.pipeline_cache").map(Some)
}

fn open_cache(
    settings: &CacheSettings,
    namespace: &str,
    field: &str,
) -> Result<Cache, ConfigError> {
    let backend = match settings.backend.as_str() {
        "memory" => Backend::Memory,
        "file" => Backend::File {
            dir: match &settings.path {
                Some(p) => p.clone(),
                None => crate::dirs::cache_dir().unwrap_or_else(|| PathBuf::from(".orc-cache")),
            },
        },
        "redis" => Backend::Redis {
            url: settings
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
        },
        other => {
            return Err(ConfigError(format!(
                "{field}.backend: unknown backend `{other}`; use memory, file or redis"
            )));
        }
    };
    let options = CacheOptions {
        backend,
        namespace: namespace.to_owned(),
        ttl: (settings.ttl > 0).then(|| Duration::from_secs(settings.ttl)),
        max_entries: settings.max_size.max(1),
        compression: settings.compression,
        ..CacheOptions::default()
    };
    Cache::open(options).map_err(|e| ConfigError(format!("{field}: {e}")))
}

/// What the config's gateway starts from besides the config.
#[derive(Debug, Default)]
pub struct Setup {
    /// Past calls per model, from the state store, for the router to start from.
    pub history: Vec<ModelStats>,
    /// Spend limits of its calls; `None` for none (see [`Gateway::with_budget`]).
    pub budget: Option<Budget>,
    /// Told of every request as it ends; `None` for nobody.
    pub requests: Option<std::sync::Arc<dyn orc_models::RequestSink>>,
}

/// The gateway for the config's models; `None` when the config lists no model.
///
/// Reads no API key: keys are read when a step's model is chosen.
pub fn gateway(config: &Config, setup: &Setup) -> Result<Option<Gateway>, ConfigError> {
    if config.models.is_empty() {
        return Ok(None);
    }
    let registry = Registry::new(config.models.clone()).map_err(|e| ConfigError(e.to_string()))?;
    let mo = &config.performance.model_optimization;
    let http = HttpOptions {
        connection_pool_size: mo.connection_pool_size,
        ..HttpOptions::default()
    };
    let client = ModelClient::new(&http).map_err(|e| ConfigError(e.to_string()))?;
    let options = GatewayOptions {
        cache: model_cache(config)?,
        batch: BatchOptions {
            batch_size: mo.batch_size,
            max_wait: Duration::from_secs_f64(mo.max_wait_time),
            max_concurrent_batches: mo.max_concurrent_batches,
        },
        router: Some(
            Router::new(
                &registry,
                config.routing.clone(),
                config.cost.clone(),
                setup.history.clone(),
            )
            .map_err(|e| ConfigError(e.to_string()))?,
        ),
        budget: setup.budget.clone(),
        requests: setup.requests.clone(),
    };
    Ok(Some(Gateway::new(registry, client, options)))
}

/// How a compile answers `<AUTO>` tags that need a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// Ask the model (through the gateway and its response cache): `orc run`,
    /// `orc validate --resolve`.
    Ask,
    /// Answer only from the response cache: `orc plan`, which makes no model call.
    CacheOnly,
    /// Ask nothing: check the tags and list those a model will answer (`orc validate`).
    Defer,
}

/// Compiles a pipeline's `bytes` (read from `path`, when it is a file) with the models of
/// `gateway`: model steps compile when models are configured, and `<AUTO>` tags are answered
/// through the gateway as `answering` says. Tags in model fields are answered by the
/// router, without a model call, in every mode.
///
/// Blocks the calling thread while an `<AUTO>` tag is answered: call it where blocking is
/// allowed (the blocking pool, or outside the runtime) with a `handle` on the runtime.
pub fn compile(
    bytes: &[u8],
    gateway: Option<&Gateway>,
    handle: &tokio::runtime::Handle,
    answering: Answering,
) -> Result<plans::Loaded, plans::LoadError> {
    let resolver = gateway.map(|gateway| ModelResolver {
        gateway,
        handle,
        answering,
    });
    let compiler = plans::Compiler::new(gateway, resolver.as_ref().map(|r| r as &dyn AutoResolver));
    plans::load_bytes(bytes, &compiler)
}

/// Resolves `<AUTO>` tags at compile time with a model call through the gateway (and
/// so through its response cache: compiling the same pipeline again costs nothing).
struct ModelResolver<'a> {
    gateway: &'a Gateway,
    handle: &'a tokio::runtime::Handle,
    answering: Answering,
}

impl AutoResolver for ModelResolver<'_> {
    fn pick_model(&self, request: &AutoRequest) -> Option<Result<orc_pipeline::ModelPick, String>> {
        Some(crate::model_pick::pick(self.gateway, request))
    }

    fn defers(&self) -> bool {
        self.answering == Answering::Defer
    }

    fn resolve(&self, request: &AutoRequest) -> Result<String, String> {
        if self.answering == Answering::Defer {
            return Err("`orc validate` asks no model; use `--resolve`".to_owned());
        }
        let registry = self.gateway.registry();
        let attribute = |name: &str| {
            request
                .attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let model = match attribute("model") {
            Some(name) => registry.resolve(name),
            None => registry.select(&Requirements::default()),
        }
        .map_err(|e| e.to_string())?;
        let req = ChatRequest {
            messages: vec![Message::user(request.instruction.clone())],
            system: Some(orc_pipeline::system_prompt(
                &request.path,
                &request.attributes,
                request.expected,
            )),
            temperature: Some(0.0),
            ..ChatRequest::default()
        };
        if self.answering == Answering::CacheOnly
            && !self
                .handle
                .block_on(self.gateway.is_cached(&model.spec, "chat", &req))
                .map_err(|e| e.to_string())?
        {
            return Err(
                "not answered yet, and `orc plan` makes no model call; run `orc validate` first"
                    .to_owned(),
            );
        }
        let answer = self
            .handle
            .block_on(self.gateway.chat(&model, &req, true))
            .map_err(|e| e.to_string())?;
        Ok(answer.value.text.trim().to_owned())
    }
}
