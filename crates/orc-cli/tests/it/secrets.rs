//! The secrets audit: `orc serve` (the real binary, logging at debug level) with an API bearer
//! token, a model API key the fake provider checks, a wrong key it refuses, a PostgreSQL state
//! URL with a password, and an `http-client` credential that a server echoes back; runs and chat
//! calls use every one. Then everything orc wrote or answered is searched: the service's log, its
//! `/metrics`, every `/v1` answer (result documents, events, lists, stats, errors), the state
//! store's whole dump (`pg_dump`), every file under `ORC_HOME`, and `orc run`'s output, log,
//! profile and trace of the same pipeline. No secret may be anywhere.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::models::{Fake, KEY, KEY_VAR};
use crate::serve::{Server, client};
use crate::support::Sandbox;
use crate::workers::Database;

const TOKEN: &str = "tok-audit-7f3e9a1c55e0";
const TOKEN_VAR: &str = "ORC_AUDIT_TOKENS";
const WRONG_KEY: &str = "sk-wrong-audit-99aa17c3";
const WRONG_VAR: &str = "ORC_AUDIT_WRONG_KEY";
const PG_PASSWORD: &str = "pgAuditSecret5e1b77";
const HTTP_TOKEN: &str = "http-audit-2c9d41ab0f";
const HTTP_VAR: &str = "ORC_AUDIT_HTTP_TOKEN";

const SECRETS: &[&str] = &[TOKEN, KEY, WRONG_KEY, PG_PASSWORD, HTTP_TOKEN];

/// A server on 127.0.0.1 that answers each request with the request's own head as JSON (so
/// the credential it was sent comes back), and counts the requests that carried `HTTP_TOKEN`.
fn echo_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let carried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&carried);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if head.contains(HTTP_TOKEN) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            let body = json!({ "echo": head }).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Echo: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                head.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization"))
                    .unwrap_or(""),
                body.len()
            );
        }
    });
    (port, carried)
}

/// The pipeline every run uses: a model call with the right key, one with the wrong key (it
/// fails, with the provider's refusal), and a request with a credential that is echoed back.
fn pipeline(port: u16) -> String {
    format!(
        r#"
id: audit
name: Audit
steps:
  - id: ask
    action: generate
    model: fake-small
    parameters: {{ prompt: "Say something about secrets", max_tokens: 20 }}
  - id: refused
    action: generate
    model: wrong-key
    parameters: {{ prompt: "This call is refused", max_tokens: 20 }}
    on_failure: continue
  - id: fetch
    tool: http-client
    action: get
    parameters:
      url: "http://127.0.0.1:{port}/echo"
      auth: {{ type: bearer, token_env: {HTTP_VAR} }}
      retries: 0
outputs:
  said: "{{{{ ask.result }}}}"
  echoed: "{{{{ fetch.result.json.echo }}}}"
"#
    )
}

/// Every secret found in `text`, for the assertion's message.
fn leaks(what: &str, text: &str) -> Vec<String> {
    SECRETS
        .iter()
        .filter(|s| text.contains(*s))
        .map(|s| format!("{what} holds `{s}`"))
        .collect()
}

/// Every file under `dir`, as text (invalid UTF-8 replaced), with its path.
fn files_under(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            // Compressed files (zstd) are searched decompressed too.
            let text = zstd::decode_all(bytes.as_slice())
                .map(|plain| String::from_utf8_lossy(&plain).into_owned())
                .unwrap_or_default();
            out.push((
                path.display().to_string(),
                format!("{}\n{text}", String::from_utf8_lossy(&bytes)),
            ));
        }
    }
}

/// The `bytea` values of a `pg_dump` (`\\x` and hex digits), decompressed where they are zstd.
fn unpacked_bytea(dump: &str) -> String {
    let mut out = String::new();
    for piece in dump.split("\\x").skip(1) {
        let hex: String = piece.chars().take_while(char::is_ascii_hexdigit).collect();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        let plain = zstd::decode_all(bytes.as_slice()).unwrap_or(bytes);
        out.push_str(&String::from_utf8_lossy(&plain));
        out.push('\n');
    }
    out
}

