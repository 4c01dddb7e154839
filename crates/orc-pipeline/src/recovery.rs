//! The plan's error handling and declared outputs, as py-orc pipelines write them: a step's
//! error handlers (`on_error`, `error_handlers`), its retry back-off (`retry_config`) and the
//! file it declares it writes (`produces`, `location`). Compiled by `compile::recovery`, run
//! by the engine's `recovery` module.

use serde::{Deserialize, Serialize};

use crate::plan::{Condition, Param};
use crate::yaml::Pos;

/// Names a handler's templates (and a handler step's) can use besides the step's own: the
/// failed step's error, as py-orc's handler context binds it.
pub const ERROR_BINDINGS: &[&str] = &[
    "error",
    "error_message",
    "error_type",
    "failed_task_id",
    "failed_task_name",
    "execution_attempt",
];

/// A step's error handlers, tried in order (py-orc's `priority`, then as written) when the
/// step has failed after its retries; the first that applies decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovery {
    /// The handlers, in the order they are tried.
    pub handlers: Vec<Handler>,
}

/// One error handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handler {
    /// Error types it handles (py-orc's names, such as `FileNotFoundError`, or orc's kinds,
    /// such as `Timeout`); empty or `*` for any.
    pub error_types: Vec<String>,
    /// Regular expressions, any of which the error's message matches (case-insensitive).
    pub error_patterns: Vec<String>,
    /// Exit codes or HTTP statuses it handles.
    pub error_codes: Vec<serde_json::Value>,
    /// Whether it is on (`enabled:`, a literal or a condition read with `error` bound).
    pub enabled: Option<Condition>,
    /// What the handler says it does (`handler_action`, `action`, or the prose of
    /// `on_error: "…"`), rendered with `error` bound and recorded; orc runs no prose.
    pub action: Option<Param>,
    /// The step's result when the handler applies (`fallback_value`): the step completes.
    pub fallback: Option<Param>,
    /// A step of the same level that runs, with `error` bound, when this handler applies
    /// (`handler_task_id`).
    pub step: Option<u32>,
    /// Attempts of the step made again, whatever the failure, before the handler applies
    /// (`retry_with_handler` with `max_handler_retries`; `retry_count`).
    pub retries: u32,
    /// What the failure does to the run once handled (without a fallback).
    pub then: Then,
    /// Whether a fallback that cannot be rendered still lets the run go on
    /// (`continue_on_handler_failure`).
    pub continue_on_handler_failure: bool,
    /// The level the handled error is logged at (`log_level`).
    pub log_level: LogLevel,
    /// Where the handler is written.
    pub pos: Pos,
}

/// What a handled failure does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Then {
    /// The failure is handled: the step's dependents run (`on_failure: continue`).
    Continue,
    /// The step's own failure policy applies (`propagate_error: true`, or py-orc's legacy
    /// mapping with `continue_on_error: false`).
    Propagate,
}

/// A handler's `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warning`
    Warning,
    /// `error` and `critical` (the default)
    Error,
}

/// The wait between a step's retries when it sets one (`retry_config`, `retry: {…}`):
/// `delay · factor^(n-1)`, at most `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryBackoff {
    /// Seconds before the first retry.
    pub delay: f64,
    /// Growth of the wait from one retry to the next (1 for a fixed wait).
    pub factor: f64,
    /// The longest wait, seconds.
    pub max_delay: f64,
}

impl RetryBackoff {
    /// The wait before retry number `n` (1 for the first), seconds.
    pub fn seconds(&self, n: u32) -> f64 {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        (self.delay * self.factor.powi(exp)).min(self.max_delay)
    }
}

/// The output a step declares (`produces`, `location`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeclaredOutput {
    /// What it produces, as written (`markdown-file`, `json`, …).
    pub produces: Option<String>,
    /// The file (or, ending in `/`, directory) it writes: checked to exist after the step
    /// succeeds.
    pub location: Option<Param>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_by_the_factor_up_to_the_longest() {
        let b = RetryBackoff {
            delay: 0.5,
            factor: 3.0,
            max_delay: 4.0,
        };
        assert!((b.seconds(1) - 0.5).abs() < 1e-9);
        assert!((b.seconds(2) - 1.5).abs() < 1e-9);
        assert!((b.seconds(3) - 4.0).abs() < 1e-9);
        assert!((b.seconds(40) - 4.0).abs() < 1e-9);
    }
}
