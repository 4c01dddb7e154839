//! What the scheduler tells observers.

use crate::result::{StepRecord, StepStatus};

/// Something that happened in a run, as the scheduler saw it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Steps were added to the graph (the plan at start, then loop iterations).
    StepsAdded {
        /// How many.
        count: usize,
    },
    /// A step's dependencies have settled: it waits for a free slot.
    StepReady {
        /// Its id.
        id: &'a str,
    },
    /// A step was handed to its tool.
    StepStarted {
        /// Its id.
        id: &'a str,
        /// Its tool, if it names one.
        tool: Option<&'a str>,
    },
    /// A model step with `stream: true` received more of its answer.
    ModelOutput {
        /// The step's id.
        id: &'a str,
        /// The text that arrived (a cached answer arrives whole).
        text: &'a str,
    },
    /// A step settled: completed, failed or skipped.
    StepFinished {
        /// Its id.
        id: &'a str,
        /// How it ended.
        status: StepStatus,
        /// Its record as it goes into the result document.
        record: Option<&'a StepRecord>,
    },
}

/// Receives scheduler events. Called on the scheduler's task: keep it quick and never block.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// One event.
    fn event(&self, event: Event<'_>);
}
