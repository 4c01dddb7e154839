//! Jinja filters and Python-compatible output formatting for orc templates.
//!
//! orc's pipelines were first rendered by Jinja2 (sandboxed, `StrictUndefined`,
//! `keep_trailing_newline=True`).  This module makes a [`minijinja::Environment`]
//! render the same bytes:
//!
//! * [`configure`] installs a formatter that prints values the way Python's
//!   `str()` does (`True`, `None`, `1.0`, `['a', 1]`, `{'k': 'v'}`), turns off
//!   auto-escaping, turns on strict undefined handling and trailing newlines,
//!   bounds every render with fuel, and registers orc's filters (overriding
//!   minijinja built-ins of the same name with their Python semantics).
//! * [`py_str`] and [`py_repr`] expose the Python `str()`/`repr()` rendering
//!   of a value for callers that build strings outside templates.
//!
//! Python's quoting of strings and bytes, `repr(float)` and `str.isprintable`
//! are orc-pycompat's; this module walks minijinja values (tuples, bytes,
//! maps with non-string keys) with them.
//!
//! [`configure`] changes the syntax configuration, which minijinja applies to
//! templates added afterwards, so call it before adding templates.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use minijinja::value::{Rest, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use orc_pycompat::{
    float_repr, is_space, parse_float, parse_int, push_exponent, write_bytes_repr, write_str_repr,
};
use regex::Regex;
use unicode_normalization::UnicodeNormalization as _;

/// Fuel budget of one render: roughly one unit per VM instruction or per
/// 64 bytes of data, so this bounds a render to about a million steps.
const FUEL: u64 = 1_000_000;

/// Recursion limit of one render (minijinja's safe maximum without `stacker`).
const RECURSION_LIMIT: usize = 500;

/// Registers orc's filters and the Python-repr formatter on an environment, and sets strict undefined + keep_trailing_newline.
pub fn configure(env: &mut Environment<'_>) {
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if let Ok(syntax) = env
        .syntax()
        .to_builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_formatter(|out, _state, value| {
        if value.kind() == ValueKind::String
            && let Some(s) = value.as_str()
        {
            return out.write_str(s).map_err(Error::from);
        }
        out.write_str(&py_str(value)).map_err(Error::from)
    });
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);

    env.add_filter("slugify", slugify);
    env.add_filter("truncate_words", truncate_words);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("to_json", to_json);
    env.add_filter("json_encode", to_json);
    env.add_filter("json", to_json);
    env.add_filter("tojson", tojson);
    env.add_filter("from_json", from_json);
    env.add_filter("date", date);
    env.add_filter("truncate", truncate);
    env.add_filter("wordcount", wordcount);
    env.add_filter("basename", basename);
    env.add_filter("split", split);
    env.add_filter("join", join);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("round", round);
    env.add_filter("last", last);
    env.add_filter("format", format);
    env.add_filter("file_exists", file_exists);
}

/// Python `str()` of a value as the old system rendered it: strings as-is; None→"None"; bools→"True"/"False"; ints; floats like Python repr (1.0→"1.0", 1e16→"1e+16", 0.1→"0.1", inf→"inf", nan→"nan"); lists/maps as Python repr (`['a', 1, True, None]`, `{'k': 'v', 'n': {'x': 1.5}}`), with Python's quote choice and escaping for strings inside containers.
pub fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().map(str::to_owned).unwrap_or_default(),
        _ => py_repr(v),
    }
}

/// Python `repr()` (strings quoted).
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Python repr machinery
// ---------------------------------------------------------------------------

fn write_repr(v: &Value, out: &mut String) {
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if v.is_integer() {
                let _ = write!(out, "{v}");
            } else {
                out.push_str(&float_repr(as_f64(v)));
            }
        }
        ValueKind::String => write_str_repr(v.as_str().unwrap_or_default(), out),
        ValueKind::Bytes => write_bytes_repr(v.as_bytes().unwrap_or_default(), out),
        ValueKind::Map => {
            out.push('{');
            if let Some(pairs) = v.as_object().and_then(|o| o.try_iter_pairs()) {
                for (i, (key, value)) in pairs.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(&key, out);
                    out.push_str(": ");
                    write_repr(&value, out);
                }
            }
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = v.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut count = 0usize;
            if let Ok(items) = v.try_iter() {
                for item in items {
                    if count > 0 {
                        out.push_str(", ");
                    }
                    write_repr(&item, out);
                    count += 1;
                }
            }
            if tuple && count == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

fn as_f64(v: &Value) -> f64 {
    if v.kind() == ValueKind::Bool {
        return if v.is_true() { 1.0 } else { 0.0 };
    }
    f64::try_from(v.clone()).unwrap_or(f64::NAN)
}

fn as_i128(v: &Value) -> Option<i128> {
    if v.kind() == ValueKind::Bool {
        return Some(i128::from(v.is_true()));
    }
    if v.is_integer() {
        i128::try_from(v.clone()).ok()
    } else {
        None
    }
}

fn py_type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "Undefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq if v.is_tuple() => "tuple",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

// ---------------------------------------------------------------------------
// Argument handling
// ---------------------------------------------------------------------------

fn op_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Rejects undefined input in strict mode, as Jinja2's `StrictUndefined` does.
fn check_defined(state: &State<'_, '_>, v: &Value, filter: &str) -> Result<(), Error> {
    if v.is_undefined()
        && matches!(
            state.undefined_behavior(),
            UndefinedBehavior::Strict | UndefinedBehavior::SemiStrict
        )
    {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("{filter}: value is undefined"),
        ));
    }
    Ok(())
}

/// Splits raw filter arguments into positional values and keyword pairs.
fn split_args(rest: Rest<ValueOrKwargs>) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut values = rest.into_values();
    let mut kwargs = Vec::new();
    if values.last().is_some_and(Value::is_kwargs)
        && let Some(kw) = values.pop()
        && let Some(pairs) = kw.as_object().and_then(|o| o.try_iter_pairs())
    {
        for (key, value) in pairs {
            kwargs.push((py_str(&key), value));
        }
    }
    (values, kwargs)
}

/// Binds arguments Python-style to the named parameters of a filter.
fn bind<const N: usize>(
    filter: &str,
    rest: Rest<ValueOrKwargs>,
    names: [&str; N],
) -> Result<[Option<Value>; N], Error> {
    let (positional, kwargs) = split_args(rest);
    if positional.len() > N {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            format!(
                "{filter}() takes at most {N} argument(s) ({} given)",
                positional.len()
            ),
        ));
    }
    let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
    for (slot, value) in out.iter_mut().zip(positional) {
        *slot = Some(value);
    }
    for (key, value) in kwargs {
        let Some(idx) = names.iter().position(|n| *n == key) else {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{filter}() got an unexpected keyword argument '{key}'"),
            ));
        };
        if out[idx].is_some() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{filter}() got multiple values for argument '{key}'"),
            ));
        }
        out[idx] = Some(value);
    }
    Ok(out)
}

/// Takes an argument, treating `none` like an omitted argument.
fn present(arg: Option<Value>) -> Option<Value> {
    arg.filter(|v| !v.is_none() && !v.is_undefined())
}

fn int_arg(filter: &str, name: &str, arg: Option<Value>) -> Result<Option<i128>, Error> {
    match present(arg) {
        None => Ok(None),
        Some(v) => as_i128(&v).map(Some).ok_or_else(|| {
            op_err(format!(
                "{filter}: '{name}' must be an integer, not {}",
                py_type_name(&v)
            ))
        }),
    }
}

fn str_arg(arg: Option<Value>) -> Option<String> {
    present(arg).map(|v| py_str(&v))
}

// ---------------------------------------------------------------------------
// String filters
// ---------------------------------------------------------------------------

fn slugify(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "slugify")?;
    let ascii: String = py_str(&value).nfkd().filter(char::is_ascii).collect();
    let mut out = String::with_capacity(ascii.len());
    let mut pending_dash = false;
    for c in ascii.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            if pending_dash {
                out.push('-');
                pending_dash = false;
            }
            out.push(c);
        } else if c == '-' || is_space(c) {
            pending_dash = true;
        }
    }
    if pending_dash {
        out.push('-');
    }
    Ok(Value::from(out.trim_matches(['-', '_'])))
}

