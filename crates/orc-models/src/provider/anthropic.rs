//! Anthropic's Messages API: plain and streamed, and the model list.

use http::header::{ACCEPT, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{self, Error, FailureKind, Result};
use crate::http::{Http, Request};
use crate::request::{ChatRequest, ChatResponse, ModelInfo, Role};
use crate::secret::ApiKey;
use crate::spec::ModelSpec;
use crate::sse::SseEvent;
use crate::stream::{ChatStream, EventError, Events, StreamState};
use crate::usage::Usage;

use super::{Call, Endpoint, Provider, Target};

/// The API version every request names.
const VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is used when a request gives none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's Messages API: chat only.
pub(super) struct Anthropic;

impl Provider for Anthropic {
    fn serves(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Chat
    }

    fn chat<'a>(&'a self, to: Target<'a>, req: &'a ChatRequest) -> Call<'a, ChatResponse> {
        Box::pin(chat(to.http, to.spec, to.key, req))
    }

    fn chat_stream<'a>(&'a self, to: Target<'a>, req: &'a ChatRequest) -> Call<'a, ChatStream> {
        Box::pin(chat_stream(to.http, to.spec, to.key, req))
    }

    fn list_models<'a>(&'a self, to: Target<'a>) -> Call<'a, Vec<ModelInfo>> {
        Box::pin(list_models(to.http, to.spec, to.key))
    }
}

/// A Messages stream: typed events, ended by `message_stop`.
pub(super) static EVENTS: Events = Events {
    read: stream_event,
    terminator: "`message_stop`",
};

fn url(spec: &ModelSpec, path: &str) -> String {
    format!("{}/v1/{path}", spec.base_url.trim_end_matches('/'))
}

fn headers(request: Request, key: Option<&ApiKey>, spec: &ModelSpec) -> Result<Request> {
    let request = request.header(HeaderName::from_static("anthropic-version"), VERSION);
    let Some(key) = key else {
        return Ok(request);
    };
    let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
        Error::call(
            error::CallSite {
                provider: spec.provider,
                model: spec.model.clone(),
                status: None,
            },
            FailureKind::InvalidRequest,
            format!(
                "the API key in {} is not a valid header value",
                spec.api_key_env.as_deref().unwrap_or("the key variable")
            ),
            None,
        )
    })?;
    value.set_sensitive(true);
    Ok(request.header(HeaderName::from_static("x-api-key"), value))
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: Role,
    content: &'a str,
}

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// The request body: system messages and a JSON Schema instruction go into `system`.
fn messages_body<'a>(spec: &'a ModelSpec, req: &'a ChatRequest, stream: bool) -> MessagesBody<'a> {
    let mut system: Vec<String> = req.system.iter().cloned().collect();
    system.extend(
        req.messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.clone()),
    );
    if let Some(schema) = &req.json_schema {
        system.push(format!(
            "Answer with only a JSON value, no prose and no code fence, that follows this JSON Schema:\n{schema}"
        ));
    }
    MessagesBody {
        model: &spec.model,
        max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        messages: req
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| WireMessage {
                role: m.role,
                content: &m.content,
            })
            .collect(),
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        temperature: req.temperature,
        stream,
    }
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Writes the counts this report has into `usage` (a later report of a stream
    /// carries only some of them).
    fn apply(&self, usage: &mut Usage) {
        if self.input_tokens.is_some()
            || self.cache_read_input_tokens.is_some()
            || self.cache_creation_input_tokens.is_some()
        {
            let cached = self.cache_read_input_tokens.unwrap_or(0);
            usage.input_tokens = self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(cached)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
            usage.cached_input_tokens = cached;
        }
        if let Some(output) = self.output_tokens {
            usage.output_tokens = output;
        }
    }
}

