//! A streamed chat answer: text deltas as they come, and the assembled answer at the end.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures::stream::{Stream, StreamExt};

use crate::error::{CallSite, Error, FailureKind, Result};
use crate::http::{self, Answer, BodyStream};
use crate::provider_kind::ProviderKind;
use crate::request::ChatResponse;
use crate::secret::ApiKey;
use crate::sse::{SseDecoder, SseEvent};
use crate::telemetry::CallMetrics;
use crate::usage::Usage;

/// What a stream has said so far; the provider's event handler fills it in.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) model: Option<String>,
    pub(crate) usage: Usage,
    pub(crate) finish_reason: Option<String>,
    /// The provider's terminator (`[DONE]`, `message_stop`) was seen.
    pub(crate) done: bool,
}

/// What a stream calls with its assembled answer.
type OnComplete = Box<dyn FnOnce(&ChatResponse) + Send>;

/// How a stream ended, for the gateway's accounting.
pub(crate) enum StreamEnd<'a> {
    /// The answer is complete; the time to its first token, if it had text.
    Complete(&'a ChatResponse, Option<Duration>),
    /// The stream failed.
    Failed(&'a Error),
    /// The stream was dropped before it ended.
    Dropped,
}

/// What a stream calls once, when it ends in any way.
type OnEnd = Box<dyn FnOnce(StreamEnd<'_>) + Send>;

/// A protocol-level problem in one event: its kind and message.
pub(crate) type EventError = (FailureKind, String);

/// How a provider's stream is read: the text delta of each event (filling in the
/// [`StreamState`]), and the terminator a complete stream ends with (for the message of
/// one cut short).
#[derive(Debug)]
pub(crate) struct Events {
    pub(crate) read:
        fn(&SseEvent, &mut StreamState) -> std::result::Result<Option<String>, EventError>,
    pub(crate) terminator: &'static str,
}

/// The events of a replayed answer: there are none to read.
static REPLAYED: Events = Events {
    read: |_, _| Ok(None),
    terminator: "its end",
};

/// A provider's stream read: body chunks in (cut anywhere), the text deltas of its events
/// out, and what the events said so far. Once the terminator is seen, nothing more is read.
#[derive(Debug)]
pub(crate) struct Reader {
    decoder: SseDecoder,
    events: &'static Events,
    pub(crate) state: StreamState,
}

impl Reader {
    /// A reader of a stream whose events are read as `events` says.
    pub(crate) fn new(events: &'static Events) -> Self {
        Reader {
            decoder: SseDecoder::default(),
            events,
            state: StreamState::default(),
        }
    }

    /// Feeds the next chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if !self.state.done {
            self.decoder.push(chunk);
        }
    }

    /// Ends the body: a last event without its blank line still counts.
    pub(crate) fn finish(&mut self) {
        if !self.state.done {
            self.decoder.finish();
        }
    }

    /// The next non-empty text delta of the events decoded so far, or the problem of the
    /// first event that cannot be read; `None` when no event is ready or after the
    /// terminator.
    pub(crate) fn next_delta(&mut self) -> Option<std::result::Result<String, EventError>> {
        while !self.state.done {
            let event = self.decoder.next_event()?;
            match (self.events.read)(&event, &mut self.state) {
                Ok(Some(delta)) if !delta.is_empty() => return Some(Ok(delta)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// The terminator a complete stream ends with, as the message of a stream cut short
    /// names it.
    pub(crate) fn terminator(&self) -> &'static str {
        self.events.terminator
    }
}

/// A streamed chat answer.
///
/// As a [`Stream`] it yields the text deltas in order. [`ChatStream::finish`] reads
/// whatever is left and returns the whole answer (text, usage, finish reason), so a
/// caller can show deltas as they arrive and still get the assembled response.
///
/// A stream that ends before the provider's terminator (`[DONE]` or `message_stop`)
/// yields a [`FailureKind::Truncated`] error. While the stream is alive it holds one of
/// the client's in-flight slots; read it to the end (or drop it) promptly.
pub struct ChatStream {
    body: Option<BodyStream>,
    reader: Reader,
    site: CallSite,
    key: Option<ApiKey>,
    fallback_model: String,
    text: String,
    failure: Option<Error>,
    ended: bool,
    /// Text to yield before anything else: a cached answer being replayed.
    replay: Option<String>,
    /// Called once with the assembled answer when the stream completes.
    on_complete: Option<OnComplete>,
    /// Called once when the stream ends, whichever way.
    on_end: Option<OnEnd>,
    /// When the stream was opened (for the time to first token).
    opened: Instant,
    /// When the first text arrived, after opening.
    ttft: Option<Duration>,
    /// The request's metrics, recorded when the first text arrives and when the
    /// stream ends; `None` for a replay, which is no upstream request.
    meter: Option<Meter>,
}

/// The metrics of a streamed request, and when it was sent.
struct Meter {
    metrics: CallMetrics,
    sent: Instant,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("site", &self.site)
            .field("text", &self.text)
            .field("state", &self.reader.state)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The stream of `answer`, whose events are read as `events` says.
    pub(crate) fn new(
        answer: Answer,
        key: Option<&ApiKey>,
        model: &str,
        events: &'static Events,
    ) -> Self {
        let Answer { site, body } = answer;
        ChatStream {
            body: Some(body),
            reader: Reader::new(events),
            site,
            key: key.cloned(),
            fallback_model: model.to_owned(),
            text: String::new(),
            failure: None,
            ended: false,
            replay: None,
            on_complete: None,
            on_end: None,
            opened: Instant::now(),
            ttft: None,
            meter: None,
        }
    }

    /// A stream that replays a finished answer (from the response cache): its text as
    /// one delta, then the end, with the answer's model, usage and finish reason.
    pub fn replay(response: ChatResponse) -> Self {
        let site = CallSite {
            provider: ProviderKind::OpenAi,
            model: response.model.clone(),
            status: None,
        };
        ChatStream {
            body: None,
            reader: Reader {
                decoder: SseDecoder::default(),
                events: &REPLAYED,
                state: StreamState {
                    model: Some(response.model.clone()),
                    usage: response.usage,
                    finish_reason: response.finish_reason,
                    done: true,
                },
            },
            site,
            key: None,
            fallback_model: response.model,
            text: String::new(),
            failure: None,
            ended: true,
            replay: Some(response.text).filter(|t| !t.is_empty()),
            on_complete: None,
            on_end: None,
            opened: Instant::now(),
            ttft: None,
            meter: None,
        }
    }

    /// The same stream, calling `f` once with the assembled answer when it completes
    /// (never when it fails or is dropped early).
    pub fn on_complete(mut self, f: impl FnOnce(&ChatResponse) + Send + 'static) -> Self {
        self.on_complete = Some(Box::new(f));
        self
    }

    /// The same stream, calling `f` once when it ends: complete, failed, or dropped
    /// before its end.
    pub(crate) fn on_end(mut self, f: impl FnOnce(StreamEnd<'_>) + Send + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
    }

    /// The same stream, timing its first token from `opened` (when the request was
    /// sent) rather than from when the stream object was made.
    pub(crate) fn opened_at(mut self, opened: Instant) -> Self {
        self.opened = opened;
        self
    }

    /// The same stream, recording the request sent at `sent` in `metrics`: its time to
    /// first token when the first text arrives, its outcome, duration and usage when it
    /// ends.
    pub(crate) fn metered(mut self, metrics: CallMetrics, sent: Instant) -> Self {
        self.meter = Some(Meter { metrics, sent });
        self
    }

    /// How long after the request the first text arrived, once it has.
    pub fn time_to_first_token(&self) -> Option<Duration> {
        self.ttft
    }

    fn assembled(&self) -> ChatResponse {
        ChatResponse {
            text: self.text.clone(),
            model: self
                .reader
                .state
                .model
                .clone()
                .unwrap_or_else(|| self.fallback_model.clone()),
            usage: self.reader.state.usage,
            finish_reason: self.reader.state.finish_reason.clone(),
        }
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Tokens used, as far as the provider has reported them so far.
    pub fn usage(&self) -> Usage {
        self.reader.state.usage
    }

    /// Reads the rest of the stream and returns the whole answer, including the text
    /// of deltas already taken from the stream.
    pub async fn finish(mut self) -> Result<ChatResponse> {
        while let Some(item) = self.next().await {
            item?;
        }
        if let Some(error) = self.failure.take() {
            // The error was already yielded from the stream; it still decides.
            return Err(error);
        }
        Ok(ChatResponse {
            text: std::mem::take(&mut self.text),
            model: self
                .reader
                .state
                .model
                .take()
                .unwrap_or_else(|| std::mem::take(&mut self.fallback_model)),
            usage: self.reader.state.usage,
            finish_reason: self.reader.state.finish_reason.take(),
        })
    }

    fn error(&self, kind: FailureKind, message: String) -> Error {
        let message = http::redact(self.key.as_ref(), &message);
        Error::call(self.site.clone(), kind, message, None)
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<String>>> {
        if let Some(meter) = self.meter.take() {
            meter.metrics.request(meter.sent, Err(&error));
        }
        if let Some(f) = self.on_end.take() {
            f(StreamEnd::Failed(&error));
        }
        self.failure = Some(error.clone());
        self.body = None;
        Poll::Ready(Some(Err(error)))
    }

    /// Notes the time of the first text.
    fn first_text(&mut self) {
        if self.ttft.is_some() {
            return;
        }
        self.ttft = Some(self.opened.elapsed());
        if let Some(meter) = &self.meter {
            meter.metrics.first_token(meter.sent.elapsed());
        }
    }

    /// Records the request's end in its metrics, once: answered when the provider's
    /// terminator was seen, else cancelled (dropped early).
    fn meter_end(&mut self) {
        let Some(meter) = self.meter.take() else {
            return;
        };
        if self.reader.state.done && self.failure.is_none() {
            meter
                .metrics
                .request(meter.sent, Ok(self.reader.state.usage));
        } else {
            meter.metrics.request_cancelled();
        }
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.meter_end();
        if let Some(f) = self.on_end.take() {
            f(StreamEnd::Dropped);
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(text) = this.replay.take() {
            this.first_text();
            this.text.push_str(&text);
            return Poll::Ready(Some(Ok(text)));
        }
        loop {
            // Events already decoded come first; after the terminator, nothing counts.
            match this.reader.next_delta() {
                Some(Ok(delta)) => {
                    this.first_text();
                    this.text.push_str(&delta);
                    return Poll::Ready(Some(Ok(delta)));
                }
                Some(Err((kind, message))) => {
                    let error = this.error(kind, message);
                    return this.fail(error);
                }
                None => {}
            }
            let Some(body) = this.body.as_mut() else {
                if this.ended && !this.reader.state.done && this.failure.is_none() {
                    let terminator = this.reader.terminator();
                    let error = this.error(
                        FailureKind::Truncated,
                        format!(
                            "the stream ended before {terminator}, after {} bytes of text",
                            this.text.len()
                        ),
                    );
                    return this.fail(error);
                }
                if this.reader.state.done && this.failure.is_none() {
                    this.meter_end();
                }
                if this.reader.state.done
                    && this.failure.is_none()
                    && (this.on_complete.is_some() || this.on_end.is_some())
                {
                    let answer = this.assembled();
                    if let Some(f) = this.on_complete.take() {
                        f(&answer);
                    }
                    if let Some(f) = this.on_end.take() {
                        f(StreamEnd::Complete(&answer, this.ttft));
                    }
                }
                return Poll::Ready(None);
            };
            match body.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    // After the terminator the body is still read to its end, so the
                    // connection goes back to the pool instead of being closed.
                    this.reader.push(&chunk);
                }
                Poll::Ready(Some(Err(e))) => {
                    if this.reader.state.done {
                        // The answer is complete; only the connection's reuse is lost.
                        this.body = None;
                        continue;
                    }
                    let mut error = http::transport_error(this.site.clone(), this.key.as_ref(), &e);
                    if let Error::Retryable { kind, message, .. } = &mut error
                        && *kind == FailureKind::Connection
                    {
                        // The answer had begun: the connection broke mid-stream.
                        *kind = FailureKind::Truncated;
                        message.insert_str(0, "the stream broke off: ");
                    }
                    return this.fail(error);
                }
                Poll::Ready(None) => {
                    this.body = None;
                    this.ended = true;
                    this.reader.finish();
                }
            }
        }
    }
}
