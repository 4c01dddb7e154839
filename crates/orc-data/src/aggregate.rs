//! Grouping and aggregation (`aggregate` action and transform step); a CSV
//! file named by `data` is aggregated as it is read.

use crate::input::load_table;
use crate::params::{Params, describe, invalid, lookup, missing, object_value, path, string_list};
use crate::stream::{self, CsvFile, Stop};
use crate::value::{
    Row, Table, as_f64, canonical_into, canonical_list_into, check_fields, compare, f64_value,
    unknown_field,
};
use crate::{Limits, ToolFailure};
use csv::StringRecord;
use serde_json::{Value, json};
use std::borrow::Borrow;
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

/// The `group_by` fields and aggregations of an `aggregate` action or step.
#[derive(Debug)]
struct Spec {
    group_by: Vec<String>,
    aggs: Vec<Agg>,
    /// The parameter path of the step (empty for the action).
    prefix: String,
}

impl Spec {
    fn parse(step: &Params, prefix: &str) -> Result<Self, ToolFailure> {
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
        Ok(Spec {
            group_by,
            aggs,
            prefix: prefix.to_string(),
        })
    }

    /// Checks the fields against the rows of a table.
    fn check_table(&self, table: &[Row]) -> Result<(), ToolFailure> {
        check_fields(table, &self.group_by, &path(&self.prefix, "group_by"))?;
        for agg in &self.aggs {
            check_fields(table, agg.field.iter(), &agg.at)?;
        }
        Ok(())
    }

    /// Checks the fields against the columns of a CSV header, as
    /// [`Spec::check_table`] does for a non-empty table read from it.
    fn check_columns(&self, columns: &[String]) -> Result<(), ToolFailure> {
        let group_by = path(&self.prefix, "group_by");
        let fields = self.group_by.iter().map(|f| (f, group_by.as_str())).chain(
            self.aggs
                .iter()
                .filter_map(|a| a.field.as_ref().map(|f| (f, a.at.as_str()))),
        );
        for (field, name) in fields {
            if !columns.contains(field) {
                return Err(unknown_field(field, columns, name));
            }
        }
        Ok(())
    }

    /// The distinct fields read from each row: the `group_by` fields, then
    /// the aggregated ones.
    fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = self
            .group_by
            .iter()
            .chain(self.aggs.iter().filter_map(|a| a.field.as_ref()));
        for f in all {
            if !out.contains(&f.as_str()) {
                out.push(f);
            }
        }
        out
    }
}

static NULL: Value = Value::Null;

/// One aggregation's running state for one group.
#[derive(Debug)]
enum Acc {
    /// `count` without a field: the rows.
    Rows(usize),
    /// `count` of a field: its non-null values.
    NonNull(usize),
    /// The integer sum while every value is an integer and it does not
    /// overflow, and the float sum (added in row order, as `Iterator::sum`).
    Sum {
        int: Option<i64>,
        float: f64,
    },
    Mean {
        float: f64,
        n: usize,
    },
    Extreme {
        best: Option<Value>,
        want: Ordering,
    },
    First(Option<Value>),
    Last(Option<Value>),
    Distinct(HashSet<String>),
    /// The first error, reported if no earlier group or aggregation failed.
    Failed(ToolFailure),
}

/// What `Iterator::sum` starts a float sum from, so that sums folded one
/// value at a time equal the in-memory ones to the bit (`-0.0` included).
fn empty_sum() -> f64 {
    std::iter::empty::<f64>().sum()
}

impl Acc {
    fn new(agg: &Agg) -> Self {
        match (agg.op, &agg.field) {
            (Op::Count, None) => Acc::Rows(0),
            (Op::Count, Some(_)) => Acc::NonNull(0),
            (Op::Sum, _) => Acc::Sum {
                int: Some(0),
                float: empty_sum(),
            },
            (Op::Mean, _) => Acc::Mean {
                float: empty_sum(),
                n: 0,
            },
            (Op::Min, _) => Acc::Extreme {
                best: None,
                want: Ordering::Less,
            },
            (Op::Max, _) => Acc::Extreme {
                best: None,
                want: Ordering::Greater,
            },
            (Op::First, _) => Acc::First(None),
            (Op::Last, _) => Acc::Last(None),
            (Op::CountDistinct, _) => Acc::Distinct(HashSet::new()),
        }
    }

