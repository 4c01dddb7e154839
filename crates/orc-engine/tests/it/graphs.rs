//! Generated graphs: every step starts after its dependencies, and the limits are never exceeded.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use orc_engine::{Event, Observer, Options, StepStatus};
use proptest::prelude::*;

use crate::compile;

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(bool, String)>>);

impl Observer for Recorder {
    fn event(&self, event: Event<'_>) {
        let mut log = self.0.lock().unwrap();
        match event {
            Event::StepStarted { id, .. } => log.push((true, id.to_string())),
            Event::StepFinished { id, .. } => log.push((false, id.to_string())),
            Event::StepsAdded { .. } | Event::StepReady { .. } | Event::ModelOutput { .. } => {}
        }
    }
}

/// A pipeline of `n` echo steps where step `j` depends on the `i < j` chosen by `edges`,
/// plus a `for_each` loop over `items` items with a two-step body.
fn pipeline(
    n: usize,
    edges: &[(usize, usize)],
    items: usize,
    loop_parallel: u32,
) -> (String, HashMap<String, Vec<String>>) {
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut text = String::from("name: g\nsteps:\n");
    for j in 0..n {
        let mine: Vec<String> = edges
            .iter()
            .filter(|(_, b)| *b == j)
            .map(|(a, _)| format!("s{a}"))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let _ = write!(
            text,
            "  - id: s{j}\n    action: echo\n    parameters: {{ message: \"{j}\" }}\n"
        );
        if !mine.is_empty() {
            let _ = writeln!(text, "    dependencies: [{}]", mine.join(", "));
        }
        deps.insert(format!("s{j}"), mine);
    }
    let list: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    let _ = write!(
        text,
        "  - id: lp\n    for_each: [{}]\n    max_parallel: {loop_parallel}\n    steps:\n      - id: a\n        action: echo\n        parameters: {{ message: \"{{{{ item }}}}\" }}\n      - id: b\n        action: echo\n        parameters: {{ message: \"{{{{ a.result }}}}\" }}\n",
        list.join(", ")
    );
    (text, deps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn schedule_respects_dependencies_and_limits(
        n in 1usize..40,
        raw_edges in proptest::collection::vec((0usize..40, 0usize..40), 0..80),
        limit in 1usize..5,
        items in 0usize..6,
        loop_parallel in 1u32..3,
    ) {
        let edges: Vec<(usize, usize)> = raw_edges.into_iter().filter(|(a, b)| a < b && *b < n).collect();
        let (text, deps) = pipeline(n, &edges, items, loop_parallel);
        let compiled = compile(&text);
        let recorder = Arc::new(Recorder::default());
        let opts = Options { max_concurrent: limit, observer: Some(recorder.clone()), ..Options::default() };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let result = rt.block_on(orc_engine::execute(&compiled, opts)).unwrap();
        prop_assert!(result.success);
        prop_assert_eq!(result.steps.len(), n + 1 + 2 * items);
        prop_assert!(result.steps.values().all(|s| s.status == StepStatus::Completed));

        let log = recorder.0.lock().unwrap();
        let mut finished: HashSet<&str> = HashSet::new();
        let mut running: HashSet<&str> = HashSet::new();
        let mut peak = 0;
        for (start, id) in log.iter() {
            if *start {
                for d in deps.get(id.as_str()).into_iter().flatten() {
                    prop_assert!(finished.contains(d.as_str()), "{} started before its dependency {}", id, d);
                }
                if let Some(rest) = id.strip_prefix("lp_") {
                    let iteration = rest.split('_').next().unwrap();
                    let active: HashSet<&str> = running.iter().filter_map(|r| r.strip_prefix("lp_")).map(|r| r.split('_').next().unwrap()).chain([iteration]).collect();
                    prop_assert!(active.len() <= loop_parallel as usize, "more than {} loop iterations at once", loop_parallel);
                    if id.ends_with("_b") {
                        let a = format!("lp_{}_a", iteration);
                        prop_assert!(finished.contains(a.as_str()));
                    }
                }
                running.insert(id);
                peak = peak.max(running.len());
                prop_assert!(running.len() <= limit, "{} steps running, limit {}", running.len(), limit);
            } else {
                running.remove(id.as_str());
                finished.insert(id);
            }
        }
        prop_assert!(finished.contains("lp"));
        for i in 0..items {
            let b = format!("lp_{i}_b");
            let pos_b = log.iter().position(|(s, id)| !s && *id == b).unwrap();
            let pos_lp = log.iter().position(|(s, id)| !s && id == "lp").unwrap();
            prop_assert!(pos_b < pos_lp, "the loop finished before iteration {}", i);
        }
    }
}
