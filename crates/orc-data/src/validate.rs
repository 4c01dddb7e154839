//! The `validate` action: JSON Schema validation, row-wise for tables.

use crate::ToolFailure;
use crate::input::{Format, load, load_data};
use crate::params::{Params, describe, invalid, lookup, missing, opt_str};
use serde_json::{Map, Value, json};

/// At most this many errors are listed in the result.
const MAX_LISTED: usize = 100;
/// At most this many errors are quoted in a strict-mode failure.
const MAX_QUOTED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
    ReportOnly,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Lenient => "lenient",
            Mode::ReportOnly => "report_only",
        }
    }
}

/// Whether a schema describes an array (so a list of records is validated whole).
fn describes_array(schema: &Value) -> bool {
    let Value::Object(m) = schema else {
        return false;
    };
    let array_type = match m.get("type") {
        Some(Value::String(t)) => t == "array",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
        _ => false,
    };
    array_type
        || [
            "items",
            "prefixItems",
            "contains",
            "minItems",
            "maxItems",
            "uniqueItems",
            "additionalItems",
        ]
        .iter()
        .any(|k| m.contains_key(*k))
}

/// Loads and compiles `schema`.
fn load_schema(params: &Params) -> Result<(Value, jsonschema::Validator), ToolFailure> {
    let (name, v) = lookup(params, &["schema"]).ok_or_else(|| missing("schema"))?;
    let schema = load(v, name, Format::Json)?.value;
    if !schema.is_object() && !schema.is_boolean() {
        return Err(invalid(
            name,
            format!("expected a JSON Schema (a map), got {}", describe(&schema)),
        ));
    }
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| invalid(name, format!("not a valid JSON Schema: {e}")))?;
    Ok((schema, validator))
}

fn errors_for(
    validator: &jsonschema::Validator,
    instance: &Value,
    row: Option<usize>,
) -> Vec<Value> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let mut m = Map::new();
            m.insert("path".into(), json!(e.instance_path().to_string()));
            m.insert("message".into(), json!(e.to_string()));
            m.insert("schema_path".into(), json!(e.schema_path().to_string()));
            if let Some(r) = row {
                m.insert("row".into(), json!(r));
            }
            Value::Object(m)
        })
        .collect()
}

fn quote(error: &Value) -> String {
    let path = error.get("path").and_then(Value::as_str).unwrap_or("");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let at = if path.is_empty() { "/" } else { path };
    match error.get("row").and_then(Value::as_u64) {
        Some(r) => format!("row {r} at {at}: {message}"),
        None => format!("at {at}: {message}"),
    }
}

/// The `validate` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let mode = match opt_str(params, "", &["mode"])?
        .unwrap_or("strict")
        .trim()
        .to_ascii_lowercase()
        .replace('-', "_")
        .as_str()
    {
        "strict" => Mode::Strict,
        "lenient" => Mode::Lenient,
        "report_only" | "report" => Mode::ReportOnly,
        other => {
            return Err(invalid(
                "mode",
                format!("unknown mode `{other}` (expected one of: strict, lenient, report_only)"),
            ));
        }
    };
    let (schema, validator) = load_schema(params)?;
    let loaded = load_data(params)?;
    let row_wise = match &loaded.value {
        Value::Array(items) => items.iter().all(Value::is_object) && !describes_array(&schema),
        _ => false,
    };
    let mut result = Map::new();
    let errors: Vec<Value>;
    let mut valid_rows = Vec::new();
    if row_wise {
        let rows = loaded.value.as_array().cloned().unwrap_or_default();
        let mut all = Vec::new();
        let mut invalid_rows = 0;
        for (i, row) in rows.iter().enumerate() {
            let errs = errors_for(&validator, row, Some(i));
            if errs.is_empty() {
                valid_rows.push(row.clone());
            } else {
                invalid_rows += 1;
                all.extend(errs);
            }
        }
        errors = all;
        result.insert("rows".into(), json!(rows.len()));
        result.insert("invalid_rows".into(), json!(invalid_rows));
    } else {
        errors = errors_for(&validator, &loaded.value, None);
    }
    let count = errors.len();
    if mode == Mode::Strict && count > 0 {
        let mut summary: Vec<String> = errors.iter().take(MAX_QUOTED).map(quote).collect();
        if count > MAX_QUOTED {
            summary.push(format!("and {} more", count - MAX_QUOTED));
        }
        return Err(ToolFailure::SchemaMismatch {
            name: loaded.name,
            count,
            summary: summary.join("; "),
        });
    }
    let mut out = Map::new();
    out.insert("valid".into(), json!(count == 0));
    out.insert("mode".into(), json!(mode.name()));
    out.insert(
        "errors".into(),
        Value::Array(errors.into_iter().take(MAX_LISTED).collect()),
    );
    out.insert("error_count".into(), json!(count));
    out.extend(result);
    if mode == Mode::Lenient {
        let data = if row_wise {
            Value::Array(valid_rows)
        } else {
            loaded.value
        };
        out.insert("data".into(), data);
    }
    Ok(Value::Object(out))
}
