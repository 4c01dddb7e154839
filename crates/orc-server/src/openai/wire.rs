//! OpenAI's wire format: the request bodies as clients send them and the response
//! bodies as clients read them.
//!
//! Request fields that orc acts on are typed; every other field lands in `other` and is
//! checked by name, so nothing that would change the answer is dropped unnoticed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    pub(crate) model: String,
    pub(crate) messages: Vec<WireMessage>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) temperature: Option<f32>,
    #[serde(default)]
    pub(crate) n: Option<u32>,
    #[serde(default)]
    pub(crate) response_format: Option<Value>,
    /// Every other field, checked by name.
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
    /// Every other option, checked by name.
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

/// One message of `messages`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    pub(crate) role: String,
    /// A string, or a list of content parts (`{"type": "text", "text": …}`).
    #[serde(default)]
    pub(crate) content: Option<Value>,
    /// Every other field (`name`, `tool_calls`, …), checked by name.
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsRequest {
    pub(crate) model: String,
    /// A string or a list of strings (token arrays are refused).
    pub(crate) input: Value,
    #[serde(default)]
    pub(crate) encoding_format: Option<String>,
    #[serde(default)]
    pub(crate) dimensions: Option<u32>,
    /// Every other field, checked by name.
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct WireUsage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl From<orc_models::Usage> for WireUsage {
    fn from(usage: orc_models::Usage) -> Self {
        WireUsage {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens.saturating_add(usage.output_tokens),
        }
    }
}

/// A `chat.completion`.
#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletion {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) choices: Vec<Choice>,
    pub(crate) usage: WireUsage,
}

/// The one choice of a `chat.completion`.
#[derive(Debug, Serialize)]
pub(crate) struct Choice {
    pub(crate) index: u32,
    pub(crate) message: AssistantMessage,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: &'static str,
}

/// The answer's message.
#[derive(Debug, Serialize)]
pub(crate) struct AssistantMessage {
    pub(crate) role: &'static str,
    pub(crate) content: String,
    pub(crate) refusal: Option<()>,
}

/// A `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: Vec<ChunkChoice<'a>>,
    /// Present (as `null` until the usage chunk) when the client asked for usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Option<WireUsage>>,
}

/// The one choice of a chunk.
#[derive(Debug, Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub(crate) index: u32,
    pub(crate) delta: Delta<'a>,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<&'static str>,
}

/// What a chunk adds to the answer.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<&'a str>,
}

/// A `model` of the model list.
#[derive(Debug, Serialize)]
pub(crate) struct WireModel {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) owned_by: String,
}

/// A `list` (of models or embeddings).
#[derive(Debug, Serialize)]
pub(crate) struct List<T> {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<T>,
}

/// The answer to `POST /v1/embeddings`.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingsResponse {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<Embedding>,
    pub(crate) model: String,
    pub(crate) usage: EmbeddingUsage,
}

/// One vector.
#[derive(Debug, Serialize)]
pub(crate) struct Embedding {
    pub(crate) object: &'static str,
    pub(crate) index: usize,
    pub(crate) embedding: Vector,
}

/// A vector as asked for: numbers, or the base64 of its little-endian `f32`s.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

/// Token counts of an embeddings call.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingUsage {
    pub(crate) prompt_tokens: u64,
    pub(crate) total_tokens: u64,
}

/// OpenAI's `finish_reason` for a provider's stop reason (Anthropic's `end_turn`,
/// `max_tokens`, … included); `stop` when the provider gave none.
pub(crate) fn finish_reason(provider: Option<&str>) -> &'static str {
    match provider {
        Some("length" | "max_tokens" | "model_context_window_exceeded") => "length",
        Some("content_filter" | "refusal") => "content_filter",
        _ => "stop",
    }
}

/// Standard base64 (with padding) of `vector`'s little-endian `f32`s: OpenAI's
/// `encoding_format: "base64"`, the official Python client's default.
pub(crate) fn base64_f32(vector: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_encodings() {
        // 1.0f32 is 00 00 80 3f; 2.0f32 is 00 00 00 40.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(base64_f32(&[]), "");
        // Three floats: 12 bytes, no padding.
        assert_eq!(base64_f32(&[0.0, 0.0, 0.0]), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn finish_reasons_speak_openai() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("length")), "length");
        assert_eq!(finish_reason(None), "stop");
    }
}
