//! The OpenAI-compatible endpoints.

use axum::Router;

/// The OpenAI-compatible routes over `gateway` (`None` when no model is configured).
pub fn routes(gateway: Option<orc_models::Gateway>) -> Router {
    let _ = gateway;
    Router::new()
}
