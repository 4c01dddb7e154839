//! `orc report daily [--date YYYY-MM-DD] [--json]`: the daily report of the state store (runs,
//! requests, peak throughput, response times, cache hit rate, errors by kind, spend, the most
//! expensive pipelines and models) as a table, or as the JSON document `GET /v1/reports/daily`
//! answers.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Args, Subcommand};
use orc_runtime::RuntimeOptions;
use orc_runtime::report::{DailyReport, parse_date, today};

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// One UTC day: runs, requests, peak throughput, response times, cache hit rate, errors
    /// by kind, cost per request and per run, the most expensive pipelines and models.
    Daily {
        /// The day, YYYY-MM-DD (UTC; default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Print the JSON document `GET /v1/reports/daily` answers instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn main(global: &Global, args: &ReportArgs) -> anyhow::Result<u8> {
    let ReportCommand::Daily { date, json } = &args.command;
    let date = match date {
        Some(text) => parse_date(text).map_err(|e| UserError(format!("--date: {e}")))?,
        None => today(),
    };
    let (config, _) = Config::load(global.config.as_deref())?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = tokio.block_on(async {
        let runtime = RuntimeOptions::new(config, global.state.as_deref())
            .build()
            .await?;
        runtime.daily_report(date).await
    })?;
    let mut text = if *json {
        serde_json::to_string_pretty(&report)?
    } else {
        table(&report)
    };
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}

/// USD with the precision its size needs: `$12.35`, `$0.0420`, `$0.000123`, `$0`.
fn usd(x: f64) -> String {
    if x == 0.0 {
        return "$0".to_owned();
    }
    if x.abs() >= 1.0 {
        return format!("${x:.2}");
    }
    if x.abs() >= 0.01 {
        return format!("${x:.4}");
    }
    // Three significant digits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = (2.0 - x.abs().log10().floor()).clamp(0.0, 10.0) as usize;
    format!("${x:.decimals$}")
}

/// A response time: `0.42 ms`, `12.3 ms`, `1.25 s`; `-` when there is none.
fn ms(x: Option<f64>) -> String {
    match x {
        None => "-".to_owned(),
        Some(x) if x < 1.0 => format!("{x:.2} ms"),
        Some(x) if x < 1000.0 => format!("{x:.1} ms"),
        Some(x) => format!("{:.2} s", x / 1000.0),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The report as a person reads it.
fn table(r: &DailyReport) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<17}{value}");
    };
    let statuses: Vec<String> = r
        .runs_by_status
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let runs = if statuses.is_empty() {
        r.runs.to_string()
    } else {
        format!("{} ({})", r.runs, statuses.join(", "))
    };
    line("Runs", runs);
    line("Requests", r.requests.to_string());
    line(
        "Peak throughput",
        match &r.peak_throughput {
            Some(p) => format!(
                "{:.2} requests/s ({} in the minute from {} UTC)",
                p.requests_per_second,
                plural(p.requests, "request", "requests"),
                chrono::DateTime::from_timestamp(i64::try_from(p.minute).unwrap_or(0), 0)
                    .map_or_else(String::new, |t| t.format("%H:%M").to_string())
            ),
            None => "-".to_owned(),
        },
    );
    let t = &r.response_time_ms;
    line(
        "Response time",
        format!(
            "average {}, p95 {} (p50 {}, p99 {})",
            ms(t.mean),
            ms(t.p95),
            ms(t.p50),
            ms(t.p99)
        ),
    );
    for (name, cache) in &r.caches {
        let mut label = name.clone();
        if let Some(first) = label.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        line(
            &format!("{label} cache"),
            format!(
                "{} hit rate ({}, {})",
                percent(cache.hit_rate),
                plural(cache.hits, "hit", "hits"),
                plural(cache.misses, "miss", "misses")
            ),
        );
    }
    line(
        "Errors",
        format!("{} ({} of requests)", r.errors, percent(r.error_rate)),
    );
    let c = &r.cost_usd;
    line(
        "Cost",
        format!(
            "{} total, {} per request, {} per run",
            usd(c.total),
            c.per_request.map_or_else(|| "-".to_owned(), usd),
            c.per_run.map_or_else(|| "-".to_owned(), usd)
        ),
    );
    line(
        "Tokens",
        format!("{} in, {} out", r.tokens.input, r.tokens.output),
    );
    let mut text = format!("Daily report for {} (UTC)\n\n{out}", r.date);
    if !r.errors_by_kind.is_empty() {
        text.push_str("\nErrors by kind\n");
        let width = r
            .errors_by_kind
            .iter()
            .map(|k| k.kind.len())
            .max()
            .unwrap_or(0);
        for k in &r.errors_by_kind {
            let _ = writeln!(text, "  {:<width$}  {:>6}", k.kind, k.count);
        }
    }
    if !r.top_pipelines.is_empty() {
        text.push_str("\nMost expensive pipelines\n");
        let rows = r
            .top_pipelines
            .iter()
            .map(|p| {
                vec![
                    p.pipeline_id.clone(),
                    p.runs.to_string(),
                    p.requests.to_string(),
                    usd(p.cost_usd),
                ]
            })
            .collect();
        columns(&mut text, &["PIPELINE", "RUNS", "REQUESTS", "COST"], rows);
    }
    if !r.top_models.is_empty() {
        text.push_str("\nMost expensive models\n");
        let rows = r
            .top_models
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    m.provider.clone(),
                    m.calls.to_string(),
                    m.errors.to_string(),
                    ms(m.latency_p95_ms),
                    usd(m.cost_usd),
                ]
            })
            .collect();
        columns(
            &mut text,
            &["MODEL", "PROVIDER", "CALLS", "ERRORS", "P95", "COST"],
            rows,
        );
    }
    text.truncate(text.trim_end().len());
    text
}

/// Aligned columns: the first left-aligned, the others right-aligned.
fn columns(out: &mut String, head: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&head).chain(&rows) {
        let mut line = String::from(" ");
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(line, " {cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_keep_the_digits_that_matter() {
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(0.042), "$0.0420");
        assert_eq!(usd(0.000_123_4), "$0.000123");
        assert_eq!(usd(0.009_87), "$0.00987");
        assert_eq!(ms(Some(0.42)), "0.42 ms");
        assert_eq!(ms(Some(1250.0)), "1.25 s");
        assert_eq!(ms(None), "-");
    }
}
