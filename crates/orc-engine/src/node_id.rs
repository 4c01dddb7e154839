//! The id of a node of a run's graph, as the scheduler, the step tasks and the template scope
//! share it.

/// A node's place in the run's graph. Nodes are only ever added, so an id stays valid for the
/// whole run; a level's nodes (the plan's top level, or one loop iteration) are consecutive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(u32);

impl NodeId {
    /// The node at position `i` of the list of every node. In range: the scheduler bounds a
    /// graph far below `u32::MAX` nodes.
    pub(crate) fn at(i: usize) -> NodeId {
        NodeId(u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// The node `j` places after this one: step `j` of the level this is the base of.
    pub(crate) fn offset(self, j: u32) -> NodeId {
        // In range: a graph holds at most `MAX_NODES` nodes.
        NodeId(self.0.saturating_add(j))
    }

    /// How far after `base` this node is: its position in the level `base` starts.
    pub(crate) fn since(self, base: NodeId) -> u32 {
        self.0.saturating_sub(base.0)
    }

    /// Its position in a list of every node.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}
