//! The `transform` action: a list of steps applied in order.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{
    Params, array_value, describe, invalid, lookup, missing, object_value, opt_bool, path,
    string_list, usize_value,
};
use crate::reshape;
use crate::value::{Row, Table, check_fields, sort_cmp};
use serde_json::{Value, json};
use std::cmp::Ordering;

const STEP_TYPES: &str = "filter, aggregate, select, drop, rename, sort, limit, compute, deduplicate, cast, fill_missing, calculate";

/// The `transform` action. Its steps are `operations`, or, as py-orc's tool read them,
/// `operation.transformations` (or `operation.operations`).
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let (name, ops) = match lookup(params, &["operations"]) {
        Some((name, ops)) => (name.to_string(), array_value(ops, name)?),
        None => {
            let (_, operation) =
                lookup(params, &["operation"]).ok_or_else(|| missing("operations"))?;
            let operation = object_value(operation, "operation")?;
            let (key, ops) = lookup(&operation, &["transformations", "operations"])
                .ok_or_else(|| missing("operation.transformations"))?;
            let name = format!("operation.{key}");
            let ops = array_value(ops, &name)?;
            (name, ops)
        }
    };
    let mut table = load_table(params)?;
    for (i, op) in ops.iter().enumerate() {
        let at = format!("{name}[{i}]");
        let step = object_value(op, &at)?;
        let (type_key, kind) = lookup(&step, &["type", "operation", "op"])
            .ok_or_else(|| missing(format!("{at}.type")))?;
        let kind = kind.as_str().ok_or_else(|| {
            invalid(
                format!("{at}.{type_key}"),
                format!("expected a step type, got {}", describe(kind)),
            )
        })?;
        table = apply(table, kind, &step, &at)?;
    }
    let count = table.len();
    let data = crate::convert::table_output(params, table)?;
    Ok(json!({ "data": data, "count": count, "operations": ops.len() }))
}

fn required<'a>(step: &'a Params, at: &str, key: &'static str) -> Result<&'a Value, ToolFailure> {
    lookup(step, &[key])
        .map(|(_, v)| v)
        .ok_or_else(|| missing(path(at, key)))
}

fn apply(table: Table, kind: &str, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    match kind {
        "filter" => match py_orc_filter(step, at)? {
            Some((criteria, name)) => crate::criteria::filter_table(table, &criteria, &name),
            None => crate::criteria::filter_table(
                table,
                required(step, at, "criteria")?,
                &path(at, "criteria"),
            ),
        },
        "aggregate" => match py_orc_aggregate(step, at)? {
            Some(step) => crate::aggregate::aggregate_step(&table, &step, at),
            None => crate::aggregate::aggregate_step(&table, step, at),
        },
        "select" | "drop" => {
            let name = path(at, "fields");
            let fields = string_list(required(step, at, "fields")?, &name)?;
            check_fields(&table, &fields, &name)?;
            Ok(table
                .into_iter()
                .map(|row| {
                    if kind == "select" {
                        fields
                            .iter()
                            .map(|f| (f.clone(), row.get(f).cloned().unwrap_or(Value::Null)))
                            .collect()
                    } else {
                        row.into_iter()
                            .filter(|(k, _)| !fields.contains(k))
                            .collect()
                    }
                })
                .collect())
        }
        "rename" => rename(table, required(step, at, "mapping")?, &path(at, "mapping")),
        "sort" => {
            let name = path(at, "by");
            let by = string_list(required(step, at, "by")?, &name)?;
            check_fields(&table, &by, &name)?;
            let descending = match lookup(step, &["ascending"]) {
                Some(_) => !opt_bool(step, at, "ascending", true)?,
                None => opt_bool(step, at, "descending", false)?,
            };
            let mut table = table;
            table.sort_by(|a, b| compare_rows(a, b, &by, descending));
            Ok(table)
        }
        "limit" => {
            let (key, v) =
                lookup(step, &["n", "count", "limit"]).ok_or_else(|| missing(path(at, "n")))?;
            let n = usize_value(v, &path(at, key))?;
            let mut table = table;
            table.truncate(n);
            Ok(table)
        }
        "compute" => compute(table, step, at),
        "deduplicate" | "dedupe" | "drop_duplicates" => reshape::deduplicate(table, step, at),
        "cast" => reshape::cast(table, step, at),
        "fill_missing" | "fillna" => reshape::fill_missing(table, step, at),
        "calculate" => reshape::calculate(table, step, at),
        other => Err(invalid(
            path(at, "type"),
            format!("unknown step type `{other}` (expected one of: {STEP_TYPES})"),
        )),
    }
}