fn truncate_words(
    state: &State<'_, '_>,
    value: Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    check_defined(state, &value, "truncate_words")?;
    let [n, end] = bind("truncate_words", args, ["n", "end"])?;
    let n = int_arg("truncate_words", "n", n)?
        .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "truncate_words: missing 'n'"))?;
    let end = str_arg(end).unwrap_or_else(|| "...".to_owned());
    let text = py_str(&value);
    let words: Vec<&str> = text.split(is_space).filter(|w| !w.is_empty()).collect();
    let len = i128::try_from(words.len()).unwrap_or(i128::MAX);
    let keep = if n < 0 { (len + n).max(0) } else { n.min(len) };
    let keep = usize::try_from(keep).unwrap_or(0);
    let mut out = words[..keep].join(" ");
    if len > n {
        out.push_str(&end);
    }
    Ok(Value::from(out))
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)`.
fn truncate(
    state: &State<'_, '_>,
    value: Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    check_defined(state, &value, "truncate")?;
    let [length, killwords, end, leeway] =
        bind("truncate", args, ["length", "killwords", "end", "leeway"])?;
    let length = int_arg("truncate", "length", length)?.unwrap_or(255);
    let killwords = present(killwords).is_some_and(|v| v.is_true());
    let end = str_arg(end).unwrap_or_else(|| "...".to_owned());
    let leeway = int_arg("truncate", "leeway", leeway)?.unwrap_or(5);
    let end_len = i128::try_from(end.chars().count()).unwrap_or(i128::MAX);
    if length < end_len {
        return Err(op_err("truncate: expected length >= len(end)"));
    }
    if leeway < 0 {
        return Err(op_err("truncate: expected leeway >= 0"));
    }
    let text = py_str(&value);
    let chars: Vec<char> = text.chars().collect();
    if i128::try_from(chars.len()).unwrap_or(i128::MAX) <= length + leeway {
        return Ok(Value::from(text));
    }
    let keep = usize::try_from(length - end_len)
        .unwrap_or(0)
        .min(chars.len());
    let head: String = chars[..keep].iter().collect();
    let head = if killwords {
        head
    } else {
        match head.rsplit_once(' ') {
            Some((before, _)) => before.to_owned(),
            None => head,
        }
    };
    Ok(Value::from(head + &end))
}

/// Jinja2's `wordcount`: the number of `\w+` runs.
fn wordcount(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "wordcount")?;
    let text = py_str(&value);
    let mut count = 0usize;
    let mut in_word = false;
    for c in text.chars() {
        let word = c.is_alphanumeric() || c == '_';
        if word && !in_word {
            count += 1;
        }
        in_word = word;
    }
    Ok(Value::from(count))
}

fn basename(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "basename")?;
    let path = py_str(&value);
    let base = path.rsplit('/').next().unwrap_or_default();
    Ok(Value::from(base))
}

fn file_exists(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "file_exists")?;
    let path = py_str(&value);
    Ok(Value::from(
        !path.is_empty() && std::fs::metadata(&path).is_ok(),
    ))
}

fn split(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "split")?;
    let [sep, maxsplit] = bind("split", args, ["sep", "maxsplit"])?;
    let text = py_str(&value);
    let maxsplit = int_arg("split", "maxsplit", maxsplit)?.unwrap_or(-1);
    let limit = usize::try_from(maxsplit).ok();
    let parts: Vec<Value> = match str_arg(sep) {
        Some(sep) => {
            if sep.is_empty() {
                return Err(op_err("split: empty separator"));
            }
            match limit {
                Some(limit) => text
                    .splitn(limit.saturating_add(1), sep.as_str())
                    .map(Value::from)
                    .collect(),
                None => text.split(sep.as_str()).map(Value::from).collect(),
            }
        }
        None => split_whitespace_py(&text, limit)
            .into_iter()
            .map(Value::from)
            .collect(),
    };
    Ok(Value::from(parts))
}

/// Python `str.split(None, maxsplit)`.
fn split_whitespace_py(text: &str, limit: Option<usize>) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim_start_matches(is_space);
    while !rest.is_empty() {
        if limit.is_some_and(|l| out.len() >= l) {
            out.push(rest);
            break;
        }
        match rest.find(is_space) {
            Some(idx) => {
                out.push(&rest[..idx]);
                rest = rest[idx..].trim_start_matches(is_space);
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// Looks up a dotted attribute path like Jinja's `make_attrgetter`.
fn lookup_path(item: &Value, path: &str) -> Result<Value, Error> {
    let mut current = item.clone();
    for part in path.split('.') {
        let key = match part.parse::<i64>() {
            Ok(idx) => Value::from(idx),
            Err(_) => Value::from(part),
        };
        current = current.get_item(&key)?;
        if current.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                format!("join: {} has no attribute '{path}'", py_repr(item)),
            ));
        }
    }
    Ok(current)
}

fn join(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "join")?;
    let [sep, attribute] = bind("join", args, ["d", "attribute"])?;
    let sep = str_arg(sep).unwrap_or_else(|| ", ".to_owned());
    let attribute = str_arg(attribute);
    let mut out = String::new();
    let items: Vec<Value> = match value.kind() {
        ValueKind::None => return Err(op_err("join: can only join an iterable")),
        ValueKind::String => py_str(&value).chars().map(Value::from).collect(),
        _ => value.try_iter()?.collect(),
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            push_bounded("join", &mut out, &sep)?;
        }
        match &attribute {
            Some(path) => push_bounded("join", &mut out, &py_str(&lookup_path(item, path)?))?,
            None => push_bounded("join", &mut out, &py_str(item))?,
        }
    }
    Ok(Value::from(out))
}

fn last(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "last")?;
    match value.kind() {
        ValueKind::String => Ok(py_str(&value)
            .chars()
            .next_back()
            .map_or(Value::from(()), Value::from)),
        ValueKind::None | ValueKind::Undefined => Ok(Value::from(())),
        _ => Ok(value.try_iter()?.last().unwrap_or(Value::from(()))),
    }
}

// ---------------------------------------------------------------------------
// Regular expressions
// ---------------------------------------------------------------------------

/// Compiles a Python `re` pattern, translating the few syntax differences.
fn compile_regex(filter: &str, pattern: &str) -> Result<Regex, Error> {
    let mut translated = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => translated.push_str("\\z"),
                Some(next) => {
                    translated.push('\\');
                    translated.push(next);
                }
                None => translated.push('\\'),
            }
        } else {
            translated.push(c);
        }
    }
    Regex::new(&translated).map_err(|e| {
        op_err(format!(
            "{filter}: invalid regular expression {pattern:?}: {e}"
        ))
    })
}

fn regex_search(
    state: &State<'_, '_>,
    value: Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    check_defined(state, &value, "regex_search")?;
    let [pattern, group] = bind("regex_search", args, ["pattern", "group"])?;
    let pattern = str_arg(pattern)
        .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "regex_search: missing pattern"))?;
    let re = compile_regex("regex_search", &pattern)?;
    let text = py_str(&value);
    let Some(caps) = re.captures(&text) else {
        return Ok(Value::from(()));
    };
    let found = match present(group) {
        None => caps.get(0),
        Some(g) if g.kind() == ValueKind::String => {
            let name = py_str(&g);
            if !re.capture_names().flatten().any(|n| n == name) {
                return Err(op_err(format!("regex_search: no such group '{name}'")));
            }
            caps.name(&name)
        }
        Some(g) => {
            let idx = as_i128(&g)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < re.captures_len())
                .ok_or_else(|| op_err(format!("regex_search: no such group {}", py_repr(&g))))?;
            caps.get(idx)
        }
    };
    Ok(found.map_or(Value::from(()), |m| Value::from(m.as_str())))
}

/// One piece of a parsed Python `re.sub` replacement template.
enum ReplPiece {
    Literal(String),
    Group(usize),
    Named(String),
}

/// Parses Python replacement syntax (`\1`, `\g<1>`, `\g<name>`, escapes).
fn parse_py_replacement(repl: &str) -> Result<Vec<ReplPiece>, String> {
    let chars: Vec<char> = repl.chars().collect();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let is_oct = |c: Option<&char>| c.is_some_and(|c| ('0'..='7').contains(c));
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            lit.push(c);
            continue;
        }
        let Some(&next) = chars.get(i) else {
            return Err("bad escape (end of pattern)".to_owned());
        };
        i += 1;
        let mut group = None;
        match next {
            'g' => {
                if chars.get(i) != Some(&'<') {
                    return Err("missing <".to_owned());
                }
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|c| *c == '>') else {
                    return Err("missing >, unterminated name".to_owned());
                };
                let name: String = chars[start..start + len].iter().collect();
                i = start + len + 1;
                if name.is_empty() {
                    return Err("missing group name".to_owned());
                }
                if name.chars().all(|c| c.is_ascii_digit()) {
                    let idx = name
                        .parse::<usize>()
                        .map_err(|_| format!("invalid group reference {name}"))?;
                    group = Some(ReplPiece::Group(idx));
                } else if name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    group = Some(ReplPiece::Named(name));
                } else {
                    return Err(format!("bad character in group name '{name}'"));
                }
            }
            '0' => {
                let mut code = 0u32;
                for _ in 0..2 {
                    if is_oct(chars.get(i)) {
                        code = code * 8 + chars[i].to_digit(8).unwrap_or(0);
                        i += 1;
                    } else {
                        break;
                    }
                }
                lit.push(char::from_u32(code).unwrap_or('\0'));
            }
            '1'..='9' => {
                let mut number = String::from(next);
                if chars.get(i).is_some_and(char::is_ascii_digit) {
                    if is_oct(Some(&next)) && is_oct(chars.get(i)) && is_oct(chars.get(i + 1)) {
                        let text: String = chars[i - 1..i + 2].iter().collect();
                        let code = u32::from_str_radix(&text, 8).unwrap_or(0);
                        if code > 0o377 {
                            return Err(format!(
                                "octal escape value \\{text} outside of range 0-0o377"
                            ));
                        }
                        i += 2;
                        lit.push(char::from_u32(code).unwrap_or('\0'));
                        continue;
                    }
                    number.push(chars[i]);
                    i += 1;
                }
                let idx = number.parse::<usize>().unwrap_or(0);
                group = Some(ReplPiece::Group(idx));
            }
            'a' => lit.push('\u{7}'),
            'b' => lit.push('\u{8}'),
            'f' => lit.push('\u{c}'),
            'n' => lit.push('\n'),
            'r' => lit.push('\r'),
            't' => lit.push('\t'),
            'v' => lit.push('\u{b}'),
            '\\' => lit.push('\\'),
            c if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c}")),
            c => {
                lit.push('\\');
                lit.push(c);
            }
        }
        if let Some(group) = group {
            if !lit.is_empty() {
                pieces.push(ReplPiece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(group);
        }
    }
    if !lit.is_empty() {
        pieces.push(ReplPiece::Literal(lit));
    }
    Ok(pieces)
}

fn regex_replace(
    state: &State<'_, '_>,
    value: Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    check_defined(state, &value, "regex_replace")?;
    let [pattern, replacement, count] =
        bind("regex_replace", args, ["pattern", "replacement", "count"])?;
    let pattern = str_arg(pattern)
        .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "regex_replace: missing pattern"))?;
    let replacement = str_arg(replacement).unwrap_or_default();
    let count = int_arg("regex_replace", "count", count)?.unwrap_or(0);
    let re = compile_regex("regex_replace", &pattern)?;
    let pieces = parse_py_replacement(&replacement).map_err(|e| {
        op_err(format!(
            "regex_replace: bad replacement {replacement:?}: {e}"
        ))
    })?;
    for piece in &pieces {
        match piece {
            ReplPiece::Group(idx) if *idx >= re.captures_len() => {
                return Err(op_err(format!(
                    "regex_replace: invalid group reference {idx} in {replacement:?}"
                )));
            }
            ReplPiece::Named(name) if !re.capture_names().flatten().any(|n| n == name) => {
                return Err(op_err(format!(
                    "regex_replace: unknown group name '{name}' in {replacement:?}"
                )));
            }
            _ => {}
        }
    }
    let text = py_str(&value);
    if count < 0 {
        return Ok(Value::from(text));
    }
    let limit = usize::try_from(count).unwrap_or(usize::MAX);
    py_sub(&re, &text, &pieces, limit).map(Value::from)
}

/// Python `re.sub` iteration: an empty match right after a non-empty one is
/// replaced too, an empty match where the previous empty match ended is not. The result is at
/// most [`MAX_FORMAT_OUTPUT`] long.
fn py_sub(re: &Regex, text: &str, pieces: &[ReplPiece], limit: usize) -> Result<String, Error> {
    let push = |out: &mut String, piece: &str| push_bounded("regex_replace", out, piece);
    // Groups are found only when the replacement reads them: finding a match alone is many
    // times faster than finding its groups.
    let groups = pieces
        .iter()
        .any(|p| matches!(p, ReplPiece::Group(_) | ReplPiece::Named(_)));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut pos = 0;
    let mut last_empty_at = None;
    let mut replaced = 0;
    while (limit == 0 || replaced < limit) && pos <= text.len() {
        let (m, caps) = if groups {
            let Some(caps) = re.captures_at(text, pos) else {
                break;
            };
            let Some(m) = caps.get(0) else {
                break;
            };
            (m, Some(caps))
        } else {
            let Some(m) = re.find_at(text, pos) else {
                break;
            };
            (m, None)
        };
        if m.is_empty() && last_empty_at == Some(m.start()) {
            match text[pos..].chars().next() {
                Some(c) => pos += c.len_utf8(),
                None => break,
            }
            continue;
        }
        if replaced == MAX_REPLACEMENTS {
            return Err(op_err(format!(
                "regex_replace: more than {MAX_REPLACEMENTS} matches; orc replaces at most that many in one call"
            )));
        }
        push(&mut out, &text[copied..m.start()])?;
        for piece in pieces {
            match piece {
                ReplPiece::Literal(s) => push(&mut out, s)?,
                ReplPiece::Group(idx) => push(
                    &mut out,
                    caps.as_ref()
                        .and_then(|c| c.get(*idx))
                        .map_or("", |g| g.as_str()),
                )?,
                ReplPiece::Named(name) => push(
                    &mut out,
                    caps.as_ref()
                        .and_then(|c| c.name(name))
                        .map_or("", |g| g.as_str()),
                )?,
            }
        }
        copied = m.end();
        pos = m.end();
        last_empty_at = m.is_empty().then_some(m.end());
        replaced += 1;
    }
    push(&mut out, &text[copied..])?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

fn json_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn json_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        float_repr(x)
    }
}

fn json_key(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => py_str(key),
        ValueKind::None => "null".to_owned(),
        ValueKind::Bool => if key.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::Number if key.is_integer() => key.to_string(),
        ValueKind::Number => json_float(as_f64(key)),
        _ => {
            return Err(op_err(format!(
                "to_json: keys must be str, int, float, bool or None, not {}",
                py_type_name(key)
            )));
        }
    })
}

/// Python `json.dumps(value, indent=indent, sort_keys=sort_keys)` with `ensure_ascii=True`.
fn json_dumps(
    v: &Value,
    indent: Option<&str>,
    sort_keys: bool,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    let newline = |out: &mut String, level: usize| {
        if let Some(unit) = indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(unit);
            }
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number if v.is_integer() => {
            let _ = write!(out, "{v}");
        }
        ValueKind::Number => out.push_str(&json_float(as_f64(v))),
        ValueKind::String => json_quote(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                json_dumps(item, indent, sort_keys, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs: Vec<(Value, Value)> = v
                .as_object()
                .and_then(|o| o.try_iter_pairs())
                .map(Iterator::collect)
                .unwrap_or_default();
            if sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                json_quote(&json_key(key)?, out);
                out.push_str(": ");
                json_dumps(value, indent, sort_keys, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "to_json: value is undefined",
            ));
        }
        _ => {
            return Err(op_err(format!(
                "to_json: Object of type {} is not JSON serializable",
                py_type_name(v)
            )));
        }
    }
    Ok(())
}

/// The widest `to_json` indent: every line of the output repeats it once per level.
const MAX_JSON_INDENT: usize = 100;

fn json_indent(indent: Option<Value>) -> Result<Option<String>, Error> {
    Ok(match present(indent) {
        None => None,
        Some(v) if v.kind() == ValueKind::String => {
            let indent = py_str(&v);
            if indent.len() > MAX_JSON_INDENT {
                return Err(op_err(format!(
                    "to_json: an indent of more than {MAX_JSON_INDENT} characters is too long"
                )));
            }
            Some(indent)
        }
        Some(v) => {
            let n = as_i128(&v)
                .ok_or_else(|| op_err("to_json: indent must be an integer or a string"))?;
            let n = usize::try_from(n).unwrap_or(0);
            if n > MAX_JSON_INDENT {
                return Err(op_err(format!(
                    "to_json: indent {n} is too large; orc allows at most {MAX_JSON_INDENT}"
                )));
            }
            Some(" ".repeat(n))
        }
    })
}

fn to_json(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "to_json")?;
    let [indent] = bind("to_json", args, ["indent"])?;
    let indent = json_indent(indent)?;
    let mut out = String::new();
    json_dumps(&value, indent.as_deref(), false, 0, &mut out)?;
    Ok(Value::from(out))
}

/// Jinja2's `tojson`: sorted keys and HTML-safe escaping of `<>&'`.
fn tojson(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "tojson")?;
    let [indent] = bind("tojson", args, ["indent"])?;
    let indent = json_indent(indent)?;
    let mut out = String::new();
    json_dumps(&value, indent.as_deref(), true, 0, &mut out)?;
    let out = out
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    Ok(Value::from_safe_string(out))
}

