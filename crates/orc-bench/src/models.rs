//! The model workloads against the loopback fake provider: chat calls posted directly with a
//! plain HTTP client, the same calls through orc's gateway, and response-cache hits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use orc_cache::{Cache, CacheOptions};
use orc_models::{
    ChatRequest, Gateway, GatewayOptions, HttpOptions, Model, ModelClient, ModelSpec, ProviderKind,
    Registry, Source,
};

use crate::load::closed_loop;

/// The model id the fake provider is asked for.
pub(crate) const MODEL: &str = "fake-gpt";

/// A direct client and a gateway against one fake provider.
#[derive(Debug)]
pub(crate) struct Models {
    url: String,
    direct: reqwest::Client,
    gateway: Gateway,
    model: Model,
    next_prompt: AtomicU64,
}

impl Models {
    /// Clients of the fake provider at `base_url` (`http://127.0.0.1:PORT/v1`).
    pub(crate) fn new(base_url: &str) -> Result<Models, String> {
        let mut spec = ModelSpec::new(MODEL, ProviderKind::OpenAi);
        spec.base_url = base_url.to_owned();
        let registry = Registry::new(vec![spec.clone()]).map_err(|e| e.to_string())?;
        let http = HttpOptions::default();
        let client = ModelClient::new(&http).map_err(|e| e.to_string())?;
        let cache = Cache::open(CacheOptions {
            namespace: "bench".into(),
            max_entries: 1_000_000,
            ..CacheOptions::default()
        })
        .map_err(|e| e.to_string())?;
        let gateway = Gateway::new(
            registry,
            client,
            GatewayOptions {
                cache: Some(cache),
                ..GatewayOptions::default()
            },
        );
        // The same pool size, timeouts and no-delay as orc's own client.
        // reqwest takes its TLS crypto from the process default (the workspace builds it with
        // `rustls-no-provider`); installing it again is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let direct = reqwest::Client::builder()
            .connect_timeout(http.connect_timeout)
            .pool_max_idle_per_host(http.connection_pool_size)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Models {
            url: format!("{base_url}/chat/completions"),
            direct,
            gateway,
            model: Model {
                spec: Arc::new(spec),
                key: None,
            },
            next_prompt: AtomicU64::new(0),
        })
    }

    /// A prompt no call has used, always of the same length.
    fn fresh_prompt(&self) -> String {
        let n = self.next_prompt.fetch_add(1, Ordering::Relaxed);
        format!("benchmark question number {n:010}, answer briefly")
    }

    /// One chat call posted straight to the provider.
    async fn direct_call(&self) -> Result<(), String> {
        let body = serde_json::json!({
            "model": MODEL,
            "messages": [{ "role": "user", "content": self.fresh_prompt() }],
        });
        let response = self
            .direct
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("direct call: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("direct call: {e}"))?;
        if !status.is_success() || body.is_empty() {
            return Err(format!("direct call: {status}"));
        }
        Ok(())
    }

    /// One chat call through the gateway with a fresh prompt: a cache miss, looked up and
    /// stored.
    async fn gateway_call(&self) -> Result<(), String> {
        let req = ChatRequest::user(self.fresh_prompt());
        let answer = self
            .gateway
            .chat(&self.model, &req, true)
            .await
            .map_err(|e| format!("gateway call: {e}"))?;
        if answer.source != Source::Upstream {
            return Err(format!(
                "gateway call: a fresh prompt came from {:?}",
                answer.source
            ));
        }
        Ok(())
    }

    /// `calls` chat calls, `concurrency` at a time, straight to the provider or
    /// `through_gateway`: seconds.
    pub(crate) async fn calls(
        self: &Arc<Self>,
        through_gateway: bool,
        calls: usize,
        concurrency: usize,
    ) -> Result<f64, String> {
        let this = Arc::clone(self);
        closed_loop(concurrency, calls, move |_| {
            let this = Arc::clone(&this);
            async move {
                match through_gateway {
                    true => this.gateway_call().await,
                    false => this.direct_call().await,
                }
            }
        })
        .await
    }

    /// `hits` gateway calls one after another of a request already in the cache: seconds.
    pub(crate) async fn cache_hits(&self, hits: usize) -> Result<f64, String> {
        let req = ChatRequest::user("benchmark question answered from the cache");
        let fail = |e: orc_models::Error| format!("cache hit: {e}");
        self.gateway
            .chat(&self.model, &req, true)
            .await
            .map_err(fail)?;
        let t0 = Instant::now();
        for _ in 0..hits {
            let answer = self
                .gateway
                .chat(&self.model, &req, true)
                .await
                .map_err(fail)?;
            if answer.source != Source::Cache {
                return Err(format!("cache hit: answered from {:?}", answer.source));
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    }
}
