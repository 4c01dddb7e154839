//! `orc runs list | show RUN_ID | prune --older-than AGE`: the history in the state store.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use orc_state::{RunFilter, RunState};

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

use orc_runtime::state::{ABANDONED, row_json, shown_status};

/// Writes pretty JSON and a newline. Serialized first, so that a closed stdout is the I/O
/// error it is (exit 141, silently), not a serialization error.
fn write_json(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    Ok(())
}

/// `2026-12-07 03:36:27`, in UTC.
fn started(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `0.42s`, `12.3s`, `4m05s`, `2h07m`.
fn duration(from: SystemTime, to: SystemTime) -> String {
    let d = to.duration_since(from).unwrap_or_default();
    let secs = d.as_secs();
    match secs {
        0..10 => format!("{:.2}s", d.as_secs_f64()),
        10..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
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
    let store = runtime.block_on(orc_runtime::state::open(
        &orc_runtime::state::url(global.state.as_deref(), &config),
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
                after: None,
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
                write_json(&mut out, &list)?;
            } else {
                writeln!(
                    out,
                    "{:<44} {:<12} {:<20} {:>9} {:>6}  PIPELINE",
                    "RUN", "STATUS", "STARTED (UTC)", "DURATION", "STEPS"
                )?;
                let now = SystemTime::now();
                for r in &rows {
                    writeln!(
                        out,
                        "{:<44} {:<12} {:<20} {:>9} {:>6}  {}",
                        r.run_id,
                        shown_status(r),
                        started(r.started_at),
                        match (r.finished_at, shown_status(r)) {
                            (Some(end), _) => duration(r.started_at, end),
                            // Its process died without saying when: no honest duration.
                            (None, ABANDONED) => "-".to_owned(),
                            (None, _) => duration(r.started_at, now),
                        },
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
                // Pretty, as `orc run` prints it.
                Some(doc) => match serde_json::from_slice::<serde_json::Value>(&doc) {
                    Ok(doc) => write_json(&mut out, &doc)?,
                    Err(_) => {
                        out.write_all(&doc)?;
                        writeln!(out)?;
                    }
                },
                None => {
                    let steps: Vec<_> = runtime
                        .block_on(store.checkpoints(run_id))
                        .map_err(fail)?
                        .into_iter()
                        .map(|c| c.envelope)
                        .collect();
                    let mut doc = row_json(&row);
                    doc["steps"] = serde_json::Value::Array(steps);
                    write_json(&mut out, &doc)?;
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

    #[test]
    fn durations_read_at_a_glance() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        assert_eq!(duration(t0, at(0.421)), "0.42s");
        assert_eq!(duration(t0, at(12.34)), "12.3s");
        assert_eq!(duration(t0, at(245.0)), "4m05s");
        assert_eq!(duration(t0, at(7620.0)), "2h07m");
        assert_eq!(duration(at(5.0), t0), "0.00s");
        assert_eq!(started(at(1_796_614_587.0)), "2026-12-07 03:36:27");
    }
}
