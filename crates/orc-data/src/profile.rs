//! The `profile` action: per-column statistics.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::Params;
use crate::value::{Table, as_f64, canonical, columns, f64_value, sort_cmp, type_name};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// The type of a column from its non-null values: a single JSON Schema type,
/// `number` for a mix of integers and floats, `null` when all are null, else `mixed`.
pub(crate) fn column_type<'a>(values: impl Iterator<Item = &'a Value>) -> &'static str {
    let mut types: Vec<&'static str> = Vec::new();
    for v in values {
        let t = type_name(v);
        if t != "null" && !types.contains(&t) {
            types.push(t);
        }
    }
    match types.as_slice() {
        [] => "null",
        [one] => one,
        _ if types.iter().all(|t| *t == "integer" || *t == "number") => "number",
        _ => "mixed",
    }
}

/// Profiles one column.
fn profile_column(table: &Table, col: &str) -> Value {
    let values: Vec<&Value> = table
        .iter()
        .map(|r| r.get(col).unwrap_or(&Value::Null))
        .collect();
    let non_null: Vec<&Value> = values.iter().copied().filter(|v| !v.is_null()).collect();
    let distinct: HashSet<String> = non_null.iter().map(|v| canonical(v)).collect();
    let ty = column_type(non_null.iter().copied());
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    out.insert("non_null".into(), json!(non_null.len()));
    out.insert("nulls".into(), json!(values.len() - non_null.len()));
    out.insert("distinct".into(), json!(distinct.len()));
    if ty == "integer" || ty == "number" {
        let min = non_null.iter().copied().min_by(|a, b| sort_cmp(a, b));
        let max = non_null.iter().copied().max_by(|a, b| sort_cmp(a, b));
        let xs: Vec<f64> = non_null.iter().filter_map(|v| as_f64(v)).collect();
        // Row counts are far below 2^52, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        out.insert("min".into(), min.cloned().unwrap_or(Value::Null));
        out.insert("max".into(), max.cloned().unwrap_or(Value::Null));
        out.insert("mean".into(), f64_value(mean));
    }
    Value::Object(out)
}

/// The `profile` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let table = load_table(params)?;
    let cols = columns(&table);
    let mut profiles = Map::new();
    for col in &cols {
        profiles.insert(col.clone(), profile_column(&table, col));
    }
    Ok(json!({
        "rows": table.len(),
        "columns": cols.len(),
        "column_profiles": profiles,
    }))
}
