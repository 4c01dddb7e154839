//! `orc` with models: the real binary against the loopback fake provider (a real HTTP
//! server speaking the OpenAI and Anthropic protocols), with file, memory and Redis
//! response caches.

use std::path::PathBuf;

use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use serde_json::{Value, json};

use crate::support::{Sandbox, fixture_pipeline};

pub(crate) const KEY: &str = "sk-orc-cli-test-d41d8cd98f";
pub(crate) const KEY_VAR: &str = "ORC_CLI_TEST_API_KEY";

/// The fake provider, on a runtime of its own while the test runs `orc`.
pub(crate) struct Fake {
    fake: Option<FakeProvider>,
    runtime: tokio::runtime::Runtime,
}

impl Fake {
    pub(crate) fn start(behaviour: Behaviour) -> Fake {
        Fake::start_open(behaviour.with_api_key(KEY))
    }

    /// A server that asks for no key, as local servers (Ollama, llama.cpp) do.
    pub(crate) fn start_open(behaviour: Behaviour) -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fake = runtime.block_on(FakeProvider::start(behaviour)).unwrap();
        Fake {
            fake: Some(fake),
            runtime,
        }
    }

    pub(crate) fn provider(&self) -> &FakeProvider {
        self.fake.as_ref().unwrap()
    }

    fn requests(&self, endpoint: Endpoint) -> u64 {
        self.provider().stats().requests_to(endpoint)
    }

    /// A config with two models on this server and the given `performance:` section.
    fn config(&self, sb: &Sandbox, performance: &str) -> PathBuf {
        let base = self.provider().openai_base_url();
        let anthropic = self.provider().anthropic_base_url();
        sb.file(
            "orc.yaml",
            &format!(
                "models:\n  - name: fake-small\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 0.5, output_per_1k: 1.5 }}\n  - name: fake-claude\n    provider: anthropic\n    base_url: {anthropic}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 3.0, output_per_1k: 15.0 }}\n{performance}"
            ),
        )
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(fake) = self.fake.take() {
            self.runtime.block_on(fake.shutdown());
        }
    }
}

pub(crate) fn orc(sb: &Sandbox, args: &[&str]) -> crate::support::Run {
    sb.command()
        .env(KEY_VAR, KEY)
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn summarize(sb: &Sandbox) -> crate::support::Run {
    summarize_with(sb, sb.command().env(KEY_VAR, KEY))
}

/// `orc run` of the shared `summarize.yaml` on a small document, by `command`.
fn summarize_with(sb: &Sandbox, command: &mut std::process::Command) -> crate::support::Run {
    let source = sb.file("doc.txt", "Rust is a language. It is fast. It is safe.");
    let pipeline = fixture_pipeline("summarize.yaml");
    command
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "-i",
            &format!("source={}", source.display()),
            "-i",
            &format!("out_dir={}", sb.out()),
        ])
        .output()
        .unwrap()
        .into()
}

