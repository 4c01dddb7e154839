//! End-to-end tests: the real `orc` binary on real pipelines, checking files, the result
//! document and the exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod cli;
mod confined;
mod cost;
mod crash;
mod examples;
mod http_client;
mod inputs;
mod leases;
mod loadtest;
mod models;
mod modules;
mod pipelines;
mod processes;
mod properties;
mod pyorc;
mod pyorc_auto;
mod pyorc_errors;
mod pyorc_lang;
mod report;
mod resume;
mod retries;
mod secrets;
mod serve;
mod signals;
mod snapshots;
mod subpipe;
mod support;
mod telemetry;
mod tools;
mod usability;
mod workers;
