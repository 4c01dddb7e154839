//! The OpenAI-compatible wire protocol: chat completions (plain and streamed),
//! completions, embeddings and the model list.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use ::http::header::ACCEPT;

use crate::error::{self, CallSite, Error, FailureKind, Result};
use crate::http::{self, Http, Request};
use crate::request::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, EmbeddingRequest,
    EmbeddingResponse, ModelInfo, Role,
};
use crate::secret::ApiKey;
use crate::spec::ModelSpec;
use crate::sse::SseEvent;
use crate::stream::{ChatStream, EventError, Events, StreamState};
use crate::usage::Usage;

use super::{Call, Endpoint, Provider, Target};

/// Any OpenAI-compatible server: OpenAI itself, Ollama, vLLM, llama.cpp's server.
pub(super) struct OpenAi;

impl Provider for OpenAi {
    fn serves(&self, _endpoint: Endpoint) -> bool {
        true
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

    fn complete<'a>(
        &'a self,
        to: Target<'a>,
        req: &'a CompletionRequest,
    ) -> Call<'a, CompletionResponse> {
        Box::pin(complete(to.http, to.spec, to.key, req))
    }

    fn embed<'a>(
        &'a self,
        to: Target<'a>,
        req: &'a EmbeddingRequest,
    ) -> Call<'a, EmbeddingResponse> {
        Box::pin(embed(to.http, to.spec, to.key, req))
    }
}

/// A chat completion stream: `data:` chunks, ended by `data: [DONE]`.
pub(super) static EVENTS: Events = Events {
    read: stream_event,
    terminator: "`data: [DONE]`",
};

fn url(spec: &ModelSpec, path: &str) -> String {
    format!("{}/{path}", spec.base_url.trim_end_matches('/'))
}

fn authorize(request: Request, key: Option<&ApiKey>) -> Request {
    match key {
        // `bearer_auth` marks the header sensitive.
        Some(key) => request.bearer_auth(key.expose()),
        None => request,
    }
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: Role,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

fn chat_body<'a>(spec: &'a ModelSpec, req: &'a ChatRequest, stream: bool) -> ChatBody<'a> {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(WireMessage {
            role: Role::System,
            content: system,
        });
    }
    messages.extend(req.messages.iter().map(|m| WireMessage {
        role: m.role,
        content: &m.content,
    }));
    ChatBody {
        model: &spec.model,
        messages,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        stream,
        stream_options: stream.then(|| json!({ "include_usage": true })),
        response_format: req.json_schema.as_ref().map(|schema| {
            json!({
                "type": "json_schema",
                "json_schema": { "name": "output", "schema": schema },
            })
        }),
    }
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Usage {
        Usage {
            input_tokens: wire.prompt_tokens,
            cached_input_tokens: wire
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: wire.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

fn invalid(site: CallSite, message: impl Into<String>) -> Error {
    Error::call(site, FailureKind::InvalidResponse, message, None)
}

/// One plain (not streamed) chat completion.
async fn chat(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &ChatRequest,
) -> Result<ChatResponse> {
    let request = Request::post(&url(spec, "chat/completions")).json(&chat_body(spec, req, false));
    let (completion, site): (ChatCompletion, _) =
        http.fetch_json(spec, key, authorize(request, key)).await?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(invalid(site, "the answer has no `choices`"));
    };
    let text = match (choice.message.content, choice.message.refusal) {
        (Some(text), _) => text,
        (None, Some(refusal)) => {
            return Err(Error::call(
                site,
                FailureKind::Rejected,
                format!("the model refused: {}", http::redact(key, &refusal)),
                None,
            ));
        }
        (None, None) => String::new(),
    };
    Ok(ChatResponse {
        text,
        model: completion.model.unwrap_or_else(|| spec.model.clone()),
        usage: completion.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: choice.finish_reason,
    })
}

/// Opens a streamed chat completion.
async fn chat_stream(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &ChatRequest,
) -> Result<ChatStream> {
    let request = Request::post(&url(spec, "chat/completions"))
        .header(ACCEPT, "text/event-stream")
        .json(&chat_body(spec, req, true));
    let answer = http.send(spec, key, authorize(request, key)).await?;
    Ok(ChatStream::new(answer, key, &spec.model, &EVENTS))
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

/// Handles one event of a chat completion stream; returns the text delta it carries.
fn stream_event(
    event: &SseEvent,
    state: &mut StreamState,
) -> std::result::Result<Option<String>, EventError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        state.done = true;
        return Ok(None);
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        (
            FailureKind::InvalidResponse,
            format!(
                "a stream event is not a chat completion chunk ({e}): {}",
                error::cut(data, 200)
            ),
        )
    })?;
    if let Some(problem) = chunk.error {
        let message = error::provider_message(json!({ "error": problem }).to_string().as_bytes());
        return Err((
            FailureKind::Server,
            format!("error in the stream: {message}"),
        ));
    }
    if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
        state.model = Some(model);
    }
    if let Some(usage) = chunk.usage {
        state.usage = usage.into();
    }
    let mut delta = None;
    if let Some(choice) = chunk.choices.into_iter().next() {
        if let Some(reason) = choice.finish_reason {
            state.finish_reason = Some(reason);
        }
        delta = choice.delta.and_then(|d| d.content);
    }
    Ok(delta)
}

#[derive(Serialize)]
struct CompletionBody<'a> {
    model: &'a str,
    prompt: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    index: usize,
    text: String,
}

