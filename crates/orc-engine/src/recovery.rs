//! py-orc's error handling when a step has failed: the `error` its handlers see, which handler
//! applies, its extra attempts, its fallback value and the handler step it starts; and the
//! check of a step's declared output file.

use std::sync::Arc;

use minijinja::Value as JValue;
use orc_pipeline::templates::Lookup;
use orc_pipeline::{Condition, DeclaredOutput, Handler, LogLevel, Param, Recovery, Then};
use serde_json::{Value, json};

use crate::tools::Envelope;

/// What handlers render with: the step's templates and condition expressions.
pub(crate) trait Render {
    /// A parameter tree, its templates rendered.
    fn value(&self, p: &Param, scope: &Arc<dyn Lookup>) -> Result<Value, String>;
    /// A condition, evaluated.
    fn condition(&self, c: &Condition, scope: &Arc<dyn Lookup>) -> Result<bool, String>;
}

/// A failure as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Failure<'a> {
    pub(crate) step: &'a str,
    /// orc's kind (`ToolError`, `Timeout`, …).
    pub(crate) kind: &'a str,
    pub(crate) message: &'a str,
    /// The tool's result, where a code may be (`return_code`, `status`).
    pub(crate) result: &'a Value,
    /// Attempts made so far.
    pub(crate) attempts: u32,
}

impl Failure<'_> {
    /// An HTTP status in the result (`status`, `status_code`).
    fn http_status(&self) -> Option<i64> {
        ["status", "status_code"]
            .iter()
            .find_map(|k| self.result.get(k).and_then(Value::as_i64))
    }

    /// The error's code: an HTTP status, else a process's exit code.
    fn code(&self) -> Option<i64> {
        self.http_status()
            .or_else(|| self.result.get("return_code").and_then(Value::as_i64))
    }

    /// The Python exception type py-orc would have raised for it.
    pub(crate) fn python_type(&self) -> &'static str {
        let m = self.message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
        match self.kind {
            "Timeout" => "TimeoutError",
            "TemplateError" => "ValueError",
            "OutputMissing" => "FileNotFoundError",
            _ if has(&["no such file", "not found", "does not exist"]) => "FileNotFoundError",
            _ if has(&["permission denied", "operation not permitted"]) => "PermissionError",
            _ if has(&[
                "connection refused",
                "connection reset",
                "failed to connect",
                "could not connect",
            ]) =>
            {
                "ConnectionError"
            }
            "ModelError" if has(&["401", "403", "unauthorized", "api key"]) => {
                "AuthenticationError"
            }
            "ModelError" => "ModelError",
            _ if self.http_status().is_some_and(|s| s >= 400) => "HTTPError",
            _ => "ToolError",
        }
    }

    /// `error` in a handler's scope: py-orc's error context (`error_message`, `error_type`,
    /// `failed_task_id`, …) with orc's short names beside it (`message`, `type`, `kind`, `step`).
    pub(crate) fn to_value(&self) -> Value {
        let py = self.python_type();
        json!({
            "message": self.message,
            "type": py,
            "kind": self.kind,
            "step": self.step,
            "code": self.code(),
            "error_message": self.message,
            "error_type": py,
            "error_code": self.code(),
            "failed_task_id": self.step,
            "failed_task_name": self.step,
            "execution_attempt": self.attempts,
            "error_timestamp": chrono::Utc::now().format(crate::scope::TIMESTAMP_FORMAT).to_string(),
        })
    }

    /// Whether a handler's filters take this failure: any of its types, patterns or codes
    /// (py-orc's rule); a handler with none takes every failure.
    pub(crate) fn matches(&self, h: &Handler) -> bool {
        if h.error_types.is_empty() && h.error_patterns.is_empty() && h.error_codes.is_empty() {
            return true;
        }
        let py = self.python_type();
        let by_type = h.error_types.iter().any(|t| {
            matches!(t.as_str(), "*" | "Exception")
                || t == py
                || t == self.kind
                || (t == "OSError"
                    && matches!(
                        py,
                        "FileNotFoundError"
                            | "PermissionError"
                            | "ConnectionError"
                            | "TimeoutError"
                    ))
                || (t == "APIError" && matches!(py, "ModelError" | "AuthenticationError"))
                || (t == "AuthorizationError" && py == "PermissionError")
        });
        let by_pattern = h.error_patterns.iter().any(|p| {
            self.message.contains(p.as_str())
                || regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .is_ok_and(|re| re.is_match(self.message))
        });
        let code = self.code();
        let by_code = h.error_codes.iter().any(|c| match (c, code) {
            (Value::Number(n), Some(code)) => n.as_i64() == Some(code),
            (Value::String(s), Some(code)) => s.trim() == code.to_string(),
            _ => false,
        });
        by_type || by_pattern || by_code
    }
}

