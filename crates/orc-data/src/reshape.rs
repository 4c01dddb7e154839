//! py-orc's transform steps beyond orc's own: `deduplicate`, `cast`, `fill_missing`,
//! `calculate` and a `filter` by `condition`, as its example pipelines write them.

use crate::ToolFailure;
use crate::params::{
    Params, describe, invalid, lookup, missing, object_value, opt_str, path, str_value, string_list,
};
use crate::value::{Row, Table, as_f64, canonical_list_into, check_fields, f64_value, text_of};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// `{type: deduplicate, columns: [..], keep: first|last}`: one row per distinct value of the
/// columns (all of them when none are named), the first or the last of each, in table order.
pub(crate) fn deduplicate(table: Table, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    let columns = match lookup(step, &["columns", "subset", "fields"]) {
        Some((key, v)) => {
            let name = path(at, key);
            let columns = string_list(v, &name)?;
            check_fields(&table, &columns, &name)?;
            Some(columns)
        }
        None => None,
    };
    let keep_last = match opt_str(step, at, &["keep"])? {
        None | Some("first") => false,
        Some("last") => true,
        Some(other) => {
            return Err(invalid(
                path(at, "keep"),
                format!("expected first or last, got `{other}`"),
            ));
        }
    };
    let key_of = |row: &Row| {
        let mut key = String::new();
        match &columns {
            Some(cols) => canonical_list_into(
                cols.iter().map(|c| row.get(c).unwrap_or(&Value::Null)),
                &mut key,
            ),
            None => canonical_list_into(std::iter::once(&Value::Object(row.clone())), &mut key),
        }
        key
    };
    let keys: Vec<String> = table.iter().map(key_of).collect();
    // The index of the row kept for each key.
    let mut kept: HashMap<&str, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        if keep_last {
            kept.insert(key, i);
        } else {
            kept.entry(key).or_insert(i);
        }
    }
    Ok(table
        .into_iter()
        .enumerate()
        .filter(|(i, _)| kept.get(keys[*i].as_str()) == Some(i))
        .map(|(_, row)| row)
        .collect())
}

/// A step's required map parameter, with its path.
fn required_map(
    step: &Params,
    at: &str,
    key: &'static str,
) -> Result<(String, Map<String, Value>), ToolFailure> {
    let name = path(at, key);
    let v = lookup(step, &[key])
        .map(|(_, v)| v)
        .ok_or_else(|| missing(&name))?;
    let map = object_value(v, &name)?;
    Ok((name, map))
}

