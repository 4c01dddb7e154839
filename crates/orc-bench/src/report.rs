//! What a benchmark measured: every workload's timed runs and their summary, with the machine
//! and build they were measured on; rendered as a table or serialised as JSON (a saved
//! baseline is this JSON).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// One benchmark of the suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// orc's version.
    pub orc_version: String,
    /// The git commit orc was built from, when the build knew it.
    pub git_commit: Option<String>,
    /// Logical cores of the machine.
    pub cores: usize,
    /// When it was measured (RFC 3339, UTC).
    pub date: String,
    /// Whether it was a `--quick` smoke run (its figures are not comparable with a full run's).
    pub quick: bool,
    /// Timed runs per workload.
    pub runs: usize,
    /// The workloads, in the order they ran.
    pub workloads: Vec<Measured>,
}

/// One workload's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// The workload's name.
    pub name: String,
    /// What one timed run does.
    pub what: String,
    /// Operations per timed run.
    pub ops: u64,
    /// What an operation is (`step`, `call`, …).
    pub unit: String,
    /// Seconds per timed run: median, quartiles, extremes.
    pub seconds: Summary,
    /// The median run's time per operation, in microseconds.
    pub per_op_us: f64,
    /// Operations per second at the median run.
    pub per_second: f64,
    /// Every timed run's seconds, in the order they ran.
    pub samples: Vec<f64>,
}

impl Measured {
    pub(crate) fn new(w: &crate::Workload, samples: Vec<f64>) -> Option<Measured> {
        let seconds = Summary::of(&samples)?;
        let ops = w.ops.max(1) as f64;
        Some(Measured {
            name: w.name.to_owned(),
            what: w.what.clone(),
            ops: w.ops,
            unit: w.unit.to_owned(),
            per_op_us: seconds.median / ops * 1e6,
            per_second: if seconds.median > 0.0 {
                ops / seconds.median
            } else {
                0.0
            },
            seconds,
            samples,
        })
    }
}

/// A duration in seconds, in the unit that reads best (`2.500 s`, `23.10 ms`, `12.3 µs`).
pub fn duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.3} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

/// A rate, rounded to what matters.
fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

impl Report {
    /// The figures as a plain-text table (no colour), with the machine in a header line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "orc {}{} on {} cores, {}{}: median of {} run{} each (min–max, interquartile range)",
            self.orc_version,
            self.git_commit
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            self.cores,
            self.date,
            if self.quick { ", --quick" } else { "" },
            self.runs,
            if self.runs == 1 { "" } else { "s" },
        );
        let rows: Vec<[String; 5]> = self
            .workloads
            .iter()
            .map(|m| {
                let s = &m.seconds;
                [
                    m.name.clone(),
                    duration(s.median),
                    format!(
                        "{}–{} (IQR {})",
                        duration(s.min),
                        duration(s.max),
                        duration(s.q3 - s.q1)
                    ),
                    format!("{}/{}", duration(m.per_op_us / 1e6), m.unit),
                    format!("{} {}s/s", rate(m.per_second), m.unit),
                ]
            })
            .collect();
        let head = ["workload", "median", "spread", "per op", "throughput"];
        let width = |i: usize| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..5).map(width).collect();
        let line = |cells: [&str; 5]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i == 0 {
                    let _ = write!(l, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(l, "  {}{cell}", " ".repeat(pad));
                }
            }
            l
        };
        let _ = writeln!(out, "{}", line(head));
        for r in &rows {
            let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
        }
        let _ = writeln!(out);
        for m in &self.workloads {
            let _ = writeln!(out, "{:<w$}  {}", m.name, m.what, w = widths[0]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(duration(2.5), "2.500 s");
        assert_eq!(duration(0.0231), "23.10 ms");
        assert_eq!(duration(0.000_012_3), "12.3 µs");
    }
}
