//! `POST /v1/chat/completions`, plain; streamed answers are [`super::stream`]'s.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;
use tracing::field::Empty;

use super::error::ApiError;
use super::request::Chat;
use super::wire::{
    AssistantMessage, ChatCompletion, ChatCompletionRequest, Choice, WireUsage, finish_reason,
};
use super::{AppState, completion_id, orc_headers, select, stream, unix_now};

/// The handler: one span per request, with the model (once chosen) and whether the
/// answer is streamed.
pub(super) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Response {
    let span = tracing::info_span!("openai_chat", model = Empty, stream = Empty, cache = Empty);
    answer(state, headers, body)
        .instrument(span)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    state: AppState,
    headers: HeaderMap,
    body: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let gateway = state.gateway()?;
    let Json(body) = body?;
    let chat = Chat::try_from(body)?;
    let span = tracing::Span::current();
    span.record("stream", chat.stream);
    let model = select::chat_model(gateway, &chat.model, &chat.request)?;
    span.record("model", model.spec.name.as_str());
    let use_cache = state.use_cache(&headers);
    if chat.stream {
        return stream::respond(gateway, &model, chat, use_cache, &state.options).await;
    }
    let answer = gateway.chat(&model, &chat.request, use_cache).await?;
    let headers = orc_headers(
        gateway,
        answer.source,
        use_cache,
        answer.cost,
        answer.fallback.len(),
    );
    if let Some(label) = headers.get(super::ORC_CACHE).and_then(|v| v.to_str().ok()) {
        span.record("cache", label);
    }
    let response = answer.value;
    let body = ChatCompletion {
        id: completion_id(),
        object: "chat.completion",
        created: unix_now(),
        model: answer.model.name.clone(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: response.text,
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish_reason(response.finish_reason.as_deref()),
        }],
        usage: WireUsage::from(response.usage),
    };
    tracing::debug!(fallbacks = answer.fallback.len(), "answered");
    Ok((headers, Json(body)).into_response())
}
