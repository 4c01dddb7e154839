//! Adding the nodes of a level (the plan's top level, or one loop iteration), and readiness.

use std::sync::Arc;

use orc_pipeline::Step;
use orc_pipeline::templates::Lookup;

use super::Event;
use super::execute::Run;
use super::node::{Node, Outcome, State};
use crate::scope::{Frame, StepScope};

impl Run<'_> {
    /// Adds the nodes of one level (top level, or one loop iteration); returns its base index.
    pub(super) fn add_level(
        &mut self,
        steps: &[Step],
        prefix_path: &[u32],
        frame: Option<Arc<Frame>>,
        parent: Option<(u32, u32)>,
    ) -> u32 {
        let base = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        let id_prefix = match (&frame, parent) {
            (Some(_), Some((l, k))) => format!("{}_{k}_", self.nodes[l as usize].id),
            _ => String::new(),
        };
        for (j, step) in steps.iter().enumerate() {
            let idx = base + u32::try_from(j).unwrap_or(u32::MAX);
            let id: Arc<str> = if id_prefix.is_empty() {
                Arc::from(step.id.as_str())
            } else {
                Arc::from(format!("{id_prefix}{}", step.id))
            };
            self.shared.register(Arc::clone(&id), idx);
            let mut path = prefix_path.to_vec();
            path.push(u32::try_from(j).unwrap_or(u32::MAX));
            let deps: Vec<u32> = step.deps.iter().map(|&d| base + d).collect();
            self.nodes.push(Node {
                id,
                path: path.into_boxed_slice(),
                frame: frame.clone(),
                base,
                deps_left: u32::try_from(deps.len()).unwrap_or(u32::MAX),
                deps,
                dependents: Vec::new(),
                state: State::Waiting,
                blocked: false,
                released: false,
                parent,
                record: None,
            });
        }
        self.emit(Event::StepsAdded { count: steps.len() });
        for j in 0..steps.len() {
            let idx = base as usize + j;
            for d in self.nodes[idx].deps.clone() {
                self.nodes[d as usize]
                    .dependents
                    .push(u32::try_from(idx).unwrap_or(u32::MAX));
            }
        }
        for j in 0..steps.len() {
            let idx = base + u32::try_from(j).unwrap_or(u32::MAX);
            if self.nodes[idx as usize].deps_left == 0 {
                self.make_ready(idx);
            }
        }
        base
    }

    pub(super) fn emit(&self, event: Event<'_>) {
        if let Some(obs) = &self.opts.observer {
            obs.event(event);
        }
    }

    pub(super) fn make_ready(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        if node.state != State::Waiting {
            return;
        }
        if node.blocked && !node.released {
            self.settle_queue.push_back((
                i,
                Outcome::Skipped {
                    reason: "dependency_failed",
                    message: Some("a dependency failed".into()),
                },
            ));
            return;
        }
        node.state = State::Ready;
        self.ready.push_back(i);
        self.emit(Event::StepReady {
            id: &self.nodes[i as usize].id,
        });
    }

    pub(super) fn scope(&self, i: u32) -> Arc<dyn Lookup> {
        Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: self.nodes[i as usize].frame.clone(),
        })
    }
}
