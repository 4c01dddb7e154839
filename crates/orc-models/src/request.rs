//! Provider-neutral requests and responses.
//!
//! All of them serialize, so the response cache can use requests as keys (through
//! [`canonical_json`]) and responses as values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::usage::Usage;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (merged into Anthropic's `system`).
    System,
    /// The user's turn.
    User,
    /// The model's earlier turn.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
}

/// A chat request: a conversation and generation parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Instructions sent before the conversation.
    #[serde(default)]
    pub system: Option<String>,
    /// At most this many tokens of answer (Anthropic requires one: 4096 when unset).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, serialize_with = "short_f32")]
    pub temperature: Option<f32>,
    /// Whether the provider is asked to stream; [`crate::ModelClient::chat`] assembles
    /// the stream either way.
    #[serde(default)]
    pub stream: bool,
    /// A JSON Schema the answer must follow: OpenAI's `response_format` of type
    /// `json_schema`; for Anthropic an instruction appended to the system prompt.
    #[serde(default, serialize_with = "sorted_value")]
    pub json_schema: Option<Value>,
}

impl ChatRequest {
    /// A request with one user message and every parameter at its default.
    pub fn user(prompt: impl Into<String>) -> Self {
        ChatRequest {
            messages: vec![Message::user(prompt)],
            ..ChatRequest::default()
        }
    }

    /// The request as canonical JSON (sorted keys, no spaces): equal requests give
    /// equal text.
    pub fn canonical_json(&self) -> Result<String> {
        canonical_json(self)
    }
}

/// A text-completion request with a list of prompts, answered in one upstream call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    /// The prompts; the answer has one text per prompt, in the same order.
    pub prompts: Vec<String>,
    /// At most this many tokens per answer.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, serialize_with = "short_f32")]
    pub temperature: Option<f32>,
}

impl CompletionRequest {
    /// The request as canonical JSON (sorted keys, no spaces).
    pub fn canonical_json(&self) -> Result<String> {
        canonical_json(self)
    }
}

/// An embedding request for a list of texts, answered in one upstream call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    /// The texts; the answer has one vector per text, in the same order.
    pub inputs: Vec<String>,
}

impl EmbeddingRequest {
    /// The request as canonical JSON (sorted keys, no spaces).
    pub fn canonical_json(&self) -> Result<String> {
        canonical_json(self)
    }
}

/// A request as the gateway sends it: under a budget, a request with no bound on its
/// output is sent with one, so the reservation's worst case is one the provider
/// enforces. The response cache and the in-flight table key the request as sent,
/// never as asked for, so an answer cut at that bound is only ever reused by a
/// request that is sent with the same bound.
pub trait WireRequest: Serialize + Clone {
    /// The request with `max_tokens` set to `bound` when it sets none; `None` when
    /// it is sent as it is (it has a bound, or its endpoint generates no text).
    fn with_output_bound(&self, bound: u32) -> Option<Self>;
}

impl WireRequest for ChatRequest {
    fn with_output_bound(&self, bound: u32) -> Option<Self> {
        self.max_tokens.is_none().then(|| ChatRequest {
            max_tokens: Some(bound),
            ..self.clone()
        })
    }
}

impl WireRequest for CompletionRequest {
    fn with_output_bound(&self, bound: u32) -> Option<Self> {
        self.max_tokens.is_none().then(|| CompletionRequest {
            max_tokens: Some(bound),
            ..self.clone()
        })
    }
}

impl WireRequest for EmbeddingRequest {
    fn with_output_bound(&self, _bound: u32) -> Option<Self> {
        None
    }
}

/// The answer to a [`ChatRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// Tokens used.
    pub usage: Usage,
    /// Why generation stopped, in the provider's words (`stop`, `length`, `end_turn`, …).
    pub finish_reason: Option<String>,
}

/// The answer to a [`CompletionRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// One text per prompt, in the order of the prompts.
    pub texts: Vec<String>,
    /// Tokens used by the whole call.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

/// The answer to an [`EmbeddingRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// One vector per input, in the order of the inputs.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens used by the whole call.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

