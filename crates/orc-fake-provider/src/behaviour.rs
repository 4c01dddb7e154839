//! What the fake does: the per-server [`Behaviour`], the per-request [`Reply`]
//! knobs, and the `[[fake:…]]` marker syntax that sets them from a prompt.

use std::fmt;
use std::time::Duration;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `[[fake:…]]` marker (or [`Reply::from_marker`] spec) could not be read.
    #[error(
        "bad fake marker `{marker}`: {reason}\nhint: write `[[fake:key=value,…]]` with keys status, retry_after[=none], delay_ms, chunk_delay_ms, truncate[=abort|clean], garbage, close, fail_times, answer=TEXT (last)"
    )]
    Marker {
        /// The marker text as written.
        marker: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a truncated response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncate {
    /// Send part of the body, then close the connection: a plain response is
    /// shorter than its `Content-Length`, a stream never gets its last chunk.
    Abort,
    /// End the HTTP body properly, but early: a plain response holds half its
    /// JSON; a stream lacks `data: [DONE]` (OpenAI) or `message_stop` (Anthropic).
    Clean,
}

/// How one request is answered. Every field left at its default means "behave
/// normally". A `Reply` comes from a `[[fake:…]]` marker in the request, from
/// the server's scripted queue ([`Behaviour::script`]), or both: the marker's
/// fields win over the script's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Answer with this HTTP error status (400–599) and the provider's error JSON.
    pub status: Option<u16>,
    /// `Retry-After` seconds. A 429 carries the header (1 s by default) unless
    /// `no_retry_after`.
    pub retry_after: Option<u64>,
    /// A 429 without `Retry-After` (`retry_after=none`): the client's own back-off applies.
    pub no_retry_after: bool,
    /// Wait this long before answering (overrides [`Behaviour::latency`]).
    pub delay: Option<Duration>,
    /// Wait this long between the events of a streamed answer.
    pub chunk_delay: Option<Duration>,
    /// Cut the response short.
    pub truncate: Option<Truncate>,
    /// Answer 200 with a body that is not JSON (or SSE events that are not JSON).
    pub garbage: bool,
    /// Close the connection without answering.
    pub close: bool,
    /// Apply this reply's faults (default: a 500) only the first `n` times this
    /// exact request is seen (same endpoint and same JSON body, key order
    /// ignored), then answer normally.
    pub fail_times: Option<u32>,
    /// Answer with this text instead of the default echo.
    pub text: Option<String>,
}

impl Reply {
    /// An error reply with HTTP `status`.
    pub fn error(status: u16) -> Self {
        Reply {
            status: Some(status),
            ..Reply::default()
        }
    }

