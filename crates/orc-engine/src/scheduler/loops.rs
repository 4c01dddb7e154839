//! Loops: `for_each` expands into all its iterations at once (run under `max_parallel`),
//! `while` adds one iteration at a time while its condition holds.

use std::collections::VecDeque;
use std::sync::Arc;

use minijinja::Value as JValue;
use orc_pipeline::templates::Lookup;
use orc_pipeline::{Param, Step, StepKind};
use serde_json::Value;

use super::node::{MAX_NODES, NodeId, Outcome, State, step_at};
use super::state::{LoopState, Run};
use crate::scope::{Frame, StepScope};
use crate::step;
use crate::tools::Envelope;

/// The most iterations one `for_each` loop may have.
const MAX_ITERATIONS: usize = 1_000_000;

impl Run<'_> {
    /// Whether a step of iteration `k` of loop `l` may start now.
    pub(super) fn admit(&mut self, l: NodeId, k: usize) -> bool {
        let Some(ls) = self.loops.get_mut(&l) else {
            return true;
        };
        if ls.started.get(k).copied().unwrap_or(true) {
            return true;
        }
        if ls.active < ls.max_parallel {
            ls.active += 1;
            ls.started[k] = true;
            return true;
        }
        false
    }

    pub(super) fn new_loop(&self, step: &Step, max_parallel: u32) -> LoopState {
        let body = step.body().unwrap_or(&[]);
        LoopState {
            max_parallel,
            active: 0,
            started: Vec::new(),
            left: Vec::new(),
            total_left: 0,
            iterations: 0,
            waiting: VecDeque::new(),
            bases: Vec::new(),
            siblings: Arc::new((0u32..).zip(body).map(|(j, s)| (s.id.clone(), j)).collect()),
            failed: None,
        }
    }

    pub(super) fn expand_for_each(&mut self, i: NodeId, step: &Step, f: &orc_pipeline::ForEach) {
        let scope = self.scope(i);
        let items: std::result::Result<Vec<JValue>, String> = match &f.items {
            Param::Lit(Value::Array(items)) => Ok(items
                .iter()
                .map(orc_pipeline::templates::to_value)
                .collect()),
            Param::Tmpl(id) => self
                .templates
                .evaluate(*id, &scope)
                .map_err(|e| e.message)
                .and_then(|v| items_of(&v)),
            other => step::render(other, self.templates, &scope)
                .and_then(|v| items_of(&orc_pipeline::templates::to_value(&v))),
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                let envelope = Envelope::fail(format!("for_each: {e}"), Value::Null);
                self.settle(
                    i,
                    Outcome::Failed {
                        envelope,
                        error_type: "TemplateError",
                    },
                );
                return;
            }
        };
        if items.len() > MAX_ITERATIONS {
            let envelope = Envelope::fail(
                format!(
                    "for_each: {} items; a loop runs at most {MAX_ITERATIONS} iterations",
                    items.len()
                ),
                Value::Null,
            );
            self.settle(
                i,
                Outcome::Failed {
                    envelope,
                    error_type: "TemplateError",
                },
            );
            return;
        }
        let body = step.body().unwrap_or(&[]);
        let n = items.len();
        if !self.nodes.has_room(n.saturating_mul(body.len())) {
            let envelope = Envelope::fail(too_many_steps(n * body.len()), Value::Null);
            self.settle(
                i,
                Outcome::Failed {
                    envelope,
                    error_type: "TemplateError",
                },
            );
            return;
        }
        let max_parallel = match f.max_parallel_from {
            Some(id) => match self.limit(id, &scope, "max_concurrent") {
                Ok(v) => v,
                Err(e) => {
                    let envelope = Envelope::fail(e, Value::Null);
                    self.settle(
                        i,
                        Outcome::Failed {
                            envelope,
                            error_type: "TemplateError",
                        },
                    );
                    return;
                }
            },
            None => f.max_parallel,
        };
        let mut ls = self.new_loop(step, max_parallel);
        ls.iterations = n;
        ls.started = vec![false; n];
        ls.left = vec![body.len(); n];
        ls.total_left = n * body.len();
        let siblings = Arc::clone(&ls.siblings);
        self.nodes[i].state = State::Expanded;
        self.loops.insert(i, ls);
        if n == 0 || body.is_empty() {
            self.complete_loop(i);
            return;
        }
        let loop_id = JValue::from(self.nodes[i].id.as_ref());
        let parent_frame = self.nodes[i].frame.clone();
        let path = self.nodes[i].path.clone();
        let len = items.len();
        for (k, item) in items.into_iter().enumerate() {
            let bindings = vec![
                ("item", item.clone()),
                ("index", JValue::from(k)),
                ("is_first", JValue::from(k == 0)),
                ("is_last", JValue::from(k + 1 == len)),
                ("position", JValue::from(k + 1)),
                ("length", JValue::from(len)),
                ("remaining", JValue::from(len - k - 1)),
                ("has_next", JValue::from(k + 1 < len)),
                ("has_prev", JValue::from(k > 0)),
                ("loop_id", loop_id.clone()),
            ];
            let base = self.nodes.next_id();
            if let Some(ls) = self.loops.get_mut(&i) {
                ls.bases.push(base);
            }
            let frame = Arc::new(Frame {
                bindings,
                loop_var: f.loop_var.clone().map(|v| (v, item)),
                siblings: Arc::clone(&siblings),
                base,
                parent: parent_frame.clone(),
            });
            self.add_level(body, &path, Some(frame), Some((i, k)));
        }
    }

    /// Starts iteration `k` of a `while` loop if its condition holds, else completes the loop.
    pub(super) fn next_while_iteration(&mut self, i: NodeId, k: usize) {
        let step = step_at(self.plan, &self.nodes[i].path);
        let StepKind::While(w) = &step.kind else {
            return;
        };
        let siblings = self
            .loops
            .get(&i)
            .map(|l| Arc::clone(&l.siblings))
            .unwrap_or_default();
        let prev_base = k
            .checked_sub(1)
            .and_then(|prev| self.loops.get(&i)?.bases.get(prev).copied());
        let loop_id = JValue::from(self.nodes[i].id.as_ref());
        let bindings = vec![
            ("iteration", JValue::from(k)),
            ("index", JValue::from(k)),
            ("is_first", JValue::from(k == 0)),
            ("position", JValue::from(k + 1)),
            ("loop_id", loop_id.clone()),
            ("loop_name", loop_id),
        ];
        let parent = self.nodes[i].frame.clone();
        // The condition sees the new iteration's bindings and the previous iteration's steps.
        let probe = Arc::new(Frame {
            bindings: bindings.clone(),
            loop_var: None,
            siblings: if prev_base.is_some() {
                Arc::clone(&siblings)
            } else {
                Arc::default()
            },
            // Without a previous iteration there are no siblings to find from it.
            base: prev_base.unwrap_or(i),
            parent: parent.clone(),
        });
        let scope: Arc<dyn Lookup> = Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: Some(probe),
        });
        if k > 0 {
            if let Some(until) = &w.until {
                match step::condition(until, self.templates, self.exprs, &scope) {
                    Ok(true) => return self.complete_loop(i),
                    Ok(false) => {}
                    Err(e) => return self.fail_loop(i, format!("until: {e}")),
                }
            }
            let bound = match w.max_iterations_from {
                Some(id) => match self.limit(id, &scope, "max_iterations") {
                    Ok(v) => v,
                    Err(e) => return self.fail_loop(i, e),
                },
                None => w.max_iterations,
            };
            if k >= bound as usize {
                return self.complete_loop(i);
            }
        }
        match step::condition(&w.condition, self.templates, self.exprs, &scope) {
            Ok(true) => {}
            Ok(false) => return self.complete_loop(i),
            Err(e) => return self.fail_loop(i, format!("while: {e}")),
        }
        let body = step.body().unwrap_or(&[]);
        if body.is_empty() {
            return self.complete_loop(i);
        }
        if !self.nodes.has_room(body.len()) {
            return self.fail_loop(i, too_many_steps(body.len()));
        }
        let base = self.nodes.next_id();
        if let Some(ls) = self.loops.get_mut(&i) {
            ls.iterations = k + 1;
            ls.started.push(false);
            ls.bases.push(base);
            ls.left.push(body.len());
            ls.total_left += body.len();
        }
        let frame = Arc::new(Frame {
            bindings,
            loop_var: None,
            siblings,
            base,
            parent,
        });
        let path = self.nodes[i].path.clone();
        self.add_level(body, &path, Some(frame), Some((i, k)));
    }

    pub(super) fn complete_loop(&mut self, i: NodeId) {
        let ls = self.loops.get(&i);
        let n = ls.map_or(0, |l| l.iterations);
        let outcome = match ls.and_then(|l| l.failed.clone()) {
            Some(e) => Outcome::Failed {
                envelope: Envelope::fail(e, Value::Null),
                error_type: "ConditionError",
            },
            None if collects(self.plan, &self.nodes[i].path) => {
                Outcome::Completed(Envelope::ok(Value::Array(self.iteration_results(i))))
            }
            None => Outcome::Completed(Envelope::ok(Value::String(format!(
                "Completed {n} iterations"
            )))),
        };
        self.settle_queue.push_back((i, outcome));
    }

    /// The result of each iteration's one step (a py-orc `foreach` step's body), `null` for
    /// one that did not complete.
    fn iteration_results(&self, i: NodeId) -> Vec<Value> {
        let bases = self.loops.get(&i).map_or(&[][..], |l| l.bases.as_slice());
        bases
            .iter()
            .map(|&b| {
                self.nodes[b]
                    .record
                    .as_ref()
                    .filter(|r| r.status == crate::result::StepStatus::Completed)
                    .and_then(|r| r.value.as_ref())
                    .map_or(Value::Null, |v| v["result"].clone())
            })
            .collect()
    }

    /// A loop limit a template gives (`max_concurrent`, `max_iterations`): a whole number
    /// from 1 up, rendered in the loop's scope.
    fn limit(
        &self,
        id: orc_pipeline::TemplateId,
        scope: &Arc<dyn Lookup>,
        field: &str,
    ) -> std::result::Result<u32, String> {
        let text = self
            .templates
            .render(id, scope)
            .map_err(|e| format!("{field}: {}", e.message))?;
        match text.trim().parse::<f64>() {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(v) if v.fract() == 0.0 && v >= 1.0 && v <= f64::from(u32::MAX) => Ok(v as u32),
            _ => Err(format!(
                "{field}: `{}` is not a whole number of at least 1",
                text.trim()
            )),
        }
    }

    pub(super) fn fail_loop(&mut self, i: NodeId, message: String) {
        if let Some(ls) = self.loops.get_mut(&i) {
            ls.failed = Some(message);
        }
        self.complete_loop(i);
    }

    pub(super) fn iteration_step_done(&mut self, l: NodeId, k: usize) {
        let Some(ls) = self.loops.get_mut(&l) else {
            return;
        };
        if let Some(left) = ls.left.get_mut(k) {
            *left = left.saturating_sub(1);
            ls.total_left = ls.total_left.saturating_sub(1);
            if *left > 0 {
                return;
            }
        }
        if ls.started.get(k).copied().unwrap_or(false) {
            ls.active = ls.active.saturating_sub(1);
        }
        // Readmit steps that were waiting for a free iteration slot.
        let waiting: Vec<NodeId> = ls.waiting.drain(..).collect();
        for w in waiting.into_iter().rev() {
            self.ready.push_front(w);
        }
        let step = step_at(self.plan, &self.nodes[l].path);
        match &step.kind {
            StepKind::While(_) => {
                self.next_while_iteration(l, k + 1);
            }
            _ => {
                if self.loops.get(&l).is_some_and(|ls| ls.total_left == 0) {
                    self.complete_loop(l);
                }
            }
        }
    }
}