#[derive(Deserialize)]
struct MessageAnswer {
    #[serde(default)]
    model: Option<String>,
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// One plain (not streamed) Messages call.
async fn chat(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &ChatRequest,
) -> Result<ChatResponse> {
    let request = Request::post(&url(spec, "messages")).json(&messages_body(spec, req, false));
    let (message, _): (MessageAnswer, _) = http
        .fetch_json(spec, key, headers(request, key, spec)?)
        .await?;
    let text = message
        .content
        .into_iter()
        .filter(|block| block.kind == "text")
        .filter_map(|block| block.text)
        .collect::<String>();
    let mut usage = Usage::default();
    message.usage.apply(&mut usage);
    Ok(ChatResponse {
        text,
        model: message.model.unwrap_or_else(|| spec.model.clone()),
        usage,
        finish_reason: message.stop_reason,
    })
}

/// Opens a streamed Messages call.
async fn chat_stream(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &ChatRequest,
) -> Result<ChatStream> {
    let request = Request::post(&url(spec, "messages"))
        .header(ACCEPT, "text/event-stream")
        .json(&messages_body(spec, req, true));
    let answer = http.send(spec, key, headers(request, key, spec)?).await?;
    Ok(ChatStream::new(answer, key, &spec.model, &EVENTS))
}

#[derive(Deserialize)]
struct StreamMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StreamMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Error {
        error: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockDelta {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Handles one event of a Messages stream (`message_start`, `content_block_delta`,
/// `message_delta`, `message_stop`, `error`, …); returns the text delta it carries.
fn stream_event(
    event: &SseEvent,
    state: &mut StreamState,
) -> std::result::Result<Option<String>, EventError> {
    let parsed: StreamEvent = serde_json::from_str(&event.data).map_err(|e| {
        (
            FailureKind::InvalidResponse,
            format!(
                "a stream event{} is not a Messages event ({e}): {}",
                event
                    .event
                    .as_deref()
                    .map(|name| format!(" `{name}`"))
                    .unwrap_or_default(),
                error::cut(&event.data, 200)
            ),
        )
    })?;
    match parsed {
        StreamEvent::MessageStart { message } => {
            if let Some(model) = message.model.filter(|m| !m.is_empty()) {
                state.model = Some(model);
            }
            message.usage.apply(&mut state.usage);
            Ok(None)
        }
        StreamEvent::ContentBlockDelta { delta } if delta.kind == "text_delta" => Ok(delta.text),
        StreamEvent::ContentBlockDelta { .. } | StreamEvent::Other => Ok(None),
        StreamEvent::MessageDelta { delta, usage } => {
            if let Some(reason) = delta.stop_reason {
                state.finish_reason = Some(reason);
            }
            usage.apply(&mut state.usage);
            Ok(None)
        }
        StreamEvent::MessageStop => {
            state.done = true;
            Ok(None)
        }
        StreamEvent::Error { error: problem } => {
            let kind = match problem.get("type").and_then(Value::as_str) {
                Some("rate_limit_error") => FailureKind::RateLimited,
                Some("overloaded_error" | "api_error") | None => FailureKind::Server,
                Some("timeout_error") => FailureKind::Timeout,
                Some(_) => FailureKind::Rejected,
            };
            let message =
                error::provider_message(json!({ "error": problem }).to_string().as_bytes());
            Err((kind, format!("error in the stream: {message}")))
        }
    }
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// The models the API offers (the first 1,000).
async fn list_models(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
) -> Result<Vec<ModelInfo>> {
    let request = Request::get(&url(spec, "models?limit=1000"));
    let (list, _): (ModelList, _) = http
        .fetch_json(spec, key, headers(request, key, spec)?)
        .await?;
    Ok(list
        .data
        .into_iter()
        .map(|m| ModelInfo {
            id: m.id,
            display_name: m.display_name,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;
    use crate::request::Message;

    #[test]
    fn body_moves_system_messages_into_system() -> std::result::Result<(), serde_json::Error> {
        let spec = ModelSpec::new("claude-x", ProviderKind::Anthropic);
        let req = ChatRequest {
            messages: vec![
                Message::system("two"),
                Message::user("hi"),
                Message::assistant("hello"),
                Message::user("again"),
            ],
            system: Some("one".into()),
            ..ChatRequest::default()
        };
        let body = serde_json::to_value(messages_body(&spec, &req, true))?;
        assert_eq!(
            body,
            json!({
                "model": "claude-x", "max_tokens": 4096, "stream": true, "system": "one\n\ntwo",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "again"},
                ],
            })
        );
        Ok(())
    }

    fn event(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(name.to_owned()),
            data: data.to_string(),
        }
    }

    #[test]
    fn the_event_sequence_fills_the_state() {
        let mut state = StreamState::default();
        let events = [
            event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x-1",
                    "content": [], "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            event("ping", json!({"type": "ping"})),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            ),
            event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
            ),
            event("message_stop", json!({"type": "message_stop"})),
        ];
        let deltas: Vec<Option<String>> = events
            .iter()
            .filter_map(|e| stream_event(e, &mut state).ok())
            .collect();
        assert_eq!(deltas.into_iter().flatten().collect::<String>(), "Hello");
        assert!(state.done);
        assert_eq!(state.model.as_deref(), Some("claude-x-1"));
        assert_eq!(state.finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(
            state.usage,
            Usage {
                input_tokens: 14,
                cached_input_tokens: 4,
                output_tokens: 7
            }
        );
    }

    #[test]
    fn error_events_are_classified() {
        let mut state = StreamState::default();
        let overloaded = event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert_eq!(
            stream_event(&overloaded, &mut state),
            Err((
                FailureKind::Server,
                "error in the stream: overloaded_error: Overloaded".to_owned()
            ))
        );
        let garbage = SseEvent {
            event: Some("message_start".into()),
            data: "{{{".into(),
        };
        assert!(matches!(
            stream_event(&garbage, &mut state),
            Err((FailureKind::InvalidResponse, m)) if m.contains("`message_start`")
        ));
    }
}
