//! The load engine against real servers on 127.0.0.1 (a tiny axum server whose answers the
//! tests control) and against an in-process runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod engine;
mod inprocess;
mod server;
