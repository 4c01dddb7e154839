//! Why a run could not start.

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduler's task ended abnormally.
    #[error("the run's scheduler stopped: {0}")]
    Aborted(String),
    /// The run's steps cannot be handed to workers (the queue refused the run's plan).
    #[error("the run's steps cannot be handed to workers: {0}")]
    Dispatch(String),
    /// A model step's model cannot be used (unknown name, unset key, nothing eligible).
    #[error("{0}")]
    Models(String),
    /// A required input was not given.
    #[error("missing required input `{0}`; give it with `-i {0}=VALUE`")]
    MissingInput(String),
    /// The caller gave inputs the pipeline does not declare (the message names them).
    #[error("{0}")]
    UndeclaredInput(String),
    /// An input does not have its declared type.
    #[error("input `{name}` must be of type `{expected}`, got {got}")]
    InputType {
        /// The input.
        name: String,
        /// The declared type.
        expected: String,
        /// The given value, shown.
        got: String,
    },
    /// An input's value is not one of its `choices`, or breaks a `validation` limit.
    #[error("input `{name}`: {message}")]
    InputRefused {
        /// The input.
        name: String,
        /// Why, with the value and the choices or limit.
        message: String,
    },
    /// An input's declared default is a template that does not render.
    #[error("input `{name}`: {message}")]
    InputTemplate {
        /// The input.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
