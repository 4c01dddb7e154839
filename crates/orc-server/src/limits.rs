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

/// A per-client rate limit: a token bucket per bearer token (one bucket for all when the
/// service has no tokens), refilled at `per_second` up to `burst`.
#[derive(Debug)]
pub(crate) struct Rate {
    per_second: f64,
    burst: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<Option<[u8; 32]>, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Rate {
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        Rate {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: std::sync::Mutex::default(),
        }
    }

    /// Takes one request from `client`'s bucket; `Err(seconds)` until the next one is allowed.
    fn take(&self, client: Option<[u8; 32]>) -> Result<(), f64> {
        let now = std::time::Instant::now();
        // Buckets are few (one per configured token), so one lock held for a moment serves.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err((1.0 - refilled) / self.per_second)
        }
    }
}

/// 429 with `Retry-After` for a client over its rate; runs after auth, which names the client.
pub(crate) async fn rate(State(rate): State<Arc<Rate>>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<crate::auth::Client>()
        .and_then(|c| c.0)
        .map(|h| *h.as_bytes());
    match rate.take(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "over this client's rate of {} requests per second",
                rate.per_second
            ),
        )
        // Whole seconds, at least one.
        .retry_after(wait.ceil().max(1.0) as u64)
        .into_response(),
    }
}
