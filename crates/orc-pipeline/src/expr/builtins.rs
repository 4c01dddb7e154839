//! The allowlisted builtin functions and methods.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::error::{ExprError, invalid, overflow, type_err};
use super::parser::{BinOp, Builtin};
use super::truthy;
use super::value::{
    Budget, Num, Res, as_int, as_num, binary, check_len, float_to_int, float_val, int_val, len_val,
    py_cmp, py_eq, py_repr, py_str, scalar_repr, type_name,
};

fn arity_err(name: &str, expected: &str, given: usize) -> ExprError {
    type_err(format!("{name}() takes {expected} ({given} given)"))
}

/// Exactly one argument.
fn one(name: &str, args: Vec<Value>) -> Res<Value> {
    let given = args.len();
    let mut it = args.into_iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(arity_err(name, "exactly one argument", given)),
    }
}

/// Zero or one argument.
fn opt_one(name: &str, args: Vec<Value>) -> Res<Option<Value>> {
    let given = args.len();
    let mut it = args.into_iter();
    match (it.next(), it.next()) {
        (v, None) => Ok(v),
        _ => Err(arity_err(name, "at most one argument", given)),
    }
}

/// No arguments.
fn none(name: &str, args: &[Value]) -> Res<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(arity_err(name, "no arguments", args.len()))
    }
}

/// The items of an iterable: list elements, string characters or object keys.
fn iter_values(v: Value, bud: &mut Budget) -> Res<Vec<Value>> {
    match v {
        Value::Array(a) => {
            bud.elems(a.len())?;
            Ok(a)
        }
        Value::String(s) => {
            bud.bytes(s.len())?;
            bud.elems(s.chars().count())?;
            Ok(s.chars().map(|c| Value::String(c.to_string())).collect())
        }
        Value::Object(m) => {
            bud.elems(m.len())?;
            Ok(m.into_iter().map(|(k, _)| Value::String(k)).collect())
        }
        other => Err(type_err(format!(
            "'{}' object is not iterable",
            type_name(&other)
        ))),
    }
}

pub(crate) fn call(func: Builtin, args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    let name = func.name();
    // Conversions scan their string arguments; pay for that up front.
    for arg in &args {
        if let Value::String(s) = arg {
            bud.bytes(s.len())?;
        }
    }
    match func {
        Builtin::Len => len(&one(name, args)?, bud),
        Builtin::Str => match opt_one(name, args)? {
            None => Ok(Value::String(String::new())),
            Some(v) => py_str(&v, bud).map(Value::String),
        },
        Builtin::Int => to_int(args),
        Builtin::Float => to_float(opt_one(name, args)?),
        Builtin::Bool => Ok(Value::Bool(
            opt_one(name, args)?.is_some_and(|v| truthy(&v)),
        )),
        Builtin::Abs => abs(&one(name, args)?),
        Builtin::Min => min_max(name, args, Ordering::Less, bud),
        Builtin::Max => min_max(name, args, Ordering::Greater, bud),
        Builtin::Round => round(args),
        Builtin::Sorted => {
            let items = iter_values(one(name, args)?, bud)?;
            merge_sort(items, bud).map(Value::Array)
        }
        Builtin::Sum => sum(args, bud),
        Builtin::Any => {
            let items = iter_values(one(name, args)?, bud)?;
            Ok(Value::Bool(items.iter().any(truthy)))
        }
        Builtin::All => {
            let items = iter_values(one(name, args)?, bud)?;
            Ok(Value::Bool(items.iter().all(truthy)))
        }
    }
}

fn len(v: &Value, bud: &mut Budget) -> Res<Value> {
    match v {
        Value::String(s) => {
            bud.bytes(s.len())?;
            Ok(len_val(s.chars().count()))
        }
        Value::Array(a) => Ok(len_val(a.len())),
        Value::Object(m) => Ok(len_val(m.len())),
        other => Err(type_err(format!(
            "object of type '{}' has no len()",
            type_name(other)
        ))),
    }
}

