//! The crate's error type: every failure says whether a retry can help.

use std::fmt;
use std::time::Duration;

use crate::budget::BudgetError;
use crate::fallback::Fallback;
use crate::provider_kind::ProviderKind;
use crate::router::RouteError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with a call, coarsely: enough to pick a metric label or a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The provider answered 429.
    RateLimited,
    /// The provider answered 5xx (including Anthropic's 529 "overloaded").
    Server,
    /// The connection could not be made, or was closed before an answer.
    Connection,
    /// The connect or request timeout passed, or the provider answered 408.
    Timeout,
    /// The body or stream ended before it was complete.
    Truncated,
    /// The provider refused the request (a 4xx other than 408 and 429).
    Rejected,
    /// The provider answered, but not in its protocol (not JSON, missing fields).
    InvalidResponse,
    /// The request could not be built or is not supported by this provider.
    InvalidRequest,
    /// The prompt does not fit the model's context window (a 400 or 413 whose
    /// provider message says so). Not retryable on the same model; a model with a
    /// larger window may take it.
    ContextLength,
}

impl FailureKind {
    /// A short label: `rate_limited`, `server_error`, … (for metrics and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Server => "server_error",
            FailureKind::Connection => "connection_error",
            FailureKind::Timeout => "timeout",
            FailureKind::Truncated => "truncated",
            FailureKind::Rejected => "rejected",
            FailureKind::InvalidResponse => "invalid_response",
            FailureKind::InvalidRequest => "invalid_request",
            FailureKind::ContextLength => "context_length",
        }
    }

    /// Whether the failure says something about the model's health (its success rate
    /// and cool-down): rate limits, server and connection errors, timeouts, truncated
    /// or malformed answers. A rejected request or a prompt too long for the window is
    /// the request's problem, not the model's.
    pub fn is_model_failure(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited
                | FailureKind::Server
                | FailureKind::Connection
                | FailureKind::Timeout
                | FailureKind::Truncated
                | FailureKind::InvalidResponse
        )
    }

    /// Whether another attempt of the same request may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited
                | FailureKind::Server
                | FailureKind::Connection
                | FailureKind::Timeout
                | FailureKind::Truncated
        )
    }

    fn describe(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate limited",
            FailureKind::Server => "server error",
            FailureKind::Connection => "connection failed",
            FailureKind::Timeout => "timed out",
            FailureKind::Truncated => "response truncated",
            FailureKind::Rejected => "request rejected",
            FailureKind::InvalidResponse => "invalid response",
            FailureKind::InvalidRequest => "invalid request",
            FailureKind::ContextLength => "context window exceeded",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which call failed: provider, model and the HTTP status when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// The provider.
    pub provider: ProviderKind,
    /// The provider's id of the model.
    pub model: String,
    /// The HTTP status of the answer; `None` when no answer came.
    pub status: Option<u16>,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} model `{}`", self.provider, self.model)?;
        match self.status {
            Some(status) => write!(f, " (HTTP {status})"),
            None => f.write_str(" (no HTTP status)"),
        }
    }
}

/// The errors of model calls and of reading model configuration.
///
/// No variant ever holds an API key: provider messages are stripped of it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A call failed in a way another attempt may not: 429, 5xx, 408, a connection
    /// error, a timeout or a truncated answer.
    #[error("{site}: {}: {message}{}", kind.describe(), RetryNote(*after))]
    Retryable {
        /// How long the provider asked us to wait (`Retry-After`), if it did.
        after: Option<Duration>,
        /// ProviderKind, model and status.
        site: CallSite,
        /// What went wrong.
        kind: FailureKind,
        /// The provider's own message, or the transport's.
        message: String,
    },
    /// A call failed in a way that retrying the same request cannot fix: another 4xx,
    /// an answer that is not the provider's protocol, an unsupported request.
    #[error("{site}: {}: {message}", kind.describe())]
    Fatal {
        /// ProviderKind, model and status.
        site: CallSite,
        /// What went wrong.
        kind: FailureKind,
        /// The provider's own message, or what was wrong with the answer.
        message: String,
    },
    /// A model's API key variable is unset or empty.
    #[error(
        "model `{model}`: the API key variable {var} is not set; hint: export {var}, or choose another model"
    )]
    MissingKey {
        /// The model's name.
        model: String,
        /// The environment variable its config names.
        var: String,
    },
    /// The shared HTTP client could not be built (bad options, no TLS roots).
    #[error("cannot build the HTTP client: {message}")]
    Client {
        /// Why.
        message: String,
    },
    /// A request could not be serialized (for a cache key, say).
    #[error("cannot serialize the request: {message}")]
    Encode {
        /// Why.
        message: String,
    },
    /// A budget refused the call before it was made. Never retried, never fallen
    /// back on: the message says which budget, its limit, what is spent and reserved,
    /// and what the call needed.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// No model could be chosen for a step that names none.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The call failed, and so did every fallback tried after it; `last` is the
    /// last model's error, `tried` the fallbacks taken, in order.
    #[error("{last}; fallbacks tried: {}", FallbackList(tried))]
    FallbacksFailed {
        /// Each fallback taken: from which model, to which, and why.
        tried: Vec<Fallback>,
        /// The error of the last model tried.
        last: Box<Error>,
    },
}

