//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the
//! status an OpenAI client expects, mapped from the gateway's errors.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orc_models::{Error as ModelError, FailureKind};
use serde_json::json;

/// Tells the official OpenAI clients whether retrying can help (they retry 429 and 5xx
/// otherwise, which is pointless for a budget refusal).
const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Why a request to the OpenAI-compatible endpoints failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request asks for something invalid or that orc cannot do.
    #[error("{message}")]
    Invalid {
        /// What is wrong, naming the field.
        message: String,
        /// The field, as OpenAI's `param`.
        param: Option<String>,
        /// OpenAI's `code`, when one fits.
        code: Option<&'static str>,
    },
    /// The body is not JSON, or not of the expected shape.
    #[error("{message}")]
    BadBody {
        /// axum's rejection text: names the field path and the line and column.
        message: String,
        /// The field path, when the JSON was read but a field was wrong.
        param: Option<String>,
    },
    /// The model named is not configured.
    #[error("The model `{model}` does not exist; the configured models are: {}", .known.join(", "))]
    UnknownModel {
        /// The name as asked (cut short).
        model: String,
        /// Every name the endpoint accepts.
        known: Vec<String>,
    },
    /// `orc serve` runs without models.
    #[error(
        "orc serve has no models: the config file's `models:` list is empty; hint: add models to it and restart"
    )]
    NoModels,
    /// The registry could not give the model (ambiguous name, unset key variable), or
    /// the gateway's call failed.
    #[error(transparent)]
    Gateway(#[from] ModelError),
}

impl ApiError {
    /// A 400 about `param`.
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    /// A 400 about `param` for a feature orc's gateway does not have.
    pub(crate) fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            param: Some(param.into()),
            code: Some("unsupported_parameter"),
        }
    }

    /// What the response says: status, OpenAI's `type`, `code` and `param`, and the
    /// `Retry-After` and `x-should-retry` headers when they apply.
    fn parts(&self) -> Parts {
        match self {
            ApiError::Invalid { param, code, .. } => {
                Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error")
                    .code(*code)
                    .param(param.clone())
            }
            ApiError::BadBody { param, .. } => {
                Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error")
                    .code(Some("invalid_json"))
                    .param(param.clone())
            }
            ApiError::UnknownModel { .. } => {
                Parts::new(StatusCode::NOT_FOUND, "invalid_request_error")
                    .code(Some("model_not_found"))
                    .param(Some("model".to_owned()))
            }
            ApiError::NoModels => {
                Parts::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
                    .code(Some("no_models_configured"))
                    .no_retry()
            }
            ApiError::Gateway(e) => gateway_parts(e),
        }
    }
}

