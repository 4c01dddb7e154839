//! A run this process is running (or ran lately): its stop token, its event log, its result.
//!
//! Events are kept whole for the run's life, numbered from 1, so a follower that reconnects
//! after event `n` gets exactly the events after it. Any number of followers read one log;
//! a `watch` channel wakes them, so a slow follower never holds up the run.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use futures::Stream;
use orc_engine::{Event, Observer, RunResult};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One event of a run, serialized once for every follower.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Its number in the run's log, from 1.
    pub id: u64,
    /// `step_ready`, `step_started`, `model_output` (a streamed answer's text as it arrives),
    /// `step_finished` or `result` (always the last).
    pub kind: &'static str,
    /// Its data as JSON.
    pub data: String,
}

/// How a run ended: its result document, or why it could not start.
pub type Outcome = Result<Arc<RunResult>, String>;

/// Shared by the run's task, its handles and its followers.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) run_id: String,
    pub(crate) cancel: CancellationToken,
    log: Mutex<Vec<Arc<RunEvent>>>,
    /// The number of events in the log, and whether the log is closed.
    written: watch::Sender<(u64, bool)>,
    outcome: OnceLock<Outcome>,
}

impl Live {
    pub(crate) fn new(run_id: String, cancel: CancellationToken) -> Arc<Live> {
        Arc::new(Live {
            run_id,
            cancel,
            log: Mutex::default(),
            written: watch::Sender::new((0, false)),
            outcome: OnceLock::new(),
        })
    }

    fn push(&self, kind: &'static str, data: String, close: bool) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let id = log.len() as u64 + 1;
        log.push(Arc::new(RunEvent { id, kind, data }));
        self.written.send_replace((id, close));
    }

    /// Records how the run ended, adds the `result` event and closes the log.
    pub(crate) fn end(&self, outcome: Outcome) {
        let data = match &outcome {
            Ok(result) => serde_json::to_string(&**result).unwrap_or_default(),
            Err(e) => json!({ "execution_id": self.run_id, "status": "failed", "success": false, "error": e }).to_string(),
        };
        if self.outcome.set(outcome).is_ok() {
            self.push("result", data, true);
        }
    }

    /// How the run ended, once it has.
    pub(crate) fn outcome(&self) -> Option<&Outcome> {
        self.outcome.get()
    }

    /// Waits for the run's end.
    pub(crate) async fn ended(&self) -> Outcome {
        let mut rx = self.written.subscribe();
        // The sender lives in `self`: `wait_for` only fails if it is dropped.
        let _ = rx.wait_for(|(_, closed)| *closed).await;
        self.outcome
            .get()
            .cloned()
            .unwrap_or_else(|| Err("the run ended without a result".to_owned()))
    }

    /// The events after event `after`, as they come, ending with the `result` event.
    pub(crate) fn follow(self: Arc<Self>, after: u64) -> impl Stream<Item = Arc<RunEvent>> + Send {
        let rx = self.written.subscribe();
        futures::stream::unfold(
            (self, rx, after, Vec::<Arc<RunEvent>>::new()),
            |(live, mut rx, mut next, mut pending)| async move {
                loop {
                    if let Some(event) = pending.pop() {
                        next = event.id;
                        return Some((event, (live, rx, next, pending)));
                    }
                    let (written, closed) = *rx.borrow_and_update();
                    if written > next {
                        let log = live.log.lock().unwrap_or_else(PoisonError::into_inner);
                        let from = usize::try_from(next).unwrap_or(usize::MAX).min(log.len());
                        // Newest first, so that `pop` hands them out in order.
                        pending = log[from..].iter().rev().cloned().collect();
                        continue;
                    }
                    if closed || rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}

impl Observer for Live {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepsAdded { .. } => {}
            Event::StepReady { id } => {
                self.push("step_ready", json!({ "step": id }).to_string(), false);
            }
            Event::StepStarted { id, tool } => self.push(
                "step_started",
                json!({ "step": id, "tool": tool }).to_string(),
                false,
            ),
            Event::ModelOutput { id, text } => self.push(
                "model_output",
                json!({ "step": id, "text": text }).to_string(),
                false,
            ),
            Event::StepFinished { id, status, record } => self.push(
                "step_finished",
                json!({ "step": id, "status": status, "record": record }).to_string(),
                false,
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn followers_get_every_event_after_theirs_and_the_log_closes_with_the_result() {
        let live = Live::new("r".into(), CancellationToken::new());
        live.event(Event::StepReady { id: "a" });
        let late = Arc::clone(&live).follow(0);
        let resumed = Arc::clone(&live).follow(1);
        live.event(Event::StepStarted {
            id: "a",
            tool: Some("echo"),
        });
        live.end(Err("stopped".into()));
        let late: Vec<_> = late.map(|e| (e.id, e.kind)).collect().await;
        assert_eq!(
            late,
            [(1, "step_ready"), (2, "step_started"), (3, "result")]
        );
        let resumed: Vec<_> = resumed.map(|e| e.id).collect().await;
        assert_eq!(resumed, [2, 3]);
        let after_end: Vec<_> = Arc::clone(&live).follow(3).collect().await;
        assert!(after_end.is_empty());
        assert_eq!(live.ended().await.unwrap_err(), "stopped");
    }
}
