//! Sub-pipelines (`pipeline-executor`) through the real binary: a file beside the caller and
//! inline YAML, inputs mapped from templates and inherited, outputs as the step's result, the
//! sub-pipeline's failure as the step's, cycles refused at validate, the depth limit, and a
//! killed run resumed without re-running a finished sub-pipeline or a sub-pipeline's finished
//! steps.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Sandbox;

const CHILD: &str = r#"id: child
name: child
parameters:
  name: { type: string }
  times: 1
steps:
  - id: greet
    action: echo
    parameters: { message: "hello {{ name }} x{{ times }}" }
outputs:
  greeting: "{{ greet.result }}"
  upper: "{{ greet.result | upper }}"
"#;

const PARENT: &str = r#"id: parent
name: parent
parameters:
  who: { type: string, default: ann }
steps:
  - id: sub
    tool: pipeline-executor
    action: execute
    parameters:
      pipeline: sub/child.yaml
      inputs:
        name: "{{ who }}"
        times: 2
  - id: use
    action: echo
    parameters: { message: "{{ sub.outputs.greeting }} / {{ sub.result.outputs.upper }}" }
outputs:
  said: "{{ use.result }}"
"#;

#[test]
fn a_sub_pipeline_file_runs_with_mapped_inputs_and_its_outputs_are_the_step_s_result() {
    let sb = Sandbox::new();
    // Run from the sandbox: `sub/child.yaml` is found beside the calling pipeline.
    sb.file("pipes/parent.yaml", PARENT);
    sb.file("pipes/sub/child.yaml", CHILD);
    let r = sb.orc(&["run", "pipes/parent.yaml", "--run-id", "p1", "-i", "who=bo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["said"], "hello bo x2 / HELLO BO X2");
    let step = &doc["steps"]["sub"];
    assert_eq!(step["status"], "completed");
    let result = &step["value"]["result"];
    assert_eq!(result["pipeline_id"], "child");
    assert_eq!(result["run_id"], "p1/sub");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["steps_executed"], 1);
    assert_eq!(result["recursion_depth"], 1);
    assert_eq!(
        result["outputs"],
        serde_json::json!({"greeting": "hello bo x2", "upper": "HELLO BO X2"})
    );
    assert_eq!(step["value"]["outputs"], result["outputs"]);

    // The sub-run is a run of its own in the store.
    let shown = sb.orc(&["runs", "show", "p1/sub"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let child: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(child["pipeline_id"], "child");
    assert_eq!(child["outputs"]["greeting"], "hello bo x2");

    // `orc validate` checks the sub-pipeline too: an invalid one is the caller's error, at
    // the calling step.
    sb.file(
        "pipes/sub/child.yaml",
        "id: child\nname: child\nsteps:\n  - id: greet\n    tool: terminal\n    action: shout\n",
    );
    let v = sb.orc(&["validate", "pipes/parent.yaml"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains("pipes/parent.yaml:6:5"), "{}", v.stderr);
    assert!(v.stderr.contains("is not valid"), "{}", v.stderr);
    assert!(v.stderr.contains("has no action `shout`"), "{}", v.stderr);
}

const INLINE: &str = r#"id: inline
name: inline
parameters:
  topic: owls
steps:
  - id: inner
    tool: pipeline-executor
    action: execute
    parameters:
      pipeline: |
        id: inner_sub
        name: inner_sub
        parameters:
          topic: { type: string, required: true }
          suffix: { type: string }
        steps:
          - id: shout
            action: echo
            parameters: { message: "{{ topic | upper }}{{ suffix }}" }
        outputs:
          loud: "{{ shout.result }}"
          quiet: "{{ topic }}"
      inputs: { suffix: "!" }
      output_mapping: { loud: headline }
      inherit_context: INHERIT
outputs:
  headline: "{{ inner.outputs.headline }}"
"#;

#[test]
fn an_inline_sub_pipeline_keeps_its_own_templates_and_inherits_the_parent_s_inputs() {
    let sb = Sandbox::new();
    sb.file("inline.yaml", &INLINE.replace("INHERIT", "true"));
    let r = sb.orc(&["run", "inline.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["headline"], "OWLS!");
    // Only the mapped outputs are kept, renamed.
    assert_eq!(
        doc["steps"]["inner"]["value"]["result"]["outputs"],
        serde_json::json!({"headline": "OWLS!"})
    );

    // Without `inherit_context`, the required `topic` is missing: the step fails and says so.
    sb.file("alone.yaml", &INLINE.replace("INHERIT", "false"));
    let r = sb.orc(&["run", "alone.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let error = r.doc()["steps"]["inner"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("topic"), "{error}");
}

const FAILING: &str = r#"id: failing
name: failing
steps:
  - id: ok
    tool: terminal
    action: execute
    parameters: { command: "echo ran >> side.txt" }
  - id: boom
    tool: terminal
    action: execute
    dependencies: [ok]
    parameters: { command: "exit 3" }
"#;

const CALLER: &str = r#"id: caller
name: caller
steps:
  - id: sub
    tool: pipeline-executor
    action: execute
    parameters:
      pipeline: failing.yaml
      error_handling: HANDLING
  - id: after
    action: echo
    dependencies: [sub]
    parameters: { message: "status {{ sub.result.status }}" }
outputs:
  after: "{{ after.result }}"
"#;

#[test]
fn a_failed_sub_pipeline_fails_its_step_unless_error_handling_says_continue() {
    let sb = Sandbox::new();
    sb.file("failing.yaml", FAILING);
    sb.file("fail.yaml", &CALLER.replace("HANDLING", "fail"));
    let r = sb.orc(&["run", "fail.yaml", "--run-id", "f1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    let step = &doc["steps"]["sub"];
    assert_eq!(step["status"], "failed");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.contains("sub-pipeline `failing` (run `f1/sub`) failed"),
        "{error}"
    );
    assert!(error.contains("step `boom` failed"), "{error}");
    assert_eq!(step["value"]["result"]["status"], "failed");
    assert_eq!(doc["steps"]["after"]["status"], "skipped");
    assert_eq!(doc["status"], "failed");

    // `continue`: the step succeeds with the failure in its result; its dependents run.
    sb.file("cont.yaml", &CALLER.replace("HANDLING", "continue"));
    let r = sb.orc(&["run", "cont.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["after"], "status failed");
    let result = &doc["steps"]["sub"]["value"]["result"];
    assert_eq!(result["continued"], true);
    assert!(
        result["error"].as_str().unwrap().contains("exit"),
        "{result}"
    );

    // `retry`: each attempt resumes the same sub-run, so its finished step runs once.
    sb.file(
        "retry.yaml",
        &CALLER.replace(
            "HANDLING",
            "retry\n      retry_count: 3\n      retry_delay: 0",
        ),
    );
    let before = sb.lines("side.txt").len();
    let r = sb.orc(&["run", "retry.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        sb.lines("side.txt").len(),
        before + 1,
        "three attempts, one run of the finished step"
    );
}

#[test]
fn sub_pipelines_that_call_each_other_are_refused_at_validate() {
    let sb = Sandbox::new();
    let call = |id: &str, target: &str| {
        format!(
            "id: {id}\nname: {id}\nsteps:\n  - id: before\n    action: echo\n    parameters: {{ message: hi }}\n  - id: call\n    tool: pipeline-executor\n    action: execute\n    parameters: {{ pipeline: {target} }}\n"
        )
    };
    sb.file("a.yaml", &call("a", "b.yaml"));
    sb.file("b.yaml", &call("b", "a.yaml"));
    let v = sb.orc(&["validate", "a.yaml"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains("E007"), "{}", v.stderr);
    assert!(v.stderr.contains("a.yaml:7:5"), "{}", v.stderr);
    assert!(v.stderr.contains("in a cycle: a.yaml → "), "{}", v.stderr);
    assert!(v.stderr.contains("b.yaml → "), "{}", v.stderr);
    // `orc run` refuses it the same way, before anything runs.
    let r = sb.orc(&["run", "a.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("E007"), "{}", r.stderr);
    let listed = sb.orc(&["runs", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn a_sub_pipeline_that_calls_itself_through_a_template_stops_at_the_depth_limit() {
    let sb = Sandbox::new();
    // The path is a template: no compile-time check can follow it, the run-time limit does.
    sb.file(
        "deep.yaml",
        "id: deep\nname: deep\nsteps:\n  - id: down\n    tool: pipeline-executor\n    action: execute\n    parameters: { pipeline: \"{{ pipeline_id }}.yaml\" }\n",
    );
    let r = sb.orc(&["run", "deep.yaml", "--run-id", "d"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let error = r.doc()["steps"]["down"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("nest more than 10 deep"), "{error}");
    let listed = sb.orc(&["runs", "list", "--json"]);
    let runs: Value = serde_json::from_str(&listed.stdout).unwrap();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 11, "the run and 10 nested sub-runs: {ids:?}");
    assert!(ids.contains(&"d/down/down/down/down/down/down/down/down/down/down"));
}

const OUTER: &str = r#"id: outer
name: outer
steps:
  - id: first
    tool: pipeline-executor
    action: execute
    parameters: { pipeline: child.yaml, inputs: { tag: one } }
  - id: second
    tool: pipeline-executor
    action: execute
    dependencies: [first]
    parameters: { pipeline: child.yaml, inputs: { tag: two } }
outputs:
  tags: "{{ first.outputs.tag }}+{{ second.outputs.tag }}"
"#;

const SLOW_CHILD: &str = r#"id: child
name: child
parameters:
  tag: { type: string }
steps:
  - id: mark
    tool: terminal
    action: execute
    parameters: { command: "echo {{ tag }}-mark >> log.txt" }
  - id: slow
    tool: terminal
    action: execute
    dependencies: [mark]
    parameters: { command: "sleep 2; echo {{ tag }}-slow >> log.txt" }
outputs:
  tag: "{{ tag }}"
"#;

#[test]
fn a_killed_run_resumes_without_re_running_a_finished_sub_pipeline_or_its_finished_steps() {
    let sb = Sandbox::new();
    sb.file("outer.yaml", OUTER);
    sb.file("child.yaml", SLOW_CHILD);
    let mut child = sb
        .command()
        .args(["run", "outer.yaml", "--run-id", "k1", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while the second sub-pipeline's `slow` runs.
    let started = Instant::now();
    while sb.lines("log.txt") != ["one-mark", "one-slow", "two-mark"] {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run never got there: {:?}",
            sb.lines("log.txt")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        sb.lines("log.txt"),
        ["one-mark", "one-slow", "two-mark"],
        "the killed step's process died with orc"
    );

    let resumed = sb.resume_killed("k1");
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.doc()["outputs"]["tags"], "one+two");
    assert_eq!(
        sb.lines("log.txt"),
        ["one-mark", "one-slow", "two-mark", "two-slow"],
        "every side effect exactly once"
    );
    let second = sb.orc(&["runs", "show", "k1/second"]);
    let second: Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(second["status"], "completed");
}
