//! The `orc serve` workloads: a child `orc serve` on a free loopback port (SQLite state and a
//! memory model cache in the temp `ORC_HOME`, the fake provider as its model), loaded by a
//! closed loop of HTTP requests from this process.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;

use crate::load::closed_loop;
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

/// A running child `orc serve` and a client of it.
#[derive(Debug)]
pub(crate) struct Served {
    child: tokio::process::Child,
    /// Reads (and drops) the child's stderr after its `listening` line, so it never blocks.
    drain: JoinHandle<()>,
    base: String,
    client: reqwest::Client,
    next_prompt: AtomicU64,
}

impl Served {
    /// Starts `orc serve --bind 127.0.0.1:0` with its files under `dir`, its model the fake
    /// provider at `provider` (`http://127.0.0.1:PORT/v1`), and waits until it listens.
    pub(crate) async fn start(orc: &Path, dir: &Path, provider: &str) -> Result<Served, String> {
        let dir = dir.join("serve");
        let io = |e: std::io::Error| format!("{}: {e}", dir.display());
        tokio::fs::create_dir_all(dir.join("home"))
            .await
            .map_err(io)?;
        let config = dir.join("orc.yaml");
        let text = format!(
            "models:\n  - {{ name: {model}, provider: openai, model: {model}, base_url: \"{provider}\", local: true }}\n\
             performance:\n  model_optimization:\n    connection_pool_size: 256\n  \
             caching:\n    model_cache: {{ backend: memory, max_size: 100000 }}\n",
            model = crate::models::MODEL,
        );
        tokio::fs::write(&config, text).await.map_err(io)?;
        let mut cmd = process::orc(orc, &dir.join("home"), &dir);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0");
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
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Served {
            child,
            drain,
            base,
            client,
            next_prompt: AtomicU64::new(0),
        })
    }

    /// Posts `body` to `path` and wants a 200 back.
    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "POST {path}: {status}: {}",
                String::from_utf8_lossy(&text)
            ));
        }
        Ok(())
    }

    /// `requests` requests, `concurrency` at a time: seconds. Runs of the echo pipeline, each
    /// posted with `wait=true`, or (`chat`) chat completions with distinct prompts, so that
    /// none is answered from orc's cache.
    pub(crate) async fn requests(
        self: &Arc<Self>,
        chat: bool,
        requests: usize,
        concurrency: usize,
    ) -> Result<f64, String> {
        let this = Arc::clone(self);
        let run = Arc::new(serde_json::json!({ "pipeline": ECHO }));
        closed_loop(concurrency, requests, move |_| {
            let (this, run) = (Arc::clone(&this), Arc::clone(&run));
            async move {
                if !chat {
                    return this.post("/v1/runs?wait=true", &run).await;
                }
                let n = this.next_prompt.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "model": crate::models::MODEL,
                    "messages": [{ "role": "user", "content": format!("prompt number {n:010}") }],
                    "max_tokens": 16,
                });
                this.post("/v1/chat/completions", &body).await
            }
        })
        .await
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