/// `{type: cast, columns: {column: type}}`: each value converted to `integer`, `float`
/// (`number`), `string`, `boolean`, `date` (`YYYY-MM-DD`) or `datetime` (`YYYY-MM-DDTHH:MM:SS`);
/// null stays null, and a value that does not convert is an error naming its row.
pub(crate) fn cast(table: Table, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    let (name, columns) = required_map(step, at, "columns")?;
    let mut casts = Vec::with_capacity(columns.len());
    for (column, ty) in &columns {
        let ty_name = format!("{name}.{column}");
        let ty = Cast::from_word(str_value(ty, &ty_name)?).ok_or_else(|| {
            invalid(
                &ty_name,
                format!(
                    "unknown type {} (expected integer, float, string, boolean, date or datetime)",
                    describe(ty)
                ),
            )
        })?;
        casts.push((column.clone(), ty, ty_name));
    }
    check_fields(&table, casts.iter().map(|(c, _, _)| c), &name)?;
    let mut out = table;
    for (i, row) in out.iter_mut().enumerate() {
        for (column, ty, ty_name) in &casts {
            let Some(v) = row.get_mut(column) else {
                continue;
            };
            if v.is_null() {
                continue;
            }
            *v = ty.apply(v).ok_or_else(|| {
                invalid(
                    ty_name,
                    format!("row {i}: cannot convert {} to {}", describe(v), ty.word()),
                )
            })?;
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Cast {
    Integer,
    Float,
    Text,
    Boolean,
    Date,
    DateTime,
}

impl Cast {
    fn from_word(word: &str) -> Option<Cast> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "integer" | "int" | "int64" => Cast::Integer,
            "float" | "number" | "double" | "float64" | "decimal" => Cast::Float,
            "string" | "str" | "text" => Cast::Text,
            "boolean" | "bool" => Cast::Boolean,
            "date" => Cast::Date,
            "datetime" | "timestamp" => Cast::DateTime,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Cast::Integer => "integer",
            Cast::Float => "float",
            Cast::Text => "string",
            Cast::Boolean => "boolean",
            Cast::Date => "date",
            Cast::DateTime => "datetime",
        }
    }

    fn apply(self, v: &Value) -> Option<Value> {
        match self {
            Cast::Integer => {
                let x = as_f64(v)?;
                // Whole numbers within i64's exact range only.
                #[allow(clippy::cast_possible_truncation)]
                (x.fract() == 0.0 && x.abs() < 9.0e15).then(|| Value::from(x as i64))
            }
            Cast::Float => as_f64(v).map(f64_value),
            Cast::Text => Some(Value::String(text_of(v))),
            Cast::Boolean => match v {
                Value::Bool(b) => Some(Value::Bool(*b)),
                _ => crate::params::bool_value(v, "").ok().map(Value::Bool),
            },
            Cast::Date => date_time(v.as_str()?).map(|d| json!(d.format("%Y-%m-%d").to_string())),
            Cast::DateTime => {
                date_time(v.as_str()?).map(|d| json!(d.format("%Y-%m-%dT%H:%M:%S").to_string()))
            }
        }
    }
}

/// A date or date and time in the forms data files hold them: `2024-01-15`,
/// `2024-01-15 10:30:00`, `2024-01-15T10:30:00` (fractions and a zone allowed), `2024/01/15`.
fn date_time(text: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.naive_utc());
    }
    for form in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, form) {
            return Some(d);
        }
    }
    ["%Y-%m-%d", "%Y/%m/%d"]
        .iter()
        .find_map(|form| NaiveDate::parse_from_str(t, form).ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// `{type: fill_missing, strategy: {column: value}}` (or `values`), or `{value, columns}`: a
/// null, absent or empty cell of each column gets the value.
pub(crate) fn fill_missing(table: Table, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    let fills: Vec<(String, Value)> = match lookup(step, &["strategy", "values"]) {
        Some((key, v)) => object_value(v, &path(at, key))?.into_iter().collect(),
        None => {
            let value = lookup(step, &["value"])
                .map(|(_, v)| v.clone())
                .ok_or_else(|| missing(path(at, "strategy")))?;
            let columns = match lookup(step, &["columns"]) {
                Some((key, v)) => string_list(v, &path(at, key))?,
                None => crate::value::columns(&table),
            };
            columns.into_iter().map(|c| (c, value.clone())).collect()
        }
    };
    let mut out = table;
    for row in &mut out {
        for (column, value) in &fills {
            let empty = match row.get(column) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if empty {
                row.insert(column.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

/// `{type: calculate, expressions: {column: expression}}`: each column computed per row, in
/// the order written (a later expression may read an earlier one's column). An expression is
/// `compute`'s arithmetic, or `DATE_FORMAT(column, 'format')` (a date formatted with strftime's
/// `%Y`, `%m`, `%d`, …; null for a null or unreadable date).
pub(crate) fn calculate(table: Table, step: &Params, at: &str) -> Result<Table, ToolFailure> {
    let (name, expressions) = required_map(step, at, "expressions")?;
    let mut out = table;
    for (column, text) in &expressions {
        let expr_name = format!("{name}.{column}");
        let text = str_value(text, &expr_name)?;
        let calc = Calc::parse(text).map_err(|e| invalid(&expr_name, e))?;
        check_fields(&out, &calc.fields(), &expr_name)?;
        for (i, row) in out.iter_mut().enumerate() {
            let v = calc
                .eval(row)
                .map_err(|e| invalid(&expr_name, format!("row {i}: {e}")))?;
            row.insert(column.clone(), v);
        }
    }
    Ok(out)
}

enum Calc {
    Arithmetic(crate::expr::Expr),
    DateFormat { column: String, format: String },
}

impl Calc {
    fn parse(text: &str) -> Result<Calc, String> {
        let t = text.trim();
        let Some(args) = t
            .strip_prefix("DATE_FORMAT(")
            .or_else(|| t.strip_prefix("date_format("))
        else {
            return crate::expr::parse(t).map(Calc::Arithmetic);
        };
        let args = args
            .strip_suffix(')')
            .ok_or("DATE_FORMAT(...) is not closed")?;
        let (column, format) = args
            .split_once(',')
            .ok_or("DATE_FORMAT takes a column and a format: DATE_FORMAT(order_date, '%Y-%m')")?;
        let format = format.trim();
        let format = ['\'', '"']
            .iter()
            .find_map(|q| format.strip_prefix(*q).and_then(|f| f.strip_suffix(*q)))
            .ok_or("DATE_FORMAT's format is a quoted text: '%Y-%m'")?;
        check_strftime(format)?;
        Ok(Calc::DateFormat {
            column: column.trim().trim_matches('`').to_string(),
            format: format.to_string(),
        })
    }

    fn fields(&self) -> Vec<String> {
        match self {
            Calc::Arithmetic(e) => {
                let mut used = Vec::new();
                e.fields(&mut used);
                used
            }
            Calc::DateFormat { column, .. } => vec![column.clone()],
        }
    }

    fn eval(&self, row: &Row) -> Result<Value, String> {
        match self {
            Calc::Arithmetic(e) => e.eval(row),
            Calc::DateFormat { column, format } => Ok(row
                .get(column)
                .and_then(Value::as_str)
                .and_then(date_time)
                .map_or(Value::Null, |d| json!(d.format(format).to_string()))),
        }
    }
}

/// Refuses a strftime format chrono cannot write (it would fail mid-table otherwise).
fn check_strftime(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(format!("`{format}` is not a strftime format"));
    }
    Ok(())
}

/// `{type: filter, condition: "status != 'cancelled'"}`: comparisons `column OP literal`
/// (`==`, `!=`, `>`, `>=`, `<`, `<=`; a quoted text, a number, `true`, `false` or `null`),
/// joined by `and`, as filter criteria.
pub(crate) fn condition_criteria(text: &str, name: &str) -> Result<Value, ToolFailure> {
    let mut criteria = Map::new();
    for part in split_and(text) {
        let (column, op, literal) = comparison(part).ok_or_else(|| {
            invalid(
                name,
                format!(
                    "cannot read `{}`: write comparisons such as status != 'cancelled', joined by `and`",
                    part.trim()
                ),
            )
        })?;
        let ops = criteria
            .entry(column)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ops) = ops {
            ops.insert(op.to_string(), literal);
        }
    }
    Ok(Value::Object(criteria))
}

/// The parts of a condition between ` and ` (outside quotes).
fn split_and(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if text[i..].starts_with(" and ") => {
                parts.push(&text[start..i]);
                i += 5;
                start = i;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn comparison(text: &str) -> Option<(String, &'static str, Value)> {
    const OPS: [(&str, &str); 6] = [
        ("==", "eq"),
        ("!=", "ne"),
        (">=", "gte"),
        ("<=", "lte"),
        (">", "gt"),
        ("<", "lt"),
    ];
    let (at, written, op) = OPS
        .iter()
        .filter_map(|(w, op)| text.find(w).map(|at| (at, *w, *op)))
        .min_by_key(|(at, w, _)| (*at, std::cmp::Reverse(w.len())))?;
    let column = text[..at].trim().trim_matches('`');
    if column.is_empty()
        || !column
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-')
    {
        return None;
    }
    let literal = text[at + written.len()..].trim();
    let value = ['\'', '"']
        .iter()
        .find_map(|q| literal.strip_prefix(*q).and_then(|l| l.strip_suffix(*q)))
        .map(|s| Value::String(s.to_string()))
        .or_else(|| match literal {
            "true" | "True" => Some(Value::Bool(true)),
            "false" | "False" => Some(Value::Bool(false)),
            "null" | "None" => Some(Value::Null),
            _ => crate::value::parse_number_text(literal),
        })?;
    Some((column.to_string(), op, value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_criteria() {
        assert_eq!(
            condition_criteria("status != 'cancelled'", "c").unwrap(),
            json!({"status": {"ne": "cancelled"}})
        );
        assert_eq!(
            condition_criteria("qty >= 2 and qty < 10 and name == \"a and b\"", "c").unwrap(),
            json!({"qty": {"gte": 2, "lt": 10}, "name": {"eq": "a and b"}})
        );
        assert!(condition_criteria("status is cancelled", "c").is_err());
        assert!(
            condition_criteria("a == b", "c").is_err(),
            "an unquoted word"
        );
    }

    #[test]
    fn dates_format() {
        let calc = Calc::parse("DATE_FORMAT(d, '%Y-%m')").unwrap();
        let row: Row = serde_json::from_value(json!({"d": "2024-03-05 10:00:00"})).unwrap();
        assert_eq!(calc.eval(&row).unwrap(), json!("2024-03"));
        assert!(Calc::parse("DATE_FORMAT(d, '%Q')").is_err());
        assert!(Calc::parse("DATE_FORMAT(d)").is_err());
    }
}
