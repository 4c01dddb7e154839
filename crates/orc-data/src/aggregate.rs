//! Grouping and aggregation (`aggregate` action and transform step).

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{Params, describe, invalid, lookup, missing, object_value, path, string_list};
use crate::value::{Row, Table, as_f64, canonical, check_fields, compare, f64_value, table_value};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    First,
    Last,
    CountDistinct,
}

const OP_NAMES: &str = "count, sum, mean, avg, min, max, first, last, count_distinct";

fn op_from(name: &str) -> Option<Op> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "count" | "size" => Op::Count,
        "sum" | "total" => Op::Sum,
        "mean" | "avg" | "average" => Op::Mean,
        "min" => Op::Min,
        "max" => Op::Max,
        "first" => Op::First,
        "last" => Op::Last,
        "count_distinct" | "nunique" | "distinct" => Op::CountDistinct,
        _ => return None,
    })
}

/// One output column: `out = op(field)`.
#[derive(Debug)]
struct Agg {
    out: String,
    op: Op,
    field: Option<String>,
    at: String,
}

fn parse_aggs(v: &Value, name: &str) -> Result<Vec<Agg>, ToolFailure> {
    let map = object_value(v, name)?;
    if map.is_empty() {
        return Err(invalid(name, "no aggregations given"));
    }
    let mut out = Vec::new();
    for (key, spec) in map {
        let at = format!("{name}.{key}");
        let (op_text, field) = match &spec {
            Value::String(s) => match s.split_once(':') {
                Some((op, field)) => (op.to_string(), Some(field.trim().to_string())),
                None => (s.clone(), None),
            },
            Value::Object(m) => {
                let op = lookup(m, &["op", "function", "func", "agg"])
                    .and_then(|(_, v)| v.as_str())
                    .ok_or_else(|| missing(format!("{at}.op")))?;
                let field = match lookup(m, &["field", "column"]) {
                    Some((n, v)) => Some(
                        v.as_str()
                            .ok_or_else(|| {
                                invalid(
                                    format!("{at}.{n}"),
                                    format!("expected a field name, got {}", describe(v)),
                                )
                            })?
                            .to_string(),
                    ),
                    None => None,
                };
                (op.to_string(), field)
            }
            other => {
                return Err(invalid(
                    &at,
                    format!(
                        "expected \"op:field\" or {{\"op\": .., \"field\": ..}}, got {}",
                        describe(other)
                    ),
                ));
            }
        };
        let op = op_from(&op_text).ok_or_else(|| {
            invalid(
                &at,
                format!("unknown operation `{op_text}` (expected one of: {OP_NAMES})"),
            )
        })?;
        let field = field.filter(|f| !f.is_empty());
        if field.is_none() && op != Op::Count {
            return Err(invalid(
                &at,
                format!("`{op_text}` needs a field, as in \"{op_text}:amount\""),
            ));
        }
        out.push(Agg {
            out: key,
            op,
            field,
            at,
        });
    }
    Ok(out)
}

fn numbers(rows: &[&Row], field: &str, agg: &Agg) -> Result<(Vec<f64>, Option<i64>), ToolFailure> {
    let mut xs = Vec::new();
    let mut int_sum: Option<i64> = Some(0);
    for row in rows {
        let v = row.get(field).unwrap_or(&Value::Null);
        if v.is_null() {
            continue;
        }
        let x = as_f64(v).ok_or_else(|| {
            invalid(
                &agg.at,
                format!(
                    "`{}` needs numbers, but field `{field}` has {}",
                    agg.out,
                    describe(v)
                ),
            )
        })?;
        int_sum = match (int_sum, v.as_i64()) {
            (Some(acc), Some(i)) => acc.checked_add(i),
            _ => None,
        };
        xs.push(x);
    }
    Ok((xs, int_sum))
}

