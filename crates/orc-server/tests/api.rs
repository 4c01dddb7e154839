//! The runs API through the router itself (`tower::ServiceExt::oneshot`, no socket), over a real
//! runtime on a SQLite store in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use orc_runtime::config::Config;
use orc_runtime::{Runtime, RuntimeOptions};
use orc_server::{ServerOptions, Tokens};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const ECHO: &str = "id: echo\nname: Echo\nparameters:\n  who: world\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: \"hi {{ who }}\" }\noutputs:\n  said: \"{{ hi.result }}\"\n";

/// A step that waits until `flag` exists (at most 30 s), after one that does not.
fn slow(flag: &Path) -> String {
    format!(
        "id: slow\nname: Slow\nsteps:\n  - id: first\n    action: echo\n    parameters: {{ message: one }}\n  - id: wait\n    tool: terminal\n    action: execute\n    parameters:\n      command: \"for i in $(seq 300); do test -f {} && exit 0; sleep 0.1; done; exit 1\"\n    dependencies: [first]\n",
        flag.display()
    )
}

async fn runtime(dir: &Path, config: Config) -> Runtime {
    RuntimeOptions {
        config,
        state_url: format!("sqlite://{}", dir.join("state.db").display()),
        data_dir: dir.join("data"),
        queue: None,
        sandbox: None,
    }
    .build()
    .await
    .unwrap()
}

fn options() -> ServerOptions {
    ServerOptions {
        max_concurrent_requests: 64,
        request_timeout: Duration::from_secs(10),
        max_body_bytes: 64 << 10,
        shutdown_grace: Duration::from_secs(2),
        tokens: Tokens::default(),
        rate_limit: None,
    }
}

struct Api {
    app: Router,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Api {
    async fn new() -> Api {
        Api::with(options()).await
    }

    async fn with(options: ServerOptions) -> Api {
        Api::configured(Config::default(), options).await
    }

    async fn configured(config: Config, options: ServerOptions) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let app = orc_server::app(
            runtime(&path, config).await,
            &options,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        Api {
            app,
            _dir: dir,
            dir: path,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (status, body)
    }

    async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, body) = self.send(post(uri, body)).await;
        (status, body)
    }

    /// The events of a run's stream as (id, event, data), until it closes.
    async fn events(&self, run_id: &str, last: Option<u64>) -> Vec<(u64, String, Value)> {
        let mut request = Request::get(format!("/v1/runs/{run_id}/events"));
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let bytes = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
            .await
            .expect("the stream closes after the result")
            .unwrap()
            .to_bytes();
        parse_sse(std::str::from_utf8(&bytes).unwrap())
    }
}

