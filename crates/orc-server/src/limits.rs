//! The bound on requests in progress: beyond `max_concurrent_requests`, 503 with `Retry-After`
//! at once, never a queue.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// Takes a slot for the request until its response is ready (a stream's body is not counted).
pub(crate) async fn admit(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match Arc::clone(&slots).try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; try again shortly",
        )
        .retry_after(1)
        .into_response(),
    }
}
