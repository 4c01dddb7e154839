//! One trial: the pipeline run, killed with SIGKILL at random moments and resumed until it
//! completes, then checked against the uninterrupted run.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::Backend;
use super::check;
use super::observe::{self, InFlight};
use super::pipeline;
use crate::models::Fake;

/// Longest one `orc run` or `orc resume` of the pipeline may take.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(120);

/// The uninterrupted run: its result document, its files, its requests and how long it took.
pub(super) struct Clean {
    pub(super) doc: Value,
    pub(super) effects: BTreeMap<String, usize>,
    pub(super) lines: Vec<String>,
    pub(super) report: String,
    pub(super) requests: Vec<(String, u64)>,
    pub(super) took: Duration,
}

impl Clean {
    /// Runs the pipeline once, in a sandbox of its own (so its answers are not in the trials'
    /// response caches), on `backend`.
    pub(super) fn run(backend: &Backend, fake: &Fake) -> Clean {
        fake.provider().reset();
        let sb = pipeline::sandbox(fake);
        let id = super::run_id("clean");
        let started = Instant::now();
        let out = backend
            .orc(&sb)
            .args(["run", "p.yaml", "--run-id", &id, "-q"])
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "the uninterrupted run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["status"], "completed", "{doc}");
        let requests = pipeline::requests_by_step(&fake.provider().stats());
        assert!(
            requests.iter().all(|(_, n)| *n == 1),
            "each model step asks once: {requests:?}"
        );
        let effects = observe::effects(&sb);
        assert!(
            pipeline::effect_steps()
                .iter()
                .all(|s| effects.get(s) == Some(&1)),
            "every side effect once: {effects:?}"
        );
        assert!(doc["cost"].as_f64().unwrap() > 0.0, "the model is priced");
        backend.clean_up(&sb);
        let mut lines = sb.lines("effects.txt");
        lines.sort();
        Clean {
            effects,
            lines,
            report: sb.read("out/report.txt"),
            requests,
            took,
            doc,
        }
    }
}

/// What one trial did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) kills: u32,
    pub(super) resumes: u32,
    pub(super) restarts: u32,
    /// What the run repeated, and the answers its cost leaves out.
    pub(super) repeats: check::Repeats,
}

/// A child process killed when a failed check unwinds past it.
struct Killed(Option<Child>);

impl Killed {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn take(&mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs one trial with the random moments of `seed`, and checks it.
pub(super) fn run(backend: &Backend, fake: &Fake, clean: &Clean, seed: u64) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    fake.provider().reset();
    let sb = pipeline::sandbox(fake);
    let id = super::run_id("crash");
    // The kill lands anywhere in the span of an uninterrupted run, start-up included.
    let window = clean.took.as_millis().max(50) as u64;
    let planned_kills = rng.u32(1..=3);
    let mut outcome = Outcome::default();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut recorded = false;
    let finished: Value = loop {
        let mut command = backend.orc(&sb);
        if recorded {
            command.args(["resume", &id, "-q"]);
            outcome.resumes += 1;
        } else {
            // Killed before the run was recorded: it is started again, as a user would.
            command.args(["run", "p.yaml", "--run-id", &id, "-q"]);
            if outcome.kills > 0 {
                outcome.restarts += 1;
            }
        }
        let mut child = Killed(Some(
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let kill_at = (outcome.kills < planned_kills)
            .then(|| Instant::now() + Duration::from_millis(rng.u64(0..=window)));
        let started = Instant::now();
        let mut killed = false;
        while child.get().try_wait().unwrap().is_none() {
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                child.get().kill().unwrap();
                killed = true;
                break;
            }
            assert!(
                started.elapsed() < ATTEMPT_LIMIT,
                "an attempt ran for {ATTEMPT_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = child.take().wait_with_output().unwrap();
        if !killed {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "the attempt failed: {stderr}");
            if out.stdout.is_empty() {
                // Killed after it completed the run: `orc resume` found nothing to do.
                break observe::shown(backend, &sb, &id).expect("the run is recorded");
            }
            break serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("no result document ({e}); stderr: {stderr}"));
        }
        outcome.kills += 1;
        observe::wait_until_quiet(&sb);
        let shown = observe::shown(backend, &sb, &id);
        recorded = shown.is_some();
        let saved = shown.as_ref().map(observe::saved_steps).unwrap_or_default();
        observe::check_history_names_known_steps(&saved, &clean.doc);
        let effects = observe::effects(&sb);
        let requests = pipeline::requests_by_step(&fake.provider().stats());
        // A step saved before this kill never runs again, so its side effect happened once.
        for step in saved.keys() {
            if let Some(times) = effects.get(step) {
                let allowed = 1 + in_flight
                    .iter()
                    .filter(|k| k.effects.contains(step))
                    .count();
                assert!(
                    *times <= allowed,
                    "step {step}, saved, wrote its line {times} times (allowed {allowed})"
                );
            }
        }
        in_flight.push(InFlight::after_kill(&saved, &effects, &requests));
    };
    outcome.repeats = check::trial(backend, &sb, &id, &finished, clean, &in_flight, fake);
    backend.clean_up(&sb);
    outcome
}