    /// A 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Reply {
            status: Some(429),
            retry_after: Some(retry_after_secs),
            ..Reply::default()
        }
    }

    /// A normal answer whose text is `text`.
    pub fn answer(text: impl Into<String>) -> Self {
        Reply {
            text: Some(text.into()),
            ..Reply::default()
        }
    }

    /// Reads the inside of a marker, e.g. `"status=429,retry_after=1"`: the same
    /// syntax as `[[fake:status=429,retry_after=1]]` in a prompt.
    pub fn from_marker(spec: &str) -> Result<Self> {
        let bad = |reason: String| Error::Marker {
            marker: spec.to_owned(),
            reason,
        };
        let mut reply = Reply::default();
        let mut rest = spec;
        while !rest.is_empty() {
            let (item, tail) = match rest.split_once(',') {
                Some((item, tail)) => (item, tail),
                None => (rest, ""),
            };
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item.trim(), None),
            };
            if key == "answer" {
                // `answer` takes everything after `=`, commas included.
                let Some((_, text)) = rest.split_once('=') else {
                    return Err(bad("`answer` needs a value: `answer=TEXT`".into()));
                };
                reply.text = Some(text.trim().to_owned());
                break;
            }
            rest = tail;
            let number = |what: &str| -> Result<u64> {
                value
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(format!("`{key}` needs a whole number{what}")))
            };
            match key {
                "" => {}
                "status" => {
                    let status = number(" between 400 and 599")?;
                    if !(400..=599).contains(&status) {
                        return Err(bad(format!("status {status} is not between 400 and 599")));
                    }
                    reply.status = Some(status as u16);
                }
                "retry_after" if value == Some("none") => reply.no_retry_after = true,
                "retry_after" => reply.retry_after = Some(number(" of seconds or `none`")?),
                "delay_ms" => reply.delay = Some(Duration::from_millis(number(" of ms")?)),
                "chunk_delay_ms" => {
                    reply.chunk_delay = Some(Duration::from_millis(number(" of ms")?));
                }
                "fail_times" => {
                    let n = number("")?;
                    reply.fail_times = Some(u32::try_from(n).unwrap_or(u32::MAX));
                }
                "truncate" => {
                    reply.truncate = Some(match value {
                        None | Some("abort") => Truncate::Abort,
                        Some("clean") => Truncate::Clean,
                        Some(other) => {
                            return Err(bad(format!(
                                "truncate is `abort` or `clean`, not `{other}`"
                            )));
                        }
                    });
                }
                "garbage" | "close" if value.is_some() => {
                    return Err(bad(format!("`{key}` takes no value")));
                }
                "garbage" => reply.garbage = true,
                "close" => reply.close = true,
                other => return Err(bad(format!("unknown key `{other}`"))),
            }
        }
        Ok(reply)
    }

    /// Lays `other` over `self`: the fields `other` sets win.
    pub(crate) fn merge(&mut self, other: Reply) {
        let Reply {
            status,
            retry_after,
            no_retry_after,
            delay,
            chunk_delay,
            truncate,
            garbage,
            close,
            fail_times,
            text,
        } = other;
        self.status = status.or(self.status);
        self.retry_after = retry_after.or(self.retry_after);
        self.no_retry_after |= no_retry_after;
        self.delay = delay.or(self.delay);
        self.chunk_delay = chunk_delay.or(self.chunk_delay);
        self.truncate = truncate.or(self.truncate);
        self.garbage |= garbage;
        self.close |= close;
        self.fail_times = fail_times.or(self.fail_times);
        self.text = text.or(self.text.take());
    }

    pub(crate) fn has_fault(&self) -> bool {
        self.status.is_some() || self.truncate.is_some() || self.garbage || self.close
    }

    pub(crate) fn clear_faults(&mut self) {
        self.status = None;
        self.truncate = None;
        self.garbage = false;
        self.close = false;
    }
}

const OPEN: &str = "[[fake:";
const CLOSE: &str = "]]";

/// Removes every `[[fake:…]]` marker from `text`, returning the text without
/// them and the merged reply they describe (later markers win).
pub(crate) fn take_markers(text: &str) -> Result<(String, Reply)> {
    if !text.contains(OPEN) {
        return Ok((text.to_owned(), Reply::default()));
    }
    let mut clean = String::with_capacity(text.len());
    let mut reply = Reply::default();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        clean.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            return Err(Error::Marker {
                marker: rest[start..].to_owned(),
                reason: "no closing `]]`".into(),
            });
        };
        reply.merge(Reply::from_marker(&after[..end])?);
        rest = &after[end + CLOSE.len()..];
    }
    clean.push_str(rest);
    Ok((collapse_spaces(&clean), reply))
}

/// Text with markers removed, for counting words; ignores malformed markers.
pub(crate) fn strip_markers(text: &str) -> String {
    match take_markers(text) {
        Ok((clean, _)) => clean,
        Err(_) => text.to_owned(),
    }
}

/// Trims the text and folds the gap a removed marker leaves into one space.
fn collapse_spaces(text: &str) -> String {
    let trimmed = text.trim();
    let mut out = String::with_capacity(trimmed.len());
    let mut prev_space = false;
    for c in trimmed.chars() {
        if c == ' ' && prev_space {
            continue;
        }
        prev_space = c == ' ';
        out.push(c);
    }
    out
}

