//! The crate's one error type: every failure says whether a retry can help, and what
//! went wrong in the terms of the layer that found it (a provider call, the config, the
//! choice of a model, a budget).

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::fallback::Fallback;
use crate::provider_kind::ProviderKind;
use crate::usage::Usage;

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

/// The errors of model calls, of reading model configuration, of choosing a model and
/// of budgets.
///
/// Only [`Error::Retryable`] (and [`Error::FallbacksFailed`] whose last error is) may
/// succeed when tried again ([`Error::is_retryable`]); [`Error::is_fallback_eligible`]
/// says whether another model may. No variant ever holds an API key: provider messages
/// are stripped of it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A call failed in a way another attempt may not: 429, 5xx, 408, a connection
    /// error, a timeout or a truncated answer.
    #[error("{site}: {}: {message}{}", kind.describe(), RetryNote(*after))]
    Retryable {
        /// How long the provider asked us to wait (`Retry-After`), if it did.
        after: Option<Duration>,
        /// Provider, model and status.
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
        /// Provider, model and status.
        site: CallSite,
        /// What went wrong.
        kind: FailureKind,
        /// The provider's own message, or what was wrong with the answer.
        message: String,
    },
    /// A request of the shared client that is not a model call ([`HttpClient`](crate::HttpClient))
    /// got no whole answer: the URL or a header is not valid, the connection failed, the
    /// time ran out, the body broke off or is over its limit. Retryable as `kind` says.
    #[error("{}: {message}", kind.describe())]
    Request {
        /// What went wrong.
        kind: FailureKind,
        /// The transport's message.
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
    /// A provider name that is neither `openai` nor `anthropic`.
    #[error(
        "unknown provider `{name}`; hint: use `openai` (any OpenAI-compatible server) or `anthropic`"
    )]
    UnknownProvider {
        /// The name as written.
        name: String,
    },
    /// A problem in the `routing:` or `cost:` section, or a budget given on the command
    /// line ([`ConfigIssue`]: the key it is at and what is wrong).
    #[error("{0}")]
    Config(ConfigIssue),
    /// A model name matches no configured model.
    #[error("unknown model `{reference}`{}", hint_for(.suggestion.as_deref(), .known))]
    UnknownModel {
        /// The name as written.
        reference: String,
        /// The closest configured name, if one is close.
        suggestion: Option<String>,
        /// Every configured name.
        known: Vec<String>,
    },
    /// A model name matches several configured models.
    #[error("model `{reference}` is ambiguous: it matches {}; hint: write `provider:name`", .matches.join(", "))]
    AmbiguousModel {
        /// The name as written.
        reference: String,
        /// The names it matches.
        matches: Vec<String>,
    },
    /// No configured model meets a step's requirements (or has its key set).
    #[error("no configured model meets {wanted}:{}", reasons_text(.rejected))]
    NoModelMatch {
        /// The requirements, as text.
        wanted: String,
        /// Each model and why it was not eligible.
        rejected: Vec<(String, String)>,
    },
    /// The router was given no model to choose from.
    #[error("no model to choose from; hint: configure a model under `models:`")]
    NoCandidates,
    /// Every model the router could choose is cooling down after consecutive failures.
    #[error(
        "every candidate model is cooling down after repeated failures: {}; hint: see the earlier errors of these models, or wait",
        cooling_text(.models)
    )]
    CoolingDown {
        /// Each model and the seconds left of its cool-down.
        models: Vec<(String, f64)>,
    },
    /// A budget refused the call before it was made: its worst case does not fit what
    /// is left. Never retried, never fallen back on. Amounts are USD.
    #[error(
        "budget exhausted: {scope} ${}, spent ${}, reserved ${}, this call needs up to ${}; hint: raise the budget (--budget, cost.budget_per_hour), lower max_tokens, or use a cheaper model",
        Usd(*limit), Usd(*spent), Usd(*reserved), Usd(*requested)
    )]
    BudgetExhausted {
        /// Which limit.
        scope: BudgetScope,
        /// The limit.
        limit: f64,
        /// Settled spend counted against it (in the last hour, for the hourly budget).
        spent: f64,
        /// Reserved by calls in flight.
        reserved: f64,
        /// The call's worst case.
        requested: f64,
    },
    /// A budget refused the call: the model has no price and is not local, so its
    /// calls cannot be counted.
    #[error(
        "model `{model}` has no price and is not local, so the budget cannot cover its calls; hint: add `cost: {{input_per_1k: …, output_per_1k: …}}` to it, or `local: true`"
    )]
    Unpriced {
        /// The model's name.
        model: String,
    },
    /// A budget refused the call: a provider billed more than a call had reserved, so
    /// the budget grants nothing more, since it can no longer promise to stay within
    /// its limit. Amounts are USD.
    #[error(
        "budget stopped: a call reserved ${} but cost ${} (overruns so far ${}); no further paid calls are granted",
        Usd(*reserved), Usd(*actual), Usd(*overrun)
    )]
    BudgetOverrun {
        /// What the call that overran had reserved.
        reserved: f64,
        /// What it cost.
        actual: f64,
        /// Every overrun so far, summed.
        overrun: f64,
    },
    /// The call failed, and so did every fallback tried after it; `last` is the
    /// last model's error, `tried` the fallbacks taken, in order.
    #[error("{last}; fallbacks tried: {}", FallbackList(tried))]
    FallbacksFailed {
        /// Each fallback taken: from which model, to which, and why.
        tried: Vec<Fallback>,
        /// The error of the last model tried.
        last: Box<Error>,
    },
    /// A model action's parameter is missing or has the wrong type, or the action is not
    /// a model action ([`actions`](crate::actions)): the step's mistake, which no retry
    /// and no other model can mend.
    #[error("{message}")]
    Parameter {
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// `generate_structured`: the answer did not match the schema, even after one repair
    /// attempt. The calls were made, and paid for ([`Error::spent`]).
    #[error("{message}")]
    SchemaMismatch {
        /// What did not match.
        message: String,
        /// Tokens the two calls used.
        usage: Usage,
        /// USD they cost; `None` when the model has no price.
        cost: Option<f64>,
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

/// Which of a budget's limits refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    /// The run's budget.
    Run,
    /// The hourly budget.
    Hour,
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetScope::Run => "run budget",
            BudgetScope::Hour => "hourly budget",
        })
    }
}

