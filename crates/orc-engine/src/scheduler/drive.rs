//! The event loop: launch what is ready, wait for a step to finish, settle it; and cancel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orc_pipeline::StepKind;
use serde_json::Value;
use tracing::Instrument as _;

use super::ids::now_rfc3339;
use super::journal::{Settles, Writer, Written};
use super::node::{NodeId, Outcome, State, step_at};
use super::report::blank_record;
use super::state::Run;
use crate::events::Event;
use crate::models;
use crate::remote;
use crate::result::{StepRecord, StepStatus};
use crate::step::{self, Done, Job, ModelJob};
use crate::tools::Envelope;

impl Run<'_> {
    /// The event loop: launch what is ready, wait for a step to finish, settle it, repeat.
    /// Returns whether the run was interrupted.
    pub(super) async fn drive(&mut self) -> bool {
        loop {
            self.drain_settles();
            if self.stop.is_none() {
                self.launch();
                self.drain_settles();
            }
            let saving = self.journal.as_ref().is_some_and(Writer::busy);
            if self.running == 0
                && !saving
                && (self.ready.is_empty() || self.stop.is_some())
                && self.settle_queue.is_empty()
            {
                return false;
            }
            if self.running == 0 && !saving {
                continue;
            }
            tokio::select! {
                biased;
                () = self.opts.cancel.cancelled() => {
                    self.stop.get_or_insert(("the run was interrupted".into(), "Cancelled"));
                    self.cancel_running().await;
                    // Steps that finished are made durable, so a resume does not redo them.
                    while self.journal.as_ref().is_some_and(Writer::busy) {
                        let (settled, written) = durable(&mut self.journal).await;
                        self.settle_durable(settled, written);
                    }
                    return true;
                }
                (settled, written) = durable(&mut self.journal), if saving => {
                    self.settle_durable(settled, written);
                }
                joined = self.tasks.join_next(), if self.running > 0 => {
                    let Some(joined) = joined else { continue };
                    // Steps that finished together settle together, with one journal write.
                    let mut finished = Vec::new();
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        self.running -= 1;
                        match joined {
                            Ok(done) => finished.push(done),
                            Err(e) => tracing::error!("a step task ended abnormally: {e}"),
                        }
                        next = self.tasks.try_join_next();
                    }
                    self.finish_tasks(finished).await;
                }
            }
            if self.stop.is_some() && self.running > 0 {
                self.cancel_running().await;
            }
        }
    }

    pub(super) async fn cancel_running(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let why = self
            .stop
            .as_ref()
            .map_or_else(|| "cancelled".to_string(), |(w, _)| w.clone());
        let running: Vec<NodeId> = self
            .nodes
            .ids()
            .filter(|&i| self.nodes[i].state == State::Running)
            .collect();
        self.running = 0;
        for i in running {
            let envelope = Envelope::fail(format!("cancelled: {why}"), Value::Null);
            self.record(
                i,
                &Outcome::Failed {
                    envelope,
                    error_type: "Cancelled",
                },
                None,
            );
            // Stopped because the run stopped, not a failure of its own.
            if let Some(r) = self.nodes[i].record.as_mut() {
                r.status = StepStatus::Cancelled;
            }
            self.nodes[i].state = State::Done;
        }
    }

    pub(super) fn launch(&mut self) {
        while self.running < self.opts.max_concurrent.max(1) && self.stop.is_none() {
            if self.ready.is_empty()
                || !self
                    .admission
                    .admit(self.opts.resources.memory.as_ref(), self.running)
            {
                break;
            }
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            if self.nodes[i].state != State::Ready {
                continue;
            }
            if let Some((l, k)) = self.nodes[i].parent
                && !self.admit(l, k)
            {
                if let Some(ls) = self.loops.get_mut(&l) {
                    ls.waiting.push_back(i);
                }
                continue;
            }
            let step = step_at(self.plan, &self.nodes[i].path);
            if matches!(step.kind, StepKind::Action(_))
                && let Some(saved) = self.resumed(i)
            {
                let envelope = saved
                    .value
                    .as_ref()
                    .and_then(|v| serde_json::from_value::<Envelope>(v.clone()).ok())
                    .unwrap_or_else(|| Envelope::ok(Value::Null));
                self.nodes[i].record = Some(saved);
                self.settle_inner(i, Outcome::Completed(envelope));
                continue;
            }
            if step.handles_errors && self.nodes[i].error.is_none() {
                // A handler step runs only when a step it handles failed.
                self.settle(
                    i,
                    Outcome::Skipped {
                        reason: "no_error",
                        message: None,
                    },
                );
                continue;
            }
            if let Some(cond) = &step.condition {
                match step::condition(cond, self.templates, self.exprs, &self.scope(i)) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.settle(
                            i,
                            Outcome::Skipped {
                                reason: "condition_false",
                                message: None,
                            },
                        );
                        continue;
                    }
                    Err(e) => {
                        self.settle(
                            i,
                            Outcome::Skipped {
                                reason: "condition_error",
                                message: Some(format!("condition: {e}")),
                            },
                        );
                        continue;
                    }
                }
            }
            match &step.kind {
                StepKind::Action(a) => {
                    // The compiler keeps it in range; whatever a plan holds, it never panics.
                    let timeout = step.timeout.or(self.plan.default_timeout).map_or(
                        self.opts.task_timeout,
                        |t| {
                            Duration::try_from_secs_f64(t.min(orc_pipeline::MAX_TIMEOUT_SECS))
                                .unwrap_or(self.opts.task_timeout)
                        },
                    );
                    let job =
                        Job {
                            node: i,
                            tool: a.tool.clone(),
                            callee: self.tools.callee(
                                &self.nodes[i].path,
                                a.tool.as_deref(),
                                &self.nodes[i].id,
                            ),
                            action: a.action.clone(),
                            params: a.params.clone(),
                            scope: self.scope(i),
                            timeout,
                            max_retries: step.max_retries,
                            model: models::is_model_step(step).then(|| ModelJob {
                                gateway: self.opts.models.clone(),
                                observer: self.opts.observer.clone(),
                                step_id: self.nodes[i].id.clone(),
                                choice: Arc::new(models::Choice {
                                    step: step.model.clone(),
                                    pipeline: self.plan.model.clone(),
                                }),
                                use_cache: step.cache != Some(false),
                            }),
                            results: self.opts.step_cache.clone().filter(|_| {
                                step.cache == Some(true) && !models::is_model_step(step)
                            }),
                            limits: Arc::clone(&self.limits),
                            step_id: self.nodes[i].id.clone(),
                            retry_backoff: step.retry_backoff,
                            recovery: step.recovery.clone(),
                            output: step.output.clone(),
                        };
                    self.nodes[i].state = State::Running;
                    self.nodes[i].record = Some(StepRecord {
                        started_at: Some(now_rfc3339(SystemTime::now())),
                        ..blank_record(&self.nodes[i].id, step, &[])
                    });
                    self.running += 1;
                    self.emit(Event::StepStarted {
                        id: &self.nodes[i].id,
                        tool: a.tool.as_deref(),
                    });
                    let span = tracing::info_span!(
                        "step",
                        step = %self.nodes[i].id,
                        tool = a.tool.as_deref().unwrap_or("")
                    );
                    let remote = self
                        .opts
                        .dispatch
                        .as_ref()
                        .filter(|_| remote::eligible(step, a, self.nodes[i].error.is_some()));
                    if let Some(dispatch) = remote {
                        let task = remote::task(
                            &job,
                            &self.nodes[i].path,
                            step.pool.as_deref(),
                            self.templates,
                        );
                        self.tasks.spawn(
                            remote::run_remote(Arc::clone(dispatch), task, i).instrument(span),
                        );
                    } else {
                        self.tasks.spawn(
                            step::run(
                                job,
                                Arc::clone(self.templates),
                                Arc::clone(self.exprs),
                                self.opts.backoff,
                            )
                            .instrument(span),
                        );
                    }
                }
                StepKind::ForEach(f) => self.expand_for_each(i, step, f),
                StepKind::While(_) => {
                    self.nodes[i].state = State::Expanded;
                    self.loops.insert(i, self.new_loop(step, 1));
                    self.next_while_iteration(i, 0);
                }
            }
        }
    }

    /// Records finished steps and hands them to the journal's writer; without a journal, lets
    /// their dependents go at once.
    pub(super) async fn finish_tasks(&mut self, finished: Vec<Done>) {
        let mut settled = Vec::with_capacity(finished.len());
        for done in finished {
            let i = done.node;
            let outcome = if done.envelope.success {
                Outcome::Completed(done.envelope.clone())
            } else {
                Outcome::Failed {
                    envelope: done.envelope.clone(),
                    error_type: done.error_type.unwrap_or("ToolError"),
                }
            };
            if let Some(h) = &done.handled {
                self.handled(i, h);
            }
            self.record(i, &outcome, Some(&done));
            settled.push((i, outcome));
        }
        let Some(journal) = self.journal.as_mut() else {
            for (i, outcome) in settled {
                self.settle_inner(i, outcome);
            }
            return;
        };
        let records: Vec<StepRecord> = settled
            .iter()
            .filter_map(|(i, _)| self.nodes[*i].record.clone())
            .collect();
        journal.hand_over(records, settled).await;
    }

    /// What an error handler decided for a failed step: the failure policy, and the handler
    /// step that now runs with the error bound.
    fn handled(&mut self, i: NodeId, h: &crate::recovery::Handled) {
        if h.then == orc_pipeline::Then::Continue {
            self.nodes[i].policy = Some(orc_pipeline::OnFailure::Continue);
        }
        if let Some(j) = h.step {
            let handler = self.nodes[i].base.offset(j);
            self.nodes[handler].error = Some(h.error.clone());
        }
    }

    /// Settles a group of finished steps the journal has written: their dependents may start.
    /// A journal that failed stops the run.
    fn settle_durable(&mut self, settled: Settles, written: Written) {
        if let Err(e) = written {
            tracing::error!("state store: {e}");
            self.stop
                .get_or_insert((format!("the state store failed: {e}"), "StateError"));
            if self.stopped_by.is_none() {
                self.stopped_by =
                    Some((format!("the state store failed: {e}"), "StateError".into()));
            }
        }
        for (i, outcome) in settled {
            self.settle_inner(i, outcome);
        }
    }

    /// The record of a step an earlier attempt of this run completed, if any.
    pub(super) fn resumed(&self, i: NodeId) -> Option<StepRecord> {
        if self.opts.resume.is_empty() {
            return None;
        }
        let record = self.opts.resume.get(&*self.nodes[i].id)?;
        (record.status == StepStatus::Completed).then(|| record.clone())
    }
}

/// Waits for the journal's oldest group to be durable (never, without a journal).
async fn durable(journal: &mut Option<Writer>) -> (Settles, Written) {
    match journal {
        Some(journal) => journal.durable().await,
        None => std::future::pending().await,
    }
}