fn gateway_parts(error: &ModelError) -> Parts {
    if error.is_budget_refusal() {
        // OpenAI's own spelling of "out of money": 429 `insufficient_quota`.
        return Parts::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota")
            .code(Some("insufficient_quota"))
            .no_retry();
    }
    match error {
        ModelError::CoolingDown { models } => {
            let wait = models
                .iter()
                .map(|(_, left)| *left)
                .filter(|left| left.is_finite() && *left >= 0.0)
                .fold(None, |min: Option<f64>, left| {
                    Some(min.map_or(left, |m| m.min(left)))
                });
            Parts::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
                .code(Some("models_cooling_down"))
                .retry_after(wait.map(Duration::from_secs_f64))
        }
        ModelError::UnknownModel { .. } => {
            Parts::new(StatusCode::NOT_FOUND, "invalid_request_error")
                .code(Some("model_not_found"))
                .param(Some("model".to_owned()))
        }
        ModelError::AmbiguousModel { .. } => {
            Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error")
                .code(Some("ambiguous_model"))
                .param(Some("model".to_owned()))
        }
        ModelError::NoCandidates => {
            Parts::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
                .code(Some("no_models_configured"))
                .no_retry()
        }
        // The server's configuration, not the request: no client retry fixes it.
        ModelError::MissingKey { .. } | ModelError::NoModelMatch { .. } => {
            Parts::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
                .code(Some("model_unavailable"))
                .no_retry()
        }
        ModelError::Client { .. } | ModelError::Encode { .. } => {
            Parts::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
        _ => upstream_parts(error),
    }
}

/// A call that reached (or tried to reach) a provider and failed.
fn upstream_parts(error: &ModelError) -> Parts {
    let bad_gateway = || Parts::new(StatusCode::BAD_GATEWAY, "upstream_error");
    let Some(kind) = error.kind() else {
        return Parts::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    match kind {
        FailureKind::RateLimited => {
            Parts::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
                .code(Some("rate_limit_exceeded"))
                .retry_after(error.retry_after())
        }
        FailureKind::Timeout => {
            Parts::new(StatusCode::GATEWAY_TIMEOUT, "timeout").code(Some("upstream_timeout"))
        }
        FailureKind::ContextLength => Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error")
            .code(Some("context_length_exceeded"))
            .param(Some("messages".to_owned())),
        FailureKind::InvalidRequest => {
            Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error").code(Some("unsupported"))
        }
        // The provider refused the request itself (400, 413, 422): the client's to fix.
        // Any other refusal (401, 403, 404) is orc's configuration: a bad gateway.
        FailureKind::Rejected if matches!(error.status(), Some(400 | 413 | 422)) => {
            Parts::new(StatusCode::BAD_REQUEST, "invalid_request_error")
                .code(Some("rejected_upstream"))
        }
        FailureKind::Rejected
        | FailureKind::Server
        | FailureKind::Connection
        | FailureKind::Truncated
        | FailureKind::InvalidResponse => bad_gateway().code(Some("upstream_failed")),
    }
}

/// The pieces of an error response besides its message.
#[derive(Debug)]
struct Parts {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    retry_after: Option<Duration>,
    no_retry: bool,
}

impl Parts {
    fn new(status: StatusCode, kind: &'static str) -> Self {
        Parts {
            status,
            kind,
            code: None,
            param: None,
            retry_after: None,
            no_retry: false,
        }
    }

    fn code(mut self, code: Option<&'static str>) -> Self {
        self.code = code;
        self
    }

    fn param(mut self, param: Option<String>) -> Self {
        self.param = param;
        self
    }

    fn retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    fn no_retry(mut self) -> Self {
        self.no_retry = true;
        self
    }
}

/// The OpenAI error body of `message`, for the response and for a stream's `error` event.
pub(crate) fn body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

impl ApiError {
    /// The OpenAI error body of this error (for a stream that fails after its start).
    pub(crate) fn to_body(&self) -> serde_json::Value {
        let parts = self.parts();
        body(
            &bounded(self.to_string()),
            parts.kind,
            parts.param.as_deref(),
            parts.code,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = self.parts();
        let message = bounded(self.to_string());
        if parts.status.is_server_error() {
            tracing::warn!(status = parts.status.as_u16(), "request failed: {message}");
        } else {
            tracing::info!(status = parts.status.as_u16(), "request refused: {message}");
        }
        let json = body(&message, parts.kind, parts.param.as_deref(), parts.code);
        let mut response = (parts.status, Json(json)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = parts.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a hammering.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if parts.no_retry {
            headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
        }
        response
    }
}

/// The most bytes of an error message: a serde message may quote the client's value.
const MAX_MESSAGE: usize = 2000;

/// `message` cut to [`MAX_MESSAGE`] bytes on a character boundary, with `…` when cut.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let param = match &rejection {
            JsonRejection::JsonDataError(e) => field_path(e),
            _ => None,
        };
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "the request body must be JSON, sent with `Content-Type: application/json`"
                    .to_owned()
            }
            other => other.body_text(),
        };
        ApiError::BadBody { message, param }
    }
}

/// The path of the field that did not deserialize (`messages[0].role`), read from the
/// rejection's source: axum reads bodies through `serde_path_to_error`.
fn field_path(error: &dyn std::error::Error) -> Option<String> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let path = e.path().to_string();
            return (path != ".").then_some(path);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refusals_are_insufficient_quota_and_not_retried() {
        let refusal = ModelError::Unpriced { model: "m".into() };
        let parts = ApiError::Gateway(refusal).parts();
        assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(parts.kind, "insufficient_quota");
        assert!(parts.no_retry);
    }

    #[test]
    fn messages_are_bounded() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short".to_owned()), "short");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let error = ApiError::Gateway(ModelError::CoolingDown {
            models: vec![("a".into(), 2.2), ("b".into(), 9.0)],
        });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("3"))
        );
    }
}
