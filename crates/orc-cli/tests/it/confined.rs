//! Pipelines posted to `orc serve` are untrusted (`server.sandbox`), through the real binary:
//! their files stay in the workspace (`..`, absolute paths and symbolic links refused, with real
//! files and links), `terminal` and `python-executor` are refused when posted (422), the
//! `http-client` tool reaches no loopback address (by address or by a name that resolves to
//! one) unless allowed, and a pathological template fails its step, not the service.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::serve::{Server, client};
use crate::support::Sandbox;

/// Posts `pipeline` with `inputs` and waits for its answer: the status and the body.
fn post(server: &Server, pipeline: &str, inputs: Value) -> (u16, Value) {
    let response = client()
        .post(server.url("/v1/runs?wait=true"))
        .json(&json!({ "pipeline": pipeline, "inputs": inputs }))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// A config file in the sandbox with this `server.sandbox` section.
fn config(sb: &Sandbox, sandbox: &str) -> String {
    sb.file("orc.yaml", &format!("server:\n  sandbox: {sandbox}\n"))
        .display()
        .to_string()
}

const FILES: &str = r#"
id: files
name: Files
parameters:
  secret: ""
steps:
  - id: write
    tool: filesystem
    action: write
    parameters: { path: notes/a.txt, content: kept }
  - id: read_back
    tool: filesystem
    action: read
    parameters: { path: notes/a.txt }
    dependencies: [write]
  - id: absolute
    tool: filesystem
    action: read
    parameters: { path: "{{ secret }}" }
    on_failure: continue
  - id: dot_dot
    tool: filesystem
    action: read
    parameters: { path: ../../secret.txt }
    on_failure: continue
  - id: overwrite
    tool: filesystem
    action: write
    parameters: { path: "{{ secret }}", content: pwned }
    on_failure: continue
  - id: data_file
    tool: data-processing
    action: convert
    parameters: { data: "{{ secret }}", output_format: json }
    on_failure: continue
outputs:
  content: "{{ read_back.result.content }}"
"#;

#[test]
fn a_posted_pipeline_s_files_stay_in_the_workspace() {
    let sb = Sandbox::new();
    let secret = sb.file("secret.txt", "s3cret");
    let server = Server::start(&sb, &[], &[]);
    let (status, doc) = post(&server, FILES, json!({ "secret": secret }));
    assert_eq!(status, 200, "{doc}");
    // Relative paths are the workspace's (`<data dir>/workspace`).
    assert_eq!(doc["outputs"]["content"], "kept", "{doc}");
    assert_eq!(sb.read("home/workspace/notes/a.txt"), "kept");
    let shown = secret.display().to_string();
    for (step, path) in [
        ("absolute", shown.as_str()),
        ("dot_dot", "../../secret.txt"),
        ("overwrite", shown.as_str()),
        ("data_file", shown.as_str()),
    ] {
        let error = doc["steps"][step]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("`{path}` is outside the workspace")),
            "{step}: {}",
            doc["steps"][step]
        );
        assert_eq!(doc["steps"][step]["status"], "failed");
    }
    assert_eq!(sb.read("secret.txt"), "s3cret");
    assert!(!doc.to_string().contains("s3cret"));
}

const LINKS: &str = r#"
id: links
name: Links
parameters:
  outside: ""
steps:
  - id: link
    tool: terminal
    action: execute
    parameters: { command: "ln -s {{ outside }} escape && mkdir -p in && ln -s in/ok.txt inner" }
  - id: through_link
    tool: filesystem
    action: read
    parameters: { path: escape/secret.txt }
    dependencies: [link]
    on_failure: continue
  - id: write_through_link
    tool: filesystem
    action: write
    parameters: { path: escape/planted.txt, content: x }
    dependencies: [link]
    on_failure: continue
  - id: write_inside
    tool: filesystem
    action: write
    parameters: { path: inner, content: fine }
    dependencies: [link]
"#;

#[test]
fn a_symbolic_link_an_earlier_step_made_does_not_lead_out() {
    let sb = Sandbox::new();
    sb.file("outside/secret.txt", "s3cret");
    // Commands on: the first step makes links (in the workspace, its working directory).
    let config = config(&sb, "{ allow_commands: true, workspace: ws }");
    let server = Server::start(&sb, &["--config", &config], &[]);
    let outside = sb.path("outside").display().to_string();
    let link = format!("cd {} && ", sb.path("ws").display());
    let pipeline = LINKS.replace("command: \"", &format!("command: \"{link}"));
    let (status, doc) = post(&server, &pipeline, json!({ "outside": outside }));
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["steps"]["link"]["status"], "completed", "{doc}");
    for step in ["through_link", "write_through_link"] {
        let error = doc["steps"][step]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("is outside the workspace"),
            "{step}: {}",
            doc["steps"][step]
        );
    }
    assert!(!sb.path("outside/planted.txt").exists());
    // A link that stays inside is followed.
    assert_eq!(doc["steps"]["write_inside"]["status"], "completed", "{doc}");
    assert_eq!(sb.read("ws/in/ok.txt"), "fine");
}