fn to_int(args: Vec<Value>) -> Res<Value> {
    match args.as_slice() {
        [] => Ok(int_val(0)),
        [Value::String(s)] => parse_int(s, 10).map(int_val),
        [v] => match as_num(v) {
            Some(Num::Int(i)) => Ok(int_val(i)),
            Some(Num::Float(f)) => float_to_int(f.trunc()).map(int_val),
            None => Err(type_err(format!(
                "int() argument must be a string or a number, not '{}'",
                type_name(v)
            ))),
        },
        [Value::String(s), base] => {
            let base = as_int(base).ok_or_else(|| type_err("int() base must be an integer"))?;
            if base != 0 && !(2..=36).contains(&base) {
                return Err(invalid("int() base must be >= 2 and <= 36, or 0"));
            }
            parse_int(s, u32::try_from(base).unwrap_or(10)).map(int_val)
        }
        [_, _] => Err(type_err(
            "int() can't convert non-string with explicit base",
        )),
        _ => Err(arity_err("int", "at most 2 arguments", args.len())),
    }
}

/// Python `int(str, base)`.
fn parse_int(s: &str, base: u32) -> Res<i64> {
    let too_large = || overflow("integer is too large");
    match orc_pycompat::parse_int(s, base) {
        Ok(v) => i64::try_from(v).map_err(|_| too_large()),
        Err(orc_pycompat::IntTextError::TooLarge) => Err(too_large()),
        Err(orc_pycompat::IntTextError::Invalid) => Err(invalid(format!(
            "invalid literal for int() with base {base}: {}",
            scalar_repr(&Value::String(s.to_owned()))
        ))),
    }
}

fn to_float(arg: Option<Value>) -> Res<Value> {
    match arg {
        None => float_val(0.0),
        Some(Value::String(s)) => {
            let bad = || {
                invalid(format!(
                    "could not convert string to float: {}",
                    scalar_repr(&Value::String(s.clone()))
                ))
            };
            match orc_pycompat::parse_float(&s) {
                Some(f) if f.is_finite() => float_val(f),
                Some(_) => Err(invalid("non-finite floats (inf, nan) are not supported")),
                None => Err(bad()),
            }
        }
        Some(v) => match as_num(&v) {
            Some(n) => float_val(n.to_f64()),
            None => Err(type_err(format!(
                "float() argument must be a string or a real number, not '{}'",
                type_name(&v)
            ))),
        },
    }
}

fn abs(v: &Value) -> Res<Value> {
    match as_num(v) {
        Some(Num::Int(i)) => i
            .checked_abs()
            .map(int_val)
            .ok_or_else(|| overflow("integer result is too large")),
        Some(Num::Float(f)) => float_val(f.abs()),
        None => Err(type_err(format!(
            "bad operand type for abs(): '{}'",
            type_name(v)
        ))),
    }
}

/// `min`/`max` over one iterable or several arguments; `want` is the
/// ordering of a new item against the current best that replaces it.
fn min_max(name: &str, args: Vec<Value>, want: Ordering, bud: &mut Budget) -> Res<Value> {
    let items = match args.len() {
        0 => {
            return Err(type_err(format!(
                "{name}() expected at least 1 argument, got 0"
            )));
        }
        1 => iter_values(one(name, args)?, bud)?,
        _ => args,
    };
    let mut it = items.into_iter();
    let Some(mut best) = it.next() else {
        return Err(invalid(format!("{name}() arg is an empty sequence")));
    };
    let op = if want == Ordering::Less { "<" } else { ">" };
    for x in it {
        if py_cmp(&x, &best, op, bud, 0)? == want {
            best = x;
        }
    }
    Ok(best)
}

/// Stable merge sort with a fallible comparator (Python `sorted`).
fn merge_sort(mut v: Vec<Value>, bud: &mut Budget) -> Res<Vec<Value>> {
    if v.len() <= 1 {
        return Ok(v);
    }
    let right = v.split_off(v.len() / 2);
    let left = merge_sort(v, bud)?;
    let right = merge_sort(right, bud)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_right = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => py_cmp(b, a, "<", bud, 0)? == Ordering::Less,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_right { r.next() } else { l.next() };
        if let Some(x) = next {
            out.push(x);
        }
    }
    Ok(out)
}

