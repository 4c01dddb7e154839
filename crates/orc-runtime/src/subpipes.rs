//! Sub-pipelines (`pipeline-executor` steps): where a written path points, what a sub-run is
//! called and what it inherits, and the compile-time check of the sub-pipelines a pipeline
//! names statically (each one found and valid, no cycle, not too deep).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use orc_pipeline::{Code, Diagnostic, Diagnostics, Param, Plan, Pos, Step, StepKind};
use serde_json::{Map, Value};

use crate::plans::{LoadError, Loaded};

/// How many sub-pipelines deep a run may go: a run started by a user is depth 0, the
/// sub-pipelines it calls depth 1 (py-orc's `max_depth` was 10 as well).
pub const MAX_DEPTH: u32 = 10;

/// The tool that runs sub-pipelines.
const TOOL: &str = "pipeline-executor";

/// Where a run's sub-pipelines' relative paths start, and how deep the run is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nesting {
    /// Sub-pipelines above this run (0 for a run a user started).
    pub(crate) depth: u32,
    /// The calling pipeline's directory; `None` for a pipeline that is no file (a posted text).
    pub(crate) base_dir: Option<PathBuf>,
}

impl Nesting {
    /// A run a user started, of the pipeline in `file` (if it is one).
    pub(crate) fn top(file: Option<&Path>) -> Nesting {
        Nesting {
            depth: 0,
            base_dir: file.map(dir_of),
        }
    }
}

/// The directory a pipeline file is in (`.` for a bare file name).
fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The sub-run of step `step` of run `parent`: the same step of the same run always names the
/// same sub-run, so a resumed parent finds (and resumes) it.
pub(crate) fn child_id(parent: &str, step: &str) -> String {
    format!("{parent}/{step}")
}

/// The file a written sub-pipeline path names: an absolute path as it is; a relative one in
/// the calling pipeline's directory, else in the working directory (where py-orc looked). In a
/// confined run (`sandbox`), only a file in the workspace: relative paths are the workspace's.
pub(crate) fn resolve(
    base_dir: Option<&Path>,
    written: &str,
    sandbox: Option<&orc_engine::Sandbox>,
) -> Result<PathBuf, String> {
    let path = Path::new(written);
    let candidates: Vec<PathBuf> = if let Some(sandbox) = sandbox {
        vec![
            sandbox
                .resolve(written)
                .map_err(|e| format!("sub-pipeline {e}"))?,
        ]
    } else if path.is_absolute() {
        vec![path.to_path_buf()]
    } else {
        base_dir
            .map(|dir| dir.join(path))
            .into_iter()
            .chain(std::iter::once(path.to_path_buf()))
            .collect()
    };
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "sub-pipeline `{written}` not found (looked for {})",
        looked.join(", ")
    ))
}

/// A sub-run's inputs: the step's `inputs`, then (with `inherit_context`) the parent's inputs
/// that the sub-pipeline declares, and `output_path` as `<parent's>/sub_pipelines/<id>` (as
/// py-orc's sub-pipelines wrote under their parent's directory).
pub(crate) fn inputs(
    plan: &Plan,
    mut given: Map<String, Value>,
    inherited: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let Some(parent) = inherited else {
        return given;
    };
    for input in &plan.inputs {
        if input.name != OUTPUT_PATH
            && !given.contains_key(&input.name)
            && let Some(v) = parent.get(&input.name)
        {
            given.insert(input.name.clone(), v.clone());
        }
    }
    if !given.contains_key(OUTPUT_PATH)
        && let Some(Value::String(dir)) = parent.get(OUTPUT_PATH)
        && !dir.is_empty()
    {
        let name = plan.id.replace(['/', '.'], "_");
        given.insert(
            OUTPUT_PATH.into(),
            Value::String(format!("{dir}/sub_pipelines/{name}")),
        );
    }
    given
}

/// Every pipeline's output directory input.
const OUTPUT_PATH: &str = "output_path";

