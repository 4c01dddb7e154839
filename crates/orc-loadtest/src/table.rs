//! The report as the terminal shows it: one line per scenario and the total, the errors by
//! kind, and the generator's overhead. Plain text, no colour.

use std::fmt::Write as _;

use crate::report::{LoadModel, Report, Stats};

/// The header line of the model: `closed model, 100 users (ramp-up 30 s)`.
pub(crate) fn model(report: &Report) -> String {
    match &report.model {
        LoadModel::Closed {
            users,
            ramp_up_seconds,
        } => format!("closed model, {users} users (ramp-up {ramp_up_seconds} s)"),
        LoadModel::Open {
            rate,
            max_in_flight,
            ramp_up_seconds,
        } => format!(
            "open model, {rate} requests/s (ramp-up {ramp_up_seconds} s, at most {max_in_flight} in flight), latency from each request's due time"
        ),
    }
}

fn row(out: &mut String, name: &str, weight: &str, s: &Stats) {
    let l = &s.latency_ms;
    let _ = writeln!(
        out,
        "{name:<20} {weight:>6} {:>9} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        s.requests, s.errors, s.requests_per_second, l.mean, l.p50, l.p95, l.p99, l.max
    );
}

impl Report {
    /// The report as a table for the terminal (no colour).
    pub fn table(&self) -> String {
        render(self)
    }
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "orc loadtest: {}, {}, {:.1} s{}",
        report.target,
        model(report),
        report.elapsed_seconds,
        report
            .stopped
            .as_deref()
            .map(|why| format!(" (stopped early: {why})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "scenario",
        "weight",
        "requests",
        "errors",
        "req/s",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms"
    );
    for s in &report.scenarios {
        let name: String = s.name.chars().take(20).collect();
        row(&mut out, &name, &s.weight.to_string(), &s.stats);
    }
    row(&mut out, "total", "", &report.total);
    let _ = writeln!(out);
    if report.total.errors > 0 {
        let _ = writeln!(
            out,
            "errors: {} of {} requests ({:.2} %)",
            report.total.errors,
            report.total.requests,
            report.total.error_rate * 100.0
        );
        for s in &report.scenarios {
            for (kind, n) in &s.stats.errors_by_kind {
                let _ = writeln!(out, "  {:<20} {kind:<24} {n:>9}", s.name);
                if let Some(first) = s.stats.first_errors.get(kind).filter(|d| !d.is_empty()) {
                    let _ = writeln!(out, "    first: {first}");
                }
            }
        }
    } else {
        let _ = writeln!(out, "errors: none");
    }
    let o = &report.overhead;
    let _ = writeln!(
        out,
        "generator overhead: {:.2} s CPU, {:.1} µs per request, {:.2} cores busy ({})",
        o.cpu_seconds, o.cpu_us_per_request, o.cores_busy, o.includes
    );
    let _ = writeln!(
        out,
        "response times are of successful requests; percentiles within 1 %"
    );
    out
}
