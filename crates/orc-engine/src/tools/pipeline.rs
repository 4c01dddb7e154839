//! `pipeline-executor`: runs another pipeline (a file, or inline YAML) as a step, through the
//! run's [`SubRunner`]; the sub-pipeline's outputs are the step's result.

use std::time::Duration;

use orc_pipeline::ParamType::{Any, Boolean, Integer, Mapping, Number, String as Text};
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value, json};

use super::Spent;
use super::declare::{action, tool};
use super::subrun::{SubRequest, SubRun, SubRunner, SubSource};
use super::tool::{Call, Tool};
use super::{Envelope, bool_param, json_type, seconds_param, str_param};
use crate::resources::ToolLimits;

/// The tool's name, as steps give it.
pub(crate) const NAME: &str = "pipeline-executor";

/// The `pipeline-executor` tool. Its calls go to the run's [`SubRunner`] (see
/// [`super::Callee`]); reached without one (a plan run without the runtime), it fails.
pub(super) struct PipelineExecutor;

impl Tool for PipelineExecutor {
    fn spec(&self) -> ToolSpec {
        tool(
            NAME,
            "Runs another pipeline as a step; its outputs are the step's result",
            vec![action(
                "execute",
                "Runs the sub-pipeline to its end (resumed, not re-run, when the parent run is resumed)",
                &[
                    (
                        "pipeline",
                        Text,
                        true,
                        None,
                        "a pipeline file (relative to the calling pipeline, else the working directory), or the pipeline's YAML itself",
                    ),
                    (
                        "inputs",
                        Any,
                        false,
                        Some("{}"),
                        "the sub-pipeline's inputs (a mapping; values may be templates)",
                    ),
                    (
                        "inherit_context",
                        Boolean,
                        false,
                        Some("true"),
                        "also pass the parent's inputs that the sub-pipeline declares, and `output_path` under `<parent's>/sub_pipelines/<id>`",
                    ),
                    (
                        "wait_for_completion",
                        Boolean,
                        false,
                        Some("true"),
                        "accepted for py-orc: the step always waits for the sub-pipeline",
                    ),
                    (
                        "timeout",
                        Number,
                        false,
                        Some("0"),
                        "seconds the sub-pipeline may take (0: no limit but the step's `timeout`)",
                    ),
                    (
                        "output_mapping",
                        Mapping,
                        false,
                        Some("{}"),
                        "renames outputs: `{sub-pipeline output: name in the result}`; only the mapped ones are kept",
                    ),
                    (
                        "error_handling",
                        Text,
                        false,
                        Some("fail"),
                        "when the sub-pipeline fails: `fail` the step, `continue` (the step succeeds with `status: failed` in its result), or `retry` it",
                    ),
                    (
                        "retry_count",
                        Integer,
                        false,
                        Some("3"),
                        "attempts in all under `error_handling: retry`; each resumes the sub-run",
                    ),
                    (
                        "retry_delay",
                        Number,
                        false,
                        Some("1"),
                        "seconds before the first retry, doubled after each",
                    ),
                ],
            )],
        )
    }

    fn call<'a>(
        &'a self,
        _action: &'a str,
        params: Map<String, Value>,
        _limits: &'a ToolLimits,
    ) -> Call<'a> {
        // Checked first, so a bad parameter is reported the same way with or without a runner.
        let message = match Request::parse("", params, None) {
            Err(e) => e,
            Ok(_) => format!(
                "`{NAME}` runs only inside a run of the orc runtime (`orc run`, `orc serve`)"
            ),
        };
        Box::pin(std::future::ready(Envelope::fail(message, Value::Null)))
    }

    fn stop_grace(&self) -> Duration {
        // A stopped sub-run stops its own steps (each with its tool's grace) and records its
        // end before the step reports.
        Duration::from_secs(3)
    }
}

/// What the sub-pipeline's failure does to the step (`error_handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnError {
    Fail,
    Continue,
    Retry,
}

/// A call's parameters, checked.
#[derive(Debug)]
struct Request {
    sub: SubRequest,
    timeout: Option<Duration>,
    output_mapping: Vec<(String, String)>,
    on_error: OnError,
    attempts: u32,
    retry_delay: Duration,
}

/// At most this many attempts under `error_handling: retry`.
const MAX_ATTEMPTS: u32 = 100;

