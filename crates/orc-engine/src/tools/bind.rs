//! What each action step calls, looked up in the registry once when a run starts: a step's
//! task calls its tool's entry without looking its name up again.

use std::sync::Arc;
use std::time::Duration;

use orc_pipeline::{Plan, Step, StepKind};
use serde_json::{Map, Value};

use super::Envelope;
use super::echo::{debug, echo};
use super::pipeline;
use super::registry::{Entry, Registry};
use super::subrun::SubRunner;
use crate::resources::ToolLimits;

/// What a step's `tool:` resolved to.
#[derive(Clone)]
pub(crate) enum Callee {
    /// A tool of the registry.
    Tool(&'static Entry),
    /// No `tool:`: the tool-less `echo` and `debug`. (The scheduler evaluates `evaluate_condition`, and
    /// model actions go to the gateway; neither reaches a callee.)
    ToolLess,
    /// A tool the registry does not have (a plan compiled against another catalog): every
    /// call fails.
    Missing(Arc<str>),
    /// A `pipeline-executor` step of a run that has a [`SubRunner`]: its sub-run is named by
    /// the step's id (a loop iteration's own id).
    SubPipeline {
        entry: &'static Entry,
        runs: SubRuns,
        step: Arc<str>,
    },
}

/// How a run's `pipeline-executor` steps reach the runtime: its runner and the run's inputs
/// (for `inherit_context`).
#[derive(Clone)]
pub(crate) struct SubRuns {
    pub(crate) runner: Arc<dyn SubRunner>,
    pub(crate) inputs: Arc<Map<String, Value>>,
}

impl Callee {
    /// Looks a step's tool up in the built-in registry.
    pub(crate) fn resolve(tool: Option<&str>) -> Callee {
        match tool {
            None => Callee::ToolLess,
            Some(name) => Registry::builtin()
                .get(name)
                .map_or_else(|| Callee::Missing(name.into()), Callee::Tool),
        }
    }

    /// Calls the tool under the run's limits (data tools take a slot of the CPU pool).
    pub(crate) async fn call(
        &self,
        action: &str,
        params: Map<String, Value>,
        limits: &ToolLimits,
    ) -> Envelope {
        match self {
            Callee::Tool(entry) => entry.call(action, params, limits).await,
            Callee::SubPipeline { entry, runs, step } => {
                if entry.spec().action(action).is_none() {
                    return entry.call(action, params, limits).await;
                }
                pipeline::call(&*runs.runner, step, &runs.inputs, params).await
            }
            Callee::ToolLess if action == "echo" => echo(&params),
            Callee::ToolLess if action == "debug" => debug(&params),
            Callee::ToolLess => Envelope::fail(format!("unknown action `{action}`"), Value::Null),
            Callee::Missing(tool) => Envelope::fail(
                format!("tool `{tool}` has no action `{action}`"),
                Value::Null,
            ),
        }
    }

    /// How long past its step's deadline the call may take to stop what it started.
    pub(crate) fn stop_grace(&self) -> Duration {
        match self {
            Callee::Tool(entry) | Callee::SubPipeline { entry, .. } => entry.stop_grace(),
            Callee::ToolLess | Callee::Missing(_) => Duration::ZERO,
        }
    }
}

/// The callee of every action step of a plan, in the plan's shape (a loop's body under it).
pub(crate) struct Bindings {
    steps: Vec<Binding>,
    /// Where `pipeline-executor` steps go; without it they fail.
    sub_runs: Option<SubRuns>,
}

struct Binding {
    /// `None` for a loop.
    callee: Option<Callee>,
    /// A loop's body.
    body: Vec<Binding>,
}

impl Bindings {
    /// Resolves every action step of `plan`, loop bodies included.
    pub(crate) fn of(plan: &Plan) -> Bindings {
        Bindings {
            steps: of_steps(&plan.steps),
            sub_runs: None,
        }
    }

    /// Sends the run's `pipeline-executor` steps to `runs`.
    pub(crate) fn with_sub_runs(mut self, runs: Option<SubRuns>) -> Bindings {
        self.sub_runs = runs;
        self
    }