fn json_to_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(items) => {
            Value::from(items.into_iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from_pairs(
            map.into_iter()
                .map(|(k, v)| (Value::from(k), json_to_value(v))),
        ),
    }
}

fn from_json(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    check_defined(state, &value, "from_json")?;
    let text = py_str(&value);
    serde_json::from_str::<serde_json::Value>(&text)
        .map(json_to_value)
        .map_err(|e| op_err(format!("from_json: invalid JSON: {e}")))
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

enum Moment {
    Aware(DateTime<FixedOffset>),
    Naive(NaiveDateTime),
}

fn parse_iso_datetime(text: &str) -> Option<Moment> {
    let text = text.trim();
    let normalized = match text.strip_suffix(['Z', 'z']) {
        Some(body) => format!("{body}+00:00"),
        None => text.to_owned(),
    };
    const AWARE: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
        "%Y-%m-%d %H:%M%z",
        "%Y-%m-%dT%H%z",
        "%Y-%m-%d %H%z",
    ];
    for fmt in AWARE {
        if let Ok(dt) = DateTime::parse_from_str(&normalized, fmt) {
            return Some(Moment::Aware(dt));
        }
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for fmt in NAIVE {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&normalized, fmt) {
            return Some(Moment::Naive(dt));
        }
    }
    NaiveDate::parse_from_str(&normalized, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(Moment::Naive)
}

fn timestamp_to_moment(ts: f64) -> Option<Moment> {
    if !ts.is_finite() {
        return None;
    }
    let micros = (ts * 1e6).round_ties_even();
    if micros.abs() >= 9.2e18 {
        return None;
    }
    // The bound check above keeps the cast in range.
    #[allow(clippy::cast_possible_truncation)]
    let micros = micros as i64;
    DateTime::from_timestamp_micros(micros).map(|dt| Moment::Aware(dt.fixed_offset()))
}

/// Translates a Python `strftime` format into chrono's dialect.
fn translate_strftime(fmt: &str, tzname: Option<&str>) -> String {
    let mut out = String::with_capacity(fmt.len() + 8);
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('%'),
            Some('%') => out.push_str("%%"),
            Some('f') => out.push_str("%6f"),
            Some('Z') => out.push_str(tzname.unwrap_or_default()),
            Some('z') => {
                if tzname.is_some() {
                    out.push_str("%z");
                }
            }
            Some(':') if chars.peek() == Some(&'z') => {
                chars.next();
                if tzname.is_some() {
                    out.push_str("%:z");
                }
            }
            Some(other) => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

fn date(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "date")?;
    let [format] = bind("date", args, ["format"])?;
    let format = str_arg(format).unwrap_or_else(|| "%Y-%m-%d".to_owned());
    let moment = match value.kind() {
        ValueKind::Number | ValueKind::Bool => timestamp_to_moment(as_f64(&value)),
        ValueKind::String => {
            let text = py_str(&value);
            if text.trim() == "now" {
                Some(Moment::Aware(Utc::now().fixed_offset()))
            } else {
                parse_iso_datetime(&text).or_else(|| {
                    text.trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(timestamp_to_moment)
                })
            }
        }
        _ => None,
    }
    .ok_or_else(|| op_err(format!("date: cannot parse {} as a date", py_repr(&value))))?;
    let mut out = String::new();
    let written = match moment {
        Moment::Aware(dt) => {
            let offset = dt.offset().local_minus_utc();
            let tzname = if offset == 0 {
                "UTC".to_owned()
            } else {
                let abs = offset.unsigned_abs();
                format!(
                    "UTC{}{:02}:{:02}",
                    if offset < 0 { '-' } else { '+' },
                    abs / 3600,
                    abs % 3600 / 60
                )
            };
            let fmt = translate_strftime(&format, Some(&tzname));
            write!(out, "{}", dt.format(&fmt))
        }
        Moment::Naive(dt) => {
            let fmt = translate_strftime(&format, None);
            write!(out, "{}", dt.format(&fmt))
        }
    };
    written.map_err(|_| op_err(format!("date: invalid format string {format:?}")))?;
    Ok(Value::from(out))
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

fn f64_to_i128(x: f64) -> Option<i128> {
    let t = x.trunc();
    if !t.is_finite() || t.abs() >= 1.7e38 {
        return None;
    }
    // Finite and within range: the conversion is exact after truncation.
    #[allow(clippy::cast_possible_truncation)]
    Some(t as i128)
}

fn int(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "int")?;
    let [default, base] = bind("int", args, ["default", "base"])?;
    let default = default.unwrap_or_else(|| Value::from(0));
    let base = int_arg("int", "base", base)?.unwrap_or(10);
    let base = u32::try_from(base).unwrap_or(10);
    let parsed = match value.kind() {
        ValueKind::Bool => Some(i128::from(value.is_true())),
        ValueKind::Number if value.is_integer() => as_i128(&value),
        ValueKind::Number => f64_to_i128(as_f64(&value)),
        ValueKind::String => {
            let text = py_str(&value);
            parse_int(&text, base)
                .ok()
                .or_else(|| parse_float(&text).and_then(f64_to_i128))
        }
        _ => None,
    };
    Ok(parsed.map_or(default, Value::from))
}

fn float(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "float")?;
    let [default] = bind("float", args, ["default"])?;
    let default = default.unwrap_or_else(|| Value::from(0.0));
    let parsed = match value.kind() {
        ValueKind::Bool | ValueKind::Number => Some(as_f64(&value)),
        ValueKind::String => parse_float(&py_str(&value)),
        _ => None,
    };
    Ok(parsed.map_or(default, Value::from))
}

/// Python's correctly rounded `round(x, ndigits)` for floats (half-even).
fn round_float(x: f64, ndigits: i128) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    if ndigits > 330 {
        return x;
    }
    if ndigits >= 0 {
        let digits = usize::try_from(ndigits).unwrap_or(0);
        let rounded = format!("{x:.digits$}").parse::<f64>().unwrap_or(x);
        return if rounded == 0.0 {
            0.0_f64.copysign(x)
        } else {
            rounded
        };
    }
    if ndigits < -330 {
        return 0.0_f64.copysign(x);
    }
    let exp = i32::try_from(-ndigits).unwrap_or(0);
    let scale = 10f64.powi(exp);
    let rounded = (x / scale).round_ties_even() * scale;
    if rounded == 0.0 {
        0.0_f64.copysign(x)
    } else {
        rounded
    }
}

fn round_int(n: i128, ndigits: i128) -> i128 {
    if ndigits >= 0 {
        return n;
    }
    let Some(scale) = u32::try_from(-ndigits)
        .ok()
        .and_then(|e| 10i128.checked_pow(e))
    else {
        return 0;
    };
    let q = n.div_euclid(scale);
    let r = n.rem_euclid(scale);
    let twice = r * 2;
    let q = if twice > scale || (twice == scale && q % 2 != 0) {
        q + 1
    } else {
        q
    };
    q * scale
}

