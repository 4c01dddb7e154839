//! `orc serve` as a process: it listens, runs posted pipelines, refuses to listen beyond loopback
//! without tokens, and on SIGTERM stops gracefully, leaving running runs resumable.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Sandbox, signal};

/// A running `orc serve` and its address.
pub(crate) struct Server {
    child: Child,
    base: String,
    log: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub(crate) fn start(sb: &Sandbox, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = sb.command();
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("orc serve says where it listens");
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().to_owned();
            }
        };
        Server {
            child,
            base,
            log: rx,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit code (at most `within`).
    pub(crate) fn stop(mut self, within: Duration) -> (i32, String) {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log: Vec<String> = self.log.try_iter().collect();
                return (status.code().unwrap_or(-1), log.join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "orc serve did not stop in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::blocking::Client {
    // reqwest takes its TLS crypto from the process default (the workspace builds it with
    // `rustls-no-provider`); installing it again is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits (at most 20 s) until run `id` has `n` checkpoints.
fn wait_for_steps(http: &reqwest::blocking::Client, server: &Server, id: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(server.url(&format!("/v1/runs/{id}")))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["steps_done"]
        != n
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 30 s) until run `id` has completed; returns its result document.
fn wait_for_completion(http: &reqwest::blocking::Client, server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc: Value = http
            .get(server.url(&format!("/v1/runs/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if doc["status"] == "completed" {
            return doc;
        }
        assert!(Instant::now() < deadline, "{doc}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ECHO: &str = "id: echo\nname: Echo\nparameters:\n  who: world\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: \"hi {{ who }}\" }\noutputs:\n  said: \"{{ hi.result }}\"\n";

#[test]
fn orc_serve_runs_posted_pipelines_and_stops_gracefully_leaving_runs_resumable() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--config", &commands(&sb)], &[]);
    let http = client();

    let doc: Value = http
        .post(server.url("/v1/runs?wait=true"))
        .json(&json!({ "pipeline": ECHO, "inputs": { "who": "service" } }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["outputs"]["said"], "hi service");

    let flag = sb.path("flag");
    let slow = waits_for(&flag);
    let response = http
        .post(server.url("/v1/runs"))
        .json(&json!({ "pipeline": slow, "run_id": "slow" }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    wait_for_steps(&http, &server, "slow", 1);

    let (code, log) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
    let listed = sb.orc(&["runs", "list", "--json"]);
    let runs: Value = serde_json::from_str(&listed.stdout).unwrap();
    let slow_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "slow")
        .unwrap();
    assert_eq!(slow_run["status"], "interrupted", "{runs}");

    // A service started again on the same store resumes the run; `first` is not run again.
    std::fs::write(&flag, "").unwrap();
    let server = Server::start(&sb, &["--config", &commands(&sb)], &[]);
    let doc = wait_for_completion(&http, &server, "slow");
    assert_eq!(doc["steps"]["wait"]["status"], "completed", "{doc}");
    let events: String = http
        .get(server.url("/v1/runs/slow/events"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!events.contains("\"step\":\"first\",\"tool\""), "{events}");
    let (code, _) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0);
}

/// A config that lets posted pipelines run commands (`server.sandbox.allow_commands`), as
/// [`waits_for`]'s does.
fn commands(sb: &Sandbox) -> String {
    sb.file("orc.yaml", "server:\n  sandbox: { allow_commands: true }\n")
        .display()
        .to_string()
}

/// A pipeline whose second step waits until `flag` exists (at most 30 s).
fn waits_for(flag: &std::path::Path) -> String {
    format!(
        "id: slow\nname: Slow\nsteps:\n  - id: first\n    action: echo\n    parameters: {{ message: one }}\n  - id: wait\n    tool: terminal\n    action: execute\n    parameters:\n      command: \"for i in $(seq 300); do test -f {} && exit 0; sleep 0.1; done; exit 1\"\n    dependencies: [first]\n",
        flag.display()
    )
}

/// A killed service's runs are resumed by the next `orc serve` on the same store: the service
/// keeps the ids of its runs in progress on disk.
#[test]
fn orc_serve_resumes_the_runs_of_a_killed_service() {
    let sb = Sandbox::new();
    let mut server = Server::start(&sb, &["--config", &commands(&sb)], &[]);
    let http = client();
    let flag = sb.path("flag");
    let response = http
        .post(server.url("/v1/runs"))
        .json(&json!({ "pipeline": waits_for(&flag), "run_id": "killed" }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    wait_for_steps(&http, &server, "killed", 1);
    // The record of runs in progress is rewritten at most once a second.
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    std::fs::write(&flag, "").unwrap();
    let server = Server::start(&sb, &["--config", &commands(&sb)], &[]);
    let doc = wait_for_completion(&http, &server, "killed");
    assert_eq!(doc["steps"]["wait"]["status"], "completed", "{doc}");
    let (code, _) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0);
}

#[test]
fn orc_serve_needs_tokens_beyond_loopback_and_checks_them() {
    let sb = Sandbox::new();
    let refused = sb.orc(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("loopback"), "{}", refused.stderr);

    let config = sb.file(
        "orc.yaml",
        "server:\n  auth:\n    token_env: ORC_TEST_TOKENS\n",
    );
    let config = config.display().to_string();
    let server = Server::start(
        &sb,
        &["--config", &config],
        &[("ORC_TEST_TOKENS", "tok-one, tok-two")],
    );
    let http = client();
    let status = |token: Option<&str>| {
        let mut request = http.get(server.url("/v1/runs"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some("tok-three")), 401);
    assert_eq!(status(Some("tok-two")), 200);
    let (code, log) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0);
    assert!(!log.contains("tok-"), "{log}");

    let missing = sb.orc(&["--config", &config, "serve", "--bind", "127.0.0.1:0"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("ORC_TEST_TOKENS"),
        "{}",
        missing.stderr
    );
}

#[test]
fn the_official_openai_client_talks_to_orc_serve_in_front_of_a_provider() {
    let fake = crate::models::Fake::start_open(orc_fake_provider::Behaviour::default());
    let base = fake.provider().openai_base_url();
    let sb = Sandbox::new();
    let model = |name: &str, id: &str| {
        format!(
            "  - name: {name}\n    provider: openai\n    model: {id}\n    base_url: {base}\n    local: true\n    cost: {{ input_per_1k: 1.0, output_per_1k: 2.0 }}\n"
        )
    };
    let config = sb.file(
        "orc.yaml",
        &format!(
            "models:\n{}{}{}",
            model("fake-gpt", "fake-gpt"),
            model("small", "fake-mini"),
            model("embedder", "fake-embedding")
        ),
    );
    let config = config.display().to_string();
    let server = Server::start(&sb, &["--config", &config], &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../orc-server/tests/openai_client.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(server.url("/v1"))
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai_client.py failed (needs `pip install -r crates/orc-server/tests/requirements.txt`):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l == "all ok"), "{stdout}");
    // Answers came through orc's gateway: the chat once, then from orc's cache.
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("orc_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orc_cache_hits_total{cache=\"model\"}"),
        "{metrics}"
    );
    let (code, _) = server.stop(Duration::from_secs(15));
    assert_eq!(code, 0);
}
