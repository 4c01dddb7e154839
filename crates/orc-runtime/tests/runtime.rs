//! Several runs in one runtime: they share its gateway (response cache, pool) and store, each
//! under its own budget.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use orc_engine::{RunStatus, StepStatus};
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use orc_runtime::config::Config;
use orc_runtime::{RuntimeOptions, Source, StartOptions};
use serde_json::Map;

const ASK: &str = "id: ask\nname: Ask\nsteps:\n  - id: q\n    action: generate\n    parameters: { prompt: \"hello there\", max_tokens: 50 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_share_the_gateway_and_each_spends_under_its_own_budget() {
    let fake = FakeProvider::start(Behaviour::default()).await.unwrap();
    // A priced model (so budgets apply); the fake asks for no key, and any variable that is
    // always set serves as one.
    let yaml = format!(
        "models:\n  - name: m\n    provider: openai\n    model: fake-gpt\n    base_url: {}\n    api_key_env: PATH\n    cost: {{ input_per_1k: 1.0, output_per_1k: 1.0 }}\n",
        fake.openai_base_url()
    );
    let config: Config = serde_saphyr::from_str(&yaml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = RuntimeOptions {
        config,
        state_url: format!("sqlite://{}", dir.path().join("state.db").display()),
        data_dir: dir.path().join("data"),
        queue: None,
        sandbox: None,
    }
    .build()
    .await
    .unwrap();
    let source = || Source::Text {
        name: "ask.yaml".into(),
        text: ASK.into(),
    };
    let start = |budget: Option<f64>| {
        let runtime = runtime.clone();
        async move {
            let options = StartOptions {
                budget,
                ..StartOptions::default()
            };
            let handle = runtime.start(source(), Map::new(), options).await.unwrap();
            handle.wait().await.unwrap()
        }
    };

    // Both at once: the poor run's budget cannot cover the call; the other's can.
    let (poor, rich) = tokio::join!(start(Some(0.000_001)), start(Some(5.0)));
    assert_eq!(poor.status, RunStatus::Failed);
    let refused = &poor.steps["q"];
    assert_eq!(refused.status, StepStatus::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("budget"),
        "{refused:?}"
    );
    assert_eq!(rich.status, RunStatus::Completed, "{:?}", rich.error);
    assert!(rich.cost > 0.0);

    // A third run asks the same: the shared response cache answers, for nothing.
    let third = start(None).await;
    assert_eq!(third.status, RunStatus::Completed);
    assert!(third.steps["q"].cached);
    assert_eq!(third.cost, 0.0);
    assert_eq!(fake.stats().requests_to(Endpoint::ChatCompletions), 1);

    // Every run is in the store, with the posted text kept where its record points.
    let rows = runtime
        .store()
        .list_runs(&orc_state::RunFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| std::fs::read_to_string(&r.pipeline_path).unwrap() == ASK)
    );

    // The day's report counts each run's request as the gateway ended it: the one that went
    // upstream and the cache hit. The poor run's step was refused while its model was routed
    // (no candidate the budget could pay for): no request was made.
    let report = runtime
        .daily_report(orc_runtime::report::today())
        .await
        .unwrap();
    assert_eq!((report.runs, report.requests, report.errors), (3, 2, 0));
    assert_eq!(report.runs_by_status["failed"], 1);
    assert_eq!(report.runs_by_status["completed"], 2);
    assert!(report.errors_by_kind.is_empty());
    let cache = report.caches["response"];
    assert_eq!(
        (cache.hits, cache.misses, cache.hit_rate),
        (1, 1, Some(0.5))
    );
    assert!((report.cost_usd.total - rich.cost).abs() < 1e-12);
    assert!((report.cost_usd.per_request.unwrap() - rich.cost / 2.0).abs() < 1e-12);
    assert!((report.cost_usd.per_run.unwrap() - rich.cost / 2.0).abs() < 1e-12);
    assert_eq!(report.peak_throughput.as_ref().unwrap().requests, 2);
    assert!(report.response_time_ms.p95.unwrap() > 0.0);
    let top = &report.top_pipelines[0];
    assert_eq!(
        (top.pipeline_id.as_str(), top.runs, top.requests),
        ("ask", 3, 2)
    );
    assert_eq!(report.top_models[0].model, "m");

    // The last hour's series and the models page see the same requests.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    let hour_ago = now - std::time::Duration::from_secs(3600);
    let series = runtime
        .stats_series(hour_ago, now, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(series.points.len(), 60);
    assert_eq!(series.points.iter().map(|p| p.requests).sum::<u64>(), 2);
    let models = runtime.model_stats(hour_ago, now).await.unwrap();
    assert_eq!(models.models.len(), 1);
    assert_eq!((models.models[0].calls, models.models[0].errors), (2, 0));
}

