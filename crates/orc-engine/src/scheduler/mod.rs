//! The scheduler: a ready queue over the plan's step graph. A step starts the moment its own
//! dependencies have settled, within the global limit and its loop's `max_parallel`.
//! Loops expand into iteration steps when they become ready; routing skips what it jumps over.
//!
//! | part | its one job |
//! |---|---|
//! | [`options`] | how to run a plan ([`Options`]) |
//! | [`journal`] | where finished steps are made durable ([`Journal`]) |
//! | [`error`] | why a run could not start |
//! | [`inputs`] | the run's inputs: caller values, declared defaults, types |
//! | [`ids`] | run ids and the `execution` namespace |
//! | [`execute`] | the entry points |
//! | [`state`] | the state of one run: graph, queues, loops, what stopped it |
//! | [`node`] | a node of the graph and its states |
//! | [`graph`] | adding levels of nodes, readiness |
//! | [`drive`] | the event loop: launch, wait, finish, cancel |
//! | [`settle`] | what a settled step does to its dependents: records, routing, failure policies |
//! | [`loops`] | `for_each` expansion, `while` iterations, per-loop limits |
//! | [`report`] | the result document and the pipeline's outputs |

mod drive;
mod error;
mod execute;
mod graph;
mod ids;
mod inputs;
mod journal;
mod loops;
mod node;
mod options;
mod report;
mod settle;
mod state;

pub use error::{Error, Result};
pub use execute::{execute, preflight, run};
pub use ids::new_run_id;
pub use inputs::resolve_inputs;
pub use journal::Journal;
pub use options::Options;
