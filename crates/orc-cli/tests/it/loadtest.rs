//! `orc loadtest`: its diagnostics of bad scenario files (snapshots), and a test against a real
//! `orc serve` on 127.0.0.1 with a registered pipeline and a chat scenario in front of the fake
//! provider, through the JSON and HTML reports and the thresholds' exit code.

use std::time::Duration;

use orc_fake_provider::Endpoint;
use serde_json::Value;

use crate::serve::{Server, client};
use crate::snapshots::{orc, shown};
use crate::support::Sandbox;

/// Bad scenario files, each with one or more mistakes.
const BAD_SCENARIOS: [(&str, &str); 4] = [
    (
        "unknown_keys",
        "target: http://127.0.0.1:1\nconcurent_users: 10\nrequests: 5\nscenarios:\n  - name: a\n    request: { path: /healthz }\n",
    ),
    (
        "nested_unknown_key",
        "target: http://127.0.0.1:1\nrequests: 5\nscenarios:\n  - name: a\n    request:\n      path: /healthz\n      methd: GET\n",
    ),
    (
        "bad_values",
        "target: ftp://example\nconcurrent_users: 0\nramp_up_time: soon\ntoken_env: ORC_TEST_NO_SUCH_TOKEN\nthink_time: { min: 2s, max: 1s }\nscenarios:\n  - name: a\n    weight: 0\n    pipeline_id: p\n    inputs: { q: \"{{ index }}\" }\n  - name: b\n    request: { method: \"GE T\", path: healthz, body: { pick: { one_of: [] } } }\n  - name: c\n    pipeline_id: p\n    request: { path: /x }\n",
    ),
    ("malformed_yaml", "target: inprocess\nscenarios: [\n"),
];

#[test]
fn bad_scenario_files_exit_2_naming_each_mistake_where_it_is() {
    let sb = Sandbox::new();
    for (name, text) in BAD_SCENARIOS {
        let file = format!("{name}.yaml");
        sb.file(&file, text);
        let r = orc(&sb, &["loadtest", &file]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("loadtest_{name}"), shown(&sb, &r));
        });
    }
}

/// `orc loadtest ARGS --json`, which must succeed: its report and its stderr.
fn loadtest_json(sb: &Sandbox, args: &[&str]) -> (Value, String) {
    let r = sb.orc(&[&["loadtest", "--json"], args].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    (serde_json::from_str(&r.stdout).unwrap(), r.stderr)
}

const GREET: &str = "id: greet\nname: Greet\nparameters:\n  who: world\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: \"hi {{ who }}\" }\noutputs:\n  said: \"{{ hi.result }}\"\n";

#[test]
fn orc_loadtest_drives_orc_serve_with_pipelines_and_chat_in_front_of_the_fake_provider() {
    let fake = crate::models::Fake::start_open(orc_fake_provider::Behaviour::default());
    let base = fake.provider().openai_base_url();
    let sb = Sandbox::new();
    let config = sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: fake-gpt\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    local: true\n    cost: {{ input_per_1k: 1.0, output_per_1k: 2.0 }}\n"
        ),
    );
    let config = config.display().to_string();
    let server = Server::start(&sb, &["--config", &config], &[]);
    let http = client();
    let put = http
        .put(server.url("/v1/pipelines/greet"))
        .body(GREET)
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().unwrap());

    let scenario = format!(
        "target: {}\nconcurrent_users: 4\nramp_up_time: 200ms\nrequests: 120\nthink_time: {{ min: 0s, max: 5ms }}\nscenarios:\n  - name: greet\n    weight: 3\n    pipeline_id: greet\n    inputs: {{ who: \"user {{{{ user }}}}\" }}\n  - name: chat\n    weight: 1\n    request:\n      method: POST\n      path: /v1/chat/completions\n      body:\n        model: fake-gpt\n        messages: [{{ role: user, content: \"hello {{{{ i }}}}\" }}]\n      expect_status: 200\n",
        server.url("")
    );
    sb.file("scenario.yaml", &scenario);
    let (report, stderr) = loadtest_json(&sb, &["scenario.yaml", "--report", "report.html"]);
    let total = &report["total"];
    assert_eq!(total["requests"], 120, "{report:#}");
    assert_eq!(total["errors"], 0, "{:#}", total["errors_by_kind"]);
    assert_eq!(report["model"]["kind"], "closed");
    assert_eq!(report["model"]["users"], 4);
    let greet = &report["scenarios"][0];
    let chat = &report["scenarios"][1];
    assert_eq!(
        (greet["name"].as_str(), chat["name"].as_str()),
        (Some("greet"), Some("chat"))
    );
    let runs = greet["requests"].as_u64().unwrap();
    let chats = chat["requests"].as_u64().unwrap();
    assert_eq!(runs + chats, 120);
    let share = runs as f64 / 120.0;
    assert!(
        (0.6..=0.9).contains(&share),
        "greet took {share} of the requests, not about 0.75"
    );
    for field in ["mean", "min", "p50", "p90", "p95", "p99", "max"] {
        assert!(
            total["latency_ms"][field].as_f64().unwrap() > 0.0,
            "{field}: {total:#}"
        );
    }
    assert!(total["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["overhead"]["cpu_us_per_request"].as_f64().unwrap() > 0.0);
    let points = report["timeline"]["points"].as_array().unwrap();
    let over_time: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(over_time, 120);
    // Every chat reached the provider through orc's gateway (each prompt differs: no cache hit).
    assert_eq!(
        fake.provider()
            .stats()
            .requests_to(Endpoint::ChatCompletions),
        chats
    );
    let html = sb.read("report.html");
    assert!(html.starts_with("<!doctype html>"));
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert!(html.contains("Response time over time") && html.contains("<td>greet</td>"));
    assert!(
        !html.contains("<script"),
        "no script: the page is self-contained"
    );
    assert!(
        stderr.contains("HTML report written to report.html"),
        "{stderr}"
    );

    // The table, and a threshold crossed: exit 1, saying which.
    let r = sb.orc(&[
        "loadtest",
        "scenario.yaml",
        "--requests",
        "8",
        "--max-p99",
        "1us",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("scenario") && r.stdout.contains("total"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("generator overhead:"), "{}", r.stdout);
    assert!(r.stderr.contains("threshold crossed: p99"), "{}", r.stderr);

    // The README's example, scaled down: its two pipeline files, 70/30.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/loadtest");
    for file in ["scenario.yaml", "simple.yaml", "complex.yaml"] {
        let text = std::fs::read_to_string(format!("{examples}/{file}")).unwrap();
        sb.file(
            &format!("example/{file}"),
            &text.replace("http://127.0.0.1:8080", &server.url("")),
        );
    }
    let (report, _) = loadtest_json(
        &sb,
        &[
            "example/scenario.yaml",
            "--users",
            "4",
            "--ramp-up",
            "0s",
            "--requests",
            "40",
            "--fail-on-errors",
        ],
    );
    assert_eq!(report["total"]["requests"], 40, "{report:#}");
    assert_eq!(report["scenarios"][0]["name"], "simple");
    assert_eq!(report["scenarios"][1]["name"], "complex");
    assert!(report["scenarios"][1]["requests"].as_u64().unwrap() > 0);

    let (code, _) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0);
}