fn sum(args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    let given = args.len();
    let mut it = args.into_iter();
    let (Some(items), start, None) = (it.next(), it.next(), it.next()) else {
        return Err(arity_err("sum", "1 or 2 arguments", given));
    };
    let mut acc = start.unwrap_or_else(|| int_val(0));
    if acc.is_string() {
        return Err(type_err("sum() can't sum strings"));
    }
    for v in iter_values(items, bud)? {
        bud.elems(1)?;
        acc = binary(BinOp::Add, acc, v, bud)?;
    }
    Ok(acc)
}

fn round(args: Vec<Value>) -> Res<Value> {
    match args.as_slice() {
        [x] | [x, Value::Null] => match as_num(x) {
            Some(Num::Int(i)) => Ok(int_val(i)),
            Some(Num::Float(f)) => float_to_int(f.round_ties_even()).map(int_val),
            None => Err(no_round(x)),
        },
        [x, n] => {
            let digits = as_int(n).ok_or_else(|| {
                type_err(format!(
                    "'{}' object cannot be interpreted as an integer",
                    type_name(n)
                ))
            })?;
            match as_num(x) {
                Some(Num::Int(i)) => round_int(i, digits).map(int_val),
                Some(Num::Float(f)) => float_val(round_float(f, digits)),
                None => Err(no_round(x)),
            }
        }
        _ => Err(arity_err("round", "1 or 2 arguments", args.len())),
    }
}

fn no_round(v: &Value) -> ExprError {
    type_err(format!(
        "type {} doesn't define __round__ method",
        type_name(v)
    ))
}

/// `round(int, ndigits)`: half-to-even at a power of ten.
fn round_int(i: i64, digits: i64) -> Res<i64> {
    if digits >= 0 {
        return Ok(i);
    }
    let Some(p) = u32::try_from(digits.unsigned_abs())
        .ok()
        .and_then(|e| 10_i64.checked_pow(e))
    else {
        return Ok(0);
    };
    let q = i.div_euclid(p);
    let twice_r = i.rem_euclid(p).saturating_mul(2);
    let q = if twice_r > p || (twice_r == p && q % 2 != 0) {
        q.saturating_add(1)
    } else {
        q
    };
    q.checked_mul(p)
        .ok_or_else(|| overflow("integer result is too large"))
}

/// `round(float, ndigits)`: correctly rounded, half-to-even.
fn round_float(f: f64, digits: i64) -> f64 {
    if digits > 330 {
        return f;
    }
    if let Ok(d) = usize::try_from(digits) {
        return format!("{f:.d$}").parse().unwrap_or(f);
    }
    let p = 10_f64.powi(i32::try_from(digits.unsigned_abs()).unwrap_or(i32::MAX));
    if !p.is_finite() {
        return 0.0_f64.copysign(f);
    }
    let r = (f / p).round_ties_even() * p;
    if r.is_finite() { r } else { f }
}

// ---------------------------------------------------------------- methods

pub(crate) fn call_method(
    recv: Value,
    name: &str,
    args: Vec<Value>,
    bud: &mut Budget,
) -> Res<Value> {
    match recv {
        Value::String(s) => str_method(&s, name, args, bud),
        Value::Object(m) => dict_method(m, name, args, bud),
        Value::Array(a) => list_method(&a, name, args, bud),
        other => Err(no_attr(type_name(&other), name)),
    }
}

fn no_attr(type_name: &str, name: &str) -> ExprError {
    ExprError::NoAttribute {
        type_name: type_name.to_owned(),
        name: name.to_owned(),
    }
}

fn str_arg(method: &str, v: Value) -> Res<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(type_err(format!(
            "str.{method}() argument must be str, not {}",
            type_name(&other)
        ))),
    }
}

