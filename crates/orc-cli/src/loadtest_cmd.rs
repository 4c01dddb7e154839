//! `orc loadtest SCENARIO.yaml`: load against `orc serve` (or an in-process runtime) as the
//! scenario file describes, reported as a table (or `--json`) on stdout, with a live progress
//! line on a terminal's stderr and an HTML report with `--report`. Exit 2 for a bad scenario
//! file, 1 when the test ran but crossed a threshold (`--max-error-rate`, `--max-p99`,
//! `--fail-on-errors`).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use orc_loadtest::{LoadTestOptions, Progress, Report, Target};
use orc_runtime::RuntimeOptions;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct LoadtestArgs {
    /// The scenario file (YAML): target, concurrent_users, ramp_up_time, test_duration or
    /// requests, think_time and weighted scenarios.
    #[arg(value_name = "SCENARIO.yaml")]
    scenario: PathBuf,
    /// The open model: start this many requests per second whatever the answers' speed, and
    /// count each one's response time from when it was due (coordinated omission corrected).
    /// `concurrent_users` is then the most requests in flight.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Replaces the file's `concurrent_users`.
    #[arg(long, value_name = "N")]
    users: Option<u32>,
    /// Replaces the file's `ramp_up_time` (`30s`, `5m`, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = orc_loadtest::parse_duration)]
    ramp_up: Option<Duration>,
    /// Replaces the file's `test_duration` (`30s`, `5m`, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = orc_loadtest::parse_duration)]
    duration: Option<Duration>,
    /// Replaces the file's `requests`.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report with latency and throughput charts to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Exit 1 when more than this fraction of the requests failed (`0.01` = 1 %).
    #[arg(long, value_name = "FRACTION")]
    max_error_rate: Option<f64>,
    /// Exit 1 when the 99th percentile response time is above this (`250ms`, `2s`).
    #[arg(long, value_name = "DURATION", value_parser = orc_loadtest::parse_duration)]
    max_p99: Option<Duration>,
    /// Exit 1 when any request failed.
    #[arg(long)]
    fail_on_errors: bool,
}

pub(crate) fn main(global: &Global, args: &LoadtestArgs) -> anyhow::Result<u8> {
    let mut options = LoadTestOptions::from_file(&args.scenario).map_err(|e| match e {
        orc_loadtest::Error::Scenario(message) => UserError(message),
        other => UserError(other.to_string()),
    })?;
    if let Some(rate) = args.rate {
        options.rate = Some(rate);
    }
    if let Some(users) = args.users {
        options.users = users;
    }
    if let Some(ramp_up) = args.ramp_up {
        options.ramp_up = ramp_up;
    }
    if let Some(duration) = args.duration {
        options.duration = Some(duration);
    }
    if let Some(requests) = args.requests {
        options.requests = Some(requests);
    }
    if let Some(rate) = args.max_error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(UserError(format!(
            "--max-error-rate: a fraction from 0 to 1, not {rate}"
        ))
        .into());
    }
    let tokio = match options.target {
        Target::InProcess => {
            let (config, _) = Config::load(global.config.as_deref())?;
            let tokio = orc_runtime::tokio_runtime(&config)?;
            let runtime =
                tokio.block_on(RuntimeOptions::new(config, global.state.as_deref()).build())?;
            options.runtime = Some(runtime);
            tokio
        }
        Target::Url(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    let show_progress = !global.quiet && std::io::stderr().is_terminal();
    let report = tokio.block_on(async {
        let test = options
            .build()
            .await
            .map_err(|e| UserError(e.to_string()))?;
        let cancel = CancellationToken::new();
        let signals = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
            let cancel = cancel.clone();
            async move {
                crate::run::interrupted().await;
                tracing::warn!("stopping: no new requests; those in flight finish");
                cancel.cancel();
            }
        }));
        let (tx, rx) = watch::channel(Progress::default());
        let line = show_progress
            .then(|| tokio_util::task::AbortOnDropHandle::new(tokio::spawn(progress_line(rx))));
        let report = test.run(cancel, Some(tx)).await;
        if let Some(line) = line {
            let _ = line.await;
        }
        drop(signals);
        Ok::<_, anyhow::Error>(report)
    })?;
    if let Some(path) = &args.report {
        let html = report.html()?;
        std::fs::write(path, html)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", path.display()))?;
        if !global.quiet {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("HTML report written to {}", path.display());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(report.table().as_bytes())?;
    }
    out.flush()?;
    let crossed = thresholds(&report, args);
    for why in &crossed {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("threshold crossed: {why}");
        }
    }
    Ok(if crossed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// The thresholds the report crosses, each said in a sentence.
fn thresholds(report: &Report, args: &LoadtestArgs) -> Vec<String> {
    let total = &report.total;
    let mut crossed = Vec::new();
    if args.fail_on_errors && total.errors > 0 {
        crossed.push(format!(
            "{} requests failed (--fail-on-errors)",
            total.errors
        ));
    }
    if let Some(max) = args.max_error_rate
        && total.error_rate > max
    {
        crossed.push(format!(
            "error rate {:.4} is above --max-error-rate {max}",
            total.error_rate
        ));
    }
    if let Some(max) = args.max_p99 {
        let max_ms = max.as_secs_f64() * 1000.0;
        if total.latency_ms.p99 > max_ms {
            crossed.push(format!(
                "p99 {:.2} ms is above --max-p99 {max_ms} ms",
                total.latency_ms.p99
            ));
        }
    }
    if total.requests == 0 {
        crossed.push("no request was sent".to_owned());
    }
    crossed
}

/// Rewrites one stderr line with the test's progress until the test ends, then clears it.
async fn progress_line(mut rx: watch::Receiver<Progress>) {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut last = (Duration::ZERO, 0u64);
    while rx.changed().await.is_ok() {
        let p = *rx.borrow_and_update();
        let span = p.elapsed.saturating_sub(last.0).as_secs_f64();
        let rate = if span > 0.0 {
            p.requests.saturating_sub(last.1) as f64 / span
        } else {
            0.0
        };
        last = (p.elapsed, p.requests);
        let of = p
            .planned
            .map(|d| format!("/{:.0}s", d.as_secs_f64()))
            .unwrap_or_default();
        bar.set_message(format!(
            "{:.0}s{of}  users {}  requests {}  errors {}  {rate:.0} req/s",
            p.elapsed.as_secs_f64(),
            p.active_users,
            p.requests,
            p.errors
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
