//! The command line: arguments, exit codes, validate, config, and engine behaviour seen from outside.

use serde_json::json;

use crate::support::Sandbox;

const HELLO: &str = "name: t\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: \"hi {{ who }}\" }\nparameters:\n  who: world\noutputs:\n  said: \"{{ hi.result }}\"\n";

#[test]
fn bad_inputs_are_exit_two_and_run_nothing() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    for args in [
        vec!["run", p.to_str().unwrap(), "-i", "novalue"],
        vec!["run", p.to_str().unwrap(), "-i", "=x"],
        vec!["run", p.to_str().unwrap(), "-c", "missing.json"],
        vec!["run", "does-not-exist.yaml"],
        vec!["run"],
        vec!["frobnicate"],
    ] {
        let r = sb.orc(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} printed {}", r.stdout);
        assert!(!r.stderr.trim().is_empty());
    }
}

#[test]
fn inputs_are_json_when_they_parse_and_context_comes_first() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", "name: t\nparameters:\n  n: 1\n  who: x\nsteps:\n  - id: s\n    action: echo\n    parameters: { message: \"{{ n + 1 }} {{ who }}\" }\n");
    let ctx = sb.file("ctx.json", r#"{"who": "from-context", "n": 10}"#);
    let r = sb.orc(&[
        "run",
        p.to_str().unwrap(),
        "-c",
        ctx.to_str().unwrap(),
        "-i",
        "n=41",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["s"]["value"]["result"], "42 from-context");
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let sb = Sandbox::new();
    let p = sb.file(
        "bad.yaml",
        "name: t\nsteps:\n  - id: a\n    action: [echo\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("E001"), "{}", r.stderr);
    assert!(r.stderr.contains("bad.yaml:"), "{}", r.stderr);
}

#[test]
fn non_utf8_and_huge_files_are_refused() {
    let sb = Sandbox::new();
    let p = sb.path("latin1.yaml");
    std::fs::write(&p, b"name: caf\xe9\nsteps: []\n").unwrap();
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("UTF-8") && r.stderr.contains("latin1.yaml:1:"),
        "{}",
        r.stderr
    );
}

#[test]
fn validate_reports_every_error_and_run_agrees() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: a\n    tool: filesytem\n    action: read\n  - id: b\n    action: echo\n    dependencies: [c]\n  - id: b\n    action: echo\n",
    );
    let v = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(v.code, 2);
    for code in ["E008", "E006", "E004"] {
        assert!(v.stderr.contains(code), "{code} missing:\n{}", v.stderr);
    }
    assert!(
        v.stderr.contains("did you mean `filesystem`?"),
        "{}",
        v.stderr
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, v.stderr);
}