fn str_method(s: &str, name: &str, args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    bud.bytes(s.len())?;
    let label = format!("str.{name}");
    let string = |v: String| Ok(Value::String(v));
    match name {
        "startswith" | "endswith" => {
            let patterns = match one(&label, args)? {
                Value::String(p) => vec![p],
                Value::Array(items) => items
                    .into_iter()
                    .map(|p| str_arg(name, p))
                    .collect::<Res<Vec<_>>>()?,
                other => {
                    return Err(type_err(format!(
                        "{name} first arg must be str or a tuple of str, not {}",
                        type_name(&other)
                    )));
                }
            };
            let hit = |p: &String| {
                if name == "startswith" {
                    s.starts_with(p.as_str())
                } else {
                    s.ends_with(p.as_str())
                }
            };
            Ok(Value::Bool(patterns.iter().any(hit)))
        }
        "lower" => {
            none(&label, &args)?;
            string(s.to_lowercase())
        }
        "upper" => {
            none(&label, &args)?;
            string(s.to_uppercase())
        }
        "casefold" => {
            none(&label, &args)?;
            string(s.to_lowercase().replace('ß', "ss"))
        }
        "title" => {
            none(&label, &args)?;
            string(title(s))
        }
        "strip" | "lstrip" | "rstrip" => {
            let chars = match opt_one(&label, args)? {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c),
                Some(other) => {
                    return Err(type_err(format!(
                        "{name} arg must be None or str, not {}",
                        type_name(&other)
                    )));
                }
            };
            let out = match (name, &chars) {
                ("strip", None) => s.trim(),
                ("lstrip", None) => s.trim_start(),
                (_, None) => s.trim_end(),
                ("strip", Some(c)) => s.trim_matches(|x| c.contains(x)),
                ("lstrip", Some(c)) => s.trim_start_matches(|x| c.contains(x)),
                (_, Some(c)) => s.trim_end_matches(|x| c.contains(x)),
            };
            string(out.to_owned())
        }
        "split" => split(s, args, bud),
        "replace" => replace(s, args, bud),
        "find" => {
            let sub = str_arg(name, one(&label, args)?)?;
            let index = match s.find(sub.as_str()) {
                Some(b) => {
                    i64::try_from(s.get(..b).map_or(0, |p| p.chars().count())).unwrap_or(i64::MAX)
                }
                None => -1,
            };
            Ok(int_val(index))
        }
        "count" => {
            let sub = str_arg(name, one(&label, args)?)?;
            let n = if sub.is_empty() {
                s.chars().count().saturating_add(1)
            } else {
                s.matches(sub.as_str()).count()
            };
            Ok(len_val(n))
        }
        "isdigit" | "isnumeric" | "isalpha" => {
            none(&label, &args)?;
            let test: fn(char) -> bool = match name {
                "isdigit" => is_digit,
                "isnumeric" => char::is_numeric,
                _ => char::is_alphabetic,
            };
            Ok(Value::Bool(!s.is_empty() && s.chars().all(test)))
        }
        _ => Err(no_attr("str", name)),
    }
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉".contains(c)
}

/// Python `str.title()`.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        let cased = c.is_uppercase() || c.is_lowercase();
        if !cased {
            out.push(c);
        } else if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = cased;
    }
    out
}

