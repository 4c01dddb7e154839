//! Every pipeline in `tests/pipelines` (py-orc users' pipelines, unchanged), with the results its
//! README gives.

use serde_json::json;

use crate::support::{Sandbox, fixture_pipeline};

fn run(sb: &Sandbox, name: &str, extra: &[&str]) -> crate::support::Run {
    let pipeline = fixture_pipeline(name);
    let out = format!("out_dir={}", sb.out());
    let mut args = vec!["run", pipeline.to_str().unwrap(), "-i", &out];
    args.extend_from_slice(extra);
    sb.orc(&args)
}

#[test]
fn hello_writes_and_reads_back() {
    let sb = Sandbox::new();
    let r = run(&sb, "hello.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/greeting.txt"), "hello world");
    let doc = r.doc();
    assert_eq!(doc["outputs"], json!({"text": "hello world", "size": 11}));
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["success"], true);
    assert_eq!(
        doc["steps"]["read_back"]["value"]["result"]["content"],
        "hello world"
    );
    assert_eq!(
        doc["steps"]["read_back"]["dependencies"],
        json!(["write_greeting"])
    );
    assert_eq!(
        doc["execution_levels"],
        json!([["write_greeting"], ["read_back"]])
    );
    assert!(doc["execution_id"].as_str().unwrap().starts_with("hello_"));
}

#[test]
fn hello_takes_an_input() {
    let sb = Sandbox::new();
    let r = run(&sb, "hello.yaml", &["-i", "greeting=hi"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/greeting.txt"), "hi world");
}

#[test]
fn fanout_joins_through_templates_alone() {
    let sb = Sandbox::new();
    let r = run(&sb, "fanout.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/alpha.txt"), "alpha-value");
    assert_eq!(sb.read("out/beta.txt"), "beta-value");
    assert_eq!(sb.read("out/joined.txt"), "alpha-value+beta-value");
    let doc = r.doc();
    assert_eq!(
        doc["steps"]["join"]["dependencies"],
        json!(["read_alpha", "read_beta"])
    );
    // alpha and beta do not wait for each other: both are in the first level.
    assert_eq!(doc["execution_levels"][0], json!(["alpha", "beta"]));
    let order: Vec<&str> = doc["execution_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"join"));
}

#[test]
fn conditions_take_the_long_branch_by_default() {
    let sb = Sandbox::new();
    let r = run(&sb, "conditions.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/branch.txt"), "long");
    let doc = r.doc();
    assert_eq!(doc["steps"]["handle_short"]["status"], "skipped");
    assert_eq!(doc["steps"]["handle_long"]["status"], "completed");
    assert_eq!(doc["outputs"]["taken_branch"], "long");
}

#[test]
fn conditions_take_the_short_branch_for_short_content() {
    let sb = Sandbox::new();
    let r = run(&sb, "conditions.yaml", &["-i", "content=hi"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/branch.txt"), "short");
    let doc = r.doc();
    assert_eq!(doc["steps"]["check_size"]["status"], "skipped");
    assert_eq!(doc["steps"]["check_size"]["reason"], "condition_false");
    assert_eq!(doc["steps"]["handle_long"]["status"], "skipped");
    assert_eq!(doc["steps"]["handle_long"]["reason"], "routed");
    assert_eq!(doc["outputs"]["taken_branch"], "short");
}

#[test]
fn failure_continues_and_exits_one_with_the_document() {
    let sb = Sandbox::new();
    let r = run(&sb, "failure.yaml", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["success"], false);
    let step = &doc["steps"]["read_missing"];
    assert_eq!(step["status"], "failed");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("does-not-exist.txt"),
        "{step}"
    );
    assert_eq!(sb.read("out/before.txt"), "before");
    assert_eq!(sb.read("out/after.txt"), "after");
    assert!(r.stderr.contains("read_missing"), "{}", r.stderr);
}

#[test]
fn loops_expand_with_the_documented_ids() {
    let sb = Sandbox::new();
    let r = run(&sb, "loops.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("out/fruit-0.txt"), "APPLE");
    assert_eq!(sb.read("out/fruit-1.txt"), "BANANA");
    assert_eq!(sb.read("out/fruit-2.txt"), "CHERRY");
    let doc = r.doc();
    for i in 0..3 {
        assert_eq!(
            doc["steps"][format!("per_fruit_{i}_write")]["status"],
            "completed"
        );
    }
    let ticks: Vec<&String> = doc["steps"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("countdown_"))
        .collect();
    assert_eq!(
        ticks,
        ["countdown_0_tick", "countdown_1_tick", "countdown_2_tick"]
    );
    assert_eq!(
        doc["steps"]["countdown_2_tick"]["value"]["result"],
        "tick 2"
    );
    assert!(
        doc["outputs"]["first"]
            .as_str()
            .unwrap()
            .ends_with("fruit-0.txt")
    );
    // The loop finishes after its iterations, and countdown waits for it.
    let order: Vec<&str> = doc["execution_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let pos = |id: &str| order.iter().position(|o| *o == id).unwrap();
    assert!(pos("per_fruit") > pos("per_fruit_2_write"));
    assert!(pos("countdown_0_tick") > pos("per_fruit"));
}

#[test]
fn summarize_needs_a_model() {
    let sb = Sandbox::new();
    let r = run(&sb, "summarize.yaml", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("E016"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}
