//! The `pivot` action: one row per value of the `index` columns, one column per value of the
//! `columns` columns, each cell an aggregate of the `values`.

use crate::ToolFailure;
use crate::input::load_table;
use crate::params::{Params, lookup, missing, opt_str, string_list};
use crate::value::{Row, check_fields, text_of};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The `pivot` action: `{data, index, columns?, values, aggfunc = sum, fill_value = 0}` →
/// `{data: [rows], rows: n, columns: [..]}`. The cells group by index and column values and
/// aggregate as `aggregate` does (`aggfunc` is one of its operations); a column is named by
/// the column values joined by `_`, followed by `_<value>` when there are several `values`,
/// or is the value's name without `columns`. Rows and columns come in order of first
/// appearance; a combination with no rows gets `fill_value`.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let list = |key: &'static str| -> Result<Vec<String>, ToolFailure> {
        match lookup(params, &[key]) {
            Some((_, v)) => string_list(v, key),
            None => Ok(Vec::new()),
        }
    };
    let index = list("index")?;
    let columns = list("columns")?;
    let values = list("values")?;
    if index.is_empty() {
        return Err(missing("index"));
    }
    if values.is_empty() {
        return Err(missing("values"));
    }
    let aggfunc = opt_str(params, "", &["aggfunc"])?.unwrap_or("sum");
    let fill = lookup(params, &["fill_value"]).map_or(json!(0), |(_, v)| v.clone());
    let table = load_table(params)?;
    check_fields(&table, &index, "index")?;
    check_fields(&table, &columns, "columns")?;
    check_fields(&table, &values, "values")?;

    // One group per (index, columns) combination, aggregated by the `aggregate` machinery.
    let mut aggregations = Map::new();
    for v in &values {
        aggregations.insert(v.clone(), json!(format!("{aggfunc}:{v}")));
    }
    let mut spec = Params::new();
    let group_by: Vec<&String> = index.iter().chain(&columns).collect();
    spec.insert("group_by".into(), json!(group_by));
    spec.insert("aggregations".into(), Value::Object(aggregations));
    let groups = crate::aggregate::aggregate_step(&table, &spec, "").map_err(name_aggfunc)?;

    let mut out: Vec<Row> = Vec::new();
    let mut row_of: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    for group in groups {
        let key = index
            .iter()
            .map(|c| crate::value::canonical(group.get(c).unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let slot = *row_of.entry(key).or_insert_with(|| {
            let mut row = Row::new();
            for c in &index {
                row.insert(c.clone(), group.get(c).cloned().unwrap_or(Value::Null));
            }
            out.push(row);
            out.len() - 1
        });
        let label = columns
            .iter()
            .map(|c| text_of(group.get(c).unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join("_");
        for v in &values {
            let name = match (columns.is_empty(), values.len()) {
                (true, _) => v.clone(),
                (false, 1) => label.clone(),
                (false, _) => format!("{label}_{v}"),
            };
            if !names.contains(&name) {
                names.push(name.clone());
            }
            let cell = group.get(v).cloned().unwrap_or(Value::Null);
            if let Some(row) = out.get_mut(slot) {
                row.insert(name, cell);
            }
        }
    }
    for row in &mut out {
        for name in &names {
            let empty = row.get(name).is_none_or(Value::is_null);
            if empty {
                row.insert(name.clone(), fill.clone());
            }
        }
    }
    let rows = out.len();
    Ok(json!({
        "data": crate::convert::table_output(params, out)?,
        "rows": rows,
        "columns": names,
    }))
}

/// An aggregation error names `aggregations.<value>`, which the step did not write: it is
/// about `aggfunc` over that value.
fn name_aggfunc(e: ToolFailure) -> ToolFailure {
    match e {
        ToolFailure::InvalidParameter { reason, .. } => ToolFailure::InvalidParameter {
            name: "aggfunc".into(),
            reason,
        },
        other => other,
    }
}
