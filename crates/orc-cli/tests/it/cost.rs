//! Routing and cost control through the real binary: `orc plan`, budgets, fallbacks recorded
//! in the result document, and the bad settings that stop orc before anything runs.

use orc_fake_provider::{Behaviour, Endpoint, ModelBehaviour};
use serde_json::Value;

use crate::models::{Fake, KEY_VAR, orc};
use crate::support::Sandbox;

/// Three priced models on the fake provider; `flaky` always answers 500.
fn config(fake: &Fake, sb: &Sandbox, extra: &str) -> std::path::PathBuf {
    let base = fake.provider().openai_base_url();
    let model = |name: &str, price: f64, size: &str| {
        format!(
            "  - name: {name}\n    provider: openai\n    model: fake-{name}\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    size: {size}\n    cost: {{ input_per_1k: {price}, output_per_1k: {price} }}\n"
        )
    };
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n{}{}{}{extra}",
            model("flaky", 0.1, "7b"),
            model("steady", 1.0, "8b"),
            model("large", 10.0, "70b"),
        ),
    )
}

fn behaviour() -> Behaviour {
    Behaviour::default().with_model(
        "fake-flaky",
        ModelBehaviour {
            failure_rate: 1.0,
            ..ModelBehaviour::default()
        },
    )
}

const ROUTED: &str = "name: routed\nsteps:\n  - id: short\n    action: generate\n    parameters: { prompt: 'Say hi', max_tokens: 20 }\n  - id: named\n    action: generate\n    model: steady\n    parameters: { prompt: 'Name three rivers', max_tokens: 50 }\n";

