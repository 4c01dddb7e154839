//! The profiling report of one run (`orc run --profile FILE`): per step how long it waited for a
//! slot and how long it ran, the critical path and the slowest steps.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::write::write_json_atomically;

/// The `schema` of a [`Profile`]; a change that readers must know about bumps it.
pub const PROFILE_SCHEMA: &str = "orc-profile/1";

/// How a step used the step-result cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// The result came from the cache; the step did not run its tool.
    Hit,
    /// Not in the cache: the step ran and stored its result.
    Miss,
    /// An identical step running at the same time produced the result.
    Shared,
    /// Caching was off for the step.
    Off,
}

/// When one step of a run became ready, started and finished, in milliseconds since the run
/// started. The input of [`Profile::build`] and [`Trace::build`](crate::Trace::build).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// The step's id (a loop iteration's step carries its expanded id).
    pub id: String,
    /// Its tool, such as `llm`.
    pub tool: String,
    /// Its action within the tool, such as `generate`.
    pub action: String,
    /// The ids of the steps it waited for.
    pub dependencies: Vec<String>,
    /// When its dependencies were done and it joined the ready queue.
    pub ready_at_ms: f64,
    /// When it started running; `None` for a step that never ran (skipped, cancelled).
    pub started_at_ms: Option<f64>,
    /// When it finished; `None` for a step that never ran or never finished.
    pub finished_at_ms: Option<f64>,
    /// How it ended, as the run's result document says (`completed`, `failed`, `skipped`, …).
    pub status: String,
    /// Time spent waiting for model calls, where the step made any.
    pub model_ms: Option<f64>,
    /// How it used the step-result cache, where that applies.
    pub cache: Option<CacheUse>,
}

impl StepTiming {
    /// `(started, finished)` of a step that ran to the end, `None` otherwise.
    pub(crate) fn span(&self) -> Option<(f64, f64)> {
        match (self.started_at_ms, self.finished_at_ms) {
            (Some(start), Some(finish)) if finish >= start => Some((start, finish)),
            _ => None,
        }
    }

    /// How long it waited in the ready queue, `None` if it never started.
    pub(crate) fn queue_wait_ms(&self) -> Option<f64> {
        self.started_at_ms
            .map(|start| (start - self.ready_at_ms).max(0.0))
    }
}

/// The run a profile describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The pipeline's name.
    pub pipeline: String,
    /// The run's id.
    pub run_id: String,
    /// Wall time of the whole run.
    pub total_ms: f64,
    /// The process's peak resident memory, where known
    /// ([`process::peak_resident_memory_bytes`](crate::process::peak_resident_memory_bytes)).
    pub peak_memory_bytes: Option<u64>,
}

/// The profiling report of one run. Built by [`Profile::build`], written as JSON by
/// [`Profile::write`]. Times are milliseconds, rounded to the microsecond.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Always [`PROFILE_SCHEMA`].
    pub schema: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The run's id.
    pub run_id: String,
    /// Wall time of the whole run.
    pub total_ms: f64,
    /// The process's peak resident memory, where known.
    pub peak_memory_bytes: Option<u64>,
    /// Every step, in the order given to [`Profile::build`].
    pub steps: Vec<StepProfile>,
    /// The chain of steps that decided when the run finished.
    pub critical_path: CriticalPath,
    /// The steps that ran longest, longest first.
    pub slowest_steps: Vec<SlowStep>,
}

/// One step of a [`Profile`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepProfile {
    /// The step's id.
    pub id: String,
    /// Its tool.
    pub tool: String,
    /// Its action.
    pub action: String,
    /// How it ended.
    pub status: String,
    /// From ready to started; `None` if it never started.
    pub queue_wait_ms: Option<f64>,
    /// From started to finished; `None` if it never ran to the end.
    pub run_ms: Option<f64>,
    /// Time spent in model calls, where any.
    pub model_ms: Option<f64>,
    /// How it used the step-result cache, where that applies.
    pub cache: Option<CacheUse>,
}

/// The critical path of a run: start from the step that finished last and walk back, each time
/// to the dependency that finished last (the one whose end made the step ready), until a step
/// with no dependency that ran. Shortening any other step would not have ended the run sooner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CriticalPath {
    /// The sum of the run times of the path's steps: how long the run would take with unlimited
    /// concurrency. The gap to the run's `total_ms` is time spent waiting for a slot (see each
    /// step's `queue_wait_ms`) and orc's own overhead.
    pub total_ms: f64,
    /// The path's step ids, first to last.
    pub steps: Vec<String>,
}

