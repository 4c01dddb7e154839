//! The dashboard's data and the daily report through the router itself (`oneshot`, no socket):
//! requests made through the OpenAI-compatible API against the fake provider are counted by
//! `/v1/stats/series`, `/v1/stats/models` and `/v1/reports/daily`, and so are the lookups of the
//! step-result and compile caches that runs make; bad parameters are 400s that name the
//! parameter; the routes need a token like the rest of `/v1`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use orc_fake_provider::{Behaviour, FakeProvider};
use orc_runtime::RuntimeOptions;
use orc_runtime::config::Config;
use orc_server::{ServerOptions, Tokens};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const TOKEN: &str = "stats-token";

struct Api {
    app: Router,
    _fake: FakeProvider,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        let fake = FakeProvider::start(Behaviour::default()).await.unwrap();
        // The fake asks for no key; any variable that is always set serves as one.
        let config: Config = serde_json::from_value(json!({
            "models": [{
                "name": "m",
                "provider": "openai",
                "model": "fake-gpt",
                "base_url": fake.openai_base_url(),
                "api_key_env": "PATH",
                "cost": {"input_per_1k": 1.0, "output_per_1k": 2.0},
            }],
            // The step-result cache in memory, not in the user's cache directory.
            "performance": {"caching": {"pipeline_cache": {"backend": "memory"}}},
        }))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runtime = RuntimeOptions {
            config,
            state_url: format!("sqlite://{}", dir.path().join("state.db").display()),
            data_dir: dir.path().join("data"),
            queue: None,
            sandbox: None,
        }
        .build()
        .await
        .unwrap();
        let options = ServerOptions {
            max_concurrent_requests: 64,
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(2),
            tokens: Tokens::new([TOKEN]),
            rate_limit: None,
        };
        let app = orc_server::app(runtime, &options, CancellationToken::new())
            .await
            .unwrap();
        Api {
            app,
            _fake: fake,
            _dir: dir,
        }
    }

    async fn send(&self, request: axum::http::request::Builder, body: Body) -> (StatusCode, Value) {
        let request = request
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(body)
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri), Body::empty()).await
    }

    async fn chat(&self, prompt: &str) {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": prompt}]});
        let (status, answer) = self
            .send(
                Request::post("/v1/chat/completions")
                    .header(header::CONTENT_TYPE, "application/json"),
                Body::from(body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            Request::post(uri).header(header::CONTENT_TYPE, "application/json"),
            Body::from(body.to_string()),
        )
        .await
    }

    /// Asserts a 400 whose problem body names `field`.
    async fn refused(&self, uri: &str, field: &str) {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request", "{uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{uri}: {message}");
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_counted_by_the_series_the_models_page_and_the_report() {
    let api = Api::new().await;
    api.chat("count me").await;
    api.chat("count me").await; // answered by the response cache
    api.chat("count me too").await;

    let (status, series) = api.get("/v1/stats/series").await;
    assert_eq!(status, StatusCode::OK, "{series}");
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 60, "the last hour by the minute");
    assert_eq!(series["step"], 60);
    assert_eq!(
        series["until"].as_u64().unwrap() - series["since"].as_u64().unwrap(),
        3600
    );
    let total = |key: &str| points.iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("requests"), total("errors")), (3, 0));
    let busy: Vec<&Value> = points.iter().filter(|p| p["requests"] != 0).collect();
    assert!(
        busy.iter()
            .all(|p| p["latency_p50_ms"].as_f64().unwrap() > 0.0)
    );
    let hits: u64 = busy
        .iter()
        .map(|p| p["caches"]["response"]["hits"].as_u64().unwrap())
        .sum();
    assert_eq!(hits, 1);
    let empty = points.iter().find(|p| p["requests"] == 0).unwrap();
    assert_eq!(empty["latency_p50_ms"], Value::Null);
    assert_eq!(empty["caches"]["response"], json!({"hits": 0, "misses": 0}));

    let since = now() - 7200;
    let (status, models) = api
        .get(&format!(
            "/v1/stats/models?since={since}&until={}",
            now() + 1
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let m = &models["models"][0];
    assert_eq!(
        (m["model"].as_str(), m["provider"].as_str()),
        (Some("m"), Some("openai"))
    );
    assert_eq!(
        (m["calls"].as_u64(), m["errors"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(m["success_rate"], 1.0);
    assert!(m["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(m["latency_p99_ms"].as_f64().unwrap() >= m["latency_p50_ms"].as_f64().unwrap());
    assert!(
        models["routing"].as_array().unwrap().is_empty(),
        "no step was routed"
    );

    let (status, report) = api.get("/v1/reports/daily").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["requests"], 3);
    assert_eq!(report["runs"], 0);
    assert_eq!(report["peak_throughput"]["requests"], 3);
    assert_eq!(report["peak_throughput"]["requests_per_second"], 0.05);
    assert_eq!(report["caches"]["response"]["hits"], 1);
    assert_eq!(report["caches"]["response"]["misses"], 2);
    assert_eq!(
        report["cost_usd"]["per_run"],
        Value::Null,
        "no run made requests"
    );
    assert!(report["cost_usd"]["per_request"].as_f64().unwrap() > 0.0);
    assert_eq!(report["top_models"][0]["model"], "m");
    // Another day has nothing.
    let (status, other) = api.get("/v1/reports/daily?date=2001-02-03").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (other["date"].as_str(), other["requests"].as_u64()),
        (Some("2001-02-03"), Some(0))
    );
    assert_eq!(other["since"], 981_158_400);
}

/// A pipeline whose one step asks for the step-result cache.
const CACHED: &str = "id: cached\nname: Cached\nsteps:\n  - id: greet\n    action: echo\n    parameters: { message: hello }\n    cache: true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cache_has_its_own_lookups_in_the_series_and_the_report() {
    let api = Api::new().await;
    // The same pipeline twice: the second run's step comes from the step-result cache, and its
    // pipeline from the compile cache.
    for _ in 0..2 {
        let (status, run) = api
            .post("/v1/runs", &json!({"pipeline": CACHED, "wait": true}))
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(run["status"], "completed", "{run}");
    }
    let (status, series) = api.get("/v1/stats/series").await;
    assert_eq!(status, StatusCode::OK, "{series}");
    let points = series["points"].as_array().unwrap();
    let total = |cache: &str, key: &str| {
        points
            .iter()
            .map(|p| p["caches"][cache][key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(
        (total("step", "hits"), total("step", "misses")),
        (1, 1),
        "{series}"
    );
    // The second run's pipeline was not compiled again; the first may have been in the compile
    // cache's files from an earlier test.
    assert!(total("compile", "hits") >= 1, "{series}");
    assert_eq!(total("compile", "hits") + total("compile", "misses"), 2);
    assert_eq!(total("response", "hits") + total("response", "misses"), 0);
    // Every point names every cache with lookups in the series, so that a chart's lines are whole.
    for p in points {
        for cache in ["response", "step", "compile"] {
            assert!(p["caches"][cache].is_object(), "{p}");
        }
    }

    let (status, report) = api.get("/v1/reports/daily").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["caches"]["step"],
        json!({"hits": 1, "misses": 1, "hit_rate": 0.5}),
        "{report}"
    );
    assert!(report["caches"]["compile"]["hits"].as_u64().unwrap() >= 1);
    assert_eq!(report["caches"]["response"]["hit_rate"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400s_that_name_the_parameter() {
    let api = Api::new().await;
    api.refused("/v1/reports/daily?date=2026-13-01", "date")
        .await;
    api.refused("/v1/reports/daily?date=yesterday", "date")
        .await;
    api.refused("/v1/reports/daily?day=2026-01-01", "day").await;
    api.refused("/v1/stats/series?since=abc", "since").await;
    api.refused("/v1/stats/series?since=200&until=100", "since")
        .await;
    api.refused("/v1/stats/series?until=-5", "until").await;
    api.refused("/v1/stats/series?step=0", "step").await;
    api.refused("/v1/stats/series?since=0&until=86400&step=1", "step")
        .await;
    api.refused("/v1/stats/models?since=10&until=10", "since")
        .await;
    // A day by the minute is the most points a series has.
    let (status, body) = api
        .get("/v1/stats/series?since=0&until=86400&step=60")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["points"].as_array().unwrap().len(), 1440);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_need_a_token() {
    let api = Api::new().await;
    for uri in ["/v1/stats/series", "/v1/stats/models", "/v1/reports/daily"] {
        let response = api
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
}
