//! Baselines: a report saved by name under `<data dir>/bench/NAME.json`, and the comparison of
//! a new report with one (the ratio of medians per workload, and a verdict against a
//! threshold).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::{Report, duration};

/// The file baseline `name` lives in, under the data directory `data_dir`. Names are letters,
/// digits, `.`, `_` and `-`, not starting with a dot, so a name never leaves the folder.
pub fn path(data_dir: &Path, name: &str) -> Result<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::Invalid(format!(
            "baseline name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
        )));
    }
    Ok(data_dir.join("bench").join(format!("{name}.json")))
}

/// Saves `report` as baseline `name` (replacing an older one atomically); returns its path.
pub fn save(data_dir: &Path, name: &str, report: &Report) -> Result<PathBuf> {
    let path = path(data_dir, name)?;
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(data_dir);
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer_pretty(&mut file, report)?;
        file.write_all(b"\n")?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| Error::Baseline(format!("cannot save {}: {e}", path.display())))?;
    Ok(path)
}

/// Reads baseline `name`.
pub fn load(data_dir: &Path, name: &str) -> Result<Report> {
    let path = path(data_dir, name)?;
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Baseline(format!(
                "no baseline `{name}` ({} does not exist)\nhint: save one with `orc bench --save {name}`",
                path.display()
            )));
        }
        Err(e) => return Err(Error::Baseline(format!("{}: {e}", path.display()))),
    };
    serde_json::from_slice(&text)
        .map_err(|e| Error::Baseline(format!("{}: not a baseline: {e}", path.display())))
}

/// `--threshold`: a percentage, `10` or `10%`, greater than 0.
pub fn parse_threshold(text: &str) -> Result<f64> {
    let number = text.trim().trim_end_matches('%').trim_end();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && p > 0.0 && p <= 10_000.0 => Ok(p / 100.0),
        _ => Err(Error::Invalid(format!(
            "--threshold: `{text}` is not a percentage greater than 0 (e.g. 10 or 10%)"
        ))),
    }
}

/// How a workload compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Slower by more than the threshold.
    Regressed,
    /// Within the threshold either way.
    Ok,
    /// Faster by more than the threshold.
    Faster,
    /// The baseline has no figure for it.
    New,
}

/// One workload, now against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// The workload.
    pub name: String,
    /// The baseline's median seconds, if it has the workload.
    pub baseline: Option<f64>,
    /// The median seconds now.
    pub now: f64,
    /// now / baseline.
    pub ratio: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A report compared with a baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The baseline's name.
    pub baseline: String,
    /// When and on what the baseline was measured.
    pub baseline_date: String,
    /// Its commit, when known.
    pub baseline_commit: Option<String>,
    /// The threshold, a fraction (0.1 for 10 %).
    pub threshold: f64,
    /// Every workload of the new report.
    pub workloads: Vec<Compared>,
}

/// Compares `now` with `baseline` (named `name`): a workload regresses when its median is
/// more than `threshold` (a fraction) slower. Reports of different modes (`--quick` or not)
/// measure different sizes and are refused.
pub fn compare(name: &str, baseline: &Report, now: &Report, threshold: f64) -> Result<Comparison> {
    if baseline.quick != now.quick {
        let mode = |quick| if quick { "--quick" } else { "full" };
        return Err(Error::Baseline(format!(
            "baseline `{name}` is a {} run and this is a {} run: their workloads differ in size\nhint: compare runs of the same mode",
            mode(baseline.quick),
            mode(now.quick)
        )));
    }
    let workloads = now
        .workloads
        .iter()
        .map(|m| {
            let base = baseline
                .workloads
                .iter()
                .find(|b| b.name == m.name && b.ops == m.ops)
                .map(|b| b.seconds.median);
            let now = m.seconds.median;
            let ratio = base.filter(|b| *b > 0.0).map(|b| now / b);
            let verdict = match ratio {
                None => Verdict::New,
                Some(r) if r > 1.0 + threshold => Verdict::Regressed,
                Some(r) if r < 1.0 / (1.0 + threshold) => Verdict::Faster,
                Some(_) => Verdict::Ok,
            };
            Compared {
                name: m.name.clone(),
                baseline: base,
                now,
                ratio,
                verdict,
            }
        })
        .collect();
    Ok(Comparison {
        baseline: name.to_owned(),
        baseline_date: baseline.date.clone(),
        baseline_commit: baseline.git_commit.clone(),
        threshold,
        workloads,
    })
}

impl Comparison {
    /// Whether a workload regressed beyond the threshold.
    pub fn regressed(&self) -> bool {
        self.workloads
            .iter()
            .any(|w| w.verdict == Verdict::Regressed)
    }

    /// The comparison as a plain-text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "compared with baseline `{}` ({}{}), threshold {:.1} %",
            self.baseline,
            self.baseline_date,
            self.baseline_commit
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default(),
            self.threshold * 100.0
        );
        let name_w = self
            .workloads
            .iter()
            .map(|w| w.name.len())
            .chain(["workload".len()])
            .max()
            .unwrap_or(8);
        let _ = writeln!(
            out,
            "{:<name_w$}  {:>12}  {:>12}  {:>7}  verdict",
            "workload", "baseline", "now", "ratio"
        );
        for w in &self.workloads {
            let verdict = match w.verdict {
                Verdict::Regressed => "REGRESSED",
                Verdict::Ok => "ok",
                Verdict::Faster => "faster",
                Verdict::New => "new (not in the baseline)",
            };
            let _ = writeln!(
                out,
                "{:<name_w$}  {:>12}  {:>12}  {:>7}  {verdict}",
                w.name,
                w.baseline.map(duration).unwrap_or_else(|| "-".into()),
                duration(w.now),
                w.ratio
                    .map(|r| format!("{r:.2}×"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_positive_percentages() {
        assert_eq!(parse_threshold("10").ok(), Some(0.1));
        assert_eq!(parse_threshold("25%").ok(), Some(0.25));
        for bad in ["0", "-5", "ten", "", "nan", "inf"] {
            let e = parse_threshold(bad).err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.contains("--threshold")), "{bad}");
        }
    }

    #[test]
    fn names_stay_in_the_folder() {
        assert!(path(Path::new("/d"), "main-2026.12").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(path(Path::new("/d"), bad).is_err(), "{bad}");
        }
    }
}
