//! `GET /v1/runs/{id}/graph`: a run's step graph, for the dashboard's run page.
//!
//! The structure comes from the run's plan: the pipeline text its record points at (a file, or
//! the text the service kept by its hash), compiled offline (`<AUTO>` tags from the response
//! cache only) and remembered by the text's hash. Each top-level step carries its id, tool and
//! action, the ids it depends on, its depth (the longest chain of dependencies before it: the
//! layer the page draws it in), its parameters as written, its status and its record. Records
//! come from the result document of an ended run, else from the run's checkpoints; iterations of
//! loops (ids the plan does not name) are listed apart, under `iterations`. A running run's
//! steps that have no record yet are `pending`; the page follows the run's events for the rest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use orc_pipeline::{Param, Plan, StepKind};
use orc_runtime::{Runtime, Source};
use orc_state::RunState;
use serde_json::{Map, Value, json};

use crate::problem::Problem;

/// How many compiled plans the graph endpoint keeps, by the hash of their text.
const PLANS_KEPT: usize = 64;

#[derive(Clone)]
struct Graphs {
    runtime: Runtime,
    plans: Arc<Mutex<HashMap<String, Arc<Plan>>>>,
}

/// The route, over `runtime`.
pub(crate) fn routes(runtime: Runtime) -> Router {
    Router::new()
        .route("/v1/runs/{id}/graph", get(graph))
        .with_state(Graphs {
            runtime,
            plans: Arc::new(Mutex::new(HashMap::new())),
        })
}

#[tracing::instrument(skip(graphs))]
async fn graph(
    State(graphs): State<Graphs>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let store = graphs.runtime.store();
    let row = store
        .run(&id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no run `{id}`")))?;
    let plan = graphs.plan(&row).await?;
    let mut records: Map<String, Value> = Map::new();
    for c in store.checkpoints(&id).await.map_err(Problem::from)? {
        records.insert(c.step_id, c.envelope);
    }
    let mut run = json!(null);
    if row.status != RunState::Running
        && let Some(doc) = store.result_document(&id).await.map_err(Problem::from)?
        && let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&doc)
    {
        if let Some(Value::Object(steps)) = doc.remove("steps") {
            records.extend(steps);
        }
        run = json!({
            "success": doc.get("success"),
            "duration": doc.get("duration"),
            "cost": doc.get("cost"),
            "usage": doc.get("usage"),
            "error": doc.get("error"),
            "error_type": doc.get("error_type"),
            "outputs": doc.get("outputs"),
        });
    }
    let running = row.status == RunState::Running;
    let depths = depths(&plan);
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .zip(&depths)
        .map(|(step, depth)| {
            let record = records.remove(&step.id);
            let status = record
                .as_ref()
                .and_then(|r| r.get("status"))
                .and_then(Value::as_str)
                .unwrap_or(if running { "pending" } else { "not_run" })
                .to_owned();
            let (kind, tool, action, params) = match &step.kind {
                StepKind::Action(a) => (
                    "action",
                    a.tool.clone(),
                    as_written(&plan, &a.action),
                    as_written(&plan, &a.params),
                ),
                StepKind::ForEach(f) => ("for_each", None, json!("for_each"), json!({"items": as_written(&plan, &f.items)})),
                StepKind::While(_) => ("while", None, json!("while"), Value::Null),
            };
            json!({
                "id": step.id,
                "kind": kind,
                "tool": tool,
                "action": action,
                "deps": step.deps.iter().filter_map(|&d| plan.steps.get(d as usize)).map(|d| d.id.as_str()).collect::<Vec<_>>(),
                "depth": depth,
                "params": params,
                "line": step.pos.line,
                "status": status,
                "record": record,
            })
        })
        .collect();
    let mut run_json = orc_runtime::state::row_json(&row);
    if let Some(object) = run_json.as_object_mut() {
        object.insert("result".to_owned(), run);
    }
    Ok(Json(json!({
        "run": run_json,
        "pipeline": { "id": plan.id, "name": plan.name, "version": plan.version },
        "steps": steps,
        "iterations": records,
    })))
}

impl Graphs {
    /// The run's plan: compiled from the text its record points at, once per text.
    async fn plan(&self, row: &orc_state::RunRow) -> Result<Arc<Plan>, Problem> {
        let key = row.pipeline_hash.clone();
        if let Some(plan) = self.remembered(&key) {
            return Ok(plan);
        }
        let path = PathBuf::from(&row.pipeline_path);
        let loaded = self
            .runtime
            .compile(&Source::File(path), true)
            .await
            .map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::CONFLICT,
                    "plan_unavailable",
                    format!(
                        "run `{}`: its pipeline {} cannot be compiled again: {e}",
                        row.run_id, row.pipeline_path
                    ),
                )
            })?;
        let plan = Arc::clone(&loaded.compiled.plan);
        if let Ok(mut plans) = self.plans.lock() {
            if plans.len() >= PLANS_KEPT {
                plans.clear();
            }
            plans.insert(key, Arc::clone(&plan));
        }
        Ok(plan)
    }

    fn remembered(&self, key: &str) -> Option<Arc<Plan>> {
        self.plans.lock().ok()?.get(key).cloned()
    }
}

/// Each top-level step's depth: 0 without dependencies, else one more than its deepest
/// dependency. Dependencies come before their dependents in a plan only by index, so this
/// walks until nothing changes (a plan has no cycles; the compiler checked).
fn depths(plan: &Plan) -> Vec<u32> {
    let mut depth = vec![0_u32; plan.steps.len()];
    for _ in 0..plan.steps.len() {
        let mut changed = false;
        for (i, step) in plan.steps.iter().enumerate() {
            let d = step
                .deps
                .iter()
                .filter_map(|&p| depth.get(p as usize))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            if d != depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// A parameter as the pipeline writes it: templates by their source text.
fn as_written(plan: &Plan, param: &Param) -> Value {
    match param {
        Param::Lit(v) => v.clone(),
        Param::Tmpl(t) => plan
            .templates
            .get(t.0 as usize)
            .map_or(Value::Null, |s| Value::String(s.clone())),
        Param::List(items) => items.iter().map(|p| as_written(plan, p)).collect(),
        Param::Map(entries) => entries
            .iter()
            .map(|(k, p)| (k.clone(), as_written(plan, p)))
            .collect::<Map<_, _>>()
            .into(),
    }
}
