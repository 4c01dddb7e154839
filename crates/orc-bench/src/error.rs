//! What can go wrong in a benchmark.

/// An error of `orc bench`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad options (`--runs`, `--filter`, `--threshold`, a baseline's name): nothing ran.
    #[error("{0}")]
    Invalid(String),
    /// A saved baseline is missing, unreadable or of another mode.
    #[error("{0}")]
    Baseline(String),
    /// A workload failed: a step, a call, a child process, or its time limit.
    #[error("workload `{workload}`: {message}")]
    Workload {
        /// The workload's name.
        workload: String,
        /// What went wrong.
        message: String,
    },
    /// Setting a workload's stage up failed (temp dir, runtime, fake provider, `orc serve`).
    #[error("setup: {0}")]
    Setup(String),
}

/// A result of `orc bench`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the error is the user's (exit 2) rather than a failed measurement (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Invalid(_) | Error::Baseline(_))
    }

    pub(crate) fn setup(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Setup(format!("{what}: {e}"))
    }
}

/// A workload's own failure, named after it.
pub(crate) fn failed(workload: &str, message: impl std::fmt::Display) -> Error {
    Error::Workload {
        workload: workload.to_owned(),
        message: message.to_string(),
    }
}
