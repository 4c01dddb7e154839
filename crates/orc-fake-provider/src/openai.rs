//! The OpenAI-compatible wire protocol: chat completions, completions,
//! embeddings and the model list.

use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::behaviour::{Reply, take_markers};
use crate::text::{base64_f32, embedding, pieces, words};
use crate::wire::{
    Answer, ApiError, Parsed, flag, optional_count, read_messages, required_str, sse_data,
};

/// `created` in every response: fixed, so answers are byte-for-byte deterministic.
pub(crate) const CREATED: u64 = 1_700_000_000;

fn marker_error(e: crate::Error) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn stream_flags(request: &Value, parsed: &mut Parsed) {
    parsed.stream = flag(request, "stream");
    parsed.include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
}

pub(crate) fn parse_chat(request: &Value) -> Result<Parsed, ApiError> {
    let mut parsed = Parsed {
        model: required_str(request, "model")?,
        ..Parsed::default()
    };
    stream_flags(request, &mut parsed);
    parsed.max_tokens = match optional_count(request, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => optional_count(request, "max_tokens")?,
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "`messages` is a required property (a list)",
        ));
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
        ));
    }
    read_messages(messages, &mut parsed)?;
    Ok(parsed)
}

/// `prompt` or `input`: a string or a list of strings.
fn string_or_list(request: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match request.get(key) {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{key}` must be a string or a list of strings (token arrays are not supported by the fake)"
                    ))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{key}` must be a string or a non-empty list of strings"
        ))),
        None => Err(ApiError::bad_request(format!(
            "`{key}` is a required property"
        ))),
    }
}

/// Markers from every text: stripped, and merged into one reply.
fn prompts_with_markers(texts: Vec<String>, parsed: &mut Parsed) -> Result<(), ApiError> {
    let mut marker = Reply::default();
    for text in texts {
        let (clean, m) = take_markers(&text).map_err(marker_error)?;
        marker.merge(m);
        parsed.input_tokens += words(&clean);
        parsed.prompts.push(clean);
    }
    parsed.marker = marker;
    Ok(())
}

pub(crate) fn parse_completions(request: &Value) -> Result<Parsed, ApiError> {
    let mut parsed = Parsed {
        model: required_str(request, "model")?,
        max_tokens: optional_count(request, "max_tokens")?,
        ..Parsed::default()
    };
    stream_flags(request, &mut parsed);
    let prompts = string_or_list(request, "prompt")?;
    prompts_with_markers(prompts, &mut parsed)?;
    Ok(parsed)
}

pub(crate) fn parse_embeddings(request: &Value) -> Result<Parsed, ApiError> {
    let mut parsed = Parsed {
        model: required_str(request, "model")?,
        dimensions: optional_count(request, "dimensions")?,
        ..Parsed::default()
    };
    if parsed.dimensions == Some(0) {
        return Err(ApiError::bad_request("`dimensions` must be at least 1"));
    }
    parsed.base64 = match request.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "`encoding_format` must be `float` or `base64`",
            ));
        }
    };
    let inputs = string_or_list(request, "input")?;
    prompts_with_markers(inputs, &mut parsed)?;
    Ok(parsed)
}

fn usage(input: u64, output: u64) -> Value {
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

fn finish_reason(answer: &Answer) -> &'static str {
    if answer.truncated { "length" } else { "stop" }
}

fn output_tokens(answers: &[Answer]) -> u64 {
    answers.iter().map(|a| a.output_tokens).sum()
}

pub(crate) fn chat(parsed: &Parsed, answer: &Answer, id: u64) -> Value {
    json!({
        "id": format!("chatcmpl-fake-{id:016x}"),
        "object": "chat.completion",
        "created": CREATED,
        "model": parsed.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(answer),
        }],
        "usage": usage(parsed.input_tokens, answer.output_tokens),
        "system_fingerprint": "fp_fake",
    })
}

pub(crate) fn chat_stream(parsed: &Parsed, answer: &Answer, id: u64) -> Vec<Bytes> {
    let id = format!("chatcmpl-fake-{id:016x}");
    let usage_null = parsed.include_usage.then_some(Value::Null);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": parsed.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if let (Some(u), Some(map)) = (&usage_null, c.as_object_mut()) {
            map.insert("usage".into(), u.clone());
        }
        sse_data(&c)
    };
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    for piece in pieces(&answer.text) {
        frames.push(chunk(json!({"content": piece}), None));
    }
    frames.push(chunk(json!({}), Some(finish_reason(answer))));
    if parsed.include_usage {
        frames.push(sse_data(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": parsed.model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage(parsed.input_tokens, answer.output_tokens),
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

pub(crate) fn completions(parsed: &Parsed, answers: &[Answer], id: u64) -> Value {
    let choices: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({"text": a.text, "index": i, "logprobs": null, "finish_reason": finish_reason(a)})
        })
        .collect();
    json!({
        "id": format!("cmpl-fake-{id:016x}"),
        "object": "text_completion",
        "created": CREATED,
        "model": parsed.model,
        "choices": choices,
        "usage": usage(parsed.input_tokens, output_tokens(answers)),
    })
}

pub(crate) fn completions_stream(parsed: &Parsed, answers: &[Answer], id: u64) -> Vec<Bytes> {
    let id = format!("cmpl-fake-{id:016x}");
    let chunk = |index: usize, text: &str, finish: Option<&str>| {
        sse_data(&json!({
            "id": id,
            "object": "text_completion",
            "created": CREATED,
            "model": parsed.model,
            "choices": [{"text": text, "index": index, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let mut frames = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        for piece in pieces(&answer.text) {
            frames.push(chunk(i, piece, None));
        }
        frames.push(chunk(i, "", Some(finish_reason(answer))));
    }
    if parsed.include_usage {
        frames.push(sse_data(&json!({
            "id": id,
            "object": "text_completion",
            "created": CREATED,
            "model": parsed.model,
            "choices": [],
            "usage": usage(parsed.input_tokens, output_tokens(answers)),
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

pub(crate) fn embeddings(parsed: &Parsed, default_dims: usize) -> Value {
    let dims = parsed.dimensions.unwrap_or(default_dims);
    let data: Vec<Value> = parsed
        .prompts
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let v = embedding(input, dims);
            let vector = if parsed.base64 {
                json!(base64_f32(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": parsed.model,
        "usage": {"prompt_tokens": parsed.input_tokens, "total_tokens": parsed.input_tokens},
    })
}

pub(crate) fn models(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": CREATED, "owned_by": "orc-fake-provider"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// A stream whose data lines are not JSON.
pub(crate) fn garbage_stream() -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"data: {\"id\": this is not json (orc-fake-provider garbage)\n\n"),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]
}