    /// Adds one row's value of the aggregated field (`scratch` is working space).
    fn add(&mut self, v: &Value, agg: &Agg, scratch: &mut String) {
        if let Acc::Rows(n) = self {
            *n += 1;
            return;
        }
        if v.is_null() {
            return;
        }
        let field = agg.field.as_deref().unwrap_or_default();
        let number = || {
            as_f64(v).ok_or_else(|| {
                invalid(
                    &agg.at,
                    format!(
                        "`{}` needs numbers, but field `{field}` has {}",
                        agg.out,
                        describe(v)
                    ),
                )
            })
        };
        let failed = match self {
            Acc::Rows(_) | Acc::Failed(_) => None,
            Acc::NonNull(n) => {
                *n += 1;
                None
            }
            Acc::Sum { int, float } => match number() {
                Ok(x) => {
                    *int = match (*int, v.as_i64()) {
                        (Some(acc), Some(i)) => acc.checked_add(i),
                        _ => None,
                    };
                    *float += x;
                    None
                }
                Err(e) => Some(e),
            },
            Acc::Mean { float, n } => match number() {
                Ok(x) => {
                    *float += x;
                    *n += 1;
                    None
                }
                Err(e) => Some(e),
            },
            Acc::Extreme { best, want } => match best {
                None => {
                    *best = Some(v.clone());
                    None
                }
                Some(b) => match compare(v, b) {
                    Some(o) if o == *want => {
                        *b = v.clone();
                        None
                    }
                    Some(_) => None,
                    None => Some(invalid(
                        &agg.at,
                        format!(
                            "cannot compare values of field `{field}`: {} and {}",
                            describe(b),
                            describe(v)
                        ),
                    )),
                },
            },
            Acc::First(first) => {
                if first.is_none() {
                    *first = Some(v.clone());
                }
                None
            }
            Acc::Last(last) => {
                *last = Some(v.clone());
                None
            }
            Acc::Distinct(set) => {
                canonical_into(v, scratch);
                if !set.contains(scratch.as_str()) {
                    set.insert(scratch.clone());
                }
                None
            }
        };
        if let Some(e) = failed {
            *self = Acc::Failed(e);
        }
    }

    fn finish(self) -> Result<Value, ToolFailure> {
        Ok(match self {
            Acc::Rows(n) | Acc::NonNull(n) => Value::from(n),
            Acc::Sum { int, float } => int.map_or_else(|| f64_value(float), Value::from),
            Acc::Mean { n: 0, .. } => Value::Null,
            Acc::Mean { float, n } => {
                // Row counts are far below 2^52, so the conversion is exact.
                #[allow(clippy::cast_precision_loss)]
                let n = n as f64;
                f64_value(float / n)
            }
            Acc::Extreme { best: v, .. } | Acc::First(v) | Acc::Last(v) => v.unwrap_or(Value::Null),
            Acc::Distinct(set) => Value::from(set.len()),
            Acc::Failed(e) => return Err(e),
        })
    }
}

/// One group: its key values and one accumulator per aggregation.
#[derive(Debug)]
struct Group {
    keys: Vec<Value>,
    accs: Vec<Acc>,
}

/// Groups rows in order of first appearance and folds each into its group's
/// accumulators, one row at a time. Both the in-memory and the streamed
/// path use it, so they agree to the byte, errors included.
#[derive(Debug)]
struct Fold<'s> {
    spec: &'s Spec,
    /// For each `group_by` field, its index in [`Spec::fields`].
    key_cols: Vec<usize>,
    /// For each aggregation, the index of its field in [`Spec::fields`].
    agg_cols: Vec<Option<usize>>,
    index: HashMap<String, usize>,
    groups: Vec<Group>,
    /// The key of the current row.
    key: String,
    scratch: String,
}

impl<'s> Fold<'s> {
    fn new(spec: &'s Spec) -> Self {
        let fields = spec.fields();
        let col = |f: &str| fields.iter().position(|c| *c == f).unwrap_or_default();
        let mut fold = Fold {
            spec,
            key_cols: spec.group_by.iter().map(|f| col(f)).collect(),
            agg_cols: spec
                .aggs
                .iter()
                .map(|a| a.field.as_deref().map(col))
                .collect(),
            index: HashMap::new(),
            groups: Vec::new(),
            key: String::new(),
            scratch: String::new(),
        };
        if spec.group_by.is_empty() {
            fold.groups.push(fold.group(Vec::new()));
        }
        fold
    }