struct FallbackList<'a>(&'a [Fallback]);

impl fmt::Display for FallbackList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} → {}", step.from, step.to)?;
        }
        Ok(())
    }
}

struct RetryNote(Option<Duration>);

impl fmt::Display for RetryNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(after) => write!(f, " (retry after {:.3}s)", after.as_secs_f64()),
            None => Ok(()),
        }
    }
}

impl Error {
    /// An error of kind `kind` at `site`: retryable or fatal as the kind says.
    pub fn call(
        site: CallSite,
        kind: FailureKind,
        message: impl Into<String>,
        after: Option<Duration>,
    ) -> Self {
        let message = message.into();
        if kind.is_retryable() {
            Error::Retryable {
                after,
                site,
                kind,
                message,
            }
        } else {
            Error::Fatal {
                site,
                kind,
                message,
            }
        }
    }

    /// Whether another attempt of the same call may succeed (after fallbacks: whether
    /// the last model's error is retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Retryable { .. } => true,
            Error::FallbacksFailed { last, .. } => last.is_retryable(),
            _ => false,
        }
    }

    /// Whether another model may answer where this one failed: a retryable error
    /// (the retry policy has already given up on it), a timeout, or a prompt too long
    /// for the model's context window. Budget refusals never are.
    pub fn is_fallback_eligible(&self) -> bool {
        match self {
            Error::Retryable { .. } => true,
            Error::Fatal { kind, .. } => {
                matches!(kind, FailureKind::Timeout | FailureKind::ContextLength)
            }
            _ => false,
        }
    }

    /// The budget refusal, when the call (or the last fallback) was refused by a budget.
    pub fn budget(&self) -> Option<&BudgetError> {
        match self {
            Error::Budget(e) => Some(e),
            Error::FallbacksFailed { last, .. } => last.budget(),
            _ => None,
        }
    }

    /// The fallbacks taken before the call failed for good (empty when none were).
    pub fn fallbacks(&self) -> &[Fallback] {
        match self {
            Error::FallbacksFailed { tried, .. } => tried,
            _ => &[],
        }
    }

    /// How long the provider asked to wait before retrying (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Retryable { after, .. } => *after,
            Error::FallbacksFailed { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The kind of failure, for calls that reached (or tried to reach) a provider.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            Error::Retryable { kind, .. } | Error::Fatal { kind, .. } => Some(*kind),
            Error::FallbacksFailed { last, .. } => last.kind(),
            _ => None,
        }
    }

    /// The HTTP status of the failed call, when an answer came.
    pub fn status(&self) -> Option<u16> {
        self.site().and_then(|site| site.status)
    }

    /// ProviderKind, model and status of the failed call.
    pub fn site(&self) -> Option<&CallSite> {
        match self {
            Error::Retryable { site, .. } | Error::Fatal { site, .. } => Some(site),
            Error::FallbacksFailed { last, .. } => last.site(),
            _ => None,
        }
    }
}

/// The failure kind of an HTTP error answer: its status, refined by the provider's
/// message (a 400 or 413 that says the prompt exceeds the context window is
/// [`FailureKind::ContextLength`]).
pub(crate) fn kind_of_answer(status: u16, message: &str) -> FailureKind {
    match kind_of_status(status) {
        FailureKind::Rejected if matches!(status, 400 | 413) && says_context_length(message) => {
            FailureKind::ContextLength
        }
        kind => kind,
    }
}

/// Whether a provider's error message says the prompt is over the context window, in
/// the words of OpenAI (`context_length_exceeded`, "maximum context length"),
/// Anthropic ("prompt is too long"), vLLM, llama.cpp and Ollama.
fn says_context_length(message: &str) -> bool {
    const PHRASES: &[&str] = &[
        "context_length_exceeded",
        "context length",
        "context window",
        "context size",
        "prompt is too long",
        "too many tokens",
        "exceeds the available context",
        "input is too long",
    ];
    let message = message.to_ascii_lowercase();
    PHRASES.iter().any(|p| message.contains(p))
}

/// The failure kind of an HTTP status that is not a success.
pub(crate) fn kind_of_status(status: u16) -> FailureKind {
    match status {
        429 => FailureKind::RateLimited,
        408 => FailureKind::Timeout,
        500..=599 => FailureKind::Server,
        _ => FailureKind::Rejected,
    }
}

