//! The result document: the records of every node, the pipeline's outputs, usage and cost.

use std::sync::Arc;
use std::time::SystemTime;

use indexmap::IndexMap;

use orc_pipeline::templates::Lookup;
use orc_pipeline::{Param, Step, StepKind};
use serde_json::{Map, Value};

use super::ids::now_rfc3339;
use super::node::step_at;
use super::state::Run;
use crate::result::{RunResult, RunStatus, StepAttempts, StepRecord, StepStatus, Usage};
use crate::scope::StepScope;
use crate::step;

pub(super) fn action_name(step: &Step) -> String {
    match &step.kind {
        StepKind::Action(a) => match &a.action {
            Param::Lit(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        StepKind::ForEach(_) => "for_each".into(),
        StepKind::While(_) => "while".into(),
    }
}

pub(super) fn blank_record(id: &str, step: &Step, deps: &[String]) -> StepRecord {
    StepRecord {
        id: id.to_string(),
        action: action_name(step),
        tool: match &step.kind {
            StepKind::Action(a) => a.tool.clone(),
            _ => None,
        },
        status: StepStatus::Pending,
        success: false,
        value: None,
        error: None,
        error_type: None,
        reason: None,
        started_at: None,
        completed_at: None,
        duration: None,
        retries: 0,
        attempts: StepAttempts::default(),
        timed_out: false,
        dependencies: deps.to_vec(),
        model: None,
        provider: None,
        cached: false,
        usage: None,
        cost: None,
        unpriced_calls: 0,
        model_time: None,
        model_choice: None,
        recovery: None,
        produces: step.output.as_ref().and_then(|o| o.produces.clone()),
        location: None,
    }
}

impl Run<'_> {
    /// The result document, once the scheduler has stopped: every node's record (a blank one,
    /// `not run`, for nodes that never ran), outputs, usage and cost, and what ended the run.
    pub(super) fn into_result(
        mut self,
        interrupted: bool,
        execution_id: String,
        started: SystemTime,
    ) -> RunResult {
        let plan = self.plan;
        let completed = SystemTime::now();
        let mut steps = IndexMap::with_capacity(self.nodes.len());
        let mut success = true;
        for node in self.nodes.iter_mut() {
            let record = node.record.take().unwrap_or_else(|| {
                let step = step_at(plan, &node.path);
                let mut r = blank_record(&node.id, step, &[]);
                r.error = Some(match &self.stop {
                    Some((why, _)) => format!("not run: {why}"),
                    None => "not run".into(),
                });
                r
            });
            if record.status != StepStatus::Skipped && !record.success {
                success = false;
            }
            steps.insert(node.id.to_string(), record);
        }
        // Dependencies by id, now that every node has one.
        let ids: Vec<Arc<str>> = self.nodes.iter().map(|n| Arc::clone(&n.id)).collect();
        for (node, record) in self.nodes.iter().zip(steps.values_mut()) {
            record.dependencies = node
                .deps
                .iter()
                .map(|&d| ids[d.index()].to_string())
                .collect();
        }
        let outputs = self.outputs();
        let mut usage = Usage::default();
        let mut cost = 0.0;
        let mut unpriced_calls = 0;
        for record in steps.values() {
            if record.model.is_some() {
                usage += record.usage.unwrap_or_default();
                match record.cost {
                    Some(c) => cost += c,
                    None => unpriced_calls += 1,
                }
            } else if let Some(spent) = record.usage {
                // A sub-pipeline's run: what it spent is the caller's too.
                usage += spent;
                cost += record.cost.unwrap_or(0.0);
                unpriced_calls += record.unpriced_calls;
            }
        }
        // What stopped the run, else (a run that went to the end) its first failure.
        let (error, error_type) = self
            .stopped_by
            .clone()
            .or_else(|| self.first_error.clone())
            .map_or((None, None), |(e, t)| (Some(e), Some(t)));
        let status = if interrupted {
            RunStatus::Interrupted
        } else if success {
            RunStatus::Completed
        } else {
            RunStatus::Failed
        };
        RunResult {
            pipeline_id: plan.id.clone(),
            execution_id,
            status,
            success: success && !interrupted,
            steps,
            outputs,
            output_specs: plan.output_specs.clone(),
            execution_order: self
                .order
                .iter()
                .map(|&i| ids[i.index()].to_string())
                .collect(),
            execution_levels: plan
                .levels()
                .into_iter()
                .map(|l| l.into_iter().map(|i| plan.steps[i].id.clone()).collect())
                .collect(),
            started_at: now_rfc3339(started),
            completed_at: now_rfc3339(completed),
            duration: completed
                .duration_since(started)
                .unwrap_or_default()
                .as_secs_f64(),
            error,
            error_type,
            usage,
            cost,
            unpriced_calls,
        }
    }
}

impl Run<'_> {
    pub(super) fn outputs(&self) -> Map<String, Value> {
        let scope: Arc<dyn Lookup> = Arc::new(StepScope {
            shared: Arc::clone(&self.shared),
            frame: None,
        });
        let mut out = Map::new();
        for (name, p) in &self.plan.outputs {
            let v = match p {
                Param::Tmpl(id) => match self.templates.render(*id, &scope) {
                    Ok(text) => coerce(&text),
                    Err(e) => {
                        tracing::warn!("output `{name}` could not be rendered: {e}");
                        Value::Null
                    }
                },
                other => step::render(other, self.templates, &scope).unwrap_or(Value::Null),
            };
            out.insert(name.clone(), v);
        }
        out
    }
}

/// The earlier system's output coercion: digits to int, float-looking to float,
/// `true`/`false` to bool, JSON or Python literals to their values.
fn coerce(text: &str) -> Value {
    let t = text.trim();
    if !t.is_empty()
        && t.chars().all(|c| c.is_ascii_digit())
        && let Ok(i) = t.parse::<i64>()
    {
        return Value::from(i);
    }
    if t.contains(['.', 'e', 'E'])
        && t.parse::<f64>().is_ok_and(f64::is_finite)
        && let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    match t.to_ascii_lowercase().as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')) {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
        if let Ok(v) = orc_data::parse_python_literal(t) {
            return v;
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn coercion_matches_the_earlier_system() {
        assert_eq!(coerce("11"), json!(11));
        assert_eq!(coerce("1.5"), json!(1.5));
        assert_eq!(coerce("True"), json!(true));
        assert_eq!(coerce("{'a': [1, None]}"), json!({"a": [1, null]}));
        assert_eq!(coerce("hello world"), json!("hello world"));
        assert_eq!(coerce("1.0.0"), json!("1.0.0"));
    }
}