fn extreme(rows: &[&Row], field: &str, agg: &Agg, want: Ordering) -> Result<Value, ToolFailure> {
    let mut best: Option<&Value> = None;
    for row in rows {
        let v = row.get(field).unwrap_or(&Value::Null);
        if v.is_null() {
            continue;
        }
        best = match best {
            None => Some(v),
            Some(b) => match compare(v, b) {
                Some(o) if o == want => Some(v),
                Some(_) => Some(b),
                None => {
                    return Err(invalid(
                        &agg.at,
                        format!(
                            "cannot compare values of field `{field}`: {} and {}",
                            describe(b),
                            describe(v)
                        ),
                    ));
                }
            },
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn compute(agg: &Agg, rows: &[&Row]) -> Result<Value, ToolFailure> {
    let Some(field) = agg.field.as_deref() else {
        return Ok(Value::from(rows.len()));
    };
    let non_null = || {
        rows.iter()
            .filter_map(|r| r.get(field))
            .filter(|v| !v.is_null())
    };
    Ok(match agg.op {
        Op::Count => Value::from(non_null().count()),
        Op::Sum => {
            let (xs, int_sum) = numbers(rows, field, agg)?;
            match int_sum {
                Some(i) => Value::from(i),
                None => f64_value(xs.iter().sum()),
            }
        }
        Op::Mean => {
            let (xs, _) = numbers(rows, field, agg)?;
            if xs.is_empty() {
                Value::Null
            } else {
                // Row counts are far below 2^52, so the conversion is exact.
                #[allow(clippy::cast_precision_loss)]
                let n = xs.len() as f64;
                f64_value(xs.iter().sum::<f64>() / n)
            }
        }
        Op::Min => extreme(rows, field, agg, Ordering::Less)?,
        Op::Max => extreme(rows, field, agg, Ordering::Greater)?,
        Op::First => non_null().next().cloned().unwrap_or(Value::Null),
        Op::Last => rows
            .iter()
            .rev()
            .filter_map(|r| r.get(field))
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        Op::CountDistinct => {
            let set: HashSet<String> = non_null().map(canonical).collect();
            Value::from(set.len())
        }
    })
}

/// Groups by `group_by` (`prefix` is the parameter path of the step) and
/// computes the aggregations.
pub(crate) fn aggregate_step(
    table: &Table,
    step: &Params,
    prefix: &str,
) -> Result<Table, ToolFailure> {
    let group_by = match lookup(step, &["group_by"]) {
        Some((n, v)) => string_list(v, &path(prefix, n))?,
        None => Vec::new(),
    };
    let aggs = match lookup(step, &["aggregations"]) {
        Some((n, v)) => parse_aggs(v, &path(prefix, n))?,
        None if !group_by.is_empty() => {
            parse_aggs(&json!({"count": "count"}), &path(prefix, "aggregations"))?
        }
        None => return Err(missing(path(prefix, "aggregations"))),
    };
    check_fields(table, &group_by, &path(prefix, "group_by"))?;
    for agg in &aggs {
        check_fields(table, agg.field.iter(), &agg.at)?;
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Vec<Value>, Vec<&Row>)> = Vec::new();
    if group_by.is_empty() {
        groups.push((Vec::new(), table.iter().collect()));
    } else {
        for row in table {
            let keys: Vec<Value> = group_by
                .iter()
                .map(|f| row.get(f).cloned().unwrap_or(Value::Null))
                .collect();
            let key = canonical(&Value::Array(keys.clone()));
            let slot = *index.entry(key).or_insert_with(|| {
                groups.push((keys, Vec::new()));
                groups.len() - 1
            });
            if let Some(group) = groups.get_mut(slot) {
                group.1.push(row);
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (keys, rows) in groups {
        let mut row = Row::new();
        for (field, key) in group_by.iter().zip(keys) {
            row.insert(field.clone(), key);
        }
        for agg in &aggs {
            row.insert(agg.out.clone(), compute(agg, &rows)?);
        }
        out.push(row);
    }
    Ok(out)
}

/// The `aggregate` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    if lookup(params, &["aggregations", "group_by"]).is_none() {
        return Err(missing("aggregations"));
    }
    let table = load_table(params)?;
    let rows = aggregate_step(&table, params, "")?;
    let groups = rows.len();
    Ok(json!({ "data": table_value(rows), "groups": groups }))
}