/// Whether the loop at `path` is a py-orc `foreach` step, whose result lists its iterations'.
fn collects(plan: &orc_pipeline::Plan, path: &[u32]) -> bool {
    matches!(&step_at(plan, path).kind, StepKind::ForEach(f) if f.collect)
}

/// A loop that would take the run's graph past [`MAX_NODES`] fails.
fn too_many_steps(more: usize) -> String {
    format!("the loop would add {more} steps; a run holds at most {MAX_NODES} steps")
}

/// The items of a `for_each`: a list as it is; text that holds a JSON or Python list; else comma-separated text.
fn items_of(v: &JValue) -> std::result::Result<Vec<JValue>, String> {
    if let Some(s) = v.as_str() {
        let t = s.trim();
        if t.starts_with('[') {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t) {
                return Ok(items
                    .iter()
                    .map(orc_pipeline::templates::to_value)
                    .collect());
            }
            if let Ok(Value::Array(items)) = orc_data::parse_python_literal(t) {
                return Ok(items
                    .iter()
                    .map(orc_pipeline::templates::to_value)
                    .collect());
            }
        }
        if t.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(t.split(',').map(|p| JValue::from(p.trim())).collect());
    }
    match v.try_iter() {
        Ok(iter) if v.as_object().is_none() || v.len().is_some() => Ok(iter.collect()),
        _ => Err(format!("cannot iterate over `{v}`")),
    }
}
