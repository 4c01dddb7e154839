//! Durable runs through the real binary: checkpoints in SQLite (the default), `orc resume`
//! after SIGKILL, `orc runs`, and bad state URLs.

use std::time::{Duration, Instant};

use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use serde_json::Value;

use crate::support::{Run, Sandbox};

const PIPELINE: &str = r#"name: crash
steps:
  - id: ask
    action: generate
    parameters: { prompt: "name a colour" }
  - id: a
    tool: terminal
    action: execute
    parameters: { command: "echo a >> log.txt" }
  - id: slow
    tool: terminal
    action: execute
    dependencies: [a, ask]
    parameters: { command: "sleep 2; echo slow >> log.txt" }
  - id: b
    tool: terminal
    action: execute
    dependencies: [slow]
    parameters: { command: "echo 'b {{ ask.result }}' >> log.txt" }
outputs:
  colour: "{{ ask.result }}"
"#;

fn fake() -> (tokio::runtime::Runtime, FakeProvider) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt
        .block_on(FakeProvider::start(
            Behaviour::default().with_answer("colour", "teal"),
        ))
        .unwrap();
    (rt, fake)
}

fn sandbox(fake: &FakeProvider) -> Sandbox {
    let sb = Sandbox::new();
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: fake\n    provider: openai\n    base_url: {}\n",
            fake.openai_base_url()
        ),
    );
    sb.file("p.yaml", PIPELINE);
    sb
}

fn log(sb: &Sandbox) -> Vec<String> {
    sb.lines("log.txt")
}

