//! `orc serve`: an HTTP service over orc's [`Runtime`](orc_runtime::Runtime).
//!
//! - the runs API (`/v1/runs…`): start a run from a pipeline's text, wait for it or follow its
//!   events as Server-Sent Events, list, cancel and resume runs;
//! - [`openai`]: an OpenAI-compatible gateway (`/v1/chat/completions`, `/v1/embeddings`,
//!   `/v1/models`) served through orc's model gateway: response cache, in-flight
//!   de-duplication, batching, routing, fallbacks, budgets and metrics;
//! - the dashboard's data and the daily report (`/v1/stats/series`, `/v1/stats/models`,
//!   `/v1/reports/daily`);
//! - operations: `/healthz`, `/readyz`, `/metrics`;
//! - the dashboard at `/` (its files embedded) and the run graph it draws
//!   (`/v1/runs/{id}/graph`).
//!
//! Every request is bounded: at most `max_concurrent_requests` in progress (503 with
//! `Retry-After` beyond, never a queue), bodies up to `max_body_bytes` (413 beyond), and
//! `request_timeout` each. Bearer tokens are required whenever the service listens beyond
//! loopback.

mod auth;
mod dashboard;
mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod graph;
mod limits;
mod observe;
pub mod openai;
mod ops;
mod pipelines;
mod problem;
mod restart;
mod runs;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use orc_runtime::Runtime;
use orc_runtime::config::ServerSettings;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use auth::Tokens;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tokens cannot be read, or none is configured for a non-loopback address.
    #[error("{0}")]
    Auth(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Requests in progress at once, at most.
    pub max_concurrent_requests: usize,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests and runs get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The bearer tokens; empty for none (loopback only).
    pub tokens: Tokens,
    /// Requests per second and burst per client (per token); `None` for no limit.
    pub rate_limit: Option<(f64, u32)>,
}

impl ServerOptions {
    /// The options the config's `server:` section describes, with its tokens read.
    pub fn from_settings(settings: &ServerSettings) -> Result<Self, Error> {
        Ok(ServerOptions {
            max_concurrent_requests: settings.max_concurrent_requests.max(1),
            request_timeout: Duration::from_secs_f64(settings.request_timeout),
            max_body_bytes: usize::try_from(settings.max_body()).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs_f64(settings.shutdown_grace),
            tokens: Tokens::load(&settings.auth)?,
            rate_limit: settings.rate_limit.map(|r| {
                let burst = r.burst.unwrap_or_else(|| {
                    // One second's worth of requests, at least one; the config caps the rate.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let second = r.per_second.ceil().clamp(1.0, 1e6) as u32;
                    second
                });
                (r.per_second, burst)
            }),
        })
    }

    /// Refuses an address beyond loopback without tokens.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), Error> {
        if !addr.ip().is_loopback() && self.tokens.is_empty() {
            return Err(Error::Auth(format!(
                "{addr} is not a loopback address: configure bearer tokens (server.auth.token_env or server.auth.token_file) to listen on it"
            )));
        }
        Ok(())
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    runtime: Runtime,
    /// How long `wait` waits for a run.
    wait_limit: Duration,
    /// Cancelled on shutdown: event streams end.
    shutdown: CancellationToken,
}

/// The service's routes and layers over `runtime`. `shutdown` ends the event streams when it is
/// cancelled (so that a graceful shutdown is not held open by followers). The OpenAI-compatible
/// requests spend against `cost.budget_per_hour`, counted from the store's recent spend.
pub async fn app(
    runtime: Runtime,
    options: &ServerOptions,
    shutdown: CancellationToken,
) -> Result<Router, orc_runtime::Error> {
    let gateway = runtime.budgeted_gateway(None).await?;
    let state = AppState {
        runtime: runtime.clone(),
        wait_limit: runs::wait_limit(options.request_timeout),
        shutdown,
    };
    let mut api = Router::new()
        .route("/v1/runs", post(runs::start).get(runs::list))
        .route("/v1/runs/{id}", get(runs::show))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/runs/{id}/events", get(events::follow))
        .route("/v1/pipelines", get(pipelines::list))
        .route(
            "/v1/pipelines/{id}",
            get(pipelines::get)
                .put(pipelines::put)
                .delete(pipelines::delete),
        )
        .route("/v1/pipelines/{id}/validate", post(pipelines::validate))
        .route("/v1/pipelines/{id}/plan", post(pipelines::plan))
        .route("/metrics", get(ops::metrics))
        .merge(stats::routes())
        .with_state(state.clone())
        .merge(openai::routes(gateway))
        .merge(graph::routes(runtime.clone()));
    if let Some((per_second, burst)) = options.rate_limit {
        api = api.layer(axum::middleware::from_fn_with_state(
            Arc::new(limits::Rate::new(per_second, burst)),
            limits::rate,
        ));
    }
    // Auth runs first: it names the client the rate limit counts.
    let api = api.layer(axum::middleware::from_fn_with_state(
        options.tokens.clone(),
        auth::require,
    ));
    let router = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .with_state(state)
        .merge(dashboard::routes())
        .merge(api)
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::extract::DefaultBodyLimit::max(options.max_body_bytes))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    options.request_timeout,
                )),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Semaphore::new(options.max_concurrent_requests)),
            limits::admit,
        ))
        .layer(axum::middleware::from_fn(observe::record))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    Ok(router)
}

/// Serves `runtime` on `listener` until `shutdown` is cancelled; then stops accepting, lets
/// in-flight requests finish (up to the grace period), stops the runs in progress (each ends
/// interrupted, checkpointed and resumable) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    runtime: Runtime,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    restart::resume_stopped(&runtime).await;
    let recording = CancellationToken::new();
    let record = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(restart::keep(
        runtime.clone(),
        recording.clone(),
    )));
    let streams = CancellationToken::new();
    let router = app(runtime.clone(), &options, streams.clone())
        .await
        .map_err(std::io::Error::other)?;
    let stop = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        stop.cancelled().await;
        // Followers of a run would keep their connections open for as long as it lasts.
        streams.cancel();
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(options.shutdown_grace).await;
        } => {
            tracing::warn!("requests still in progress after the grace period; closing them");
            Ok(())
        }
    };
    // The record of runs in progress stops before the exact list of stopped runs replaces it.
    recording.cancel();
    let _ = record.await;
    let stopped = runtime.shutdown(options.shutdown_grace).await;
    restart::remember(&runtime, &stopped).await;
    result
}