/// One of a [`Profile`]'s slowest steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowStep {
    /// The step's id.
    pub id: String,
    /// From started to finished.
    pub run_ms: f64,
}

impl Profile {
    /// The profile of `run` from its steps' timings, listing the `slowest` steps that ran
    /// longest. Pure and deterministic: ties go to the step given first.
    pub fn build(run: RunInfo, steps: Vec<StepTiming>, slowest: usize) -> Profile {
        let critical_path = critical_path(&steps);
        let mut ran: Vec<(&StepTiming, f64)> = steps
            .iter()
            .filter_map(|step| step.span().map(|(start, finish)| (step, finish - start)))
            .collect();
        // A stable sort: equal run times keep the input order.
        ran.sort_by(|(_, a), (_, b)| b.total_cmp(a));
        let slowest_steps = ran
            .into_iter()
            .take(slowest)
            .map(|(step, run_ms)| SlowStep {
                id: step.id.clone(),
                run_ms: round_us(run_ms),
            })
            .collect();
        let steps = steps
            .into_iter()
            .map(|step| StepProfile {
                queue_wait_ms: step.queue_wait_ms().map(round_us),
                run_ms: step.span().map(|(start, finish)| round_us(finish - start)),
                model_ms: step.model_ms.map(round_us),
                cache: step.cache,
                id: step.id,
                tool: step.tool,
                action: step.action,
                status: step.status,
            })
            .collect();
        Profile {
            schema: PROFILE_SCHEMA.to_owned(),
            pipeline: run.pipeline,
            run_id: run.run_id,
            total_ms: round_us(run.total_ms),
            peak_memory_bytes: run.peak_memory_bytes,
            steps,
            critical_path,
            slowest_steps,
        }
    }

    /// Writes the profile as pretty JSON to `path`, atomically (a temporary file in the same
    /// directory, then a rename). Blocking: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    ///
    /// [`Error::Write`](crate::Error::Write), naming `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json_atomically(path, self)
    }
}

/// See [`CriticalPath`]. Dependencies that are unknown or never ran are ignored; a cycle in
/// malformed input ends the walk.
fn critical_path(steps: &[StepTiming]) -> CriticalPath {
    let by_id: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(index, step)| (step.id.as_str(), index))
        .collect();
    // The step that finished latest; on a tie the one given first.
    let finished_last = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates
            .filter_map(|index| steps[index].span().map(|(_, finish)| (index, finish)))
            .max_by(|(ia, a), (ib, b)| a.total_cmp(b).then(ib.cmp(ia)))
            .map(|(index, _)| index)
    };

    let Some(mut current) = finished_last(&mut (0..steps.len())) else {
        return CriticalPath::default();
    };
    let mut path = vec![current];
    let mut seen = HashSet::from([current]);
    while let Some(previous) = finished_last(
        &mut steps[current]
            .dependencies
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied()),
    ) {
        if !seen.insert(previous) {
            break;
        }
        path.push(previous);
        current = previous;
    }
    path.reverse();

    let total_ms = path
        .iter()
        .filter_map(|&index| steps[index].span())
        .map(|(start, finish)| finish - start)
        .sum();
    CriticalPath {
        total_ms: round_us(total_ms),
        steps: path
            .into_iter()
            .map(|index| steps[index].id.clone())
            .collect(),
    }
}