/// The `pipeline` parameter of a `pipeline-executor` step, when it is written out (no template).
fn static_source(step: &Step) -> Option<orc_engine::SubSource> {
    let StepKind::Action(a) = &step.kind else {
        return None;
    };
    if a.tool.as_deref() != Some(TOOL) {
        return None;
    }
    let text = match &a.params {
        Param::Lit(Value::Object(map)) => map.get("pipeline")?.as_str()?,
        Param::Map(entries) => match entries.iter().find(|(k, _)| k == "pipeline")? {
            (_, Param::Lit(Value::String(s))) => s.as_str(),
            _ => return None,
        },
        _ => return None,
    };
    Some(orc_engine::SubSource::parse(text))
}

/// Each `pipeline-executor` step of `steps` (loop bodies included) whose sub-pipeline is
/// written out, with it.
fn static_calls<'a>(steps: &'a [Step], out: &mut Vec<(&'a Step, orc_engine::SubSource)>) {
    for step in steps {
        if let Some(source) = static_source(step) {
            out.push((step, source));
        }
        static_calls(step.body().unwrap_or(&[]), out);
    }
}

/// Compiles a sub-pipeline's text (through the same compiler and cache as its parent).
pub(crate) type CompileFn<'a> = dyn Fn(&[u8]) -> Result<Loaded, LoadError> + 'a;

/// Checks the sub-pipelines `plan` names statically, and theirs: each is found and compiles,
/// none calls one that is calling it (a cycle), and none nests deeper than [`MAX_DEPTH`].
/// Each problem is a finding at the step of `plan` it starts from. `file` is the pipeline's
/// own file, if it is one.
pub(crate) fn check(
    file: Option<&Path>,
    plan: &Plan,
    compile: &CompileFn<'_>,
    sandbox: Option<&orc_engine::Sandbox>,
) -> Diagnostics {
    let mut walk = Walk {
        compile,
        sandbox,
        stack: file
            .map(|f| (key(f), f.display().to_string()))
            .into_iter()
            .collect(),
        checked: HashSet::new(),
    };
    let mut calls = Vec::new();
    static_calls(&plan.steps, &mut calls);
    let mut found = Diagnostics::default();
    for (step, source) in calls {
        let base = file.map(dir_of);
        if let Err(problem) = walk.call(base.as_deref(), &source, 1) {
            found.push(problem.at(step.pos, &step.id));
        }
    }
    found
}

/// What is wrong with a sub-pipeline a step names.
struct Problem {
    cycle: bool,
    message: String,
}

impl Problem {
    fn at(self, pos: Pos, step: &str) -> Diagnostic {
        let code = if self.cycle { Code::E007 } else { Code::E014 };
        Diagnostic::new(code, pos, self.message)
            .step(step)
            .field("parameters.pipeline")
    }
}

/// The depth-first walk over the sub-pipelines' files.
struct Walk<'a, 'c> {
    compile: &'a CompileFn<'c>,
    /// A confined run's sandbox: sub-pipeline files are the workspace's.
    sandbox: Option<&'a orc_engine::Sandbox>,
    /// The files being walked, outermost first: (identity, as shown).
    stack: Vec<(PathBuf, String)>,
    /// Files already walked without a problem.
    checked: HashSet<PathBuf>,
}

