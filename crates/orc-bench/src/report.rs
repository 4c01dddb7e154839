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
    /// What else the workload measured beside its time (a ratio to a baseline, percentiles,
    /// memory), each the median over the timed runs, with the target it is held to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<Figure>,
}

/// A figure a workload measured beside its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is (`through orc / direct`, `p99`, `idle RSS`).
    pub name: String,
    /// Its value (the median over the timed runs), in `unit`.
    pub value: f64,
    /// Its unit (`%`, `ms`, `MiB`, `requests/s`).
    pub unit: String,
    /// The bound it should keep, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Bound>,
}

/// A figure's target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
}

impl Figure {
    /// A figure with no target.
    pub(crate) fn new(name: &str, value: f64, unit: &str) -> Figure {
        Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            target: None,
        }
    }

    /// The same figure held to `bound`.
    #[must_use]
    pub(crate) fn target(mut self, bound: Bound) -> Figure {
        self.target = Some(bound);
        self
    }

    /// Whether the figure keeps its target (`None` without one).
    pub fn met(&self) -> Option<bool> {
        self.target.map(|b| match b {
            Bound::AtLeast(min) => self.value >= min,
            Bound::AtMost(max) => self.value <= max,
        })
    }

    /// `through orc / direct 61.2% (target ≥ 60%: met)`; without the verdict when `verdict` is
    /// false (a `--quick` run, whose sizes the targets are not set for).
    pub fn line(&self, verdict: bool) -> String {
        let number = |v: f64| match v.abs() {
            _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            a if a >= 100.0 => format!("{v:.0}"),
            a if a >= 10.0 => format!("{v:.1}"),
            _ => format!("{v:.2}"),
        };
        let space = if matches!(self.unit.as_str(), "%" | "") {
            ""
        } else {
            " "
        };
        let mut line = format!("{} {}{space}{}", self.name, number(self.value), self.unit);
        if let (Some(bound), Some(met), true) = (self.target, self.met(), verdict) {
            let (sign, v) = match bound {
                Bound::AtLeast(v) => ("≥", v),
                Bound::AtMost(v) => ("≤", v),
            };
            let verdict = if met { "met" } else { "NOT met" };
            line.push_str(&format!(
                " (target {sign} {}{space}{}: {verdict})",
                number(v),
                self.unit
            ));
        }
        line
    }
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
            figures: Vec::new(),
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
            for f in &m.figures {
                let _ = writeln!(out, "{:<w$}    {}", "", f.line(!self.quick), w = widths[0]);
            }
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

    #[test]
    fn figures_say_whether_they_meet_their_target() {
        let ratio = Figure::new("through orc / direct", 61.24, "%").target(Bound::AtLeast(60.0));
        assert_eq!(ratio.met(), Some(true));
        assert_eq!(
            ratio.line(true),
            "through orc / direct 61.2% (target ≥ 60%: met)"
        );
        let p99 = Figure::new("p99", 57.31, "ms").target(Bound::AtMost(50.0));
        assert_eq!(p99.met(), Some(false));
        assert_eq!(p99.line(true), "p99 57.3 ms (target ≤ 50 ms: NOT met)");
        let errors = Figure::new("errors", 0.0, "").target(Bound::AtMost(0.0));
        assert_eq!(errors.line(true), "errors 0 (target ≤ 0: met)");
        let plain = Figure::new("direct", 44_210.0, "requests/s");
        assert_eq!(
            (plain.met(), plain.line(true)),
            (None, "direct 44210 requests/s".to_owned())
        );
        assert_eq!(ratio.line(false), "through orc / direct 61.2%");
    }
}