#[test]
fn a_killed_run_resumes_without_redoing_or_repaying_finished_steps() {
    let (_rt, fake) = fake();

    // The same pipeline uninterrupted, for its outputs.
    let clean = sandbox(&fake);
    let r = clean.orc(&["run", "p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = r.doc()["outputs"].clone();
    fake.reset();

    let sb = sandbox(&fake);
    let mut child = sb
        .command()
        .args(["run", "p.yaml", "--run-id", "r1", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while `slow` runs: `a` and `ask` are done.
    let started = Instant::now();
    while !(log(&sb) == ["a"] && fake.stats().requests_to(Endpoint::ChatCompletions) == 1) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(log(&sb), ["a"], "the killed step's process died with orc");

    let listed = sb.orc(&["runs", "list", "--json"]);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["run_id"], "r1");
    assert_eq!(listed[0]["status"], "running");

    let resumed = sb.resume_killed("r1");
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let doc = resumed.doc();
    assert_eq!(doc["execution_id"], "r1");
    assert_eq!(doc["outputs"], expected);
    assert_eq!(
        log(&sb),
        ["a", "slow", "b teal"],
        "every side effect exactly once"
    );
    assert_eq!(
        fake.stats().requests_to(Endpoint::ChatCompletions),
        1,
        "the finished model call was not sent again"
    );
    let shown = sb.orc(&["runs", "show", "r1"]);
    assert_eq!(
        serde_json::from_str::<Value>(&shown.stdout).unwrap()["status"],
        "completed"
    );
    let again = sb.orc(&["resume", "r1"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("already completed"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_changed_pipeline_is_refused_unless_forced() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: f\nsteps:\n  - id: bad\n    tool: terminal\n    action: execute\n    parameters: { command: \"exit 3\" }\n",
    );
    let r = sb.orc(&["run", "p.yaml", "--run-id", "f1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    sb.file(
        "p.yaml",
        "name: f\nsteps:\n  - id: bad\n    tool: terminal\n    action: execute\n    parameters: { command: \"exit 0\" }\n",
    );
    let r = sb.orc(&["resume", "f1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    let r = sb.orc(&["resume", "f1", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["bad"]["status"], "completed");

    let r = sb.orc(&["resume", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no run `nope`"), "{}", r.stderr);

    let r = sb.orc(&["runs", "list", "--status", "completed", "--json"]);
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = sb.orc(&["runs", "prune", "--older-than", "0s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Removed 1 run"), "{}", r.stdout);
}

#[test]
fn bad_state_stores_are_exit_2_with_a_clear_error() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: s\nsteps:\n  - id: e\n    action: echo\n    parameters: { message: hi }\n",
    );
    sb.file(
        "foreign.db",
        "this is not a database, just text that goes on for a while\n",
    );
    for (url, says) in [
        ("mysql://127.0.0.1/x", "mysql"),
        ("sqlite://foreign.db", "foreign.db"),
        ("postgres://postgres:secret@127.0.0.1:1/test", "127.0.0.1"),
    ] {
        let r = sb.orc(&["--state", url, "run", "p.yaml"]);
        assert_eq!(r.code, 2, "{url}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{url}: {}", r.stderr);
        assert!(!r.stderr.contains("secret"), "{url}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn cache_true_steps_reuse_an_identical_earlier_result_across_runs() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: c\nparameters: { word: one }\nsteps:\n  - id: costly\n    tool: terminal\n    action: execute\n    cache: true\n    parameters: { command: \"echo {{ word }} >> log.txt; echo {{ word }}\" }\n  - id: always\n    tool: terminal\n    action: execute\n    dependencies: [costly]\n    parameters: { command: \"echo always >> log.txt\" }\n",
    );
    for _ in 0..2 {
        let r = sb.orc(&["run", "p.yaml"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = sb.orc(&["run", "p.yaml"]);
    let doc = r.doc();
    assert_eq!(doc["steps"]["costly"]["cached"], true);
    assert_eq!(doc["steps"]["costly"]["value"]["result"]["stdout"], "one\n");
    assert_eq!(doc["steps"]["always"]["cached"], false);
    assert_eq!(log(&sb), ["one", "always", "always", "always"]);
    // Other parameters are another call.
    let r = sb.orc(&["run", "p.yaml", "-i", "word=two"]);
    assert_eq!(r.doc()["steps"]["costly"]["cached"], false);
    assert_eq!(log(&sb).iter().filter(|l| *l == "two").count(), 1);
}

/// A TCP forwarder to a real server that the test can cut, connections and all.
struct Cuttable {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    fn start(rt: &tokio::runtime::Runtime, upstream: &str) -> Cuttable {
        let upstream = upstream.to_owned();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = rt.spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Cuttable { port, task }
    }

    /// Drops the listener and every forwarded connection.
    fn cut(self) {
        self.task.abort();
    }
}

#[test]
fn a_state_store_that_goes_away_fails_the_run_clearly_and_what_it_committed_resumes() {
    let redis = crate::support::redis_url();
    if !crate::support::reachable("Redis", &redis) {
        return;
    }
    let addr = crate::support::address(&redis);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy = Cuttable::start(&rt, &addr);
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: gone\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: \"echo a >> log.txt\" }\n  - id: slow\n    tool: terminal\n    action: execute\n    dependencies: [a]\n    parameters: { command: \"sleep 1; echo slow >> log.txt\" }\n  - id: b\n    tool: terminal\n    action: execute\n    dependencies: [slow]\n    parameters: { command: \"echo b >> log.txt\" }\n",
    );
    // A run id of its own keeps this test's keys apart in the shared Redis.
    let run_id = format!("gone-{}", std::process::id());
    let via_proxy = format!("redis://127.0.0.1:{}/0", proxy.port);
    let child = sb
        .command()
        .args(["--state", &via_proxy, "run", "p.yaml", "--run-id", &run_id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while log(&sb).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    proxy.cut();
    let out: Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = out.doc();
    assert_eq!(doc["error_type"], "StateError", "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("state store"),
        "{doc}"
    );
    assert_eq!(
        doc["steps"]["b"]["status"], "pending",
        "nothing ran after the store went away"
    );

    // Straight to the server: what was committed before the cut resumes.
    let direct = format!("{}/0", redis.trim_end_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed: Run = loop {
        let r = sb.orc(&["--state", &direct, "resume", &run_id]);
        if r.code != 2 || !r.stderr.contains("held by another") {
            break r;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let lines = log(&sb);
    assert_eq!(lines.iter().filter(|l| *l == "a").count(), 1, "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("b"), "{lines:?}");
    let pruned = sb.orc(&["--state", &direct, "runs", "prune", "--older-than", "0s"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
}
