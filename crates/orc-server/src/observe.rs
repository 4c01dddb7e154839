//! `orc_http_requests_total{route,status}` and `orc_http_request_duration_seconds{route}`, with
//! the route as it is declared (`/v1/runs/{id}`), so labels stay bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};
use orc_telemetry::names::{self, label};

pub(crate) async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    histogram!(names::HTTP_REQUEST_DURATION_SECONDS, label::ROUTE => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!(
        names::HTTP_REQUESTS_TOTAL,
        label::ROUTE => route,
        label::STATUS => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