#[test]
fn plan_shows_models_tokens_cost_and_cache_without_calling() {
    let fake = Fake::start(behaviour());
    let sb = Sandbox::new();
    config(&fake, &sb, "");
    let pipeline = sb.file("routed.yaml", ROUTED);
    let plan = |sb: &Sandbox| {
        let r = orc(sb, &["plan", pipeline.to_str().unwrap(), "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str::<Value>(&r.stdout).unwrap()
    };
    let before = plan(&sb);
    assert_eq!(
        fake.provider().stats().total_requests,
        0,
        "plan calls nothing"
    );
    let steps = before["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    let named = steps.iter().find(|s| s["step"] == "named").unwrap();
    assert_eq!(named["model"], "steady");
    assert_eq!(named["chosen_by"], "named");
    assert_eq!(named["max_output_tokens"], 50);
    assert!(named["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(named["cached"], false);
    assert!(named["worst_case_usd"].as_f64().unwrap() > 0.0);
    let short = steps.iter().find(|s| s["step"] == "short").unwrap();
    assert!(
        short["chosen_by"].as_str().unwrap().starts_with("router: "),
        "{short}"
    );
    assert!(before["totals"]["expected_usd"].as_f64().unwrap() > 0.0);

    // After a run, the answers are cached: the plan says so and expects to pay nothing.
    let run = orc(&sb, &["run", pipeline.to_str().unwrap(), "-q"]);
    let requests = fake.provider().stats().total_requests;
    let after = plan(&sb);
    assert_eq!(fake.provider().stats().total_requests, requests);
    let named = after["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "named")
        .unwrap();
    assert_eq!(named["cached"], true, "{}", run.stderr);
}

#[test]
fn a_fallback_is_taken_and_recorded() {
    let fake = Fake::start(behaviour());
    let sb = Sandbox::new();
    config(&fake, &sb, "routing:\n  fallbacks: { flaky: [steady] }\n");
    let pipeline = sb.file(
        "fallback.yaml",
        "name: fallback\nsteps:\n  - id: ask\n    action: generate\n    model: flaky\n    parameters: { prompt: 'What is 2 + 2?' }\n",
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap(), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let step = &r.doc()["steps"]["ask"];
    assert_eq!(step["model"], "steady", "{step}");
    assert_eq!(step["value"]["model_used"], "steady");
    let fallback = &step["model_choice"]["fallbacks"][0];
    assert_eq!(fallback["from"], "flaky");
    assert_eq!(fallback["to"], "steady");
    assert!(
        fallback["reason"].as_str().unwrap().contains("500"),
        "{fallback}"
    );
    assert!(fake.provider().stats().requests_for("fake-flaky") >= 1);
    assert_eq!(fake.provider().stats().requests_for("fake-steady"), 1);
}

#[test]
fn a_run_budget_is_never_overrun() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb, "");
    // Twelve independent calls of at most ~100 tokens each on `steady` ($1 per 1k tokens):
    // a worst case of about $0.12 each; a budget of $0.35 pays for two at a time, and their
    // real cost is far smaller, so later calls fit once earlier ones settle. Each step goes on
    // after a failure, so every one is tried.
    let mut text = String::from("name: spend\nsteps:\n");
    for i in 0..12 {
        text.push_str(&format!(
            "  - id: s{i}\n    action: generate\n    model: steady\n    on_failure: continue\n    parameters: {{ prompt: 'question number {i}', max_tokens: 100 }}\n"
        ));
    }
    let pipeline = sb.file("spend.yaml", &text);
    let r = orc(
        &sb,
        &["run", pipeline.to_str().unwrap(), "--budget", "0.35"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert!(doc["cost"].as_f64().unwrap() <= 0.35, "{}", doc["cost"]);
    let steps = doc["steps"].as_object().unwrap();
    let done = steps
        .values()
        .filter(|s| s["status"] == "completed")
        .count();
    let refused: Vec<&Value> = steps.values().filter(|s| s["status"] == "failed").collect();
    assert!(done >= 2, "{done} calls paid");
    assert_eq!(done + refused.len(), 12);
    assert!(!refused.is_empty(), "the budget ran out: {}", r.stdout);
    for s in refused {
        assert!(
            s["error"].as_str().unwrap().contains("budget exhausted"),
            "{s}"
        );
    }
    assert_eq!(
        fake.provider()
            .stats()
            .requests_to(Endpoint::ChatCompletions),
        done as u64,
        "refused calls never reach the provider"
    );
}

#[test]
fn a_pipeline_budget_caps_its_runs() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&fake, &sb, "");
    let mut text = String::from("name: capped\nbudget: 0.2\nsteps:\n");
    for i in 0..6 {
        text.push_str(&format!(
            "  - id: s{i}\n    action: generate\n    model: large\n    on_failure: continue\n    parameters: {{ prompt: 'question number {i}', max_tokens: 10 }}\n"
        ));
    }
    // `large` costs $10 per 1k tokens: a worst case of about $0.3 a call, above the budget.
    let pipeline = sb.file("capped.yaml", &text);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["cost"], 0.0);
    for s in doc["steps"].as_object().unwrap().values() {
        assert!(
            s["error"]
                .as_str()
                .unwrap_or_default()
                .contains("budget exhausted"),
            "{s}"
        );
    }
    assert_eq!(fake.provider().stats().total_requests, 0);

    let bad = sb.file("bad.yaml", &text.replace("budget: 0.2", "budget: -2"));
    let r = orc(&sb, &["run", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`budget` must be a number of US dollars"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_routing_and_budget_settings_are_exit_2_naming_the_key() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    let pipeline = sb.file("routed.yaml", ROUTED);
    for (extra, wanted) in [
        (
            "routing:\n  fallbacks: { flaky: [steady], steady: [flaky] }\n",
            "routing.fallbacks",
        ),
        (
            "routing:\n  fallbacks: { flaky: [nope] }\n",
            "routing.fallbacks.flaky[0]",
        ),
        (
            "routing:\n  complexity_threshold: 1.5\n",
            "routing.complexity_threshold",
        ),
        (
            "cost:\n  performance_threshold: -0.1\n",
            "cost.performance_threshold",
        ),
        ("cost:\n  budget_per_hour: -3\n", "cost.budget_per_hour"),
    ] {
        config(&fake, &sb, extra);
        let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(wanted), "{extra}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    config(&fake, &sb, "");
    let r = orc(&sb, &["run", pipeline.to_str().unwrap(), "--budget=-1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--budget"), "{}", r.stderr);
    // A model without a price cannot be budgeted, unless it is local.
    let base = fake.provider().openai_base_url();
    sb.file(
        "orc.yaml",
        &format!("models:\n  - name: free\n    provider: openai\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n"),
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap(), "--budget", "1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("models[0]"), "{}", r.stderr);
    assert_eq!(fake.provider().stats().total_requests, 0);
}

/// Two models alike but for their names; `strategy: performance`.
fn twins(sb: &Sandbox, base: &str) {
    let model = |name: &str| {
        format!(
            "  - name: {name}\n    provider: openai\n    model: fake-{name}\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    size: 8b\n    cost: {{ input_per_1k: 1.0, output_per_1k: 1.0 }}\n"
        )
    };
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n{}{}routing:\n  strategy: performance\n",
            model("a"),
            model("b")
        ),
    );
}

#[test]
fn the_router_learns_from_earlier_runs() {
    let sb = Sandbox::new();
    let routed = sb.file(
        "routed.yaml",
        "name: routed\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: 'Say hi', max_tokens: 10 }\n",
    );
    let choice = |sb: &Sandbox| {
        let r = orc(sb, &["plan", routed.to_str().unwrap(), "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let doc: Value = serde_json::from_str(&r.stdout).unwrap();
        doc["steps"][0]["model"].as_str().unwrap().to_owned()
    };
    // With no history, the router picks one of the twins; make that one the slow one.
    twins(&sb, "http://127.0.0.1:9/v1");
    let first = choice(&sb);
    let other = if first == "a" { "b" } else { "a" };
    let fake = Fake::start(Behaviour::default().with_model(
        format!("fake-{first}"),
        ModelBehaviour {
            latency: Some(std::time::Duration::from_millis(150)),
            ..ModelBehaviour::default()
        },
    ));
    twins(&sb, &fake.provider().openai_base_url());
    let mut text = String::from("name: warmup\nsteps:\n");
    for i in 0..6 {
        let model = if i % 2 == 0 { first.as_str() } else { other };
        text.push_str(&format!(
            "  - id: s{i}\n    action: generate\n    model: {model}\n    parameters: {{ prompt: 'warm-up {i}' }}\n"
        ));
    }
    let warmup = sb.file("warmup.yaml", &text);
    let r = orc(&sb, &["run", warmup.to_str().unwrap(), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A new process starts from the stored measurements: now the fast twin is chosen.
    assert_eq!(choice(&sb), other);
    let r = orc(&sb, &["run", routed.to_str().unwrap(), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["ask"]["model"], other);
}

#[test]
fn plan_knows_prompts_that_read_only_inputs_and_fails_on_steps_it_cannot_plan() {
    let fake = Fake::start(behaviour());
    let sb = Sandbox::new();
    config(&fake, &sb, "");
    let pipeline = sb.file(
        "topic.yaml",
        "name: topic\nparameters:\n  topic: { type: string, default: rivers }\nsteps:\n  - id: ask\n    action: generate\n    model: steady\n    parameters: { prompt: 'Name three {{ topic }}', max_tokens: 20 }\n",
    );
    let plan = |sb: &Sandbox, extra: &[&str]| {
        let mut args = vec!["plan", pipeline.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let r = orc(sb, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stdout.contains("-0.0"), "{}", r.stdout);
        serde_json::from_str::<Value>(&r.stdout).unwrap()
    };
    // The prompt reads only an input, so the request is known: not cached yet (not "unknown").
    assert_eq!(plan(&sb, &[])["steps"][0]["cached"], false);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap(), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = plan(&sb, &[]);
    assert_eq!(after["steps"][0]["cached"], true);
    assert_eq!(after["totals"]["expected_usd"].as_f64(), Some(0.0));
    // Another value for the input is another request.
    assert_eq!(
        plan(&sb, &["-i", "topic=lakes"])["steps"][0]["cached"],
        false
    );
    let text = orc(&sb, &["plan", pipeline.to_str().unwrap()]);
    assert!(
        text.stdout.contains("expected $0.000000"),
        "{}",
        text.stdout
    );

    // A step the router cannot serve would fail the run: the plan exits 1 and says why.
    let unplannable = sb.file(
        "unplannable.yaml",
        "name: u\nsteps:\n  - id: huge\n    action: generate\n    requires_model: { min_size: 500b }\n    parameters: { prompt: 'hi' }\n",
    );
    let r = orc(&sb, &["plan", unplannable.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("huge: generate: cannot plan:"),
        "{}",
        r.stdout
    );
}
