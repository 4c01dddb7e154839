//! `orc cache stats` and `orc cache clear`: the model response cache and the compile cache.

use std::io::Write as _;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Global;
use crate::config::Config;

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// How many entries and bytes each cache holds.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry of the model response cache and the compile cache.
    Clear,
}

pub(crate) fn main(global: &Global, args: &CacheArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let model_cache = orc_runtime::models::model_cache(&config)?;
    let plans = crate::plans::plan_cache();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = std::io::stdout().lock();
    match args.command {
        CacheCommand::Stats { json } => {
            let model = match &model_cache {
                Some(cache) => {
                    let usage = runtime
                        .block_on(cache.usage())
                        .map_err(|e| anyhow::anyhow!("model cache ({}): {e}", cache.describe()))?;
                    json!({"backend": cache.describe(), "entries": usage.entries, "bytes": usage.bytes})
                }
                None => json!({"backend": "disabled", "entries": 0, "bytes": 0}),
            };
            let plan = match &plans {
                Some(cache) => {
                    let (entries, bytes) = crate::plans::usage(cache)?;
                    json!({"backend": format!("file {}", cache.dir().display()), "entries": entries, "bytes": bytes})
                }
                None => json!({"backend": "disabled", "entries": 0, "bytes": 0}),
            };
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &json!({"model_cache": model, "compile_cache": plan}),
                )?;
                writeln!(out)?;
            } else {
                for (name, c) in [("model responses", &model), ("compiled plans", &plan)] {
                    writeln!(
                        out,
                        "{name}: {} entries, {} bytes ({})",
                        c["entries"],
                        c["bytes"],
                        c["backend"].as_str().unwrap_or_default()
                    )?;
                }
            }
        }
        CacheCommand::Clear => {
            let mut cleared = Vec::new();
            if let Some(cache) = &model_cache {
                let n = runtime
                    .block_on(cache.clear())
                    .map_err(|e| anyhow::anyhow!("model cache ({}): {e}", cache.describe()))?;
                cleared.push(format!("{n} model responses"));
            }
            if let Some(cache) = &plans {
                let n = crate::plans::clear(cache)?;
                cleared.push(format!("{n} compiled plans"));
            }
            writeln!(out, "Removed {}.", cleared.join(" and "))?;
        }
    }
    Ok(crate::exit::OK)
}
