//! Tables of JSON records and value comparisons shared by the actions.

use crate::ToolFailure;
use crate::params::invalid;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::Write as _;

/// One record.
pub(crate) type Row = Map<String, Value>;
/// A list of records.
pub(crate) type Table = Vec<Row>;

/// The union of the rows' keys, in first-seen order.
pub(crate) fn columns(table: &[Row]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for row in table {
        for key in row.keys() {
            if seen.insert(key.as_str()) {
                out.push(key.clone());
            }
        }
    }
    out
}

/// The error for a field that no row has.
pub(crate) fn unknown_field(field: &str, columns: &[String], name: &str) -> ToolFailure {
    invalid(
        name,
        format!("unknown field `{field}` (columns: {})", columns.join(", ")),
    )
}

/// Fails when a non-empty table has none of `fields` in any row.
pub(crate) fn check_fields<'a>(
    table: &[Row],
    fields: impl IntoIterator<Item = &'a String>,
    name: &str,
) -> Result<(), ToolFailure> {
    if table.is_empty() {
        return Ok(());
    }
    for field in fields {
        if !table.iter().any(|r| r.contains_key(field)) {
            return Err(unknown_field(field, &columns(table), name));
        }
    }
    Ok(())
}

/// The rows as a JSON array.
pub(crate) fn table_value(table: Table) -> Value {
    Value::Array(table.into_iter().map(Value::Object).collect())
}

/// A JSON number for a float; non-finite values become null.
pub(crate) fn f64_value(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Parses CSV-style number text strictly: optional sign, digits, optional
/// fraction and exponent. Integers with a leading zero (`007`) are not numbers.
pub(crate) fn parse_number_text(s: &str) -> Option<Value> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let bytes = body.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    let mut frac_len = 0;
    let mut is_float = false;
    if i < bytes.len() && bytes[i] == b'.' {
        is_float = true;
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_len = i - start;
    }
    if int_len + frac_len == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        is_float = true;
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    if int_len > 1 && bytes[0] == b'0' {
        return None;
    }
    if !is_float && let Ok(n) = s.parse::<i64>() {
        return Some(Value::from(n));
    }
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// A number from a JSON number or a numeric-looking string.
pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number_text(s.trim()).and_then(|v| v.as_f64()),
        _ => None,
    }
}

/// The JSON Schema type name of a value (`integer` for whole-number literals).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A canonical text key: equal values (ignoring key order, and `1` vs `1.0`) give equal keys.
pub(crate) fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out, 0);
    out
}

/// [`canonical`], written into `out` (cleared first).
pub(crate) fn canonical_into(v: &Value, out: &mut String) {
    out.clear();
    write_canonical(v, out, 0);
}

/// The [`canonical`] key of a list holding `items`, written into `out`
/// without building the list.
pub(crate) fn canonical_list_into<'a>(
    items: impl IntoIterator<Item = &'a Value>,
    out: &mut String,
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_canonical(item, out, 1);
    }
    out.push(']');
}

fn write_canonical(v: &Value, out: &mut String, depth: usize) {
    if depth > 256 {
        out.push('…');
        return;
    }
    match v {
        // Writing to a `String` cannot fail.
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                let _ = write!(out, "{n}");
            } else {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    // Whole and in range: exact.
                    #[allow(clippy::cast_possible_truncation)]
                    let _ = write!(out, "{}", x as i64);
                } else {
                    let _ = write!(out, "{x:?}");
                }
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(key) {
                    write_canonical(item, out, depth + 1);
                }
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Loose equality: numbers numerically, a numeric string equals its number,
/// `"true"`/`"false"` equal the booleans, containers by content.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            matches!((as_f64(a), as_f64(b)), (Some(x), Some(y)) if x == y)
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => {
            s.eq_ignore_ascii_case(if *x { "true" } else { "false" })
        }
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            canonical(a) == canonical(b)
        }
        _ => false,
    }
}

/// Orders two values when comparable: numbers (a numeric string against a
/// number counts as a number), strings, booleans.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(_), Value::Number(_) | Value::String(_))
        | (Value::String(_), Value::Number(_)) => as_f64(a)?.partial_cmp(&as_f64(b)?),
        _ => None,
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// A total order for sorting: numbers < strings < booleans < lists < maps < null.
pub(crate) fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let x = x.as_f64().unwrap_or(0.0);
            let y = y.as_f64().unwrap_or(0.0);
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ if rank(a) == rank(b) => canonical(a).cmp(&canonical(b)),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The text of a scalar for `contains`/`matches`: strings as is, others as JSON.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
