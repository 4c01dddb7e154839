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

/// The state store answers (within two seconds).
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    let filter = orc_state::RunFilter {
        limit: 1,
        ..orc_state::RunFilter::default()
    };
    let probe = app.runtime.store().list_runs(&filter);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Json(json!({ "status": "ready", "state_store": "ok" })).into_response(),
        Ok(Err(e)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("state store: {e}"),
        )
        .into_response(),
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "state store: no answer within 2 s",
        )
        .into_response(),
    }
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