/// `ms` rounded to the microsecond, so that reports do not show float noise.
pub(crate) fn round_us(ms: f64) -> f64 {
    let rounded = (ms * 1000.0).round() / 1000.0;
    // No `-0` in reports.
    if rounded == 0.0 { 0.0 } else { rounded }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A step that ran from `start` to `finish`, ready at `ready`.
    pub(crate) fn step(id: &str, deps: &[&str], ready: f64, start: f64, finish: f64) -> StepTiming {
        StepTiming {
            id: id.to_owned(),
            tool: "llm".to_owned(),
            action: "generate".to_owned(),
            dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
            ready_at_ms: ready,
            started_at_ms: Some(start),
            finished_at_ms: Some(finish),
            status: "completed".to_owned(),
            model_ms: None,
            cache: None,
        }
    }

    fn run(total_ms: f64) -> RunInfo {
        RunInfo {
            pipeline: "demo".to_owned(),
            run_id: "run-1".to_owned(),
            total_ms,
            peak_memory_bytes: Some(1 << 20),
        }
    }

    /// a → {b, c} → d, where c is the slow branch and waited 5 ms for a slot.
    pub(crate) fn diamond() -> Vec<StepTiming> {
        vec![
            step("a", &[], 0.0, 0.0, 10.0),
            step("b", &["a"], 10.0, 10.0, 30.0),
            step("c", &["a"], 10.0, 15.0, 55.0),
            step("d", &["b", "c"], 55.0, 56.0, 60.0),
        ]
    }

    #[test]
    fn diamond_critical_path_follows_the_slow_branch() {
        let profile = Profile::build(run(61.0), diamond(), 2);
        assert_eq!(profile.critical_path.steps, ["a", "c", "d"]);
        // Run times 10 + 40 + 4; the 5 ms c waited and the 1 ms before d are not work.
        assert_eq!(profile.critical_path.total_ms, 54.0);
        let slowest: Vec<_> = profile
            .slowest_steps
            .iter()
            .map(|s| (s.id.as_str(), s.run_ms))
            .collect();
        assert_eq!(slowest, [("c", 40.0), ("b", 20.0)]);
        let c = &profile.steps[2];
        assert_eq!((c.queue_wait_ms, c.run_ms), (Some(5.0), Some(40.0)));
    }

    #[test]
    fn chain_critical_path_is_the_whole_chain() {
        let steps = vec![
            step("one", &[], 0.0, 0.0, 1.5),
            step("two", &["one"], 1.5, 2.0, 4.0),
            step("three", &["two"], 4.0, 4.0, 10.25),
        ];
        let profile = Profile::build(run(11.0), steps, 10);
        assert_eq!(profile.critical_path.steps, ["one", "two", "three"]);
        assert_eq!(profile.critical_path.total_ms, 9.75);
        assert_eq!(profile.slowest_steps.len(), 3);
    }

    #[test]
    fn steps_that_never_ran_are_reported_but_not_on_the_path() {
        let mut steps = diamond();
        let mut skipped = step("e", &["d"], 60.0, 0.0, 0.0);
        skipped.started_at_ms = None;
        skipped.finished_at_ms = None;
        skipped.status = "skipped".to_owned();
        steps.push(skipped);
        // A dependency on an unknown step is ignored.
        steps[0].dependencies.push("nowhere".to_owned());
        let profile = Profile::build(run(61.0), steps, 10);
        assert_eq!(profile.critical_path.steps, ["a", "c", "d"]);
        assert_eq!(profile.steps[4].queue_wait_ms, None);
        assert_eq!(profile.steps[4].run_ms, None);
        assert_eq!(profile.slowest_steps.len(), 4);
    }

    #[test]
    fn ties_and_cycles_are_deterministic() {
        // b and c finish together: the one given first wins. a and b depend on each other.
        let steps = vec![
            step("a", &["b"], 0.0, 0.0, 5.0),
            step("b", &["a"], 0.0, 0.0, 5.0),
            step("c", &["b"], 5.0, 5.0, 9.0),
            step("d", &["a"], 5.0, 5.0, 9.0),
        ];
        let profile = Profile::build(run(9.0), steps, 2);
        assert_eq!(profile.critical_path.steps, ["a", "b", "c"]);
        let slowest: Vec<_> = profile
            .slowest_steps
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(slowest, ["a", "b"]);
        assert_eq!(
            Profile::build(run(0.0), Vec::new(), 3).critical_path,
            CriticalPath::default()
        );
    }

    #[test]
    fn serializes_to_the_documented_schema() {
        let mut steps = diamond();
        steps[1].cache = Some(CacheUse::Hit);
        steps[2].model_ms = Some(38.1234567);
        let profile = Profile::build(run(61.0), steps, 1);
        let json = serde_json::to_value(&profile).unwrap();
        assert_eq!(json["schema"], "orc-profile/1");
        assert_eq!(json["pipeline"], "demo");
        assert_eq!(json["run_id"], "run-1");
        assert_eq!(json["peak_memory_bytes"], 1 << 20);
        assert_eq!(json["steps"][1]["cache"], "hit");
        assert_eq!(json["steps"][0]["cache"], serde_json::Value::Null);
        assert_eq!(json["steps"][2]["model_ms"], 38.123);
        assert_eq!(
            json["critical_path"]["steps"],
            serde_json::json!(["a", "c", "d"])
        );
        assert_eq!(
            json["slowest_steps"],
            serde_json::json!([{"id": "c", "run_ms": 40.0}])
        );
        let keys: Vec<_> = json["steps"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "tool",
                "action",
                "status",
                "queue_wait_ms",
                "run_ms",
                "model_ms",
                "cache"
            ]
        );
        let back: Profile = serde_json::from_value(json).unwrap();
        assert_eq!(back, profile);
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        let profile = Profile::build(run(61.0), diamond(), 3);
        profile.write(&path).unwrap();
        let back: Profile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, profile);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
