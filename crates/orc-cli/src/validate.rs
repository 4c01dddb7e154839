//! `orc validate PIPELINE [--json] [--resolve]`: compile only, with the same compiler `run`
//! uses. No model is called unless `--resolve` says so: `<AUTO>` tags are checked and listed,
//! a line each, with what will answer them.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::{Global, exit};

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Print the plan and the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Answer the `<AUTO>` tags now, with the configured models (as `orc run` does), and keep
    /// the answers in the compile cache for the run. Without it no model is called.
    #[arg(long)]
    resolve: bool,
}

/// The findings that say how an `<AUTO>` tag is answered: by a model at run time, by the
/// router, or by a model now.
fn auto_tags(findings: &orc_pipeline::Diagnostics) -> Vec<&orc_pipeline::Diagnostic> {
    use orc_pipeline::Code;
    findings
        .0
        .iter()
        .filter(|d| matches!(d.code, Code::I202 | Code::I203 | Code::I204))
        .collect()
}

/// How a tag's finding reads in `--json`'s `auto_tags`.
fn tag_status(code: orc_pipeline::Code) -> &'static str {
    match code {
        orc_pipeline::Code::I202 => "needs_model",
        orc_pipeline::Code::I203 => "model_picked",
        _ => "answered",
    }
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &ValidateArgs) -> anyhow::Result<u8> {
    let file = args.pipeline.display().to_string();
    let (config, _) = crate::config::Config::load(global.config.as_deref())?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let loaded = match tokio.block_on(orc_runtime::validate(&config, &args.pipeline, args.resolve))
    {
        Ok(l) => l,
        Err(orc_runtime::Error::Invalid { diags, text, .. }) => {
            if args.json {
                let doc = json!({ "pipeline_file": file, "valid": false, "error": format!("{} error(s)", diags.error_count()), "findings": orc_runtime::plans::findings(&diags, &file) });
                print_json(&doc)?;
            } else {
                eprint!("{}", diags.render(&file, &text));
            }
            return Ok(exit::INVALID);
        }
        Err(e) => return Err(e.into()),
    };
    let plan = &loaded.compiled.plan;
    let findings_list = &loaded.compiled.findings;
    if args.json {
        let tasks: serde_json::Map<String, serde_json::Value> = plan
            .steps
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    json!(
                        s.deps
                            .iter()
                            .map(|&d| plan.steps[d as usize].id.clone())
                            .collect::<Vec<_>>()
                    ),
                )
            })
            .collect();
        let doc = json!({
            "pipeline_file": file,
            "valid": true,
            "pipeline": { "id": plan.id, "name": plan.name, "version": plan.version, "steps": plan.step_count() },
            "tasks": tasks,
            "findings": orc_runtime::plans::findings(findings_list, &file),
            "auto_tags": auto_tags(findings_list).iter().map(|d| json!({
                "status": tag_status(d.code),
                "line": d.pos.line,
                "column": d.pos.col,
                "step": d.step,
                "field": d.field,
                "message": d.message,
            })).collect::<Vec<_>>(),
            "plan": &**plan,
        });
        print_json(&doc)?;
        return Ok(exit::OK);
    }
    let shown: Vec<_> = findings_list
        .0
        .iter()
        .filter(|d| global.verbose > 0 || d.severity != orc_pipeline::Severity::Info)
        .cloned()
        .collect();
    let warnings = shown.len();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "✓ {file} is valid{}",
        if warnings > 0 {
            format!(" with {warnings} finding(s)")
        } else {
            String::new()
        }
    )?;
    writeln!(out, "pipeline: {} ({} steps)", plan.id, plan.step_count())?;
    for s in &plan.steps {
        let deps: Vec<&str> = s
            .deps
            .iter()
            .map(|&d| plan.steps[d as usize].id.as_str())
            .collect();
        if deps.is_empty() {
            writeln!(out, "  {}", s.id)?;
        } else {
            writeln!(out, "  {} <- {}", s.id, deps.join(", "))?;
        }
    }
    let tags = auto_tags(findings_list);
    if !tags.is_empty() && !global.quiet {
        let needs = tags
            .iter()
            .filter(|d| d.code == orc_pipeline::Code::I202)
            .count();
        writeln!(
            out,
            "AUTO tags: {} ({needs} need a model at run time)",
            tags.len()
        )?;
        for d in tags {
            let place = match (&d.step, &d.field) {
                (Some(step), Some(field)) => format!(" steps.{step}.{field}"),
                (Some(step), None) => format!(" steps.{step}"),
                (None, Some(field)) => format!(" {field}"),
                (None, None) => String::new(),
            };
            writeln!(
                out,
                "  {file}:{}:{}{place}: {}",
                d.pos.line, d.pos.col, d.message
            )?;
        }
    }
    if !shown.is_empty() {
        eprint!(
            "{}",
            orc_pipeline::Diagnostics(shown).render(&file, &loaded.text)
        );
    }
    Ok(exit::OK)
}

fn print_json(doc: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, doc)?;
    writeln!(out)?;
    Ok(())
}
