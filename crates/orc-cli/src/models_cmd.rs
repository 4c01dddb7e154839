//! `orc models list`: the models the config file offers pipelines.

use std::io::Write as _;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Global;
use crate::config::Config;

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List the configured models, and whether each one's API key variable is set.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn main(global: &Global, args: &ModelsArgs) -> anyhow::Result<u8> {
    let (config, path) = Config::load(global.config.as_deref())?;
    let ModelsCommand::List { json } = args.command;
    let rows: Vec<serde_json::Value> = config
        .models
        .iter()
        .map(|m| {
            let key = match &m.api_key_env {
                None => "none needed".to_owned(),
                Some(var) if std::env::var_os(var).is_some_and(|v| !v.is_empty()) => {
                    format!("{var} (set)")
                }
                Some(var) => format!("{var} (unset: not selectable)"),
            };
            json!({
                "name": m.name,
                "provider": m.provider.as_str(),
                "model": m.model,
                "base_url": m.base_url,
                "api_key": key,
                "cost": m.cost.map(|c| json!({"input_per_1k": c.input_per_1k, "output_per_1k": c.output_per_1k})),
                "context_window": m.context_window,
                "size": m.size,
                "expertise": m.expertise,
                "local": m.local,
                "max_concurrency": m.max_concurrency.map(std::num::NonZeroUsize::get),
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(crate::exit::OK);
    }
    if rows.is_empty() {
        let from = path.map_or_else(
            || "the built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        writeln!(
            out,
            "No models configured in {from}. Add a `models:` list to the config file (see the README)."
        )?;
        return Ok(crate::exit::OK);
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let price = match &r["cost"] {
                serde_json::Value::Null if r["local"] == true => "local".to_owned(),
                serde_json::Value::Null => "-".to_owned(),
                c => format!("{}/{}", c["input_per_1k"], c["output_per_1k"]),
            };
            [
                text(&r["name"]),
                text(&r["provider"]),
                text(&r["model"]),
                text(&r["base_url"]),
                text(&r["api_key"]),
                price,
                text(&r["context_window"]),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "PROVIDER",
        "MODEL",
        "BASE URL",
        "API KEY",
        "USD/1K IN/OUT",
        "CONTEXT",
    ];
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &table {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(crate::exit::OK)
}