fn round(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "round")?;
    let [ndigits] = bind("round", args, ["ndigits"])?;
    let ndigits = int_arg("round", "ndigits", ndigits)?;
    if !matches!(value.kind(), ValueKind::Number | ValueKind::Bool) {
        return Err(op_err(format!(
            "round: type {} doesn't define __round__ method",
            py_type_name(&value)
        )));
    }
    if let Some(n) = as_i128(&value) {
        return Ok(Value::from(round_int(n, ndigits.unwrap_or(0))));
    }
    let x = as_f64(&value);
    match ndigits {
        Some(nd) => Ok(Value::from(round_float(x, nd))),
        None => {
            if x.is_nan() {
                return Err(op_err("round: cannot convert float NaN to integer"));
            }
            f64_to_i128(x.round_ties_even())
                .map(Value::from)
                .ok_or_else(|| op_err("round: cannot convert float infinity to integer"))
        }
    }
}

// ---------------------------------------------------------------------------
// Python string formatting (`%` and `str.format`)
// ---------------------------------------------------------------------------

/// A parsed Python format specification.
#[derive(Clone, Copy)]
struct Spec {
    fill: char,
    align: Option<char>,
    sign: char,
    alt: bool,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    ty: Option<char>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            fill: ' ',
            align: None,
            sign: '-',
            alt: false,
            width: 0,
            grouping: None,
            precision: None,
            ty: None,
        }
    }
}

/// The widest field and the longest precision `format` takes (Python takes any): a width of
/// `%01500000000d` would otherwise allocate gigabytes.
const MAX_FORMAT_WIDTH: usize = 10_000;

/// The most text one `format`, `join` or `regex_replace` call may produce: repeating a field
/// (`{0}{0}{0}…`), a long separator between many items or a long replacement of many matches
/// must not multiply into gigabytes before the render's own limits see the text.
const MAX_FORMAT_OUTPUT: usize = 16 * 1024 * 1024;

/// The most matches one `regex_replace` call replaces: an empty pattern matches between every
/// two characters, and ten million of them took longer than a render may.
const MAX_REPLACEMENTS: usize = 1_000_000;

/// Appends `piece` to the text `filter` is making, refusing text beyond [`MAX_FORMAT_OUTPUT`].
fn push_bounded(filter: &str, out: &mut String, piece: &str) -> Result<(), Error> {
    if out.len().saturating_add(piece.len()) > MAX_FORMAT_OUTPUT {
        return Err(op_err(format!(
            "{filter}: the result would be longer than {} MiB",
            MAX_FORMAT_OUTPUT / (1024 * 1024)
        )));
    }
    out.push_str(piece);
    Ok(())
}

fn check_width(what: &str, n: usize) -> Result<usize, Error> {
    if n > MAX_FORMAT_WIDTH {
        return Err(op_err(format!(
            "format: {what} {n} is too large; orc allows at most {MAX_FORMAT_WIDTH}"
        )));
    }
    Ok(n)
}

/// Appends one formatted field, refusing output beyond [`MAX_FORMAT_OUTPUT`].
fn push_field(out: &mut String, field: &str) -> Result<(), Error> {
    push_bounded("format", out, field)
}

fn parse_format_spec(spec: &str) -> Result<Spec, Error> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = Spec::default();
    let mut i = 0;
    let is_align = |c: Option<&char>| c.is_some_and(|c| matches!(c, '<' | '>' | '=' | '^'));
    if chars.len() >= 2 && is_align(chars.get(1)) {
        out.fill = chars[0];
        out.align = Some(chars[1]);
        i = 2;
    } else if is_align(chars.first()) {
        out.align = Some(chars[0]);
        i = 1;
    }
    if let Some(&c) = chars.get(i)
        && matches!(c, '+' | '-' | ' ')
    {
        out.sign = c;
        i += 1;
    }
    if chars.get(i) == Some(&'z') {
        i += 1;
    }
    if chars.get(i) == Some(&'#') {
        out.alt = true;
        i += 1;
    }
    if chars.get(i) == Some(&'0') {
        if out.align.is_none() {
            out.fill = '0';
            out.align = Some('=');
        }
        i += 1;
    }
    let start = i;
    while chars.get(i).is_some_and(char::is_ascii_digit) {
        i += 1;
    }
    if i > start {
        let text: String = chars[start..i].iter().collect();
        out.width = check_width(
            "width",
            text.parse()
                .map_err(|_| op_err("format: too many decimal digits in format string"))?,
        )?;
    }
    if let Some(&c) = chars.get(i)
        && matches!(c, ',' | '_')
    {
        out.grouping = Some(c);
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        i += 1;
        let start = i;
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(op_err("format: format specifier missing precision"));
        }
        let text: String = chars[start..i].iter().collect();
        out.precision = Some(check_width(
            "precision",
            text.parse()
                .map_err(|_| op_err("format: too many decimal digits in format string"))?,
        )?);
    }
    match chars.len() - i {
        0 => {}
        1 => out.ty = Some(chars[i]),
        _ => return Err(op_err(format!("format: invalid format specifier '{spec}'"))),
    }
    Ok(out)
}

fn pad(prefix: &str, body: &str, spec: &Spec, default_align: char) -> String {
    let len = prefix.chars().count() + body.chars().count();
    let mut out = String::with_capacity(len.max(spec.width));
    if spec.width <= len {
        out.push_str(prefix);
        out.push_str(body);
        return out;
    }
    let n = spec.width - len;
    let fill = |out: &mut String, count: usize| out.extend(std::iter::repeat_n(spec.fill, count));
    match spec.align.unwrap_or(default_align) {
        '<' => {
            out.push_str(prefix);
            out.push_str(body);
            fill(&mut out, n);
        }
        '^' => {
            fill(&mut out, n / 2);
            out.push_str(prefix);
            out.push_str(body);
            fill(&mut out, n - n / 2);
        }
        '=' => {
            out.push_str(prefix);
            fill(&mut out, n);
            out.push_str(body);
        }
        _ => {
            fill(&mut out, n);
            out.push_str(prefix);
            out.push_str(body);
        }
    }
    out
}

fn group_digits(int_part: &str, sep: char, every: usize) -> String {
    let chars: Vec<char> = int_part.chars().collect();
    let mut out = String::with_capacity(chars.len() + chars.len() / every);
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && (chars.len() - i).is_multiple_of(every) {
            out.push(sep);
        }
        out.push(*c);
    }
    out
}

fn sign_prefix(negative: bool, sign: char) -> &'static str {
    match (negative, sign) {
        (true, _) => "-",
        (false, '+') => "+",
        (false, ' ') => " ",
        _ => "",
    }
}

