//! Errors as the runs API answers them: a status and a JSON body `{"error": {"type", "message"}}`
//! (with the compiler's findings for an invalid pipeline).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer of the runs API.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    kind: &'static str,
    message: String,
    extra: Vec<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            message: message.into(),
            extra: Vec::new(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Adds a field to the error object.
    pub(crate) fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }

    /// Says when to try again.
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(object) = error.as_object_mut() {
            for (key, value) in self.extra {
                object.insert(key.to_owned(), value);
            }
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The store's errors as the runtime classes them: a refused value is 422, a failure 503.
impl From<orc_state::Error> for Problem {
    fn from(e: orc_state::Error) -> Self {
        Problem::from(orc_runtime::Error::from(e))
    }
}

/// The runtime's refusals as answers: the caller's mistakes are 4xx, the store's failures 503.
impl From<orc_runtime::Error> for Problem {
    fn from(e: orc_runtime::Error) -> Self {
        use orc_runtime::Error as E;
        match e {
            E::Invalid { file, text, diags } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_pipeline",
                format!("{file}: {} error(s)", diags.error_count()),
            )
            .with("findings", orc_runtime::plans::findings(&diags, &file))
            .with("rendered", Value::String(diags.render(&file, &text))),
            E::Read(m) | E::Refused(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", m)
            }
            E::Held(m) => Problem::new(StatusCode::CONFLICT, "run_held", m),
            E::Changed(m) => Problem::new(StatusCode::CONFLICT, "pipeline_changed", m),
            E::NotFound(m) => Problem::not_found(m),
            E::Config(m) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "config", m.0),
            E::Store(m) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_store",
                format!("state store: {m}"),
            )
            .retry_after(1),
            E::Queue(m) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "queue", m).retry_after(1),
        }
    }
}
