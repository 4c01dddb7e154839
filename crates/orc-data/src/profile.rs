//! The `profile` action: per-column statistics.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{Params, invalid, lookup, string_list};
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

/// The sections `profiling_options` may ask for (py-orc's names).
const OPTIONS: [&str; 5] = [
    "missing_values",
    "data_types",
    "statistical_summary",
    "outlier_detection",
    "duplicate_detection",
];

/// The `profile` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let options = match lookup(params, &["profiling_options"]) {
        Some((key, v)) => {
            let options = string_list(v, key)?;
            if let Some(bad) = options.iter().find(|o| !OPTIONS.contains(&o.as_str())) {
                return Err(invalid(
                    key,
                    format!(
                        "unknown option `{bad}` (expected any of: {})",
                        OPTIONS.join(", ")
                    ),
                ));
            }
            options
        }
        None => Vec::new(),
    };
    let wants = |o: &str| options.iter().any(|x| x == o);
    let table = load_table(params)?;
    let cols = columns(&table);
    let mut profiles = Map::new();
    for col in &cols {
        let mut profile = profile_column(&table, col);
        if let Value::Object(p) = &mut profile {
            add_sections(p, &table, col, &wants);
        }
        profiles.insert(col.clone(), profile);
    }
    let mut out = json!({
        "rows": table.len(),
        "columns": cols.len(),
        "column_profiles": profiles,
    });
    if wants("duplicate_detection") {
        let (_, duplicates) = crate::clean::dedupe(table.clone());
        out["duplicate_rows"] = json!(duplicates);
        out["duplicate_percentage"] = percent(duplicates, table.len());
    }
    Ok(out)
}

/// `count` of `total` as a percentage (0 when there is nothing).
fn percent(count: usize, total: usize) -> Value {
    if total == 0 {
        return json!(0);
    }
    // Row counts are far below 2^52, so the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    f64_value(count as f64 * 100.0 / total as f64)
}

/// The sections of `profiling_options` for one column: `missing_count`/`missing_percentage`
/// (null or empty text), for numbers `median`/`std_dev` (sample) and
/// `outlier_count`/`outlier_percentage` (outside 1.5×IQR, with at least four values).
fn add_sections(
    out: &mut Map<String, Value>,
    table: &Table,
    col: &str,
    wants: &dyn Fn(&str) -> bool,
) {
    let values: Vec<&Value> = table
        .iter()
        .map(|r| r.get(col).unwrap_or(&Value::Null))
        .collect();
    if wants("missing_values") {
        let missing = values
            .iter()
            .filter(|v| v.is_null() || v.as_str() == Some(""))
            .count();
        out.insert("missing_count".into(), json!(missing));
        out.insert("missing_percentage".into(), percent(missing, values.len()));
    }
    let numeric = matches!(
        out.get("type").and_then(Value::as_str),
        Some("integer" | "number")
    );
    if !numeric {
        return;
    }
    let mut xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return;
    }
    if wants("statistical_summary") {
        out.insert("median".into(), f64_value(crate::clean::median(&xs)));
        if xs.len() > 1 {
            // Row counts are far below 2^52, so the conversions are exact.
            #[allow(clippy::cast_precision_loss)]
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            out.insert("std_dev".into(), f64_value(var.sqrt()));
        }
    }
    if wants("outlier_detection") && xs.len() >= 4 {
        let (low, high) = crate::clean::iqr_bounds(&xs);
        let outliers = xs.iter().filter(|x| **x < low || **x > high).count();
        out.insert("outlier_count".into(), json!(outliers));
        out.insert("outlier_percentage".into(), percent(outliers, xs.len()));
    }
}