/// py-orc's filter steps, `{type: filter, field: F, value: V}` (the rows whose `F` equals
/// `V`) and `{type: filter, condition: "F != 'x'"}`, as criteria with the parameter they came
/// from; `None` for orc's own form.
fn py_orc_filter(step: &Params, at: &str) -> Result<Option<(Value, String)>, ToolFailure> {
    if step.contains_key("criteria") {
        return Ok(None);
    }
    if let Some((key, condition)) = lookup(step, &["condition"]) {
        let name = path(at, key);
        let text = crate::params::str_value(condition, &name)?;
        return Ok(Some((reshape::condition_criteria(text, &name)?, name)));
    }
    let Some(field) = step.get("field").and_then(Value::as_str) else {
        return Ok(None);
    };
    let value = step.get("value").cloned().unwrap_or(Value::Null);
    Ok(Some((json!({ field: value }), path(at, "field"))))
}

/// py-orc's aggregate step, `{type: aggregate, operation: sum, field: F}` (the operation
/// over all rows), as orc's: one row with the column `F_sum`; `None` for orc's own form.
fn py_orc_aggregate(step: &Params, at: &str) -> Result<Option<Params>, ToolFailure> {
    if step.contains_key("aggregations") || step.contains_key("group_by") {
        return Ok(None);
    }
    let (Some(op), Some(field)) = (step.get("operation"), step.get("field")) else {
        return Ok(None);
    };
    let op = crate::params::str_value(op, &path(at, "operation"))?;
    let field = crate::params::str_value(field, &path(at, "field"))?;
    let mut out = Params::new();
    out.insert(
        "aggregations".into(),
        json!({ format!("{field}_{op}"): format!("{op}:{field}") }),
    );
    Ok(Some(out))
}

fn compare_rows(a: &Row, b: &Row, by: &[String], descending: bool) -> Ordering {
    for field in by {
        let x = a.get(field).unwrap_or(&Value::Null);
        let y = b.get(field).unwrap_or(&Value::Null);
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if descending => sort_cmp(y, x),
            (false, false) => sort_cmp(x, y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn rename(table: Table, mapping: &Value, name: &str) -> Result<Table, ToolFailure> {
    let map = object_value(mapping, name)?;
    let mut pairs = Vec::new();
    for (old, new) in &map {
        let new = new.as_str().ok_or_else(|| {
            invalid(
                format!("{name}.{old}"),
                format!("expected a new field name, got {}", describe(new)),
            )
        })?;
        pairs.push((old.clone(), new.to_string()));
    }
    check_fields(&table, pairs.iter().map(|(o, _)| o), name)?;
    let mut out = Vec::with_capacity(table.len());
    for row in table {
        let mut renamed = Row::new();
        for (k, v) in row {
            let key = pairs
                .iter()
                .find(|(o, _)| *o == k)
                .map_or(k, |(_, n)| n.clone());
            if renamed.contains_key(&key) {
                return Err(invalid(
                    name,
                    format!("renaming would create a second field `{key}`"),
                ));
            }
            renamed.insert(key, v);
        }
        out.push(renamed);
    }
    Ok(out)
}

fn compute(table: Table, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    let field_name = path(at, "field");
    let field = crate::params::str_value(required(step, at, "field")?, &field_name)?.to_string();
    if let Some((_, value)) = lookup(step, &["value"]) {
        return Ok(table
            .into_iter()
            .map(|mut row| {
                row.insert(field.clone(), value.clone());
                row
            })
            .collect());
    }
    let expr_name = path(at, "expression");
    let text = crate::params::str_value(
        lookup(step, &["expression"])
            .map(|(_, v)| v)
            .ok_or_else(|| missing(&expr_name))?,
        &expr_name,
    )?;
    let expr = crate::expr::parse(text).map_err(|e| invalid(&expr_name, e))?;
    let mut used = Vec::new();
    expr.fields(&mut used);
    check_fields(&table, &used, &expr_name)?;
    let mut out = Vec::with_capacity(table.len());
    for (i, mut row) in table.into_iter().enumerate() {
        let v = expr
            .eval(&row)
            .map_err(|e| invalid(&expr_name, format!("row {i}: {e}")))?;
        row.insert(field.clone(), v);
        out.push(row);
    }
    Ok(out)
}
