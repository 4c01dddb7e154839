//! Filter criteria (`{field: value}` or `{field: {op: value}}`) and the
//! `filter` action, which filters a CSV file named by `data` as it is read.

use crate::input::load_table;
use crate::params::{Params, array_value, bool_value, describe, invalid, missing, object_value};
use crate::stream::{self, Stop};
use crate::value::{
    Row, Table, check_fields, compare, loose_eq, table_value, text_of, unknown_field,
};
use crate::{Limits, ToolFailure};
use csv::StringRecord;
use regex::Regex;
use serde_json::{Value, json};
use std::cmp::Ordering;

#[derive(Debug)]
enum Test {
    Eq(Value),
    Ne(Value),
    Cmp(Vec<Ordering>, Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Contains(Value),
    Matches(Regex),
    Exists(bool),
}

/// One field's tests, all of which must hold.
#[derive(Debug)]
pub(crate) struct Condition {
    field: String,
    tests: Vec<Test>,
}

fn normalize_op(op: &str) -> Option<&'static str> {
    let op = op.strip_prefix('$').unwrap_or(op);
    let name = match op {
        "==" | "=" | "eq" => "eq",
        "!=" | "<>" | "ne" | "neq" => "ne",
        ">" | "gt" => "gt",
        ">=" | "gte" | "ge" => "gte",
        "<" | "lt" => "lt",
        "<=" | "lte" | "le" => "lte",
        "in" => "in",
        "not_in" | "nin" => "not_in",
        "contains" => "contains",
        "matches" | "regex" => "matches",
        "exists" => "exists",
        _ => return None,
    };
    Some(name)
}

/// Parses criteria; `name` is the parameter path used in errors.
pub(crate) fn parse(v: &Value, name: &str) -> Result<Vec<Condition>, ToolFailure> {
    let map = object_value(v, name)?;
    let mut out = Vec::new();
    for (field, cond) in map {
        let at = format!("{name}.{field}");
        let operator_form = match &cond {
            Value::Object(m) => !m.is_empty() && m.keys().all(|k| normalize_op(k).is_some()),
            _ => false,
        };
        let tests =
            if let (true, Value::Object(ops)) = (operator_form, &cond) {
                let mut tests = Vec::new();
                for (op, arg) in ops {
                    let op_name = normalize_op(op).unwrap_or("eq");
                    let op_at = format!("{at}.{op}");
                    tests.push(match op_name {
                        "eq" => Test::Eq(arg.clone()),
                        "ne" => Test::Ne(arg.clone()),
                        "gt" => Test::Cmp(vec![Ordering::Greater], arg.clone()),
                        "gte" => Test::Cmp(vec![Ordering::Greater, Ordering::Equal], arg.clone()),
                        "lt" => Test::Cmp(vec![Ordering::Less], arg.clone()),
                        "lte" => Test::Cmp(vec![Ordering::Less, Ordering::Equal], arg.clone()),
                        "in" => Test::In(array_value(arg, &op_at)?),
                        "not_in" => Test::NotIn(array_value(arg, &op_at)?),
                        "contains" => Test::Contains(arg.clone()),
                        "matches" => {
                            let pattern = arg.as_str().ok_or_else(|| {
                                invalid(
                                    &op_at,
                                    format!("expected a regular expression, got {}", describe(arg)),
                                )
                            })?;
                            Test::Matches(Regex::new(pattern).map_err(|e| {
                                invalid(&op_at, format!("bad regular expression: {e}"))
                            })?)
                        }
                        _ => Test::Exists(bool_value(arg, &op_at)?),
                    });
                    if matches!(
                        tests.last(),
                        Some(Test::Cmp(
                            _,
                            Value::Array(_) | Value::Object(_) | Value::Null
                        ))
                    ) {
                        return Err(invalid(
                            &op_at,
                            format!("cannot compare with {}", describe(arg)),
                        ));
                    }
                }
                tests
            } else {
                vec![Test::Eq(cond)]
            };
        out.push(Condition { field, tests });
    }
    Ok(out)
}