    fn group(&self, keys: Vec<Value>) -> Group {
        Group {
            keys,
            accs: self.spec.aggs.iter().map(Acc::new).collect(),
        }
    }

    /// Adds one row, given as the values of [`Spec::fields`] in order.
    fn add<V: Borrow<Value>>(&mut self, values: &[V]) {
        let value = |i: usize| values.get(i).map_or(&NULL, Borrow::borrow);
        let slot = if self.spec.group_by.is_empty() {
            0
        } else {
            self.key.clear();
            canonical_list_into(self.key_cols.iter().map(|&c| value(c)), &mut self.key);
            match self.index.get(self.key.as_str()) {
                Some(&slot) => slot,
                None => {
                    let keys = self.key_cols.iter().map(|&c| value(c).clone()).collect();
                    let group = self.group(keys);
                    self.groups.push(group);
                    self.index.insert(self.key.clone(), self.groups.len() - 1);
                    self.groups.len() - 1
                }
            }
        };
        let Some(group) = self.groups.get_mut(slot) else {
            return;
        };
        for ((acc, agg), col) in group
            .accs
            .iter_mut()
            .zip(&self.spec.aggs)
            .zip(&self.agg_cols)
        {
            acc.add(col.map_or(&NULL, value), agg, &mut self.scratch);
        }
    }

    /// One row per group, in order of first appearance; the first failed
    /// aggregation (by group, then by aggregation) is the error.
    fn finish(self) -> Result<Table, ToolFailure> {
        let mut out = Vec::with_capacity(self.groups.len());
        for group in self.groups {
            let mut row = Row::new();
            for (field, key) in self.spec.group_by.iter().zip(group.keys) {
                row.insert(field.clone(), key);
            }
            for (agg, acc) in self.spec.aggs.iter().zip(group.accs) {
                row.insert(agg.out.clone(), acc.finish()?);
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// Groups by `group_by` (`prefix` is the parameter path of the step) and
/// computes the aggregations.
pub(crate) fn aggregate_step(
    table: &Table,
    step: &Params,
    prefix: &str,
) -> Result<Table, ToolFailure> {
    let spec = Spec::parse(step, prefix)?;
    spec.check_table(table)?;
    let fields = spec.fields();
    let mut fold = Fold::new(&spec);
    let mut values: Vec<&Value> = Vec::with_capacity(fields.len());
    for row in table {
        values.clear();
        values.extend(fields.iter().map(|f| row.get(*f).unwrap_or(&NULL)));
        fold.add(&values);
    }
    fold.finish()
}

/// Aggregates a CSV file one record at a time: memory grows with the
/// groups (and distinct values), not with the file.
fn aggregate_file(params: &Params, limits: &Limits) -> Result<Table, Stop> {
    let mut file = stream::open(params, limits)?;
    let spec = Spec::parse(params, "")?;
    let columns: Vec<Option<usize>> = spec
        .fields()
        .iter()
        .map(|f| file.names().iter().position(|n| n == f))
        .collect();
    let mut fold = Fold::new(&spec);
    let mut record = StringRecord::new();
    let mut values: Vec<Value> = Vec::with_capacity(columns.len());
    let mut checked = false;
    while file.read(&mut record)? {
        if !checked {
            spec.check_columns(file.names()).map_err(|e| file.fail(e))?;
            checked = true;
        }
        values.clear();
        values.extend(columns.iter().map(|c| CsvFile::cell(&record, *c)));
        fold.add(&values);
    }
    file.finish()?;
    fold.finish().map_err(Stop::from)
}

/// The `aggregate` action.
pub(crate) fn run(params: &Params, limits: &Limits) -> Result<Value, ToolFailure> {
    if lookup(params, &["aggregations", "group_by"]).is_none() {
        return Err(missing("aggregations"));
    }
    let rows = match aggregate_file(params, limits) {
        Ok(rows) => rows,
        Err(Stop::Fail(e)) => return Err(e),
        Err(Stop::InMemory) => aggregate_step(&load_table(params)?, params, "")?,
    };
    let groups = rows.len();
    Ok(json!({ "data": crate::convert::table_output(params, rows)?, "groups": groups }))
}
