//! Registered pipelines: `PUT/GET/DELETE /v1/pipelines/{id}`, `GET /v1/pipelines`, and
//! `POST /v1/pipelines/{id}/validate` and `/plan`. A registered pipeline is compiled when it is
//! put (an invalid one is refused with the compiler's findings), kept in the state store, and
//! run with `POST /v1/runs {"pipeline_id": …}` without being compiled again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orc_runtime::Source;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::problem::Problem;

fn row_json(row: &orc_state::PipelineRow) -> Value {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    };
    json!({
        "id": row.id,
        "pipeline_id": row.pipeline_id,
        "name": row.name,
        "steps": row.steps,
        "version": row.version,
        "hash": row.hash,
        "created_at": secs(row.created_at),
        "updated_at": secs(row.updated_at),
    })
}

/// `PUT /v1/pipelines/{id}`: the body is the pipeline's YAML (any content type but JSON), or
/// `{"pipeline": YAML}` as JSON. 201 when new, 200 when replaced (or unchanged).
pub(crate) async fn put(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if json {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            pipeline: String,
        }
        serde_json::from_slice::<Body>(&body)
            .map_err(|e| Problem::bad_request(format!("the body: {e}")))?
            .pipeline
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| Problem::bad_request("the pipeline is not UTF-8 text"))?
    };
    let existed = app
        .runtime
        .store()
        .pipeline(&id)
        .await
        .map_err(Problem::from)?
        .is_some();
    let (row, loaded) = app.runtime.register(&id, text).await?;
    let mut doc = row_json(&row);
    if let Some(object) = doc.as_object_mut() {
        object.insert(
            "findings".to_owned(),
            orc_runtime::plans::findings(&loaded.compiled.findings, &id),
        );
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(doc)).into_response())
}

/// `GET /v1/pipelines/{id}`: the record and the text.
pub(crate) async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let p = app
        .runtime
        .store()
        .pipeline(&id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no pipeline `{id}` is registered")))?;
    let mut doc = row_json(&p.row);
    if let Some(object) = doc.as_object_mut() {
        object.insert("pipeline".to_owned(), Value::String(p.text));
    }
    Ok(Json(doc).into_response())
}

/// `DELETE /v1/pipelines/{id}`: 204, or 404 when there was none. Runs of it keep their text.
pub(crate) async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    match app.runtime.store().delete_pipeline(&id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Err(Problem::not_found(format!(
            "no pipeline `{id}` is registered"
        ))),
        Err(e) => Err(Problem::from(e)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
}

/// `GET /v1/pipelines?limit=`: by id.
pub(crate) async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let rows = app
        .runtime
        .store()
        .list_pipelines(q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(Problem::from)?;
    let list: Vec<Value> = rows.iter().map(row_json).collect();
    Ok(Json(json!({ "pipelines": list })).into_response())
}

/// `POST /v1/pipelines/{id}/validate`: what `orc validate --json` prints of it.
pub(crate) async fn validate(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let loaded = app
        .runtime
        .compile(&Source::Registered(id.clone()), false)
        .await?;
    let plan = &loaded.compiled.plan;
    Ok(Json(json!({
        "pipeline_file": id,
        "valid": true,
        "pipeline": { "id": plan.id, "name": plan.name, "version": plan.version, "steps": plan.step_count() },
        "findings": orc_runtime::plans::findings(&loaded.compiled.findings, &id),
    }))
    .into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanBody {
    #[serde(default)]
    inputs: Map<String, Value>,
}

/// `POST /v1/pipelines/{id}/plan` (body `{"inputs": {…}}`, optional): what `orc plan --json`
/// prints: each model step's model, estimated tokens and cost, and whether its answer is
/// cached. Makes no model call.
pub(crate) async fn plan(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<PlanBody>>,
) -> Result<Response, Problem> {
    let inputs = body.map(|Json(b)| b.inputs).unwrap_or_default();
    let loaded = app
        .runtime
        .compile(&Source::Registered(id.clone()), true)
        .await?;
    let rows = match app.runtime.gateway() {
        Some(g) => orc_engine::plan_models(&loaded.compiled, g, &inputs).await,
        None => Vec::new(),
    };
    Ok(Json(orc_runtime::plans::plan_document(
        &loaded.compiled.plan.id,
        &rows,
    ))
    .into_response())
}
