//! The provider fault matrix through the gateway (response cache on): each fault the fake
//! provider can inject ends in the documented retry or clear failure, counted upstream, and the
//! answer cache never keeps a broken answer: after a failure the same request is not cached
//! and goes upstream again; after a fault that a retry got through, the whole answer is cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use orc_cache::{Cache, CacheOptions};
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use orc_models::{
    ApiKey, ChatRequest, FailureKind, Gateway, GatewayOptions, HttpOptions, Model, ModelClient,
    ModelSpec, ProviderKind, Registry, RetryPolicy, Source,
};

use super::{KEY, quick_retries};

/// Attempts per call, the first included.
const ATTEMPTS: u64 = 3;

struct Rig {
    fake: FakeProvider,
    gateway: Gateway,
    model: Model,
}

impl Rig {
    /// A gateway with a response cache, short back-offs and a 500 ms request timeout.
    async fn new() -> Result<Rig> {
        let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
        let mut spec = ModelSpec::new("fake-gpt", ProviderKind::OpenAi);
        spec.base_url = fake.openai_base_url();
        let registry = Registry::new(vec![spec.clone()]).map_err(anyhow::Error::msg)?;
        let cache = Cache::open(CacheOptions {
            namespace: "faults-test".into(),
            ..CacheOptions::default()
        })?;
        let client = ModelClient::new(&HttpOptions {
            request_timeout: Some(Duration::from_millis(500)),
            ..HttpOptions::default()
        })?
        .with_retry_policy(RetryPolicy {
            max_attempts: ATTEMPTS as u32,
            ..quick_retries()
        });
        let gateway = Gateway::new(
            registry,
            client,
            GatewayOptions {
                cache: Some(cache),
                ..GatewayOptions::default()
            },
        );
        let model = Model {
            spec: Arc::new(spec),
            key: Some(ApiKey::new(KEY)),
        };
        Ok(Rig {
            fake,
            gateway,
            model,
        })
    }

    fn upstream(&self) -> u64 {
        self.fake.stats().requests_to(Endpoint::ChatCompletions)
    }

    async fn cached(&self, req: &ChatRequest) -> Result<bool> {
        Ok(self
            .gateway
            .is_cached(&self.model.spec, "chat", req)
            .await?)
    }

    /// Asks `req` (streamed when `stream`), and returns the answer's text or the error.
    async fn ask(&self, req: &ChatRequest, stream: bool) -> orc_models::Result<String> {
        if stream {
            let ignore = |_: &str| {};
            self.gateway
                .chat_streamed(&self.model, req, true, &ignore)
                .await
                .map(|a| a.value.text)
        } else {
            self.gateway
                .chat(&self.model, req, true)
                .await
                .map(|a| a.value.text)
        }
    }
}

/// A fault that a retry gets through: the answer comes after `upstream` requests, whole, and
/// is cached (asking again costs nothing).
async fn recovers(rig: &Rig, marker: &str, stream: bool, upstream: u64) -> Result<()> {
    let req = ChatRequest::user(format!("recover from {marker} [[fake:{marker}]]"));
    let before = rig.upstream();
    let text = match rig.ask(&req, stream).await {
        Ok(text) => text,
        Err(e) => bail!("{marker} (stream {stream}): no answer after retries: {e}"),
    };
    ensure!(
        text == format!("echo: recover from {marker}"),
        "{marker}: {text}"
    );
    ensure!(
        rig.upstream() - before == upstream,
        "{marker}: {} requests, not {upstream}",
        rig.upstream() - before
    );
    ensure!(
        rig.cached(&req).await?,
        "{marker}: the whole answer is cached"
    );
    let again = rig.gateway.chat(&rig.model, &req, true).await?;
    ensure!(again.source == Source::Cache && again.value.text == text);
    ensure!(
        rig.upstream() - before == upstream,
        "{marker}: the cache answered"
    );
    Ok(())
}

