//! `GET /v1/runs/{id}/events`: a run's events as Server-Sent Events.
//!
//! A run this server is running (or ran lately) streams from its event log: `step_ready`,
//! `step_started`, `step_finished` (with the step's record) and the final `result`, each with
//! its number as the SSE `id`; a client that reconnects with `Last-Event-ID` gets exactly the
//! events after it. A run known only to the state store (it ran in another process, or before a
//! restart) replays from its checkpoints: every `step_finished`, then `result`, and closes.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};
use orc_runtime::RunEvent;
use serde_json::json;

use crate::AppState;
use crate::problem::Problem;

pub(crate) async fn follow(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| Problem::bad_request("Last-Event-ID: expected an event number"))?,
        None => 0,
    };
    let events: futures::stream::BoxStream<'static, Arc<RunEvent>> = match app.runtime.running(&id)
    {
        Some(handle) => handle.events(after).boxed(),
        None => futures::stream::iter(replay(&app, &id).await?)
            .filter(move |e| std::future::ready(e.id > after))
            .boxed(),
    };
    let shutdown = app.shutdown.clone();
    let stream = events
        .take_until(async move { shutdown.cancelled().await })
        .map(|e| Ok::<_, Infallible>(sse(&e)));
    Ok(sse_response(stream))
}

fn sse_response(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn sse(e: &RunEvent) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(e.kind)
        .data(&e.data)
}

/// A run's events rebuilt from the state store.
async fn replay(app: &AppState, id: &str) -> Result<Vec<Arc<RunEvent>>, Problem> {
    let store = app.runtime.store();
    let row = store
        .run(id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no run `{id}`")))?;
    let mut events = Vec::new();
    let mut push = |kind: &'static str, data: String| {
        events.push(Arc::new(RunEvent {
            id: events.len() as u64 + 1,
            kind,
            data,
        }));
    };
    for c in store.checkpoints(id).await.map_err(Problem::from)? {
        push(
            "step_finished",
            json!({ "step": c.step_id, "status": c.status, "record": c.envelope }).to_string(),
        );
    }
    if row.status != orc_state::RunState::Running {
        let doc = match store.result_document(id).await.map_err(Problem::from)? {
            Some(doc) => String::from_utf8_lossy(&doc).into_owned(),
            None => json!({ "execution_id": id, "status": row.status.as_str() }).to_string(),
        };
        push("result", doc);
    }
    Ok(events)
}