impl Request {
    fn parse(
        step: &str,
        params: Map<String, Value>,
        parent_inputs: Option<&Map<String, Value>>,
    ) -> Result<Request, String> {
        let source = SubSource::parse(str_param(&params, "pipeline")?);
        if matches!(&source, SubSource::Path(p) if p.is_empty()) {
            return Err("parameter `pipeline` is empty".into());
        }
        let inputs = match params.get("inputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            // A template that gave a mapping's text.
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(format!(
                        "parameter `inputs` must be a mapping, not the text {s:?}"
                    ));
                }
            },
            Some(other) => {
                return Err(format!(
                    "parameter `inputs` must be a mapping, not {}",
                    json_type(other)
                ));
            }
        };
        let inherit = bool_param(&params, "inherit_context", true)?;
        bool_param(&params, "wait_for_completion", true)?;
        let timeout = match params.get("timeout") {
            None | Some(Value::Null) => None,
            Some(v) if v.as_f64() == Some(0.0) || v.as_str().map(str::trim) == Some("0") => None,
            _ => Some(Duration::from_secs_f64(seconds_param(
                &params,
                "timeout",
                orc_pipeline::MAX_TIMEOUT_SECS,
            )?)),
        };
        let output_mapping = match params.get("output_mapping") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(from, to)| match to {
                    Value::String(to) => Ok((from.clone(), to.clone())),
                    other => Err(format!(
                        "`output_mapping.{from}` must name the result's key, not {}",
                        json_type(other)
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "parameter `output_mapping` must be a mapping, not {}",
                    json_type(other)
                ));
            }
        };
        let on_error = match params.get("error_handling").map(|v| (v, v.as_str())) {
            None | Some((Value::Null, _)) | Some((_, Some("fail"))) => OnError::Fail,
            Some((_, Some("continue"))) => OnError::Continue,
            Some((_, Some("retry"))) => OnError::Retry,
            Some((v, _)) => {
                return Err(format!(
                    "parameter `error_handling` must be `fail`, `continue` or `retry`, not {v}"
                ));
            }
        };
        let attempts = match params.get("retry_count") {
            None | Some(Value::Null) => 3,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                .ok_or_else(|| {
                    format!("parameter `retry_count` must be a whole number from 1 to {MAX_ATTEMPTS}, not {v}")
                })?,
        };
        let retry_delay = match params.get("retry_delay") {
            Some(v) if v.as_f64() == Some(0.0) => Duration::ZERO,
            _ => Duration::from_secs_f64(seconds_param(&params, "retry_delay", 1.0)?),
        };
        Ok(Request {
            sub: SubRequest {
                step: step.to_owned(),
                source,
                inputs,
                inherited: parent_inputs.filter(|_| inherit).cloned(),
            },
            timeout,
            output_mapping,
            on_error,
            attempts: if on_error == OnError::Retry {
                attempts
            } else {
                1
            },
            retry_delay,
        })
    }
}

/// Runs step `step`'s sub-pipeline through `runner`; `parent_inputs` are the run's inputs.
pub(crate) async fn call(
    runner: &dyn SubRunner,
    step: &str,
    parent_inputs: &Map<String, Value>,
    params: Map<String, Value>,
) -> Envelope {
    let request = match Request::parse(step, params, Some(parent_inputs)) {
        Ok(r) => r,
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let mut delay = request.retry_delay;
    let mut attempt = 1;
    loop {
        let run = runner.run(request.sub.clone());
        let run = match request.timeout {
            None => run.await,
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(run) => run,
                Err(_) => {
                    // Dropping the call stopped the sub-run; it is resumable.
                    return Envelope::fail_retryable(
                        format!("the sub-pipeline timed out after {} s", limit.as_secs_f64()),
                        json!({ "timed_out": true }),
                    );
                }
            },
        };
        let run = match run {
            Ok(run) => run,
            // It could not run at all: another attempt would fail the same way.
            Err(e) => return Envelope::fail(e, Value::Null),
        };
        let completed = run.document["status"] == "completed";
        if completed || attempt >= request.attempts {
            return envelope(&request, &run, completed);
        }
        tracing::info!(
            step,
            attempt,
            error = run.document["error"].as_str().unwrap_or(""),
            "the sub-pipeline failed; resuming it (error_handling: retry)"
        );
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
        attempt += 1;
    }
}

