//! The state of one run while the scheduler drives it: the graph, the queues, the loops, what
//! stopped it. Data only; what changes it lives in the modules beside this one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use orc_pipeline::Plan;
use orc_pipeline::expr::ExprSet;
use orc_pipeline::templates::TemplateSet;
use tokio::task::JoinSet;

use super::Options;
use super::journal::Writer;
use super::node::{NodeId, Nodes, Outcome};
use crate::resources::{Admission, ToolLimits};
use crate::scope::Shared;
use crate::step::Done;
use crate::tools::Bindings;

/// One run's scheduler state.
pub(super) struct Run<'a> {
    pub(super) plan: &'a Plan,
    pub(super) templates: &'a Arc<TemplateSet>,
    /// The plan's condition expressions, parsed.
    pub(super) exprs: &'a Arc<ExprSet>,
    pub(super) shared: Arc<Shared>,
    pub(super) opts: &'a Options,
    pub(super) nodes: Nodes,
    pub(super) loops: HashMap<NodeId, LoopState>,
    pub(super) ready: VecDeque<NodeId>,
    pub(super) settle_queue: VecDeque<(NodeId, Outcome)>,
    pub(super) order: Vec<NodeId>,
    pub(super) running: usize,
    pub(super) tasks: JoinSet<Done>,
    pub(super) stop: Option<(String, &'static str)>,
    pub(super) first_error: Option<(String, String)>,
    /// What stopped the run: the failure of a step whose policy is `fail`, or the state store.
    pub(super) stopped_by: Option<(String, String)>,
    /// The journal's writer task, when the run has a journal.
    pub(super) journal: Option<Writer>,
    pub(super) admission: Admission,
    pub(super) limits: Arc<ToolLimits>,
    /// What each action step calls, looked up once when the run started.
    pub(super) tools: Bindings,
}

/// One loop's iterations: how many run, how many steps each has left, what waits for a slot.
pub(super) struct LoopState {
    pub(super) max_parallel: u32,
    pub(super) active: u32,
    pub(super) started: Vec<bool>,
    /// Steps of each iteration not settled yet.
    pub(super) left: Vec<usize>,
    pub(super) total_left: usize,
    pub(super) iterations: usize,
    /// Steps ready but held back by `max_parallel`.
    pub(super) waiting: VecDeque<NodeId>,
    /// Each `while` iteration's first step.
    pub(super) bases: Vec<NodeId>,
    /// Body step ids to their position in the body.
    pub(super) siblings: Arc<HashMap<String, u32>>,
    pub(super) failed: Option<String>,
}