/// A fault that lasts: the call fails with `kind` after `upstream` requests, nothing is cached,
/// and asking again goes upstream again.
async fn fails(
    rig: &Rig,
    marker: &str,
    stream: bool,
    kind: FailureKind,
    upstream: u64,
) -> Result<()> {
    let req = ChatRequest::user(format!("fail with {marker} [[fake:{marker}]]"));
    let before = rig.upstream();
    let error = match rig.ask(&req, stream).await {
        Ok(text) => bail!("{marker} (stream {stream}): answered `{text}`"),
        Err(e) => e,
    };
    ensure!(
        error.kind() == Some(kind),
        "{marker} (stream {stream}): {:?}, not {kind:?}: {error}",
        error.kind()
    );
    ensure!(
        rig.upstream() - before == upstream,
        "{marker} (stream {stream}): {} requests, not {upstream}",
        rig.upstream() - before
    );
    ensure!(
        !rig.cached(&req).await?,
        "{marker} (stream {stream}): a broken answer was cached"
    );
    ensure!(
        rig.ask(&req, stream).await.is_err(),
        "{marker}: failed again"
    );
    ensure!(
        rig.upstream() - before == 2 * upstream,
        "{marker}: asked upstream again, not answered from the cache"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_the_whole_answer_is_cached() -> Result<()> {
    let rig = Rig::new().await?;
    for stream in [false, true] {
        // 429 waits for its Retry-After (1 s here) once.
        let started = Instant::now();
        recovers(&rig, "status=429,retry_after=1,fail_times=1", stream, 2).await?;
        ensure!(started.elapsed() >= Duration::from_millis(900), "waited");
        for marker in [
            // Without Retry-After, the client's own back-off.
            "status=429,retry_after=none,fail_times=1",
            "status=500,fail_times=2",
            "status=502,fail_times=1",
            "status=503,fail_times=1",
            "close,fail_times=1",
        ] {
            let upstream = if marker.contains("fail_times=2") {
                3
            } else {
                2
            };
            recovers(&rig, marker, stream, upstream).await?;
        }
    }
    // A plain answer cut short is read again whole.
    recovers(&rig, "truncate,fail_times=1", false, 2).await?;
    recovers(&rig, "truncate=clean,fail_times=1", false, 2).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lasting_faults_fail_clearly_and_nothing_broken_is_cached() -> Result<()> {
    let rig = Rig::new().await?;
    for stream in [false, true] {
        // Retryable: every attempt is made.
        fails(
            &rig,
            "status=429,retry_after=none",
            stream,
            FailureKind::RateLimited,
            ATTEMPTS,
        )
        .await?;
        fails(&rig, "status=503", stream, FailureKind::Server, ATTEMPTS).await?;
        fails(&rig, "status=500", stream, FailureKind::Server, ATTEMPTS).await?;
        fails(&rig, "close", stream, FailureKind::Connection, ATTEMPTS).await?;
        fails(
            &rig,
            "delay_ms=2000",
            stream,
            FailureKind::Timeout,
            ATTEMPTS,
        )
        .await?;
        // A stream cut short has handed part of its answer on already: it is not read
        // again (the caller would get the text twice); a plain answer is.
        let cut = if stream { 1 } else { ATTEMPTS };
        fails(&rig, "truncate", stream, FailureKind::Truncated, cut).await?;
        fails(&rig, "truncate=clean", stream, FailureKind::Truncated, cut).await?;
        // Not retryable: one attempt.
        fails(&rig, "garbage", stream, FailureKind::InvalidResponse, 1).await?;
        fails(&rig, "status=400", stream, FailureKind::Rejected, 1).await?;
    }
    // A stream that stalls mid-way runs into the request timeout; like a cut stream, it is
    // not asked again.
    fails(&rig, "chunk_delay_ms=2000", true, FailureKind::Timeout, 1).await?;
    // A Retry-After beyond what the policy waits for is not waited for: one attempt.
    fails(
        &rig,
        "status=429,retry_after=3600",
        false,
        FailureKind::RateLimited,
        1,
    )
    .await?;
    Ok(())
}
