//! Timeouts, retries and back-off, checked on tokio's paused clock: no real sleeping.

use std::time::Duration;

use orc_engine::{Backoff, Options, RunStatus};
use tokio::time::Instant;

use crate::compile;

fn options(backoff_base_ms: u64) -> Options {
    Options {
        backoff: Backoff {
            initial: Duration::from_millis(backoff_base_ms),
            max: Duration::from_secs(10),
            jitter: true,
        },
        ..Options::default()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_with_jitter() {
    // A step timeout is retryable; each attempt takes 10 ms of the paused clock.
    let c = compile(
        "name: t\nsteps:\n  - id: r\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 600\", timeout: 900 }\n    timeout: 0.01\n    max_retries: 3\n",
    );
    let start = Instant::now();
    let result = orc_engine::execute(&c, options(1000)).await.unwrap();
    let waited = start.elapsed();
    let step = &result.steps["r"];
    assert_eq!(step.retries, 3);
    assert_eq!(step.attempts.step, 4);
    assert_eq!(step.attempts.model, None);
    assert_eq!(result.status, RunStatus::Failed);
    // 1 s, 2 s, 4 s, each with jitter in [50 %, 100 %].
    assert!(
        waited >= Duration::from_millis(3500) && waited <= Duration::from_millis(7100),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_policy_means_three_retries() {
    let c = compile(
        "name: t\nsteps:\n  - id: r\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 600\", timeout: 900 }\n    timeout: 0.01\n    on_failure: retry\n",
    );
    let result = orc_engine::execute(&c, options(10)).await.unwrap();
    assert_eq!(result.steps["r"].retries, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failure_no_retry_can_help_is_not_retried() {
    let c = compile(
        "name: t\nsteps:\n  - id: r\n    tool: filesystem\n    action: read\n    parameters: { path: /nonexistent/orc-test }\n    max_retries: 3\n",
    );
    let start = Instant::now();
    let result = orc_engine::execute(&c, options(1000)).await.unwrap();
    let step = &result.steps["r"];
    assert_eq!(step.retries, 0);
    assert_eq!(step.attempts.step, 1);
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn no_retry_by_default() {
    let c = compile(
        "name: t\nsteps:\n  - id: r\n    tool: filesystem\n    action: read\n    parameters: { path: /nonexistent/orc-test }\n",
    );
    let start = Instant::now();
    let result = orc_engine::execute(&c, options(1000)).await.unwrap();
    assert_eq!(result.steps["r"].retries, 0);
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn step_timeout_beats_a_slow_command_and_is_retried() {
    let c = compile(
        "name: t\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 600\", timeout: 900 }\n    timeout: 5\n    max_retries: 1\n",
    );
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let result = orc_engine::execute(&c, options(1000)).await.unwrap();
    let step = &result.steps["slow"];
    assert!(step.timed_out);
    assert_eq!(step.retries, 1);
    assert_eq!(step.error_type.as_deref(), Some("Timeout"));
    let virt = start.elapsed();
    assert!(
        virt >= Duration::from_millis(10_500) && virt <= Duration::from_millis(11_100),
        "{virt:?}"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "real time was spent: {:?}",
        wall.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_precedence_step_then_pipeline_then_config() {
    let text = "name: t\nmetadata: { default_timeout: 7 }\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 600\", timeout: 900 }\n    on_failure: continue\n";
    let c = compile(text);
    let start = Instant::now();
    let result = orc_engine::execute(
        &c,
        Options {
            task_timeout: Duration::from_secs(100),
            ..options(10)
        },
    )
    .await
    .unwrap();
    assert!(result.steps["a"].timed_out);
    let virt = start.elapsed();
    assert!(
        virt >= Duration::from_secs(7) && virt < Duration::from_secs(8),
        "{virt:?}"
    );

    let c = compile(&text.replace("metadata: { default_timeout: 7 }\n", ""));
    let start = Instant::now();
    let result = orc_engine::execute(
        &c,
        Options {
            task_timeout: Duration::from_secs(3),
            ..options(10)
        },
    )
    .await
    .unwrap();
    assert!(result.steps["a"].timed_out);
    assert!(start.elapsed() >= Duration::from_secs(3) && start.elapsed() < Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_running_steps() {
    let c = compile(
        "name: t\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 600\", timeout: 900 }\n  - id: next\n    action: echo\n    parameters: { message: x }\n    dependencies: [slow]\n",
    );
    let opts = options(10);
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    let result = orc_engine::execute(&c, opts).await.unwrap();
    assert_eq!(result.status, RunStatus::Interrupted);
    assert_eq!(
        result.steps["slow"].error_type.as_deref(),
        Some("Cancelled")
    );
    assert_eq!(result.steps["next"].status, orc_engine::StepStatus::Pending);
}
