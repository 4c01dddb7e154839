//! OpenAI chat requests read into orc's [`ChatRequest`]: what maps is mapped, what orc
//! cannot do is refused with a 400 naming the field, never dropped.

use orc_models::{ChatRequest, Message, Role};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::wire::{ChatCompletionRequest, WireMessage};

/// The most messages one request may hold.
pub(crate) const MAX_MESSAGES: usize = 10_000;

/// A chat request as orc runs it.
#[derive(Debug)]
pub(crate) struct Chat {
    /// The model asked for (`auto` or a configured name).
    pub(crate) model: String,
    /// orc's request.
    pub(crate) request: ChatRequest,
    /// Whether the answer is streamed.
    pub(crate) stream: bool,
    /// Whether a streamed answer ends with a usage chunk.
    pub(crate) include_usage: bool,
}

/// Fields that do not change the answer: accepted and not acted on.
const IGNORED: &[&str] = &[
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    // Only says something together with `tools`, which are refused.
    "parallel_tool_calls",
];

/// Fields orc cannot honour: accepted only at the value that means "not used".
const DEFAULT_ONLY: &[(&str, &str)] = &[
    ("top_p", "nucleus sampling (`top_p` other than 1)"),
    ("frequency_penalty", "`frequency_penalty` other than 0"),
    ("presence_penalty", "`presence_penalty` other than 0"),
    ("stop", "stop sequences"),
    ("seed", "`seed`"),
    ("logprobs", "log probabilities"),
    ("top_logprobs", "log probabilities"),
    ("logit_bias", "`logit_bias`"),
    ("tools", "tools (function calling)"),
    ("tool_choice", "tools (function calling)"),
    ("functions", "function calling"),
    ("function_call", "function calling"),
    ("modalities", "output modalities other than text"),
    ("audio", "audio output"),
    ("prediction", "predicted outputs"),
    ("reasoning_effort", "`reasoning_effort`"),
    ("verbosity", "`verbosity`"),
    ("web_search_options", "web search"),
];

impl TryFrom<ChatCompletionRequest> for Chat {
    type Error = ApiError;

    fn try_from(body: ChatCompletionRequest) -> Result<Self, ApiError> {
        check_other(&body.other)?;
        if let Some(n) = body.n
            && n != 1
        {
            return Err(ApiError::unsupported(
                "n",
                format!(
                    "`n` is {n}: orc's gateway gives one choice per request; send `n: 1` or leave it out"
                ),
            ));
        }
        let max_tokens = max_tokens(body.max_tokens, body.max_completion_tokens)?;
        if let Some(t) = body.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(ApiError::invalid(
                "temperature",
                format!("`temperature` is {t}; it must be between 0 and 2"),
            ));
        }
        let json_schema = match &body.response_format {
            None | Some(Value::Null) => None,
            Some(format) => response_format(format)?,
        };
        let stream = body.stream.unwrap_or(false);
        let options = body.stream_options.unwrap_or_default();
        if let Some(key) = options.other.keys().next() {
            return Err(ApiError::unsupported(
                format!("stream_options.{key}"),
                format!(
                    "`stream_options.{key}` is not supported by orc's gateway; only `include_usage` is"
                ),
            ));
        }
        let include_usage = options.include_usage.unwrap_or(false);
        if include_usage && !stream {
            return Err(ApiError::invalid(
                "stream_options",
                "`stream_options` is only allowed when `stream` is true",
            ));
        }
        if body.messages.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must hold at least one message",
            ));
        }
        if body.messages.len() > MAX_MESSAGES {
            return Err(ApiError::invalid(
                "messages",
                format!(
                    "`messages` holds {} messages; at most {MAX_MESSAGES} are accepted",
                    body.messages.len()
                ),
            ));
        }
        let messages = body
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chat {
            model: body.model,
            request: ChatRequest {
                messages,
                system: None,
                max_tokens,
                temperature: body.temperature,
                stream,
                json_schema,
            },
            stream,
            include_usage,
        })
    }
}

