//! What templates and conditions can see while a run is in progress: inputs, the
//! `execution` namespace, finished steps by id, and loop bindings.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use minijinja::Value;
use orc_pipeline::templates::Lookup;

use crate::node_id::NodeId;

/// Run-wide names, plus the table of finished steps (written by the scheduler, read by steps).
#[derive(Debug)]
pub(crate) struct Shared {
    inputs: HashMap<String, Value>,
    inputs_value: Value,
    execution: Value,
    execution_id: Value,
    pipeline_id: Value,
    timestamp: Value,
    table: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Table {
    ids: HashMap<Arc<str>, NodeId>,
    values: Vec<Option<Value>>,
}

impl Shared {
    pub(crate) fn new(
        inputs: &serde_json::Map<String, serde_json::Value>,
        execution: serde_json::Value,
        pipeline_id: &str,
    ) -> Self {
        let execution_id = execution["id"].as_str().unwrap_or_default().to_string();
        let timestamp = execution["timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Shared {
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.clone(), orc_pipeline::templates::to_value(v)))
                .collect(),
            inputs_value: orc_pipeline::templates::to_value(inputs),
            execution: orc_pipeline::templates::to_value(&execution),
            execution_id: Value::from(execution_id),
            pipeline_id: Value::from(pipeline_id),
            timestamp: Value::from(timestamp),
            table: RwLock::new(Table::default()),
        }
    }

    /// Registers a step id; returns nothing, the index is the caller's.
    pub(crate) fn register(&self, id: Arc<str>, index: NodeId) {
        let mut t = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.ids.insert(id, index);
        let need = index.index() + 1;
        if t.values.len() < need {
            t.values.resize(need, None);
        }
    }

    /// Publishes a finished step's envelope.
    pub(crate) fn publish(&self, index: NodeId, value: Value) {
        let mut t = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = t.values.get_mut(index.index()) {
            *slot = Some(value);
        }
    }

    fn by_index(&self, index: NodeId) -> Option<Value> {
        let t = self
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.values.get(index.index()).cloned().flatten()
    }

    fn by_id(&self, id: &str) -> Option<Value> {
        let t = self
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = *t.ids.get(id)?;
        t.values.get(i.index()).cloned().flatten()
    }

    fn global(&self, name: &str) -> Option<Value> {
        match name {
            "inputs" | "parameters" => Some(self.inputs_value.clone()),
            "execution" => Some(self.execution.clone()),
            "execution_id" => Some(self.execution_id.clone()),
            "pipeline_id" => Some(self.pipeline_id.clone()),
            "timestamp" => Some(self.timestamp.clone()),
            _ => self.inputs.get(name).cloned().or_else(|| clock(name)),
        }
    }
}

/// How `timestamp` (and `current_timestamp`) print a time: Python's `isoformat()` of a UTC time.
pub(crate) const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f+00:00";
/// How `execution.date` (and `current_date`) print a day.
pub(crate) const DATE_FORMAT: &str = "%Y-%m-%d";

/// `current_timestamp` and `current_date`: the time when a template reads them, in UTC, in the
/// forms of `timestamp` and `execution.date` (an input of the same name wins).
fn clock(name: &str) -> Option<Value> {
    let format = match name {
        "current_timestamp" => TIMESTAMP_FORMAT,
        "current_date" => DATE_FORMAT,
        _ => return None,
    };
    Some(Value::from(chrono::Utc::now().format(format).to_string()))
}

/// One loop iteration's names: its bindings and its sibling steps.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) bindings: Vec<(&'static str, Value)>,
    /// The `loop_var` name, bound to the item.
    pub(crate) loop_var: Option<(String, Value)>,
    /// Body step short ids to their position in the body.
    pub(crate) siblings: Arc<HashMap<String, u32>>,
    /// The iteration's first body step.
    pub(crate) base: NodeId,
    pub(crate) parent: Option<Arc<Frame>>,
}

/// The scope of one step: its frames, then the run's steps and globals.
#[derive(Debug)]
pub(crate) struct StepScope {
    pub(crate) shared: Arc<Shared>,
    pub(crate) frame: Option<Arc<Frame>>,
}

impl Lookup for StepScope {
    fn lookup(&self, name: &str) -> Option<Value> {
        let mut frame = self.frame.as_deref();
        while let Some(f) = frame {
            if let Some((_, v)) = f.bindings.iter().find(|(k, _)| *k == name) {
                return Some(v.clone());
            }
            if let Some((_, v)) = f.loop_var.as_ref().filter(|(k, _)| k == name) {
                return Some(v.clone());
            }
            if let Some(&j) = f.siblings.get(name) {
                return self.shared.by_index(f.base.offset(j));
            }
            frame = f.parent.as_deref();
        }
        self.shared.by_id(name).or_else(|| self.shared.global(name))
    }
}
