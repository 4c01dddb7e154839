//! The runs API: start (`POST /v1/runs`), read, list, cancel and resume runs.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use orc_runtime::{Resumed, RunHandle, Source, StartOptions};
use orc_state::{RunCursor, RunFilter, RunState};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::problem::Problem;

/// The body of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRun {
    /// The pipeline's YAML text...
    #[serde(default)]
    pipeline: Option<String>,
    /// ...or the id of a registered pipeline.
    #[serde(default)]
    pipeline_id: Option<String>,
    /// What diagnostics call it (default `pipeline.yaml`).
    #[serde(default)]
    name: Option<String>,
    /// Input values.
    #[serde(default)]
    inputs: Map<String, Value>,
    /// The run's id (default: generated, or the `Idempotency-Key`).
    #[serde(default)]
    run_id: Option<String>,
    /// Most USD the run may spend on models.
    #[serde(default)]
    budget: Option<f64>,
    /// Answer when the run ends (within the request timeout) with its result document.
    #[serde(default)]
    wait: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct WaitQuery {
    #[serde(default)]
    wait: Option<bool>,
}

/// What a `POST /v1/runs` asks for, read from its body, query and `Idempotency-Key` before
/// anything is looked up or started.
#[derive(Debug)]
pub(crate) struct Asked {
    /// The run's id: the body's `run_id`, else the `Idempotency-Key`.
    pub(crate) run_id: Option<String>,
    /// The `Idempotency-Key`.
    pub(crate) key: Option<String>,
    /// Whether to answer when the run ends (the query's `wait`, else the body's).
    pub(crate) wait: bool,
    pub(crate) body: NewRun,
}

impl Asked {
    /// Reads and checks the request: a body that is not a [`NewRun`] is 413 (over the limit),
    /// 415 (not JSON) or 400, as are a key that is not text and a run id that is no id.
    pub(crate) fn read(
        query: &WaitQuery,
        headers: &HeaderMap,
        body: Result<Json<NewRun>, JsonRejection>,
    ) -> Result<Asked, Problem> {
        let Json(body) =
            body.map_err(|e| Problem::new(e.status(), "invalid_request", e.body_text()))?;
        let key = match headers.get("idempotency-key") {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| Problem::bad_request("Idempotency-Key: not printable text"))?
                    .to_owned(),
            ),
            None => None,
        };
        let run_id = body.run_id.clone().or_else(|| key.clone());
        if let Some(id) = &run_id {
            check_run_id(id).map_err(Problem::bad_request)?;
        }
        let wait = query.wait.or(body.wait).unwrap_or(false);
        Ok(Asked {
            run_id,
            key,
            wait,
            body,
        })
    }

    /// The pipeline to run: its text or a registered pipeline's id, exactly one (else 422).
    pub(crate) fn source(&mut self) -> Result<Source, Problem> {
        match (self.body.pipeline.take(), self.body.pipeline_id.take()) {
            (Some(text), None) => Ok(Source::Text {
                name: self
                    .body
                    .name
                    .take()
                    .unwrap_or_else(|| "pipeline.yaml".to_owned()),
                text,
            }),
            (None, Some(id)) => Ok(Source::Registered(id)),
            _ => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "give `pipeline` (the YAML text) or `pipeline_id` (a registered pipeline), one of them",
            )),
        }
    }

    /// The most USD the run may spend on models.
    pub(crate) fn budget(&self) -> Option<f64> {
        self.body.budget
    }

    /// The run's input values.
    pub(crate) fn take_inputs(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.body.inputs)
    }
}

