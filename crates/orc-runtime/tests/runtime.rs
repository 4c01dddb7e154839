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