/// Places `items` (index, value) into a list of `len`, checking every index is there once.
fn by_index<T>(site: &CallSite, what: &str, len: usize, items: Vec<(usize, T)>) -> Result<Vec<T>> {
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(len).collect();
    for (index, item) in items {
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item),
            Some(Some(_)) => {
                return Err(invalid(
                    site.clone(),
                    format!("{what} {index} is answered twice"),
                ));
            }
            None => {
                return Err(invalid(
                    site.clone(),
                    format!("the answer has {what} {index}, but only {len} were sent"),
                ));
            }
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(index, slot)| {
            slot.ok_or_else(|| {
                invalid(
                    site.clone(),
                    format!("the answer has nothing for {what} {index}"),
                )
            })
        })
        .collect()
}

/// Completes every prompt in one call; the texts come back in prompt order.
async fn complete(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &CompletionRequest,
) -> Result<CompletionResponse> {
    let body = CompletionBody {
        model: &spec.model,
        prompt: &req.prompts,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    };
    let request = Request::post(&url(spec, "completions")).json(&body);
    let (completion, site): (Completion, _) =
        http.fetch_json(spec, key, authorize(request, key)).await?;
    let items = completion
        .choices
        .into_iter()
        .map(|c| (c.index, c.text))
        .collect();
    Ok(CompletionResponse {
        texts: by_index(&site, "prompt", req.prompts.len(), items)?,
        usage: completion.usage.map(Usage::from).unwrap_or_default(),
        model: completion.model.unwrap_or_else(|| spec.model.clone()),
    })
}

#[derive(Serialize)]
struct EmbeddingBody<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct Embeddings {
    #[serde(default)]
    model: Option<String>,
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

/// Embeds every input in one call; the vectors come back in input order.
async fn embed(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
    req: &EmbeddingRequest,
) -> Result<EmbeddingResponse> {
    let body = EmbeddingBody {
        model: &spec.model,
        input: &req.inputs,
        encoding_format: "float",
    };
    let request = Request::post(&url(spec, "embeddings")).json(&body);
    let (embeddings, site): (Embeddings, _) =
        http.fetch_json(spec, key, authorize(request, key)).await?;
    let items = embeddings
        .data
        .into_iter()
        .map(|e| (e.index, e.embedding))
        .collect();
    Ok(EmbeddingResponse {
        vectors: by_index(&site, "input", req.inputs.len(), items)?,
        usage: embeddings.usage.map(Usage::from).unwrap_or_default(),
        model: embeddings.model.unwrap_or_else(|| spec.model.clone()),
    })
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// The models the server offers.
async fn list_models(
    http: &Http,
    spec: &ModelSpec,
    key: Option<&ApiKey>,
) -> Result<Vec<ModelInfo>> {
    let request = Request::get(&url(spec, "models"));
    let (list, _): (ModelList, _) = http.fetch_json(spec, key, authorize(request, key)).await?;
    Ok(list
        .data
        .into_iter()
        .map(|m| ModelInfo {
            id: m.id,
            display_name: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;
    use crate::request::Message;

    #[test]
    fn chat_body_shape() -> std::result::Result<(), serde_json::Error> {
        let spec = ModelSpec::new("llama3.2:1b", ProviderKind::OpenAi);
        let req = ChatRequest {
            messages: vec![Message::user("hi")],
            system: Some("be brief".into()),
            max_tokens: Some(7),
            temperature: Some(0.5),
            stream: true,
            json_schema: Some(json!({"type": "object"})),
        };
        let body = serde_json::to_value(chat_body(&spec, &req, true))?;
        assert_eq!(
            body,
            json!({
                "model": "llama3.2:1b",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "max_tokens": 7, "temperature": 0.5, "stream": true,
                "stream_options": {"include_usage": true},
                "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}},
            })
        );
        let plain = serde_json::to_value(chat_body(&spec, &ChatRequest::user("x"), false))?;
        assert_eq!(
            plain,
            json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "x"}]})
        );
        Ok(())
    }

    fn event(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn stream_events_fill_the_state() {
        let mut state = StreamState::default();
        let first = r#"{"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":"He"}}]}"#;
        assert_eq!(
            stream_event(&event(first), &mut state),
            Ok(Some("He".into()))
        );
        let last = r#"{"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(stream_event(&event(last), &mut state), Ok(None));
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":3}}}"#;
        assert_eq!(stream_event(&event(usage), &mut state), Ok(None));
        assert_eq!(stream_event(&event("[DONE]"), &mut state), Ok(None));
        assert!(state.done);
        assert_eq!(state.model.as_deref(), Some("m-1"));
        assert_eq!(state.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            state.usage,
            Usage {
                input_tokens: 5,
                cached_input_tokens: 3,
                output_tokens: 2
            }
        );
        let garbage = stream_event(&event("not json"), &mut state);
        assert!(matches!(garbage, Err((FailureKind::InvalidResponse, _))));
        let failed = stream_event(&event(r#"{"error":{"message":"boom"}}"#), &mut state);
        assert!(matches!(failed, Err((FailureKind::Server, m)) if m.contains("boom")));
    }

    #[test]
    fn answers_are_put_in_index_order() {
        let site = CallSite {
            provider: ProviderKind::OpenAi,
            model: "m".into(),
            status: Some(200),
        };
        let ordered = by_index(&site, "prompt", 3, vec![(2, "c"), (0, "a"), (1, "b")]);
        assert_eq!(ordered.ok(), Some(vec!["a", "b", "c"]));
        assert!(by_index(&site, "prompt", 2, vec![(0, "a")]).is_err());
        assert!(by_index(&site, "prompt", 1, vec![(0, "a"), (0, "b")]).is_err());
        assert!(by_index(&site, "prompt", 1, vec![(3, "a")]).is_err());
    }
}
