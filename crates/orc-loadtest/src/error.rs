//! The one error type of the crate.

/// Why a load test cannot be loaded, built or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario file is wrong; the message names each problem's file, line and column.
    #[error("{0}")]
    Scenario(String),
    /// The options cannot make a test (no scenario, an in-process target without a runtime…).
    #[error("{0}")]
    Options(String),
    /// The in-process target's service could not be set up.
    #[error("the in-process service: {0}")]
    Runtime(#[from] orc_runtime::Error),
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(String),
    /// The HTML report could not be drawn.
    #[error("the HTML report: {0}")]
    Chart(String),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