/// Refuses every field that is neither ignorable nor at its "not used" value.
fn check_other(other: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in other {
        if IGNORED.contains(&key.as_str()) {
            continue;
        }
        match DEFAULT_ONLY.iter().find(|(name, _)| name == key) {
            Some((_, what)) if !is_unused(key, value) => {
                return Err(ApiError::unsupported(
                    key.clone(),
                    format!(
                        "`{key}` asks for {what}, which orc's gateway does not support; leave it out"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                return Err(ApiError::unsupported(
                    key.clone(),
                    format!(
                        "unknown or unsupported parameter `{key}`; orc's gateway accepts model, messages, stream, stream_options, max_tokens, max_completion_tokens, temperature, n (1) and response_format"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `value` of `key` means the feature is not used.
fn is_unused(key: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Array(items) => items.is_empty() || (key == "modalities" && only_text(items)),
        Value::Object(map) => map.is_empty(),
        Value::String(s) => matches!(key, "tool_choice" | "function_call") && s == "none",
        Value::Number(n) => match key {
            "top_p" => n.as_f64() == Some(1.0),
            "frequency_penalty" | "presence_penalty" | "top_logprobs" => n.as_f64() == Some(0.0),
            _ => false,
        },
        Value::Bool(true) => false,
    }
}

fn only_text(items: &[Value]) -> bool {
    items.iter().all(|m| m.as_str() == Some("text"))
}

fn max_tokens(legacy: Option<u32>, current: Option<u32>) -> Result<Option<u32>, ApiError> {
    let max = match (legacy, current) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(
                "max_completion_tokens",
                format!("`max_tokens` ({a}) and `max_completion_tokens` ({b}) disagree; send one"),
            ));
        }
        (a, b) => b.or(a),
    };
    if max == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens",
            "`max_tokens` must be at least 1",
        ));
    }
    Ok(max)
}

/// The JSON Schema `response_format` asks the answer to follow: `json_schema`'s
/// schema, or any JSON object for `json_object`; `None` for `text`.
fn response_format(format: &Value) -> Result<Option<Value>, ApiError> {
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(serde_json::json!({"type": "object"}))),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| s.is_object());
            match schema {
                Some(schema) => Ok(Some(schema.clone())),
                None => Err(ApiError::invalid(
                    "response_format.json_schema.schema",
                    "`response_format` of type `json_schema` needs `json_schema.schema`, a JSON Schema object",
                )),
            }
        }
        Some(other) => Err(ApiError::unsupported(
            "response_format.type",
            format!(
                "`response_format.type` `{other}` is not supported; use `text`, `json_object` or `json_schema`"
            ),
        )),
        None => Err(ApiError::invalid(
            "response_format.type",
            "`response_format` needs a `type`: `text`, `json_object` or `json_schema`",
        )),
    }
}

/// Message fields that do not change the answer when unset.
fn check_message_fields(i: usize, other: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in other {
        let unused = match value {
            Value::Null => true,
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        if unused {
            continue;
        }
        let what = match key.as_str() {
            "tool_calls" | "function_call" | "tool_call_id" => "tool calls (function calling)",
            "name" => "participant names",
            "audio" => "audio",
            "refusal" => "refusals in the conversation",
            _ => "an unknown message field",
        };
        return Err(ApiError::unsupported(
            format!("messages[{i}].{key}"),
            format!("`messages[{i}].{key}` asks for {what}, which orc's gateway does not support"),
        ));
    }
    Ok(())
}

fn message(i: usize, m: WireMessage) -> Result<Message, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => {
            return Err(ApiError::unsupported(
                format!("messages[{i}].role"),
                format!(
                    "`messages[{i}].role` is `{}`: tool results (function calling) are not supported by orc's gateway",
                    m.role
                ),
            ));
        }
        other => {
            return Err(ApiError::invalid(
                format!("messages[{i}].role"),
                format!(
                    "`messages[{i}].role` is `{}`; it must be system, developer, user or assistant",
                    cut(other)
                ),
            ));
        }
    };
    check_message_fields(i, &m.other)?;
    let content = match m.content {
        Some(Value::String(text)) => text,
        Some(Value::Array(parts)) => text_parts(i, &parts)?,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                format!("messages[{i}].content"),
                format!(
                    "`messages[{i}].content` is missing; it must be a string or a list of text parts"
                ),
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                format!("messages[{i}].content"),
                format!("`messages[{i}].content` must be a string or a list of text parts"),
            ));
        }
    };
    Ok(Message { role, content })
}

