//! py-orc's error handling and declared outputs through the real binary: `on_error` as prose,
//! a handler mapping, a list of handlers with conditions and a handler step, py-orc's legacy
//! mapping; `error` in a handler's templates; `retry` and `retry_config`; `produces` and
//! `location`; and the diagnostics of their bad forms.

use crate::support::Sandbox;

/// Shaped as py-orc's `error_handling_examples.yaml` and `simple_error_handling.yaml`.
const HANDLERS: &str = r#"id: error_handling_demo
name: Error handling
steps:
  # The prose form: py-orc runs it as a handler action; orc records it and goes on.
  - id: api_call_with_fallback
    tool: terminal
    action: execute
    parameters:
      command: "exit 7"
    on_error: "Use cached data when API fails"

  # A handler with a fallback value: the step completes with it.
  - id: fetch_data
    tool: filesystem
    action: read
    parameters:
      path: "data/missing.json"
    on_error:
      handler_action: "Log error ({{ error.message }}) and use default data"
      error_types: ["FileNotFoundError", "TimeoutError"]
      fallback_value: {"data": "default_fallback_data", "from": "{{ error.failed_task_id }}"}
      retry_with_handler: false
      log_level: "warning"

  # Several handlers: the first, by priority, that takes the error applies.
  - id: risky
    tool: terminal
    action: execute
    parameters:
      command: "echo boom >&2; exit 3"
    on_error:
      - handler_action: "Switch to the backup endpoint"
        error_types: ["ConnectionError", "HTTPError"]
        priority: 1
      - handler_task_id: "recover"
        error_codes: [3]
        priority: 2
        retry_with_handler: false
      - handler_action: "Never reached"
        error_types: ["*"]
        priority: 3

  # The handler step: runs only when `risky` failed, with its error in scope.
  - id: recover
    tool: filesystem
    action: write
    parameters:
      path: "{{ output_path }}/recovered.txt"
      content: "{{ error.failed_task_id }} failed ({{ error_type }}), code {{ error.code }}"

  - id: after
    action: echo
    parameters:
      message: "data={{ fetch_data.result.data }}"
    dependencies: [fetch_data, risky]
outputs:
  data: "{{ fetch_data.result.data }}"
  from: "{{ fetch_data.result.from }}"
"#;

#[test]
fn on_error_handlers_run_as_py_orc_declares_them() {
    let sb = Sandbox::new();
    let p = sb.file("handlers.yaml", HANDLERS);
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let doc = r.doc();
    let steps = &doc["steps"];

    // Prose: recorded, the run goes on, the step stays failed.
    let prose = &steps["api_call_with_fallback"];
    assert_eq!(prose["status"], "failed", "{}", r.stderr);
    assert_eq!(
        prose["recovery"]["action"],
        "Use cached data when API fails"
    );

    // A fallback value is the step's result, with `error` rendered in the handler.
    let fetch = &steps["fetch_data"];
    assert_eq!(fetch["status"], "completed", "{fetch}");
    assert_eq!(fetch["value"]["result"]["data"], "default_fallback_data");
    assert_eq!(fetch["recovery"]["fallback_used"], true);
    assert_eq!(
        fetch["recovery"]["original_error"]["type"],
        "FileNotFoundError"
    );
    let action = fetch["recovery"]["action"].as_str().unwrap();
    assert!(
        action.starts_with("Log error (") && action.contains("missing.json"),
        "{action}"
    );
    assert_eq!(doc["outputs"]["data"], "default_fallback_data");
    assert_eq!(doc["outputs"]["from"], "fetch_data");

    // The list: the ConnectionError handler does not take an exit code 3; the second does,
    // and its step ran with the error bound.
    let risky = &steps["risky"];
    assert_eq!(risky["status"], "failed");
    assert_eq!(risky["recovery"]["handler"], 1);
    assert_eq!(risky["recovery"]["handler_step"], "recover");
    assert_eq!(steps["recover"]["status"], "completed");
    assert_eq!(
        sb.read("outputs/error_handling_demo/recovered.txt"),
        "risky failed (ToolError), code 3"
    );
    // Handled failures let their dependents run.
    assert_eq!(steps["after"]["status"], "completed");
    assert_eq!(
        steps["after"]["value"]["result"],
        "data=default_fallback_data"
    );
    // Failures without a fallback are still failures of the run.
    assert_eq!(r.code, 1);
}

