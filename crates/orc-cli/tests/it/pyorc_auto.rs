//! `<AUTO>` tags as py-orc's examples write them: `orc validate` checks and lists them
//! without a model call, `--resolve` answers them (cached for the run), and a tag in a
//! model field is answered by the router with no model call at all.

use orc_fake_provider::{Behaviour, FakeProvider};
use serde_json::Value;

use crate::models::{Fake, KEY, KEY_VAR};
use crate::support::{Run, Sandbox};

/// Tags of every kind py-orc's examples use: a typed field (`max_tokens`), a list
/// (`for_each`), text in a parameter, a model picked for a task, and a lone `<AUTO>`.
const PIPELINE: &str = r#"name: auto tags
steps:
  - id: each
    for_each: <AUTO>Name three colours, as a list</AUTO>
    steps:
      - id: say
        action: echo
        parameters:
          message: "<AUTO>a greeting word</AUTO>, {{ item }}"
  - id: write
    action: generate
    parameters:
      prompt: "Write one line about colours."
      model: <AUTO task="summarize">Select a model for a summary</AUTO>
      max_tokens: <AUTO type="integer">how many tokens for one line</AUTO>
  - id: analyse
    action: generate
    dependencies: [write]
    parameters:
      prompt: "Analyse: {{ write.result }}"
      model: <AUTO task="analyze">Select a model for analysis</AUTO>
  - id: plain
    action: generate
    dependencies: [write]
    parameters:
      prompt: "Anything"
      model: <AUTO>  # py-orc: pick one
"#;

/// Two models on `base`: a small cheap one and a large dear one, so the router's tiers differ.
fn config(sb: &Sandbox, openai_base: &str) {
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: small\n    provider: openai\n    model: fake-small\n    base_url: {openai_base}\n    api_key_env: {KEY_VAR}\n    size: 1b\n    cost: {{ input_per_1k: 0.0001, output_per_1k: 0.0002 }}\n  - name: large\n    provider: openai\n    model: fake-large\n    base_url: {openai_base}\n    api_key_env: {KEY_VAR}\n    size: 400b\n    cost: {{ input_per_1k: 0.01, output_per_1k: 0.03 }}\n"
        ),
    );
}