#[test]
fn validate_json_prints_plan_and_findings() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let r = sb.orc(&["validate", "--json", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["tasks"], json!({"hi": []}));
    assert!(doc["plan"]["steps"].is_array());
    let bad = sb.file("bad.yaml", "name: t\nsteps:\n  - id: a\n    action: nope\n");
    let r = sb.orc(&["validate", "--json", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["findings"][0]["code"], "E009");
    assert_eq!(doc["findings"][0]["line"], 4);
}

#[test]
fn output_file_gets_the_document() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let r = sb.orc(&[
        "run",
        p.to_str().unwrap(),
        "-o",
        "res/out.json",
        "-i",
        "who=you",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_str(&sb.read("res/out.json")).unwrap();
    assert_eq!(doc["outputs"]["said"], "hi you");
}

#[test]
fn compile_cache_is_used_and_survives_corruption() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let first = sb
        .command()
        .args(["-vv", "run", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&first.stderr).contains("cache_hit=false"));
    let second = sb
        .command()
        .args(["-vv", "run", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&second.stderr).contains("cache_hit=true"));
    let dir = sb.path("home/cache/plans");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    std::fs::write(&entries[0], b"{ not a plan").unwrap();
    let third = sb
        .command()
        .args(["-vv", "run", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(third.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&third.stderr).contains("cache_hit=false"));
    let rewritten = std::fs::read(&entries[0]).unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok());
}

#[test]
fn config_limits_concurrency() {
    let sb = Sandbox::new();
    let cfg = sb.file(
        "orc.yaml",
        "performance:\n  parallel_execution:\n    max_concurrent_tasks: 2\n",
    );
    let mut text = String::from("name: t\nsteps:\n");
    for i in 0..6 {
        text.push_str(&format!(
            "  - id: s{i}\n    tool: terminal\n    action: execute\n    parameters: {{ command: \"echo start $(date +%s%N) >> log{i}; sleep 0.3; echo end $(date +%s%N) >> log{i}\" }}\n"
        ));
    }
    let p = sb.file("p.yaml", &text);
    let r = sb.orc(&[
        "--config",
        cfg.to_str().unwrap(),
        "run",
        p.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut events = Vec::new();
    for i in 0..6 {
        for line in sb.read(&format!("log{i}")).lines() {
            let (kind, t) = line.split_once(' ').unwrap();
            events.push((t.parse::<u128>().unwrap(), kind == "start"));
        }
    }
    events.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, start) in events {
        now += if start { 1 } else { -1 };
        peak = peak.max(now);
    }
    assert_eq!(peak, 2, "at most two steps at once, and two did overlap");
}

#[test]
fn bad_config_is_exit_two_naming_the_key() {
    let sb = Sandbox::new();
    let cfg = sb.file(
        "c.yaml",
        "performance:\n  parallel_execution:\n    max_concurrent: 2\n",
    );
    let p = sb.file("p.yaml", HELLO);
    let r = sb.orc(&[
        "--config",
        cfg.to_str().unwrap(),
        "run",
        p.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("max_concurrent") && r.stderr.contains("c.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn step_timeout_fails_the_step_and_retries_count() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: { command: \"sleep 20\" }\n    timeout: 0.5\n    on_failure: continue\n  - id: flaky\n    tool: terminal\n    action: execute\n    parameters: { command: \"test -f marker || { touch marker; exit 1; }\" }\n    max_retries: 2\n",
    );
    let started = std::time::Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["slow"]["timed_out"], true);
    assert_eq!(doc["steps"]["slow"]["error_type"], "Timeout");
    assert_eq!(doc["steps"]["flaky"]["status"], "completed");
    assert_eq!(doc["steps"]["flaky"]["retries"], 1);
}

#[test]
fn default_policy_stops_the_run_and_still_prints_the_document() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: bad\n    tool: filesystem\n    action: read\n    parameters: { path: nope.txt }\n  - id: later\n    action: echo\n    parameters: { message: x }\n    dependencies: [bad]\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let doc = r.doc();
    assert_eq!(doc["steps"]["bad"]["error"], "File not found: nope.txt");
    assert_eq!(doc["steps"]["later"]["status"], "skipped");
    assert_eq!(doc["steps"]["later"]["reason"], "dependency_failed");
    assert!(doc["error"].as_str().unwrap().contains("bad"));
}

#[test]
fn skip_policy_and_failure_routing() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: a\n    tool: filesystem\n    action: read\n    parameters: { path: nope.txt }\n    on_failure: skip\n  - id: b\n    action: echo\n    parameters: { message: x }\n    dependencies: [a]\n  - id: c\n    action: echo\n    parameters: { message: y }\n    dependencies: [b]\n  - id: d\n    tool: filesystem\n    action: read\n    parameters: { path: nope.txt }\n    on_failure: recover\n  - id: e\n    action: echo\n    parameters: { message: z }\n    dependencies: [d]\n  - id: recover\n    action: echo\n    parameters: { message: recovered }\n    dependencies: [e]\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["b"]["reason"], "dependency_failed");
    assert_eq!(doc["steps"]["c"]["reason"], "dependency_failed");
    assert_eq!(doc["steps"]["e"]["reason"], "routed");
    assert_eq!(doc["steps"]["recover"]["status"], "completed");
}

#[test]
fn undefined_names_at_run_time_fail_the_step_and_write_nothing() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: r\n    action: echo\n    parameters: { message: hi }\n  - id: w\n    tool: filesystem\n    action: write\n    parameters: { path: out.txt, content: \"{{ r.result.nope }}\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let doc = r.doc();
    assert!(
        doc["steps"]["w"]["error"]
            .as_str()
            .unwrap()
            .contains("undefined value `r.result.nope`"),
        "{}",
        doc["steps"]["w"]
    );
    assert_eq!(doc["steps"]["w"]["error_type"], "TemplateError");
    assert!(!sb.path("out.txt").exists());
}

