//! What a confined runtime (`orc serve`'s, by default) refuses before a pipeline runs: steps
//! whose tool its sandbox has off. The engine's tools confine what the rest may reach.

use orc_engine::Sandbox;
use orc_pipeline::{Code, Diagnostic, Diagnostics, Plan, Step, StepKind};

/// The tools that run programs, off unless `server.sandbox.allow_commands`.
const COMMANDS: &[&str] = &["terminal", "python-executor"];

/// A finding at each step (loop bodies included) that uses a tool `sandbox` has off.
pub(crate) fn check(plan: &Plan, sandbox: &Sandbox) -> Diagnostics {
    let mut found = Diagnostics::default();
    if !sandbox.allow_commands {
        walk(&plan.steps, &mut found);
    }
    found
}

fn walk(steps: &[Step], found: &mut Diagnostics) {
    for step in steps {
        if let StepKind::Action(action) = &step.kind
            && let Some(tool) = action.tool.as_deref().filter(|t| COMMANDS.contains(t))
        {
            found.push(
                Diagnostic::new(
                    Code::E023,
                    step.pos,
                    format!(
                        "step `{}` uses `{tool}`, which runs programs: off for pipelines posted to this service",
                        step.id
                    ),
                )
                .step(&step.id)
                .field("tool")
                .hint("the service's config allows it with `server.sandbox.allow_commands: true`"),
            );
        }
        walk(step.body().unwrap_or(&[]), found);
    }
}
