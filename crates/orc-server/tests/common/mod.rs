//! The rig of the OpenAI gateway's tests: the loopback fake provider behind a real
//! `orc_models::Gateway` with a memory response cache.

#![allow(dead_code)] // each test binary uses its own part of the rig

use std::time::Duration;

use anyhow::Result;
use orc_cache::{Cache, CacheOptions};
use orc_fake_provider::{Behaviour, FakeProvider};
use orc_models::{
    Budget, Cost, CostConfig, Gateway, GatewayOptions, HttpOptions, ModelClient, ModelSpec,
    ProviderKind, Registry, RetryPolicy, Router, RoutingConfig,
};

/// The fake provider and a gateway in front of it.
pub(crate) struct Rig {
    pub(crate) fake: FakeProvider,
    pub(crate) gateway: Gateway,
}

/// How the rig's gateway is built.
#[derive(Default)]
pub(crate) struct RigOptions {
    /// The model client's whole-call timeout (default: 30 s).
    pub(crate) request_timeout: Option<Duration>,
    /// A budget every call is reserved against.
    pub(crate) budget: Option<Budget>,
    /// The fake's behaviour (default: [`Behaviour::default`]).
    pub(crate) behaviour: Option<Behaviour>,
    /// Explicit fallback chains, by model name.
    pub(crate) fallbacks: Vec<(&'static str, Vec<&'static str>)>,
}

/// Three models on the fake: `fake-gpt` (priced), `small` (provider id `fake-mini`,
/// so `fake-mini` and `openai:small` are aliases of it) and `embedder`.
pub(crate) async fn rig(options: RigOptions) -> Result<Rig> {
    let fake = FakeProvider::start(options.behaviour.unwrap_or_default()).await?;
    let spec = |name: &str, model: &str| {
        let mut spec = ModelSpec::new(name, ProviderKind::OpenAi);
        spec.model = model.to_owned();
        spec.base_url = fake.openai_base_url();
        spec.cost = Some(Cost {
            input_per_1k: 1.0,
            output_per_1k: 2.0,
        });
        spec
    };
    let registry = Registry::new(vec![
        spec("fake-gpt", "fake-gpt"),
        spec("small", "fake-mini"),
        spec("embedder", "fake-embedding"),
    ])
    .map_err(anyhow::Error::msg)?;
    let cache = Cache::open(CacheOptions {
        namespace: "openai-routes-test".into(),
        ..CacheOptions::default()
    })?;
    // No retries, so a fault marker's status comes straight through.
    let client = ModelClient::new(&HttpOptions {
        request_timeout: Some(options.request_timeout.unwrap_or(Duration::from_secs(30))),
        ..HttpOptions::default()
    })?
    .with_retry_policy(RetryPolicy::none());
    let routing = RoutingConfig {
        fallbacks: options
            .fallbacks
            .iter()
            .map(|(from, to)| {
                let chain = to.iter().map(|m| (*m).to_owned()).collect();
                ((*from).to_owned(), chain)
            })
            .collect(),
        ..RoutingConfig::default()
    };
    let router = Router::new(&registry, routing, CostConfig::default(), Vec::new())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = Gateway::new(
        registry,
        client,
        GatewayOptions {
            cache: Some(cache),
            budget: options.budget,
            router: Some(router),
            ..GatewayOptions::default()
        },
    );
    Ok(Rig { fake, gateway })
}