#[test]
fn conditions_bind_values_and_never_paste_them() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nparameters:\n  flag: \"no\"\nsteps:\n  - id: guarded\n    action: echo\n    parameters: { message: ran }\n    condition: \"flag == 'yes'\"\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", r#"flag=x" or "1"#]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["guarded"]["status"], "skipped");
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "flag=yes"]);
    assert_eq!(r.doc()["steps"]["guarded"]["status"], "completed");
}

#[test]
fn for_each_over_a_step_result_runs_beside_a_static_loop() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: list\n    tool: terminal\n    action: execute\n    parameters: { command: \"echo a,b,c\" }\n  - id: dynamic\n    for_each: \"{{ list.result.stdout.strip() }}\"\n    max_parallel: 3\n    steps:\n      - id: w\n        action: echo\n        parameters: { message: \"d-{{ item }}\" }\n  - id: static_loop\n    for_each: [1, 2]\n    steps:\n      - id: w\n        action: echo\n        parameters: { message: \"s-{{ item }}\" }\n  - id: after\n    action: echo\n    parameters: { message: \"{{ dynamic_2_w.result }} {{ static_loop_1_w.result }}\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    for id in [
        "dynamic_0_w",
        "dynamic_1_w",
        "dynamic_2_w",
        "static_loop_0_w",
        "static_loop_1_w",
    ] {
        assert_eq!(doc["steps"][id]["status"], "completed", "{id}");
    }
    assert_eq!(doc["steps"]["after"]["value"]["result"], "d-c s-2");
    assert_eq!(
        doc["steps"]["after"]["dependencies"],
        json!(["dynamic", "static_loop"])
    );
}

#[test]
fn data_tools_chain_through_templates() {
    let sb = Sandbox::new();
    sb.file("sales.csv", "region,amount\nnorth,10\nsouth,5\nnorth,7\n");
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: load\n    tool: filesystem\n    action: read\n    parameters: { path: sales.csv }\n  - id: totals\n    tool: data-processing\n    action: aggregate\n    parameters:\n      data: \"{{ load.result.content }}\"\n      group_by: region\n      aggregations: { total: \"sum:amount\", n: count }\n  - id: check\n    tool: validation\n    action: validate\n    parameters:\n      data: \"{{ totals.result.data | to_json }}\"\n      schema: { type: object, required: [region, total], properties: { total: { type: integer, minimum: 0 } } }\n  - id: bad\n    tool: data-processing\n    action: aggregate\n    parameters: { data: \"{{ load.result.content }}\", group_by: regoin }\n    on_failure: continue\n  - id: py\n    tool: python-executor\n    action: execute\n    parameters: { code: \"print(sum([{{ totals.result.data[0].total }}, 1]))\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(
        doc["steps"]["totals"]["value"]["result"]["data"],
        json!([{"region": "north", "total": 17, "n": 2}, {"region": "south", "total": 5, "n": 1}])
    );
    assert_eq!(doc["steps"]["check"]["value"]["result"]["valid"], true);
    assert_eq!(doc["steps"]["bad"]["status"], "failed");
    assert!(
        doc["steps"]["bad"]["error"]
            .as_str()
            .unwrap()
            .contains("regoin")
    );
    assert_eq!(doc["steps"]["py"]["value"]["result"]["stdout"], "18\n");
}

#[test]
fn while_loop_ends_on_until_reading_its_own_steps() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: poll\n    while: \"true\"\n    until: \"{{ check.result.stdout.strip() == 'ready' }}\"\n    max_iterations: 10\n    steps:\n      - id: check\n        tool: terminal\n        action: execute\n        parameters: { command: \"n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -ge 3 ]; then echo ready; else echo wait; fi\" }\n  - id: capped\n    while: \"{{ iteration >= 0 }}\"\n    max_iterations: 4\n    steps:\n      - id: t\n        action: echo\n        parameters: { message: \"{{ iteration }}\" }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let steps = doc["steps"].as_object().unwrap();
    assert!(steps.contains_key("poll_2_check") && !steps.contains_key("poll_3_check"));
    assert!(steps.contains_key("capped_3_t") && !steps.contains_key("capped_4_t"));
    assert_eq!(
        doc["steps"]["capped"]["value"]["result"],
        "Completed 4 iterations"
    );
}