/// Python `'%.*e'` of a non-negative finite float.
fn fmt_exp(x: f64, precision: usize, upper: bool) -> String {
    let s = format!("{x:.precision$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let mut out = mantissa.to_owned();
    push_exponent(&mut out, exp.parse().unwrap_or(0));
    if upper { out.to_uppercase() } else { out }
}

/// Python `'%.*g'` of a non-negative finite float.
fn fmt_general(x: f64, precision: usize, alt: bool, upper: bool) -> String {
    let p = precision.max(1);
    let exp = if x == 0.0 {
        0
    } else {
        let s = format!("{x:.prec$e}", prec = p - 1);
        s.split_once('e')
            .and_then(|(_, e)| e.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let p_i = i64::try_from(p).unwrap_or(i64::MAX);
    let strip = |s: &str| -> String {
        if alt || !s.contains('.') {
            s.to_owned()
        } else {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    };
    if (-4..p_i).contains(&exp) {
        let digits = usize::try_from(p_i - 1 - exp).unwrap_or(0);
        let fixed = format!("{x:.digits$}");
        let mut out = strip(&fixed);
        if alt && !out.contains('.') {
            out.push('.');
        }
        out
    } else {
        let s = fmt_exp(x, p - 1, upper);
        let (mantissa, exp) = s.split_once(['e', 'E']).unwrap_or((s.as_str(), ""));
        let mut out = strip(mantissa);
        if alt && !out.contains('.') {
            out.push('.');
        }
        out.push(if upper { 'E' } else { 'e' });
        out.push_str(exp);
        out
    }
}

/// Formats a float under a Python format spec; `percent` selects `%`-operator quirks.
fn format_float(x: f64, spec: &Spec, percent: bool) -> Result<String, Error> {
    let ty = spec.ty;
    let upper = matches!(ty, Some('E' | 'F' | 'G'));
    let negative = x.is_sign_negative() && !x.is_nan();
    let prefix = sign_prefix(negative, spec.sign);
    let a = x.abs();
    if !a.is_finite() {
        let body = match (a.is_nan(), upper) {
            (true, true) => "NAN",
            (true, false) => "nan",
            (false, true) => "INF",
            (false, false) => "inf",
        };
        let body = if ty == Some('%') {
            format!("{body}%")
        } else {
            body.to_owned()
        };
        if percent && spec.align == Some('=') {
            let plain = Spec {
                fill: ' ',
                align: Some('>'),
                ..*spec
            };
            return Ok(pad(prefix, &body, &plain, '>'));
        }
        return Ok(pad(prefix, &body, spec, '>'));
    }
    let mut body = match ty {
        None => match spec.precision {
            None => float_repr(a),
            Some(p) => {
                let mut s = fmt_general(a, p, spec.alt, false);
                if !s.contains(['.', 'e']) {
                    s.push_str(".0");
                }
                s
            }
        },
        Some('f' | 'F') => {
            let p = spec.precision.unwrap_or(6);
            let mut s = format!("{a:.p$}");
            if spec.alt && p == 0 {
                s.push('.');
            }
            s
        }
        Some('e' | 'E') => {
            let s = fmt_exp(a, spec.precision.unwrap_or(6), upper);
            if spec.alt && spec.precision == Some(0) {
                s.replacen(['e', 'E'], if upper { ".E" } else { ".e" }, 1)
            } else {
                s
            }
        }
        Some('g' | 'G' | 'n') => fmt_general(a, spec.precision.unwrap_or(6), spec.alt, upper),
        Some('%') => {
            let p = spec.precision.unwrap_or(6);
            format!("{:.p$}%", a * 100.0)
        }
        Some(other) => {
            return Err(op_err(format!(
                "format: unknown format code '{other}' for object of type 'float'"
            )));
        }
    };
    if let Some(sep) = spec.grouping {
        let split_at = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        body = format!(
            "{}{}",
            group_digits(&body[..split_at], sep, 3),
            &body[split_at..]
        );
    }
    Ok(pad(prefix, &body, spec, '>'))
}

/// Formats an integer under a Python format spec; `percent` selects `%`-operator quirks.
fn format_int(n: i128, spec: &Spec, percent: bool) -> Result<String, Error> {
    let negative = n < 0;
    let mag = n.unsigned_abs();
    let (digits, radix_prefix, every) = match spec.ty {
        None | Some('d' | 'n' | 'i' | 'u') => (mag.to_string(), "", 3),
        Some('b') => (format!("{mag:b}"), "0b", 4),
        Some('o') => (format!("{mag:o}"), "0o", 4),
        Some('x') => (format!("{mag:x}"), "0x", 4),
        Some('X') => (format!("{mag:X}"), "0X", 4),
        Some('c') => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| op_err("format: %c arg not in range(0x110000)"))?;
            return Ok(pad(
                "",
                &c.to_string(),
                spec,
                if percent { '>' } else { '<' },
            ));
        }
        Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%') => {
            // Lossy by design: Python converts the int to a float here too.
            #[allow(clippy::cast_precision_loss)]
            let x = n as f64;
            return format_float(x, spec, percent);
        }
        Some(other) => {
            return Err(op_err(format!(
                "format: unknown format code '{other}' for object of type 'int'"
            )));
        }
    };
    let mut digits = digits;
    if let Some(p) = spec.precision {
        if !percent {
            return Err(op_err(
                "format: precision not allowed in integer format specifier",
            ));
        }
        if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    if let Some(sep) = spec.grouping {
        digits = group_digits(&digits, sep, every);
    }
    let mut prefix = sign_prefix(negative, spec.sign).to_owned();
    if spec.alt {
        prefix.push_str(radix_prefix);
    }
    Ok(pad(&prefix, &digits, spec, '>'))
}

/// `format(value, spec)` as Python's `str.format` applies it.
fn format_with_spec(v: &Value, spec_text: &str) -> Result<String, Error> {
    if spec_text.is_empty() {
        return Ok(py_str(v));
    }
    let spec = parse_format_spec(spec_text)?;
    match v.kind() {
        ValueKind::String => {
            if !matches!(spec.ty, None | Some('s')) {
                return Err(op_err(format!(
                    "format: unknown format code '{}' for object of type 'str'",
                    spec.ty.unwrap_or('s')
                )));
            }
            if spec.sign != '-' {
                return Err(op_err(
                    "format: sign not allowed in string format specifier",
                ));
            }
            if spec.align == Some('=') {
                return Err(op_err(
                    "format: '=' alignment not allowed in string format specifier",
                ));
            }
            let s = py_str(v);
            let body: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            Ok(pad("", &body, &spec, '<'))
        }
        ValueKind::Number | ValueKind::Bool => match as_i128(v) {
            Some(n) => format_int(n, &spec, false),
            None => format_float(as_f64(v), &spec, false),
        },
        _ => Err(op_err(format!(
            "format: unsupported format string passed to {}.__format__",
            py_type_name(v)
        ))),
    }
}

/// One `%` directive of Python's printf-style formatting.
fn format_percent_directive(v: &Value, ty: char, spec: &Spec) -> Result<String, Error> {
    let numeric = matches!(v.kind(), ValueKind::Number | ValueKind::Bool);
    match ty {
        's' | 'r' | 'a' => {
            let s = if ty == 's' { py_str(v) } else { py_repr(v) };
            let body: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            let plain = Spec {
                fill: ' ',
                align: Some(if spec.align == Some('<') { '<' } else { '>' }),
                ..*spec
            };
            Ok(pad("", &body, &plain, '>'))
        }
        'd' | 'i' | 'u' => {
            if !numeric {
                return Err(op_err(format!(
                    "format: %{ty} format: a real number is required, not {}",
                    py_type_name(v)
                )));
            }
            let n = match as_i128(v) {
                Some(n) => n,
                None => f64_to_i128(as_f64(v))
                    .ok_or_else(|| op_err("format: cannot convert float to integer"))?,
            };
            format_int(
                n,
                &Spec {
                    ty: Some('d'),
                    ..*spec
                },
                true,
            )
        }
        'x' | 'X' | 'o' => {
            let n = as_i128(v).ok_or_else(|| {
                op_err(format!(
                    "format: %{ty} format: an integer is required, not {}",
                    py_type_name(v)
                ))
            })?;
            format_int(
                n,
                &Spec {
                    ty: Some(ty),
                    ..*spec
                },
                true,
            )
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            if !numeric {
                return Err(op_err(format!(
                    "format: must be real number, not {}",
                    py_type_name(v)
                )));
            }
            let spec = Spec {
                ty: Some(ty),
                precision: Some(spec.precision.unwrap_or(6)),
                ..*spec
            };
            format_float(as_f64(v), &spec, true)
        }
        'c' => {
            if let Some(s) = v.as_str().filter(|_| v.kind() == ValueKind::String) {
                if s.chars().count() != 1 {
                    return Err(op_err("format: %c requires an int or a unicode character"));
                }
                return Ok(pad(
                    "",
                    s,
                    &Spec {
                        align: Some('>'),
                        fill: ' ',
                        ..*spec
                    },
                    '>',
                ));
            }
            let n = as_i128(v)
                .ok_or_else(|| op_err("format: %c requires an int or a unicode character"))?;
            format_int(
                n,
                &Spec {
                    ty: Some('c'),
                    ..*spec
                },
                true,
            )
        }
        other => Err(op_err(format!(
            "format: unsupported format character '{other}'"
        ))),
    }
}

/// Whether `fmt` contains at least one printf-style `%` conversion.
fn has_percent_directive(fmt: &str) -> bool {
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if chars.get(j) == Some(&'(') {
            match chars[j..].iter().position(|c| *c == ')') {
                Some(end) => j += end + 1,
                None => return false,
            }
        }
        while chars
            .get(j)
            .is_some_and(|c| matches!(c, '-' | '+' | ' ' | '#' | '0'))
        {
            j += 1;
        }
        while chars
            .get(j)
            .is_some_and(|c| c.is_ascii_digit() || *c == '*')
        {
            j += 1;
        }
        if chars.get(j) == Some(&'.') {
            j += 1;
            while chars
                .get(j)
                .is_some_and(|c| c.is_ascii_digit() || *c == '*')
            {
                j += 1;
            }
        }
        while chars.get(j).is_some_and(|c| matches!(c, 'h' | 'l' | 'L')) {
            j += 1;
        }
        if chars
            .get(j)
            .is_some_and(|c| "diouxXeEfFgGcrsa%".contains(*c))
        {
            return true;
        }
        i += 1;
    }
    false
}

/// Python `fmt % args` (`mapping` set when keyword arguments were given).
fn percent_format(
    fmt: &str,
    positional: &[Value],
    mapping: Option<&Value>,
) -> Result<String, Error> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::with_capacity(fmt.len());
    let mut i = 0;
    let mut next = 0usize;
    let take = |next: &mut usize| -> Result<Value, Error> {
        let v = positional
            .get(*next)
            .cloned()
            .ok_or_else(|| op_err("format: not enough arguments for format string"))?;
        *next += 1;
        Ok(v)
    };
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            let mut depth = 1;
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && depth > 0 {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            if depth > 0 {
                return Err(op_err("format: incomplete format key"));
            }
            key = Some(chars[start..j - 1].iter().collect::<String>());
            i = j;
        }
        let mut left = false;
        let mut zero = false;
        let mut spec = Spec::default();
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '+' => spec.sign = '+',
                ' ' => {
                    if spec.sign != '+' {
                        spec.sign = ' ';
                    }
                }
                '#' => spec.alt = true,
                '0' => zero = true,
                _ => break,
            }
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            i += 1;
            let w = as_i128(&take(&mut next)?).ok_or_else(|| op_err("format: * wants int"))?;
            if w < 0 {
                left = true;
            }
            spec.width = usize::try_from(w.unsigned_abs()).unwrap_or(usize::MAX);
        } else {
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                spec.width = spec.width.saturating_mul(10).saturating_add(d as usize);
                i += 1;
            }
        }
        spec.width = check_width("width", spec.width)?;
        if chars.get(i) == Some(&'.') {
            i += 1;
            if chars.get(i) == Some(&'*') {
                i += 1;
                let p = as_i128(&take(&mut next)?).ok_or_else(|| op_err("format: * wants int"))?;
                spec.precision = Some(usize::try_from(p.max(0)).unwrap_or(0));
            } else {
                let mut p = 0usize;
                while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                    p = p.saturating_mul(10).saturating_add(d as usize);
                    i += 1;
                }
                spec.precision = Some(p);
            }
            spec.precision = Some(check_width("precision", spec.precision.unwrap_or(0))?);
        }
        while chars.get(i).is_some_and(|c| matches!(c, 'h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&ty) = chars.get(i) else {
            return Err(op_err("format: incomplete format"));
        };
        i += 1;
        if ty == '%' {
            out.push('%');
            continue;
        }
        if left {
            spec.align = Some('<');
        } else if zero {
            spec.align = Some('=');
            spec.fill = '0';
        } else {
            spec.align = Some('>');
        }
        let value = match key {
            Some(k) => {
                let map = mapping.ok_or_else(|| op_err("format: format requires a mapping"))?;
                let v = map.get_item(&Value::from(k.as_str()))?;
                if v.is_undefined() {
                    return Err(op_err(format!("format: KeyError: '{k}'")));
                }
                v
            }
            None => take(&mut next)?,
        };
        push_field(&mut out, &format_percent_directive(&value, ty, &spec)?)?;
    }
    if mapping.is_none() && next < positional.len() {
        return Err(op_err(
            "format: not all arguments converted during string formatting",
        ));
    }
    Ok(out)
}

/// Python `str.format` state: arguments and the automatic field counter.
struct StrFormatter<'a> {
    args: &'a [Value],
    kwargs: &'a [(String, Value)],
    auto: Option<usize>,
    manual: bool,
}

