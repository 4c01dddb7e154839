//! End-to-end tests: the real `orc` binary on real pipelines, checking files, the result
//! document and the exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod cost;
mod models;
mod pipelines;
mod resume;
mod retries;
mod signals;
mod support;
mod telemetry;
