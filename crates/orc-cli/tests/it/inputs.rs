//! Inputs and the values a user can hand orc: undeclared inputs, caller values that are data
//! and never templates, timeouts and format widths out of range, YAML alias bombs, and the
//! compiler's suggestions for a mistyped step id.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Sandbox;

const WRITE: &str = "name: w\nparameters:\n  out_dir: ./out\n  text: hello\nsteps:\n  - id: write\n    tool: filesystem\n    action: write\n    parameters: { path: \"{{ out_dir }}/f.txt\", content: \"{{ text }}\" }\n";

fn runs(sb: &Sandbox) -> Vec<Value> {
    let r = sb.orc(&["runs", "list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<Value>(&r.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_undeclared_input_is_exit_two_naming_the_closest_and_runs_nothing() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", WRITE);
    let elsewhere = sb.path("elsewhere");
    let r = sb.orc(&[
        "run",
        p.to_str().unwrap(),
        "-i",
        &format!("out_dirr={}", elsewhere.display()),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("`out_dirr` (did you mean `out_dir`?)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("extra_inputs: true"), "{}", r.stderr);
    assert!(!sb.path("out").exists(), "the run wrote into ./out");
    assert!(!elsewhere.exists());
    assert!(runs(&sb).is_empty(), "a run was recorded");

    // The same from a context file.
    let ctx = sb.file("ctx.json", r#"{"txet": "x"}"#);
    let r = sb.orc(&["run", p.to_str().unwrap(), "-c", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`txet` (did you mean `text`?)"),
        "{}",
        r.stderr
    );
    assert!(!sb.path("out").exists());
}

#[test]
fn a_pipeline_with_extra_inputs_takes_any_input_as_data() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: x\nextra_inputs: true\nsteps:\n  - id: s\n    action: echo\n    parameters: { message: \"{{ inputs.get('note', 'none') }}\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "note={{ 7*7 }}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["s"]["value"]["result"], "{{ 7*7 }}");
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["s"]["value"]["result"], "none");
    let bad = sb.file(
        "bad.yaml",
        "name: x\nextra_inputs: yes\nsteps:\n  - id: s\n    action: echo\n",
    );
    let r = sb.orc(&["validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.yaml:2:15"), "{}", r.stderr);
}

#[test]
fn caller_values_are_written_literally_never_rendered() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", WRITE);
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "text={{ 7*7 }}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/f.txt"), "{{ 7*7 }}");

    // From a context file too, with a filter call that would probe the disk.
    let ctx = sb.file(
        "ctx.json",
        r#"{"text": "{{ '/etc/passwd' | file_exists }}"}"#,
    );
    let r = sb.orc(&["run", p.to_str().unwrap(), "-c", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/f.txt"), "{{ '/etc/passwd' | file_exists }}");

    // And a run id is data where a template shows it.
    let q = sb.file(
        "q.yaml",
        "name: q\nsteps:\n  - id: s\n    action: echo\n    parameters: { message: \"{{ execution.id }}\" }\n",
    );
    let r = sb.orc(&["run", q.to_str().unwrap(), "--run-id", "{{ 7*7 }}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["s"]["value"]["result"], "{{ 7*7 }}");
}

#[test]
fn a_default_template_over_a_caller_input_gets_it_as_data() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: d\nparameters:\n  file: \"{{ dir }}/f.txt\"\n  dir: \"{{ base }}/sub\"\n  base: ./out\nsteps:\n  - id: write\n    tool: filesystem\n    action: write\n    parameters: { path: \"{{ file }}\", content: \"{{ dir }}\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/sub/f.txt"), "./out/sub");

    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "base=b{{ 7*7 }}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("b{{ 7*7 }}/sub/f.txt"), "b{{ 7*7 }}/sub");
}

#[test]
fn a_literal_timeout_out_of_range_is_exit_two_at_its_place() {
    let sb = Sandbox::new();
    let step = sb.file(
        "step.yaml",
        "name: t\nsteps:\n  - id: a\n    action: echo\n    timeout: 1e20\n",
    );
    let param = sb.file(
        "param.yaml",
        "name: t\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: \"echo hi\", timeout: 1e20 }\n",
    );
    for (p, at) in [(&step, "step.yaml:5:14"), (&param, "param.yaml:6:48")] {
        for cmd in ["validate", "run"] {
            let r = sb.orc(&[cmd, p.to_str().unwrap()]);
            assert_eq!(r.code, 2, "{cmd} {}: {}", p.display(), r.stderr);
            assert!(
                r.stderr.contains("E014") && r.stderr.contains(at),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains("at most 31536000"), "{}", r.stderr);
        }
    }
}

#[test]
fn a_timeout_from_an_input_out_of_range_fails_the_step_cleanly() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nparameters:\n  t: 5\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: \"echo hi\", timeout: \"{{ t }}\" }\n    on_failure: continue\n  - id: b\n    action: echo\n    parameters: { message: after }\n    dependencies: [a]\n",
    );
    for t in ["1e20", "-1", "\"nan\"", "\"inf\""] {
        let r = sb.orc(&["run", p.to_str().unwrap(), "-i", &format!("t={t}")]);
        assert_eq!(r.code, 1, "t={t}: {}", r.stderr);
        let doc = r.doc();
        assert_eq!(doc["steps"]["a"]["status"], "failed", "t={t}");
        let error = doc["steps"]["a"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("timeout"), "t={t}: {error}");
        assert_eq!(doc["steps"]["b"]["status"], "completed", "t={t}");
    }
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_format_bomb_from_an_input_fails_its_step_quickly() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: f\nparameters:\n  f: \"%d\"\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: \"{{ f | format(1) }}\" }\n    on_failure: continue\n",
    );
    let started = Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "f=%01500000000d"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["a"]["status"], "failed");
    let error = doc["steps"]["a"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("at most 10000"), "{error}");
}

#[test]
fn an_alias_bomb_is_refused_quickly_at_its_place() {
    // About 100 KB: a 100 KB string, then lists of ten aliases of the list before.
    let mut text = format!("s0: &s0 \"{}\"\n", "x".repeat(100_000));
    for i in 1..8 {
        let refs = vec![format!("*s{}", i - 1); 10].join(", ");
        text.push_str(&format!("s{i}: &s{i} [{refs}]\n"));
    }
    text.push_str("name: bomb\nsteps:\n  - id: a\n    action: echo\n");
    let sb = Sandbox::new();
    let p = sb.file("bomb.yaml", &text);
    let started = Instant::now();
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("16 MiB") && r.stderr.contains("bomb.yaml:4:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_mistyped_step_id_is_suggested_and_pointed_at() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: greet\n    action: echo\n  - id: show\n    action: echo\n    parameters: { message: \"said: {{ gret.result }}\" }\n  - id: after\n    action: echo\n    dependencies: \"greet, shwo\"\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("E011") && r.stderr.contains("did you mean `greet`?"),
        "{}",
        r.stderr
    );
    // The caret is under `gret` (column 38), not at the string's opening quote.
    assert!(r.stderr.contains("p.yaml:7:38"), "{}", r.stderr);
    assert!(
        r.stderr.contains("E006") && r.stderr.contains("did you mean `show`?"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("p.yaml:10:27"), "{}", r.stderr);
}
