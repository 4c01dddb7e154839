//! The dashboard: its files and the endpoints its pages read (through the router, no socket),
//! and its pages in headless Chromium against the service on a real loopback socket.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod api;
mod browser;
mod rig;
