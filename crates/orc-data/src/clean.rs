//! The `clean` action: duplicates, missing values and outliers.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{Params, invalid, lookup, missing, opt_bool, opt_str};
use crate::value::{Row, Table, canonical, columns, table_value};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Removes repeated rows (same fields and values, in any key order), keeping the first.
pub(crate) fn dedupe(table: Table) -> (Table, usize) {
    let mut seen = HashSet::new();
    let before = table.len();
    let kept: Table = table
        .into_iter()
        .filter(|row| seen.insert(canonical(&Value::Object(row.clone()))))
        .collect();
    let removed = before - kept.len();
    (kept, removed)
}

/// The `q` quantile with linear interpolation (as pandas does); `xs` sorted, non-empty.
fn quantile(xs: &[f64], q: f64) -> f64 {
    // Small non-negative values: the conversions are exact.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    {
        let pos = q * (xs.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let a = xs.get(lo).copied().unwrap_or(0.0);
        let b = xs.get(hi).copied().unwrap_or(a);
        a + (b - a) * (pos - lo as f64)
    }
}

/// Bounds (low, high) per numeric column with at least four values.
fn outlier_bounds(table: &Table) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for col in columns(table) {
        let values: Vec<&Value> = table
            .iter()
            .filter_map(|r| r.get(&col))
            .filter(|v| !v.is_null())
            .collect();
        if values.len() < 4 || !values.iter().all(|v| v.is_number()) {
            continue;
        }
        let mut xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        xs.sort_by(f64::total_cmp);
        let (low, high) = iqr_bounds(&xs);
        out.push((col, low, high));
    }
    out
}

/// The bounds outside which a value is an outlier: 1.5×IQR below the first quartile and
/// above the third; `xs` sorted, non-empty.
pub(crate) fn iqr_bounds(xs: &[f64]) -> (f64, f64) {
    let q1 = quantile(xs, 0.25);
    let q3 = quantile(xs, 0.75);
    let iqr = q3 - q1;
    (q1 - 1.5 * iqr, q3 + 1.5 * iqr)
}

/// The median of sorted, non-empty values.
pub(crate) fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

fn fill(table: &mut Table, fill_value: &Value, cols: &[String]) -> usize {
    let mut filled = 0;
    for row in table.iter_mut() {
        for col in cols {
            let replacement = match fill_value {
                Value::Object(per_column) => match per_column.get(col) {
                    Some(v) => v,
                    None => continue,
                },
                v => v,
            };
            let slot = row.entry(col.clone()).or_insert(Value::Null);
            if slot.is_null() {
                *slot = replacement.clone();
                filled += 1;
            }
        }
    }
    filled
}

/// The `clean` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let remove_duplicates = opt_bool(params, "", "remove_duplicates", true)?;
    let remove_outliers = opt_bool(params, "", "remove_outliers", false)?;
    let handle_missing = opt_str(params, "", &["handle_missing"])?
        .unwrap_or("none")
        .trim()
        .to_ascii_lowercase();
    if !["none", "drop", "fill"].contains(&handle_missing.as_str()) {
        return Err(invalid(
            "handle_missing",
            format!("unknown strategy `{handle_missing}` (expected one of: drop, fill, none)"),
        ));
    }
    let fill_value = if handle_missing == "fill" {
        Some(
            lookup(params, &["fill_value"])
                .map(|(_, v)| v.clone())
                .ok_or_else(|| missing("fill_value"))?,
        )
    } else {
        None
    };
    let table = load_table(params)?;

    let (mut table, duplicates) = if remove_duplicates {
        dedupe(table)
    } else {
        (table, 0)
    };

    let cols = columns(&table);
    let mut dropped = 0;
    let mut filled = 0;
    if handle_missing == "drop" {
        let before = table.len();
        table.retain(|row: &Row| {
            cols.iter()
                .all(|c| row.get(c).is_some_and(|v| !v.is_null()))
        });
        dropped = before - table.len();
    } else if let Some(v) = &fill_value {
        filled = fill(&mut table, v, &cols);
    }

    let mut outliers = 0;
    if remove_outliers {
        let bounds = outlier_bounds(&table);
        let before = table.len();
        table.retain(|row| {
            bounds
                .iter()
                .all(|(col, lo, hi)| match row.get(col).and_then(Value::as_f64) {
                    Some(x) => x >= *lo && x <= *hi,
                    None => true,
                })
        });
        outliers = before - table.len();
    }

    let count = table.len();
    Ok(json!({
        "data": table_value(table),
        "count": count,
        "removed": { "duplicates": duplicates, "missing": dropped, "outliers": outliers },
        "filled": filled,
    }))
}