/// A problem in the `routing:` or `cost:` section: the key it is at and what is wrong.
/// A finding of a config check ([`RoutingConfig::issues`](crate::RoutingConfig::issues));
/// as a failure it is [`Error::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where, as a path into the config file: `routing.fallbacks.small[1]`.
    pub key: String,
    /// What is wrong, with a hint when there is an obvious fix.
    pub message: String,
}

impl ConfigIssue {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl From<ConfigIssue> for Error {
    fn from(issue: ConfigIssue) -> Self {
        Error::Config(issue)
    }
}

/// USD for messages: two decimals from a cent up, else up to six significant places.
struct Usd(f64);

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x == 0.0 || x.abs() >= 0.01 {
            return write!(f, "{x:.2}");
        }
        let text = format!("{x:.8}");
        f.write_str(text.trim_end_matches('0'))
    }
}

fn hint_for(suggestion: Option<&str>, known: &[String]) -> String {
    match (suggestion, known.is_empty()) {
        (Some(s), _) => format!("; hint: did you mean `{s}`?"),
        (None, true) => "; hint: the config file's `models:` list is empty".to_owned(),
        (None, false) => format!("; hint: configured models are {}", known.join(", ")),
    }
}

fn reasons_text(rejected: &[(String, String)]) -> String {
    if rejected.is_empty() {
        return " the config file's `models:` list is empty".to_owned();
    }
    let mut out = String::new();
    for (name, why) in rejected {
        let _ = write!(out, "\n  - {name}: {why}");
    }
    out
}

fn cooling_text(models: &[(String, f64)]) -> String {
    models
        .iter()
        .map(|(name, left)| format!("{name} ({left:.1} s left)"))
        .collect::<Vec<_>>()
        .join(", ")
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
            Error::Request { kind, .. } => kind.is_retryable(),
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

    /// Whether a budget refused the call (or the last fallback): [`Error::BudgetExhausted`],
    /// [`Error::Unpriced`] or [`Error::BudgetOverrun`].
    pub fn is_budget_refusal(&self) -> bool {
        match self {
            Error::BudgetExhausted { .. }
            | Error::Unpriced { .. }
            | Error::BudgetOverrun { .. } => true,
            Error::FallbacksFailed { last, .. } => last.is_budget_refusal(),
            _ => false,
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
            Error::Retryable { kind, .. }
            | Error::Fatal { kind, .. }
            | Error::Request { kind, .. } => Some(*kind),
            Error::FallbacksFailed { last, .. } => last.kind(),
            _ => None,
        }
    }

    /// The HTTP status of the failed call, when an answer came.
    pub fn status(&self) -> Option<u16> {
        self.site().and_then(|site| site.status)
    }

    /// Tokens and USD a failed model action still spent: the calls of a
    /// [`Error::SchemaMismatch`]; nothing for the others (a failed call is not billed).
    pub fn spent(&self) -> (Usage, Option<f64>) {
        match self {
            Error::SchemaMismatch { usage, cost, .. } => (*usage, *cost),
            _ => (Usage::default(), Some(0.0)),
        }
    }

    /// Provider, model and status of the failed call.
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
