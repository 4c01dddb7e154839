//! The scheduler's state machine through the library: routing, failure policies, `while` loops,
//! resume, and the journal's place between a step and its dependents.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orc_engine::{Event, Journal, Observer, Options, RunResult, StepRecord, StepStatus};

use crate::compile;

/// What happened, in order: `start <id>`, `finish <id>`, `durable <id>`.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn position(&self, entry: &str) -> Option<usize> {
        self.entries().iter().position(|e| e == entry)
    }
}

impl Observer for Log {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepStarted { id, .. } => self.push(format!("start {id}")),
            Event::StepFinished { id, .. } => self.push(format!("finish {id}")),
            Event::StepsAdded { .. } | Event::StepReady { .. } | Event::ModelOutput { .. } => {}
        }
    }
}

/// A journal that takes `delay` per append and logs what it made durable; fails when told to.
#[derive(Debug)]
struct SlowJournal {
    log: Arc<Log>,
    delay: Duration,
    fail: bool,
}

impl Journal for SlowJournal {
    fn append<'a>(
        &'a self,
        records: &'a [StepRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            if self.fail {
                return Err("the disk is full".to_owned());
            }
            for r in records {
                self.log.push(format!("durable {}", r.id));
            }
            Ok(())
        })
    }
}

async fn run(text: &str, opts: Options) -> RunResult {
    orc_engine::execute(&compile(text), opts).await.unwrap()
}

/// Runs `text` with a [`SlowJournal`] and a [`Log`] observing it; returns the result and the log.
async fn run_journaled(text: &str, delay: Duration, fail: bool) -> (RunResult, Arc<Log>) {
    let log = Arc::new(Log::default());
    let journal = Arc::new(SlowJournal {
        log: log.clone(),
        delay,
        fail,
    });
    let options = Options {
        journal: Some(journal),
        observer: Some(log.clone()),
        ..Options::default()
    };
    (run(text, options).await, log)
}

fn status(result: &RunResult, id: &str) -> StepStatus {
    result.steps[id].status
}

