//! Anthropic's Messages API: `POST /v1/messages` (plain and streaming) and the
//! model list.

use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::behaviour::strip_markers;
use crate::text::{pieces, words};
use crate::wire::{
    Answer, ApiError, Parsed, content_text, flag, optional_count, read_messages, required_str,
    sse_event,
};

pub(crate) fn parse_messages(request: &Value) -> Result<Parsed, ApiError> {
    let mut parsed = Parsed {
        model: required_str(request, "model")?,
        stream: flag(request, "stream"),
        ..Parsed::default()
    };
    parsed.max_tokens = Some(
        optional_count(request, "max_tokens")?
            .ok_or_else(|| ApiError::bad_request("max_tokens: Field required"))?,
    );
    if let Some(system) = request.get("system") {
        parsed.input_tokens += words(&strip_markers(&content_text(system)));
    }
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("messages: Field required"));
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages: at least one message is required",
        ));
    }
    read_messages(messages, &mut parsed)?;
    Ok(parsed)
}

fn stop_reason(answer: &Answer) -> &'static str {
    if answer.truncated {
        "max_tokens"
    } else {
        "end_turn"
    }
}

fn message_id(id: u64) -> String {
    format!("msg_fake_{id:016x}")
}

pub(crate) fn message(parsed: &Parsed, answer: &Answer, id: u64) -> Value {
    json!({
        "id": message_id(id),
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": stop_reason(answer),
        "stop_sequence": null,
        "usage": {"input_tokens": parsed.input_tokens, "output_tokens": answer.output_tokens},
    })
}

/// message_start, content_block_start, ping, content_block_delta…,
/// content_block_stop, message_delta, message_stop: Anthropic's event sequence.
pub(crate) fn message_stream(parsed: &Parsed, answer: &Answer, id: u64) -> Vec<Bytes> {
    let mut frames = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(id),
                "type": "message",
                "role": "assistant",
                "model": parsed.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": parsed.input_tokens, "output_tokens": 1},
            }}),
        ),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    for piece in pieces(&answer.text) {
        frames.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    frames.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(sse_event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
            "usage": {"output_tokens": answer.output_tokens},
        }),
    ));
    frames.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    frames
}

pub(crate) fn models(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"})
        })
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
    })
}

/// A stream whose data lines are not JSON.
pub(crate) fn garbage_stream() -> Vec<Bytes> {
    vec![
        Bytes::from_static(
            b"event: message_start\ndata: {\"type\": this is not json (orc-fake-provider garbage)\n\n",
        ),
        Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
    ]
}