#[test]
fn no_secret_reaches_logs_metrics_documents_answers_or_the_store() {
    let Some(db) = Database::create("audit") else {
        return;
    };
    let mut state = reqwest::Url::parse(&db.url).unwrap();
    state.set_password(Some(PG_PASSWORD)).unwrap();
    let fake = Fake::start(orc_fake_provider::Behaviour::default());
    let base = fake.provider().openai_base_url();
    let (port, carried) = echo_server();
    let sb = Sandbox::new();
    let config = sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: fake-small\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 0.5, output_per_1k: 1.5 }}\n  - name: wrong-key\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {WRONG_VAR}\n    cost: {{ input_per_1k: 0.5, output_per_1k: 1.5 }}\nstate:\n  url: \"{state}\"\nserver:\n  auth: {{ token_env: {TOKEN_VAR} }}\n  sandbox: {{ allow_private_network: true }}\n"
        ),
    );
    let config = config.display().to_string();
    let env = [
        (TOKEN_VAR, TOKEN),
        (KEY_VAR, KEY),
        (WRONG_VAR, WRONG_KEY),
        (HTTP_VAR, HTTP_TOKEN),
        ("ORC_LOG", "debug"),
    ];
    let server = Server::start(&sb, &["--config", &config], &env);
    let http = client();
    let mut found: Vec<String> = Vec::new();
    let mut answers = String::new();
    let mut get = |path: &str| {
        let response = http
            .get(server.url(path))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        answers.push_str(&format!("GET {path} {status}\n{text}\n"));
        (status, text)
    };

    // A run that uses the model key, the wrong key and the http-client credential.
    let response = client()
        .post(server.url("/v1/runs?wait=true"))
        .bearer_auth(TOKEN)
        .json(&json!({ "pipeline": pipeline(port), "run_id": "audit-1" }))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let doc: Value = response.json().unwrap();
    assert_eq!(doc["steps"]["ask"]["status"], "completed", "{doc}");
    assert_eq!(doc["steps"]["refused"]["status"], "failed", "{doc}");
    assert_eq!(doc["steps"]["fetch"]["status"], "completed", "{doc}");
    assert_eq!(
        carried.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the credential was sent"
    );
    found.extend(leaks("the result document", &doc.to_string()));

    // The OpenAI-compatible gateway, with each key, and refusals of the token.
    for model in ["fake-small", "wrong-key"] {
        let chat = client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .json(&json!({ "model": model, "messages": [{"role": "user", "content": format!("hello {model}")}] }))
            .send()
            .unwrap();
        let status = chat.status().as_u16();
        assert_eq!(status == 200, model == "fake-small", "{model}: {status}");
        found.extend(leaks(
            &format!("the chat answer of {model}"),
            &chat.text().unwrap(),
        ));
    }
    let refused = client()
        .get(server.url("/v1/runs"))
        .bearer_auth(format!("{TOKEN}x"))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    found.extend(leaks("a 401 answer", &refused.text().unwrap()));

    for path in [
        "/v1/runs",
        "/v1/runs/audit-1",
        "/v1/runs/audit-1/events",
        "/v1/runs/audit-1/graph",
        "/v1/models",
        "/v1/stats/series",
        "/v1/stats/models",
        "/v1/reports/daily",
        "/metrics",
        "/readyz",
    ] {
        let (status, _) = get(path);
        assert!(status < 500, "{path}: {status}");
    }
    found.extend(leaks("the API's answers", &answers));
    assert!(
        answers.contains("orc_model_requests_total"),
        "/metrics was read"
    );

    let (code, log) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("DEBUG"), "the log is at debug level:\n{log}");
    found.extend(leaks("the service's log", &log));

    // The same pipeline through `orc run`, with its profile and trace.
    let profile = sb.path("profile.json");
    let trace = sb.path("trace.json");
    let mut run = sb.command();
    for (k, v) in env {
        run.env(k, v);
    }
    let run: crate::support::Run = run
        .args(["--config", &config, "-v", "-v", "run"])
        .arg(sb.file("audit.yaml", &pipeline(port)))
        .args(["--run-id", "audit-2", "--profile"])
        .arg(&profile)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap()
        .into();
    assert_eq!(
        run.code, 1,
        "the refused step fails the run:\n{}",
        run.stderr
    );
    found.extend(leaks("orc run's result document", &run.stdout));
    found.extend(leaks("orc run's log", &run.stderr));
    for shown in [
        vec!["config", "show"],
        vec!["runs", "list"],
        vec!["runs", "show", "audit-1"],
        vec!["models", "stats"],
        vec!["report", "daily"],
    ] {
        let mut command = sb.command();
        let out: crate::support::Run = command
            .env(KEY_VAR, KEY)
            .env(WRONG_VAR, WRONG_KEY)
            .args(["--config", &config])
            .args(&shown)
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code, 0, "{shown:?}: {}", out.stderr);
        found.extend(leaks(
            &format!("orc {}", shown.join(" ")),
            &format!("{}{}", out.stdout, out.stderr),
        ));
    }

    // Every file orc keeps (kept pipelines, caches, the service's records) and the run's files.
    let mut files = Vec::new();
    files_under(&sb.path("home"), &mut files);
    files.push((
        "the profile".into(),
        std::fs::read_to_string(&profile).unwrap(),
    ));
    files.push(("the trace".into(), std::fs::read_to_string(&trace).unwrap()));
    assert!(files.len() > 3, "{files:?}");
    for (path, text) in &files {
        found.extend(leaks(path, text));
    }

    // The whole state store.
    let dump = Command::new("pg_dump")
        .args([db.url.as_str(), "--data-only", "--no-owner"])
        .output()
        .expect("pg_dump (PostgreSQL's client) runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.contains("audit-1") && dump.contains("audit-2"),
        "the runs are in the store"
    );
    found.extend(leaks("the state store", &dump));
    // Checkpoints and documents are zstd-compressed `bytea`, which `pg_dump` writes as hex.
    let decoded = unpacked_bytea(&dump);
    assert!(
        decoded.contains("Say something"),
        "the checkpoints were read"
    );
    found.extend(leaks("the state store's compressed values", &decoded));

    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}
