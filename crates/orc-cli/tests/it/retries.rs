//! Which failures a step retries, and the attempts each layer made, through the real
//! binary: a step retries only what a retry can help, model calls are retried by the
//! model layer alone, and the result document counts both. Also: `evaluate_condition`
//! binds values like `condition:` does, and a budget's output bound is part of the
//! model cache's key.

use orc_fake_provider::{Behaviour, Endpoint};
use serde_json::Value;

use crate::models::{Fake, KEY_VAR, orc};
use crate::support::Sandbox;

/// One priced model, `steady`, on the fake provider.
fn config(fake: &Fake, sb: &Sandbox) {
    let base = fake.provider().openai_base_url();
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: steady\n    provider: openai\n    model: fake-steady\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 0.001, output_per_1k: 0.001 }}\n"
        ),
    );
}

/// A pipeline of one model step `ask` with `max_retries: 3` and this prompt.
fn ask(sb: &Sandbox, prompt: &str, extra: &str) -> String {
    sb.file(
        "ask.yaml",
        &format!(
            "name: ask\nsteps:\n  - id: ask\n    action: generate\n    model: steady\n    max_retries: 3\n{extra}    parameters: {{ prompt: \"{prompt}\" }}\n"
        ),
    )
    .display()
    .to_string()
}

fn chat_requests(fake: &Fake) -> u64 {
    fake.provider()
        .stats()
        .requests_to(Endpoint::ChatCompletions)
}

#[test]
fn a_model_step_refused_with_a_400_is_attempted_once() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb);
    let pipeline = ask(&sb, "[[fake:status=400]] refuse me", "");
    let r = orc(&sb, &["run", &pipeline]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let step = &r.doc()["steps"]["ask"];
    assert_eq!(step["status"], "failed", "{step}");
    assert!(step["error"].as_str().unwrap().contains("400"), "{step}");
    assert_eq!(step["retries"], 0, "{step}");
    assert_eq!(step["attempts"]["step"], 1, "{step}");
    assert_eq!(step["attempts"]["model"], 1, "{step}");
    assert_eq!(chat_requests(&fake), 1, "a 400 is sent once");
}

#[test]
fn a_budget_refusal_is_not_retried() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb);
    let pipeline = ask(&sb, "a question", "");
    let started = std::time::Instant::now();
    let r = orc(&sb, &["run", &pipeline, "--budget", "0.000001"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let step = &r.doc()["steps"]["ask"];
    assert!(
        step["error"].as_str().unwrap().contains("budget exhausted"),
        "{step}"
    );
    assert_eq!(step["retries"], 0, "{step}");
    assert_eq!(step["attempts"]["step"], 1, "{step}");
    assert_eq!(step["attempts"]["model"], 0, "{step}");
    assert_eq!(fake.provider().stats().total_requests, 0);
    // Three back-offs would have taken at least 0.25 + 0.5 + 1 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_rate_limited_model_call_is_retried_by_the_model_layer_only() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb);
    let pipeline = ask(
        &sb,
        "[[fake:status=429,retry_after=1,fail_times=1]] try again",
        "",
    );
    let started = std::time::Instant::now();
    let r = orc(&sb, &["run", &pipeline]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After is honoured"
    );
    let step = &r.doc()["steps"]["ask"];
    assert_eq!(step["status"], "completed", "{step}");
    assert_eq!(step["retries"], 0, "{step}");
    assert_eq!(step["attempts"]["step"], 1, "{step}");
    assert_eq!(step["attempts"]["model"], 2, "{step}");
    assert_eq!(chat_requests(&fake), 2);
}

#[test]
fn a_model_step_that_hits_its_timeout_is_retried_by_the_step() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb);
    let pipeline = ask(
        &sb,
        "[[fake:delay_ms=3000]] too slow",
        "    timeout: 0.3\n    on_failure: continue\n",
    );
    let pipeline = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("max_retries: 3", "max_retries: 1");
    let pipeline = sb.file("slow.yaml", &pipeline);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    let step = &r.doc()["steps"]["ask"];
    assert_eq!(step["error_type"], "Timeout", "{step}");
    assert_eq!(step["retries"], 1, "{step}");
    assert_eq!(step["attempts"]["step"], 2, "{step}");
    assert_eq!(step["attempts"]["model"], 2, "{step}");
}

