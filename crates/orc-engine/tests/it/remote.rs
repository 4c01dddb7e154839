//! Steps handed to a `Dispatch` (workers on other machines): the task crosses a wire (JSON), a
//! `StepRunner` runs it over the same plan, and the run ends as a local one does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use orc_engine::{Dispatch, Options, Resources, StepOutcome, StepRunner, StepTask};
use orc_pipeline::Compiled;
use serde_json::{Map, Value, json};

use crate::compile;

/// A "worker" in the same process: every task goes through JSON both ways.
#[derive(Debug)]
struct Loopback {
    compiled: Compiled,
    runner: StepRunner,
    got: Mutex<Vec<String>>,
}

impl Dispatch for Loopback {
    fn dispatch(
        &self,
        task: StepTask,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send + '_>> {
        Box::pin(async move {
            let wire = serde_json::to_vec(&task).map_err(|e| e.to_string())?;
            let task: StepTask = serde_json::from_slice(&wire).map_err(|e| e.to_string())?;
            self.got.lock().unwrap().push(task.step_id.clone());
            let outcome = self
                .runner
                .run(&self.compiled, task)
                .await
                .map_err(|e| e.to_string())?;
            let wire = serde_json::to_vec(&outcome).map_err(|e| e.to_string())?;
            serde_json::from_slice(&wire).map_err(|e| e.to_string())
        })
    }
}

const PIPELINE: &str = r#"
id: remote
name: Remote
parameters:
  who: { type: string, default: world }
steps:
  - id: hello
    action: echo
    parameters: { message: "hello {{ who }}" }
  - id: pinned
    action: echo
    pool: local
    parameters: { message: "{{ hello.result }}, here" }
  - id: each
    for_each: ["a", "b", "c"]
    loop_var: letter
    max_parallel: 3
    steps:
      - id: shout
        action: echo
        parameters: { message: "{{ letter | upper }}{{ index }} {{ hello.result | length }}" }
  - id: cached
    action: echo
    cache: true
    parameters: { message: "{{ pinned.result }}" }
outputs:
  greeting: "{{ hello.result }}"
  pinned: "{{ pinned.result }}"
  shouted: "{{ each_0_shout.result }} {{ each_2_shout.result }}"
"#;

fn inputs() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("who".into(), json!("orc"));
    m
}

#[tokio::test]
async fn dispatched_steps_end_as_local_ones_and_pinned_ones_stay() {
    let compiled = compile(PIPELINE);
    let local = orc_engine::execute(
        &compiled,
        Options {
            inputs: inputs(),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let loopback = Arc::new(Loopback {
        compiled: compile(PIPELINE),
        runner: StepRunner::new(&Resources::default()),
        got: Mutex::default(),
    });
    let remote = orc_engine::execute(
        &compiled,
        Options {
            inputs: inputs(),
            dispatch: Some(Arc::clone(&loopback) as Arc<dyn Dispatch>),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(remote.outputs, local.outputs);
    assert_eq!(
        remote.outputs["shouted"],
        json!("A0 9 C2 9"),
        "loop bindings and another step's result reached the worker"
    );
    let mut got = loopback.got.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        ["each_0_shout", "each_1_shout", "each_2_shout", "hello"],
        "`pool: local` and `cache: true` stay on the coordinator, loops are expanded there"
    );
    let status = |r: &orc_engine::RunResult| serde_json::to_value(r).unwrap()["status"].clone();
    assert_eq!(status(&remote), json!("completed"));
}

/// A dispatch that cannot reach its workers.
#[derive(Debug)]
struct Down;

impl Dispatch for Down {
    fn dispatch(
        &self,
        _task: StepTask,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send + '_>> {
        Box::pin(async { Err("the queue is down".to_owned()) })
    }
}

#[tokio::test]
async fn a_step_that_cannot_be_handed_out_fails_with_the_reason() {
    let compiled = compile(PIPELINE);
    let result = orc_engine::execute(
        &compiled,
        Options {
            inputs: inputs(),
            dispatch: Some(Arc::new(Down)),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let doc = serde_json::to_value(&result).unwrap();
    assert_eq!(doc["status"], "failed");
    let error = doc["steps"]["hello"]["error"].as_str().unwrap();
    assert!(error.contains("the queue is down"), "{error}");
}

#[tokio::test]
async fn a_runner_refuses_a_task_its_plan_does_not_have() {
    let compiled = compile(PIPELINE);
    let runner = StepRunner::new(&Resources::default());
    let task = |path: Vec<u32>| StepTask {
        step_id: "x".into(),
        path,
        pool: None,
        timeout_ms: 1000,
        scope: Map::new(),
    };
    let outside = runner.run(&compiled, task(vec![9])).await.unwrap_err();
    assert!(
        outside.to_string().contains("not in the run's plan"),
        "{outside}"
    );
    let a_loop = runner.run(&compiled, task(vec![2])).await.unwrap_err();
    assert!(a_loop.to_string().contains("loop"), "{a_loop}");
    let pinned = runner.run(&compiled, task(vec![1])).await.unwrap_err();
    assert!(pinned.to_string().contains("coordinator"), "{pinned}");
}
