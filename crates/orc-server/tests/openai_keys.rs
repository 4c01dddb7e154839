//! No API key reaches an OpenAI-compatible route's error body or log, even when the
//! provider quotes it back; a provider refusing orc's own key is a 502, not the
//! client's 401. Its own test binary: it sets the key variables before any thread runs.

#![allow(unsafe_code)] // std::env::set_var, before the runtime starts (see below)

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use orc_fake_provider::{Behaviour, FakeProvider};
use orc_models::{
    Gateway, GatewayOptions, HttpOptions, ModelClient, ModelSpec, ProviderKind, Registry,
    RetryPolicy,
};
use orc_server::openai::routes;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const KEY: &str = "sk-orc-server-secret-4b1d";
const KEY_VAR: &str = "ORC_SERVER_TEST_OPENAI_KEY";
const WRONG_KEY: &str = "sk-orc-server-wrong-9e2c";
const WRONG_KEY_VAR: &str = "ORC_SERVER_TEST_WRONG_KEY";

/// Everything the routes log, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[test]
fn keys_never_reach_error_bodies_or_logs() -> Result<()> {
    // SAFETY: the only test of this binary, and no other thread of it has started yet:
    // nothing reads the environment while it is written.
    unsafe {
        std::env::set_var(KEY_VAR, KEY);
        std::env::set_var(WRONG_KEY_VAR, WRONG_KEY);
    }
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(&logs))
}

async fn run(logs: &Logs) -> Result<()> {
    let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
    let spec = |name: &str, var: &str| {
        let mut spec = ModelSpec::new(name, ProviderKind::OpenAi);
        spec.model = "fake-gpt".to_owned();
        spec.base_url = fake.openai_base_url();
        spec.api_key_env = Some(var.to_owned());
        spec
    };
    let registry = Registry::new(vec![spec("keyed", KEY_VAR), spec("wrong", WRONG_KEY_VAR)])
        .map_err(anyhow::Error::msg)?;
    let client = ModelClient::new(&HttpOptions::default())?.with_retry_policy(RetryPolicy::none());
    let gateway = Gateway::new(registry, client, GatewayOptions::default());
    let app = routes(Some(gateway));

    // The key works: a plain answer.
    let (status, body) = chat(&app, "keyed", "hello", false).await?;
    ensure!(status == StatusCode::OK, "{body}");

    // The provider quotes the key back in its error, plain and when a stream opens.
    for stream in [false, true] {
        let (status, body) = chat(&app, "keyed", &format!("[[fake:leak={KEY}]]"), stream).await?;
        ensure!(status == StatusCode::BAD_REQUEST, "{status}: {body}");
        ensure!(body.contains("leak=***"), "{body}");
        ensure!(!body.contains(KEY), "the key leaked: {body}");
    }

    // The key in the prompt of a failing call.
    let (status, body) = chat(&app, "keyed", &format!("{KEY} [[fake:status=500]]"), false).await?;
    ensure!(status == StatusCode::BAD_GATEWAY, "{status}: {body}");
    ensure!(!body.contains(KEY), "the key leaked: {body}");

    // The provider refuses orc's key: orc's configuration, a 502, and no key shown.
    let (status, body) = chat(&app, "wrong", "hi", false).await?;
    ensure!(status == StatusCode::BAD_GATEWAY, "{status}: {body}");
    ensure!(body.contains("HTTP 401"), "{body}");
    ensure!(!body.contains(WRONG_KEY), "the key leaked: {body}");

    let logs = logs.text();
    ensure!(
        logs.contains("leak=***"),
        "the failures were not logged:\n{logs}"
    );
    ensure!(!logs.contains(KEY), "the key reached the logs:\n{logs}");
    ensure!(
        !logs.contains(WRONG_KEY),
        "the key reached the logs:\n{logs}"
    );
    Ok(())
}

async fn chat(app: &Router, model: &str, text: &str, stream: bool) -> Result<(StatusCode, String)> {
    let body: Value = json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    });
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .context("reading the body")?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
