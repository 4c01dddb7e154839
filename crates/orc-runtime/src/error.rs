//! Why the runtime refused or could not do something.

use orc_pipeline::Diagnostics;

use crate::config::ConfigError;

/// Why a run could not be started, resumed or compiled. Every variant but [`Error::Store`] and
/// [`Error::Engine`] is the caller's to fix: the command line exits 2, the service answers 4xx.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config cannot be used (a bad value, a state store that cannot be opened).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The pipeline could not be read.
    #[error("{0}")]
    Read(String),
    /// The compiler found errors in the pipeline named `file`.
    #[error("{file}: {} error(s)", diags.error_count())]
    Invalid {
        /// The pipeline's name as diagnostics show it (its path, or the name it was given).
        file: String,
        /// Its text, for rendering the diagnostics.
        text: String,
        /// What the compiler found.
        diags: Diagnostics,
    },
    /// The run was refused before its first step: an undeclared, missing or mistyped input, a
    /// model that cannot be used, a budget that is not valid, a run id already taken.
    #[error("{0}")]
    Refused(String),
    /// Another process holds the run's lease.
    #[error("{0}")]
    Held(String),
    /// No such run.
    #[error("{0}")]
    NotFound(String),
    /// The run's pipeline changed since it started (resume with `force` to run the new text).
    #[error("{0}")]
    Changed(String),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(String),
    /// The queue (NATS JetStream) failed or cannot be reached.
    #[error("{0}")]
    Queue(String),
}

impl Error {
    /// Whether the caller can fix it (a refusal), rather than the store failing.
    pub fn is_caller_error(&self) -> bool {
        !matches!(self, Error::Store(_) | Error::Queue(_))
    }
}

/// A store error as the caller sees it: a value the store refuses (an id too long, a control
/// character) is the caller's to fix; anything else is the store failing.
impl From<orc_state::Error> for Error {
    fn from(e: orc_state::Error) -> Self {
        match e {
            orc_state::Error::InvalidValue { .. } => Error::Refused(e.to_string()),
            e => Error::Store(e.to_string()),
        }
    }
}
