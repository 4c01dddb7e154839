//! `orc runs list | show RUN_ID | prune --older-than AGE`: the history in the state store.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use orc_state::{RunFilter, RunRow, RunState};
use serde_json::json;

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// Only runs in this state: running, abandoned, completed, failed or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this pipeline id.
        #[arg(long)]
        pipeline: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A run's result document (or, for a run that never finished, what it has done).
    Show {
        /// The run's id.
        run_id: String,
    },
    /// Remove runs older than AGE (`30d`, `12h`, `90m`, `45s`) and their checkpoints.
    Prune {
        /// The age: a number and a unit (s, m, h, d, w).
        #[arg(long, value_name = "AGE")]
        older_than: String,
    },
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The status `orc runs` shows: a run recorded as running whose lease nobody holds any more is
/// `abandoned`: its process died (or lost the store) without recording how the run ended, and
/// `orc resume` continues it.
fn shown_status(r: &RunRow) -> &'static str {
    if r.status == RunState::Running && !r.held {
        ABANDONED
    } else {
        r.status.as_str()
    }
}

const ABANDONED: &str = "abandoned";

fn row_json(r: &RunRow) -> serde_json::Value {
    json!({
        "run_id": r.run_id,
        "pipeline_id": r.pipeline_id,
        "pipeline_path": r.pipeline_path,
        "status": shown_status(r),
        "started_at": secs(r.started_at),
        "finished_at": r.finished_at.map(secs),
        "steps_done": r.steps_done,
    })
}

/// Parses `30d`, `12h`, `90m`, `45s`, `2w`.
pub(crate) fn parse_age(flag: &str, text: &str) -> Result<Duration, UserError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        UserError(format!(
            "{flag} `{text}`: expected a number and a unit, like 30d"
        ))
    })?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(UserError(format!(
                "{flag} `{text}`: unknown unit `{unit}`; use s, m, h, d or w"
            )));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(unit_secs)))
}

pub(crate) fn main(global: &Global, args: &RunsArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(crate::state::open(
        &crate::state::url(global.state.as_deref(), &config),
        &config,
    ))?;
    let fail = |e: orc_state::Error| UserError(format!("state store: {e}"));
    let mut out = std::io::stdout().lock();
    match &args.command {
        RunsCommand::List {
            status,
            pipeline,
            limit,
            json,
        } => {
            let shown = status.as_deref();
            let status = match shown {
                Some(ABANDONED) => Some(RunState::Running),
                shown => shown.map(str::parse::<RunState>).transpose().map_err(|e| {
                    UserError(format!(
                        "--status: {e}; or `{ABANDONED}` (running, its lease lapsed)"
                    ))
                })?,
            };
            // Running and abandoned runs are both stored as running: fetch them all, then keep
            // the ones asked for.
            let split = status == Some(RunState::Running);
            let filter = RunFilter {
                status,
                pipeline_id: pipeline.clone(),
                limit: if split { 0 } else { *limit },
            };
            let mut rows = runtime.block_on(store.list_runs(&filter)).map_err(fail)?;
            if let (true, Some(shown)) = (split, shown) {
                rows.retain(|r| shown_status(r) == shown);
                if *limit != 0 {
                    rows.truncate(*limit as usize);
                }
            }
            if *json {
                let list: Vec<_> = rows.iter().map(row_json).collect();
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<44} {:<12} {:>6}  PIPELINE",
                    "RUN", "STATUS", "STEPS"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:<44} {:<12} {:>6}  {}",
                        r.run_id,
                        shown_status(r),
                        r.steps_done,
                        r.pipeline_id
                    )?;
                }
            }
        }
        RunsCommand::Show { run_id } => {
            let row = runtime
                .block_on(store.run(run_id))
                .map_err(fail)?
                .ok_or_else(|| UserError(format!("no run `{run_id}` in {}", store.describe())))?;
            match runtime
                .block_on(store.result_document(run_id))
                .map_err(fail)?
            {
                Some(doc) => {
                    out.write_all(&doc)?;
                    writeln!(out)?;
                }
                None => {
                    let steps: Vec<_> = runtime
                        .block_on(store.checkpoints(run_id))
                        .map_err(fail)?
                        .into_iter()
                        .map(|c| c.envelope)
                        .collect();
                    let mut doc = row_json(&row);
                    doc["steps"] = serde_json::Value::Array(steps);
                    serde_json::to_writer_pretty(&mut out, &doc)?;
                    writeln!(out)?;
                }
            }
        }
        RunsCommand::Prune { older_than } => {
            let age = parse_age("--older-than", older_than)?;
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let n = runtime.block_on(store.prune(cutoff)).map_err(fail)?;
            writeln!(out, "Removed {n} run(s) older than {older_than}.")?;
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(
            parse_age("--older-than", "30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_age("--older-than", "90m").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_age("--older-than", "30").is_err());
        assert!(parse_age("--older-than", "d").is_err());
        assert!(parse_age("--older-than", "3y").is_err());
    }
}
