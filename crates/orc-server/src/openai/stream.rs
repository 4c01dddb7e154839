//! Streamed chat answers in OpenAI's server-sent events: a first chunk with the
//! assistant's role, one chunk per text delta, a last chunk with `finish_reason`, a
//! usage chunk when `stream_options.include_usage`, then `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};
use orc_models::{ChatResponse, ChatStream, Gateway, Model};
use serde::Serialize;
use tracing::Instrument as _;

use super::error::ApiError;
use super::request::Chat;
use super::wire::{ChatChunk, ChunkChoice, Delta, WireUsage, finish_reason};
use super::{OpenAiOptions, completion_id, orc_headers, unix_now};

/// Opens the stream (errors before its first byte are plain error responses, and may
/// have been fallen back on) and answers with its events.
pub(super) async fn respond(
    gateway: &Gateway,
    model: &Model,
    chat: Chat,
    use_cache: bool,
    options: &OpenAiOptions,
) -> Result<Response, ApiError> {
    let answer = gateway.open_stream(model, &chat.request, use_cache).await?;
    let headers = orc_headers(
        gateway,
        answer.source,
        use_cache,
        None,
        answer.fallback.len(),
    );
    if let Some(label) = headers.get(super::ORC_CACHE).and_then(|v| v.to_str().ok()) {
        tracing::Span::current().record("cache", label);
    }
    let chunks = Chunks {
        id: completion_id(),
        created: unix_now(),
        model: answer.model.name.clone(),
        include_usage: chat.include_usage,
    };
    let events = events(answer.stream, chunks, tracing::Span::current());
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(options.keep_alive));
    Ok((headers, sse).into_response())
}

/// What every chunk of one answer repeats.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn chunk(&self, delta: Delta<'_>, finish: Option<&'static str>) -> Event {
        data(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            // OpenAI sends `usage: null` on every chunk before the usage chunk.
            usage: self.include_usage.then_some(None),
        })
    }

    /// The events after the last delta: the finish, the usage, `[DONE]`.
    fn end(&self, response: &ChatResponse) -> Vec<Event> {
        let finish = finish_reason(response.finish_reason.as_deref());
        let mut events = vec![self.chunk(Delta::default(), Some(finish))];
        if self.include_usage {
            events.push(data(&ChatChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(WireUsage::from(response.usage))),
            }));
        }
        events.push(Event::default().data("[DONE]"));
        events
    }
}

/// An SSE event whose data is `value` as JSON.
fn data<T: Serialize>(value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(text) => Event::default().data(text),
        Err(e) => error_event(&format!("cannot serialize a chunk: {e}"), "server_error"),
    }
}

/// OpenAI's in-stream error: `data: {"error": {…}}`.
fn error_event(message: &str, kind: &str) -> Event {
    let body = super::error::body(message, kind, None, None);
    Event::default().data(body.to_string())
}

/// Where the stream of events is.
struct Pump {
    /// The answer's deltas; `None` once it ended.
    stream: Option<ChatStream>,
    /// Events made and not yet sent.
    queue: VecDeque<Event>,
    chunks: Chunks,
    /// The request's span, entered while the stream is read.
    span: tracing::Span,
}

/// The events of `stream`. Dropping them (the client went away) drops the answer's
/// stream, which settles its budget reservation and frees its connection.
fn events(
    stream: ChatStream,
    chunks: Chunks,
    span: tracing::Span,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = chunks.chunk(
        Delta {
            role: Some("assistant"),
            content: Some(""),
        },
        None,
    );
    let pump = Pump {
        stream: Some(stream),
        queue: VecDeque::from([first]),
        chunks,
        span,
    };
    futures::stream::unfold(pump, |pump| {
        let span = pump.span.clone();
        step(pump).instrument(span)
    })
}

/// The next event, and the pump for the rest; `None` at the end.
async fn step(mut pump: Pump) -> Option<(Result<Event, Infallible>, Pump)> {
    loop {
        if let Some(event) = pump.queue.pop_front() {
            return Some((Ok(event), pump));
        }
        let stream = pump.stream.as_mut()?;
        match stream.next().await {
            Some(Ok(delta)) => {
                let event = pump.chunks.chunk(
                    Delta {
                        role: None,
                        content: Some(&delta),
                    },
                    None,
                );
                pump.queue.push_back(event);
            }
            Some(Err(error)) => {
                pump.stream = None;
                pump.queue.push_back(failed(error));
            }
            None => {
                let Some(stream) = pump.stream.take() else {
                    continue;
                };
                match stream.finish().await {
                    Ok(response) => {
                        tracing::debug!(
                            output_tokens = response.usage.output_tokens,
                            "stream complete"
                        );
                        pump.queue.extend(pump.chunks.end(&response));
                    }
                    Err(error) => pump.queue.push_back(failed(error)),
                }
            }
        }
    }
}

/// The error event of a stream that broke after it started.
fn failed(error: orc_models::Error) -> Event {
    let error = ApiError::Gateway(error);
    tracing::warn!("stream failed: {error}");
    Event::default().data(error.to_body().to_string())
}