/// `POST /v1/runs`: 202 with the run's id and links; with `wait`, its result document when it
/// ends within the request timeout (200), else 202. An `Idempotency-Key` names the run: posting
/// again with the same key answers with that run instead of starting another.
pub(crate) async fn start(
    State(app): State<AppState>,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
    body: Result<Json<NewRun>, JsonRejection>,
) -> Result<Response, Problem> {
    let mut asked = Asked::read(&query, &headers, body)?;
    let wait = asked.wait;
    if let (Some(id), Some(_)) = (&asked.run_id, &asked.key)
        && let Some(existing) = app.runtime.store().run(id).await.map_err(Problem::from)?
    {
        return match app.runtime.running(id) {
            Some(handle) if wait => Ok(waited(&app, &handle).await),
            _ if existing.status != RunState::Running => show(State(app), Path(id.clone())).await,
            _ => Ok(accepted(id, StatusCode::OK)),
        };
    }
    let source = asked.source()?;
    let options = StartOptions {
        run_id: asked.run_id.take(),
        budget: asked.budget(),
        observers: Vec::new(),
    };
    let handle = app
        .runtime
        .start(source, asked.take_inputs(), options)
        .await?;
    if wait {
        return Ok(waited(&app, &handle).await);
    }
    Ok(accepted(handle.run_id(), StatusCode::ACCEPTED))
}

/// The run's result document once it ends, if it ends in time; else 202 with its links.
async fn waited(app: &AppState, handle: &RunHandle) -> Response {
    match tokio::time::timeout(app.wait_limit, handle.wait()).await {
        Ok(Ok(result)) => Json(&*result).into_response(),
        Ok(Err(e)) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "run_failed", e).into_response()
        }
        Err(_) => accepted(handle.run_id(), StatusCode::ACCEPTED),
    }
}

/// A run's id and the links to follow it.
fn accepted(run_id: &str, status: StatusCode) -> Response {
    (
        status,
        Json(json!({ "run_id": run_id, "status": "running", "links": links(run_id) })),
    )
        .into_response()
}

/// What a run id keeps unescaped in a URL path: letters, digits and `-._~`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn links(run_id: &str) -> Value {
    let at = format!(
        "/v1/runs/{}",
        percent_encoding::utf8_percent_encode(run_id, SEGMENT)
    );
    json!({
        "self": at,
        "events": format!("{at}/events"),
        "cancel": format!("{at}/cancel"),
        "resume": format!("{at}/resume"),
    })
}

/// A run id names the run in the store and in URLs: printable, 1 to 200 characters.
fn check_run_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() || id.chars().count() > 200 {
        return Err("run_id: 1 to 200 characters".to_owned());
    }
    if id.chars().any(char::is_control) || id.trim() != id {
        return Err("run_id: no control characters, no surrounding spaces".to_owned());
    }
    Ok(())
}

/// `GET /v1/runs/{id}`: the result document of an ended run; the record of a running one.
pub(crate) async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let store = app.runtime.store();
    let row = store
        .run(&id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no run `{id}`")))?;
    if row.status != RunState::Running
        && let Some(doc) = store.result_document(&id).await.map_err(Problem::from)?
    {
        let doc: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
        return Ok(Json(doc).into_response());
    }
    let mut doc = orc_runtime::state::row_json(&row);
    if let Some(object) = doc.as_object_mut() {
        object.insert("links".to_owned(), links(&id));
    }
    Ok(Json(doc).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    pipeline: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The most runs one page lists.
const MAX_LIMIT: u32 = 1000;

/// A page's `next_cursor`: the last run listed, as `<start, µs since the epoch>.<id in
/// URL-safe base64>` (ids may hold any character). The next page starts after it (keyset
/// paging: a run started meanwhile neither repeats a run nor hides one).
fn cursor_of(row: &orc_state::RunRow) -> String {
    use base64::Engine as _;
    let micros = row
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{micros}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&row.run_id)
    )
}

/// Reads a `cursor` [`cursor_of`] wrote.
fn parse_cursor(text: &str) -> Result<RunCursor, Problem> {
    use base64::Engine as _;
    let bad = || Problem::bad_request("cursor: use the next_cursor of a page, as it is");
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: u64 = micros.parse().map_err(|_| bad())?;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)?;
    Ok(RunCursor {
        started_at: std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros),
        run_id: id,
    })
}

