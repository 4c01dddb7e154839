//! py-orc's pipeline language beyond the supported subset, through the real binary: the
//! `output_path` every pipeline takes, the clock names, `continue_on_error`.

use crate::support::Sandbox;

/// Written as py-orc's examples write it: files under `{{ output_path }}`, a shell step that
/// expects the directory to exist, the date in the text, and a step allowed to fail.
const REPORT: &str = r#"id: report_maker
name: Report maker
steps:
  - id: listing
    tool: terminal
    action: execute
    parameters:
      command: "test -d {{ output_path }} && echo ready"
  - id: save
    tool: filesystem
    action: write
    parameters:
      path: "{{ output_path }}/report.md"
      content: "made on {{ current_date }} at {{ current_timestamp }}"
    dependencies: [listing]
  - id: flaky
    tool: terminal
    action: execute
    parameters:
      command: "exit 3"
    continue_on_error: true
  - id: after
    tool: terminal
    action: execute
    parameters:
      command: "echo after"
    dependencies: [flaky]
outputs:
  where: "{{ output_path }}"
  ready: "{{ listing.result.stdout | trim }}"
"#;

#[test]
fn output_path_defaults_to_outputs_of_the_pipeline_and_exists_before_the_first_step() {
    let sb = Sandbox::new();
    let p = sb.file("report.yaml", REPORT);
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let doc = r.doc();
    assert_eq!(
        doc["outputs"]["where"], "outputs/report_maker",
        "{}",
        r.stderr
    );
    assert_eq!(doc["outputs"]["ready"], "ready");
    let text = sb.read("outputs/report_maker/report.md");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        text.starts_with(&format!("made on {today} at {today}T")),
        "{text}"
    );
    // `continue_on_error: true` is `on_failure: continue`: its dependents run, the run fails.
    assert_eq!(doc["steps"]["flaky"]["status"], "failed");
    assert_eq!(doc["steps"]["after"]["status"], "completed");
    assert_eq!(r.code, 1);
}

#[test]
fn output_path_is_an_input_every_pipeline_takes() {
    let sb = Sandbox::new();
    let p = sb.file("report.yaml", REPORT);
    let dir = sb.path("elsewhere/run1");
    let arg = format!("output_path={}", dir.display());
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", &arg]);
    assert_eq!(
        r.doc()["outputs"]["where"],
        dir.to_str().unwrap(),
        "{}",
        r.stderr
    );
    assert!(sb.read("elsewhere/run1/report.md").starts_with("made on "));
    assert!(!sb.path("outputs").exists());
}

#[test]
fn continue_on_error_and_on_failure_together_are_refused() {
    let sb = Sandbox::new();
    let p = sb.file(
        "both.yaml",
        "id: both\nname: Both\nsteps:\n  - id: a\n    action: echo\n    on_failure: skip\n    continue_on_error: true\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("both.yaml:7:24")
            && r.stderr
                .contains("both `on_failure` and `continue_on_error`"),
        "{}",
        r.stderr
    );
}