/// The provider's own message from an error body.
///
/// Understands OpenAI's `{"error": {"message", "type", "code"}}`, Anthropic's
/// `{"type": "error", "error": {"type", "message"}}`, and the shapes of the compatible
/// servers (`{"error": "text"}`, `{"message": …}`, `{"detail": …}`); anything else is
/// shown as (the start of) the body itself.
pub(crate) fn provider_message(body: &[u8]) -> String {
    const LIMIT: usize = 500;
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = json.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .or_else(|| error.filter(|e| e.is_string()))
            .or_else(|| json.get("message"))
            .or_else(|| json.get("detail"));
        if let Some(message) = message {
            let text = match message {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let kind = error
                .and_then(|e| e.get("type").or_else(|| e.get("code")))
                .and_then(|t| t.as_str());
            let text = match kind {
                Some(kind) if !kind.is_empty() => format!("{kind}: {text}"),
                _ => text,
            };
            return cut(&text, LIMIT);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        cut(text, LIMIT)
    }
}

/// `text` cut to at most `limit` bytes on a character boundary, with `…` when cut.
pub(crate) fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The error and all its causes, joined with `: ` (reqwest hides the cause in `Display`).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(status: Option<u16>) -> CallSite {
        CallSite {
            provider: ProviderKind::OpenAi,
            model: "gpt-4o-mini".to_owned(),
            status,
        }
    }

    #[test]
    fn messages_name_provider_model_and_status() {
        let err = Error::call(
            site(Some(429)),
            FailureKind::RateLimited,
            "slow down",
            Some(Duration::from_millis(1500)),
        );
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(
            err.to_string(),
            "openai model `gpt-4o-mini` (HTTP 429): rate limited: slow down (retry after 1.500s)"
        );
        let err = Error::call(site(Some(400)), FailureKind::Rejected, "bad", None);
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "openai model `gpt-4o-mini` (HTTP 400): request rejected: bad"
        );
        let err = Error::call(site(None), FailureKind::Connection, "refused", None);
        assert_eq!(
            err.to_string(),
            "openai model `gpt-4o-mini` (no HTTP status): connection failed: refused"
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(429), FailureKind::RateLimited);
        assert_eq!(kind_of_status(408), FailureKind::Timeout);
        assert_eq!(kind_of_status(500), FailureKind::Server);
        assert_eq!(kind_of_status(529), FailureKind::Server);
        assert_eq!(kind_of_status(400), FailureKind::Rejected);
        assert_eq!(kind_of_status(404), FailureKind::Rejected);
        assert!(!kind_of_status(401).is_retryable());
        assert!(kind_of_status(503).is_retryable());
    }

    #[test]
    fn context_window_errors_are_recognised() {
        let openai = "invalid_request_error: This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";
        assert_eq!(kind_of_answer(400, openai), FailureKind::ContextLength);
        assert_eq!(
            kind_of_answer(
                400,
                "invalid_request_error: prompt is too long: 210000 tokens > 200000 maximum"
            ),
            FailureKind::ContextLength
        );
        assert_eq!(
            kind_of_answer(400, "bad temperature"),
            FailureKind::Rejected
        );
        assert_eq!(kind_of_answer(500, "context length"), FailureKind::Server);
        assert_eq!(kind_of_answer(401, "context length"), FailureKind::Rejected);
        let err = Error::call(site(Some(400)), FailureKind::ContextLength, openai, None);
        assert!(!err.is_retryable());
        assert!(err.is_fallback_eligible());
        assert!(!FailureKind::ContextLength.is_model_failure());
        let err = Error::call(site(Some(400)), FailureKind::Rejected, "no", None);
        assert!(!err.is_fallback_eligible());
        let err = Error::call(site(Some(503)), FailureKind::Server, "busy", None);
        assert!(err.is_fallback_eligible());
    }

    #[test]
    fn provider_error_shapes() {
        assert_eq!(
            provider_message(
                br#"{"error": {"message": "Rate limit reached", "type": "requests", "code": null}}"#
            ),
            "requests: Rate limit reached"
        );
        assert_eq!(
            provider_message(
                br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#
            ),
            "overloaded_error: Overloaded"
        );
        assert_eq!(
            provider_message(br#"{"error": "model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(provider_message(br#"{"detail": "Not Found"}"#), "Not Found");
        assert_eq!(provider_message(b"<html>502</html>"), "<html>502</html>");
        assert_eq!(provider_message(b""), "(empty body)");
        let long = "x".repeat(600);
        assert_eq!(provider_message(long.as_bytes()).chars().count(), 501);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("hello", 10), "hello");
    }
}
