//! Shared helpers: the catalog, fixture loading and the plan summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use orc_pipeline::{
    Catalog, Compiled, Condition, ModelChoice, OnFailure, Param, Plan, Step, StepKind,
};

/// The model references of the test configuration: names and `provider:name` spellings.
pub(crate) const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "openai:gpt-4o-mini",
    "claude-3-5-haiku",
    "anthropic:claude-3-5-haiku",
    "llama3.2:1b",
    "ollama:llama3.2:1b",
];

/// The engine's catalog (`orc-engine/src/tools/mod.rs`), rebuilt here because this crate
/// cannot depend on the engine, with the models of a configuration that has some.
pub(crate) fn catalog() -> Catalog {
    catalog_without_models().with_models(MODELS.iter().copied())
}

/// The catalog of a configuration with no `models:`.
pub(crate) fn catalog_without_models() -> Catalog {
    Catalog::new()
        .with_tool(
            "filesystem",
            &[
                "read", "write", "copy", "move", "delete", "list", "exists", "mkdir",
            ],
        )
        .with_tool("terminal", &["execute"])
        .with_tool("python-executor", &["execute", "run"])
        .with_tool("echo", &["echo"])
        .with_tool(
            "data-processing",
            &[
                "convert",
                "filter",
                "aggregate",
                "transform",
                "profile",
                "pivot",
                "clean",
                "merge",
            ],
        )
        .with_tool("validation", &["validate", "infer_schema", "quality_check"])
}

/// The catalog a fixture compiles with: [`catalog`], or [`catalog_without_models`] when a
/// comment line says `# catalog: no models`.
pub(crate) fn catalog_for(text: &str) -> Catalog {
    if text.lines().any(|l| l.trim() == "# catalog: no models") {
        catalog_without_models()
    } else {
        catalog()
    }
}

pub(crate) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture whose file name starts with `prefix`, sorted, as (file name, text).
pub(crate) fn fixtures(prefix: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .map(|e| e.expect("directory entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            (name.starts_with(prefix) && name.ends_with(".yaml")).then_some((name, p))
        })
        .map(|(name, p)| {
            let text = std::fs::read_to_string(&p).expect("fixture is UTF-8 text");
            (name, text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no `{prefix}*.yaml` fixtures");
    out
}

/// The codes a fixture's `# expect: E003 E003 E005` comment lines list, in order, sorted.
pub(crate) fn expected_codes(text: &str) -> Vec<String> {
    let mut codes: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("# expect:"))
        .flat_map(|rest| rest.split_whitespace().map(str::to_string))
        .collect();
    codes.sort();
    codes
}

/// The source with line numbers, as a snapshot header.
pub(crate) fn numbered(source: &str) -> String {
    let mut out = String::new();
    for (i, line) in source.lines().enumerate() {
        let _ = writeln!(out, "{:>3} | {line}", i + 1);
    }
    out
}

/// A compact, stable description of a compiled pipeline: its header, steps with their
/// dependencies and control keys (nested bodies indented), then the findings rendered.
pub(crate) fn summary(file: &str, source: &str, compiled: &Compiled) -> String {
    let plan = &compiled.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline `{}` ({}) version {}",
        plan.id, plan.name, plan.version
    );
    if let Some(t) = plan.default_timeout {
        let _ = writeln!(out, "default_timeout: {t}");
    }
    if let Some(m) = &plan.model {
        let _ = writeln!(out, "model: {m}");
    }
    for i in &plan.inputs {
        let _ = writeln!(
            out,
            "input {}: type={} required={} default={}",
            i.name,
            i.kind.map_or("-", |k| k.as_str()),
            i.required,
            i.default
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string)
        );
    }
    for (name, p) in &plan.outputs {
        let _ = writeln!(out, "output {name} = {}", param(plan, p));
    }
    out.push_str("steps:\n");
    steps(&mut out, plan, &plan.steps, 1);
    out.push_str("findings:\n");
    if compiled.findings.0.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&compiled.findings.render(file, source));
    }
    out
}