/// `GET /v1/runs?status=&pipeline=&limit=&cursor=`: newest first, a page at a time.
pub(crate) async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let mut after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let shown = q.status.as_deref();
    let status = match shown {
        None => None,
        Some(orc_runtime::state::ABANDONED) => Some(RunState::Running),
        Some(s) => Some(s.parse::<RunState>().map_err(|e| {
            Problem::bad_request(format!(
                "status: {e}; or `{}`",
                orc_runtime::state::ABANDONED
            ))
        })?),
    };
    // One more than the page, to know whether another follows. A status the store does not
    // keep (`abandoned`: a running run whose lease lapsed) is picked from batches of running
    // runs until the page is full or the runs run out.
    let want = limit as usize + 1;
    let mut rows: Vec<orc_state::RunRow> = Vec::with_capacity(want);
    loop {
        let filter = RunFilter {
            status,
            pipeline_id: q.pipeline.clone(),
            limit: limit + 1,
            after: after.clone(),
        };
        let batch = app
            .runtime
            .store()
            .list_runs(&filter)
            .await
            .map_err(Problem::from)?;
        let complete = batch.len() < want;
        if let Some(last) = batch.last() {
            after = Some(RunCursor {
                started_at: last.started_at,
                run_id: last.run_id.clone(),
            });
        }
        rows.extend(
            batch
                .into_iter()
                .filter(|r| shown.is_none_or(|s| orc_runtime::state::shown_status(r) == s)),
        );
        if rows.len() >= want || complete {
            break;
        }
    }
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let ids: Vec<String> = rows.iter().map(|r| r.run_id.clone()).collect();
    let costs = app
        .runtime
        .store()
        .run_costs(&ids)
        .await
        .map_err(Problem::from)?;
    let page: Vec<Value> = rows
        .iter()
        .map(|r| listed(r, costs.get(&r.run_id).copied()))
        .collect();
    let next = more.then(|| rows.last().map(cursor_of)).flatten();
    Ok(Json(json!({ "runs": page, "next_cursor": next })).into_response())
}

/// A run as the list shows it: its record, how long it ran (so far, while running) and what it
/// spent on models.
fn listed(r: &orc_state::RunRow, cost: Option<f64>) -> Value {
    let mut doc = orc_runtime::state::row_json(r);
    let end = r.finished_at.unwrap_or_else(std::time::SystemTime::now);
    let duration = end
        .duration_since(r.started_at)
        .unwrap_or_default()
        .as_secs_f64();
    if let Some(object) = doc.as_object_mut() {
        object.insert("duration_s".to_owned(), json!(duration));
        object.insert("cost_usd".to_owned(), json!(cost.unwrap_or(0.0)));
    }
    doc
}

/// `POST /v1/runs/{id}/cancel`: stops a run this server is running; it ends interrupted,
/// checkpointed and resumable.
pub(crate) async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if let Some(handle) = app.runtime.running(&id)
        && handle.outcome().is_none()
    {
        handle.cancel();
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "run_id": id, "status": "cancelling", "links": links(&id) })),
        )
            .into_response());
    }
    match app.runtime.store().run(&id).await {
        Ok(Some(row)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "not_running",
            format!(
                "run `{id}` is not running in this server (it is {})",
                orc_runtime::state::shown_status(&row)
            ),
        )),
        Ok(None) => Err(Problem::not_found(format!("no run `{id}`"))),
        Err(e) => Err(Problem::from(e)),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeBody {
    #[serde(default)]
    force: bool,
}

/// `POST /v1/runs/{id}/resume`: continues an interrupted, failed or abandoned run (202); a
/// completed one answers with its result document (200).
pub(crate) async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<ResumeBody>>,
) -> Result<Response, Problem> {
    let force = body.is_some_and(|Json(b)| b.force);
    let options = orc_runtime::ResumeOptions {
        force,
        observers: Vec::new(),
    };
    match app.runtime.resume(&id, options).await? {
        Resumed::Started(handle) => Ok(accepted(handle.run_id(), StatusCode::ACCEPTED)),
        Resumed::Completed(Some(doc)) => {
            let doc: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
            Ok(Json(doc).into_response())
        }
        Resumed::Completed(None) => {
            Ok(Json(json!({ "run_id": id, "status": "completed" })).into_response())
        }
    }
}

/// How long `wait` waits: a little less than the request timeout, so the answer is a 202 with
/// links rather than the timeout's 503.
pub(crate) fn wait_limit(request_timeout: Duration) -> Duration {
    request_timeout.mul_f64(0.9)
}