fn orc(sb: &Sandbox, args: &[&str]) -> Run {
    sb.command()
        .env(KEY_VAR, KEY)
        .arg("--config")
        .arg(sb.path("orc.yaml"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn total_requests(fake: &FakeProvider) -> u64 {
    fake.stats().total_requests
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

/// The `auto_tags` of `orc validate --json`, as (status, step, field, message).
fn tags(doc: &Value) -> Vec<(String, String, String, String)> {
    doc["auto_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("step"), s("field"), s("message"))
        })
        .collect()
}

#[test]
fn validate_checks_and_lists_the_tags_with_no_reachable_model() {
    let sb = Sandbox::new();
    // Nothing listens on port 9: any model call would fail (and take its retries).
    config(&sb, "http://127.0.0.1:9/v1");
    let pipeline = sb.file("p.yaml", PIPELINE);
    let started = std::time::Instant::now();
    let r = orc(&sb, &["validate", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "no model call, no retries: {:?}",
        started.elapsed()
    );
    // A line per tag: three need a model at run time, three models picked by the router.
    assert!(
        r.stdout
            .contains("AUTO tags: 6 (3 need a model at run time)"),
        "{}",
        r.stdout
    );
    for expected in [
        "p.yaml:4:15 steps.each.for_each: AUTO tag `<AUTO>Name three colours, as a list</AUTO>` needs a model: a JSON list",
        "steps.write.parameters.max_tokens: AUTO tag `<AUTO type=\"integer\">how many tokens for one line</AUTO>` needs a model: a whole number",
        "steps.say.parameters.message: AUTO tag `<AUTO>a greeting word</AUTO>` needs a model: text",
        "steps.write.parameters.model: AUTO tag `<AUTO task=\"summarize\">Select a model for a summary</AUTO>`: the router picks model `small`",
        "steps.analyse.parameters.model: AUTO tag `<AUTO task=\"analyze\">Select a model for analysis</AUTO>`: the router picks model `large`",
        "steps.plain.parameters.model: AUTO tag `<AUTO>`: the router picks model",
    ] {
        assert!(
            r.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            r.stdout
        );
    }
    // The router's reason: its strategy, the tier the tag's task asks for.
    assert!(r.stdout.contains("capable tier"), "{}", r.stdout);
    assert!(r.stdout.contains("fast tier"), "{}", r.stdout);

    let r = orc(&sb, &["validate", "--json", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = json(&r);
    let listed = tags(&doc);
    assert_eq!(listed.len(), 6, "{listed:?}");
    let needs: Vec<_> = listed
        .iter()
        .filter(|t| t.0 == "needs_model")
        .map(|t| (t.1.as_str(), t.2.as_str()))
        .collect();
    assert_eq!(
        needs,
        vec![
            ("each", "for_each"),
            ("say", "parameters.message"),
            ("write", "parameters.max_tokens")
        ]
    );
    assert_eq!(
        listed.iter().filter(|t| t.0 == "model_picked").count(),
        3,
        "{listed:?}"
    );

    // A tag whose type its field cannot take is an error, as is one no model can answer.
    let bad = sb.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: each\n    for_each: <AUTO type=\"integer\">how many</AUTO>\n    steps:\n      - id: say\n        action: echo\n        parameters: { message: \"{{ item }}\" }\n",
    );
    let r = orc(&sb, &["validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("E021")
            && r.stderr
                .contains("gives a whole number, and `for_each` takes a JSON list"),
        "{}",
        r.stderr
    );
}

#[test]
fn resolve_answers_the_tags_and_the_run_reuses_the_answers() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("three colours", r#"["red", "green", "blue"]"#)
            .with_answer("a greeting word", "Hello")
            .with_answer("how many tokens", "40"),
    );
    let sb = Sandbox::new();
    config(&sb, &fake.provider().openai_base_url());
    let pipeline = sb.file("p.yaml", PIPELINE);

    let r = orc(&sb, &["validate", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        total_requests(fake.provider()),
        0,
        "validate calls no model"
    );

    let r = orc(
        &sb,
        &[
            "validate",
            "--resolve",
            "--json",
            pipeline.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        total_requests(fake.provider()),
        3,
        "one question per tag that needs a model; none for the model fields"
    );
    let doc = json(&r);
    let answered: Vec<String> = tags(&doc)
        .into_iter()
        .filter(|t| t.0 == "answered")
        .map(|t| t.3)
        .collect();
    assert_eq!(answered.len(), 3, "{answered:?}");
    assert!(
        answered
            .iter()
            .any(|m| m.ends_with("answered: `[\"red\",\"green\",\"blue\"]`")),
        "{answered:?}"
    );
    assert!(
        answered.iter().any(|m| m.ends_with("answered: `40`")),
        "{answered:?}"
    );
    // The answers are in the plan: `max_tokens` is a number, `for_each` a list.
    let steps = doc["plan"]["steps"].to_string();
    assert!(steps.contains("\"max_tokens\""), "{steps}");

    // The run compiles from the compile cache: no question asked again; only its three
    // generate steps call a model, each on the model the router picked for its tag.
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(total_requests(fake.provider()), 6);
    let doc = r.doc();
    assert_eq!(doc["steps"]["each_2_say"]["value"]["result"], "Hello, blue");
    assert_eq!(doc["steps"]["write"]["model"], "small");
    assert_eq!(doc["steps"]["analyse"]["model"], "large");
    let stats = fake.provider().stats();
    assert_eq!(stats.requests_for("fake-large"), 1, "{stats:?}");
}

#[test]
fn a_model_tag_is_answered_by_the_router_with_no_request() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    config(&sb, &fake.provider().openai_base_url());
    let pipeline = sb.file(
        "m.yaml",
        "name: pick\nsteps:\n  - id: extract\n    action: analyze_text\n    parameters:\n      text: \"some text\"\n      analysis_type: key_points\n      model: <AUTO task=\"analyze\">Select model for information extraction</AUTO>\n  - id: sum\n    action: generate\n    requires_model: <AUTO task=\"summarize\">a quick one</AUTO>\n    parameters: { prompt: \"Say hi\" }\n",
    );
    for args in [
        vec!["validate", pipeline.to_str().unwrap()],
        vec!["validate", "--resolve", pipeline.to_str().unwrap()],
    ] {
        let r = orc(&sb, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.contains("the router picks model `large`")
                && r.stdout.contains("the router picks model `small`"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .contains("AUTO tags: 2 (0 need a model at run time)"),
            "{}",
            r.stdout
        );
    }
    assert_eq!(total_requests(fake.provider()), 0, "no model was asked");
    let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["steps"]["extract"]["model"], "large");
    assert_eq!(doc["steps"]["sum"]["model"], "small");
    assert_eq!(
        total_requests(fake.provider()),
        2,
        "the two steps' own calls, nothing to pick their models"
    );
}
