//! `/healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::problem::Problem;

/// The process is up.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// How long `/readyz` waits for each thing it checks.
const PROBE: Duration = Duration::from_secs(2);

/// The state store and every configured cache answer (each within two seconds): 200 with what
/// was checked, else 503 naming what did not answer.
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    let filter = orc_state::RunFilter {
        limit: 1,
        ..orc_state::RunFilter::default()
    };
    let store = app.runtime.store().list_runs(&filter);
    let store = match tokio::time::timeout(PROBE, store).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("state store: {e}")),
        Err(_) => Err("state store: no answer within 2 s".to_owned()),
    };
    let caches = app.runtime.caches();
    let checks = caches.iter().map(|cache| async move {
        match tokio::time::timeout(PROBE, cache.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cache {}: {e}", cache.describe())),
            Err(_) => Err(format!("cache {}: no answer within 2 s", cache.describe())),
        }
    });
    let cache_results = futures::future::join_all(checks).await;
    let failures: Vec<String> = std::iter::once(store)
        .chain(cache_results)
        .filter_map(Result::err)
        .collect();
    if !failures.is_empty() {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            failures.join("; "),
        )
        .into_response();
    }
    let caches: Vec<String> = caches.iter().map(orc_cache::Cache::describe).collect();
    Json(json!({ "status": "ready", "state_store": "ok", "caches": caches })).into_response()
}

/// The process's metrics in Prometheus's text format.
pub(crate) async fn metrics() -> Response {
    match orc_telemetry::Exporter::global() {
        Ok(exporter) => (
            [(header::CONTENT_TYPE, orc_telemetry::CONTENT_TYPE)],
            exporter.render(),
        )
            .into_response(),
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics",
            format!("metrics: {e}"),
        )
        .into_response(),
    }
}
