//! The `http-client` tool through the real binary, against a real axum server on 127.0.0.1
//! started by the test (it counts every request it is sent): each method, query, headers,
//! JSON, form and text bodies, redirects, retries after 429 (honouring `Retry-After`) and 5xx,
//! timeouts, the body limit, credentials from the environment that appear nowhere, and a
//! proxy named by `HTTP_PROXY`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use crate::support::{Run, Sandbox};

/// What the server saw: each path's requests, with when they came and what they carried.
#[derive(Default)]
struct Seen {
    requests: Mutex<HashMap<String, Vec<(Instant, Value)>>>,
}

impl Seen {
    fn record(&self, path: &str, request: Value) -> usize {
        let mut requests = self.requests.lock().unwrap();
        let list = requests.entry(path.to_owned()).or_default();
        list.push((Instant::now(), request));
        list.len()
    }
}

/// A server on its own runtime while the test runs `orc`.
struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(router: fn(Arc<Seen>) -> Router) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Seen::default());
        let app = router(Arc::clone(&seen));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests sent to `path`.
    fn requests(&self, path: &str) -> Vec<(Instant, Value)> {
        self.seen
            .requests
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    fn count(&self, path: &str) -> usize {
        self.requests(path).len()
    }
}

/// A request as JSON: method, path, query, headers and body.
async fn described(request: Request) -> Value {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into()))
        .collect();
    json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    })
}

fn json_answer(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn redirect(status: StatusCode, to: &str) -> Response {
    (status, [(header::LOCATION, to.to_owned())]).into_response()
}

/// The test server's routes: every request is recorded, then answered by its path.
fn routes(seen: Arc<Seen>) -> Router {
    Router::new().fallback(any(answer)).with_state(seen)
}

async fn answer(State(seen): State<Arc<Seen>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let head_request = request.method() == Method::HEAD;
    let seen_request = described(request).await;
    let n = seen.record(&path, seen_request.clone());
    match path.as_str() {
        "/echo" if head_request => (StatusCode::OK, [("x-echo", "head")]).into_response(),
        "/echo" => json_answer(StatusCode::OK, &seen_request),
        "/text" => "plain words".into_response(),
        "/rate-limited" if n == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response(),
        "/rate-limited" => json_answer(StatusCode::OK, &json!({"attempt": n})),
        "/unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "down for now").into_response(),
        "/missing" => (StatusCode::NOT_FOUND, "no such thing here").into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late".into_response()
        }
        "/big" => vec![b'x'; 2 << 20].into_response(),
        "/big-chunked" => {
            let chunks =
                (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 32 << 10])));
            Body::from_stream(futures::stream::iter(chunks)).into_response()
        }
        "/found" => redirect(StatusCode::FOUND, "/echo?from=found"),
        "/see-other" => redirect(StatusCode::SEE_OTHER, "/echo"),
        "/temporary" => redirect(StatusCode::TEMPORARY_REDIRECT, "/echo"),
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        // To the same path on another origin: 127.0.0.1 at the port in the query (`?port=N`).
        "/away" => {
            let port = query.strip_prefix("port=").unwrap_or("0");
            redirect(StatusCode::FOUND, &format!("http://127.0.0.1:{port}/echo"))
        }
        // Quotes the credential it was sent in its error, as some APIs do.
        "/denied" => {
            let auth = seen_request["headers"]["authorization"].clone();
            (StatusCode::UNAUTHORIZED, format!("bad credential {auth}")).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "unknown path").into_response(),
    }
}

/// A forward proxy that answers every request itself, saying which URL it was asked for.
fn proxy_routes(seen: Arc<Seen>) -> Router {
    Router::new()
        .fallback(any(|State(seen): State<Arc<Seen>>, request: Request| async move {
            let seen_request = described(request).await;
            seen.record("proxied", seen_request.clone());
            json_answer(
                StatusCode::OK,
                &json!({"via": "proxy", "uri": seen_request["uri"], "host": seen_request["headers"]["host"]}),
            )
        }))
        .with_state(seen)
}