/// The step's envelope from the sub-run: its outputs (mapped) as the result's `outputs`.
fn envelope(request: &Request, run: &SubRun, completed: bool) -> Envelope {
    let doc = &run.document;
    let outputs = map_outputs(&doc["outputs"], &request.output_mapping);
    let steps_executed = doc["steps"].as_object().map_or(0, |steps| {
        steps
            .values()
            .filter(|s| s["status"] == "completed")
            .count()
    });
    let mut result = json!({
        "pipeline_id": doc["pipeline_id"],
        "run_id": run.run_id,
        "status": doc["status"],
        "outputs": outputs,
        "steps_executed": steps_executed,
        "recursion_depth": run.depth,
        "execution_time": doc["duration"],
    });
    let mut envelope = if completed {
        Envelope::ok(result)
    } else {
        let error = format!(
            "sub-pipeline `{}` (run `{}`) {}: {}",
            doc["pipeline_id"].as_str().unwrap_or(""),
            run.run_id,
            doc["status"].as_str().unwrap_or("failed"),
            doc["error"].as_str().unwrap_or("no error recorded")
        );
        result["error"] = Value::String(error.clone());
        result["error_type"] = doc["error_type"].clone();
        match request.on_error {
            OnError::Continue => {
                result["continued"] = Value::Bool(true);
                Envelope::ok(result)
            }
            // A sub-run that timed out or was stopped may get through when resumed; one that
            // failed on its own would fail the same way.
            _ if doc["status"] == "interrupted" || doc["error_type"] == "Timeout" => {
                Envelope::fail_retryable(error, result)
            }
            _ => Envelope::fail(error, result),
        }
    };
    envelope.outputs = Some(outputs);
    envelope.spent = Some(Spent {
        usage: serde_json::from_value(doc["usage"].clone()).unwrap_or_default(),
        cost: doc["cost"].as_f64().unwrap_or(0.0),
        unpriced_calls: doc["unpriced_calls"].as_u64().unwrap_or(0),
    });
    envelope
}

/// The sub-pipeline's outputs, renamed by `output_mapping` (only the mapped ones kept, as in
/// py-orc); all of them when there is no mapping.
fn map_outputs(outputs: &Value, mapping: &[(String, String)]) -> Value {
    if mapping.is_empty() {
        return match outputs {
            Value::Object(_) => outputs.clone(),
            _ => Value::Object(Map::new()),
        };
    }
    let mut mapped = Map::new();
    for (from, to) in mapping {
        match outputs.get(from) {
            Some(v) => {
                mapped.insert(to.clone(), v.clone());
            }
            None => {
                tracing::warn!(output = %from, "output_mapping: the sub-pipeline has no such output")
            }
        }
    }
    Value::Object(mapped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_with_a_line_break_is_inline_yaml_anything_else_a_path() {
        assert_eq!(
            SubSource::parse(" sub/a.yaml "),
            SubSource::Path("sub/a.yaml".into())
        );
        assert!(matches!(
            SubSource::parse("id: x\nsteps: []\n"),
            SubSource::Inline(_)
        ));
        assert_eq!(
            SubSource::parse("a.yaml\n"),
            SubSource::Path("a.yaml".into())
        );
    }

    #[test]
    fn parameters_are_checked_with_py_orc_s_defaults() {
        let r = Request::parse(
            "s",
            params(json!({"pipeline": "a.yaml"})),
            Some(&Map::new()),
        )
        .unwrap();
        assert_eq!(r.on_error, OnError::Fail);
        assert_eq!(r.attempts, 1, "retries only under error_handling: retry");
        assert_eq!(r.timeout, None);
        assert!(r.sub.inherited.is_some());
        let r = Request::parse(
            "s",
            params(json!({"pipeline": "a.yaml", "error_handling": "retry", "inherit_context": false, "timeout": 2})),
            Some(&Map::new()),
        )
        .unwrap();
        assert_eq!((r.on_error, r.attempts), (OnError::Retry, 3));
        assert_eq!(r.timeout, Some(Duration::from_secs(2)));
        assert!(r.sub.inherited.is_none());
        for (bad, says) in [
            (json!({}), "missing parameter `pipeline`"),
            (
                json!({"pipeline": "a.yaml", "error_handling": "ignore"}),
                "error_handling",
            ),
            (
                json!({"pipeline": "a.yaml", "inputs": [1]}),
                "`inputs` must be a mapping",
            ),
            (
                json!({"pipeline": "a.yaml", "retry_count": 0}),
                "retry_count",
            ),
            (
                json!({"pipeline": "a.yaml", "output_mapping": {"a": 1}}),
                "output_mapping.a",
            ),
        ] {
            let e = Request::parse("s", params(bad.clone()), None).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn output_mapping_renames_and_keeps_only_the_mapped_outputs() {
        let outputs = json!({"a": 1, "b": 2});
        let mapping = vec![
            ("a".to_owned(), "x".to_owned()),
            ("zz".to_owned(), "y".to_owned()),
        ];
        assert_eq!(map_outputs(&outputs, &mapping), json!({"x": 1}));
        assert_eq!(map_outputs(&outputs, &[]), outputs);
        assert_eq!(map_outputs(&Value::Null, &[]), json!({}));
    }
}