#[test]
fn a_flaky_command_is_retried_and_a_missing_file_is_not() {
    let sb = Sandbox::new();
    let pipeline = sb.file(
        "flaky.yaml",
        "name: flaky\nsteps:\n  - id: flaky\n    tool: terminal\n    action: execute\n    max_retries: 3\n    parameters: { command: 'n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; test $n -ge 3' }\n  - id: missing\n    tool: filesystem\n    action: read\n    max_retries: 3\n    on_failure: continue\n    parameters: { path: nope.txt }\n  - id: unstartable\n    tool: terminal\n    action: execute\n    max_retries: 3\n    on_failure: continue\n    parameters: { command: 'true', working_dir: ./no-such-dir }\n",
    );
    let r = sb.orc(&["run", pipeline.to_str().unwrap()]);
    let doc = r.doc();
    let flaky = &doc["steps"]["flaky"];
    assert_eq!(flaky["status"], "completed", "{flaky}");
    assert_eq!(flaky["retries"], 2, "{flaky}");
    assert_eq!(flaky["attempts"]["step"], 3, "{flaky}");
    assert!(
        flaky["attempts"].get("model").is_none(),
        "no model layer for a tool: {flaky}"
    );
    assert_eq!(sb.read("count").trim(), "3");
    for id in ["missing", "unstartable"] {
        let step = &doc["steps"][id];
        assert_eq!(step["status"], "failed", "{step}");
        assert_eq!(step["retries"], 0, "{step}");
        assert_eq!(step["attempts"]["step"], 1, "{step}");
    }
}

const GUARD: &str = "name: guard\nparameters:\n  role: { type: string, default: guest }\nsteps:\n  - id: check\n    action: evaluate_condition\n    parameters: { condition: \"role == 'admin'\" }\n  - id: templated\n    action: evaluate_condition\n    parameters: { condition: \"{{ role == 'admin' }}\" }\n  - id: pasted\n    action: evaluate_condition\n    on_failure: continue\n    parameters: { condition: \"'{{ role }}' == 'admin'\" }\n  - id: secret\n    action: echo\n    condition: \"{{ check.result.result }}\"\n    parameters: { message: admin only }\n  - id: secret_too\n    action: echo\n    condition: \"{{ pasted.result.result }}\"\n    parameters: { message: admin only }\n    dependencies: [pasted]\n";

#[test]
fn evaluate_condition_binds_values_and_never_runs_injected_logic() {
    let sb = Sandbox::new();
    let pipeline = sb.file("guard.yaml", GUARD);
    let run = |role: &str| {
        let r = sb.orc(&[
            "run",
            pipeline.to_str().unwrap(),
            "-i",
            &format!("role={role}"),
        ]);
        assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
        r.doc()
    };
    let doc = run("x' == 'x' or 'a");
    assert_eq!(doc["steps"]["check"]["value"]["result"]["result"], false);
    assert_eq!(
        doc["steps"]["templated"]["value"]["result"]["result"],
        false
    );
    let pasted = &doc["steps"]["pasted"];
    assert_eq!(pasted["status"], "failed", "{pasted}");
    assert!(
        pasted["error"]
            .as_str()
            .unwrap()
            .contains("neither true nor false"),
        "{pasted}"
    );
    for guarded in ["secret", "secret_too"] {
        assert_ne!(
            doc["steps"][guarded]["status"], "completed",
            "{guarded} ran on an injected condition: {}",
            doc["steps"][guarded]
        );
    }

    let doc = run("admin");
    assert_eq!(doc["steps"]["check"]["value"]["result"]["result"], true);
    assert_eq!(
        doc["steps"]["check"]["value"]["result"]["evaluator_type"],
        "expression"
    );
    assert_eq!(doc["steps"]["templated"]["value"]["result"]["result"], true);
    let secret = &doc["steps"]["secret"];
    assert_eq!(secret["status"], "completed", "{secret}");
    assert_eq!(secret["value"]["result"], "admin only");
}

/// A prompt the fake echoes back longer than the default output bound (4096 words).
fn long_prompt() -> String {
    "word ".repeat(4200).trim_end().to_owned()
}

fn answer_words(doc: &Value) -> usize {
    doc["steps"]["ask"]["value"]["result"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count()
}

#[test]
fn a_run_without_a_budget_is_never_served_an_answer_cut_at_the_budget_bound() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb);
    let pipeline = sb.file(
        "long.yaml",
        &format!(
            "name: long\nsteps:\n  - id: ask\n    action: generate\n    model: steady\n    parameters: {{ prompt: \"{}\" }}\n",
            long_prompt()
        ),
    );
    let pipeline = pipeline.to_str().unwrap();
    let r = orc(&sb, &["run", pipeline, "--budget", "10"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(answer_words(&doc), 4096, "cut at the budget's bound");
    assert_eq!(doc["steps"]["ask"]["cached"], false);

    let r = orc(&sb, &["run", pipeline]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(
        doc["steps"]["ask"]["cached"], false,
        "{}",
        doc["steps"]["ask"]
    );
    assert_eq!(answer_words(&doc), 4201, "`echo:` and every word");

    // Each answer stays cached under the request it was sent as.
    for (args, words) in [(vec!["--budget", "10"], 4096), (vec![], 4201)] {
        let mut all = vec!["run", pipeline];
        all.extend(args);
        let r = orc(&sb, &all);
        let doc = r.doc();
        assert_eq!(doc["steps"]["ask"]["cached"], true);
        assert_eq!(answer_words(&doc), words);
    }
    assert_eq!(chat_requests(&fake), 2);
}
