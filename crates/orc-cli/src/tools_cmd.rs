//! `orc tools [TOOL] [--json]`: the tool catalog, from the same declarations the compiler
//! checks steps against.

use std::io::Write as _;

use clap::Args;

use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct ToolsArgs {
    /// Show this tool only.
    tool: Option<String>,
    /// Print JSON: `[{name, description, actions: [{name, description, params: [...]}]}]`.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(_global: &Global, args: &ToolsArgs) -> anyhow::Result<u8> {
    let catalog = orc_engine::catalog();
    let tools: Vec<&orc_pipeline::ToolSpec> = match &args.tool {
        None => catalog.tools().iter().collect(),
        Some(name) => match catalog.tool(name) {
            Some(t) => vec![t],
            None => {
                let hint = orc_pipeline::did_you_mean(name, catalog.tool_names())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(UserError(format!(
                    "no tool `{name}`{hint}; the tools are: {}",
                    catalog.tool_names().collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
        },
    };
    let mut text = Vec::new();
    if args.json {
        serde_json::to_writer_pretty(&mut text, &tools)?;
        text.push(b'\n');
    } else {
        for (i, t) in tools.iter().enumerate() {
            if i > 0 {
                writeln!(text)?;
            }
            writeln!(text, "{}: {}", t.name, t.description)?;
            for a in &t.actions {
                writeln!(text, "  {} — {}", a.name, a.description)?;
                for p in a.params.iter().flatten() {
                    let mut facts = vec![p.ty.name().to_owned()];
                    if p.required {
                        facts.push("required".to_owned());
                    }
                    if let Some(d) = &p.default {
                        facts.push(format!("default {d}"));
                    }
                    writeln!(
                        text,
                        "      {:<18} {:<28} {}",
                        p.name,
                        facts.join(", "),
                        p.description
                    )?;
                }
            }
        }
        if args.tool.is_none() {
            writeln!(
                text,
                "\nModel actions need no tool: generate, generate_structured, analyze_text, embed; py-orc's `validation` `extract_structured` is one too (see the README). Tool-less: echo {{message}}, evaluate_condition {{condition}}."
            )?;
        }
    }
    std::io::stdout().lock().write_all(&text)?;
    Ok(exit::OK)
}
