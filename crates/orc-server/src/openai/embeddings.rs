//! `POST /v1/embeddings`, through the gateway's per-input cache and batching.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::error::ApiError;
use super::wire::{
    Embedding, EmbeddingUsage, EmbeddingsRequest, EmbeddingsResponse, Vector, base64_f32,
};
use super::{AppState, orc_headers, select};

/// The most inputs one request may hold (OpenAI's own limit).
pub(crate) const MAX_INPUTS: usize = 2048;

/// How the vectors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Float,
    Base64,
}

/// The handler, in a span with the model once chosen.
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Response {
    let span = tracing::info_span!("openai_embeddings", model = Empty, inputs = Empty);
    answer(state, headers, body)
        .instrument(span)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    state: AppState,
    headers: HeaderMap,
    body: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let gateway = state.gateway()?;
    let Json(body) = body?;
    if let Some(key) = body.other.keys().find(|k| k.as_str() != "user") {
        return Err(ApiError::unsupported(
            key.clone(),
            format!(
                "unknown or unsupported parameter `{key}`; orc's gateway accepts model, input, encoding_format and user"
            ),
        ));
    }
    if body.dimensions.is_some() {
        return Err(ApiError::unsupported(
            "dimensions",
            "`dimensions` is not supported by orc's gateway: vectors come at the model's own size; leave it out",
        ));
    }
    let encoding = match body.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!(
                    "`encoding_format` is `{}`; it must be `float` or `base64`",
                    super::request::cut(other)
                ),
            ));
        }
    };
    let inputs = inputs(body.input)?;
    if body.model == select::AUTO {
        return Err(ApiError::invalid(
            "model",
            "`auto` routes chat requests only: vectors of different models do not mix, so name the embedding model",
        ));
    }
    let model = select::named(gateway, &body.model)?;
    let span = tracing::Span::current();
    span.record("model", model.spec.name.as_str());
    span.record("inputs", inputs.len());
    let use_cache = state.use_cache(&headers);
    let answer = gateway.embed(&model, inputs, use_cache).await?;
    let headers = orc_headers(
        gateway,
        answer.source,
        use_cache,
        answer.cost,
        answer.fallback.len(),
    );
    let data = answer
        .value
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: "embedding",
            index,
            embedding: match encoding {
                Encoding::Float => Vector::Float(vector),
                Encoding::Base64 => Vector::Base64(base64_f32(&vector)),
            },
        })
        .collect();
    let body = EmbeddingsResponse {
        object: "list",
        data,
        model: answer.model.name.clone(),
        usage: EmbeddingUsage {
            prompt_tokens: answer.usage.input_tokens,
            total_tokens: answer.usage.input_tokens,
        },
    };
    Ok((headers, Json(body)).into_response())
}

/// `input`: a non-empty string, or a list of 1 to [`MAX_INPUTS`] of them.
fn inputs(input: Value) -> Result<Vec<String>, ApiError> {
    let items = match input {
        Value::String(text) => vec![Value::String(text)],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid("input", "`input` must not be empty"));
        }
        Value::Array(items) if items.len() > MAX_INPUTS => {
            return Err(ApiError::invalid(
                "input",
                format!(
                    "`input` holds {} items; at most {MAX_INPUTS} are accepted",
                    items.len()
                ),
            ));
        }
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "input",
                "`input` must be a string or a list of strings",
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(text) if !text.is_empty() => Ok(text),
            Value::String(_) => Err(ApiError::invalid(
                format!("input[{i}]"),
                format!("`input[{i}]` is empty; every input must hold text"),
            )),
            Value::Number(_) | Value::Array(_) => Err(ApiError::unsupported(
                format!("input[{i}]"),
                "token arrays are not supported by orc's gateway; send text",
            )),
            _ => Err(ApiError::invalid(
                format!("input[{i}]"),
                format!("`input[{i}]` must be a string"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_strings_or_lists_of_strings() {
        assert!(matches!(inputs(json!("a")).as_deref(), Ok([a]) if a == "a"));
        assert!(matches!(inputs(json!(["a", "b"])), Ok(v) if v.len() == 2));
        assert!(inputs(json!([])).is_err());
        assert!(inputs(json!([1, 2, 3])).is_err());
        assert!(inputs(json!(["a", ""])).is_err());
        assert!(inputs(json!(7)).is_err());
        let many: Vec<String> = (0..=MAX_INPUTS).map(|i| i.to_string()).collect();
        assert!(inputs(json!(many)).is_err());
    }
}