/// A step's scope with the failed step's error bound, as py-orc's handler context has it.
pub(crate) struct ErrorScope {
    pub(crate) inner: Arc<dyn Lookup>,
    pub(crate) error: Value,
}

impl ErrorScope {
    pub(crate) fn wrap(inner: Arc<dyn Lookup>, error: Value) -> Arc<dyn Lookup> {
        Arc::new(ErrorScope { inner, error })
    }
}

impl Lookup for ErrorScope {
    fn lookup(&self, name: &str) -> Option<JValue> {
        let field = match name {
            "error" => return Some(orc_pipeline::templates::to_value(&self.error)),
            "error_message" | "error_type" | "failed_task_id" | "failed_task_name"
            | "execution_attempt" => name,
            _ => return self.inner.lookup(name),
        };
        self.error.get(field).map(orc_pipeline::templates::to_value)
    }
}

/// What a handler did, for the scheduler and the result document.
#[derive(Debug, Clone)]
pub(crate) struct Handled {
    /// The step's `recovery` in the result document.
    pub(crate) record: Value,
    /// The handler step to start, by index in the failed step's level.
    pub(crate) step: Option<u32>,
    /// `error` for the handler step.
    pub(crate) error: Value,
    /// What the failure does to the run, when the step still failed.
    pub(crate) then: Then,
}

/// The first handler, in order, that is enabled and takes the failure.
pub(crate) fn choose<'r>(
    recovery: &'r Recovery,
    failure: &Failure<'_>,
    render: &(dyn Render + Sync),
    scope: &Arc<dyn Lookup>,
) -> Option<(usize, &'r Handler)> {
    let error = failure.to_value();
    recovery.handlers.iter().enumerate().find(|(_, h)| {
        if !failure.matches(h) {
            return false;
        }
        let Some(cond) = &h.enabled else { return true };
        let scope = ErrorScope::wrap(Arc::clone(scope), error.clone());
        match render.condition(cond, &scope) {
            Ok(on) => on,
            Err(e) => {
                tracing::warn!(
                    step = failure.step,
                    "an error handler's `enabled`: {e}; not used"
                );
                false
            }
        }
    })
}

/// Applies a handler to a failed step's envelope: its fallback becomes the step's result
/// (the step completes), its action is rendered and recorded, its handler step is named.
pub(crate) fn apply(
    index: usize,
    h: &Handler,
    failure: &Failure<'_>,
    envelope: &mut Envelope,
    render: &(dyn Render + Sync),
    scope: &Arc<dyn Lookup>,
) -> Handled {
    let error = failure.to_value();
    let scope = ErrorScope::wrap(Arc::clone(scope), error.clone());
    let original =
        json!({ "type": failure.python_type(), "kind": failure.kind, "message": failure.message });
    let mut record = json!({ "handler": index, "original_error": original });
    let mut then = h.then;
    if let Some(action) = &h.action {
        match render.value(action, &scope) {
            Ok(text) => record["action"] = text,
            Err(e) => record["action_error"] = Value::String(e),
        }
    }
    if let Some(fallback) = &h.fallback {
        match render.value(fallback, &scope) {
            Ok(value) => {
                *envelope = Envelope::ok(value);
                record["fallback_used"] = Value::Bool(true);
            }
            Err(e) => {
                record["fallback_error"] = Value::String(e);
                if h.continue_on_handler_failure {
                    then = Then::Continue;
                } else {
                    then = Then::Propagate;
                }
            }
        }
    }
    if let Some(j) = h.step {
        record["handler_step"] = json!(j);
    }
    let msg = failure.message;
    match h.log_level {
        LogLevel::Debug => tracing::debug!(step = failure.step, "error handled: {msg}"),
        LogLevel::Info => tracing::info!(step = failure.step, "error handled: {msg}"),
        LogLevel::Warning => tracing::warn!(step = failure.step, "error handled: {msg}"),
        LogLevel::Error => tracing::error!(step = failure.step, "error handled: {msg}"),
    }
    Handled {
        record,
        step: h.step,
        error,
        then,
    }
}