/// One entry of a provider's model list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The provider's id of the model.
    pub id: String,
    /// A human-readable name, when the provider gives one.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Serializes an `f32` as the shortest decimal that reads back as it (`0.7`, not the
/// `0.699999988079071` of widening it to `f64`), through `serde_json::Value` too.
fn short_f32<S: serde::Serializer>(value: &Option<f32>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) if v.is_finite() => {
            let wide = v.to_string().parse::<f64>().unwrap_or(f64::from(*v));
            serializer.serialize_some(&wide)
        }
        Some(v) => serializer.serialize_some(v),
        None => serializer.serialize_none(),
    }
}

/// Serializes a JSON value with its object keys sorted at every depth, so the
/// serialization of a request that holds one is canonical.
fn sorted_value<S: serde::Serializer>(
    value: &Option<Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_some(&Sorted(v)),
        None => serializer.serialize_none(),
    }
}

struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &Sorted(v))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// `value` as canonical JSON: object keys sorted (recursively), no whitespace.
///
/// Two values that differ only in key order give the same text, whatever order the
/// serializer or a `preserve_order` map kept.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let value = serde_json::to_value(value).map_err(|e| Error::Encode {
        message: e.to_string(),
    })?;
    let mut out = String::new();
    write_canonical(&value, &mut out);
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A string always serializes.
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() -> Result<()> {
        let a = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": "é"}});
        let b = json!({"a": {"c": "é", "z": [ {"x": 2, "y": 1} ]}, "b": 1});
        assert_eq!(canonical_json(&a)?, canonical_json(&b)?);
        assert_eq!(
            canonical_json(&a)?,
            r#"{"a":{"c":"é","z":[{"x":2,"y":1}]},"b":1}"#
        );
        Ok(())
    }

    #[test]
    fn requests_differing_in_any_parameter_differ() -> Result<()> {
        let base = ChatRequest::user("hi");
        let mut hotter = base.clone();
        hotter.temperature = Some(0.7);
        let mut longer = base.clone();
        longer.max_tokens = Some(10);
        let mut schema_a = base.clone();
        schema_a.json_schema = Some(json!({"type": "object", "required": ["a"]}));
        let mut schema_b = base.clone();
        schema_b.json_schema = Some(json!({"required": ["a"], "type": "object"}));
        assert_ne!(base.canonical_json()?, hotter.canonical_json()?);
        assert_ne!(base.canonical_json()?, longer.canonical_json()?);
        assert_eq!(schema_a.canonical_json()?, schema_b.canonical_json()?);
        assert!(hotter.canonical_json()?.contains(r#""temperature":0.7"#));
        Ok(())
    }

    #[test]
    fn requests_and_responses_round_trip() -> std::result::Result<(), serde_json::Error> {
        let request = ChatRequest {
            messages: vec![Message::system("be brief"), Message::user("hi")],
            system: Some("sys".into()),
            max_tokens: Some(5),
            temperature: Some(0.25),
            stream: true,
            json_schema: None,
        };
        let text = serde_json::to_string(&request)?;
        assert_eq!(serde_json::from_str::<ChatRequest>(&text)?, request);
        let response = ChatResponse {
            text: "hello".into(),
            model: "m".into(),
            usage: Usage {
                input_tokens: 3,
                cached_input_tokens: 1,
                output_tokens: 2,
            },
            finish_reason: Some("stop".into()),
        };
        let text = serde_json::to_string(&response)?;
        assert_eq!(serde_json::from_str::<ChatResponse>(&text)?, response);
        Ok(())
    }

    #[test]
    fn usage_adds_up() {
        let mut total = Usage::default();
        total += Usage {
            input_tokens: 1,
            cached_input_tokens: 0,
            output_tokens: 2,
        };
        total += Usage {
            input_tokens: 10,
            cached_input_tokens: 5,
            output_tokens: 20,
        };
        assert_eq!(
            total,
            Usage {
                input_tokens: 11,
                cached_input_tokens: 5,
                output_tokens: 22
            }
        );
    }
}
