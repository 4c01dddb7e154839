//! A node of the run's graph: a step of the plan, or of one loop iteration, and its state.

use std::ops::{Index, IndexMut};
use std::sync::Arc;

use orc_pipeline::{Plan, Step};

pub(crate) use crate::node_id::NodeId;
use crate::result::StepRecord;
use crate::scope::Frame;
use crate::tools::Envelope;

/// Most nodes one run's graph may hold: the plan's steps and every loop iteration's. A loop
/// that would go past it fails.
pub(super) const MAX_NODES: usize = 1 << 24;

/// The run's graph: every node, by id.
pub(super) struct Nodes(Vec<Node>);

impl Nodes {
    pub(super) fn with_capacity(n: usize) -> Nodes {
        Nodes(Vec::with_capacity(n))
    }

    /// The id the next node added gets.
    pub(super) fn next_id(&self) -> NodeId {
        // In range: `has_room` is asked before a level is added.
        NodeId::at(self.0.len())
    }

    /// Whether `more` nodes still fit under [`MAX_NODES`].
    pub(super) fn has_room(&self, more: usize) -> bool {
        self.0.len().saturating_add(more) <= MAX_NODES
    }

    /// Adds a node; returns its id.
    pub(super) fn push(&mut self, node: Node) -> NodeId {
        let id = self.next_id();
        self.0.push(node);
        id
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every node's id, in the order they were added.
    pub(super) fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.0.len()).map(NodeId::at)
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Node> {
        self.0.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Node> {
        self.0.iter_mut()
    }
}

impl Index<NodeId> for Nodes {
    type Output = Node;

    fn index(&self, id: NodeId) -> &Node {
        &self.0[id.index()]
    }
}

impl IndexMut<NodeId> for Nodes {
    fn index_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.0[id.index()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Waiting,
    Ready,
    Running,
    Expanded,
    Done,
}

#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Completed(Envelope),
    Failed {
        envelope: Envelope,
        error_type: &'static str,
    },
    Skipped {
        reason: &'static str,
        message: Option<String>,
    },
}

pub(super) struct Node {
    pub(super) id: Arc<str>,
    /// Indices from `plan.steps` down through loop bodies to this step.
    pub(super) path: Box<[u32]>,
    pub(super) frame: Option<Arc<Frame>>,
    /// The first node of this node's level (the first node at top level).
    pub(super) base: NodeId,
    pub(super) deps: Vec<NodeId>,
    pub(super) deps_left: usize,
    pub(super) dependents: Vec<NodeId>,
    pub(super) state: State,
    pub(super) blocked: bool,
    pub(super) released: bool,
    /// The loop node this is an iteration step of, and which iteration.
    pub(super) parent: Option<(NodeId, usize)>,
    pub(super) record: Option<StepRecord>,
    /// The failure policy an error handler set for this node, instead of the step's.
    pub(super) policy: Option<orc_pipeline::OnFailure>,
    /// For a handler step (`handler_task_id`): the error of the step it handles, once that
    /// failed; it runs with `error` bound, and is skipped when nothing failed.
    pub(super) error: Option<serde_json::Value>,
}

pub(super) fn step_at<'p>(plan: &'p Plan, path: &[u32]) -> &'p Step {
    let mut steps: &[Step] = &plan.steps;
    let mut step = &steps[path[0] as usize];
    for &i in &path[1..] {
        steps = step.body().unwrap_or(&[]);
        step = &steps[i as usize];
    }
    step
}

pub(super) fn level_of<'p>(plan: &'p Plan, path: &[u32]) -> &'p [Step] {
    match path.split_last() {
        Some((_, [])) | None => &plan.steps,
        Some((_, parent)) => step_at(plan, parent).body().unwrap_or(&[]),
    }
}