fn post(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn parse_sse(text: &str) -> Vec<(u64, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let (mut id, mut event, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((id?, event?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_posted_with_wait_answers_with_its_result_document_and_is_listed() {
    let api = Api::new().await;
    let (status, doc) = api
        .post(
            "/v1/runs?wait=true",
            &json!({ "pipeline": ECHO, "inputs": { "who": "api" }, "run_id": "r 1/a" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["execution_id"], "r 1/a");
    assert_eq!(doc["outputs"]["said"], "hi api");

    let (status, shown) = api.get("/v1/runs/r%201%2Fa").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, doc);

    let (status, list) = api.get("/v1/runs?status=completed&limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["runs"][0]["run_id"], "r 1/a");
    assert_eq!(list["runs"][0]["pipeline_id"], "echo");
    assert_eq!(list["next_cursor"], Value::Null);
    // The posted text is kept where the run's record points, for resume.
    let path = list["runs"][0]["pipeline_path"].as_str().unwrap();
    assert!(path.starts_with(api.dir.join("data/pipelines").to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(path).unwrap(), ECHO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_a_page_at_a_time() {
    let api = Api::new().await;
    for i in 0..5 {
        let (status, _) = api
            .post(
                "/v1/runs?wait=true",
                &json!({ "pipeline": ECHO, "run_id": format!("run-{i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/runs?limit=2".to_owned();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 2);
        seen.extend(
            runs.iter()
                .map(|r| r["run_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/runs?limit=2&cursor={c}"),
            None => break,
        }
    }
    // Newest first, each once.
    assert_eq!(seen, ["run-4", "run-3", "run-2", "run-1", "run-0"]);
    // A run started between two pages neither repeats a run nor hides one.
    let (_, first) = api.get("/v1/runs?limit=2").await;
    let (status, _) = api
        .post(
            "/v1/runs?wait=true",
            &json!({ "pipeline": ECHO, "run_id": "run-5" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api.get(&format!("/v1/runs?limit=2&cursor={cursor}")).await;
    let ids: Vec<&str> = second["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run-2", "run-1"]);
    for bad in ["12", "x.eA", "12.%%%", "-1.eA"] {
        let (status, body) = api.get(&format!("/v1/runs?cursor={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.to_string().contains("next_cursor"), "{body}");
    }
    let (status, body) = api.get("/v1/runs?status=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pipeline_is_422_with_the_compilers_findings_and_nothing_is_recorded() {
    let api = Api::new().await;
    let bad = "id: bad\nname: Bad\nsteps:\n  - id: a\n    tool: filesytem\n    action: read\n";
    let (status, body) = api
        .post("/v1/runs", &json!({ "pipeline": bad, "name": "bad.yaml" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["type"], "invalid_pipeline");
    let finding = &body["error"]["findings"][0];
    assert_eq!(finding["file"], "bad.yaml");
    assert_eq!(finding["line"], 5);
    assert!(finding["message"].as_str().unwrap().contains("filesytem"));
    assert!(
        body["error"]["rendered"]
            .as_str()
            .unwrap()
            .contains("bad.yaml:5:")
    );

    let (status, body) = api
        .post(
            "/v1/runs",
            &json!({ "pipeline": ECHO, "inputs": { "whom": 1 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("whom"));

    let (_, list) = api.get("/v1/runs").await;
    assert_eq!(list["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_naming_the_problem() {
    let api = Api::new().await;
    let (status, _, body) = api
        .send(
            Request::post("/v1/runs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"pipeline\": \n  nope}"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );
    let (status, body) = api
        .post("/v1/runs", &json!({ "pipeline": ECHO, "colour": "red" }))
        .await;
    // Well-formed JSON that does not fit is axum's 422.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let (status, body) = api.get("/v1/runs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_cancelled_and_resumed_without_redoing_finished_steps() {
    let api = Api::new().await;
    let flag = api.dir.join("flag");
    let (status, started) = api
        .post(
            "/v1/runs",
            &json!({ "pipeline": slow(&flag), "run_id": "slow-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["links"]["events"], "/v1/runs/slow-1/events");

    // Follow from the start while the run goes on; cancel once `first` has finished.
    let follower = {
        let api_app = api.app.clone();
        tokio::spawn(async move {
            let response = api_app
                .oneshot(
                    Request::get("/v1/runs/slow-1/events")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            parse_sse(std::str::from_utf8(&bytes).unwrap())
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, shown) = api.get("/v1/runs/slow-1").await;
        if shown["steps_done"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{shown}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api.post("/v1/runs/slow-1/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let events = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"step_ready"));
    assert_eq!(kinds.last(), Some(&"result"));
    assert!(events.iter().any(|(_, k, d)| k == "step_finished"
        && d["step"] == "first"
        && d["status"] == "completed"));
    let ids: Vec<u64> = events.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap().2["status"], "interrupted");

    let (_, shown) = api.get("/v1/runs/slow-1").await;
    assert_eq!(shown["status"], "interrupted");
    let (status, _) = api.post("/v1/runs/slow-1/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Resumed with the flag in place: `wait` finishes, `first` is not run again.
    std::fs::write(&flag, "").unwrap();
    let (status, body) = api.post("/v1/runs/slow-1/resume", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let events = api.events("slow-1", None).await;
    let (_, _, result) = events.last().unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert!(
        !events
            .iter()
            .any(|(_, k, d)| k == "step_started" && d["step"] == "first"),
        "{events:?}"
    );
    let (status, doc) = api.post("/v1/runs/slow-1/resume", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_follower_gets_only_what_it_missed_from_memory_or_from_the_store() {
    let api = Api::new().await;
    let (status, _) = api
        .post(
            "/v1/runs?wait=true",
            &json!({ "pipeline": ECHO, "run_id": "e" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let all = api.events("e", None).await;
    let kinds: Vec<&str> = all.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["step_ready", "step_started", "step_finished", "result"]
    );
    let rest = api.events("e", Some(2)).await;
    assert_eq!(rest, all[2..]);

    // Another server on the same store has no log in memory: it replays from the checkpoints.
    let other = orc_server::app(
        runtime(&api.dir, Config::default()).await,
        &options(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let other = Api {
        app: other,
        _dir: tempfile::tempdir().unwrap(),
        dir: api.dir.clone(),
    };
    let replayed = other.events("e", None).await;
    let kinds: Vec<&str> = replayed.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["step_finished", "result"]);
    assert_eq!(replayed[0].2["step"], "hi");
    assert_eq!(replayed[1].2["outputs"]["said"], "hi world");
    assert_eq!(other.events("e", Some(1)).await.len(), 1);
    let (status, _) = other.get("/v1/runs/missing/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_the_run_so_a_retried_post_starts_nothing_new() {
    let api = Api::new().await;
    let request = || {
        let mut r = post("/v1/runs?wait=true", &json!({ "pipeline": ECHO }));
        r.headers_mut()
            .insert("idempotency-key", "order-42".parse().unwrap());
        r
    };
    let (first, _, a) = api.send(request()).await;
    let (second, _, b) = api.send(request()).await;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a["execution_id"], "order-42");
    assert_eq!(a, b);
    let (_, list) = api.get("/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_limits_are_refused_at_once() {
    let api = Api::with(ServerOptions {
        max_concurrent_requests: 1,
        max_body_bytes: 1024,
        ..options()
    })
    .await;
    let flag = api.dir.join("flag");
    // One request takes the only slot and waits for its run. (It may itself be refused when it
    // arrives while the probe below holds the slot: then it is sent again.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (held, (status, headers, body)) = loop {
        let held = {
            let app = api.app.clone();
            let body = json!({ "pipeline": slow(&flag) });
            tokio::spawn(async move { app.oneshot(post("/v1/runs?wait=true", &body)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = api
            .send(Request::get("/healthz").body(Body::empty()).unwrap())
            .await;
        if probe.0 == StatusCode::SERVICE_UNAVAILABLE && !held.is_finished() {
            break (held, probe);
        }
        assert!(tokio::time::Instant::now() < deadline, "{probe:?}");
        let _ = held.await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(body["error"]["type"], "overloaded");
    std::fs::write(&flag, "").unwrap();
    let response = held.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let big = json!({ "pipeline": "x".repeat(2048) });
    let (status, _) = api.post("/v1/runs", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_configured_every_route_but_health_needs_one() {
    let api = Api::with(ServerOptions {
        tokens: Tokens::new(["s3cret-token"]),
        ..options()
    })
    .await;
    let (status, headers, body) = api
        .send(Request::get("/v1/runs").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error"]["type"], "unauthorized");
    let with = |token: &str| {
        Request::get("/v1/runs")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = api.send(with("s3cret-tokeN")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("s3cret"));
    let (status, _, _) = api.send(with("s3cret-token")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `/readyz` checks the caches too: a Redis step cache that does not answer makes the service
/// not ready, and the answer names it; the real Redis makes it ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_checks_the_configured_caches() {
    let with_redis = |url: &str| {
        let mut config = Config::default();
        let cache = &mut config.performance.caching.pipeline_cache;
        cache.enabled = true;
        cache.backend = "redis".to_owned();
        cache.url = Some(url.to_owned());
        config
    };
    // Nothing listens on port 1.
    let api = Api::configured(with_redis("redis://127.0.0.1:1"), options()).await;
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "not_ready");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cache redis redis://127.0.0.1:1"),
        "{message}"
    );
    let redis =
        std::env::var("ORC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let api = Api::configured(with_redis(&redis), options()).await;
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["caches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("redis ")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_route_and_status() {
    orc_telemetry::Exporter::global().unwrap();
    let api = Api::new().await;
    let (status, _) = api.get("/v1/runs/some-run-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get("/v1/runs").await;
    assert_eq!(status, StatusCode::OK);
    let (status, text) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("orc_http_requests_total{route=\"/v1/runs/{id}\",status=\"404\"}"),
        "{text}"
    );
    assert!(text.contains("orc_http_requests_total{route=\"/v1/runs\",status=\"200\"}"));
    assert!(text.contains("orc_http_request_duration_seconds_bucket{route=\"/v1/runs\""));
    assert!(!text.contains("some-run-id"));
}

#[test]
fn listening_beyond_loopback_needs_tokens() {
    let open = options();
    assert!(open.check_bind("127.0.0.1:8080".parse().unwrap()).is_ok());
    let e = open
        .check_bind("0.0.0.0:8080".parse().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    let guarded = ServerOptions {
        tokens: Tokens::new(["t"]),
        ..options()
    };
    assert!(guarded.check_bind("0.0.0.0:8080".parse().unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_pipelines_are_compiled_once_versioned_run_by_id_and_deleted() {
    let api = Api::new().await;
    let put = |text: &str, content_type: &str| {
        Request::put("/v1/pipelines/greeter")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(text.to_owned()))
            .unwrap()
    };
    let (status, _, row) = api.send(put(ECHO, "application/yaml")).await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    assert_eq!(row["id"], "greeter");
    assert_eq!(row["pipeline_id"], "echo");
    assert_eq!(row["version"], 1);
    assert_eq!(row["steps"], 1);
    let (status, _, again) = api.send(put(ECHO, "text/plain")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["version"], 1, "an identical text is no new version");
    let changed = ECHO.replace("who: world", "who: there");
    let as_json = json!({ "pipeline": changed }).to_string();
    let (status, _, row) = api.send(put(&as_json, "application/json")).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["version"], 2);

    let (status, shown) = api.get("/v1/pipelines/greeter").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["pipeline"], changed);
    let (_, list) = api.get("/v1/pipelines").await;
    assert_eq!(list["pipelines"][0]["id"], "greeter");
    assert_eq!(list["pipelines"].as_array().unwrap().len(), 1);

    let (status, doc) = api
        .post("/v1/runs?wait=true", &json!({ "pipeline_id": "greeter" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["outputs"]["said"], "hi there");
    let (status, checked) = api.post("/v1/pipelines/greeter/validate", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checked["valid"], true);
    assert_eq!(checked["pipeline"]["steps"], 1);
    let (status, planned) = api
        .post(
            "/v1/pipelines/greeter/plan",
            &json!({ "inputs": { "who": "x" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{planned}");
    assert_eq!(planned["totals"]["model_steps"], 0);

    let (status, body) = api
        .post(
            "/v1/runs",
            &json!({ "pipeline_id": "greeter", "pipeline": ECHO }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pipeline_id")
    );

    let delete = || {
        Request::delete("/v1/pipelines/greeter")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(api.send(delete()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.send(delete()).await.0, StatusCode::NOT_FOUND);
    let (status, body) = api
        .post("/v1/runs", &json!({ "pipeline_id": "greeter" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, _, body) = api
        .send(put("id: x\nsteps: []\n", "application/yaml"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["type"], "invalid_pipeline");
    assert!(
        body["error"]["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    let (status, _) = api.get("/v1/pipelines/greeter").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_rate_and_is_told_when_to_come_back() {
    let api = Api::with(ServerOptions {
        tokens: Tokens::new(["token-a", "token-b"]),
        rate_limit: Some((0.5, 2)),
        ..options()
    })
    .await;
    let as_client = |token: &str| {
        Request::get("/v1/runs")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(api.send(as_client("token-a")).await.0, StatusCode::OK);
    assert_eq!(api.send(as_client("token-a")).await.0, StatusCode::OK);
    let (status, headers, body) = api.send(as_client("token-a")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["type"], "rate_limited");
    // One request every two seconds: the next is about two seconds away.
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another client is not held back by the first.
    assert_eq!(api.send(as_client("token-b")).await.0, StatusCode::OK);
    // Health is not rate-limited.
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}