#[test]
fn summarize_runs_end_to_end_and_a_second_run_pays_nothing() {
    let fake =
        Fake::start(Behaviour::default().with_answer("five-word title", "Rust Is Fast And Safe"));
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let r = summarize(&sb);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["title"], "Rust Is Fast And Safe");
    let summary = &doc["steps"]["summary"];
    assert_eq!(summary["model"], "fake-small");
    assert_eq!(summary["provider"], "openai");
    assert_eq!(summary["cached"], false);
    assert_eq!(summary["value"]["model_used"], "fake-small");
    let text = summary["value"]["result"].as_str().unwrap();
    assert!(
        text.starts_with("echo: Summarize in three sentences"),
        "{text}"
    );
    let input = summary["usage"]["input_tokens"].as_u64().unwrap();
    let output = summary["usage"]["output_tokens"].as_u64().unwrap();
    assert!(input > 0 && output > 0);
    let cost = summary["cost"].as_f64().unwrap();
    let expected = (input as f64 * 0.5 + output as f64 * 1.5) / 1000.0;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    let total = doc["cost"].as_f64().unwrap();
    let steps_total = cost + doc["steps"]["title"]["cost"].as_f64().unwrap();
    assert!((total - steps_total).abs() < 1e-12);
    assert!(doc["usage"]["input_tokens"].as_u64().unwrap() > input);
    assert_eq!(
        sb.read("out/summary.md"),
        format!("# Rust Is Fast And Safe\n\n{text}\n")
    );
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);
    assert_eq!(
        model_metrics(&fake, &sb),
        2,
        "each upstream call is measured"
    );

    // The default cache is a file cache under ORC_HOME: the second run calls nothing.
    let r = summarize(&sb);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(
        fake.requests(Endpoint::ChatCompletions),
        2,
        "no upstream call"
    );
    assert_eq!(doc["steps"]["summary"]["cached"], true);
    assert_eq!(doc["steps"]["summary"]["cost"], 0.0);
    assert_eq!(doc["cost"], 0.0);
    assert_eq!(doc["outputs"]["title"], "Rust Is Fast And Safe");
    assert_eq!(
        model_metrics(&fake, &sb),
        2,
        "cached answers are not measured"
    );

    // `orc models stats` reads the same measurements.
    let stats = sb.orc(&["models", "stats", "--json", "--since", "1h"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    let small = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "fake-small")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(small["calls"], 2);
    assert_eq!(small["success_rate"], 1.0);
    assert!(small["latency_p50_ms"].as_f64().unwrap() > 0.0);
    assert!(
        (small["cost_usd"].as_f64().unwrap() - total).abs() < 1e-12,
        "{small}"
    );
}

/// The measurements of `fake-small`'s calls in the sandbox's state store.
fn model_metrics(fake: &Fake, sb: &Sandbox) -> usize {
    let url = format!("sqlite://{}", sb.path("home/state.db").display());
    let metrics = fake
        .runtime
        .block_on(async {
            let store = orc_state::Store::open(&url, orc_state::StateOptions::default()).await?;
            store
                .model_metrics("fake-small", std::time::UNIX_EPOCH, 100)
                .await
        })
        .unwrap();
    assert!(
        metrics
            .iter()
            .all(|m| m.success && m.input_tokens > 0 && m.provider == "openai" && m.cost > 0.0),
        "{metrics:?}"
    );
    metrics.len()
}

#[test]
fn models_are_chosen_by_name_requirements_and_the_pipeline_default() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: choose\nmodel: fake-claude\nsteps:\n  - id: default\n    action: generate\n    parameters: { prompt: one }\n  - id: named\n    action: generate\n    model: openai:fake-small\n    parameters: { prompt: two }\n  - id: param\n    action: generate_text\n    parameters: { prompt: three, model: fake-gpt }\n  - id: analyzed\n    action: analyze_text\n    parameters: { text: four }\n",
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["default"]["model"], "fake-claude");
    assert_eq!(doc["steps"]["default"]["provider"], "anthropic");
    assert_eq!(doc["steps"]["named"]["model"], "fake-small");
    assert_eq!(doc["steps"]["param"]["model"], "fake-small");
    assert_eq!(doc["steps"]["analyzed"]["model"], "fake-claude");
    assert_eq!(fake.requests(Endpoint::Messages), 2);
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);
}

#[test]
fn a_missing_key_is_exit_2_naming_the_variable_before_anything_runs() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: k\nsteps:\n  - id: first\n    tool: filesystem\n    action: write\n    parameters: { path: out/first.txt, content: x }\n  - id: ask\n    action: generate\n    model: fake-small\n    parameters: { prompt: hi }\n",
    );
    let r: crate::support::Run = sb
        .command()
        .env_remove(KEY_VAR)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(KEY_VAR), "{}", r.stderr);
    assert!(!sb.path("out/first.txt").exists(), "nothing ran");
    assert_eq!(fake.provider().stats().total_requests, 0);
}

