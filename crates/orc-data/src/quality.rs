//! The `quality_check` action: completeness, uniqueness and type consistency.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{Params, invalid, lookup, number_value};
use crate::value::{canonical, columns, f64_value, type_name};
use serde_json::{Value, json};
use std::collections::HashSet;

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A share as a float (counts are far below 2^52, so exact).
#[allow(clippy::cast_precision_loss)]
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// The type family for consistency: integers and floats are both `number`.
fn family(v: &Value) -> &'static str {
    match type_name(v) {
        "integer" => "number",
        t => t,
    }
}

/// The `quality_check` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let threshold = match lookup(params, &["threshold"]) {
        Some((name, v)) => {
            let t = number_value(v, name)?;
            if !(0.0..=1.0).contains(&t) {
                return Err(invalid(name, format!("must be between 0 and 1, got {t}")));
            }
            t
        }
        None => 0.8,
    };
    let table = load_table(params)?;
    let cols = columns(&table);
    let rows = table.len();
    let mut issues = Vec::new();

    if rows == 0 {
        issues.push(json!({"type": "empty", "message": "the data has no rows"}));
        return Ok(json!({
            "score": 0.0, "passed": false, "threshold": f64_value(threshold),
            "metrics": {"completeness": 0.0, "uniqueness": 0.0, "consistency": 0.0},
            "issues": issues, "rows": 0, "columns": cols.len(),
        }));
    }

    // Completeness: non-null cells over all cells (absent keys count as null).
    let mut present = 0;
    for col in &cols {
        let nulls = table
            .iter()
            .filter(|r| r.get(col).is_none_or(Value::is_null))
            .count();
        present += rows - nulls;
        if nulls > 0 {
            issues.push(json!({
                "type": "missing_values", "column": col, "count": nulls,
                "message": format!("column `{col}` has {nulls} missing value(s) in {rows} rows"),
            }));
        }
    }
    let completeness = ratio(present, rows * cols.len());

    // Uniqueness: rows that repeat an earlier row.
    let mut seen: HashSet<String> = HashSet::new();
    let mut duplicate_rows = Vec::new();
    for (i, row) in table.iter().enumerate() {
        if !seen.insert(canonical(&Value::Object(row.clone()))) {
            duplicate_rows.push(i);
        }
    }
    if !duplicate_rows.is_empty() {
        issues.push(json!({
            "type": "duplicate_rows", "count": duplicate_rows.len(), "rows": duplicate_rows,
            "message": format!("{} row(s) repeat an earlier row", duplicate_rows.len()),
        }));
    }
    let uniqueness = 1.0 - ratio(duplicate_rows.len(), rows);

    // Consistency: per column, the share of non-null values of its dominant type.
    let mut shares = Vec::new();
    for col in &cols {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for v in table
            .iter()
            .filter_map(|r| r.get(col))
            .filter(|v| !v.is_null())
        {
            let f = family(v);
            match counts.iter_mut().find(|(t, _)| *t == f) {
                Some((_, n)) => *n += 1,
                None => counts.push((f, 1)),
            }
        }
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        let dominant = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        shares.push(ratio(dominant, total));
        if counts.len() > 1 {
            let types: Vec<&str> = counts.iter().map(|(t, _)| *t).collect();
            issues.push(json!({
                "type": "mixed_types", "column": col, "types": types,
                "message": format!("column `{col}` mixes types: {}", types.join(", ")),
            }));
        }
    }
    let consistency = if shares.is_empty() {
        1.0
    } else {
        // Column counts are small, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let n = shares.len() as f64;
        shares.iter().sum::<f64>() / n
    };

    let score = round4((completeness + uniqueness + consistency) / 3.0);
    Ok(json!({
        "score": f64_value(score),
        "passed": score >= threshold,
        "threshold": f64_value(threshold),
        "metrics": {
            "completeness": f64_value(round4(completeness)),
            "uniqueness": f64_value(round4(uniqueness)),
            "consistency": f64_value(round4(consistency)),
        },
        "issues": issues,
        "rows": rows,
        "columns": cols.len(),
    }))
}
