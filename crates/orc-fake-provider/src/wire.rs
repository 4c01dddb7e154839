//! What both wire protocols share: the parsed request, the answer, provider
//! error shapes and SSE framing.

use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::behaviour::{Reply, strip_markers, take_markers};
use crate::text::words;

/// Which provider's conventions a response follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    OpenAi,
    Anthropic,
}

/// A model request reduced to what the fake needs.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) max_tokens: Option<usize>,
    /// The texts to answer, markers removed: the last user message (chat,
    /// messages), each prompt (completions) or each input (embeddings).
    pub(crate) prompts: Vec<String>,
    /// Words in the whole request's text, markers removed.
    pub(crate) input_tokens: u64,
    /// The knobs set by `[[fake:…]]` markers in the prompts.
    pub(crate) marker: Reply,
    pub(crate) dimensions: Option<usize>,
    pub(crate) base64: bool,
}

/// One answer text with its accounting.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) text: String,
    /// Cut to `max_tokens`.
    pub(crate) truncated: bool,
    pub(crate) output_tokens: u64,
}

/// An error answered in the provider's own JSON shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
    /// OpenAI's `code` field (Anthropic has none).
    pub(crate) code: Option<&'static str>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code: None,
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    pub(crate) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The error an injected `status` produces.
    pub(crate) fn injected(status: u16, retry_after: Option<u64>) -> Self {
        let code = match status {
            429 => Some("rate_limit_exceeded"),
            503 => Some("service_unavailable"),
            _ => None,
        };
        ApiError {
            status,
            message: format!("orc-fake-provider: injected HTTP {status}"),
            code,
            retry_after: if status == 429 {
                Some(retry_after.unwrap_or(1))
            } else {
                retry_after
            },
        }
    }

    /// The 400 a provider answers when the prompt does not fit the model's context
    /// window, in that provider's words.
    pub(crate) fn context_length(provider: Provider, tokens: u64, window: u64) -> Self {
        match provider {
            Provider::OpenAi => ApiError::bad_request(format!(
                "This model's maximum context length is {window} tokens. However, your messages resulted in {tokens} tokens. Please reduce the length of the messages."
            ))
            .code("context_length_exceeded"),
            Provider::Anthropic => ApiError::bad_request(format!(
                "prompt is too long: {tokens} tokens > {window} maximum"
            )),
        }
    }

    /// The provider's error body.
    pub(crate) fn body(&self, provider: Provider) -> Value {
        match provider {
            Provider::OpenAi => {
                let kind = match self.status {
                    429 => "requests",
                    500..=599 => "server_error",
                    _ => "invalid_request_error",
                };
                json!({"error": {
                    "message": self.message,
                    "type": kind,
                    "param": null,
                    "code": self.code,
                }})
            }
            Provider::Anthropic => {
                let kind = match self.status {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    500..=599 => "api_error",
                    _ => "invalid_request_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": self.message}})
            }
        }
    }
}

/// The text of a message's `content`: a string, or the `text` of each part of
/// a list (OpenAI content parts, Anthropic content blocks), one per line.
/// Reads a chat's messages into `parsed`: the last user message is the prompt and carries the
/// `[[fake:…]]` markers; every message counts towards the input tokens.
pub(crate) fn read_messages(messages: &[Value], parsed: &mut Parsed) -> Result<(), ApiError> {
    let last_user = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .unwrap_or(messages.len().saturating_sub(1));
    for (i, message) in messages.iter().enumerate() {
        let text = content_text(message.get("content").unwrap_or(&Value::Null));
        if i == last_user {
            let (clean, marker) =
                take_markers(&text).map_err(|e| ApiError::bad_request(e.to_string()))?;
            parsed.input_tokens += words(&clean);
            parsed.prompts.push(clean);
            parsed.marker = marker;
        } else {
            parsed.input_tokens += words(&strip_markers(&text));
        }
    }
    Ok(())
}

pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

/// The required string field `key` of `request`.
pub(crate) fn required_str(request: &Value, key: &str) -> Result<String, ApiError> {
    match request.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
        None => Err(ApiError::bad_request(format!(
            "`{key}` is a required property"
        ))),
    }
}

/// The optional whole-number field `key` of `request`.
pub(crate) fn optional_count(request: &Value, key: &str) -> Result<Option<usize>, ApiError> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("`{key}` must be a non-negative integer"))
            }),
    }
}

/// The optional boolean field `key` of `request` (false when absent).
pub(crate) fn flag(request: &Value, key: &str) -> bool {
    request.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `data: {json}\n\n`
pub(crate) fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `event: NAME\ndata: {json}\n\n`
pub(crate) fn sse_event(name: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

/// The body of a 200 that is not JSON.
pub(crate) const GARBAGE: &str = "<html><body><h1>502 Bad Gateway</h1><p>orc-fake-provider: garbage (injected fault)</p></body></html>\n";
