//! Every pipeline in the repository's `examples/`, run as the README and the files' own
//! comments say, from the repository's root.

use std::path::{Path, PathBuf};

use orc_fake_provider::Behaviour;
use serde_json::Value;

use crate::support::{Run, Sandbox};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `orc ARGS` from the repository's root, with the sandbox's ORC_HOME.
fn orc(sb: &Sandbox, args: &[&str]) -> Run {
    sb.command()
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn run(sb: &Sandbox, example: &str, extra: &[&str]) -> (Run, Value) {
    let out = format!("out_dir={}", sb.out());
    let mut args = vec!["run", example, "-i", &out];
    args.extend_from_slice(extra);
    let r = orc(sb, &args);
    let doc = r.doc();
    (r, doc)
}

#[test]
fn every_example_is_tested_here() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .chain(std::fs::read_dir(root().join("examples/models")).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "orc.yaml")
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "conditions.yaml",
            "data-processing.yaml",
            "durable.yaml",
            "failure-policies.yaml",
            "hello.yaml",
            "loops.yaml",
            "summarize.yaml"
        ]
    );
}

#[test]
fn hello() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/hello.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/greeting.txt"), "hello world");
    assert_eq!(doc["outputs"]["text"], "hello world");
}

#[test]
fn loops() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/loops.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (i, fruit) in ["APPLE", "BANANA", "CHERRY"].iter().enumerate() {
        assert_eq!(sb.read(&format!("out/fruit-{i}.txt")), *fruit);
    }
    // `until` stops the while loop after the iteration that said `tick 2`.
    assert_eq!(
        doc["steps"]["countdown_2_tick"]["value"]["result"],
        "tick 2"
    );
    assert!(doc["steps"].get("countdown_3_tick").is_none(), "{doc}");
    assert_eq!(doc["outputs"]["files"], 3);
}

#[test]
fn conditions() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/conditions.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(doc["outputs"]["taken_branch"], "long");
    assert_eq!(doc["steps"]["handle_short"]["reason"], "routed");
    assert_eq!(doc["steps"]["shout"]["status"], "completed");
    let (r, doc) = run(&sb, "examples/conditions.yaml", &["-i", "content=hi"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(doc["outputs"]["taken_branch"], "short");
    assert_eq!(doc["steps"]["check_size"]["reason"], "condition_false");
    assert_eq!(doc["steps"]["shout"]["reason"], "condition_false");
}

#[test]
fn failure_policies() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/failure-policies.yaml", &[]);
    assert_eq!(r.code, 1, "a step failed: {}", r.stderr);
    assert_eq!(doc["steps"]["flaky"]["status"], "completed");
    assert_eq!(doc["steps"]["flaky"]["retries"], 1);
    assert_eq!(doc["steps"]["optional_read"]["status"], "failed");
    assert_eq!(sb.read("out/report.txt"), "flaky said ok");
    assert_eq!(doc["steps"]["fetch_extra"]["status"], "failed");
    assert_eq!(doc["steps"]["use_extra"]["status"], "skipped");
    assert_eq!(doc["steps"]["use_extra"]["reason"], "dependency_failed");
}

#[test]
fn durable_run_resumes_without_redoing_finished_steps() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/durable.yaml", &["--run-id", "demo-1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(doc["steps"]["publish"]["status"], "failed");
    sb.file("out/go", "");
    let r = orc(&sb, &["resume", "demo-1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["outputs"]["answer"], 42);
    assert_eq!(sb.read("out/published.txt"), "published 42\n");
    assert_eq!(sb.read("out/expensive.log"), "computed\n", "ran once");
}

#[test]
fn data_processing() {
    let sb = Sandbox::new();
    let (r, doc) = run(&sb, "examples/data-processing.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        sb.read("out/totals.csv"),
        "region,units,products\nnorth,17,2\nsouth,7,2\neast,17,2\n"
    );
    assert_eq!(doc["outputs"]["regions"], 3);
    assert_eq!(doc["outputs"]["valid"], true);
}

#[test]
fn models_summarize_against_a_local_openai_compatible_server() {
    let fake = crate::models::Fake::start_open(Behaviour::default());
    let sb = Sandbox::new();
    // The example's own config, pointed at this test's server instead of port 8089.
    let text = std::fs::read_to_string(root().join("examples/models/orc.yaml")).unwrap();
    assert!(text.contains("http://127.0.0.1:8089/v1"));
    let config = sb.file(
        "orc.yaml",
        &text.replace(
            "http://127.0.0.1:8089/v1",
            &fake.provider().openai_base_url(),
        ),
    );
    let out = format!("out_dir={}", sb.out());
    let r = orc(
        &sb,
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "examples/models/summarize.yaml",
            "-i",
            &out,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let summary = sb.read("out/summary.md");
    assert!(summary.starts_with("# "), "{summary}");
    assert!(summary.lines().count() >= 3, "{summary}");
    assert_eq!(doc["steps"]["summary"]["model"], "local");
    assert!(doc["usage"]["output_tokens"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(fake.provider().stats().total_requests, 2);
}
