//! Helpers that read typed parameters and build errors naming them.

use crate::ToolFailure;
use serde_json::{Map, Value};

/// A tool's (or a transform operation's) parameters.
pub(crate) type Params = Map<String, Value>;

/// Builds an [`ToolFailure::InvalidParameter`].
pub(crate) fn invalid(name: impl Into<String>, reason: impl Into<String>) -> ToolFailure {
    ToolFailure::InvalidParameter {
        name: name.into(),
        reason: reason.into(),
    }
}

/// Builds a [`ToolFailure::MissingParameter`].
pub(crate) fn missing(name: impl Into<String>) -> ToolFailure {
    ToolFailure::MissingParameter(name.into())
}

/// Joins a parameter path: `prefix.name`, or `name` when the prefix is empty.
pub(crate) fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The first present, non-null parameter among `names`, with the name used.
pub(crate) fn lookup<'a>(
    params: &'a Params,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|n| params.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
}

/// A short description of a value for error messages.
pub(crate) fn describe(v: &Value) -> String {
    let text = v.to_string();
    let shown: String = text.chars().take(60).collect();
    let shown = if shown.len() < text.len() {
        format!("{shown}…")
    } else {
        shown
    };
    let kind = match v {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    format!("{kind} ({shown})")
}

/// A boolean from a bool, a number 0/1 or a string such as `"true"`/`"no"`.
pub(crate) fn bool_value(v: &Value, name: &str) -> Result<bool, ToolFailure> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(false),
            _ => Err(invalid(
                name,
                format!("expected true or false, got {}", describe(v)),
            )),
        },
        _ => Err(invalid(
            name,
            format!("expected true or false, got {}", describe(v)),
        )),
    }
}

/// An optional boolean parameter with a default.
pub(crate) fn opt_bool(
    params: &Params,
    prefix: &str,
    key: &'static str,
    default: bool,
) -> Result<bool, ToolFailure> {
    match lookup(params, &[key]) {
        Some((_, v)) => bool_value(v, &path(prefix, key)),
        None => Ok(default),
    }
}

/// A string parameter value.
pub(crate) fn str_value<'a>(v: &'a Value, name: &str) -> Result<&'a str, ToolFailure> {
    v.as_str()
        .ok_or_else(|| invalid(name, format!("expected a string, got {}", describe(v))))
}

/// An optional string parameter among aliases.
pub(crate) fn opt_str<'a>(
    params: &'a Params,
    prefix: &str,
    names: &[&'static str],
) -> Result<Option<&'a str>, ToolFailure> {
    match lookup(params, names) {
        Some((n, v)) => str_value(v, &path(prefix, n)).map(Some),
        None => Ok(None),
    }
}

/// A number from a JSON number or a numeric string.
pub(crate) fn number_value(v: &Value, name: &str) -> Result<f64, ToolFailure> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    };
    n.ok_or_else(|| invalid(name, format!("expected a number, got {}", describe(v))))
}

/// A non-negative integer from a number or numeric string.
pub(crate) fn usize_value(v: &Value, name: &str) -> Result<usize, ToolFailure> {
    let x = number_value(v, name)?;
    if x < 0.0 || x.fract() != 0.0 || x > 1e15 {
        return Err(invalid(
            name,
            format!("expected a non-negative whole number, got {}", describe(v)),
        ));
    }
    // In range and whole, so the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(x as usize)
}

/// Parses text that should hold a JSON (or Python-literal) value.
fn parse_embedded(s: &str) -> Option<Value> {
    serde_json::from_str(s)
        .ok()
        .or_else(|| orc_pycompat::literal::parse(s).ok())
}

/// A map parameter; a string holding a JSON or Python-literal map is accepted.
pub(crate) fn object_value(v: &Value, name: &str) -> Result<Map<String, Value>, ToolFailure> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::String(s) => match parse_embedded(s) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(invalid(
                name,
                format!("expected a map, got {}", describe(v)),
            )),
        },
        _ => Err(invalid(
            name,
            format!("expected a map, got {}", describe(v)),
        )),
    }
}

/// A list parameter; a string holding a JSON or Python-literal list is accepted.
pub(crate) fn array_value(v: &Value, name: &str) -> Result<Vec<Value>, ToolFailure> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        Value::String(s) => match parse_embedded(s) {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(invalid(
                name,
                format!("expected a list, got {}", describe(v)),
            )),
        },
        _ => Err(invalid(
            name,
            format!("expected a list, got {}", describe(v)),
        )),
    }
}

/// One field name or a list of them (a string holding a JSON list is accepted).
pub(crate) fn string_list(v: &Value, name: &str) -> Result<Vec<String>, ToolFailure> {
    let items = match v {
        Value::String(s) if s.trim_start().starts_with('[') => array_value(v, name)?,
        Value::String(s) => return Ok(vec![s.clone()]),
        Value::Array(a) => a.clone(),
        _ => {
            return Err(invalid(
                name,
                format!(
                    "expected a field name or a list of them, got {}",
                    describe(v)
                ),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str().map(str::to_string).ok_or_else(|| {
                invalid(
                    format!("{name}[{i}]"),
                    format!("expected a field name, got {}", describe(item)),
                )
            })
        })
        .collect()
}
