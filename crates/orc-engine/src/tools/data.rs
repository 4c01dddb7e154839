//! orc-data's tools, `data-processing` and `validation`: declared as orc-data declares them,
//! run on the blocking pool within a slot of the CPU pool.

use orc_pipeline::{ActionSpec, ParamSpec, ParamType, ToolSpec};
use serde_json::{Map, Value};

use super::Envelope;
use super::declare::tool;
use super::tool::{Call, Tool};
use crate::resources::ToolLimits;

/// One of orc-data's tools.
pub(super) struct Data {
    name: &'static str,
    description: &'static str,
    /// The actions orc-data runs for it, for the message about any other.
    actions: &'static [&'static str],
    /// orc-data's entry point for it.
    run: Run,
}

/// An entry point of orc-data: an action, its parameters, the chunk size of streamed files.
type Run = fn(&str, &Map<String, Value>, &orc_data::Limits) -> Result<Value, orc_data::ToolFailure>;

/// `data-processing`.
pub(super) const DATA_PROCESSING: Data = Data {
    name: "data-processing",
    description: "Converts, filters, aggregates, transforms, profiles, pivots, cleans and merges tables (CSV, JSON)",
    actions: orc_data::DATA_PROCESSING_ACTIONS,
    run: orc_data::data_processing_with,
};

/// `validation`.
pub(super) const VALIDATION: Data = Data {
    name: "validation",
    description: "Checks data against a JSON Schema, infers schemas, scores quality",
    actions: orc_data::VALIDATION_ACTIONS,
    run: |action, params, _| orc_data::validation(action, params),
};

impl Tool for Data {
    fn spec(&self) -> ToolSpec {
        let actions = orc_data::ACTIONS
            .iter()
            .filter(|decl| decl.tool == self.name)
            .map(|decl| ActionSpec {
                name: decl.action.to_owned(),
                description: decl.description.to_owned(),
                params: Some(
                    decl.params
                        .iter()
                        .map(|p| ParamSpec {
                            name: p.name.to_owned(),
                            ty: ParamType::parse(p.kind).unwrap_or(ParamType::Any),
                            required: p.required,
                            default: p.default.map(str::to_owned),
                            description: p.description.to_owned(),
                        })
                        .collect(),
                ),
                one_of: decl
                    .one_of
                    .iter()
                    .map(|g| g.iter().map(|n| (*n).to_owned()).collect())
                    .collect(),
            })
            .collect();
        tool(self.name, self.description, actions)
    }

    fn call<'a>(
        &'a self,
        action: &'a str,
        params: Map<String, Value>,
        limits: &'a ToolLimits,
    ) -> Call<'a> {
        Box::pin(run(self.run, action, params, limits))
    }

    fn unknown_action(&self, action: &str) -> Option<String> {
        let failure = orc_data::ToolFailure::UnknownAction {
            tool: self.name,
            action: action.to_owned(),
            expected: self.actions.join(", "),
        };
        Some(failure.to_string())
    }
}

/// Runs a data tool on the blocking pool, within a slot of the CPU pool (`max_cpu_cores`);
/// a failure is reported as a failure, never as success.
async fn run(tool: Run, action: &str, params: Map<String, Value>, limits: &ToolLimits) -> Envelope {
    let Ok(_slot) = limits.cpu.acquire().await else {
        return Envelope::fail("the CPU pool is closed", Value::Null);
    };
    let action = action.to_string();
    let chunking = limits.data;
    let sandbox = limits.sandbox.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut params = params;
        if let Some(sandbox) = &sandbox {
            confine(&mut params, sandbox)?;
        }
        tool(&action, &params, &chunking).map_err(|failure| failure.to_string())
    })
    .await;
    match outcome {
        Ok(Ok(result)) => Envelope::ok(result),
        Ok(Err(message)) => Envelope::fail(message, Value::Null),
        Err(e) => Envelope::fail(format!("data tool task failed: {e}"), Value::Null),
    }
}

/// The files a data tool reads in a confined run: a text parameter (or a text in a list) that
/// names a file in the workspace becomes that file's resolved path, and one that would read a
/// file outside it (`../x.csv`, `/etc/passwd`, a symbolic link out) is refused.
fn confine(params: &mut Map<String, Value>, sandbox: &crate::Sandbox) -> Result<(), String> {
    fn one(value: &mut Value, sandbox: &crate::Sandbox) -> Result<(), String> {
        match value {
            Value::String(s) if !s.contains('\n') && s.len() <= 4096 && !s.trim().is_empty() => {
                match sandbox.resolve(s) {
                    Ok(inside) if inside.is_file() => {
                        *s = inside.display().to_string();
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    // orc-data reads a text that names a file as that file.
                    Err(e) if std::path::Path::new(s.as_str()).exists() => Err(e),
                    Err(_) => Ok(()),
                }
            }
            Value::Array(items) => items.iter_mut().try_for_each(|v| one(v, sandbox)),
            _ => Ok(()),
        }
    }
    params.values_mut().try_for_each(|v| one(v, sandbox))
}