#[test]
fn bad_model_names_and_cache_settings_are_exit_2_naming_the_field() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: k\nsteps:\n  - id: ask\n    action: generate\n    model: fake-smal\n    parameters: { prompt: hi }\n",
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("fake-smal") && r.stderr.contains("fake-small"),
        "{}",
        r.stderr
    );

    let ok = sb.file(
        "ok.yaml",
        "name: k\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: hi }\n",
    );
    for (performance, field) in [
        (
            "performance:\n  caching:\n    model_cache: { backend: memcached }\n",
            "backend",
        ),
        (
            "performance:\n  caching:\n    model_cache: { backend: redis, url: \"http://x\" }\n",
            "url",
        ),
    ] {
        fake.config(&sb, performance);
        let r = orc(&sb, &["run", ok.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{performance}: {}", r.stderr);
        assert!(
            r.stderr.to_lowercase().contains(field),
            "{performance}: {}",
            r.stderr
        );
    }
    sb.file("orc.yaml", "models:\n  - name: x\n    provider: cohere\n");
    let r = orc(&sb, &["run", ok.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cohere"), "{}", r.stderr);
    assert_eq!(fake.provider().stats().total_requests, 0);
}

#[test]
fn garbage_fails_the_step_clearly_and_is_not_cached() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: g\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: \"[[fake:garbage]] hi\" }\n",
    );
    for round in 1..=2 {
        let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let step = &r.doc()["steps"]["ask"];
        assert_eq!(step["status"], "failed");
        let error = step["error"].as_str().unwrap();
        assert!(
            error.contains("openai") && error.contains("fake-gpt"),
            "{error}"
        );
        assert_eq!(
            fake.requests(Endpoint::ChatCompletions),
            round,
            "nothing cached"
        );
    }
}

#[test]
fn the_api_key_never_appears_in_output_logs_or_cache() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: s\nsteps:\n  - id: ok\n    action: generate\n    parameters: { prompt: hi }\n  - id: bad\n    action: generate\n    parameters: { prompt: \"[[fake:status=401]] hi\" }\n",
    );
    let r = orc(&sb, &["-vv", "run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stdout.contains(KEY) && !r.stderr.contains(KEY));
    for entry in walk(&sb.path("home")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "{} holds the key",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_hundred_parallel_embed_steps_are_batched() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(
        &sb,
        "performance:\n  caching:\n    model_cache: { backend: memory }\n  model_optimization: { batch_size: 20, max_wait_time: 0.05 }\n  parallel_execution: { max_concurrent_tasks: 200 }\n",
    );
    let pipeline = sb.file(
        "p.yaml",
        "name: e\nsteps:\n  - id: each\n    for_each: \"{{ range(100) | list }}\"\n    max_parallel: 100\n    steps:\n      - id: vec\n        action: embed\n        parameters: { input: \"text {{ item }}\" }\n",
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let vector = doc["steps"]["each_0_vec"]["value"]["result"]
        .as_array()
        .unwrap();
    assert!(!vector.is_empty() && vector.iter().all(Value::is_number));
    let upstream = fake.requests(Endpoint::Embeddings);
    assert!(
        upstream <= 5,
        "{upstream} upstream calls for 100 embed steps (batch size 20)"
    );
}

#[test]
fn an_unreachable_redis_cache_is_a_warning_not_a_failure() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(
        &sb,
        "performance:\n  caching:\n    model_cache: { backend: redis, url: \"redis://127.0.0.1:1\" }\n",
    );
    let pipeline = sb.file(
        "p.yaml",
        "name: r\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: hi }\n",
    );
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("redis"),
        "a warning: {}",
        r.stderr
    );
    assert_eq!(r.doc()["steps"]["ask"]["status"], "completed");
}

fn redis_url() -> Option<String> {
    let url = crate::support::redis_url();
    crate::support::reachable("Redis", &url).then_some(url)
}

#[test]
fn a_redis_cache_is_shared_between_runs_and_cleared_by_orc_cache_clear() {
    let Some(url) = redis_url() else { return };
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    // A logical database of its own keeps this test's entries apart.
    fake.config(
        &sb,
        &format!("performance:\n  caching:\n    model_cache: {{ backend: redis, url: \"{url}/11\", ttl: 120, compression: true }}\n"),
    );
    let pipeline = sb.file(
        "p.yaml",
        "name: r\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: \"redis please\" }\n",
    );
    let p = pipeline.to_str().unwrap();
    let first = orc(&sb, &["run", p]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = orc(&sb, &["run", p]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 1);
    assert_eq!(second.doc()["steps"]["ask"]["cached"], true);
    assert_eq!(
        second.doc()["steps"]["ask"]["value"]["result"],
        first.doc()["steps"]["ask"]["value"]["result"]
    );

    let stats = orc(&sb, &["cache", "stats", "--json"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert!(
        stats["model_cache"]["entries"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["model_cache"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("redis")
    );
    let cleared = orc(&sb, &["cache", "clear"]);
    assert_eq!(cleared.code, 0, "{}", cleared.stderr);
    let third = orc(&sb, &["run", p]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        fake.requests(Endpoint::ChatCompletions),
        2,
        "cleared: paid again"
    );
    orc(&sb, &["cache", "clear"]);
}

#[test]
fn models_list_and_cache_commands() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let r = orc(&sb, &["models", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("fake-small") && r.stdout.contains("fake-claude"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("{KEY_VAR} (set)")),
        "{}",
        r.stdout
    );
    let r: crate::support::Run = sb
        .command()
        .env_remove(KEY_VAR)
        .args(["models", "list", "--json"])
        .output()
        .unwrap()
        .into();
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list[0]["name"], "fake-small");
    assert!(list[0]["api_key"].as_str().unwrap().contains("unset"));
    assert_eq!(list[1]["provider"], "anthropic");
    assert!(!r.stdout.contains(KEY));

    let r = summarize(&sb);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stats = orc(&sb, &["cache", "stats", "--json"]);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["model_cache"]["entries"], json!(2), "{stats}");
    let r = orc(&sb, &["cache", "clear"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 model responses"), "{}", r.stdout);
    let stats = orc(&sb, &["cache", "stats", "--json"]);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["model_cache"]["entries"], json!(0), "{stats}");
}

#[test]
fn cache_false_always_calls_the_model() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        "name: c\nsteps:\n  - id: fresh\n    action: generate\n    cache: false\n    parameters: { prompt: \"always new\" }\n",
    );
    for round in 1..=2 {
        let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.doc()["steps"]["fresh"]["cached"], false);
        assert_eq!(fake.requests(Endpoint::ChatCompletions), round);
    }
}

#[test]
fn auto_tags_are_answered_by_a_model_once_and_typed_by_their_field() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("three colours", r#"["red", "green", "blue"]"#)
            .with_answer("a greeting word", "Hello"),
    );
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let text = "name: auto\nsteps:\n  - id: each\n    for_each: <AUTO>Name three colours: as a list</AUTO>\n    steps:\n      - id: say\n        action: echo\n        parameters: { message: \"<AUTO>a greeting word</AUTO>, {{ item }}\" }\n";
    let pipeline = sb.file("p.yaml", text);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["each_2_say"]["value"]["result"], "Hello, blue");
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);

    // Another text (so the compile cache misses): the answers come from the response cache.
    let pipeline = sb.file("q.yaml", &format!("# another file\n{text}"));
    let r = orc(&sb, &["validate", "--resolve", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fake.requests(Endpoint::ChatCompletions),
        2,
        "compiling again costs nothing"
    );

    // Without a model, the tag is an error that names it.
    std::fs::remove_file(sb.path("orc.yaml")).unwrap();
    let r = orc(&sb, &["validate", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("E019") && r.stderr.contains("three colours"),
        "{}",
        r.stderr
    );
}

/// A pipeline whose tags read earlier steps' results: each becomes an `auto` step asked just
/// before its step runs.
const RUN_TIME_TAGS: &str = r#"name: rt
steps:
  - id: draft
    action: generate
    parameters: { prompt: "Write two words about tides" }
  - id: polish
    action: generate
    condition: <AUTO>Is this draft too short? {{ draft.result }}</AUTO>
    parameters:
      prompt: "Polish: {{ draft.result }}"
      max_tokens: <AUTO type="integer" min="100" max="1000">How many tokens to polish {{ draft.result }}?</AUTO>
    dependencies: [draft]
"#;

#[test]
fn auto_tags_over_templates_are_asked_when_their_step_is_about_to_run() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("Write two words", "Tides turn.")
            .with_answer("too short? Tides turn.", "Yes.")
            .with_answer("How many tokens to polish Tides turn.", "300")
            .with_answer("Polish: Tides turn.", "The tides turn, slowly."),
    );
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file("p.yaml", RUN_TIME_TAGS);
    let path = pipeline.to_str().unwrap();

    // Validating names the steps that will ask, and asks nothing.
    let r = orc(&sb, &["validate", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("step `polish__auto_2` asks a model for a whole number for `parameters.max_tokens` when step `polish` is about to run"),
        "{}",
        r.stdout
    );
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 0);

    let r = orc(&sb, &["run", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let steps = &doc["steps"];
    assert_eq!(steps["polish__auto_1"]["value"]["result"], json!(true));
    assert_eq!(steps["polish__auto_2"]["value"]["result"], json!(300));
    assert_eq!(
        steps["polish"]["value"]["result"],
        "The tides turn, slowly."
    );
    // The answer reached the call as a number, and the questions were asked with their
    // field and attributes.
    let stats = fake.provider().stats();
    let bodies: Vec<&Value> = stats.bodies_to(Endpoint::ChatCompletions).collect();
    let polish = bodies
        .iter()
        .find(|b| b.to_string().contains("Polish: Tides turn."))
        .unwrap();
    assert_eq!(polish["max_tokens"], json!(300), "{polish}");
    let asked = bodies
        .iter()
        .find(|b| b.to_string().contains("How many tokens"))
        .unwrap()
        .to_string();
    assert!(
        asked.contains("steps.polish.parameters.max_tokens") && asked.contains("min: 100"),
        "{asked}"
    );
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 4);
}

#[test]
fn a_run_time_tag_that_says_no_skips_its_step_and_a_wrong_answer_fails_clearly() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("Write two words", "Tides turn.")
            .with_answer("too short? Tides turn.", "no"),
    );
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file("p.yaml", RUN_TIME_TAGS);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["polish"]["status"], "skipped");
    // The tag of the skipped step's parameters is not asked: it takes the step's condition.
    assert_eq!(doc["steps"]["polish__auto_2"]["status"], "skipped");
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);

    // An answer that is not of the tag's type fails its step, saying what came back.
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("Write two words", "Tides turn.")
            .with_answer("too short? Tides turn.", "true")
            .with_answer("How many tokens", "lots of them"),
    );
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file("p.yaml", RUN_TIME_TAGS);
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let error = r.doc()["steps"]["polish__auto_2"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("not a whole number") && error.contains("lots of them"),
        "{error}"
    );
}

