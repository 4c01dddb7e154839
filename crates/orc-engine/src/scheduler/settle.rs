//! What happens when a step settles: its record, its dependents, routing and failure policies.

use std::time::SystemTime;

use orc_pipeline::OnFailure;

use super::ids::now_rfc3339;
use super::node::{NodeId, Outcome, State, level_of, step_at};
use super::report::blank_record;
use super::state::Run;
use crate::events::Event;
use crate::result::{StepAttempts, StepStatus};
use crate::step::Done;

impl Run<'_> {
    pub(super) fn settle(&mut self, i: NodeId, outcome: Outcome) {
        self.settle_queue.push_back((i, outcome));
        self.drain_settles();
    }

    pub(super) fn drain_settles(&mut self) {
        while let Some((i, outcome)) = self.settle_queue.pop_front() {
            if self.nodes[i].state == State::Done {
                continue;
            }
            self.record(i, &outcome, None);
            self.settle_inner(i, outcome);
        }
    }

    /// Fills in the node's record from its outcome.
    pub(super) fn record(&mut self, i: NodeId, outcome: &Outcome, done: Option<&Done>) {
        let node = &self.nodes[i];
        let step = step_at(self.plan, &node.path);
        let mut r = node
            .record
            .clone()
            .unwrap_or_else(|| blank_record(&node.id, step, &[]));
        let finished = SystemTime::now();
        if let Some(d) = done {
            r.action = d.action.clone();
            r.retries = d.retries;
            r.attempts = StepAttempts {
                step: d.attempts,
                model: d.model_attempts,
            };
            r.timed_out = d.timed_out;
            r.started_at = Some(now_rfc3339(d.started_at));
            r.duration = Some(d.duration.as_secs_f64());
            r.cached = d.cached;
            r.recovery = d.handled.as_ref().map(|h| self.recovery_record(i, h));
            r.location.clone_from(&d.location);
            if let Some(m) = &d.model {
                r.model = Some(m.model.clone());
                r.provider = Some(m.provider.to_string());
                r.cached = m.cached;
                r.usage = Some(m.usage);
                r.cost = m.cost;
                r.model_time = Some(m.elapsed.as_secs_f64());
                r.model_choice = Some(m.choice.clone());
            }
        }
        r.completed_at = Some(now_rfc3339(finished));
        let spent = match outcome {
            Outcome::Completed(e) | Outcome::Failed { envelope: e, .. } => e.spent,
            _ => None,
        };
        if let Some(spent) = spent {
            r.usage = Some(spent.usage);
            r.cost = Some(spent.cost);
            r.unpriced_calls = spent.unpriced_calls;
        }
        match outcome {
            Outcome::Completed(e) => {
                r.status = StepStatus::Completed;
                r.success = true;
                r.value = Some(e.to_json());
            }
            Outcome::Failed {
                envelope,
                error_type,
            } => {
                r.status = StepStatus::Failed;
                r.success = false;
                r.error.clone_from(&envelope.error);
                r.error_type = Some((*error_type).to_string());
                r.value = Some(envelope.to_json());
                if self.first_error.is_none() && *error_type != "Cancelled" {
                    self.first_error = Some((
                        format!(
                            "step `{}` failed: {}",
                            node.id,
                            envelope.error.as_deref().unwrap_or("")
                        ),
                        (*error_type).to_string(),
                    ));
                }
            }
            Outcome::Skipped { reason, message } => {
                r.status = StepStatus::Skipped;
                r.success = false;
                r.reason = Some((*reason).to_string());
                r.error.clone_from(message);
                if *reason == "condition_error" {
                    r.error_type = Some("ConditionError".into());
                }
            }
        }
        self.nodes[i].record = Some(r);
    }

    /// Marks a node done and lets its dependents, its loop and routing react.
    pub(super) fn settle_inner(&mut self, i: NodeId, outcome: Outcome) {
        let step = step_at(self.plan, &self.nodes[i].path);
        self.nodes[i].state = State::Done;
        self.order.push(i);
        if let Some(obs) = &self.opts.observer {
            let record = self.nodes[i].record.as_ref();
            obs.event(Event::StepFinished {
                id: &self.nodes[i].id,
                status: record.map_or(StepStatus::Pending, |r| r.status),
                record,
            });
        }
        let (blocking, route) = match &outcome {
            Outcome::Completed(_) => {
                self.publish_value(i);
                (false, step.on_success)
            }
            Outcome::Skipped { reason, .. } => (
                *reason == "dependency_failed",
                (*reason == "condition_false")
                    .then_some(step.on_false)
                    .flatten(),
            ),
            Outcome::Failed { .. } => {
                self.publish_value(i);
                match self.nodes[i].policy.unwrap_or(step.on_failure) {
                    OnFailure::Continue => (false, None),
                    OnFailure::Skip => (true, None),
                    OnFailure::Goto(t) => (true, Some(t)),
                    OnFailure::Fail => {
                        if self.stop.is_none() {
                            let id = self.nodes[i].id.clone();
                            self.stop = Some((
                                format!("the run stopped after step `{id}` failed"),
                                "StepFailed",
                            ));
                            // The run's error is this step's: it is the one that stopped the
                            // run, whatever `continue` steps failed before it.
                            if let Some(r) = &self.nodes[i].record {
                                self.stopped_by = Some((
                                    format!(
                                        "step `{id}` failed: {}",
                                        r.error.as_deref().unwrap_or("")
                                    ),
                                    r.error_type.clone().unwrap_or_default(),
                                ));
                            }
                        }
                        (true, None)
                    }
                }
            }
        };
        if let Some(t) = route {
            self.jump(i, t);
        }
        for d in self.nodes[i].dependents.clone() {
            let dep = &mut self.nodes[d];
            if blocking {
                dep.blocked = true;
            }
            dep.deps_left = dep.deps_left.saturating_sub(1);
            if dep.deps_left == 0 {
                self.make_ready(d);
            }
        }
        if let Some((l, k)) = self.nodes[i].parent {
            self.iteration_step_done(l, k);
        }
    }

    /// A handler's record in the result document, its handler step by id.
    fn recovery_record(&self, i: NodeId, h: &crate::recovery::Handled) -> serde_json::Value {
        let mut record = h.record.clone();
        if let Some(j) = h.step {
            let id = &self.nodes[self.nodes[i].base.offset(j)].id;
            record["handler_step"] = serde_json::Value::String(id.to_string());
        }
        record
    }

    /// Makes a settled step's envelope, as its record holds it, visible to templates.
    pub(super) fn publish_value(&self, i: NodeId) {
        if let Some(value) = self.nodes[i].record.as_ref().and_then(|r| r.value.as_ref()) {
            self.shared
                .publish(i, orc_pipeline::templates::to_value(value));
        }
    }

    /// Skips the steps between `from` and the level step `to`, and lets `to` run.
    pub(super) fn jump(&mut self, from: NodeId, to: u32) {
        let node = &self.nodes[from];
        let base = node.base;
        let level = level_of(self.plan, &node.path);
        let from_j = from.since(base) as usize;
        for j in orc_pipeline::jumped_over(level, from_j, to as usize) {
            // A position in a level of the plan, whose length is a `u32`.
            let n = base.offset(u32::try_from(j).unwrap_or(u32::MAX));
            if matches!(self.nodes[n].state, State::Waiting | State::Ready) {
                self.settle_queue.push_back((
                    n,
                    Outcome::Skipped {
                        reason: "routed",
                        message: None,
                    },
                ));
            }
        }
        self.nodes[base.offset(to)].released = true;
    }
}
