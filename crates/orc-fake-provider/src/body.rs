//! The response body: a list of frames sent with an optional gap between them,
//! that either ends normally or aborts the connection.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::{Sleep, sleep};

/// How long the body waits before aborting, so the bytes sent so far are
/// flushed to the client first.
const ABORT_PAUSE: Duration = Duration::from_millis(10);

/// How a body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The body ends normally.
    Complete,
    /// The body errors out, which makes hyper close the connection mid-body.
    Abort,
}

pub(crate) struct FakeBody {
    frames: VecDeque<Bytes>,
    gap: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    end: End,
    /// Whether to announce the exact length (plain responses) or use chunked
    /// transfer encoding (streams).
    sized: bool,
}

impl FakeBody {
    /// A complete body of known length.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        FakeBody {
            frames: VecDeque::from([bytes.into()]),
            gap: Duration::ZERO,
            pause: None,
            end: End::Complete,
            sized: true,
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        FakeBody::full(Bytes::new())
    }

    /// A chunked body of `frames`, `gap` apart, that ends as `end` says.
    pub(crate) fn frames(frames: Vec<Bytes>, gap: Duration, end: End) -> Self {
        FakeBody {
            frames: frames.into(),
            gap,
            pause: None,
            end,
            sized: false,
        }
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        if let Some(frame) = this.frames.pop_front() {
            let wait = if this.frames.is_empty() {
                if this.end == End::Abort {
                    ABORT_PAUSE.max(this.gap)
                } else {
                    Duration::ZERO
                }
            } else {
                this.gap
            };
            if !wait.is_zero() {
                this.pause = Some(Box::pin(sleep(wait)));
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        match this.end {
            End::Complete => Poll::Ready(None),
            End::Abort => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "orc-fake-provider: truncated response (injected fault)",
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end == End::Complete && self.pause.is_none() && self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized && self.end == End::Complete {
            SizeHint::with_exact(self.frames.iter().map(|f| f.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}
