//! The `merge` action: concatenation and joins.

use crate::ToolFailure;
use crate::input::{input_format, load, to_table};
use crate::params::{Params, array_value, invalid, lookup, missing, opt_str, string_list};
use crate::value::{Row, Table, canonical, check_fields, columns, table_value};
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinType {
    Inner,
    Left,
    Right,
    Outer,
}

/// Loads every dataset as a table, with the parameter path each came from.
fn datasets(params: &Params) -> Result<Vec<(String, Table)>, ToolFailure> {
    let format = input_format(params)?;
    let mut sources: Vec<(String, Value)> = Vec::new();
    if let Some((name, v)) = lookup(params, &["datasets"]) {
        let items = match v {
            Value::Object(m) => m.values().cloned().collect(),
            other => array_value(other, name)?,
        };
        for (i, item) in items.into_iter().enumerate() {
            sources.push((format!("{name}[{i}]"), item));
        }
    } else {
        let (name, data) =
            lookup(params, &["data", "input_data"]).ok_or_else(|| missing("datasets"))?;
        let (other_name, other) =
            lookup(params, &["other", "right"]).ok_or_else(|| missing("other"))?;
        sources.push((name.to_string(), data.clone()));
        sources.push((other_name.to_string(), other.clone()));
    }
    if sources.len() < 2 {
        return Err(invalid(
            "datasets",
            format!("needs at least two datasets, got {}", sources.len()),
        ));
    }
    sources
        .into_iter()
        .map(|(name, v)| {
            let loaded = load(&v, &name, format)?;
            let table = to_table(loaded.value, &name)?;
            Ok((name, table))
        })
        .collect()
}

fn key_of(row: &Row, keys: &[String]) -> Option<String> {
    let mut vals = Vec::with_capacity(keys.len());
    for k in keys {
        match row.get(k) {
            None | Some(Value::Null) => return None,
            Some(v) => vals.push(v.clone()),
        }
    }
    Some(canonical(&Value::Array(vals)))
}

/// Joins `left` with `right` (dataset number `k`), renaming clashing columns `name_k`.
fn join(left: Table, right: &Table, keys: &[String], how: JoinType, k: usize) -> Table {
    let left_cols = columns(&left);
    let right_cols: Vec<String> = columns(right)
        .into_iter()
        .filter(|c| !keys.contains(c))
        .collect();
    let renamed: Vec<(String, String)> = right_cols
        .iter()
        .map(|c| {
            let out = if left_cols.contains(c) {
                format!("{c}_{k}")
            } else {
                c.clone()
            };
            (c.clone(), out)
        })
        .collect();
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in right.iter().enumerate() {
        if let Some(key) = key_of(row, keys) {
            index.entry(key).or_default().push(i);
        }
    }
    let combine = |l: Option<&Row>, r: Option<&Row>| -> Row {
        let mut row = Row::new();
        for c in &left_cols {
            let v = match (l, r) {
                (Some(l), _) => l.get(c).cloned(),
                (None, Some(r)) if keys.contains(c) => r.get(c).cloned(),
                _ => None,
            };
            row.insert(c.clone(), v.unwrap_or(Value::Null));
        }
        for (c, out) in &renamed {
            row.insert(
                out.clone(),
                r.and_then(|r| r.get(c)).cloned().unwrap_or(Value::Null),
            );
        }
        row
    };
    let mut out = Vec::new();
    let mut right_used = vec![false; right.len()];
    for l in &left {
        let matches = key_of(l, keys).and_then(|key| index.get(&key));
        match matches {
            Some(ids) => {
                for &i in ids {
                    if let Some(slot) = right_used.get_mut(i) {
                        *slot = true;
                    }
                    out.push(combine(Some(l), right.get(i)));
                }
            }
            None if matches!(how, JoinType::Left | JoinType::Outer) => {
                out.push(combine(Some(l), None))
            }
            None => {}
        }
    }
    match how {
        JoinType::Right => {
            // Rebuild in right-table order: each right row with its matches, or alone.
            let mut left_index: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, row) in left.iter().enumerate() {
                if let Some(key) = key_of(row, keys) {
                    left_index.entry(key).or_default().push(i);
                }
            }
            let mut rows = Vec::new();
            for r in right {
                match key_of(r, keys).and_then(|key| left_index.get(&key)) {
                    Some(ids) => rows.extend(ids.iter().map(|&i| combine(left.get(i), Some(r)))),
                    None => rows.push(combine(None, Some(r))),
                }
            }
            rows
        }
        JoinType::Outer => {
            for (i, r) in right.iter().enumerate() {
                if !right_used.get(i).copied().unwrap_or(true) {
                    out.push(combine(None, Some(r)));
                }
            }
            out
        }
        _ => out,
    }
}

/// The `merge` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let join_on = match lookup(params, &["join_on", "on"]) {
        Some((name, v)) => Some(string_list(v, name)?),
        None => None,
    };
    let strategy = opt_str(params, "", &["merge_strategy", "strategy"])?
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_else(|| {
            if join_on.is_some() {
                "join".into()
            } else {
                "concat".into()
            }
        });
    let how = match opt_str(params, "", &["join_type", "how"])?
        .unwrap_or("inner")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "inner" => JoinType::Inner,
        "left" => JoinType::Left,
        "right" => JoinType::Right,
        "outer" | "full" => JoinType::Outer,
        other => {
            return Err(invalid(
                "join_type",
                format!("unknown join type `{other}` (expected one of: inner, left, right, outer)"),
            ));
        }
    };
    let rows = match strategy.as_str() {
        "concat" | "append" | "union" => {
            let sets = datasets(params)?;
            let all: Table = sets.into_iter().flat_map(|(_, t)| t).collect();
            let cols = columns(&all);
            all.into_iter()
                .map(|row| {
                    cols.iter()
                        .map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null)))
                        .collect()
                })
                .collect()
        }
        "join" => {
            let keys = join_on.ok_or_else(|| missing("join_on"))?;
            if keys.is_empty() {
                return Err(invalid("join_on", "no fields given"));
            }
            let mut sets = datasets(params)?.into_iter().enumerate();
            let Some((_, (first_name, mut acc))) = sets.next() else {
                return Err(missing("datasets"));
            };
            check_fields(&acc, &keys, &format!("join_on (in `{first_name}`)"))?;
            for (k, (name, table)) in sets {
                check_fields(&table, &keys, &format!("join_on (in `{name}`)"))?;
                acc = join(acc, &table, &keys, how, k);
            }
            acc
        }
        other => {
            return Err(invalid(
                "merge_strategy",
                format!("unknown strategy `{other}` (expected concat or join)"),
            ));
        }
    };
    let count = rows.len();
    Ok(json!({ "data": table_value(rows), "count": count }))
}
