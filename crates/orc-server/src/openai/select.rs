//! Which model answers: `auto` (the router's choice) or a configured name.

use orc_models::{ChatRequest, Error as ModelError, Gateway, Model, RequestFeatures, Requirements};

use super::error::ApiError;
use super::request::cut;

/// The model name that lets orc's router choose.
pub(crate) const AUTO: &str = "auto";

/// The most model names an unknown-model error lists.
const MAX_LISTED: usize = 50;

/// The model for a chat request: the router's choice for `auto`, else the named one.
pub(crate) fn chat_model(
    gateway: &Gateway,
    name: &str,
    req: &ChatRequest,
) -> Result<Model, ApiError> {
    if name != AUTO {
        return named(gateway, name);
    }
    let (model, decision) =
        gateway.route_model(&Requirements::default(), &RequestFeatures::of_chat(req))?;
    tracing::debug!(model = %model.spec.name, reason = %decision.reason, "auto: routed");
    Ok(model)
}

/// The configured model `name` names, with its key.
pub(crate) fn named(gateway: &Gateway, name: &str) -> Result<Model, ApiError> {
    gateway.registry().resolve(name).map_err(|e| match e {
        ModelError::UnknownModel { .. } => unknown(gateway, name),
        other => ApiError::Gateway(other),
    })
}

/// The 404 of an unknown model, listing the models that exist (and `auto`).
pub(crate) fn unknown(gateway: &Gateway, name: &str) -> ApiError {
    let models = gateway.registry().models();
    let mut known: Vec<String> = models
        .iter()
        .take(MAX_LISTED)
        .map(|m| m.name.clone())
        .collect();
    if models.len() > MAX_LISTED {
        known.push(format!("… ({} more)", models.len() - MAX_LISTED));
    }
    known.push(AUTO.to_owned());
    ApiError::UnknownModel {
        model: cut(name),
        known,
    }
}
