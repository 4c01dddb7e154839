//! What a trial sees after a kill, once nothing of the killed `orc` runs any more: the lines in
//! `effects.txt`, the steps the store saved, and the requests the provider received.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::Backend;
use super::pipeline;
use crate::support::Sandbox;

/// The processes whose working directory is `dir` (the `orc` of a trial, the supervisors of
/// its steps, and their commands), this test's process left out.
fn processes_in(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

/// Waits until no process works in the sandbox any more: a step's command the killed `orc`
/// started is killed by its supervisor, which sees `orc` die; only then is `effects.txt` final.
pub(super) fn wait_until_quiet(sb: &Sandbox) {
    let dir: PathBuf = sb.dir.path().canonicalize().unwrap();
    let started = Instant::now();
    loop {
        let left = processes_in(&dir);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "processes {left:?} outlived the killed orc by 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many times each step's line is in `effects.txt`.
pub(super) fn effects(sb: &Sandbox) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for line in sb.lines("effects.txt") {
        *seen
            .entry(pipeline::effect_of(&line).to_owned())
            .or_insert(0) += 1;
    }
    seen
}

/// `orc runs show RUN_ID`: the run's record, or `None` when the run was never recorded.
pub(super) fn shown(backend: &Backend, sb: &Sandbox, run_id: &str) -> Option<Value> {
    let out = backend
        .orc(sb)
        .args(["runs", "show", run_id])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains(&format!("no run `{run_id}`")) {
        return None;
    }
    assert!(out.status.success(), "orc runs show {run_id}: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "orc runs show {run_id} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    }))
}

/// The steps `orc runs show` names as completed, each with how many records it has: an
/// unfinished run lists its checkpoints, a finished one its result document's steps.
pub(super) fn saved_steps(shown: &Value) -> BTreeMap<String, usize> {
    let mut saved = BTreeMap::new();
    let mut count = |id: &str, step: &Value| {
        if step["status"] == "completed" {
            *saved.entry(id.to_owned()).or_insert(0) += 1;
        }
    };
    match &shown["steps"] {
        Value::Array(records) => {
            for r in records {
                let id = r["id"].as_str().unwrap_or_else(|| {
                    panic!("a checkpoint `orc runs show` lists names no step: {r}")
                });
                count(id, r);
            }
        }
        Value::Object(steps) => {
            for (id, s) in steps {
                count(id, s);
            }
        }
        other => panic!("`orc runs show` lists no steps: {other}"),
    }
    saved
}

/// What one kill left: the steps that did their work but were not saved.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Steps whose line is in `effects.txt` but that have no checkpoint: a resume runs them
    /// again.
    pub(super) effects: BTreeSet<String>,
    /// Model steps whose request reached the provider but that have no checkpoint: a resume
    /// asks again unless the answer reached the response cache before the kill.
    pub(super) requests: BTreeSet<String>,
}

impl InFlight {
    /// Compares the side effects and requests seen after a kill with the saved steps.
    pub(super) fn after_kill(
        saved: &BTreeMap<String, usize>,
        effects: &BTreeMap<String, usize>,
        requests: &[(String, u64)],
    ) -> InFlight {
        InFlight {
            effects: effects
                .keys()
                .filter(|s| !saved.contains_key(*s))
                .cloned()
                .collect(),
            requests: requests
                .iter()
                .filter(|(s, n)| *n > 0 && !saved.contains_key(s))
                .map(|(s, _)| s.clone())
                .collect(),
        }
    }
}

/// Every step an unfinished run's history names, with the steps of `clean` (the uninterrupted
/// run's result document) it must come from.
pub(super) fn check_history_names_known_steps(saved: &BTreeMap<String, usize>, clean: &Value) {
    for (id, times) in saved {
        assert!(
            clean["steps"].get(id).is_some(),
            "the history names a step the pipeline has not: {id}"
        );
        assert_eq!(*times, 1, "step {id} is saved {times} times in the history");
    }
}
