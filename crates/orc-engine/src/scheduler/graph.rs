//! Adding the nodes of a level (the plan's top level, or one loop iteration), and readiness.

use std::sync::Arc;

use orc_pipeline::Step;
use orc_pipeline::templates::Lookup;

use super::node::{Node, NodeId, Outcome, State};
use super::state::Run;
use crate::events::Event;
use crate::scope::{Frame, StepScope};

impl Run<'_> {
    /// Adds the nodes of one level (top level, or one loop iteration); returns its base. The
    /// caller has made sure they fit ([`Nodes::has_room`](super::node::Nodes::has_room)).
    pub(super) fn add_level(
        &mut self,
        steps: &[Step],
        prefix_path: &[u32],
        frame: Option<Arc<Frame>>,
        parent: Option<(NodeId, usize)>,
    ) -> NodeId {
        let base = self.nodes.next_id();
        let id_prefix = match (&frame, parent) {
            (Some(_), Some((l, k))) => format!("{}_{k}_", self.nodes[l].id),
            _ => String::new(),
        };
        for (j, step) in (0u32..).zip(steps) {
            let id: Arc<str> = if id_prefix.is_empty() {
                Arc::from(step.id.as_str())
            } else {
                Arc::from(format!("{id_prefix}{}", step.id))
            };
            self.shared.register(Arc::clone(&id), base.offset(j));
            let mut path = prefix_path.to_vec();
            path.push(j);
            let deps: Vec<NodeId> = step.deps.iter().map(|&d| base.offset(d)).collect();
            self.nodes.push(Node {
                id,
                path: path.into_boxed_slice(),
                frame: frame.clone(),
                base,
                deps_left: deps.len(),
                deps,
                dependents: Vec::new(),
                state: State::Waiting,
                blocked: false,
                released: false,
                parent,
                record: None,
                policy: None,
                error: None,
            });
        }
        self.emit(Event::StepsAdded { count: steps.len() });
        let added: Vec<NodeId> = (0u32..).zip(steps).map(|(j, _)| base.offset(j)).collect();
        for &n in &added {
            for d in self.nodes[n].deps.clone() {
                self.nodes[d].dependents.push(n);
            }
        }
        for n in added {
            if self.nodes[n].deps_left == 0 {
                self.make_ready(n);
            }
        }
        base
    }

    pub(super) fn emit(&self, event: Event<'_>) {
        if let Some(obs) = &self.opts.observer {
            obs.event(event);
        }
    }

    pub(super) fn make_ready(&mut self, i: NodeId) {
        let node = &mut self.nodes[i];
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
            id: &self.nodes[i].id,
        });
    }

    pub(super) fn scope(&self, i: NodeId) -> Arc<dyn Lookup> {
        let scope: Arc<dyn Lookup> = Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: self.nodes[i].frame.clone(),
        });
        match &self.nodes[i].error {
            Some(error) => crate::recovery::ErrorScope::wrap(scope, error.clone()),
            None => scope,
        }
    }
}