impl StrFormatter<'_> {
    fn resolve(&mut self, field: &str) -> Result<Value, Error> {
        let split_at = field.find(['.', '[']).unwrap_or(field.len());
        let (first, mut rest) = field.split_at(split_at);
        let mut value = if first.is_empty() {
            if self.manual {
                return Err(op_err(
                    "format: cannot switch from manual field specification to automatic field numbering",
                ));
            }
            let idx = self.auto.unwrap_or(0);
            self.auto = Some(idx + 1);
            self.args.get(idx).cloned().ok_or_else(|| {
                op_err(format!(
                    "format: IndexError: replacement index {idx} out of range"
                ))
            })?
        } else if let Ok(idx) = first.parse::<usize>() {
            if self.auto.is_some() {
                return Err(op_err(
                    "format: cannot switch from automatic field numbering to manual field specification",
                ));
            }
            self.manual = true;
            self.args.get(idx).cloned().ok_or_else(|| {
                op_err(format!(
                    "format: IndexError: replacement index {idx} out of range"
                ))
            })?
        } else {
            self.kwargs
                .iter()
                .find(|(k, _)| k == first)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| op_err(format!("format: KeyError: '{first}'")))?
        };
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                // Python dicts and lists have no data attributes.
                let next = match value.kind() {
                    ValueKind::Map | ValueKind::Seq => Value::UNDEFINED,
                    _ => value.get_attr(name)?,
                };
                if next.is_undefined() {
                    return Err(op_err(format!(
                        "format: AttributeError: '{}' object has no attribute '{name}'",
                        py_type_name(&value)
                    )));
                }
                value = next;
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| op_err("format: Missing ']' in format string"))?;
                let key_text = &after[..end];
                let key = match key_text.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::from(key_text),
                };
                let next = value.get_item(&key)?;
                if next.is_undefined() {
                    return Err(op_err(format!("format: KeyError: {}", py_repr(&key))));
                }
                value = next;
                rest = &after[end + 1..];
            } else {
                return Err(op_err(
                    "format: only '.' or '[' may follow ']' in format field specifier",
                ));
            }
        }
        Ok(value)
    }

    fn format(&mut self, fmt: &str, depth: usize) -> Result<String, Error> {
        if depth > 2 {
            return Err(op_err("format: Max string recursion exceeded"));
        }
        let chars: Vec<char> = fmt.chars().collect();
        let mut out = String::with_capacity(fmt.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '{' if chars.get(i) == Some(&'{') => {
                    out.push('{');
                    i += 1;
                }
                '}' if chars.get(i) == Some(&'}') => {
                    out.push('}');
                    i += 1;
                }
                '}' => return Err(op_err("format: Single '}' encountered in format string")),
                '{' => {
                    let start = i;
                    let mut nest = 1;
                    let mut in_bracket = false;
                    while i < chars.len() {
                        match chars[i] {
                            '[' => in_bracket = true,
                            ']' => in_bracket = false,
                            '{' if !in_bracket => nest += 1,
                            '}' if !in_bracket => {
                                nest -= 1;
                                if nest == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= chars.len() {
                        return Err(op_err("format: expected '}' before end of string"));
                    }
                    let inner: String = chars[start..i].iter().collect();
                    i += 1;
                    let field = self.field(&inner, depth)?;
                    push_field(&mut out, &field)?;
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn field(&mut self, inner: &str, depth: usize) -> Result<String, Error> {
        let mut end = inner.len();
        let mut in_bracket = false;
        for (idx, c) in inner.char_indices() {
            match c {
                '[' => in_bracket = true,
                ']' => in_bracket = false,
                '!' | ':' if !in_bracket => {
                    end = idx;
                    break;
                }
                _ => {}
            }
        }
        let (name, tail) = inner.split_at(end);
        let (conversion, spec) = if let Some(after) = tail.strip_prefix('!') {
            let mut it = after.chars();
            let conv = it.next().ok_or_else(|| {
                op_err("format: end of string while looking for conversion specifier")
            })?;
            let remainder = it.as_str();
            let spec = if remainder.is_empty() {
                ""
            } else {
                remainder
                    .strip_prefix(':')
                    .ok_or_else(|| op_err("format: expected ':' after conversion specifier"))?
            };
            (Some(conv), spec)
        } else {
            (None, tail.strip_prefix(':').unwrap_or(tail))
        };
        let mut value = self.resolve(name)?;
        match conversion {
            None => {}
            Some('s') => value = Value::from(py_str(&value)),
            Some('r' | 'a') => value = Value::from(py_repr(&value)),
            Some(other) => {
                return Err(op_err(format!(
                    "format: Unknown conversion specifier {other}"
                )));
            }
        }
        let spec = if spec.contains('{') {
            self.format(spec, depth + 1)?
        } else {
            spec.to_owned()
        };
        format_with_spec(&value, &spec)
    }
}

/// Python's methods on values (`.upper()`, `.items()`, …), as minijinja-contrib's `pycompat`
/// gives them, but `str.format` is orc's (the `format` filter's `{}` form, with its bounds on
/// widths and output): pycompat's pads to any width asked, `'{:>999999999}'.format(1)` a
/// gigabyte.
pub fn unknown_method(
    state: &mut State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if method == "format" && value.kind() == ValueKind::String {
        let (args,): (Rest<ValueOrKwargs>,) = minijinja::value::from_args(args)?;
        let (positional, kwargs) = split_args(args);
        return StrFormatter {
            args: &positional,
            kwargs: &kwargs,
            auto: None,
            manual: false,
        }
        .format(&py_str(value), 0)
        .map(Value::from);
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn format(state: &State<'_, '_>, value: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    check_defined(state, &value, "format")?;
    let (positional, kwargs) = split_args(args);
    let fmt = py_str(&value);
    let out = if has_percent_directive(&fmt) || (positional.is_empty() && kwargs.is_empty()) {
        if !positional.is_empty() && !kwargs.is_empty() {
            return Err(op_err(
                "format: can't handle positional and keyword arguments at the same time",
            ));
        }
        if kwargs.is_empty() {
            percent_format(&fmt, &positional, None)?
        } else {
            let mapping = Value::from_pairs(kwargs);
            percent_format(&fmt, std::slice::from_ref(&mapping), Some(&mapping))?
        }
    } else {
        StrFormatter {
            args: &positional,
            kwargs: &kwargs,
            auto: None,
            manual: false,
        }
        .format(&fmt, 0)?
    };
    Ok(Value::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use minijinja::context;

    fn env() -> Environment<'static> {
        let mut env = Environment::new();
        configure(&mut env);
        env
    }

    fn render(src: &str, ctx: Value) -> String {
        match env().render_str(src, ctx) {
            Ok(s) => s,
            Err(e) => panic!("render of {src:?} failed: {e:#}"),
        }
    }

    fn r(src: &str) -> String {
        render(src, context! {})
    }

    fn render_err(src: &str, ctx: Value) -> Error {
        match env().render_str(src, ctx) {
            Ok(s) => panic!("render of {src:?} unexpectedly succeeded: {s:?}"),
            Err(e) => e,
        }
    }

    fn json_ctx(json: &str) -> Value {
        json_to_value(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn formatter_scalars() {
        assert_eq!(r("{{ true }}|{{ false }}|{{ none }}"), "True|False|None");
        assert_eq!(r("{{ 42 }}|{{ -7 }}"), "42|-7");
        assert_eq!(r("{{ 'plain' }}"), "plain");
        assert_eq!(r("{{ '<b>&' }}"), "<b>&");
        assert_eq!(r("{{ '<b>'|safe }}"), "<b>");
        assert_eq!(
            r("{{ 1.0 }}|{{ 0.1 }}|{{ 1.5 }}|{{ -0.0 }}"),
            "1.0|0.1|1.5|-0.0"
        );
        assert_eq!(r("{{ 10 / 4 }}|{{ 10 / 2 }}"), "2.5|5.0");
    }

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.234e-7, "1.234e-07"),
            (123.456, "123.456"),
            (1e100, "1e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
        ];
        for (x, want) in cases {
            assert_eq!(py_str(&Value::from(x)), want, "repr of {x}");
        }
        let ctx = context! { big => 1e16, inf => f64::INFINITY, nan => f64::NAN };
        assert_eq!(
            render("{{ big }} {{ inf }} {{ nan }}", ctx),
            "1e+16 inf nan"
        );
    }

    #[test]
    fn formatter_containers() {
        assert_eq!(r("{{ ['a', 1, true, none] }}"), "['a', 1, True, None]");
        assert_eq!(r("{{ {'a': 1} }}"), "{'a': 1}");
        assert_eq!(
            r("{{ {'k': 'v', 'n': {'x': 1.5}} }}"),
            "{'k': 'v', 'n': {'x': 1.5}}"
        );
        assert_eq!(r("{{ [] }}|{{ {} }}"), "[]|{}");
        assert_eq!(r("{{ (1, 2) }}|{{ (1,) }}"), "(1, 2)|(1,)");
        assert_eq!(
            r("{{ [[1, 2.0], {'z': [none]}] }}"),
            "[[1, 2.0], {'z': [None]}]"
        );
        let ctx = context! { items => vec!["it's"] };
        assert_eq!(render("{{ items }}", ctx), "[\"it's\"]");
        let ctx = context! { items => vec!["say \"hi\""] };
        assert_eq!(render("{{ items }}", ctx), "['say \"hi\"']");
        let ctx = context! { items => vec!["both ' and \""] };
        assert_eq!(render("{{ items }}", ctx), "['both \\' and \"']");
        let ctx = context! { items => vec!["a\nb\t\\c\u{1}"] };
        assert_eq!(render("{{ items }}", ctx), "['a\\nb\\t\\\\c\\x01']");
        let ctx = context! { items => vec!["héllo ✓ 😀", "\u{a0}\u{200b}"] };
        assert_eq!(render("{{ items }}", ctx), "['héllo ✓ 😀', '\\xa0\\u200b']");
        // Insertion order of maps is preserved.
        let ctx = json_ctx(r#"{"m": {"z": 1, "a": [true, null, "x"], "f": 2.0}}"#);
        assert_eq!(
            render("{{ m }}", ctx),
            "{'z': 1, 'a': [True, None, 'x'], 'f': 2.0}"
        );
        let ctx = context! { m => Value::from_pairs([(1, "one"), (2, "two")]) };
        assert_eq!(render("{{ m }}", ctx), "{1: 'one', 2: 'two'}");
        assert_eq!(
            render(
                "{{ b }}",
                context! { b => Value::from_bytes(b"a'\x00".to_vec()) }
            ),
            "b\"a'\\x00\""
        );
    }

    #[test]
    fn py_str_and_repr_api() {
        assert_eq!(py_str(&Value::from("it's")), "it's");
        assert_eq!(py_repr(&Value::from("it's")), "\"it's\"");
        assert_eq!(py_repr(&Value::from("x")), "'x'");
        assert_eq!(py_str(&Value::from(())), "None");
        assert_eq!(py_str(&Value::from(true)), "True");
        assert_eq!(py_repr(&Value::from(3)), "3");
        assert_eq!(
            py_str(&Value::from(vec![Value::from("a"), Value::from(1.0)])),
            "['a', 1.0]"
        );
        assert_eq!(py_str(&Value::UNDEFINED), "");
    }

    #[test]
    fn strict_undefined_and_whitespace() {
        let e = render_err("{{ missing }}", context! {});
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        let e = render_err("{{ x.missing }}", context! { x => context! { a => 1 } });
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        let e = render_err("{{ missing|slugify }}", context! {});
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        let e = render_err("{{ missing|join }}", context! {});
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        assert_eq!(r("{{ missing|default('d') }}"), "d");
        assert_eq!(r("{{ missing is defined }}"), "False");
        assert_eq!(r("[{{ 'x' if false }}]"), "[]");
        assert_eq!(r("a\n"), "a\n");
        assert_eq!(r("{{ 1 }}\n\n"), "1\n\n");
        assert_eq!(r("{% if true %}x{% endif %}\n"), "x\n");
    }

    #[test]
    fn no_autoescape_for_any_template_name() {
        let mut env = env();
        env.add_template("page.html", "{{ v }}").unwrap();
        env.add_template("data.json", "{{ v }}").unwrap();
        env.add_template("conf.yaml.j2", "{{ v }}").unwrap();
        for name in ["page.html", "data.json", "conf.yaml.j2"] {
            let out = env
                .get_template(name)
                .unwrap()
                .render(context! { v => "<a href='x'>&</a>" })
                .unwrap();
            assert_eq!(out, "<a href='x'>&</a>", "template {name}");
        }
        // keep_trailing_newline applies to added templates as well.
        env.add_template("t.txt", "{{ v }}\n").unwrap();
        let out = env
            .get_template("t.txt")
            .unwrap()
            .render(context! { v => 1 })
            .unwrap();
        assert_eq!(out, "1\n");
    }

    #[test]
    fn fuel_stops_runaway_templates() {
        let e = render_err("{% for i in range(100000000) %}{% endfor %}", context! {});
        assert!(matches!(
            e.kind(),
            ErrorKind::InvalidOperation | ErrorKind::OutOfFuel
        ));
        let e = render_err(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            context! {},
        );
        assert_eq!(e.kind(), ErrorKind::OutOfFuel);
        let e = render_err(
            "{% set s = namespace(x='a') %}{% for i in range(100000) %}{% set s.x = s.x ~ s.x %}{% endfor %}",
            context! {},
        );
        assert!(matches!(
            e.kind(),
            ErrorKind::OutOfFuel | ErrorKind::InvalidOperation
        ));
        // A normal loop stays well within the budget.
        assert_eq!(r("{% for i in range(1000) %}{% endfor %}ok"), "ok");
    }

    #[test]
    fn recursion_is_limited() {
        let e = render_err(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            context! {},
        );
        assert_eq!(e.kind(), ErrorKind::InvalidOperation);
    }

    #[test]
    fn slugify_filter() {
        assert_eq!(r("{{ 'Hello World'|slugify }}"), "hello-world");
        assert_eq!(
            r("{{ '2026-11-27T17:23:49.679977+00:00'|slugify }}"),
            "2026-11-27t1723496799770000"
        );
        assert_eq!(
            r("{{ '  Crème brûlée -- à la_carte! '|slugify }}"),
            "creme-brulee-a-la_carte"
        );
        assert_eq!(r("{{ '__x__'|slugify }}"), "x");
        assert_eq!(r("{{ 'ｆｕｌｌ width'|slugify }}"), "full-width");
        assert_eq!(r("{{ 42|slugify }}"), "42");
    }

    #[test]
    fn truncate_words_filter() {
        assert_eq!(
            r("{{ 'one two  three four'|truncate_words(2) }}"),
            "one two..."
        );
        assert_eq!(
            r("{{ 'one two three'|truncate_words(2, end=' [more]') }}"),
            "one two [more]"
        );
        assert_eq!(r("{{ 'one  two'|truncate_words(5) }}"), "one two");
        assert_eq!(r("{{ 'one two'|truncate_words(2) }}"), "one two");
    }

    #[test]
    fn regex_filters() {
        assert_eq!(r("{{ 'abc123def'|regex_search('[0-9]+') }}"), "123");
        assert_eq!(r("{{ 'abc'|regex_search('[0-9]+') }}"), "None");
        assert_eq!(
            r("{{ 'key=val'|regex_search('(\\\\w+)=(\\\\w+)', 2) }}"),
            "val"
        );
        assert_eq!(
            r("{{ 'key=val'|regex_search('(?P<k>\\\\w+)=', group='k') }}"),
            "key"
        );
        assert_eq!(r("{{ 'a1b22c'|regex_replace('[0-9]+', '#') }}"), "a#b#c");
        assert_eq!(
            r("{{ 'a1b22c'|regex_replace('[0-9]+', '#', 1) }}"),
            "a#b22c"
        );
        assert_eq!(
            r("{{ 'a1b22c'|regex_replace('[0-9]+', '#', count=1) }}"),
            "a#b22c"
        );
        assert_eq!(
            r(r"{{ 'john smith'|regex_replace('(\\w+) (\\w+)', '\\2, \\1') }}"),
            "smith, john"
        );
        assert_eq!(
            r(r"{{ 'john smith'|regex_replace('(\\w+) (\\w+)', '\\g<2> \\g<1>') }}"),
            "smith john"
        );
        assert_eq!(
            r(
                r"{{ 'john smith'|regex_replace('(?P<first>\\w+) (?P<last>\\w+)', '\\g<last>!\\g<first>') }}"
            ),
            "smith!john"
        );
        assert_eq!(
            r(r"{{ 'a.b'|regex_replace('\\.', '$1 \\\\ \\n') }}"),
            "a$1 \\ \nb"
        );
        assert_eq!(r(r"{{ 'ab'|regex_replace('(x)?b', '[\\1]') }}"), "a[]");
        assert_eq!(r(r"{{ 'ab'|regex_replace('b\\Z', 'c') }}"), "ac");
        assert_eq!(r("{{ 'abxd'|regex_replace('x*', '-') }}"), "-a-b--d-");
        assert_eq!(
            r("{{ 'aXbX'|regex_replace('x', '_', 5) }}|{{ 'é1é'|regex_replace('\\\\d', '') }}"),
            "aXbX|éé"
        );
        let e = render_err("{{ 'x'|regex_replace('(unclosed', 'y') }}", context! {});
        assert!(e.to_string().contains("(unclosed"), "{e}");
        let e = render_err("{{ 'x'|regex_search('[bad') }}", context! {});
        assert!(e.to_string().contains("[bad"), "{e}");
        let e = render_err(r"{{ 'x'|regex_replace('x', '\\3') }}", context! {});
        assert!(e.to_string().contains("invalid group reference"), "{e}");
    }

    #[test]
    fn json_filters() {
        let ctx =
            json_ctx(r#"{"v": {"b": 1, "a": [1.0, 2.5, null, true, "é\"\n"], "e": {}, "l": []}}"#);
        assert_eq!(
            render("{{ v|tojson }}", ctx.clone()),
            r#"{"a": [1.0, 2.5, null, true, "\u00e9\"\n"], "b": 1, "e": {}, "l": []}"#
        );
        assert_eq!(
            r("{{ {'b': \"<it's & é>\", 'a': {'z': 1, 'y': 2}}|tojson(indent=1) }}"),
            "{\n \"a\": {\n  \"y\": 2,\n  \"z\": 1\n },\n \"b\": \"\\u003cit\\u0027s \\u0026 \\u00e9\\u003e\"\n}"
        );
        assert_eq!(
            render("{{ v|to_json }}", ctx.clone()),
            r#"{"b": 1, "a": [1.0, 2.5, null, true, "\u00e9\"\n"], "e": {}, "l": []}"#
        );
        assert_eq!(
            render("{{ v|to_json(indent=2) }}", ctx.clone()),
            "{\n  \"b\": 1,\n  \"a\": [\n    1.0,\n    2.5,\n    null,\n    true,\n    \"\\u00e9\\\"\\n\"\n  ],\n  \"e\": {},\n  \"l\": []\n}"
        );
        assert_eq!(
            render("{{ v|json_encode }}", ctx.clone()),
            render("{{ v|json }}", ctx)
        );
        assert_eq!(r("{{ '😀'|to_json }}"), r#""\ud83d\ude00""#);
        assert_eq!(
            r("{{ {'x': 1e16, 'n': none}|to_json }}"),
            r#"{"x": 1e+16, "n": null}"#
        );
        let ctx = context! { n => f64::NAN, i => f64::NEG_INFINITY };
        assert_eq!(render("{{ [n, i]|to_json }}", ctx), "[NaN, -Infinity]");
        assert_eq!(r("{{ [1, [2]]|to_json(1) }}"), "[\n 1,\n [\n  2\n ]\n]");
        assert_eq!(r("{{ {1: 'a'}|to_json }}"), r#"{"1": "a"}"#);
        assert_eq!(r("{{ '\u{7f}'|to_json }}"), r#""\u007f""#);
        assert_eq!(r("{{ [1, 'a']|tojson }}"), "[1, \"a\"]");
    }

    #[test]
    fn from_json_filter() {
        assert_eq!(
            r(r#"{{ '{"b": [1, 2.0, "x"], "a": null}'|from_json }}"#),
            "{'b': [1, 2.0, 'x'], 'a': None}"
        );
        assert_eq!(r(r#"{{ ('{"a": {"b": 3}}'|from_json).a.b }}"#), "3");
        let e = render_err("{{ '{bad'|from_json }}", context! {});
        assert!(e.to_string().contains("key must be a string"), "{e}");
    }

    #[test]
    fn date_filter() {
        assert_eq!(r("{{ '2024-03-05T14:07:09Z'|date }}"), "2024-03-05");
        assert_eq!(
            r("{{ '2024-03-05T14:07:09.123456+02:00'|date('%Y/%m/%d %H:%M:%S.%f %z %Z') }}"),
            "2024/03/05 14:07:09.123456 +0200 UTC+02:00"
        );
        assert_eq!(
            r("{{ '2024-03-05T14:07:09Z'|date('%H:%M %Z') }}"),
            "14:07 UTC"
        );
        assert_eq!(
            r("{{ '2024-03-05 14:07'|date(format='%d.%m.%Y %H:%M[%z]') }}"),
            "05.03.2024 14:07[]"
        );
        assert_eq!(
            r("{{ '2024-03-05'|date('%A %B %-d, %j %%') }}"),
            "Tuesday March 5, 065 %"
        );
        assert_eq!(
            r("{{ 0|date('%Y-%m-%dT%H:%M:%S') }}"),
            "1970-01-01T00:00:00"
        );
        assert_eq!(
            r("{{ 1700000000.5|date('%H:%M:%S.%f') }}"),
            "22:13:20.500000"
        );
        let year = r("{{ 'now'|date('%Y') }}");
        assert_eq!(year.len(), 4);
        assert!(year.parse::<i32>().unwrap() >= 2024);
        let e = render_err("{{ 'yesterday-ish'|date }}", context! {});
        assert!(e.to_string().contains("yesterday-ish"), "{e}");
    }

    #[test]
    fn path_filters() {
        assert_eq!(r("{{ 'a/b/c.txt'|basename }}"), "c.txt");
        assert_eq!(r("{{ 'a/b/'|basename }}"), "");
        assert_eq!(r("{{ 'file'|basename }}"), "file");
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let ctx = context! { p => manifest };
        assert_eq!(render("{{ p|file_exists }}", ctx), "True");
        assert_eq!(r("{{ '/definitely/not/here'|file_exists }}"), "False");
        assert_eq!(r("{{ ''|file_exists }}"), "False");
    }

    #[test]
    fn split_and_join() {
        assert_eq!(r("{{ '  a b\t c  '|split }}"), "['a', 'b', 'c']");
        assert_eq!(r("{{ 'a,b,,c'|split(',') }}"), "['a', 'b', '', 'c']");
        assert_eq!(r("{{ 'a,b,c'|split(',', 1) }}"), "['a', 'b,c']");
        assert_eq!(r("{{ '  a b  c '|split(none, 1) }}"), "['a', 'b  c ']");
        assert_eq!(r("{{ 'a b c'|split(maxsplit=1) }}"), "['a', 'b c']");
        assert_eq!(r("{{ ''|split }}"), "[]");
        assert_eq!(
            r("{{ [1, 'a', true, none, 1.0]|join }}"),
            "1, a, True, None, 1.0"
        );
        assert_eq!(r("{{ ['a', 'b']|join('-') }}"), "a-b");
        assert_eq!(r("{{ ['a', 'b']|join(d='') }}"), "ab");
        assert_eq!(
            r("{{ [[1, 2], {'k': 'v'}]|join(' | ') }}"),
            "[1, 2] | {'k': 'v'}"
        );
        assert_eq!(
            r("{{ [{'n': {'x': 'p'}}, {'n': {'x': 'q'}}]|join(attribute='n.x') }}"),
            "p, q"
        );
        assert_eq!(r("{{ 'abc'|join('.') }}"), "a.b.c");
    }

    #[test]
    fn number_filters() {
        assert_eq!(
            r("{{ 42|int }}|{{ 3.9|int }}|{{ -3.9|int }}|{{ '3.7'|int }}|{{ ' 12 '|int }}"),
            "42|3|-3|3|12"
        );
        assert_eq!(
            r("{{ 'abc'|int }}|{{ 'abc'|int(7) }}|{{ none|int(default=-1) }}|{{ true|int }}"),
            "0|7|-1|1"
        );
        assert_eq!(
            r("{{ '1_000'|int }}|{{ 'ff'|int(base=16) }}|{{ 'nan'|int }}"),
            "1000|255|0"
        );
        // As Python's int() and float(): `_` may follow a radix prefix, not
        // stand before a `.`; two signs make no number; \x1c is not stripped.
        assert_eq!(
            r("{{ '0x_ff'|int(base=16) }}|{{ '--5'|int }}|{{ '1_.5'|float }}"),
            "255|0|0.0"
        );
        assert_eq!(render("{{ t|int(7) }}", context! { t => "\u{1c}5" }), "7");
        assert_eq!(
            r(
                "{{ '2.5'|float }}|{{ 3|float }}|{{ 'x'|float }}|{{ 'x'|float(1.5) }}|{{ '1e3'|float }}"
            ),
            "2.5|3.0|0.0|1.5|1000.0"
        );
        assert_eq!(
            r("{{ 2.5|round }}|{{ 3.5|round }}|{{ -2.5|round }}|{{ 2.6|round }}|{{ 7|round }}"),
            "2|4|-2|3|7"
        );
        assert_eq!(
            r("{{ 2.675|round(2) }}|{{ 0.125|round(2) }}|{{ 0.375|round(2) }}|{{ 1.0|round(1) }}"),
            "2.67|0.12|0.38|1.0"
        );
        assert_eq!(
            r(
                "{{ 1250.0|round(-2) }}|{{ 1350|round(-2) }}|{{ 1250|round(-2) }}|{{ 3.14159|round(ndigits=3) }}"
            ),
            "1200.0|1400|1200|3.142"
        );
        assert!(env().render_str("{{ 'x'|round }}", ()).is_err());
    }

    #[test]
    fn last_filter() {
        assert_eq!(r("{{ [1, 2, 3]|last }}"), "3");
        assert_eq!(r("{{ []|last }}"), "None");
        assert_eq!(r("{{ 'abc'|last }}"), "c");
        assert_eq!(r("{{ ''|last }}"), "None");
    }

    #[test]
    fn format_filter_percent() {
        assert_eq!(r("{{ '%s-%d'|format('a', 7) }}"), "a-7");
        assert_eq!(r("{{ '%i|%d'|format(3.9, true) }}"), "3|1");
        assert_eq!(
            r("{{ '%f|%.2f|%.0f'|format(1.5, 2.675, 0.5) }}"),
            "1.500000|2.67|0"
        );
        assert_eq!(r("{{ '%r|%s'|format('x', 'x') }}"), "'x'|x");
        assert_eq!(r("{{ '100%%: %s'|format(none) }}"), "100%: None");
        assert_eq!(
            r(
                "{{ '%5s|%-5s|%05d|%+d|%x|%#o|%e|%g|%g'|format('a', 'b', 42, 3, 255, 8, 12345.678, 0.00001, 123456789.0) }}"
            ),
            "    a|b    |00042|+3|ff|0o10|1.234568e+04|1e-05|1.23457e+08"
        );
        assert_eq!(r("{{ '%s'|format([1, 'a']) }}"), "[1, 'a']");
        assert_eq!(
            r("{{ '%(a)s=%(b)05.1f'|format(a='x', b=2.25) }}"),
            "x=002.2"
        );
        assert_eq!(r("{{ '%.3s|%c|%c'|format('abcdef', 65, 'z') }}"), "abc|A|z");
        assert_eq!(r("{{ 'no directives'|format }}"), "no directives");
        assert!(env().render_str("{{ '%s %s'|format(1) }}", ()).is_err());
        assert!(env().render_str("{{ '%s'|format(1, 2) }}", ()).is_err());
        assert!(env().render_str("{{ '%d'|format('x') }}", ()).is_err());
    }

    #[test]
    fn format_filter_str_format() {
        assert_eq!(r("{{ '{}-{}'|format('a', 1) }}"), "a-1");
        assert_eq!(r("{{ '{1}{0}'|format('a', 'b') }}"), "ba");
        assert_eq!(r("{{ 'Hi {name}!'|format(name='Bob') }}"), "Hi Bob!");
        assert_eq!(
            r("{{ '{:.2f}|{:>5}|{:<4}|{:^7}|{:05d}'|format(3.14159, 'x', 'y', 'mid', 42) }}"),
            "3.14|    x|y   |  mid  |00042"
        );
        assert_eq!(
            r("{{ '{:,}|{:_}|{:,.2f}|{:.1%}'|format(1234567, 1000, 1234.5, 0.256) }}"),
            "1,234,567|1_000|1,234.50|25.6%"
        );
        assert_eq!(
            r("{{ '{!r}|{}|{}|{}'|format('q', true, none, 1.0) }}"),
            "'q'|True|None|1.0"
        );
        assert_eq!(r("{{ '{{literal}} {}'|format(5) }}"), "{literal} 5");
        assert_eq!(r("{{ '{0[k]}|{1[1]}'|format({'k': 'v'}, [7, 8]) }}"), "v|8");
        assert!(
            env()
                .render_str("{{ '{0.k}'|format({'k': 'v'}) }}", ())
                .is_err()
        );
        assert_eq!(
            r("{{ '{:#x}|{:b}|{:+.3e}|{:.3}|{:g}'|format(255, 5, 12345.6789, 2.0, 1e-7) }}"),
            "0xff|101|+1.235e+04|2.0|1e-07"
        );
        assert_eq!(r("{{ '{:{w}}|'|format('ab', w=4) }}"), "ab  |");
        assert!(env().render_str("{{ '{} {}'|format(1) }}", ()).is_err());
        assert!(env().render_str("{{ '{x}'|format(1) }}", ()).is_err());
    }

    #[test]
    fn format_widths_and_output_are_bounded() {
        // Widths and precisions up to the limit work as in Python.
        assert_eq!(r("{{ '%010000d'|format(1) }}").len(), 10_000);
        assert_eq!(r("{{ '{:>10000}'|format('x') }}").len(), 10_000);
        for src in [
            "{{ '%01500000000d'|format(1) }}",
            "{{ '%.20000f'|format(1.5) }}",
            "{{ '%*d'|format(20000, 1) }}",
            "{{ '{:01500000000d}'|format(1) }}",
            "{{ '{:.20000f}'|format(1.5) }}",
            "{{ '{:{w}}'|format('x', w=20000) }}",
        ] {
            let e = render_err(src, context! {});
            assert!(e.to_string().contains("at most 10000"), "{src}: {e}");
        }
        // Repeating a long argument is refused once the result passes 16 MiB.
        let long = "x".repeat(1 << 20);
        let e = render_err("{{ ('{0}' * 20)|format(s) }}", context! { s => long });
        assert!(e.to_string().contains("16 MiB"), "{e}");
        let e = render_err(
            "{{ x|to_json(indent=1000000000000) }}",
            context! { x => [1] },
        );
        assert!(e.to_string().contains("indent"), "{e}");
    }

    /// Found with the `template_render` fuzz target, given these inputs by hand (its seeds
    /// `bomb_join`, `bomb_regex_replace`): a long separator between many items, or a long
    /// replacement of many matches, made gigabytes inside the filter, before any limit on the
    /// render's output could see them.
    #[test]
    fn join_and_regex_replace_give_at_most_16_mib() {
        for src in [
            "{{ range(100000) | join('y' * 100000) }}",
            "{{ s | regex_replace('', 'y' * 100000) }}",
            "{{ [s, s] | join }}",
        ] {
            let long = "x".repeat(10 << 20);
            let e = render_err(src, context! { s => long });
            assert!(e.to_string().contains("longer than 16 MiB"), "{src}: {e}");
        }
        // Below the bound both work as before.
        assert_eq!(r("{{ range(3) | join('-') }}"), "0-1-2");
        assert_eq!(r("{{ 'abc' | regex_replace('', '.') }}"), ".a.b.c.");
    }

    /// Found by the `template_render` fuzz target in CI (its seed `timeout_regex_replace`): an
    /// empty pattern over ten million characters is ten million matches, which took longer
    /// than the fuzzer's 10 s limit. At most a million are replaced, and a replacement that
    /// reads no group finds no groups.
    #[test]
    fn regex_replace_stops_at_a_million_matches() {
        let e = render_err(
            r#"{{ ("x" * 10000000) | regex_replace("", "y" *0) }}"#,
            context! {},
        );
        assert!(e.to_string().contains("more than 1000000 matches"), "{e}");
        let under = r#"{{ ("x" * 999999) | regex_replace("", "") | length }}"#;
        assert_eq!(r(under), "999999");
        assert_eq!(r("{{ 'a1b22' | regex_replace('\\d+', '#') }}"), "a#b#");
    }

    #[test]
    fn builtins_still_work() {
        let ctx = json_ctx(
            r#"{"xs": [3, 1, 2, 1], "d": {"b": 2, "a": 1}, "people": [{"n": "a", "ok": true}, {"n": "b", "ok": false}]}"#,
        );
        let cases = [
            ("{{ 'aBc'|upper }}|{{ 'aBc'|lower }}", "ABC|abc"),
            (
                "{{ none|default('x') }}|{{ missing|default('y') }}|{{ ''|default('z', true) }}",
                "None|y|z",
            ),
            (
                "{{ 'hello world'|truncate(9) }}|{{ 'hello big world'|truncate(9) }}",
                "hello world|hello...",
            ),
            (
                "{{ 'hello big world'|truncate(9, true) }}|{{ 'abcdefghijklmnop'|truncate(5, leeway=0) }}",
                "hello ...|ab...",
            ),
            (
                "{{ 'aXbX'|replace('X', '-') }}|{{ '  t  '|trim }}",
                "a-b-|t",
            ),
            (
                "{{ 'hello world'|title }}|{{ 'hello world'|capitalize }}|{{ 'a b c'|wordcount }}",
                "Hello World|Hello world|3",
            ),
            (
                "{{ xs|sort }}|{{ xs|unique|list }}|{{ xs|length }}",
                "[1, 1, 2, 3]|[3, 1, 2]|4",
            ),
            (
                "{{ people|map(attribute='n')|list }}|{{ people|selectattr('ok')|map(attribute='n')|join }}",
                "['a', 'b']|a",
            ),
            (
                "{{ xs|select('odd')|list }}|{{ -3|abs }}|{{ xs|first }}|{{ xs|reverse|list }}",
                "[3, 1, 1]|3|3|[1, 2, 1, 3]",
            ),
            (
                "{{ d|items|list }}|{{ d|dictsort }}",
                "[('b', 2), ('a', 1)]|[('a', 1), ('b', 2)]",
            ),
            (
                "{{ 'abc'|list }}|{{ d|tojson }}",
                "['a', 'b', 'c']|{\"a\": 1, \"b\": 2}",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(render(src, ctx.clone()), want, "template {src}");
        }
    }
}