/// The text of a list of content parts, joined with newlines; images, audio and files
/// are refused.
fn text_parts(i: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(text) => texts.push(text),
                None => {
                    return Err(ApiError::invalid(
                        format!("{param}.text"),
                        format!("`{param}.text` must be a string"),
                    ));
                }
            },
            Some(kind @ ("image_url" | "input_image" | "input_audio" | "file" | "input_file")) => {
                return Err(ApiError::unsupported(
                    format!("{param}.type"),
                    format!(
                        "`{param}` is an `{kind}` part: orc's gateway takes text only (no images, audio or files)"
                    ),
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("{param}.type"),
                    format!(
                        "`{param}.type` is `{}`; only `text` parts are supported",
                        cut(other)
                    ),
                ));
            }
            None => {
                return Err(ApiError::invalid(
                    format!("{param}.type"),
                    format!("`{param}` needs a `type`"),
                ));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// A client's string cut short for a message.
pub(crate) fn cut(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Result<Chat, ApiError> {
        let body: ChatCompletionRequest =
            serde_json::from_value(body).map_err(|e| ApiError::BadBody {
                message: e.to_string(),
                param: None,
            })?;
        Chat::try_from(body)
    }

    fn param_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Invalid { param, .. } => param,
            _ => None,
        }
    }

    #[test]
    fn maps_messages_parts_and_parameters() -> Result<(), ApiError> {
        let chat = read(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "ok", "tool_calls": []},
                {"role": "user", "content": "go", "name": null}
            ],
            "max_completion_tokens": 12,
            "temperature": 0.5,
            "n": 1,
            "top_p": 1,
            "user": "someone",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "stream": true,
            "stream_options": {"include_usage": true}
        }))?;
        assert_eq!(chat.model, "m");
        assert!(chat.stream && chat.include_usage);
        let r = &chat.request;
        assert_eq!(r.messages[0], Message::system("be brief"));
        assert_eq!(r.messages[1], Message::user("a\nb"));
        assert_eq!(r.messages[2], Message::assistant("ok"));
        assert_eq!(r.max_tokens, Some(12));
        assert_eq!(r.temperature, Some(0.5));
        assert_eq!(r.json_schema, Some(json!({"type": "object"})));
        Ok(())
    }

    #[test]
    fn refuses_what_changes_the_answer_naming_the_field() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let with = |key: &str, value: Value| {
            let mut body = base();
            body[key] = value;
            read(body).err().and_then(param_of)
        };
        assert_eq!(with("n", json!(2)).as_deref(), Some("n"));
        assert_eq!(
            with("tools", json!([{"type": "function"}])).as_deref(),
            Some("tools")
        );
        assert_eq!(with("stop", json!(["\n"])).as_deref(), Some("stop"));
        assert_eq!(with("top_p", json!(0.5)).as_deref(), Some("top_p"));
        assert_eq!(with("seed", json!(7)).as_deref(), Some("seed"));
        assert_eq!(with("frobnicate", json!(1)).as_deref(), Some("frobnicate"));
        assert_eq!(
            with("temperature", json!(3.5)).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            with("stream_options", json!({"include_usage": true})).as_deref(),
            Some("stream_options")
        );
        assert_eq!(
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
            )
            .as_deref(),
            Some("messages[0].content[0].type")
        );
        assert_eq!(
            with("messages", json!([{"role": "tool", "content": "x"}])).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            with(
                "messages",
                json!([{"role": "user", "content": "x", "name": "bob"}])
            )
            .as_deref(),
            Some("messages[0].name")
        );
        assert_eq!(with("messages", json!([])).as_deref(), Some("messages"));
        assert_eq!(
            with("response_format", json!({"type": "json_schema"})).as_deref(),
            Some("response_format.json_schema.schema")
        );
        // The values that mean "not used" pass.
        assert!(with("tool_choice", json!("none")).is_none());
        assert!(with("logprobs", json!(false)).is_none());
        assert!(with("frequency_penalty", json!(0)).is_none());
    }

    #[test]
    fn max_tokens_spellings_must_agree() {
        assert!(matches!(max_tokens(Some(5), None), Ok(Some(5))));
        assert!(matches!(max_tokens(None, Some(6)), Ok(Some(6))));
        assert!(matches!(max_tokens(Some(6), Some(6)), Ok(Some(6))));
        assert!(max_tokens(Some(5), Some(6)).is_err());
        assert!(max_tokens(Some(0), None).is_err());
    }

    #[test]
    fn cut_keeps_short_text_and_cuts_long() {
        assert_eq!(cut("abc"), "abc");
        assert_eq!(cut(&"é".repeat(100)).chars().count(), 65);
    }
}