#[test]
fn parameters_a_model_action_does_not_take_are_warned_about_dropped_and_never_asked() {
    let fake = Fake::start(Behaviour::default().with_answer("Write two words", "Tides turn."));
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let pipeline = sb.file(
        "p.yaml",
        r#"name: extra
steps:
  - id: draft
    action: generate_text
    parameters:
      prompt: "Write two words about tides"
      topic: <AUTO>What is the topic of {{ inputs.x }}?</AUTO>
      max_token: 20
parameters:
  x: { type: string, default: "tides" }
"#,
    );
    let path = pipeline.to_str().unwrap();
    let r = orc(&sb, &["validate", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("W102")
            && said.contains("`parameters.topic` has no effect")
            && said.contains("did you mean `max_tokens`?"),
        "{said}"
    );
    let r = orc(&sb, &["run", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["draft"]["value"]["result"], "Tides turn.");
    // One request: the step's own. The dropped parameter's tag was not asked.
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 1);
    assert!(r.doc()["steps"].get("draft__auto_1").is_none());
}

#[test]
fn a_sub_pipeline_s_model_spending_is_counted_in_its_caller_s_cost_and_usage() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    sb.file(
        "child.yaml",
        "id: child\nname: child\nsteps:\n  - id: ask\n    action: generate\n    parameters: { prompt: \"a question from the child\" }\n",
    );
    let parent = sb.file(
        "parent.yaml",
        "id: parent\nname: parent\nsteps:\n  - id: own\n    action: generate\n    parameters: { prompt: \"the parent's own\" }\n  - id: sub\n    tool: pipeline-executor\n    action: execute\n    parameters: { pipeline: child.yaml }\n",
    );
    let r = orc(&sb, &["run", parent.to_str().unwrap(), "--run-id", "spend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let own = doc["steps"]["own"]["cost"].as_f64().unwrap();
    let sub = doc["steps"]["sub"]["cost"].as_f64().unwrap();
    assert!(own > 0.0 && sub > 0.0, "{doc}");
    // The sub-run's own record says the same.
    let shown = orc(&sb, &["runs", "show", "spend/sub"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let child: Value = serde_json::from_str(&shown.stdout).unwrap();
    let child_cost = child["cost"].as_f64().unwrap_or_else(|| panic!("{child}"));
    assert!((child_cost - sub).abs() < 1e-12, "{child_cost} vs {sub}");
    assert!(
        (doc["cost"].as_f64().unwrap() - (own + sub)).abs() < 1e-12,
        "{doc}"
    );
    let tokens = |v: &Value| v["output_tokens"].as_u64().unwrap();
    assert_eq!(
        tokens(&doc["usage"]),
        tokens(&doc["steps"]["own"]["usage"]) + tokens(&doc["steps"]["sub"]["usage"])
    );
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);
}

/// A forward HTTP proxy on 127.0.0.1: it records the head of the first request on each
/// connection, then passes bytes both ways to the address the request names.
struct ForwardProxy {
    addr: std::net::SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ForwardProxy {
    fn start() -> ForwardProxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&heads);
        // Detached: the threads end with their connections, or with the test's process.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    // `POST http://host:port/path HTTP/1.1`: connect to host:port.
                    let target = text
                        .split_whitespace()
                        .nth(1)
                        .and_then(|uri| uri.strip_prefix("http://"))
                        .and_then(|rest| rest.split('/').next())
                        .map(str::to_owned);
                    seen.lock().unwrap().push(text);
                    let Some(target) = target else { return };
                    let Ok(mut upstream) = TcpStream::connect(&target) else {
                        return;
                    };
                    if upstream.write_all(&head).is_err() {
                        return;
                    }
                    let (Ok(mut up_read), Ok(mut client_write)) =
                        (upstream.try_clone(), client.try_clone())
                    else {
                        return;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_read, &mut client_write);
                        let _ = client_write.shutdown(std::net::Shutdown::Both);
                    });
                    let _ = std::io::copy(&mut client, &mut upstream);
                    let _ = upstream.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        ForwardProxy { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

#[test]
fn model_calls_go_through_the_proxy_the_environment_names() {
    let fake =
        Fake::start(Behaviour::default().with_answer("five-word title", "Rust Is Fast And Safe"));
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let proxy = ForwardProxy::start();
    let r = summarize_with(
        &sb,
        sb.command()
            .env(KEY_VAR, KEY)
            .env("HTTP_PROXY", format!("http://orc:secret@{}", proxy.addr))
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["outputs"]["title"], "Rust Is Fast And Safe");
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 2);
    let heads = proxy.heads();
    assert!(!heads.is_empty(), "no request went through the proxy");
    let url = format!("{}/chat/completions", fake.provider().openai_base_url());
    for head in &heads {
        assert!(
            head.starts_with(&format!("POST {url} HTTP/1.1\r\n")),
            "not an absolute-form request to the provider: {head}"
        );
        // The proxy URL's credentials, as Basic auth for the proxy (base64 of orc:secret).
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nproxy-authorization: basic b3jjonnly3jlda==\r\n"),
            "{head}"
        );
    }
    assert!(!r.stderr.contains("secret"), "{}", r.stderr);
}

#[test]
fn an_unsupported_proxy_fails_the_call_at_once_without_retries() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    fake.config(&sb, "");
    let started = std::time::Instant::now();
    let r = summarize_with(
        &sb,
        sb.command()
            .env(KEY_VAR, KEY)
            .env("ALL_PROXY", "socks5://user:hunter2@127.0.0.1:9")
            .env_remove("all_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    let error = doc["steps"]["summary"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("socks5://127.0.0.1:9 is not an http:// proxy"),
        "{doc}"
    );
    assert!(!r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"));
    assert_eq!(fake.requests(Endpoint::ChatCompletions), 0);
    // Not retried with back-off: the default policy would wait seconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
