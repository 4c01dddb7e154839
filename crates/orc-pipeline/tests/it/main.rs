//! Compiler fixture tests. Every `tests/fixtures/ok_*.yaml` must compile and every `err_*.yaml`
//! must fail; each is snapshotted (`snapshots/`) with its source, and a plan summary or the
//! rendered diagnostics. A fixture lists the codes it must report in `# expect:` comment lines
//! (for `ok_*`, its warnings and notes), so every problem of a file with several is checked.
//! The fuzz tests check that no text makes the compiler panic.
//!
//! Update snapshots with `INSTA_UPDATE=always cargo test -p orc-pipeline --test it`, then read
//! the changed `.snap` files before committing them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod auto;
mod auto_modes;
mod common;
mod executable;
mod fixtures;
mod fuzz;