/// A server the test needs does not answer: a failure in CI (which starts every server), else
/// the test is skipped with a word on stderr.
fn unreachable_server(server: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{server} is unreachable ({why}); start it with the command in the README's \"Tests\" section"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED: {server} is unreachable ({why})");
    }
}

/// A PostgreSQL database of the test's own (`ORC_TEST_DATABASE_URL`'s server), dropped at the
/// end; `None` when no server answers.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create(tag: &str) -> Option<Database> {
        let server = std::env::var("ORC_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("orc_{tag}_{}_{:x}", std::process::id(), nanos % (1 << 40));
        let made = std::process::Command::new("psql")
            .args([&server, "-q", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql (PostgreSQL's client) runs");
        if !made.status.success() {
            unreachable_server("PostgreSQL", &String::from_utf8_lossy(&made.stderr));
            return None;
        }
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Some(Database {
            url: format!("{base}/{name}"),
            server,
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.server,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A worker that stored a step's result and died before it told the coordinator leaves the
/// step unacked; the worker it is delivered to next must not run it again, and must hand the
/// stored result to the coordinator (else the run waits for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_delivered_again_after_its_result_was_stored_is_handed_back_not_run() {
    let nats =
        std::env::var("ORC_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let address = nats.trim_start_matches("nats://").to_owned();
    if let Err(e) = std::net::TcpStream::connect(&address) {
        unreachable_server("NATS", &e.to_string());
        return;
    }
    let Some(db) = tokio::task::spawn_blocking(|| Database::create("redelivered"))
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Names no other test run had: the completions stream keeps a run's completions for a day.
    let unique = db.name.trim_start_matches("orc_redelivered_").to_owned();
    let pool = format!("t{unique}");
    let run = format!("r{unique}");
    let runtime = RuntimeOptions {
        config: Config::default(),
        state_url: db.url.clone(),
        data_dir: dir.path().join("data"),
        queue: None,
        sandbox: None,
    }
    .with_queue(Some(&nats), Some(&pool))
    .build()
    .await
    .unwrap();

    // The first worker's part: the step handed out, run, and its result stored.
    let store = runtime.store();
    store
        .create_run(&orc_state::NewRun {
            run_id: run.clone(),
            pipeline_id: "p".into(),
            pipeline_path: "p.yaml".into(),
            pipeline_hash: "h".into(),
            inputs: serde_json::json!({}),
            started_at: std::time::SystemTime::now(),
        })
        .await
        .unwrap();
    let attempt = store.dispatch_step(&run, "s").await.unwrap().attempt;
    let outcome = orc_engine::StepOutcome {
        action: "execute".into(),
        envelope: orc_engine::Envelope::ok(serde_json::json!({"stdout": "from the first worker"})),
        error_type: None,
        attempts: 1,
        retries: 0,
        timed_out: false,
        started_at: std::time::SystemTime::UNIX_EPOCH,
        duration: 0.5,
        location: None,
    };
    let stored = serde_json::to_value(&outcome).unwrap();
    assert!(
        store
            .finish_dispatched(&run, "s", attempt, &stored)
            .await
            .unwrap()
    );

    // Its message, delivered to the next worker: a step that would fail were it run.
    let queue = orc_queue::QueueOptions::new(nats.clone(), pool.clone())
        .build()
        .await
        .unwrap();
    let mut completions = queue.completions(&run).await.unwrap();
    let message = orc_runtime::StepMessage {
        run_id: run.clone(),
        plan: "0nosuchplan".into(),
        attempt,
        ready_us: 0,
        task: orc_engine::StepTask {
            step_id: "s".into(),
            path: vec![0],
            pool: None,
            timeout_ms: 1_000,
            scope: serde_json::Map::new(),
        },
        coordinator: Some("c1".into()),
    };
    queue
        .publish_step(
            &pool,
            &format!("{run}/s/{attempt}"),
            serde_json::to_vec(&message).unwrap().into(),
        )
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn({
        let runtime = runtime.clone();
        let stop = stop.clone();
        async move { runtime.work(1, stop).await }
    });
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), completions.next())
        .await
        .expect("the stored result is handed to the coordinator")
        .unwrap()
        .unwrap();
    let done: orc_runtime::Completion = serde_json::from_slice(&done).unwrap();
    assert_eq!((done.step_id.as_str(), done.attempt), ("s", attempt));
    assert_eq!(
        done.coordinator.as_deref(),
        Some("c1"),
        "the coordinator named back"
    );
    assert_eq!(
        done.outcome, outcome,
        "the stored result, not a new run of the step"
    );
    stop.cancel();
    let report = worker.await.unwrap().unwrap();
    assert_eq!((report.completed, report.skipped), (0, 1));
    queue.remove_pool(&pool).await.unwrap();
}
