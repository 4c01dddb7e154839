//! `orc report daily`: the table and the JSON of a store seeded with one day's requests and
//! runs (a past day, so nothing in the output depends on when the test runs), the bad date
//! that exits 2, and the requests of real runs against the fake provider counted by the
//! binary's own report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orc_fake_provider::Behaviour;
use orc_state::{CallSource, ModelMetric, NewRun, RunState, StateOptions, Store};
use serde_json::{Value, json};

use crate::models::{Fake, KEY_VAR, orc};
use crate::support::Sandbox;

/// 2026-03-01T00:00:00Z.
const DAY: u64 = 1_772_323_200;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(DAY + secs)
}

/// A request `secs` into the day.
fn request(model: &str, secs: u64, latency_ms: f64, cost: f64, kind: Option<&str>) -> ModelMetric {
    ModelMetric {
        model: model.to_owned(),
        provider: if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        }
        .to_owned(),
        at: at(secs),
        latency_ms,
        success: kind.is_none(),
        input_tokens: if cost > 0.0 { 420 } else { 0 },
        output_tokens: if cost > 0.0 { 96 } else { 0 },
        cost,
        source: if cost > 0.0 || kind.is_some() {
            CallSource::Upstream
        } else {
            CallSource::Cache
        },
        cache_hit: Some(cost == 0.0 && kind.is_none()),
        error_kind: kind.map(str::to_owned),
        run_id: None,
        pipeline_id: None,
    }
}

/// A SQLite store in the sandbox with a day of three pipelines' runs and their requests.
fn seeded(sb: &Sandbox) -> String {
    let url = format!("sqlite://{}", sb.path("state.db").display());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let store = Store::open(&url, StateOptions::default()).await.unwrap();
        let mut requests = Vec::new();
        let runs = [
            ("research-1", "research", 3600, RunState::Completed),
            ("research-2", "research", 7200, RunState::Completed),
            ("summarize-1", "summarize", 9000, RunState::Failed),
            ("triage-1", "triage", 10_000, RunState::Completed),
        ];
        for (i, (run_id, pipeline, secs, status)) in runs.into_iter().enumerate() {
            store
                .create_run(&NewRun {
                    run_id: run_id.into(),
                    pipeline_id: pipeline.into(),
                    pipeline_path: format!("pipelines/{pipeline}.yaml"),
                    pipeline_hash: "h".into(),
                    inputs: json!({}),
                    started_at: at(secs),
                })
                .await
                .unwrap();
            store.finish_run(run_id, status, None).await.unwrap();
            let run = |mut m: ModelMetric| {
                m.run_id = Some(run_id.to_owned());
                m.pipeline_id = Some(pipeline.to_owned());
                m
            };
            let secs = secs + 5;
            match pipeline {
                "research" => {
                    for k in 0..4 {
                        let latency = 1800.0 + 150.0 * (k + i as u64) as f64;
                        requests.push(run(request(
                            "claude-large",
                            secs + k,
                            latency,
                            0.0315,
                            None,
                        )));
                    }
                    requests.push(run(request("gpt-small", secs + 9, 0.4, 0.0, None)));
                }
                "summarize" => {
                    requests.push(run(request("gpt-small", secs, 640.0, 0.000_42, None)));
                    requests.push(run(request(
                        "gpt-small",
                        secs + 1,
                        30_000.0,
                        0.0,
                        Some("timeout"),
                    )));
                }
                _ => requests.push(run(request("gpt-small", secs, 380.0, 0.000_31, None))),
            }
        }
        // The OpenAI-compatible API's requests: a busy minute, two rate-limited.
        for k in 0..30 {
            let (cost, kind) = match k {
                0 | 1 => (0.0, Some("rate_limited")),
                k if k % 3 == 0 => (0.0, None),
                _ => (0.000_35, None),
            };
            requests.push(request(
                "gpt-small",
                43_200 + k,
                420.0 + 10.0 * k as f64,
                cost,
                kind,
            ));
        }
        // The next day's request is not this day's.
        requests.push(request("gpt-small", 86_400, 400.0, 1.0, None));
        store.record_model_metrics(&requests).await.unwrap();
    });
    url
}

/// Snapshots `$value` under `tests/it/snapshots/$name.snap`.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

#[test]
fn the_daily_report_as_a_table_and_as_json() {
    let sb = Sandbox::new();
    let url = seeded(&sb);
    let r = sb.orc(&["--state", &url, "report", "daily", "--date", "2026-03-01"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!("report_daily_table", &r.stdout);

    let r = sb.orc(&[
        "--state",
        &url,
        "report",
        "daily",
        "--date",
        "2026-03-01",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["requests"], 43);
    assert_eq!(doc["runs"], 4);
    snapshot!("report_daily_json", &r.stdout);

    // A day with nothing recorded.
    let r = sb.orc(&["--state", &url, "report", "daily", "--date", "2026-02-28"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!("report_daily_empty", &r.stdout);
}

#[test]
fn a_bad_date_exits_2_naming_the_flag() {
    let sb = Sandbox::new();
    let url = format!("sqlite://{}", sb.path("state.db").display());
    for date in ["2026-02-30", "tomorrow", "2026/03/01"] {
        let r = sb.orc(&["--state", &url, "report", "daily", "--date", date]);
        assert_eq!(r.code, 2, "{date}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: --date: "), "{}", r.stderr);
        assert!(r.stderr.contains(date), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn the_requests_of_real_runs_are_in_the_days_report() {
    let fake = Fake::start(Behaviour::default());
    let sb = Sandbox::new();
    let base = fake.provider().openai_base_url();
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: small\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 0.5, output_per_1k: 1.5 }}\n"
        ),
    );
    let pipeline = sb.file(
        "ask.yaml",
        "id: ask\nname: Ask\nsteps:\n  - id: q\n    action: generate\n    model: small\n    parameters: { prompt: 'Name a river', max_tokens: 20 }\n",
    );
    for _ in 0..2 {
        let r = orc(&sb, &["run", pipeline.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = orc(&sb, &["report", "daily", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (doc["runs"].as_u64(), doc["requests"].as_u64()),
        (Some(2), Some(2)),
        "{doc}"
    );
    assert_eq!(doc["top_pipelines"][0]["pipeline_id"], "ask");
    assert_eq!(doc["top_pipelines"][0]["requests"], 2);
    assert_eq!(doc["top_models"][0]["model"], "small");
    assert!(doc["cost_usd"]["per_run"].as_f64().unwrap() > 0.0);
    let table = orc(&sb, &["report", "daily"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("Requests         2"),
        "{}",
        table.stdout
    );
}
