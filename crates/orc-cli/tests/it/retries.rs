//! Through the real binary: `evaluate_condition` binds values like `condition:` does,
//! and a budget's output bound is part of the model cache's key.

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

fn chat_requests(fake: &Fake) -> u64 {
    fake.provider()
        .stats()
        .requests_to(Endpoint::ChatCompletions)
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