/// A file's identity for cycles: its canonical path when it has one.
fn key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Walk<'_, '_> {
    /// Checks one call, made at `depth`, from a pipeline whose relative paths start at `base`.
    fn call(
        &mut self,
        base: Option<&Path>,
        source: &orc_engine::SubSource,
        depth: u32,
    ) -> Result<(), Problem> {
        let problem = |message: String| Problem {
            cycle: false,
            message,
        };
        if depth > MAX_DEPTH {
            return Err(problem(format!(
                "sub-pipelines nest more than {MAX_DEPTH} deep: {}",
                self.chain()
            )));
        }
        match source {
            orc_engine::SubSource::Inline(text) => {
                let plan = self.compile_text(text.as_bytes(), "the inline sub-pipeline")?;
                self.calls_of(&plan, base, depth)
            }
            orc_engine::SubSource::Path(written) => {
                let path = resolve(base, written, self.sandbox).map_err(problem)?;
                let id = key(&path);
                if self.stack.iter().any(|(k, _)| *k == id) {
                    return Err(Problem {
                        cycle: true,
                        message: format!(
                            "sub-pipelines call each other in a cycle: {} → {}",
                            self.chain(),
                            path.display()
                        ),
                    });
                }
                if self.checked.contains(&id) {
                    return Ok(());
                }
                let bytes = std::fs::read(&path).map_err(|e| {
                    problem(format!(
                        "sub-pipeline {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                let plan = self.compile_text(&bytes, &path.display().to_string())?;
                self.stack.push((id.clone(), path.display().to_string()));
                let walked = self.calls_of(&plan, Some(&dir_of(&path)), depth);
                self.stack.pop();
                walked?;
                self.checked.insert(id);
                Ok(())
            }
        }
    }

    /// Checks the calls a sub-pipeline makes.
    fn calls_of(&mut self, plan: &Plan, base: Option<&Path>, depth: u32) -> Result<(), Problem> {
        let mut calls = Vec::new();
        static_calls(&plan.steps, &mut calls);
        for (_, source) in calls {
            self.call(base, &source, depth + 1)?;
        }
        Ok(())
    }

    fn compile_text(&self, bytes: &[u8], name: &str) -> Result<std::sync::Arc<Plan>, Problem> {
        match (self.compile)(bytes) {
            Ok(loaded) => Ok(loaded.compiled.plan),
            Err(LoadError::Invalid { diags, text }) => Err(Problem {
                cycle: false,
                message: format!(
                    "sub-pipeline {name} is not valid:\n{}",
                    findings(&diags, name, &text)
                ),
            }),
            Err(LoadError::Read(e)) => Err(Problem {
                cycle: false,
                message: format!("sub-pipeline {name}: {e}"),
            }),
        }
    }

    /// The files being walked, as `a.yaml → b.yaml`.
    fn chain(&self) -> String {
        self.stack
            .iter()
            .map(|(_, shown)| shown.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// A sub-pipeline's findings as they print, without the closing summary line (the caller's
/// own closes the message).
pub(crate) fn findings(diags: &Diagnostics, name: &str, text: &str) -> String {
    diags
        .0
        .iter()
        .map(|d| d.render(name, text))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_looked_for_beside_the_caller_then_in_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "x").unwrap();
        assert_eq!(
            resolve(Some(dir.path()), "b.yaml", None).unwrap(),
            dir.path().join("b.yaml")
        );
        let absolute = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            resolve(None, &absolute, None).unwrap(),
            dir.path().join("b.yaml")
        );
        let missing = resolve(Some(dir.path()), "nope.yaml", None).unwrap_err();
        assert!(missing.contains("`nope.yaml` not found"), "{missing}");
        assert!(missing.contains(&dir.path().join("nope.yaml").display().to_string()));
    }

    #[test]
    fn a_sub_run_inherits_declared_inputs_and_an_output_path_under_its_parent_s() {
        let plan = orc_pipeline::compile(
            "id: child\nname: child\nparameters:\n  topic: {type: string}\n  n: 1\nsteps:\n  - {id: s, action: echo, parameters: {message: hi}}\n",
            &orc_engine::catalog(),
        )
        .unwrap()
        .plan;
        let parent: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "topic": "cats", "n": 5, "other": true, "output_path": "out/p"
        }))
        .unwrap();
        let given: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"n": 7})).unwrap();
        let got = inputs(&plan, given.clone(), Some(&parent));
        assert_eq!(
            Value::Object(got),
            serde_json::json!({"n": 7, "topic": "cats", "output_path": "out/p/sub_pipelines/child"})
        );
        assert_eq!(inputs(&plan, given.clone(), None), given);
    }
}
