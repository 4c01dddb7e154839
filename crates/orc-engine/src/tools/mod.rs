//! The built-in tools. Each takes an action and rendered parameters and returns the
//! envelope `{result, success, error}` that later steps see in their templates.
//!
//! | part | its one job |
//! |---|---|
//! | [`tool`] | what a tool is: the `Tool` trait, its declaration and its call |
//! | [`registry`] | the one list of tools; the catalog is their declarations |
//! | [`bind`] | each step's tool looked up once, when a run starts |
//! | [`declare`] | helpers to write a declaration |
//! | [`subrun`] | what `pipeline-executor` asks of the runtime ([`SubRunner`]) |
//! | [`filesystem`], [`commands`] (over [`process`]), [`echo`], [`data`], [`pipeline`], [`http_client`] | the tools |

mod bind;
mod commands;
mod data;
mod declare;
mod echo;
mod filesystem;
mod http_client;
mod pipeline;
mod process;
mod registry;
mod subrun;
mod tool;

pub(crate) use bind::{Bindings, Callee, SubRuns};
pub(crate) use pipeline::NAME as PIPELINE_TOOL;
pub(crate) use process::within_step_timeout;
pub use subrun::{SubRequest, SubRun, SubRunner, SubSource};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::resources::ToolLimits;

/// What a tool call returns: the envelope templates read as `{{ step.result… }}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The tool's answer.
    pub result: Value,
    /// Whether the call did what was asked.
    pub success: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// The model that answered, for model steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_used: Option<String>,
    /// A sub-pipeline's outputs, for `pipeline-executor` steps: templates read them as
    /// `{{ step.outputs.name }}`, as py-orc's did (and as `{{ step.result.outputs.name }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    /// The step's declared output (`produces`, `location`), once checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_info: Option<Value>,
    /// Whether another attempt of a failed call may succeed: what the step's retry
    /// loop reads. Not part of the envelope templates see.
    #[serde(skip)]
    pub(crate) retry: Retry,
    /// What a sub-pipeline's run spent on models (`pipeline-executor` steps): the step's
    /// record carries it, and the calling run's totals add it. Not part of the envelope
    /// templates see.
    #[serde(skip)]
    pub(crate) spent: Option<Spent>,
}

/// Model spending a step did through other runs (a sub-pipeline's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Spent {
    /// Tokens.
    pub(crate) usage: crate::result::Usage,
    /// USD, unpriced models counting as zero.
    pub(crate) cost: f64,
    /// Model calls whose model has no price.
    pub(crate) unpriced_calls: u64,
}

/// Whether a failed call is worth another attempt of the same step.
///
/// A failure is not retried unless the code that failed says a retry can help:
/// [`Envelope::fail`] is `No`, [`Envelope::fail_retryable`] is `Yes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The same call would fail the same way: bad parameters, a template error, a
    /// missing file or a refused permission, a data or schema error, and every model
    /// error (orc-models has already retried those that a retry can help).
    #[default]
    No,
    /// Another attempt may succeed: a timeout, a command that ran and failed (it may
    /// be flaky, and the step asked for retries). `after` is how long the failure
    /// asked to wait, when it said.
    Yes {
        /// The wait the failure asked for (a `Retry-After`), if any.
        after: Option<Duration>,
    },
}

impl Envelope {
    /// A successful call.
    pub fn ok(result: Value) -> Self {
        Envelope {
            result,
            success: true,
            error: None,
            model_used: None,
            outputs: None,
            output_info: None,
            retry: Retry::No,
            spent: None,
        }
    }

    /// A failed call, with a message and whatever result the tool has, that another
    /// attempt would fail the same way: it is not retried.
    pub fn fail(message: impl Into<String>, result: Value) -> Self {
        Envelope {
            result,
            success: false,
            error: Some(message.into()),
            model_used: None,
            outputs: None,
            output_info: None,
            retry: Retry::No,
            spent: None,
        }
    }

