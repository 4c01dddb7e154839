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
}