#[test]
fn a_handler_step_is_skipped_when_nothing_failed_and_a_filter_that_does_not_match_leaves_the_failure()
 {
    let sb = Sandbox::new();
    let p = sb.file(
        "quiet.yaml",
        r#"id: quiet
name: Quiet
steps:
  - id: fine
    action: echo
    parameters: { message: ok }
    on_error:
      handler_task_id: cleanup
  - id: cleanup
    action: echo
    parameters:
      message: "{{ error.message }}"
  - id: fails
    tool: terminal
    action: execute
    parameters: { command: "exit 2" }
    on_error:
      handler_action: "Only for timeouts"
      error_types: [TimeoutError]
      retry_with_handler: false
  - id: not_reached
    action: echo
    parameters: { message: "{{ fails.result }}" }
"#,
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let steps = &r.doc()["steps"];
    assert_eq!(steps["fine"]["status"], "completed", "{}", r.stderr);
    assert_eq!(steps["cleanup"]["status"], "skipped");
    assert_eq!(steps["cleanup"]["reason"], "no_error");
    // No handler took it: the step's own policy (fail) stops the run.
    assert_eq!(steps["fails"]["status"], "failed");
    assert!(steps["fails"].get("recovery").is_none());
    assert_ne!(steps["not_reached"]["status"], "completed");
    assert_eq!(r.code, 1);
}

/// A command that fails until its third run.
const FLAKY: &str =
    "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; test $n -ge 3";

#[test]
fn retry_and_retry_config_set_the_steps_retries_and_their_wait() {
    let sb = Sandbox::new();
    let text = format!(
        r#"id: retries
name: Retries
steps:
  - id: flaky
    tool: terminal
    action: execute
    parameters:
      command: "{FLAKY}"
    retry_config:
      max_retries: 2
      delay: 0.2
      backoff_factor: 1
  - id: short
    tool: terminal
    action: execute
    parameters:
      command: "exit 1"
    retry: 1
    on_failure: continue
  - id: legacy
    tool: terminal
    action: execute
    parameters:
      command: "exit 4"
    on_error:
      action: "Retry, then use the default"
      retry_count: 2
      retry_delay: 0.1
      fallback_value: "default"
      continue_on_error: true
"#
    );
    let p = sb.file("retries.yaml", &text);
    let started = std::time::Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let steps = &r.doc()["steps"];
    assert_eq!(steps["flaky"]["status"], "completed", "{}", r.stderr);
    assert_eq!(steps["flaky"]["retries"], 2);
    assert_eq!(sb.read("count").trim(), "3");
    // Two waits of 0.2 s, fixed: not the run's default back-off.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    assert_eq!(steps["short"]["status"], "failed");
    assert_eq!(steps["short"]["attempts"]["step"], 2);
    // py-orc's legacy mapping: `retry_count` attempts more, then the fallback.
    assert_eq!(steps["legacy"]["status"], "completed");
    assert_eq!(steps["legacy"]["attempts"]["step"], 3);
    assert_eq!(steps["legacy"]["value"]["result"], "default");
    assert_eq!(r.code, 1);
}

#[test]
fn a_declared_output_is_recorded_and_must_exist_after_the_step() {
    let sb = Sandbox::new();
    let p = sb.file(
        "outputs.yaml",
        r##"id: report_pipeline
name: Report
steps:
  - id: save_report
    tool: filesystem
    action: write
    parameters:
      path: "{{ output_path }}/report.md"
      content: "# Report"
    produces: markdown-file
    location: "{{ output_path }}/report.md"
  - id: load_document
    tool: filesystem
    action: read
    parameters:
      path: "{{ output_path }}/report.md"
    produces: text
    dependencies: [save_report]
  - id: claims
    tool: terminal
    action: execute
    parameters:
      command: "echo written elsewhere"
    produces: "markdown-file"
    location: "{{ output_path }}/never.md"
    dependencies: [load_document]
outputs:
  report: "{{ save_report.output_info.location }}"
"##,
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let doc = r.doc();
    let save = &doc["steps"]["save_report"];
    assert_eq!(save["status"], "completed", "{}", r.stderr);
    assert_eq!(save["produces"], "markdown-file");
    assert_eq!(save["location"], "outputs/report_pipeline/report.md");
    assert_eq!(
        save["value"]["output_info"]["location"],
        "outputs/report_pipeline/report.md"
    );
    assert_eq!(
        doc["outputs"]["report"],
        "outputs/report_pipeline/report.md"
    );
    assert_eq!(doc["steps"]["load_document"]["produces"], "text");
    assert_eq!(doc["steps"]["load_document"]["status"], "completed");
    let claims = &doc["steps"]["claims"];
    assert_eq!(claims["status"], "failed");
    assert_eq!(claims["error_type"], "OutputMissing");
    let error = claims["error"].as_str().unwrap();
    assert!(
        error.contains("step `claims`") && error.contains("outputs/report_pipeline/never.md"),
        "{error}"
    );
    assert_eq!(r.code, 1);
}

#[test]
fn bad_error_handling_forms_are_diagnostics_at_their_place() {
    let sb = Sandbox::new();
    let p = sb.file(
        "bad.yaml",
        r#"id: bad
name: Bad
steps:
  - id: a
    action: echo
    on_error:
      handler_action: "Log it"
      error_tpyes: [ValueError]
  - id: b
    action: echo
    on_error:
      - handler_task_id: nowhere
      - handler_action: "Match"
        error_patterns: ["unclosed(group"]
  - id: c
    action: echo
    retry_config:
      max_retries: 2
      jitter: true
  - id: d
    action: echo
    on_error: continue
    on_failure: skip
  - id: e
    action: echo
    on_error:
      handler_action: "Uses {{ error.message }} and {{ nothing_here }}"
"#,
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for (at, what) in [
        ("bad.yaml:8:7", "`error_tpyes` in `on_error`"),
        ("bad.yaml:12:26", "unknown step `nowhere`"),
        ("bad.yaml:14:26", "not a regular expression"),
        ("bad.yaml:19:7", "`jitter` in `retry_config`"),
        ("bad.yaml:22:15", "both `on_error` and `on_failure`"),
        ("bad.yaml:27", "nothing_here"),
    ] {
        let line = r
            .stderr
            .lines()
            .position(|l| l.contains(at))
            .unwrap_or_else(|| panic!("no finding at {at}:\n{}", r.stderr));
        // The message is on the line before its location.
        let text: String = r
            .stderr
            .lines()
            .skip(line.saturating_sub(1))
            .take(2)
            .collect();
        assert!(text.contains(what), "{at}: {text}\n{}", r.stderr);
    }
    assert!(
        r.stderr.contains("did you mean `error_types`?"),
        "{}",
        r.stderr
    );
    // `error` itself is known inside a handler.
    assert!(!r.stderr.contains("`error`"), "{}", r.stderr);
}

#[test]
fn py_orc_shaped_error_handling_validates() {
    let sb = Sandbox::new();
    let p = sb.file("handlers.yaml", HANDLERS);
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
