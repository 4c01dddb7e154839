//! The dashboard's pages in headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver (fantoccini) against the service on a real loopback socket. A run
//! started through the API appears in the runs list, its graph turns green step by step, and
//! every page is saved as a screenshot under `target/tmp/dashboard-screenshots/`.
//!
//! Chromium missing is a failure that says how to install it, never a skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::rig::{diamond, options, rig};

/// `chromedriver` on a free loopback port, stopped when dropped.
struct Driver {
    _process: tokio::process::Child,
    url: String,
}

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn browser_paths() -> Result<(PathBuf, PathBuf)> {
    let hint = "the dashboard's browser tests need Debian's Chromium and its WebDriver: \
                `apt-get install -y chromium chromium-driver` (.ci/run installs them), or set \
                ORC_CHROMIUM and ORC_CHROMEDRIVER to their paths";
    let chromium = find(
        "ORC_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )
    .with_context(|| format!("no chromium found; {hint}"))?;
    let driver = find("ORC_CHROMEDRIVER", &["chromedriver"])
        .with_context(|| format!("no chromedriver found; {hint}"))?;
    Ok((chromium, driver))
}

impl Driver {
    async fn start(path: &Path) -> Result<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let process = tokio::process::Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            ensure!(
                Instant::now() < deadline,
                "{} did not listen on port {port}",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Driver {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A headless browser session; `dark` asks pages for the dark colour scheme.
    async fn session(&self, chromium: &Path, dark: bool) -> Result<Client> {
        let scheme = if dark { 0 } else { 1 };
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1440,960", "--hide-scrollbars", "--lang=en-GB",
                    format!("--blink-settings=preferredColorScheme={scheme}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("cannot open a Chromium session")
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

async fn shoot(client: &Client, name: &str) -> Result<()> {
    let dir = screenshots();
    std::fs::create_dir_all(&dir)?;
    let png = client.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// Opens a page of the app and waits until it has drawn its data.
async fn open(client: &Client, base: &str, hash: &str) -> Result<()> {
    client.goto(&format!("{base}/{hash}")).await?;
    // A hash change alone keeps the document: wait for this page's view.
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main[data-ready]"))
        .await
        .with_context(|| format!("{hash}: the page never became ready"))?;
    Ok(())
}

/// Runs `script` (its return value, a promise's result included) in the page.
async fn js(client: &Client, script: &str, args: Vec<Value>) -> Result<Value> {
    Ok(client.execute(script, args).await?)
}

/// A request to the service from the page, as a script would make it: status and JSON body.
async fn call(client: &Client, method: &str, path: &str, body: Value) -> Result<(u64, Value)> {
    let answer = js(
        client,
        "const [method, path, body] = arguments;
         const init = { method, headers: { 'content-type': 'application/json' } };
         if (method !== 'GET') init.body = JSON.stringify(body);
         return fetch(path, init).then(async (r) => [r.status, await r.json().catch(() => null)]);",
        vec![json!(method), json!(path), body],
    )
    .await?;
    Ok((answer[0].as_u64().unwrap_or(0), answer[1].clone()))
}

/// The steps of the graph on the page, by id, with the status each shows.
async fn node_statuses(client: &Client) -> Result<Vec<(String, String)>> {
    let nodes = js(
        client,
        "return [...document.querySelectorAll('svg.dag .node')].map(n => [n.dataset.step, n.dataset.status]);",
        vec![],
    )
    .await?;
    Ok(serde_json::from_value(nodes)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() -> Result<()> {
    let (chromium, driver_path) = browser_paths()?;
    let rig = rig().await;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(orc_server::serve(
        listener,
        rig.runtime.clone(),
        options(),
        shutdown.clone(),
    ));
    let driver = Driver::start(&driver_path).await?;
    let client = driver.session(&chromium, false).await?;
    let outcome = pages(&client, &base, &rig).await;
    let _ = client.close().await;
    if let Ok(id) = &outcome {
        // The run page in the dark scheme, for the eye.
        let dark = driver.session(&chromium, true).await?;
        let shown = async {
            open(&dark, &base, &format!("#/runs/{id}")).await?;
            dark.find(Locator::Css("svg.dag .node[data-step='write']"))
                .await?
                .click()
                .await?;
            shoot(&dark, "run-dark").await
        }
        .await;
        let _ = dark.close().await;
        shown?;
    }
    shutdown.cancel();
    server.await??;
    drop(rig.dir);
    outcome.map(drop)
}

/// Every page, checked and shot; the id of the run followed live.
async fn pages(client: &Client, base: &str, rig: &crate::rig::Rig) -> Result<String> {
    // The runs list is open before the run starts: it must show up there by itself.
    open(client, base, "#/runs").await?;
    let (status, done) = call(
        client,
        "POST",
        "/v1/runs",
        json!({ "pipeline": diamond(0), "wait": true }),
    )
    .await?;
    ensure!(
        status == 200 && done["status"] == "completed",
        "{status} {done}"
    );
    // The step-result and compile caches' lookups, for the overview's cache chart.
    for _ in 0..2 {
        let (status, run) = call(
            client,
            "POST",
            "/v1/runs",
            json!({ "pipeline": crate::rig::CACHED, "wait": true }),
        )
        .await?;
        ensure!(
            status == 200 && run["status"] == "completed",
            "{status} {run}"
        );
    }
    for i in 0..3 {
        let (status, chat) = call(
            client,
            "POST",
            "/v1/chat/completions",
            json!({ "model": "m", "messages": [{ "role": "user", "content": format!("hello {i}") }] }),
        )
        .await?;
        ensure!(status == 200, "chat completion: {status} {chat}");
    }
    let (status, started) = call(
        client,
        "POST",
        "/v1/runs",
        json!({ "pipeline": diamond(2500), "inputs": { "topic": "tides" } }),
    )
    .await?;
    ensure!(status == 202, "{status} {started}");
    let id = started["run_id"].as_str().context("run_id")?.to_owned();
    let row = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("tr[data-run='{id}']")))
        .await
        .context("the started run never appeared in the open runs list")?;
    let shown = row
        .find(Locator::Css(".badge"))
        .await?
        .attr("data-status")
        .await?;
    ensure!(
        shown.as_deref() == Some("running"),
        "the new run shows as {shown:?}"
    );
    shoot(client, "runs").await?;

    // The run page: its graph follows the run's events, one layer at a time.
    open(client, base, &format!("#/runs/{id}")).await?;
    let mut seen: Vec<Vec<(String, String)>> = Vec::new();
    let mut finished_at: Vec<(String, usize)> = Vec::new();
    let mut shot_midway = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let nodes = node_statuses(client).await?;
        ensure!(nodes.len() == 4, "the graph shows {nodes:?}");
        if seen.last() != Some(&nodes) {
            for (step, status) in &nodes {
                if status == "completed" && !finished_at.iter().any(|(s, _)| s == step) {
                    finished_at.push((step.clone(), seen.len()));
                }
            }
            seen.push(nodes.clone());
        }
        let completed = nodes.iter().filter(|(_, s)| s == "completed").count();
        if !shot_midway && (1..4).contains(&completed) && nodes.iter().any(|(_, s)| s == "running")
        {
            shoot(client, "run-live").await?;
            shot_midway = true;
        }
        if completed == 4 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the graph never turned green: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(shot_midway, "never saw the graph part-way: {seen:?}");
    let order = |step: &str| finished_at.iter().find(|(s, _)| s == step).map(|(_, i)| *i);
    let (outline, facts, tone, write) = (
        order("outline"),
        order("facts"),
        order("tone"),
        order("write"),
    );
    ensure!(
        outline < facts && outline < tone && facts < write && tone < write,
        "the steps turned green out of order: {finished_at:?} in {seen:?}"
    );
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("main[data-run-status='completed']"))
        .await
        .context("the run page never showed the run's end")?;
    client
        .find(Locator::Css("svg.dag .node[data-step='write']"))
        .await?
        .click()
        .await?;
    let record = client.find(Locator::Css("#record")).await?.text().await?;
    for expected in [
        "write",
        "completed",
        "m (openai)",
        "in ·",
        "$",
        "{{ facts.result }}",
    ] {
        ensure!(
            record.contains(expected),
            "the step's record lacks {expected:?}: {record}"
        );
    }
    shoot(client, "run").await?;
    // The list shows the ended run with its cost.
    open(client, base, "#/runs?status=completed").await?;
    let cost = client
        .find(Locator::Css(&format!("tr[data-run='{id}'] td:last-child")))
        .await?
        .text()
        .await?;
    ensure!(
        cost.starts_with('$') && cost != "$0",
        "the list's cost: {cost}"
    );

    // A failed step is red, marked and named so; what depended on it did not run.
    let failing = "id: failing\nname: Failing\nsteps:\n  - id: fetch\n    action: echo\n    parameters: { message: ok }\n  - id: ask\n    action: generate\n    parameters: { prompt: \"[[fake:status=400]] no\", max_tokens: 10 }\n    dependencies: [fetch]\n  - id: report\n    action: echo\n    parameters: { message: \"{{ ask.result }}\" }\n    dependencies: [ask]\n";
    let (status, failed) = call(
        client,
        "POST",
        "/v1/runs",
        json!({ "pipeline": failing, "wait": true }),
    )
    .await?;
    ensure!(
        status == 200 && failed["status"] == "failed",
        "{status} {failed}"
    );
    let failed_id = failed["execution_id"].as_str().context("execution_id")?;
    open(client, base, &format!("#/runs/{failed_id}")).await?;
    let nodes = node_statuses(client).await?;
    ensure!(
        nodes[0].1 == "completed" && nodes[1].1 == "failed",
        "{nodes:?}"
    );
    ensure!(nodes[2].1 != "completed", "{nodes:?}");
    client
        .find(Locator::Css("main[data-run-status='failed']"))
        .await?;
    client
        .find(Locator::Css("svg.dag .node[data-step='ask']"))
        .await?
        .click()
        .await?;
    let record = client.find(Locator::Css("#record")).await?.text().await?;
    ensure!(
        record.contains("failed") && record.contains("Error") && record.contains("400"),
        "{record}"
    );
    shoot(client, "run-failed").await?;

    // The overview, the models and the daily report read the stats endpoints.
    let (series, _) = call(
        client,
        "GET",
        "/v1/stats/series?since=0&until=1&step=1",
        Value::Null,
    )
    .await?;
    open(client, base, "#/").await?;
    if series == 404 {
        // Without the stats endpoints the page says so instead of drawing nothing.
        client
            .find(Locator::Css("[data-empty='/v1/stats/series']"))
            .await?;
    } else {
        let figures = js(
            client,
            "return [...document.querySelectorAll('[data-figure] .value')].map(v => v.textContent);",
            vec![],
        )
        .await?;
        let figures: Vec<String> = serde_json::from_value(figures)?;
        ensure!(figures.len() == 6, "figures: {figures:?}");
        ensure!(
            figures[0] != "–" && figures[0] != "0",
            "the overview counted no requests: {figures:?}"
        );
        let charts = client.find_all(Locator::Css("[data-chart] canvas")).await?;
        ensure!(charts.len() >= 4, "{} charts drawn", charts.len());
        // The cache chart has a line, and a legend entry, per cache.
        let legend = js(
            client,
            "return [...document.querySelectorAll(\"[data-chart='cache'] .u-legend .u-series .u-label\")].map(l => l.textContent);",
            vec![],
        )
        .await?;
        let legend: Vec<String> = serde_json::from_value(legend)?;
        for cache in ["response", "step", "compile"] {
            ensure!(
                legend.iter().any(|l| l == cache),
                "the cache chart's legend lacks {cache}: {legend:?}"
            );
        }
        js(
            client,
            "document.querySelector(\"[data-chart='cache']\").scrollIntoView();",
            vec![],
        )
        .await?;
        shoot(client, "overview-caches").await?;
        js(client, "window.scrollTo(0, 0);", vec![]).await?;
    }
    shoot(client, "overview").await?;

    open(client, base, "#/models").await?;
    if series == 404 {
        client
            .find(Locator::Css("[data-empty='/v1/stats/models']"))
            .await?;
    } else {
        // The model the runs and chat completions called, on the fake (OpenAI-compatible).
        let rows = client
            .find_all(Locator::Css("table#models tr[data-model]"))
            .await?;
        ensure!(!rows.is_empty(), "the models page lists no model");
        let table = client
            .find(Locator::Css("table#models"))
            .await?
            .text()
            .await?;
        ensure!(table.contains("openai"), "the models page: {table}");
    }
    shoot(client, "models").await?;

    open(client, base, "#/report").await?;
    if series == 404 {
        client
            .find(Locator::Css("[data-empty='/v1/reports/daily']"))
            .await?;
    } else {
        let cards = client.find_all(Locator::Css("[data-figure]")).await?;
        ensure!(!cards.is_empty(), "the daily report shows no figures");
    }
    shoot(client, "report").await?;
    // Every model call of both runs and the chat completions went to the fake.
    let calls = rig.fake.stats().requests_for("fake-gpt");
    if calls < 11 {
        bail!("the fake provider saw {calls} calls, expected 4 + 3 + 4");
    }
    Ok(id)
}
