//! `orc models list`: the models the config file offers pipelines; `orc models stats`: what
//! their calls measured.

use std::io::Write;

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
    /// What the state store measured of each model's calls: count, success rate, latency,
    /// tokens and cost (the router starts from these).
    Stats {
        /// Only calls newer than this (`30m`, `24h`, `7d`).
        #[arg(long, default_value = "7d", value_name = "AGE")]
        since: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn main(global: &Global, args: &ModelsArgs) -> anyhow::Result<u8> {
    let (config, path) = Config::load(global.config.as_deref())?;
    match &args.command {
        ModelsCommand::List { json } => list(&config, path.as_deref(), *json),
        ModelsCommand::Stats { since, json } => stats(global, &config, since, *json),
    }
}

fn stats(global: &Global, config: &Config, since: &str, json: bool) -> anyhow::Result<u8> {
    let age = crate::runs_cmd::parse_age("--since", since)?;
    let runtime = orc_runtime::tokio_runtime(config)?;
    let summaries = runtime.block_on(async {
        let store = orc_runtime::state::open(
            &orc_runtime::state::url(global.state.as_deref(), config),
            config,
        )
        .await?;
        orc_runtime::state::model_summaries(&store, config, age).await
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &summaries)?;
        writeln!(out)?;
        return Ok(crate::exit::OK);
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.model.clone(),
                s.calls.to_string(),
                format!("{:.1}%", s.success_rate * 100.0),
                format!("{:.1}", s.latency_p50_ms),
                format!("{:.1}", s.latency_p95_ms),
                s.input_tokens.to_string(),
                s.output_tokens.to_string(),
                format!("{:.6}", s.cost_usd),
            ]
        })
        .collect();
    print_table(
        &mut out,
        &[
            "MODEL",
            "CALLS",
            "SUCCESS",
            "P50 MS",
            "P95 MS",
            "TOKENS IN",
            "TOKENS OUT",
            "USD",
        ],
        &rows,
    )?;
    Ok(crate::exit::OK)
}

fn list(config: &Config, path: Option<&std::path::Path>, json: bool) -> anyhow::Result<u8> {
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
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let price = match &r["cost"] {
                serde_json::Value::Null if r["local"] == true => "local".to_owned(),
                serde_json::Value::Null => "-".to_owned(),
                c => format!("{}/{}", c["input_per_1k"], c["output_per_1k"]),
            };
            vec![
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
    print_table(
        &mut out,
        &[
            "NAME",
            "PROVIDER",
            "MODEL",
            "BASE URL",
            "API KEY",
            "USD/1K IN/OUT",
            "CONTEXT",
        ],
        &table,
    )?;
    Ok(crate::exit::OK)
}

/// Left-aligned columns as wide as their widest cell, two spaces apart.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}
