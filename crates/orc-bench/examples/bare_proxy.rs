//! The least an HTTP proxy can do, as a reference for `orc serve`'s chat route: forward each
//! `POST /v1/chat/completions` body to the upstream unchanged over a pooled connection and
//! return its answer. No parsing, cache, routing, metrics or records. Comparing `orc serve`
//! with this (and both with calling the upstream directly) separates what any extra HTTP hop
//! costs on this machine from what orc adds.
//!
//! ```text
//! cargo run --release -p orc-bench --example bare_proxy -- 127.0.0.1:18070 http://127.0.0.1:18090
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let answer = up
        .client
        .post(&up.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    match answer.bytes().await {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
#[allow(clippy::print_stderr)] // the one line a benchmark waits for
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(bind), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: bare_proxy BIND_ADDR UPSTREAM_BASE_URL".into());
    };
    let bind: SocketAddr = bind.parse()?;
    // reqwest takes its TLS crypto from the process default (the workspace builds it with
    // `rustls-no-provider`); installing it again is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()?;
    let up = Upstream {
        client,
        url: format!("{}/v1/chat/completions", upstream.trim_end_matches('/')),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(up);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