/// Runs `orc run` on `pipeline` with no proxy in the environment, and `env` set.
fn run(sb: &Sandbox, pipeline: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let path = sb.file("p.yaml", pipeline);
    let mut command = sb.command();
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command
        .arg("run")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn step(doc: &Value, id: &str) -> Value {
    doc["steps"][id].clone()
}

fn result(doc: &Value, id: &str) -> Value {
    doc["steps"][id]["value"]["result"].clone()
}

#[test]
fn each_method_sends_its_query_headers_and_body() {
    let server = Server::start(routes);
    let echo = server.url("/echo");
    let sb = Sandbox::new();
    let r = run(
        &sb,
        &format!(
            r#"name: methods
parameters:
  topic: {{ type: string, default: "rust & tokio" }}
steps:
  - id: get
    tool: http-client
    action: get
    parameters:
      url: "{echo}?lang=en"
      headers: {{ User-Agent: "Orchestrator Research Bot 1.0", X-Topic: "{{{{ topic }}}}" }}
      params: {{ q: "{{{{ topic }}}}", pageSize: 5, tags: [a, b], exact: true }}
      timeout: "30"
  - id: post
    tool: http-client
    action: post
    parameters: {{ url: "{echo}", json: {{ name: orc, n: [1, 2] }} }}
  - id: put
    tool: http-client
    action: put
    parameters: {{ url: "{echo}", data: {{ name: a b, n: 1 }} }}
  - id: patch
    tool: http-client
    action: patch
    parameters: {{ url: "{echo}", data: "raw text", headers: {{ Content-Type: text/csv }} }}
  - id: delete
    tool: http-client
    action: delete
    parameters: {{ url: "{echo}" }}
  - id: head
    tool: http-client
    action: head
    parameters: {{ url: "{echo}" }}
  - id: options
    tool: http-client
    action: request
    parameters: {{ method: options, url: "{echo}" }}
  - id: text
    tool: http-client
    action: get
    parameters: {{ url: "{text}" }}
outputs:
  first_tag: "{{{{ get.result.json.query }}}}"
"#,
            text = server.url("/text"),
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let doc = r.doc();
    let get = result(&doc, "get");
    assert_eq!(get["status"], 200, "{get}");
    assert_eq!(get["headers"]["content-type"], "application/json");
    let sent = &get["json"];
    assert_eq!(sent["method"], "GET");
    assert_eq!(
        sent["query"],
        "lang=en&q=rust+%26+tokio&pageSize=5&tags=a&tags=b&exact=True"
    );
    assert_eq!(
        sent["headers"]["user-agent"],
        "Orchestrator Research Bot 1.0"
    );
    assert_eq!(sent["headers"]["x-topic"], "rust & tokio");
    assert_eq!(
        get["url"],
        format!("{echo}?lang=en&q=rust+%26+tokio&pageSize=5&tags=a&tags=b&exact=True")
    );
    assert_eq!(doc["outputs"]["first_tag"], sent["query"]);

    let post = &result(&doc, "post")["json"];
    assert_eq!(post["method"], "POST");
    assert_eq!(post["headers"]["content-type"], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(post["body"].as_str().unwrap()).unwrap(),
        json!({"name": "orc", "n": [1, 2]})
    );
    let put = &result(&doc, "put")["json"];
    assert_eq!(put["method"], "PUT");
    assert_eq!(
        put["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(put["body"], "name=a+b&n=1");
    let patch = &result(&doc, "patch")["json"];
    assert_eq!(
        (&patch["method"], &patch["body"]),
        (&json!("PATCH"), &json!("raw text"))
    );
    assert_eq!(patch["headers"]["content-type"], "text/csv");
    assert_eq!(result(&doc, "delete")["json"]["method"], "DELETE");
    let head = result(&doc, "head");
    assert_eq!((&head["status"], &head["text"]), (&json!(200), &json!("")));
    assert_eq!(head["headers"]["x-echo"], "head");
    assert_eq!(result(&doc, "options")["json"]["method"], "OPTIONS");
    assert_eq!(result(&doc, "text")["text"], "plain words");
    assert!(result(&doc, "text").get("json").is_none());
    // Each step sent one request: no retry of a success.
    assert_eq!(server.count("/echo"), 7);
    assert_eq!(server.count("/text"), 1);
}

#[test]
fn a_429_is_retried_after_the_wait_it_asks_for() {
    let server = Server::start(routes);
    let sb = Sandbox::new();
    let r = run(
        &sb,
        &format!(
            "name: limited\nsteps:\n  - id: call\n    tool: http-client\n    action: get\n    parameters: {{ url: \"{}\" }}\n",
            server.url("/rate-limited")
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(result(&r.doc(), "call")["json"]["attempt"], 2);
    let requests = server.requests("/rate-limited");
    assert_eq!(requests.len(), 2);
    let waited = requests[1].0 - requests[0].0;
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[test]
fn error_statuses_fail_the_step_after_the_retries_that_can_help() {
    let server = Server::start(routes);
    let sb = Sandbox::new();
    let r = run(
        &sb,
        &format!(
            r#"name: failing
steps:
  - id: down
    tool: http-client
    action: post
    on_failure: continue
    parameters: {{ url: "{unavailable}", json: {{ a: 1 }}, retries: 2 }}
  - id: missing
    tool: http-client
    action: get
    on_failure: continue
    parameters: {{ url: "{missing}?key=value" }}
  - id: tolerated
    tool: http-client
    action: get
    parameters: {{ url: "{missing}", raise_for_status: false }}
  - id: after
    action: echo
    parameters: {{ message: "{{{{ missing.result.status }}}} {{{{ tolerated.result.text }}}}" }}
    dependencies: [missing, tolerated]
"#,
            unavailable = server.url("/unavailable"),
            missing = server.url("/missing"),
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let doc = r.doc();
    let down = step(&doc, "down");
    assert_eq!(down["status"], "failed", "{down}");
    assert_eq!(
        down["error"],
        format!(
            "POST {} answered 503 Service Unavailable (after 3 attempts): down for now",
            server.url("/unavailable")
        )
    );
    assert_eq!(down["value"]["result"]["status"], 503);
    assert_eq!(
        server.count("/unavailable"),
        3,
        "the first try and 2 retries"
    );

    let missing = step(&doc, "missing");
    assert_eq!(missing["status"], "failed");
    assert_eq!(
        missing["error"],
        format!(
            "GET {} answered 404 Not Found: no such thing here",
            server.url("/missing")
        )
    );
    let tolerated = step(&doc, "tolerated");
    assert_eq!(tolerated["status"], "completed", "{tolerated}");
    assert_eq!(tolerated["value"]["result"]["status"], 404);
    assert_eq!(server.count("/missing"), 2, "a 404 is not retried");
    assert_eq!(result(&doc, "after"), "404 no such thing here");
}

#[test]
fn a_slow_answer_times_out_and_a_big_body_is_refused() {
    let server = Server::start(routes);
    let sb = Sandbox::new();
    let started = Instant::now();
    let r = run(
        &sb,
        &format!(
            r#"name: limits
steps:
  - id: slow
    tool: http-client
    action: get
    on_failure: continue
    parameters: {{ url: "{slow}", timeout: 0.5, retries: 0 }}
  - id: big
    tool: http-client
    action: get
    on_failure: continue
    parameters: {{ url: "{big}", max_response_bytes: 1000000 }}
  - id: chunked
    tool: http-client
    action: get
    on_failure: continue
    parameters: {{ url: "{chunked}", max_response_bytes: 1000000 }}
  - id: enough
    tool: http-client
    action: get
    parameters: {{ url: "{chunked}", max_response_bytes: 3000000 }}
"#,
            slow = server.url("/slow"),
            big = server.url("/big"),
            chunked = server.url("/big-chunked"),
        ),
        &[],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let doc = r.doc();
    let slow = step(&doc, "slow");
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["error"], "timed out: the request timed out", "{slow}");
    assert_eq!(server.count("/slow"), 1);
    for id in ["big", "chunked"] {
        let s = step(&doc, id);
        assert_eq!(s["status"], "failed", "{s}");
        assert_eq!(
            s["error"],
            "invalid response: the body is larger than the limit of 1000000 bytes"
        );
    }
    assert_eq!(
        server.count("/big"),
        1,
        "a body over the limit is not retried"
    );
    assert_eq!(
        result(&doc, "enough")["text"].as_str().unwrap().len(),
        2 << 20
    );
}

#[test]
fn redirects_are_followed_a_few_times_and_credentials_stay_with_their_origin() {
    let server = Server::start(routes);
    let other = Server::start(routes);
    let sb = Sandbox::new();
    let r = run(
        &sb,
        &format!(
            r#"name: redirects
steps:
  - id: found
    tool: http-client
    action: get
    parameters: {{ url: "{found}" }}
  - id: see_other
    tool: http-client
    action: post
    parameters: {{ url: "{see_other}", json: {{ a: 1 }} }}
  - id: temporary
    tool: http-client
    action: post
    parameters: {{ url: "{temporary}", json: {{ a: 1 }} }}
  - id: not_followed
    tool: http-client
    action: get
    parameters: {{ url: "{found}", allow_redirects: false }}
  - id: loop
    tool: http-client
    action: get
    on_failure: continue
    parameters: {{ url: "{looping}" }}
  - id: away
    tool: http-client
    action: get
    parameters:
      url: "{away}"
      params: {{ port: {other_port} }}
      auth: {{ type: header, name: X-Api-Key, value_env: ORC_HTTP_TEST_KEY }}
      headers: {{ X-Kept: yes }}
"#,
            found = server.url("/found"),
            see_other = server.url("/see-other"),
            temporary = server.url("/temporary"),
            looping = server.url("/loop"),
            away = server.url("/away"),
            other_port = other.addr.port(),
        ),
        &[("ORC_HTTP_TEST_KEY", "key-0123456789")],
        &[],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let doc = r.doc();
    let found = result(&doc, "found");
    assert_eq!(found["url"], server.url("/echo?from=found"));
    assert_eq!(found["json"]["query"], "from=found");
    let see_other = &result(&doc, "see_other")["json"];
    assert_eq!(
        (&see_other["method"], &see_other["body"]),
        (&json!("GET"), &json!(""))
    );
    let temporary = &result(&doc, "temporary")["json"];
    assert_eq!(temporary["method"], "POST");
    assert_eq!(temporary["body"], r#"{"a":1}"#);
    let not_followed = result(&doc, "not_followed");
    assert_eq!(not_followed["status"], 302);
    assert_eq!(not_followed["headers"]["location"], "/echo?from=found");
    assert_eq!(
        step(&doc, "loop")["error"],
        "more than 10 redirects, the last to /loop"
    );
    assert_eq!(server.count("/loop"), 11);
    // The other origin got the request without the credential.
    let away = &result(&doc, "away")["json"];
    assert_eq!(away["headers"]["x-kept"], "yes");
    assert!(away["headers"].get("x-api-key").is_none(), "{away}");
    assert_eq!(
        server.requests("/away")[0].1["headers"]["x-api-key"],
        "key-0123456789"
    );
    assert_eq!(other.count("/echo"), 1);
}

#[test]
fn credentials_from_the_environment_never_show() {
    const TOKEN: &str = "tok-5f2b9c0e7d1a4b3c";
    let server = Server::start(routes);
    let sb = Sandbox::new();
    let r = run(
        &sb,
        &format!(
            r#"name: secrets
steps:
  - id: bearer
    tool: http-client
    action: get
    parameters:
      url: "{echo}"
      auth: {{ type: bearer, token_env: ORC_HTTP_TEST_TOKEN }}
  - id: basic
    tool: http-client
    action: get
    parameters:
      url: "{echo}"
      auth: {{ type: basic, username: alice, password_env: ORC_HTTP_TEST_TOKEN }}
  - id: denied
    tool: http-client
    action: get
    on_failure: continue
    parameters:
      url: "{denied}"
      auth: {{ type: bearer, token_env: ORC_HTTP_TEST_TOKEN }}
  - id: unset
    tool: http-client
    action: get
    on_failure: continue
    parameters:
      url: "{echo}"
      auth: {{ type: bearer, token_env: ORC_HTTP_TEST_SURELY_UNSET }}
"#,
            echo = server.url("/echo"),
            denied = server.url("/denied"),
        ),
        &[("ORC_HTTP_TEST_TOKEN", TOKEN), ("ORC_LOG", "debug")],
        &["--trace", "trace.json", "--profile", "profile.json"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // The server was sent the real credentials.
    let sent = server.requests("/echo");
    assert_eq!(sent.len(), 2, "the unset variable sent nothing");
    let mut sent: Vec<String> = sent
        .iter()
        .map(|(_, r)| r["headers"]["authorization"].as_str().unwrap().to_owned())
        .collect();
    sent.sort();
    let basic = sent[0].clone();
    assert!(basic.starts_with("Basic "), "{basic}");
    assert_eq!(sent[1], format!("Bearer {TOKEN}"));
    // What it echoed back is redacted, in results and errors.
    let doc = r.doc();
    assert_eq!(
        result(&doc, "bearer")["json"]["headers"]["authorization"],
        "Bearer [redacted]"
    );
    assert_eq!(
        result(&doc, "basic")["json"]["headers"]["authorization"],
        "Basic [redacted]"
    );
    let denied = step(&doc, "denied");
    assert_eq!(
        denied["error"],
        format!(
            "GET {} answered 401 Unauthorized: bad credential \"Bearer [redacted]\"",
            server.url("/denied")
        )
    );
    assert_eq!(
        step(&doc, "unset")["error"],
        "`auth.token_env`: the environment variable ORC_HTTP_TEST_SURELY_UNSET is not set; hint: export ORC_HTTP_TEST_SURELY_UNSET"
    );
    let encoded = basic.trim_start_matches("Basic ");
    let trace = sb.read("trace.json");
    let profile = sb.read("profile.json");
    for (what, text) in [
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
        ("trace", &trace),
        ("profile", &profile),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the token:\n{text}");
        assert!(
            !text.contains(encoded),
            "{what} shows the basic credential:\n{text}"
        );
    }
    assert!(
        r.stderr.contains("DEBUG") || r.stderr.contains("INFO"),
        "logs were on: {}",
        r.stderr
    );
}

#[test]
fn requests_go_through_the_proxy_the_environment_names() {
    let proxy = Server::start(proxy_routes);
    let sb = Sandbox::new();
    let proxy_url = format!("http://{}", proxy.addr);
    let r = run(
        &sb,
        "name: proxied\nsteps:\n  - id: call\n    tool: http-client\n    action: get\n    parameters: { url: \"http://orc-http-test.invalid/hello\", params: { a: 1 } }\n",
        &[("HTTP_PROXY", &proxy_url)],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let answer = &result(&r.doc(), "call")["json"];
    assert_eq!(answer["via"], "proxy");
    assert_eq!(answer["uri"], "http://orc-http-test.invalid/hello?a=1");
    assert_eq!(answer["host"], "orc-http-test.invalid");
    assert_eq!(proxy.count("proxied"), 1);
}

#[test]
fn validate_checks_http_client_steps_as_py_orc_writes_them() {
    let sb = Sandbox::new();
    // As py-orc's examples/integrations/external_apis.yaml writes its requests.
    let good = sb.file(
        "good.yaml",
        r#"name: apis
parameters:
  research_topic: { type: string, default: rust }
  max_results_per_source: { type: integer, default: 5 }
steps:
  - id: fetch_academic_data
    tool: http-client
    action: get
    parameters:
      url: "https://api.semanticscholar.org/graph/v1/paper/search"
      headers:
        User-Agent: "Orchestrator Research Bot 1.0"
      params:
        query: "{{ research_topic }}"
        limit: "{{ max_results_per_source }}"
        fields: "title,abstract,authors,year,citationCount,url"
      timeout: 30
    on_failure: continue
"#,
    );
    let r = sb.orc(&["validate", good.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bad = sb.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: call\n    tool: http-client\n    action: post\n    parameters: { url: 'http://h/', jsno: {}, params: [1, 2] }\n  - id: fetch\n    tool: http-client\n    action: fetch\n    parameters: { url: 'http://h/' }\n",
    );
    let r = sb.orc(&["validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for expected in [
        "`http-client` action `post` has no parameter `jsno`",
        "did you mean `json`?",
        "bad.yaml:6:",
        "parameters.params",
        "fetch",
    ] {
        assert!(
            r.stderr.contains(expected),
            "no `{expected}` in:\n{}",
            r.stderr
        );
    }
    let tools = sb.orc(&["tools", "http-client"]);
    assert_eq!(tools.code, 0, "{}", tools.stderr);
    for action in ["get", "post", "put", "patch", "delete", "head", "request"] {
        assert!(tools.stdout.contains(action), "{}", tools.stdout);
    }
}
