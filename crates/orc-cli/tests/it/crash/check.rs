//! The checks at the end of a trial: side effects, requests, outputs and history against the
//! uninterrupted run's.

use serde_json::Value;

use super::backend::Backend;
use super::observe::{self, InFlight};
use super::pipeline;
use super::trial::Clean;
use crate::models::Fake;
use crate::support::Sandbox;

/// How many of the kills found `step` in flight, as `pick` sees it.
fn kills_in_flight(in_flight: &[InFlight], pick: impl Fn(&InFlight) -> bool) -> usize {
    in_flight.iter().filter(|k| pick(k)).count()
}

/// The fields of a step's record that must not depend on kills: how it ended and what it
/// gave. Times, attempts and cache flags may differ.
fn outcome_of(step: &Value) -> Value {
    serde_json::json!({
        "status": step["status"],
        "value": step["value"],
        "model": step["model"],
        "error": step["error"],
    })
}

/// What a completed trial repeated.
#[derive(Debug, Default)]
pub(super) struct Repeats {
    /// Side effects beyond the first, summed over the steps.
    pub(super) effects: u32,
    /// Model requests beyond the uninterrupted run's, summed over the steps.
    pub(super) requests: u32,
    /// Model steps whose answer the last attempt took from the response cache: the killed
    /// process paid for it, and the run's cost leaves it out (see the README).
    pub(super) unpriced: u32,
}

/// Checks a completed trial; returns what it repeated.
pub(super) fn trial(
    backend: &Backend,
    sb: &Sandbox,
    run_id: &str,
    doc: &Value,
    clean: &Clean,
    in_flight: &[InFlight],
    fake: &Fake,
) -> Repeats {
    let mut repeats = Repeats::default();
    // Side effects: once, or once more for each kill that caught the step after its side
    // effect and before its checkpoint.
    let effects = observe::effects(sb);
    assert_eq!(
        effects.keys().collect::<Vec<_>>(),
        clean.effects.keys().collect::<Vec<_>>(),
        "the same steps wrote lines"
    );
    for (step, times) in &effects {
        let allowed = 1 + kills_in_flight(in_flight, |k| k.effects.contains(step));
        assert!(
            *times <= allowed,
            "step {step} wrote its line {times} times; {} kill(s) caught it in flight",
            allowed - 1
        );
        repeats.effects += (*times - 1) as u32;
    }
    let mut lines = sb.lines("effects.txt");
    lines.sort();
    lines.dedup();
    let mut expected = clean.lines.clone();
    expected.dedup();
    assert_eq!(
        lines, expected,
        "the lines written are the uninterrupted run's"
    );
    assert_eq!(sb.read("out/report.txt"), clean.report, "the file written");

    // Model calls: none paid twice, but for a request in flight at a kill (sent, and its
    // answer not yet in the response cache or a checkpoint).
    let requests = pipeline::requests_by_step(&fake.provider().stats());
    for ((step, n), (_, clean_n)) in requests.iter().zip(&clean.requests) {
        let allowed = clean_n + kills_in_flight(in_flight, |k| k.requests.contains(step)) as u64;
        assert!(
            (1..=allowed).contains(n),
            "model step {step} sent {n} requests; the uninterrupted run sent {clean_n}, and {} kill(s) caught it in flight",
            allowed - clean_n
        );
        repeats.requests += (n - clean_n) as u32;
    }
    let sent: u64 = requests.iter().map(|(_, n)| n).sum();
    assert_eq!(
        fake.provider()
            .stats()
            .requests_to(orc_fake_provider::Endpoint::ChatCompletions),
        sent,
        "every request is one of the model steps'"
    );

    // Outputs: the result document's outputs and each step's outcome.
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["outputs"], clean.doc["outputs"], "the outputs");
    let steps = doc["steps"].as_object().unwrap();
    let clean_steps = clean.doc["steps"].as_object().unwrap();
    assert_eq!(
        steps.keys().collect::<Vec<_>>(),
        clean_steps.keys().collect::<Vec<_>>(),
        "the same steps"
    );
    for (id, step) in steps {
        assert_eq!(
            outcome_of(step),
            outcome_of(&clean_steps[id]),
            "step {id}'s outcome"
        );
    }

    // History: the store has the run completed with this document, every step once.
    let shown = observe::shown(backend, sb, run_id).expect("the run is recorded");
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(&shown, doc, "the store holds the result document printed");
    let saved = observe::saved_steps(&shown);
    observe::check_history_names_known_steps(&saved, &clean.doc);
    assert_eq!(
        saved.len(),
        clean_steps.len(),
        "every step saved: {saved:?}"
    );

    // Cost: the uninterrupted run's, less the answers the last attempt found in the response
    // cache (a cache hit costs nothing, though a killed attempt of this run paid for it).
    let mut expected = 0.0;
    for (step, _) in pipeline::model_steps() {
        if steps[&step]["cached"] == true {
            repeats.unpriced += 1;
        } else {
            expected += clean_steps[&step]["cost"].as_f64().unwrap();
        }
    }
    let cost = doc["cost"].as_f64().unwrap();
    assert!(
        (cost - expected).abs() < 1e-9,
        "the run's cost is {cost}, its steps' {expected}"
    );
    repeats
}