/// Checks a succeeded step's declared output: renders `location`, and fails the step when
/// nothing is there. Returns what the record shows (`produces`, `location`).
pub(crate) async fn check_output(
    step: &str,
    output: &DeclaredOutput,
    envelope: &mut Envelope,
    render: &(dyn Render + Sync),
    scope: &Arc<dyn Lookup>,
    sandbox: Option<&crate::Sandbox>,
) -> Result<Option<String>, (String, &'static str)> {
    let Some(location) = &output.location else {
        return Ok(None);
    };
    let path = match render.value(location, scope) {
        Ok(Value::String(s)) => s.trim().to_string(),
        Ok(other) => other.to_string(),
        Err(e) => return Err((format!("`location`: {e}"), "TemplateError")),
    };
    let dir = path.ends_with('/');
    // A confined run looks in its workspace only.
    let at = match sandbox.map(|s| s.resolve(&path)) {
        None => Ok(std::path::PathBuf::from(&path)),
        Some(resolved) => resolved,
    };
    envelope.output_info = Some(json!({
        "location": path,
        "produces": output.produces,
    }));
    let at = at.map_err(|e| (format!("step `{step}`: `location`: {e}"), "OutputMissing"))?;
    let found = tokio::fs::metadata(&at)
        .await
        .is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() });
    if found {
        Ok(Some(path))
    } else {
        let what = if dir { "directory" } else { "file" };
        Err((
            format!(
                "step `{step}` declares its output at `{path}` (`location`), and no such {what} exists after it ran"
            ),
            "OutputMissing",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(types: &[&str], patterns: &[&str], codes: &[Value]) -> Handler {
        Handler {
            error_types: types.iter().map(|s| (*s).to_string()).collect(),
            error_patterns: patterns.iter().map(|s| (*s).to_string()).collect(),
            error_codes: codes.to_vec(),
            enabled: None,
            action: None,
            fallback: None,
            step: None,
            retries: 0,
            then: Then::Continue,
            continue_on_handler_failure: false,
            log_level: LogLevel::Error,
            pos: orc_pipeline::Pos { line: 1, col: 1 },
        }
    }

    fn failure<'a>(kind: &'a str, message: &'a str, result: &'a Value) -> Failure<'a> {
        Failure {
            step: "fetch",
            kind,
            message,
            result,
            attempts: 1,
        }
    }

    #[test]
    fn failures_get_the_python_types_py_orc_raised() {
        let none = Value::Null;
        let http = json!({ "status": 503 });
        assert_eq!(
            failure("Timeout", "timed out after 1 s", &none).python_type(),
            "TimeoutError"
        );
        assert_eq!(
            failure(
                "ToolError",
                "read data/x.json: No such file or directory (os error 2)",
                &none
            )
            .python_type(),
            "FileNotFoundError"
        );
        assert_eq!(
            failure("ToolError", "Permission denied", &none).python_type(),
            "PermissionError"
        );
        assert_eq!(
            failure("ToolError", "bad gateway", &http).python_type(),
            "HTTPError"
        );
        assert_eq!(
            failure("ModelError", "401 Unauthorized", &none).python_type(),
            "AuthenticationError"
        );
        assert_eq!(
            failure("ToolError", "exit status 3", &none).python_type(),
            "ToolError"
        );
    }

    #[test]
    fn a_handler_takes_a_failure_by_any_of_its_filters() {
        let none = Value::Null;
        let code3 = json!({ "return_code": 3 });
        let missing = failure("ToolError", "No such file or directory", &none);
        assert!(missing.matches(&handler(&[], &[], &[])));
        assert!(missing.matches(&handler(&["FileNotFoundError"], &[], &[])));
        assert!(missing.matches(&handler(&["OSError"], &[], &[])));
        assert!(missing.matches(&handler(&["*"], &[], &[])));
        assert!(!missing.matches(&handler(&["TimeoutError"], &[], &[])));
        assert!(missing.matches(&handler(&["TimeoutError"], &["no such.*directory"], &[])));
        let exit3 = failure("ToolError", "the command failed", &code3);
        assert!(exit3.matches(&handler(&["ConnectionError"], &[], &[json!(3)])));
        assert!(exit3.matches(&handler(&[], &[], &[json!("3")])));
        assert!(!exit3.matches(&handler(&[], &[], &[json!(4)])));
        assert!(exit3.matches(&handler(&["ToolError"], &[], &[])));
    }

    #[test]
    fn error_in_scope_has_py_orc_names_and_orc_ones() {
        let code = json!({ "return_code": 2 });
        let v = failure("ToolError", "boom", &code).to_value();
        assert_eq!(v["message"], "boom");
        assert_eq!(v["error_message"], "boom");
        assert_eq!(v["type"], "ToolError");
        assert_eq!(v["kind"], "ToolError");
        assert_eq!(v["failed_task_id"], "fetch");
        assert_eq!(v["step"], "fetch");
        assert_eq!(v["code"], 2);
        struct Empty;
        impl Lookup for Empty {
            fn lookup(&self, _: &str) -> Option<JValue> {
                None
            }
        }
        let scope = ErrorScope::wrap(Arc::new(Empty), v);
        assert_eq!(
            scope.lookup("error_message").map(|v| v.to_string()),
            Some("boom".into())
        );
        assert!(scope.lookup("other").is_none());
    }
}
