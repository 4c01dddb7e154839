//! The `orc serve` workloads: a child `orc serve` on a free loopback port (SQLite state and a
//! memory model cache in the temp `ORC_HOME`, the fake provider as its model), loaded by
//! `orc loadtest`'s engine from this process, and compared in the same run with the fake
//! provider loaded directly by the same engine.

use std::path::Path;
use std::time::{Duration, Instant};

use orc_loadtest::{Action, LoadTestOptions, PipelineSource, Scenario, Target, Template};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;

use crate::process;

/// The pipeline every `serve_runs` request posts: one echo step.
const ECHO: &str = "id: echo
name: Echo
steps:
  - id: hi
    action: echo
    parameters: { message: \"hi\" }
outputs:
  said: \"{{ hi.result }}\"
";

/// How long `orc serve` may take to say it listens.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The chat path both the fake provider and `orc serve` answer.
const CHAT: &str = "/v1/chat/completions";

/// A running child `orc serve`.
#[derive(Debug)]
pub(crate) struct Served {
    child: tokio::process::Child,
    /// Reads (and drops) the child's stderr after its `listening` line, so it never blocks.
    drain: JoinHandle<()>,
    base: String,
    /// From spawning the process to its `listening` line.
    pub(crate) started_in: Duration,
}

impl Served {
    /// Starts `orc serve --bind 127.0.0.1:0` with its files under `dir/<name>`, its model the
    /// fake provider at `provider` (`http://127.0.0.1:PORT/v1`), and waits until it listens.
    pub(crate) async fn start(
        orc: &Path,
        dir: &Path,
        name: &str,
        provider: &str,
    ) -> Result<Served, String> {
        let dir = dir.join(name);
        let io = |e: std::io::Error| format!("{}: {e}", dir.display());
        tokio::fs::create_dir_all(dir.join("home"))
            .await
            .map_err(io)?;
        let config = dir.join("orc.yaml");
        // Posted pipelines are confined as by default, but may run commands: the followers'
        // run sleeps in a terminal step.
        let text = format!(
            "models:\n  - {{ name: {model}, provider: openai, model: {model}, base_url: \"{provider}\", local: true }}\n\
             performance:\n  model_optimization:\n    connection_pool_size: 256\n  \
             caching:\n    model_cache: {{ backend: memory, max_size: 100000 }}\n\
             server:\n  sandbox: {{ allow_commands: true }}\n",
            model = crate::models::MODEL,
        );
        tokio::fs::write(&config, text).await.map_err(io)?;
        let mut cmd = process::orc(orc, &dir.join("home"), &dir);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0");
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", orc.display()))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| "orc serve: no stderr".to_owned())?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let base = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    return Some(addr.trim().to_owned());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("orc serve did not start:\n{}", seen.join("\n")))?;
        let started_in = t0.elapsed();
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Served {
            child,
            drain,
            base,
            started_in,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The child's resident memory in MiB (Linux).
    pub(crate) fn rss_mib(&self) -> Result<f64, String> {
        let pid = self.child.id().ok_or("orc serve has exited")?;
        let bytes = orc_telemetry::process::resident_memory_bytes_of(pid)
            .ok_or_else(|| format!("orc serve (pid {pid}): its resident memory is unknown"))?;
        Ok(bytes as f64 / (1024.0 * 1024.0))
    }

    /// Stops the child and waits for it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// One closed-model round: `requests` requests of `scenario` by `users` users at once against
/// `base`; the report, errors included.
async fn load(
    base: &str,
    scenario: Scenario,
    users: u32,
    requests: u64,
) -> Result<orc_loadtest::Report, String> {
    let mut options = LoadTestOptions::new(Target::Url(base.to_owned()), vec![scenario], requests);
    options.users = users;
    options.max_duration = Duration::from_secs(300);
    let test = options.build().await.map_err(|e| e.to_string())?;
    Ok(test.run(Default::default(), None).await)
}

/// [`load`], every request answered with a 2xx, or the first error of each kind.
async fn round(
    base: &str,
    scenario: Scenario,
    users: u32,
    requests: u64,
) -> Result<orc_loadtest::Report, String> {
    let report = load(base, scenario, users, requests).await?;
    if report.total.errors > 0 || report.total.ok < requests {
        let errors: Vec<String> = report
            .total
            .first_errors
            .iter()
            .map(|(kind, first)| format!("{kind}: {first}"))
            .collect();
        return Err(format!(
            "{base}: {} of {requests} requests answered, {} errors ({})",
            report.total.ok,
            report.total.errors,
            errors.join("; ")
        ));
    }
    Ok(report)
}

/// Chat completions of `prompt`, where `{{ i }}` is the request's number.
fn chat_with(name: &str, prompt: &str) -> Result<Scenario, String> {
    let body = json!({
        "model": crate::models::MODEL,
        "messages": [{ "role": "user", "content": prompt }],
        "max_tokens": 16,
    });
    let template = Template::new(&body).map_err(|(at, what)| format!("chat body {at}: {what}"))?;
    Ok(Scenario {
        name: name.into(),
        weight: 1,
        action: Action::Request {
            method: http::Method::POST,
            path: CHAT.into(),
            body: Some(template),
            expect_status: Some(200),
        },
    })
}

/// A chat completion whose prompt no request of any round has used, so that none is answered
/// from orc's response cache.
fn chat(round: usize) -> Result<Scenario, String> {
    chat_with(
        "chat",
        &format!("round {round:06} prompt number {{{{ i }}}}"),
    )
}

/// `requests` runs of the echo pipeline posted with `wait=true`, `users` at a time.
pub(crate) async fn runs(
    served: &Served,
    users: u32,
    requests: u64,
) -> Result<orc_loadtest::Report, String> {
    let echo = PipelineSource::Text {
        name: "echo".into(),
        text: ECHO.into(),
    };
    round(
        served.base(),
        Scenario::pipeline("echo", echo, json!({})),
        users,
        requests,
    )
    .await
}

/// One round each of `requests` chat completions, `users` at a time, straight to the fake
/// provider at `provider` (`http://127.0.0.1:PORT`) and through `orc serve`, in the order
/// `n` says (alternating from round to round, so neither always goes first): (direct, orc).
pub(crate) async fn chat_pair(
    served: &Served,
    provider: &str,
    n: usize,
    users: u32,
    requests: u64,
) -> Result<(orc_loadtest::Report, orc_loadtest::Report), String> {
    let (mut direct, mut orc) = (None, None);
    for k in 0..2 {
        if (n + k).is_multiple_of(2) {
            direct = Some(round(provider, chat(2 * n)?, users, requests).await?);
        } else {
            orc = Some(round(served.base(), chat(2 * n + 1)?, users, requests).await?);
        }
    }
    direct
        .zip(orc)
        .ok_or_else(|| "a round did not run".to_owned())
}

/// `requests` chat completions by `users` users at once, each held `delay_ms` by the fake
/// provider, through `orc serve`: the report, errors included (they are the figure).
pub(crate) async fn held(
    served: &Served,
    n: usize,
    users: u32,
    requests: u64,
    delay_ms: u64,
) -> Result<orc_loadtest::Report, String> {
    let prompt = format!("[[fake:delay_ms={delay_ms}]] held {n:06} number {{{{ i }}}}");
    load(served.base(), chat_with("held", &prompt)?, users, requests).await
}

/// A run that takes about `seconds`: an echo, then a terminal step that sleeps.
fn sleeper(seconds: u32) -> String {
    format!(
        "id: sleeper\nname: Sleeper\nsteps:\n  - id: first\n    action: echo\n    parameters: {{ message: one }}\n  \
         - id: nap\n    tool: terminal\n    action: execute\n    parameters: {{ command: \"sleep {seconds}\" }}\n    \
         dependencies: [first]\n"
    )
}

/// Starts run `run_id` (a couple of seconds long) and has `followers` clients follow its event
/// stream from the start: how many saw its `result` event, and the seconds until the last did.
pub(crate) async fn followers(
    served: &Served,
    run_id: &str,
    followers: usize,
) -> Result<(usize, f64), String> {
    // reqwest takes its TLS crypto from the process default (the workspace builds it with
    // `rustls-no-provider`); installing it again is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let response = client
        .post(format!("{}/v1/runs", served.base()))
        .json(&json!({ "pipeline": sleeper(2), "run_id": run_id }))
        .send()
        .await
        .map_err(|e| format!("POST /v1/runs: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("POST /v1/runs: {}", response.status()));
    }
    let url = format!("{}/v1/runs/{run_id}/events", served.base());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..followers {
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move { saw_result(&client, &url).await });
    }
    let mut saw = 0;
    while let Some(done) = set.join_next().await {
        if matches!(done, Ok(Ok(true))) {
            saw += 1;
        }
    }
    Ok((saw, t0.elapsed().as_secs_f64()))
}

/// Follows one event stream to its end: whether a `result` event came.
async fn saw_result(client: &reqwest::Client, url: &str) -> Result<bool, String> {
    let mut response = client
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(response.status().to_string());
    }
    // Lines may be split across chunks: keep the tail of the text seen so far.
    let mut tail = String::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        tail.push_str(&String::from_utf8_lossy(&chunk));
        if tail.contains("event: result") {
            return Ok(true);
        }
        let keep = tail.len().saturating_sub(32);
        let keep = (keep..=tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(0);
        tail.drain(..keep);
    }
    Ok(false)
}