/// How requests that name one model are answered, whatever their prompt: a
/// latency, a failure rate and a context window. Set with [`Behaviour::with_model`];
/// a request's `[[fake:…]]` marker wins over it.
///
/// ```
/// use orc_fake_provider::{Behaviour, ModelBehaviour};
/// use std::time::Duration;
///
/// let behaviour = Behaviour::default().with_model(
///     "flaky",
///     ModelBehaviour {
///         latency: Some(Duration::from_millis(40)),
///         failure_rate: 0.5,
///         ..ModelBehaviour::default()
///     },
/// );
/// assert_eq!(behaviour.model_behaviours.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelBehaviour {
    /// Delay before answering this model's requests (replaces [`Behaviour::latency`];
    /// a request's `delay_ms` replaces this).
    pub latency: Option<Duration>,
    /// The share of this model's requests that fail, from 0.0 to 1.0, spread evenly
    /// and deterministically: the model's request number `n` (from 1) fails when
    /// `⌊n·rate⌋ > ⌊(n−1)·rate⌋`, so 0.5 fails every second request and 1.0 every one.
    pub failure_rate: f64,
    /// The HTTP status of those failures (500 when unset; 429 carries `Retry-After`).
    pub failure_status: Option<u16>,
    /// The model's context window in tokens (words, as the fake counts them): a
    /// request with more input tokens is answered 400 with the provider's own
    /// "context length exceeded" error.
    pub context_window: Option<u64>,
}

impl ModelBehaviour {
    /// Whether the model's request number `n` (from 1) is one of the failing ones.
    pub(crate) fn fails(&self, n: u64) -> bool {
        let rate = if self.failure_rate.is_finite() {
            self.failure_rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if rate <= 0.0 || n == 0 {
            return false;
        }
        (n as f64 * rate).floor() > ((n - 1) as f64 * rate).floor()
    }
}

/// How the server behaves for every request (per-request [`Reply`] knobs
/// override it). Build it with struct update syntax or the `with_*` methods:
///
/// ```
/// use orc_fake_provider::{Behaviour, Reply};
/// use std::time::Duration;
///
/// let behaviour = Behaviour::default()
///     .with_latency(Duration::from_millis(5))
///     .with_api_key("sk-test")
///     .with_answer("capital of France", "Paris")
///     .then(Reply::rate_limited(1));
/// assert_eq!(behaviour.script.len(), 1);
/// ```
#[derive(Clone)]
pub struct Behaviour {
    /// Delay before every answer (a request's `delay_ms` replaces it).
    pub latency: Duration,
    /// When set, the OpenAI endpoints require `Authorization: Bearer <key>`.
    pub openai_api_key: Option<String>,
    /// When set, the Anthropic endpoints require `x-api-key: <key>` (the header
    /// itself is always required).
    pub anthropic_api_key: Option<String>,
    /// The ids `GET /v1/models` lists.
    pub models: Vec<String>,
    /// Answer 404 (the provider's "model not found") for a model not in `models`.
    pub reject_unknown_models: bool,
    /// Answer overrides: the first `(substring, answer)` whose substring occurs
    /// in the last user message (or the prompt) gives the answer text.
    pub answers: Vec<(String, String)>,
    /// Replies used in order, one per model request (chat, completions,
    /// embeddings, messages) that passed authentication and validation, before
    /// falling back to normal behaviour. A request's marker fields win over the
    /// scripted reply's.
    pub script: Vec<Reply>,
    /// Length of the embedding vectors (a request's `dimensions` replaces it).
    pub embedding_dimensions: usize,
    /// How many recent request bodies [`crate::Stats`] keeps.
    pub recent_bodies: usize,
    /// Per-model latency, failure rate and context window, by the model id a
    /// request names; the first entry for an id applies.
    pub model_behaviours: Vec<(String, ModelBehaviour)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            latency: Duration::ZERO,
            openai_api_key: None,
            anthropic_api_key: None,
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            reject_unknown_models: false,
            answers: Vec::new(),
            script: Vec::new(),
            embedding_dimensions: 8,
            recent_bodies: 1000,
            model_behaviours: Vec::new(),
        }
    }
}

/// The models listed when [`Behaviour::models`] is left at its default.
pub const DEFAULT_MODELS: &[&str] = &["fake-gpt", "fake-embedding", "fake-claude"];

