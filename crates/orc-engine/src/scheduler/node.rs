//! A node of the run's graph: a step of the plan, or of one loop iteration, and its state.

use std::sync::Arc;

use orc_pipeline::{Plan, Step};

use crate::result::StepRecord;
use crate::scope::Frame;
use crate::tools::Envelope;

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
    /// Node index of the first step of this node's level (0 at top level).
    pub(super) base: u32,
    pub(super) deps: Vec<u32>,
    pub(super) deps_left: u32,
    pub(super) dependents: Vec<u32>,
    pub(super) state: State,
    pub(super) blocked: bool,
    pub(super) released: bool,
    /// The loop node this is an iteration step of, and which iteration.
    pub(super) parent: Option<(u32, u32)>,
    pub(super) record: Option<StepRecord>,
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