const ROUTED: &str = "
name: routed
steps:
  - id: check
    action: echo
    parameters: { message: x }
    condition: \"{{ 1 > 2 }}\"
    on_false: fallback
  - id: main
    action: echo
    parameters: { message: main }
    dependencies: [check]
  - id: fallback
    action: echo
    parameters: { message: fallback }
    dependencies: [main]
  - id: after
    action: echo
    parameters: { message: \"{{ fallback.result }}\" }
    dependencies: [fallback]
";

#[tokio::test]
async fn on_false_skips_what_it_jumps_over_and_runs_its_target() {
    let result = run(ROUTED, Options::default()).await;
    assert_eq!(status(&result, "check"), StepStatus::Skipped);
    assert_eq!(
        result.steps["check"].reason.as_deref(),
        Some("condition_false")
    );
    assert_eq!(status(&result, "main"), StepStatus::Skipped);
    assert_eq!(result.steps["main"].reason.as_deref(), Some("routed"));
    assert_eq!(status(&result, "fallback"), StepStatus::Completed);
    assert_eq!(status(&result, "after"), StepStatus::Completed);
    assert_eq!(
        result.steps["after"].value.as_ref().unwrap()["result"],
        "fallback"
    );
    assert!(result.success, "{:?}", result.error);
}

#[tokio::test]
async fn on_failure_policies_continue_skip_and_go_to() {
    let text = "
name: policies
steps:
  - id: soft
    tool: filesystem
    action: read
    parameters: { path: /nonexistent/orc/soft }
    on_failure: continue
  - id: after_soft
    action: echo
    parameters: { message: ran }
    dependencies: [soft]
  - id: hard
    tool: filesystem
    action: read
    parameters: { path: /nonexistent/orc/hard }
    on_failure: skip
  - id: after_hard
    action: echo
    parameters: { message: never }
    dependencies: [hard]
  - id: jumps
    tool: filesystem
    action: read
    parameters: { path: /nonexistent/orc/jumps }
    on_failure: recover
  - id: jumped
    action: echo
    parameters: { message: never }
    dependencies: [jumps]
  - id: recover
    action: echo
    parameters: { message: recovered }
    dependencies: [jumped]
";
    let result = run(text, Options::default()).await;
    assert_eq!(status(&result, "soft"), StepStatus::Failed);
    assert_eq!(status(&result, "after_soft"), StepStatus::Completed);
    assert_eq!(status(&result, "hard"), StepStatus::Failed);
    assert_eq!(status(&result, "after_hard"), StepStatus::Skipped);
    assert_eq!(
        result.steps["after_hard"].reason.as_deref(),
        Some("dependency_failed")
    );
    assert_eq!(status(&result, "jumps"), StepStatus::Failed);
    assert_eq!(status(&result, "jumped"), StepStatus::Skipped);
    assert_eq!(status(&result, "recover"), StepStatus::Completed);
    // Only `continue`/`skip`/go-to failures: the run went to the end, and failed; its error is
    // its first failure (the three fail at once, in any order).
    assert!(!result.success);
    let error = result.error.unwrap();
    assert!(
        ["`soft`", "`hard`", "`jumps`"]
            .iter()
            .any(|id| error.contains(id)),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_step_whose_policy_is_fail_stops_the_run() {
    let text = "
name: stops
steps:
  - id: broken
    tool: filesystem
    action: read
    parameters: { path: /nonexistent/orc/broken }
  - id: next
    action: echo
    parameters: { message: never }
    dependencies: [broken]
";
    let result = run(text, Options::default()).await;
    assert_eq!(status(&result, "broken"), StepStatus::Failed);
    assert_eq!(status(&result, "next"), StepStatus::Skipped);
    assert_eq!(
        result.steps["next"].reason.as_deref(),
        Some("dependency_failed")
    );
    assert!(!result.success);
    assert!(result.error.unwrap().contains("`broken`"));
}

#[tokio::test]
async fn while_loops_stop_at_until_or_max_iterations() {
    let text = "
name: loops
steps:
  - id: until
    while: \"{{ true }}\"
    until: \"{{ tick.result == 'tick 2' }}\"
    max_iterations: 10
    steps:
      - id: tick
        action: echo
        parameters: { message: \"tick {{ iteration }}\" }
  - id: capped
    while: \"{{ true }}\"
    max_iterations: 4
    steps:
      - id: tock
        action: echo
        parameters: { message: \"{{ iteration }}\" }
  - id: never
    while: \"{{ false }}\"
    steps:
      - id: body
        action: echo
        parameters: { message: x }
";
    let result = run(text, Options::default()).await;
    assert!(result.success, "{:?}", result.error);
    let ran = |prefix: &str| {
        result
            .steps
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    };
    assert_eq!(ran("until_"), 3, "iterations 0, 1 and 2, then `until` held");
    assert_eq!(ran("capped_"), 4);
    assert_eq!(ran("never_"), 0);
    assert_eq!(
        result.steps["until"].value.as_ref().unwrap()["result"],
        "Completed 3 iterations"
    );
    assert_eq!(
        result.steps["never"].value.as_ref().unwrap()["result"],
        "Completed 0 iterations"
    );
}

#[tokio::test]
async fn a_resumed_run_reuses_completed_steps_and_runs_the_rest() {
    let text = "
name: resumable
steps:
  - id: first
    action: echo
    parameters: { message: \"{{ execution.id }}\" }
  - id: second
    action: echo
    parameters: { message: \"after {{ first.result }}\" }
    dependencies: [first]
";
    let earlier = run(text, Options::default()).await;
    let first = earlier.steps["first"].clone();
    let log = Arc::new(Log::default());
    let resume: HashMap<String, StepRecord> = [("first".to_owned(), first.clone())].into();
    let result = run(
        text,
        Options {
            execution_id: Some(earlier.execution_id.clone()),
            resume: Arc::new(resume),
            observer: Some(log.clone()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(log.position("start first"), None, "first ran again");
    assert!(log.position("start second").is_some());
    assert_eq!(result.steps["first"].value, first.value);
    assert_eq!(
        result.steps["second"].value.as_ref().unwrap()["result"],
        format!("after {}", earlier.execution_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_starts_only_after_its_dependencies_are_durable() {
    let text = "
name: durable
steps:
  - id: a
    action: echo
    parameters: { message: a }
  - id: b
    action: echo
    parameters: { message: b }
    dependencies: [a]
  - id: c
    action: echo
    parameters: { message: c }
  - id: d
    action: echo
    parameters: { message: d }
    dependencies: [b, c]
";
    let (result, log) = run_journaled(text, Duration::from_millis(20), false).await;
    assert!(result.success, "{:?}", result.error);
    let at = |e: &str| {
        log.position(e)
            .unwrap_or_else(|| panic!("no `{e}` in {:?}", log.entries()))
    };
    for (step, deps) in [("b", &["a"][..]), ("d", &["b", "c"][..])] {
        for dep in deps {
            assert!(
                at(&format!("durable {dep}")) < at(&format!("start {step}")),
                "{step} started before {dep} was durable: {:?}",
                log.entries()
            );
        }
    }
    for id in ["a", "b", "c", "d"] {
        assert!(at(&format!("durable {id}")) < at(&format!("finish {id}")));
    }
}

#[tokio::test]
async fn a_journal_that_fails_stops_the_run() {
    let text = "
name: journal
steps:
  - id: a
    action: echo
    parameters: { message: a }
  - id: b
    action: echo
    parameters: { message: b }
    dependencies: [a]
";
    let (result, log) = run_journaled(text, Duration::ZERO, true).await;
    assert!(!result.success);
    assert_eq!(result.error_type.as_deref(), Some("StateError"));
    assert!(result.error.unwrap().contains("the disk is full"));
    assert_eq!(log.position("start b"), None);
}
