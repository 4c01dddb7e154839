//! A runtime on a SQLite store in a temporary directory with one priced model on the loopback
//! fake provider, and pipelines whose steps call it.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use orc_fake_provider::{Behaviour, FakeProvider};
use orc_runtime::config::Config;
use orc_runtime::{Runtime, RuntimeOptions};
use orc_server::{ServerOptions, Tokens};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// A diamond of model steps: `outline` first, `facts` and `tone` from it, `write` from both.
/// Each call waits `delay_ms` at the fake, so a follower sees the steps finish one layer at a
/// time.
pub(crate) fn diamond(delay_ms: u64) -> String {
    let ask = |id: &str, deps: &str, prompt: &str| {
        format!(
            "  - id: {id}\n    action: generate\n    parameters: {{ prompt: \"[[fake:delay_ms={delay_ms}]] {prompt}\", max_tokens: 40 }}\n{deps}"
        )
    };
    format!(
        "id: diamond\nname: Diamond\nparameters:\n  topic: tides\nsteps:\n{}{}{}{}",
        ask("outline", "", "outline {{ topic }}"),
        ask(
            "facts",
            "    dependencies: [outline]\n",
            "facts for {{ outline.result }}"
        ),
        ask(
            "tone",
            "    dependencies: [outline]\n",
            "tone of {{ topic }}"
        ),
        ask(
            "write",
            "    dependencies: [facts, tone]\n",
            "write {{ facts.result }} {{ tone.result }}"
        ),
    )
}

/// A pipeline whose one step asks for the step-result cache: run twice, the second run's step
/// is a hit.
pub(crate) const CACHED: &str = "id: cached\nname: Cached\nsteps:\n  - id: greet\n    action: echo\n    parameters: { message: hello }\n    cache: true\n";

/// The fake provider and a runtime whose one model, `m`, is priced and served by it.
pub(crate) struct Rig {
    pub(crate) fake: FakeProvider,
    pub(crate) runtime: Runtime,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn rig() -> Rig {
    let fake = FakeProvider::start(Behaviour::default()).await.unwrap();
    // The fake asks for no key; any variable that is always set serves as one.
    // The step-result cache in memory, not in the user's cache directory.
    let yaml = format!(
        "models:\n  - name: m\n    provider: openai\n    model: fake-gpt\n    base_url: {}\n    api_key_env: PATH\n    cost: {{ input_per_1k: 1.0, output_per_1k: 2.0 }}\nperformance:\n  caching:\n    pipeline_cache: {{ backend: memory }}\n",
        fake.openai_base_url()
    );
    let config: Config = serde_saphyr::from_str(&yaml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path(), config).await;
    Rig { fake, runtime, dir }
}

pub(crate) async fn runtime(dir: &Path, config: Config) -> Runtime {
    RuntimeOptions {
        config,
        state_url: format!("sqlite://{}", dir.join("state.db").display()),
        data_dir: dir.join("data"),
        queue: None,
        sandbox: None,
    }
    .build()
    .await
    .unwrap()
}

pub(crate) fn options() -> ServerOptions {
    ServerOptions {
        max_concurrent_requests: 64,
        request_timeout: Duration::from_secs(20),
        max_body_bytes: 64 << 10,
        shutdown_grace: Duration::from_secs(2),
        tokens: Tokens::default(),
        rate_limit: None,
    }
}

/// The service's router over the rig's runtime, for `oneshot` requests.
pub(crate) async fn router(rig: &Rig) -> Router {
    orc_server::app(rig.runtime.clone(), &options(), CancellationToken::new())
        .await
        .unwrap()
}

/// One request through the router: status, headers and the body (JSON when it parses).
pub(crate) async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

pub(crate) async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, body)
}

pub(crate) async fn post(app: &Router, uri: &str, body: &Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = send(app, request).await;
    (status, body)
}