impl Behaviour {
    /// Sets [`Behaviour::latency`].
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Requires `key` on both protocols (OpenAI bearer token and Anthropic `x-api-key`).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.openai_api_key = Some(key.clone());
        self.anthropic_api_key = Some(key);
        self
    }

    /// Sets the model list.
    pub fn with_models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an answer override: prompts containing `substring` are answered `answer`.
    pub fn with_answer(mut self, substring: impl Into<String>, answer: impl Into<String>) -> Self {
        self.answers.push((substring.into(), answer.into()));
        self
    }

    /// Sets how requests naming the model `id` are answered (see [`ModelBehaviour`]).
    pub fn with_model(mut self, id: impl Into<String>, behaviour: ModelBehaviour) -> Self {
        self.model_behaviours.push((id.into(), behaviour));
        self
    }

    /// The per-model behaviour for requests naming `model`, if one is set.
    pub(crate) fn model(&self, model: &str) -> Option<&ModelBehaviour> {
        self.model_behaviours
            .iter()
            .find(|(id, _)| id == model)
            .map(|(_, b)| b)
    }

    /// Appends `reply` to the scripted queue.
    pub fn then(mut self, reply: Reply) -> Self {
        self.script.push(reply);
        self
    }
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |k: &Option<String>| k.as_ref().map(|_| "***");
        f.debug_struct("Behaviour")
            .field("latency", &self.latency)
            .field("openai_api_key", &secret(&self.openai_api_key))
            .field("anthropic_api_key", &secret(&self.anthropic_api_key))
            .field("models", &self.models)
            .field("reject_unknown_models", &self.reject_unknown_models)
            .field("answers", &self.answers)
            .field("script", &self.script)
            .field("embedding_dimensions", &self.embedding_dimensions)
            .field("recent_bodies", &self.recent_bodies)
            .field("model_behaviours", &self.model_behaviours)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_markers() {
        let (text, reply) =
            take_markers("hello [[fake:status=429,retry_after=2]] world [[fake:delay_ms=300]]")
                .unwrap();
        assert_eq!(text, "hello world");
        assert_eq!(reply.status, Some(429));
        assert_eq!(reply.retry_after, Some(2));
        assert_eq!(reply.delay, Some(Duration::from_millis(300)));

        let (_, reply) = take_markers("[[fake:truncate]]").unwrap();
        assert_eq!(reply.truncate, Some(Truncate::Abort));
        let (_, reply) = take_markers("[[fake:truncate=clean, garbage]]").unwrap();
        assert_eq!(reply.truncate, Some(Truncate::Clean));
        assert!(reply.garbage);
        let (text, reply) =
            take_markers("q [[fake:fail_times=2,answer={\"a\": 1, \"b\": 2}]]").unwrap();
        assert_eq!(text, "q");
        assert_eq!(reply.fail_times, Some(2));
        assert_eq!(reply.text.as_deref(), Some("{\"a\": 1, \"b\": 2}"));
    }

    #[test]
    fn rejects_bad_markers() {
        for bad in [
            "[[fake:status=200]]",
            "[[fake:status=abc]]",
            "[[fake:sttaus=500]]",
            "[[fake:truncate=half]]",
            "[[fake:garbage=1]]",
            "[[fake:status=500",
        ] {
            let err = take_markers(bad).unwrap_err();
            assert!(err.to_string().contains("hint:"), "{err}");
        }
    }

    #[test]
    fn merge_prefers_the_overlay() {
        let mut base = Reply::rate_limited(5);
        base.text = Some("scripted".into());
        base.merge(Reply::error(500));
        assert_eq!(base.status, Some(500));
        assert_eq!(base.retry_after, Some(5));
        assert_eq!(base.text.as_deref(), Some("scripted"));
    }

    #[test]
    fn failure_rates_are_spread_evenly() {
        let rule = |rate| ModelBehaviour {
            failure_rate: rate,
            ..ModelBehaviour::default()
        };
        let fails = |rate: f64| (1..=10).filter(|n| rule(rate).fails(*n)).count();
        assert_eq!(fails(0.0), 0);
        assert_eq!(fails(0.5), 5);
        assert_eq!(fails(0.3), 3);
        assert_eq!(fails(1.0), 10);
        assert_eq!(fails(f64::NAN), 0);
        assert!(!rule(0.5).fails(1) && rule(0.5).fails(2));
    }

    #[test]
    fn debug_hides_keys() {
        let shown = format!("{:?}", Behaviour::default().with_api_key("sk-secret"));
        assert!(!shown.contains("sk-secret"));
        assert!(shown.contains("***"));
    }
}
