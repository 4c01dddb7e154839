//! `GET /v1/models` and `GET /v1/models/{id}`: the configured models, and `auto`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use orc_models::ModelSpec;

use super::error::ApiError;
use super::wire::{List, WireModel};
use super::{AppState, select};

/// Every configured model, in config order, then `auto`.
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<List<WireModel>>, ApiError> {
    let gateway = state.gateway()?;
    let mut data: Vec<WireModel> = gateway
        .registry()
        .models()
        .iter()
        .map(|spec| model(spec, state.created))
        .collect();
    data.push(auto(state.created));
    Ok(Json(List {
        object: "list",
        data,
    }))
}

/// One model, by any name the registry accepts; its `id` is the configured name.
pub(super) async fn retrieve(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WireModel>, ApiError> {
    let gateway = state.gateway()?;
    let Path(id) = id.map_err(|e| ApiError::invalid("id", e.body_text()))?;
    if id == select::AUTO {
        return Ok(Json(auto(state.created)));
    }
    let spec = gateway.registry().find(&id).map_err(|e| match e {
        orc_models::Error::UnknownModel { .. } => select::unknown(gateway, &id),
        other => ApiError::Gateway(other),
    })?;
    Ok(Json(model(&spec, state.created)))
}

fn model(spec: &ModelSpec, created: u64) -> WireModel {
    WireModel {
        id: spec.name.clone(),
        object: "model",
        created,
        owned_by: spec.provider.as_str().to_owned(),
    }
}

fn auto(created: u64) -> WireModel {
    WireModel {
        id: select::AUTO.to_owned(),
        object: "model",
        created,
        owned_by: "orc".to_owned(),
    }
}
