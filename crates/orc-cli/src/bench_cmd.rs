//! `orc bench`: the standard workloads of `orc-bench`, each run several times; a table (or
//! JSON) of medians and spreads on stdout, progress on stderr; `--save NAME` keeps the report
//! as a baseline in the data directory, `--compare NAME` prints the ratio per workload and
//! exits 1 when one is slower than the baseline by more than `--threshold`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use orc_bench::{Options, Suite, baseline};

use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Timed runs per workload, after one untimed warm-up [default: 5; 3 with --quick].
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Small sizes: a smoke run of every workload in seconds (not comparable with a full run).
    #[arg(long)]
    quick: bool,
    /// Run only the workloads whose name contains one of these (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    filter: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the report as baseline NAME in the data directory (`<data dir>/bench/NAME.json`).
    #[arg(long, value_name = "NAME")]
    save: Option<String>,
    /// Compare with baseline NAME: the ratio per workload; exit code 1 when one regressed.
    #[arg(long, value_name = "NAME")]
    compare: Option<String>,
    /// How much slower than the baseline a workload's median may be, in percent.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "10",
        requires = "compare",
        allow_hyphen_values = true
    )]
    threshold: String,
    /// Most seconds one workload may take, set-up and runs included.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    time_limit: u64,
    /// List the workloads and what one run of each does, and exit.
    #[arg(long)]
    list: bool,
    /// Write the generated pipelines (chain, fan-out, diamond at full size) into DIR, and exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["save", "compare", "list"])]
    write_pipelines: Option<PathBuf>,
}

/// A problem with what the user asked for: exit 2; anything else is a failed benchmark.
fn usage(e: orc_bench::Error) -> anyhow::Error {
    if e.is_usage() {
        UserError(e.to_string()).into()
    } else {
        e.into()
    }
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &BenchArgs) -> anyhow::Result<u8> {
    if let Some(dir) = &args.write_pipelines {
        return write_pipelines(dir);
    }
    let threshold = baseline::parse_threshold(&args.threshold).map_err(usage)?;
    if args.time_limit == 0 {
        return Err(UserError("--time-limit: must be at least 1 second".into()).into());
    }
    let suite = Suite::new(Options {
        orc: std::env::current_exe()?,
        runs: args.runs.unwrap_or(if args.quick { 3 } else { 5 }),
        quick: args.quick,
        filter: args.filter.clone(),
        time_limit: Duration::from_secs(args.time_limit),
    })
    .map_err(usage)?;
    let mut out = std::io::stdout().lock();
    if args.list {
        for w in suite.workloads() {
            writeln!(out, "{:<18} {}", w.name, w.what)?;
        }
        return Ok(exit::OK);
    }
    let data_dir = orc_runtime::dirs::data_dir();
    if let Some(name) = &args.save {
        baseline::path(&data_dir, name).map_err(usage)?;
    }
    // Read first: a missing baseline is found before minutes of measuring.
    let base = match &args.compare {
        Some(name) => Some((name, baseline::load(&data_dir, name).map_err(usage)?)),
        None => None,
    };
    let quiet = global.quiet;
    let report = suite
        .run(|m| {
            if !quiet {
                eprintln!(
                    "bench: {:<18} median {} ({} runs)",
                    m.name,
                    orc_bench::duration(m.seconds.median),
                    m.samples.len()
                );
            }
        })
        .map_err(usage)?;
    let comparison = match &base {
        Some((name, base)) => {
            Some(baseline::compare(name, base, &report, threshold).map_err(usage)?)
        }
        None => None,
    };
    if let Some(name) = &args.save {
        let path = baseline::save(&data_dir, name, &report).map_err(usage)?;
        if !quiet {
            eprintln!("bench: saved baseline `{name}` to {}", path.display());
        }
    }
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        if let (Some(c), Some(map)) = (&comparison, doc.as_object_mut()) {
            map.insert("comparison".into(), serde_json::to_value(c)?);
        }
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.table())?;
        if let Some(c) = &comparison {
            write!(out, "\n{}", c.table())?;
        }
    }
    out.flush()?;
    match comparison {
        Some(c) if c.regressed() => {
            if !quiet {
                eprintln!(
                    "bench: a workload is more than {:.1} % slower than baseline `{}`",
                    threshold * 100.0,
                    c.baseline
                );
            }
            Ok(exit::FAILED)
        }
        _ => Ok(exit::OK),
    }
}

/// `--write-pipelines DIR`: the generated pipelines the pipeline workloads run, as files.
fn write_pipelines(dir: &std::path::Path) -> anyhow::Result<u8> {
    let io = |e: std::io::Error| UserError(format!("--write-pipelines: {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut out = std::io::stdout().lock();
    for (name, text) in orc_bench::generate::standard() {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text).map_err(io)?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(exit::OK)
}
