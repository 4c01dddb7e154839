//! `orc config show`: the effective configuration, and where each value came from.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::Global;
use crate::config::layers::{self, Origin};

/// `orc config …`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print every setting's effective value and its source (default, file:line, or variable).
    Show {
        /// Print JSON: `{key: {value, source}}`.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn main(global: &Global, args: &ConfigArgs) -> anyhow::Result<u8> {
    let ConfigCommand::Show { json } = args.command;
    let loaded = layers::load(global.config.as_deref(), &layers::environment())?;
    let file = loaded
        .path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for (key, mut value) in layers::leaves(&loaded.config) {
        let mut source = match loaded.origin(&key) {
            Origin::Default => "default".to_owned(),
            Origin::File(pos) => format!("{file}:{}", pos.line),
            Origin::Env(var) => format!("env {var}"),
        };
        // The store a command would open, not `null`: `--state` wins, then the config, then
        // SQLite in the data directory.
        if key == "state.url" {
            if global.state.as_deref().is_some_and(|u| !u.is_empty()) {
                source = "flag --state".to_owned();
            }
            value = Value::String(orc_runtime::state::url(
                global.state.as_deref(),
                &loaded.config,
            ));
        }
        rows.push((key, hide_secrets(value), source));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let doc: serde_json::Map<String, Value> = rows
            .into_iter()
            .map(|(k, v, s)| (k, json!({ "value": v, "source": s })))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        let config_line = match &loaded.path {
            Some(p) => format!("# config file: {}", p.display()),
            None => "# config file: none (built-in defaults)".to_owned(),
        };
        writeln!(out, "{config_line}")?;
        let width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
        for (key, value, source) in rows {
            writeln!(out, "{key:<width$} = {value}  # {source}")?;
        }
    }
    Ok(crate::exit::OK)
}

/// URLs may carry a password (`postgres://user:secret@host`): it never reaches the output.
fn hide_secrets(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains("://") => Value::String(orc_state::redact_url(&s)),
        other => other,
    }
}