    /// A failed call that another attempt may get through (a timeout, a command that
    /// ran and failed): retried when the step has `max_retries`.
    pub fn fail_retryable(message: impl Into<String>, result: Value) -> Self {
        Envelope {
            retry: Retry::Yes { after: None },
            ..Envelope::fail(message, result)
        }
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> Value {
        let mut json = serde_json::json!({ "result": self.result, "success": self.success, "error": self.error });
        if let (Some(model), Value::Object(map)) = (&self.model_used, &mut json) {
            map.insert("model_used".into(), Value::String(model.clone()));
        }
        if let (Some(outputs), Value::Object(map)) = (&self.outputs, &mut json) {
            map.insert("outputs".into(), outputs.clone());
        }
        if let (Some(info), Value::Object(map)) = (&self.output_info, &mut json) {
            map.insert("output_info".into(), info.clone());
        }
        json
    }
}

/// The tools and actions orc implements, with their parameters, for the compiler's checks
/// and `orc tools`: the declarations of the registry's tools.
pub fn catalog() -> orc_pipeline::Catalog {
    let catalog = orc_models::actions::ACTIONS
        .iter()
        .fold(registry::Registry::builtin().catalog(), |c, action| {
            c.with_model_action(action, orc_models::actions::parameters(action))
        });
    catalog.with_model_action(crate::auto::ACTION, crate::auto::PARAMETERS)
}

/// The catalog with the model references a gateway accepts, so model steps compile.
pub fn catalog_with_models(gateway: Option<&orc_models::Gateway>) -> orc_pipeline::Catalog {
    match gateway {
        Some(g) => catalog().with_models(g.registry().references()),
        None => catalog(),
    }
}

/// Calls a tool. `tool` is `None` for tool-less actions (`echo`).
pub async fn call(tool: Option<&str>, action: &str, params: Map<String, Value>) -> Envelope {
    let limits = ToolLimits::new(&crate::Resources::default());
    Callee::resolve(tool).call(action, params, &limits).await
}

/// Reads a string parameter, or says which one is missing.
pub(crate) fn str_param<'a>(params: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "parameter `{key}` must be a string, not {}",
            json_type(other)
        )),
        None => Err(format!("missing parameter `{key}`")),
    }
}

/// A parameter as text: strings as they are, anything else as Python's `str()` would show it.
pub(crate) fn text_param(params: &Map<String, Value>, key: &str) -> Result<String, String> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(orc_pipeline::templates::filters::py_str(
            &orc_pipeline::templates::to_value(other),
        )),
        None => Err(format!("missing parameter `{key}`")),
    }
}

/// A number of seconds from a parameter, with a default: positive and at most a year
/// ([`orc_pipeline::MAX_TIMEOUT_SECS`]), so it always makes a `Duration`.
pub(crate) fn seconds_param(
    params: &Map<String, Value>,
    key: &str,
    default: f64,
) -> Result<f64, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|s| *s > 0.0 && *s <= orc_pipeline::MAX_TIMEOUT_SECS)
            .ok_or_else(|| {
                format!(
                    "parameter `{key}` must be a positive number of seconds, at most {} (a year), not {v}",
                    orc_pipeline::MAX_TIMEOUT_SECS
                )
            }),
    }
}

/// A boolean parameter with a default; text `true`/`false` (any case) is read as one.
pub(crate) fn bool_param(
    params: &Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!(
            "parameter `{key}` must be true or false, not {other}"
        )),
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn retry_of(tool: Option<&str>, action: &str, params: Value) -> Retry {
        let params = params.as_object().cloned().unwrap();
        let envelope = call(tool, action, params).await;
        assert!(!envelope.success, "{envelope:?}");
        envelope.retry
    }

    #[tokio::test]
    async fn only_failures_a_retry_can_help_are_retryable() {
        let again = Retry::Yes { after: None };
        let terminal = Some("terminal");
        let ran_and_failed = serde_json::json!({"command": "exit 3"});
        assert_eq!(retry_of(terminal, "execute", ran_and_failed).await, again);
        let timed_out = serde_json::json!({"command": "sleep 5", "timeout": 0.05});
        assert_eq!(retry_of(terminal, "execute", timed_out).await, again);
        let python = serde_json::json!({"code": "raise SystemExit(2)"});
        assert_eq!(
            retry_of(Some("python-executor"), "execute", python).await,
            again
        );
        for (tool, action, params) in [
            (terminal, "execute", serde_json::json!({})),
            (
                terminal,
                "execute",
                serde_json::json!({"command": "true", "working_dir": "/no/such/dir"}),
            ),
            (
                Some("filesystem"),
                "read",
                serde_json::json!({"path": "/no/such/file"}),
            ),
            (None, "echo", serde_json::json!({})),
            (Some("terminal"), "explode", serde_json::json!({})),
            (
                Some("validation"),
                "validate",
                serde_json::json!({"data": 1, "schema": {"type": "string"}}),
            ),
        ] {
            assert_eq!(
                retry_of(tool, action, params.clone()).await,
                Retry::No,
                "{tool:?} {action} {params}"
            );
        }
    }
}
