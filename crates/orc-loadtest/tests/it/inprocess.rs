//! `target: inprocess`: the service's routes over a runtime in this process, no socket.

use std::path::Path;

use orc_loadtest::LoadTestOptions;
use orc_runtime::RuntimeOptions;
use orc_runtime::config::Config;
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = r#"
target: inprocess
concurrent_users: 3
requests: 30
scenarios:
  - name: echo
    weight: 2
    pipeline: |
      id: echo
      name: Echo
      parameters:
        who: world
        tag: 0
      steps:
        - id: hi
          action: echo
          parameters: { message: "hi {{ who }} {{ tag }}" }
    input_list:
      - { who: ada }
      - { who: alan }
    inputs: { tag: "{{ i }}" }
  - name: health
    weight: 1
    request: { method: GET, path: /healthz }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inprocess_test_runs_pipelines_on_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut options =
        LoadTestOptions::from_yaml("scenario.yaml", SCENARIO, Path::new(".")).unwrap();
    let runtime = RuntimeOptions {
        config: Config::default(),
        state_url: format!("sqlite://{}", dir.path().join("state.db").display()),
        data_dir: dir.path().join("data"),
        queue: None,
        sandbox: None,
    }
    .build()
    .await
    .unwrap();
    options.runtime = Some(runtime.clone());
    let report = options
        .build()
        .await
        .unwrap()
        .run(CancellationToken::new(), None)
        .await;
    assert_eq!(report.target, "inprocess");
    assert_eq!(report.total.requests, 30);
    assert_eq!(report.total.errors, 0, "{:?}", report.total.errors_by_kind);
    let runs = report.scenarios[0].stats.requests;
    assert!(runs >= 10, "{runs} runs");
    assert!(report.overhead.includes.contains("in-process service"));
    let stored = runtime
        .store()
        .list_runs(&orc_state::RunFilter::default())
        .await
        .unwrap();
    assert_eq!(stored.len() as u64, runs);
    assert!(
        stored
            .iter()
            .all(|r| r.status == orc_state::RunState::Completed),
        "{stored:?}"
    );
}