fn passes(test: &Test, value: &Value, present: bool) -> bool {
    match test {
        Test::Eq(want) => loose_eq(value, want),
        Test::Ne(want) => !loose_eq(value, want),
        Test::Cmp(orders, want) => compare(value, want).is_some_and(|o| orders.contains(&o)),
        Test::In(list) => list.iter().any(|w| loose_eq(value, w)),
        Test::NotIn(list) => !list.iter().any(|w| loose_eq(value, w)),
        Test::Contains(want) => match value {
            Value::String(s) => s.contains(&text_of(want)),
            Value::Array(items) => items.iter().any(|i| loose_eq(i, want)),
            Value::Object(m) => want.as_str().is_some_and(|k| m.contains_key(k)),
            _ => false,
        },
        Test::Matches(re) => match value {
            Value::Null | Value::Array(_) | Value::Object(_) => false,
            other => re.is_match(&text_of(other)),
        },
        Test::Exists(want) => (present && !value.is_null()) == *want,
    }
}

/// Whether a row satisfies every condition.
pub(crate) fn row_matches(row: &Row, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        let value = row.get(&c.field);
        let present = value.is_some();
        let value = value.unwrap_or(&Value::Null);
        c.tests.iter().all(|t| passes(t, value, present))
    })
}

/// The fields whose absence is an error (`exists` tests may name any field).
fn checked_fields(conditions: &[Condition]) -> impl Iterator<Item = &String> {
    conditions
        .iter()
        .filter(|c| !c.tests.iter().all(|t| matches!(t, Test::Exists(_))))
        .map(|c| &c.field)
}

/// Keeps the rows matching the criteria in `v` (parameter path `name`).
pub(crate) fn filter_table(table: Table, v: &Value, name: &str) -> Result<Table, ToolFailure> {
    let conditions = parse(v, name)?;
    check_fields(&table, checked_fields(&conditions), name)?;
    Ok(table
        .into_iter()
        .filter(|row| row_matches(row, &conditions))
        .collect())
}

/// Filters a CSV file one record at a time: only the matching rows are kept.
fn filter_file(
    params: &Params,
    criteria: &Value,
    name: &str,
    limits: &Limits,
) -> Result<Table, Stop> {
    let mut file = stream::open(params, limits)?;
    let conditions = parse(criteria, name)?;
    let mut rows = Vec::new();
    let mut record = StringRecord::new();
    let mut checked = false;
    while file.read(&mut record)? {
        if !checked {
            if let Some(field) = checked_fields(&conditions).find(|f| !file.names().contains(f)) {
                return Err(file.fail(unknown_field(field, file.names(), name)));
            }
            checked = true;
        }
        let row = file.row(&record);
        if row_matches(&row, &conditions) {
            rows.push(row);
        }
    }
    file.finish()?;
    Ok(rows)
}

/// The `filter` action.
pub(crate) fn run(params: &Params, limits: &Limits) -> Result<Value, ToolFailure> {
    let (criteria, name) = match params.get("criteria").filter(|v| !v.is_null()) {
        Some(c) => (c.clone(), "criteria".to_string()),
        None => match params.get("operation").filter(|v| !v.is_null()) {
            Some(op) => {
                let op = object_value(op, "operation")?;
                let c = op
                    .get("criteria")
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| missing("operation.criteria"))?;
                (c, "operation.criteria".to_string())
            }
            None => return Err(missing("criteria")),
        },
    };
    let rows = match filter_file(params, &criteria, &name, limits) {
        Ok(rows) => rows,
        Err(Stop::Fail(e)) => return Err(e),
        Err(Stop::InMemory) => filter_table(load_table(params)?, &criteria, &name)?,
    };
    let count = rows.len();
    Ok(json!({ "data": table_value(rows), "count": count }))
}
