//! Integration tests of orc-telemetry: the exporter and `/metrics` endpoint over real TCP, and
//! the Grafana dashboard against the metric names.
//!
//! The `metrics` recorder is process-wide: every test goes through `Exporter::global()` and
//! records under label values of its own, so the tests pass whether they share one process
//! (`cargo test`) or not (nextest).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dashboard;
mod server;
