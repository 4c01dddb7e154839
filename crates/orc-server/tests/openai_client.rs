//! The official `openai` Python client against the OpenAI-compatible routes, served by
//! `axum::serve` on a 127.0.0.1 listener in front of a real gateway and the fake
//! provider. Needs `pip install -r crates/orc-server/tests/requirements.txt`; without
//! the package the test fails, saying so.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use common::{RigOptions, rig};
use orc_fake_provider::Endpoint;
use orc_server::openai::routes;
use tokio::process::Command;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Fails, saying how to install it, when `python3` cannot import `openai`.
async fn require_openai_package() -> Result<()> {
    let check = Command::new("python3")
        .args(["-c", "import openai; print(openai.__version__)"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let install = "run `pip install -r crates/orc-server/tests/requirements.txt` (python3 needs the official `openai` package for this test)";
    match check {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "`python3 -c \"import openai\"` failed: {}\n{install}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!("cannot run python3: {e}\n{install}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_unchanged() -> Result<()> {
    require_openai_package().await?;
    let rig = rig(RigOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = routes(Some(rig.gateway.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let run = Command::new("python3")
        .arg(script_dir().join("openai_client.py"))
        .arg(format!("http://{addr}/v1"))
        .stdin(Stdio::null())
        // Nothing from the environment may point the client elsewhere.
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env("NO_PROXY", "127.0.0.1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .context("openai_client.py did not finish in time")??;
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "openai_client.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "ok: chat",
        "ok: cache hit",
        "ok: stream",
        "ok: embeddings",
        "ok: models",
        "ok: not found",
        "ok: bad request",
        "ok: stream error",
        "all ok",
    ] {
        ensure!(
            stdout.lines().any(|l| l == step),
            "`{step}` missing:\n{stdout}\n{stderr}"
        );
    }
    // The calls went through orc to the provider: the plain chat once (then cached),
    // the stream, the broken stream.
    let stats = rig.fake.stats();
    ensure!(
        stats.requests_to(Endpoint::ChatCompletions) == 3,
        "{stats:?}"
    );
    ensure!(stats.requests_to(Endpoint::Embeddings) >= 1);
    Ok(())
}
