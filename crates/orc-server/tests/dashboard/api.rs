//! The dashboard's files and the endpoints its pages read, through the router (`oneshot`).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::rig::{diamond, get, post, rig, router, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_served_from_the_binary_with_types_and_etags() {
    let rig = rig().await;
    let app = router(&rig).await;
    let cases = [
        ("/", "text/html; charset=utf-8", "no-cache"),
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "public, max-age=300",
        ),
        (
            "/assets/app.css",
            "text/css; charset=utf-8",
            "public, max-age=300",
        ),
        (
            "/assets/vendor/uplot/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
            "public, max-age=300",
        ),
        (
            "/assets/favicon.svg",
            "image/svg+xml",
            "public, max-age=300",
        ),
    ];
    for (uri, content_type, cache) in cases {
        let (status, headers, body) =
            send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{uri}");
        assert_eq!(headers[header::CACHE_CONTROL], cache, "{uri}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(!body.as_str().unwrap_or_default().is_empty(), "{uri}");
        // Revalidation with the ETag is a 304 without a body.
        let etag = headers[header::ETAG].clone();
        let (status, headers, body) = send(
            &app,
            Request::get(uri)
                .header(header::IF_NONE_MATCH, etag.clone())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
        assert_eq!(headers[header::ETAG], etag);
        assert_eq!(body, json!(""));
    }
    let (status, _, body) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let page = body.as_str().unwrap();
    assert!(page.contains("/assets/app.js") && page.contains("uPlot.iife.min.js"));
    for uri in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/vendor/",
    ] {
        let (status, _) = get(&app, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_runs_graph_has_its_layers_records_and_costs() {
    let rig = rig().await;
    let app = router(&rig).await;
    let (status, doc) = post(
        &app,
        "/v1/runs",
        &json!({ "pipeline": diamond(0), "wait": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["status"], "completed", "{doc}");
    let id = doc["execution_id"].as_str().unwrap();

    let (status, graph) = get(&app, &format!("/v1/runs/{id}/graph")).await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    assert_eq!(graph["run"]["status"], "completed");
    assert_eq!(graph["pipeline"]["id"], "diamond");
    let steps = graph["steps"].as_array().unwrap();
    let shape: Vec<(&str, u64, Vec<&str>)> = steps
        .iter()
        .map(|s| {
            let deps = s["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            (
                s["id"].as_str().unwrap(),
                s["depth"].as_u64().unwrap(),
                deps,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("outline", 0, vec![]),
            ("facts", 1, vec!["outline"]),
            ("tone", 1, vec!["outline"]),
            ("write", 2, vec!["facts", "tone"]),
        ]
    );
    for step in steps {
        assert_eq!(step["status"], "completed", "{step}");
        assert_eq!(step["action"], "generate");
        let record = &step["record"];
        assert_eq!(record["model"], "m", "{step}");
        assert!(record["cost"].as_f64().unwrap() > 0.0, "{step}");
        assert!(record["usage"]["output_tokens"].as_u64().unwrap() > 0);
        assert!(record["duration"].as_f64().is_some());
        assert!(record["value"]["result"].is_string(), "{step}");
    }
    // Parameters as the pipeline writes them: the template's text, not its value.
    assert_eq!(
        steps[1]["params"]["prompt"],
        "[[fake:delay_ms=0]] facts for {{ outline.result }}"
    );
    assert_eq!(steps[3]["line"], json!(17));
    let total: f64 = steps
        .iter()
        .map(|s| s["record"]["cost"].as_f64().unwrap())
        .sum();
    assert!((graph["run"]["result"]["cost"].as_f64().unwrap() - total).abs() < 1e-9);

    // The list shows what the run cost and how long it took.
    let (status, list) = get(&app, "/v1/runs?pipeline=diamond&status=completed").await;
    assert_eq!(status, StatusCode::OK);
    let row = &list["runs"][0];
    assert_eq!(row["run_id"], id);
    assert!(
        (row["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9,
        "{row}"
    );
    assert!(row["duration_s"].as_f64().unwrap() >= 0.0);
    let (_, none) = get(&app, "/v1/runs?pipeline=diamond&status=failed").await;
    assert_eq!(none["runs"], json!([]));

    let (status, body) = get(&app, "/v1/runs/nope/graph").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["type"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_runs_steps_without_records_are_pending() {
    let rig = rig().await;
    let app = router(&rig).await;
    let (status, started) = post(&app, "/v1/runs", &json!({ "pipeline": diamond(3000) })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap();
    let (status, graph) = get(&app, &format!("/v1/runs/{id}/graph")).await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    assert_eq!(graph["run"]["status"], "running");
    let statuses: Vec<&Value> = graph["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["status"])
        .collect();
    assert_eq!(statuses, vec!["pending"; 4]);
    assert!(graph["steps"][0]["record"].is_null());
    let (_, cancelled) = post(&app, &format!("/v1/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(cancelled["status"], "cancelling");
    rig.runtime
        .shutdown(std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_pages_are_open_and_their_data_is_not() {
    let rig = rig().await;
    let options = orc_server::ServerOptions {
        tokens: orc_server::Tokens::new(["page-token"]),
        ..crate::rig::options()
    };
    let app = orc_server::app(
        rig.runtime.clone(),
        &options,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    // The files carry no data: a browser loads them before it has a token to send.
    for uri in ["/", "/assets/app.js"] {
        let (status, _) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    for uri in ["/v1/runs", "/v1/runs/any/graph"] {
        let (status, _) = get(&app, uri).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, _, body) = send(
        &app,
        Request::get("/v1/runs")
            .header(header::AUTHORIZATION, "Bearer page-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["runs"], json!([]));
}
