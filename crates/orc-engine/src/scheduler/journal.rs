//! Where finished steps are made durable: the [`Journal`] a caller gives (the state store's
//! checkpoints), written by a task of its own so that the scheduler never waits for it.
//!
//! The scheduler hands each group of finished steps to the writer task and goes on launching
//! what is ready and watching for Ctrl-C; the steps' dependents start only when the writer says
//! the group is durable. Groups that queue while a write is in progress go to the journal
//! together, in one call (one transaction for the state store).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use super::node::{NodeId, Outcome};
use crate::result::StepRecord;

/// A durable log of finished steps (the state store's checkpoints).
///
/// A step's dependents start only after [`Journal::append`] of its record has returned `Ok`;
/// steps that finish together, or while an earlier append is in progress, are appended in one
/// call.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Writes the records of steps that just finished.
    fn append<'a>(
        &'a self,
        records: &'a [StepRecord],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
    >;
}

/// Groups waiting for the writer task, at most; the scheduler waits to hand over more.
const QUEUE: usize = 64;

/// Whether a group was written: `Err` says why not.
pub(super) type Written = Result<(), String>;

/// What a group settles once it is durable: each step and how it ended.
pub(super) type Settles = Vec<(NodeId, Outcome)>;

/// One group of finished steps for the writer task.
struct Group {
    records: Vec<StepRecord>,
    written: oneshot::Sender<Written>,
}

/// The scheduler's side of the writer task: groups handed over and not yet durable, in order.
pub(super) struct Writer {
    groups: mpsc::Sender<Group>,
    /// What each group settles once it is durable, oldest first (the task writes in order).
    waiting: VecDeque<(oneshot::Receiver<Written>, Settles)>,
    _task: AbortOnDropHandle<()>,
}

impl Writer {
    /// Starts the writer task over `journal`, in the current span (the run's).
    pub(super) fn start(journal: Arc<dyn Journal>) -> Writer {
        let (groups, queue) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write(journal, queue).instrument(tracing::Span::current()));
        Writer {
            groups,
            waiting: VecDeque::new(),
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Hands `records` to the writer; `settles` is given back by [`Writer::durable`] once they
    /// are written.
    pub(super) async fn hand_over(&mut self, records: Vec<StepRecord>, settles: Settles) {
        let (written, wait) = oneshot::channel();
        let group = Group { records, written };
        if let Err(mpsc::error::SendError(group)) = self.groups.send(group).await {
            // The task is gone (it only ends when this handle is dropped): say so.
            let _ = group
                .written
                .send(Err("the journal's writer stopped".to_owned()));
        }
        self.waiting.push_back((wait, settles));
    }

    /// Whether groups are waiting to be durable.
    pub(super) fn busy(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Waits for the oldest group to be written; returns what it settles and how the write went.
    /// Never completes while no group waits.
    pub(super) async fn durable(&mut self) -> (Settles, Written) {
        let Some((wait, _)) = self.waiting.front_mut() else {
            return std::future::pending().await;
        };
        let written = wait
            .await
            .unwrap_or_else(|_| Err("the journal's writer stopped".to_owned()));
        let settles = self
            .waiting
            .pop_front()
            .map(|(_, settles)| settles)
            .unwrap_or_default();
        (settles, written)
    }
}

/// The writer task: takes the oldest group and every other one queued behind it, appends them
/// in one call, and tells each group how it went.
async fn write(journal: Arc<dyn Journal>, mut queue: mpsc::Receiver<Group>) {
    let mut groups = Vec::with_capacity(QUEUE);
    while let Some(first) = queue.recv().await {
        groups.push(first);
        while groups.len() < QUEUE {
            match queue.try_recv() {
                Ok(group) => groups.push(group),
                Err(_) => break,
            }
        }
        let mut records = Vec::new();
        for group in &mut groups {
            records.append(&mut group.records);
        }
        let written = journal.append(&records).await;
        for group in groups.drain(..) {
            // A scheduler that stopped waiting does not need the answer.
            let _ = group.written.send(written.clone());
        }
    }
}
