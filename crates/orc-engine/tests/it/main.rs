//! Engine tests: timeouts, retries and back-off under paused time, and the scheduler's
//! invariants on generated graphs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod graphs;
mod remote;
mod scheduler;
mod timing;

use orc_pipeline::Compiled;

pub(crate) fn compile(text: &str) -> Compiled {
    orc_pipeline::compile(text, &orc_engine::catalog())
        .unwrap_or_else(|d| panic!("{}", d.render("test.yaml", text)))
}