#[test]
fn commands_are_refused_when_posted_unless_the_service_allows_them() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[], &[]);
    let pipeline = "id: cmd\nname: Cmd\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: hi }\n  - id: each\n    for_each: \"{{ [1] }}\"\n    steps:\n      - id: py\n        tool: python-executor\n        action: execute\n        parameters: { code: \"print(1)\" }\n  - id: sh\n    tool: terminal\n    action: execute\n    parameters: { command: \"touch pwned\" }\n";
    let (status, body) = post(&server, pipeline, json!({}));
    assert_eq!(status, 422, "{body}");
    let findings = body["error"]["findings"].as_array().unwrap();
    let found: Vec<(&str, u64, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap(),
                f["line"].as_u64().unwrap(),
                f["step"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [("E023", 10, "py"), ("E023", 14, "sh")], "{body}");
    assert!(
        body["error"]["rendered"]
            .as_str()
            .unwrap()
            .contains("server.sandbox.allow_commands"),
        "{body}"
    );
    // Registering it is refused the same way; nothing ran.
    let registered = client()
        .put(server.url("/v1/pipelines/cmd"))
        .body(pipeline)
        .send()
        .unwrap();
    assert_eq!(registered.status().as_u16(), 422);
    assert!(!sb.path("pwned").exists() && !sb.path("home/workspace/pwned").exists());
    drop(server);

    let config = config(&sb, "{ allow_commands: true }");
    let server = Server::start(&sb, &["--config", &config], &[]);
    let (status, doc) = post(&server, pipeline, json!({}));
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["status"], "completed", "{doc}");
}

/// A plain HTTP server on 127.0.0.1 that answers every request `{"ok": true}` and counts them.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
            );
        }
    });
    (format!("{port}"), count)
}

const FETCH: &str = r#"
id: fetch
name: Fetch
parameters:
  port: ""
steps:
  - id: by_address
    tool: http-client
    action: get
    parameters: { url: "http://127.0.0.1:{{ port }}/", retries: 0 }
    on_failure: continue
  - id: by_name
    tool: http-client
    action: get
    parameters: { url: "http://localhost:{{ port }}/", retries: 0 }
    on_failure: continue
  - id: unspecified
    tool: http-client
    action: get
    parameters: { url: "http://0.0.0.0:{{ port }}/", retries: 0 }
    on_failure: continue
"#;

#[test]
fn http_client_reaches_no_private_address_unless_allowed() {
    let sb = Sandbox::new();
    let (port, count) = counting_server();
    let server = Server::start(&sb, &[], &[]);
    let (status, doc) = post(&server, FETCH, json!({ "port": port }));
    assert_eq!(status, 200, "{doc}");
    for (step, kind) in [
        ("by_address", "a loopback"),
        ("by_name", "a loopback"),
        ("unspecified", "an unspecified"),
    ] {
        let error = doc["steps"][step]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!(
                "{kind} address: this client connects to public addresses only"
            )),
            "{step}: {}",
            doc["steps"][step]
        );
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "a request reached the server"
    );
    drop(server);

    let config = config(&sb, "{ allow_private_network: true }");
    let server = Server::start(&sb, &["--config", &config], &[]);
    let (status, doc) = post(&server, FETCH, json!({ "port": port }));
    assert_eq!(status, 200, "{doc}");
    for step in ["by_address", "by_name"] {
        assert_eq!(doc["steps"][step]["status"], "completed", "{step}: {doc}");
        assert_eq!(doc["steps"][step]["value"]["result"]["json"]["ok"], true);
    }
    assert!(count.load(Ordering::SeqCst) >= 2);
}

#[test]
fn a_pathological_template_fails_its_step_not_the_service() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[], &[]);
    let bomb = "id: bomb\nname: Bomb\nsteps:\n  - id: loops\n    action: echo\n    parameters: { message: \"{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\" }\n    on_failure: continue\n  - id: big\n    action: echo\n    parameters: { message: \"{% for a in range(40) %}{{ 'x' * 1000000 }}{% endfor %}\" }\n    on_failure: continue\n  - id: after\n    action: echo\n    parameters: { message: fine }\n";
    let started = std::time::Instant::now();
    let (status, doc) = post(&server, bomb, json!({}));
    assert_eq!(status, 200, "{doc}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let loops = doc["steps"]["loops"]["error"].as_str().unwrap_or_default();
    assert!(loops.contains("fuel"), "{}", doc["steps"]["loops"]);
    let big = doc["steps"]["big"]["error"].as_str().unwrap_or_default();
    assert!(
        big.contains("fuel") || big.contains("longer than 16 MiB"),
        "{}",
        doc["steps"]["big"]
    );
    assert_eq!(doc["steps"]["after"]["status"], "completed");
    let health = client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let (status, doc) = post(
        &server,
        "id: ok\nname: Ok\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: hi }\n",
        json!({}),
    );
    assert_eq!((status, doc["status"].as_str()), (200, Some("completed")));
}

#[test]
fn a_posted_pipeline_s_sub_pipelines_are_files_of_the_workspace() {
    let sb = Sandbox::new();
    let sub = "id: sub\nname: Sub\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: from the workspace }\noutputs:\n  said: \"{{ hi.result }}\"\n";
    sb.file("home/workspace/subs/sub.yaml", sub);
    let outside = sb.file("outside.yaml", sub);
    let server = Server::start(&sb, &[], &[]);
    let calling = |path: &str| {
        format!(
            "id: caller\nname: Caller\nsteps:\n  - id: call\n    tool: pipeline-executor\n    action: execute\n    parameters: {{ pipeline: \"{path}\" }}\noutputs:\n  said: \"{{{{ call.outputs.said }}}}\"\n"
        )
    };
    let (status, doc) = post(&server, &calling("subs/sub.yaml"), json!({}));
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["outputs"]["said"], "from the workspace", "{doc}");
    let shown = outside.display().to_string();
    for path in [shown.as_str(), "../../outside.yaml"] {
        let (status, body) = post(&server, &calling(path), json!({}));
        assert_eq!(status, 422, "{path}: {body}");
        let message = body["error"]["findings"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains(&format!("`{path}` is outside the workspace")),
            "{path}: {body}"
        );
    }
}
