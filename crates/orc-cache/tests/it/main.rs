//! Integration tests of orc-cache: every backend through the public API, Redis against the real
//! server (`ORC_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod file;
mod memory;
mod redis;
mod support;
