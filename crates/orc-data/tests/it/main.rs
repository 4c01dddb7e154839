//! Integration tests of orc-data through its public API.
//!
//! This binary installs a counting global allocator so that tests can
//! measure the peak heap of one call (see [`alloc::measure`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod csvgen;
mod streaming;