/// Python `str.split(sep=None, maxsplit=-1)`.
fn split(s: &str, args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    let (sep, maxsplit) = match args.as_slice() {
        [] => (None, -1),
        [sep] => (split_sep(sep)?, -1),
        [sep, m] => (
            split_sep(sep)?,
            as_int(m).ok_or_else(|| type_err("split() maxsplit must be an integer"))?,
        ),
        _ => return Err(arity_err("str.split", "at most 2 arguments", args.len())),
    };
    let limit = usize::try_from(maxsplit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut push = |part: &str, out: &mut Vec<Value>| -> Res<()> {
        check_len(out.len().saturating_add(1))?;
        bud.elems(1)?;
        out.push(Value::String(part.to_owned()));
        Ok(())
    };
    match sep {
        Some(sep) => {
            if sep.is_empty() {
                return Err(invalid("empty separator"));
            }
            for part in s.splitn(limit.saturating_add(1), sep.as_str()) {
                push(part, &mut out)?;
            }
        }
        None => {
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if out.len() >= limit {
                    push(rest, &mut out)?;
                    break;
                }
                match rest.split_once(char::is_whitespace) {
                    Some((head, tail)) => {
                        push(head, &mut out)?;
                        rest = tail.trim_start();
                    }
                    None => {
                        push(rest, &mut out)?;
                        break;
                    }
                }
            }
        }
    }
    Ok(Value::Array(out))
}

fn split_sep(v: &Value) -> Res<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(type_err(format!(
            "must be str or None, not {}",
            type_name(other)
        ))),
    }
}

/// Python `str.replace(old, new, count=-1)`, size-checked before building.
fn replace(s: &str, args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    let (old, new, count) = match args.as_slice() {
        [Value::String(o), Value::String(n)] => (o, n, -1),
        [Value::String(o), Value::String(n), c] => (
            o,
            n,
            as_int(c).ok_or_else(|| type_err("replace() count must be an integer"))?,
        ),
        [_, _] | [_, _, _] => return Err(type_err("replace() arguments must be str")),
        _ => return Err(arity_err("str.replace", "2 or 3 arguments", args.len())),
    };
    let limit = usize::try_from(count).unwrap_or(usize::MAX);
    let found = if old.is_empty() {
        s.chars().count().saturating_add(1)
    } else {
        s.matches(old.as_str()).count()
    }
    .min(limit);
    let size = s
        .len()
        .saturating_sub(found.saturating_mul(old.len()))
        .saturating_add(found.saturating_mul(new.len()));
    check_len(size)?;
    bud.bytes(size)?;
    Ok(Value::String(s.replacen(old.as_str(), new, limit)))
}

fn dict_method(
    mut m: Map<String, Value>,
    name: &str,
    args: Vec<Value>,
    bud: &mut Budget,
) -> Res<Value> {
    let label = format!("dict.{name}");
    match name {
        "get" => {
            let given = args.len();
            let mut it = args.into_iter();
            let (Some(key), default, None) = (it.next(), it.next(), it.next()) else {
                return Err(arity_err(&label, "1 or 2 arguments", given));
            };
            match key {
                Value::String(k) => Ok(m
                    .get_mut(k.as_str())
                    .map(Value::take)
                    .or(default)
                    .unwrap_or(Value::Null)),
                Value::Array(_) | Value::Object(_) => {
                    Err(type_err(format!("unhashable type: '{}'", type_name(&key))))
                }
                _ => Ok(default.unwrap_or(Value::Null)),
            }
        }
        "keys" | "values" | "items" => {
            none(&label, &args)?;
            bud.elems(m.len())?;
            let out = m.into_iter().map(|(k, v)| match name {
                "keys" => Value::String(k),
                "values" => v,
                _ => Value::Array(vec![Value::String(k), v]),
            });
            Ok(Value::Array(out.collect()))
        }
        _ => Err(no_attr("dict", name)),
    }
}

fn list_method(items: &[Value], name: &str, args: Vec<Value>, bud: &mut Budget) -> Res<Value> {
    let label = format!("list.{name}");
    match name {
        "count" => {
            let x = one(&label, args)?;
            let mut n = 0_usize;
            for item in items {
                if py_eq(item, &x, bud, 0)? {
                    n += 1;
                }
            }
            Ok(len_val(n))
        }
        "index" => {
            let x = one(&label, args)?;
            for (i, item) in items.iter().enumerate() {
                if py_eq(item, &x, bud, 0)? {
                    return Ok(len_val(i));
                }
            }
            Err(invalid(format!("{} is not in list", py_repr(&x, bud)?)))
        }
        _ => Err(no_attr("list", name)),
    }
}