    /// What the action step at `path` calls (`path` as the scheduler's nodes keep it: indices
    /// from the plan's steps down through loop bodies); `step` is its node's id. `tool` is the
    /// step's own: a step this does not hold (never, for the plan it was made of) is looked
    /// up now.
    pub(crate) fn callee(&self, path: &[u32], tool: Option<&str>, step: &Arc<str>) -> Callee {
        let callee = self
            .at(path)
            .cloned()
            .unwrap_or_else(|| Callee::resolve(tool));
        match (callee, &self.sub_runs) {
            (Callee::Tool(entry), Some(runs)) if entry.spec().name == pipeline::NAME => {
                Callee::SubPipeline {
                    entry,
                    runs: runs.clone(),
                    step: Arc::clone(step),
                }
            }
            (callee, _) => callee,
        }
    }

    /// The callee of the action step at `path`; `None` for a loop, or a path the plan does
    /// not have.
    fn at(&self, path: &[u32]) -> Option<&Callee> {
        let (&first, rest) = path.split_first()?;
        let mut binding = self.steps.get(first as usize)?;
        for &i in rest {
            binding = binding.body.get(i as usize)?;
        }
        binding.callee.as_ref()
    }
}

fn of_steps(steps: &[Step]) -> Vec<Binding> {
    steps
        .iter()
        .map(|step| Binding {
            callee: match &step.kind {
                StepKind::Action(a) => Some(Callee::resolve(a.tool.as_deref())),
                StepKind::ForEach(_) | StepKind::While(_) => None,
            },
            body: of_steps(step.body().unwrap_or(&[])),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
id: bound
name: Bound
steps:
  - id: read
    tool: filesystem
    action: read
    parameters: {path: x}
  - id: each
    for_each: "{{ [1, 2] }}"
    steps:
      - id: run
        tool: terminal
        action: execute
        parameters: {command: "true"}
      - id: say
        action: echo
        parameters: {message: hi}
"#;

    fn name(callee: &Callee) -> Option<&str> {
        match callee {
            Callee::Tool(entry) | Callee::SubPipeline { entry, .. } => Some(&entry.spec().name),
            Callee::ToolLess => None,
            Callee::Missing(tool) => Some(tool),
        }
    }

    #[test]
    fn each_action_step_is_bound_to_its_tool_loop_bodies_included() {
        let compiled = orc_pipeline::compile(PIPELINE, &super::super::catalog()).unwrap();
        let bound = Bindings::of(&compiled.plan);
        assert_eq!(bound.at(&[0]).and_then(name), Some("filesystem"));
        assert!(bound.at(&[1]).is_none(), "a loop calls nothing");
        assert_eq!(bound.at(&[1, 0]).and_then(name), Some("terminal"));
        assert!(matches!(bound.at(&[1, 1]), Some(Callee::ToolLess)));
        assert!(bound.at(&[2]).is_none() && bound.at(&[1, 2]).is_none() && bound.at(&[]).is_none());
    }

    #[tokio::test]
    async fn tool_less_and_missing_tools_fail_as_before() {
        let limits = ToolLimits::new(&crate::Resources::default());
        let echo = Callee::resolve(None)
            .call(
                "echo",
                serde_json::json!({"text": "hi"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                &limits,
            )
            .await;
        assert_eq!(echo.result, Value::from("hi"));
        let unknown = Callee::resolve(None)
            .call("shout", Map::new(), &limits)
            .await;
        assert_eq!(unknown.error.as_deref(), Some("unknown action `shout`"));
        let missing = Callee::resolve(Some("teleport"));
        assert!(matches!(missing, Callee::Missing(_)));
        let failed = missing.call("go", Map::new(), &limits).await;
        assert_eq!(
            failed.error.as_deref(),
            Some("tool `teleport` has no action `go`")
        );
        assert_eq!(missing.stop_grace(), Duration::ZERO);
        assert_eq!(
            Callee::resolve(Some("terminal")).stop_grace(),
            Duration::from_secs(1)
        );
    }
}