fn steps(out: &mut String, plan: &Plan, list: &[Step], depth: usize) {
    let pad = "  ".repeat(depth);
    for s in list {
        let _ = write!(out, "{pad}{}", s.id);
        match &s.kind {
            StepKind::Action(a) => {
                let _ = write!(
                    out,
                    " [{}{}]",
                    a.tool.as_deref().map_or(String::new(), |t| format!("{t}.")),
                    param(plan, &a.action)
                );
            }
            StepKind::ForEach(f) => {
                let _ = write!(
                    out,
                    " [for_each {} max_parallel={}{}]",
                    param(plan, &f.items),
                    f.max_parallel,
                    f.loop_var
                        .as_deref()
                        .map_or(String::new(), |v| format!(" loop_var={v}"))
                );
            }
            StepKind::While(w) => {
                let _ = write!(
                    out,
                    " [while {}{} max_iterations={}]",
                    condition(plan, &w.condition),
                    w.until
                        .as_ref()
                        .map_or(String::new(), |u| format!(" until {}", condition(plan, u))),
                    w.max_iterations
                );
            }
        }
        if !s.deps.is_empty() {
            let deps: Vec<&str> = s
                .deps
                .iter()
                .map(|&d| list[d as usize].id.as_str())
                .collect();
            let _ = write!(out, " <- {}", deps.join(", "));
        }
        if let Some(c) = &s.condition {
            let _ = write!(out, " if {}", condition(plan, c));
        }
        let id_of = |i: u32| list[i as usize].id.as_str();
        if let Some(t) = s.on_false {
            let _ = write!(out, " on_false->{}", id_of(t));
        }
        if let Some(t) = s.on_success {
            let _ = write!(out, " on_success->{}", id_of(t));
        }
        match s.on_failure {
            OnFailure::Fail => {}
            OnFailure::Continue => out.push_str(" on_failure=continue"),
            OnFailure::Skip => out.push_str(" on_failure=skip"),
            OnFailure::Goto(t) => {
                let _ = write!(out, " on_failure->{}", id_of(t));
            }
        }
        if let Some(t) = s.timeout {
            let _ = write!(out, " timeout={t}");
        }
        if s.max_retries > 0 {
            let _ = write!(out, " max_retries={}", s.max_retries);
        }
        match &s.model {
            None => {}
            Some(ModelChoice::Named(m)) => {
                let _ = write!(out, " model={m}");
            }
            Some(ModelChoice::NoModel) => out.push_str(" model=none"),
            Some(ModelChoice::Requirements(r)) => {
                let _ = write!(out, " requires_model={r:?}");
            }
        }
        if let StepKind::Action(a) = &s.kind
            && !matches!(a.params, Param::Lit(serde_json::Value::Object(ref m)) if m.is_empty())
            && a.tool.is_none()
            && !matches!(&a.action, Param::Lit(serde_json::Value::String(x)) if x == "echo" || x == "evaluate_condition")
        {
            let _ = write!(out, " params={}", param(plan, &a.params));
        }
        out.push('\n');
        if let Some(body) = s.body() {
            steps(out, plan, body, depth + 1);
        }
    }
}

fn param(plan: &Plan, p: &Param) -> String {
    match p {
        Param::Lit(serde_json::Value::String(s)) => s.clone(),
        Param::Lit(v) => v.to_string(),
        Param::Tmpl(id) => format!("`{}`", plan.templates[id.0 as usize]),
        Param::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| param(plan, i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Param::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", param(plan, v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn condition(plan: &Plan, c: &Condition) -> String {
    match c {
        Condition::Literal(b) => format!("literal({b})"),
        Condition::Template(id) => format!("template(`{}`)", plan.templates[id.0 as usize]),
        Condition::Expr(id) => format!("expr(`{}`)", plan.exprs[id.0 as usize]),
    }
}
