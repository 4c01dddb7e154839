//! Input loading: files, format sniffing, CSV parsing and turning values into tables.

use crate::ToolFailure;
use crate::params::{Params, describe, invalid, lookup, missing, str_value};
use crate::value::{Row, Table, parse_number_text};
use serde_json::{Map, Value};
use std::path::Path;

/// The text format of string input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Try JSON, JSON Lines, Python literal, then CSV.
    Auto,
    /// JSON, with the Python-literal fallback.
    Json,
    /// One JSON value per line.
    Jsonl,
    /// Delimited text with a header row.
    Csv,
}

impl Format {
    fn from_name(name: &str, param: &str) -> Result<Self, ToolFailure> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Format::Auto),
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" | "json_lines" => Ok(Format::Jsonl),
            "csv" | "tsv" => Ok(Format::Csv),
            other => Err(invalid(
                param,
                format!("unsupported format `{other}` (expected one of: json, csv, jsonl, auto)"),
            )),
        }
    }

    /// The format a file's extension implies (`auto` when it implies none).
    pub(crate) fn from_extension(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Format::Json,
            Some("csv" | "tsv") => Format::Csv,
            Some("jsonl" | "ndjson") => Format::Jsonl,
            _ => Format::Auto,
        }
    }
}

/// A loaded input value.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The parameter it came from.
    pub(crate) name: String,
    /// The parsed value.
    pub(crate) value: Value,
}

/// The `format`/`input_format` parameter.
pub(crate) fn input_format(params: &Params) -> Result<Format, ToolFailure> {
    match lookup(params, &["format", "input_format"]) {
        Some((name, v)) => Format::from_name(str_value(v, name)?, name),
        None => Ok(Format::Auto),
    }
}

/// Loads `data` (or `input_data`).
pub(crate) fn load_data(params: &Params) -> Result<Loaded, ToolFailure> {
    let (name, v) = lookup(params, &["data", "input_data"]).ok_or_else(|| missing("data"))?;
    load(v, name, input_format(params)?)
}

/// Loads `data` (or `input_data`) as a table.
pub(crate) fn load_table(params: &Params) -> Result<Table, ToolFailure> {
    let loaded = load_data(params)?;
    to_table(loaded.value, &loaded.name)
}

/// Loads one input value: strings are files or text, other values are used as is.
pub(crate) fn load(v: &Value, name: &str, format: Format) -> Result<Loaded, ToolFailure> {
    match v {
        Value::String(s) => load_string(s, name, format),
        other => Ok(Loaded {
            name: name.to_string(),
            value: other.clone(),
        }),
    }
}

/// Whether a string could name a file (one line, not starting like JSON or a literal).
pub(crate) fn looks_like_path(s: &str) -> bool {
    let t = s.trim_start();
    !s.is_empty()
        && s.len() <= 4096
        && !s.contains('\n')
        && !t.starts_with(['{', '[', '(', '"', '\''])
}

fn load_string(s: &str, name: &str, format: Format) -> Result<Loaded, ToolFailure> {
    if looks_like_path(s) {
        let path = Path::new(s);
        if path.is_file() {
            let bytes = std::fs::read(path).map_err(|source| ToolFailure::Io {
                name: name.to_string(),
                path: s.to_string(),
                source,
            })?;
            let text = String::from_utf8(bytes).map_err(|_| ToolFailure::Unparseable {
                name: name.to_string(),
                formats: "text",
                reason: format!("file `{s}` is not UTF-8"),
            })?;
            let format = if format == Format::Auto {
                Format::from_extension(path)
            } else {
                format
            };
            return parse_text(&text, name, format).map_err(|e| match e {
                ToolFailure::Unparseable {
                    name,
                    formats,
                    reason,
                } => ToolFailure::Unparseable {
                    name,
                    formats,
                    reason: format!("file `{s}`: {reason}"),
                },
                other => other,
            });
        }
    }
    parse_text(s, name, format)
}

fn unparseable(name: &str, formats: &'static str, reason: impl Into<String>) -> ToolFailure {
    ToolFailure::Unparseable {
        name: name.to_string(),
        formats,
        reason: reason.into(),
    }
}

/// Parses text in the given format (or sniffs it).
pub(crate) fn parse_text(text: &str, name: &str, format: Format) -> Result<Loaded, ToolFailure> {
    let text = text.trim_start_matches('\u{feff}');
    let loaded = |value: Value| Loaded {
        name: name.to_string(),
        value,
    };
    match format {
        Format::Json => match serde_json::from_str::<Value>(text) {
            Ok(v) => Ok(loaded(v)),
            Err(json_err) => orc_pycompat::literal::parse(text)
                .map(loaded)
                .map_err(|py| {
                    unparseable(
                        name,
                        "JSON",
                        format!("{json_err}; as a Python literal: {py}"),
                    )
                }),
        },
        Format::Jsonl => parse_jsonl(text)
            .map(loaded)
            .map_err(|e| unparseable(name, "JSON Lines", e)),
        Format::Csv => parse_csv(text)
            .map(|t| loaded(crate::value::table_value(t)))
            .map_err(|e| unparseable(name, "CSV", e)),
        Format::Auto => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err(unparseable(name, "JSON or CSV", "the text is empty"));
            }
            let json_err = match serde_json::from_str::<Value>(trimmed) {
                Ok(v) => return Ok(loaded(v)),
                Err(e) => e,
            };
            let lines: Vec<&str> = trimmed.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() > 1
                && lines.iter().all(|l| l.trim_start().starts_with(['{', '[']))
                && let Ok(v) = parse_jsonl(trimmed)
            {
                return Ok(loaded(v));
            }
            let py_err = match orc_pycompat::literal::parse(trimmed) {
                Ok(v) => return Ok(loaded(v)),
                Err(e) => e,
            };
            if trimmed.starts_with(['{', '[', '(']) {
                return Err(unparseable(
                    name,
                    "JSON or CSV",
                    format!("invalid JSON ({json_err}); invalid Python literal ({py_err})"),
                ));
            }
            match parse_csv(text) {
                Ok(table) => {
                    let cols = crate::value::columns(&table).len();
                    if table.is_empty() && cols < 2 {
                        Err(unparseable(
                            name,
                            "JSON or CSV",
                            format!(
                                "invalid JSON ({json_err}); not CSV either (one line with no delimiter)"
                            ),
                        ))
                    } else {
                        Ok(loaded(crate::value::table_value(table)))
                    }
                }
                Err(csv_err) => Err(unparseable(
                    name,
                    "JSON or CSV",
                    format!("invalid JSON ({json_err}); invalid CSV ({csv_err})"),
                )),
            }
        }
    }
}

fn parse_jsonl(text: &str) -> Result<Value, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str::<Value>(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(v);
    }
    Ok(Value::Array(out))
}

/// The delimiters the CSV sniffer chooses among, in order of preference on a tie.
pub(crate) const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];

/// How many of each of [`DELIMITERS`] one line holds outside double quotes.
pub(crate) type DelimiterCounts = [usize; DELIMITERS.len()];

/// Counts each delimiter outside double quotes in one line.
fn count_outside_quotes(line: &str) -> DelimiterCounts {
    let mut counts = [0; DELIMITERS.len()];
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|d| char::from(*d) == c) {
            counts[i] += 1;
        }
    }
    counts
}

/// The number of non-blank lines the sniffer looks at.
pub(crate) const SNIFF_LINES: usize = 10;

/// Picks the delimiter whose count is consistent (and highest) over the first lines.
pub(crate) fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<DelimiterCounts> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(SNIFF_LINES)
        .map(count_outside_quotes)
        .collect();
    pick_delimiter(&lines)
}

/// Picks the delimiter from the counts of the first non-blank lines (the
/// header first): one present in the header, preferring a count that is the
/// same on every line, then the highest count; `,` when none is present.
pub(crate) fn pick_delimiter(lines: &[DelimiterCounts]) -> u8 {
    let Some(header) = lines.first() else {
        return b',';
    };
    let mut best: Option<(bool, usize, u8)> = None;
    for (i, delim) in DELIMITERS.iter().enumerate() {
        let count = header[i];
        if count == 0 {
            continue;
        }
        let consistent = lines.iter().all(|l| l[i] == count);
        let candidate = (consistent, count, *delim);
        if best.is_none_or(|b| (candidate.0, candidate.1) > (b.0, b.1)) {
            best = Some(candidate);
        }
    }
    best.map_or(b',', |b| b.2)
}

/// A CSV cell: empty → null, numbers, booleans, else the trimmed text.
pub(crate) fn cell_value(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    if let Some(n) = parse_number_text(s) {
        return n;
    }
    if s.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if s.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    Value::String(s.to_string())
}

/// The CSV reader configuration every CSV input uses (text and streamed files).
pub(crate) fn csv_builder(delimiter: u8) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All);
    builder
}

/// Column names from a header record: an empty name becomes `column_<n>`, a
/// repeated one gets a `_2`, `_3`, ... suffix.
pub(crate) fn header_names(headers: &csv::StringRecord) -> Result<Vec<String>, String> {
    if headers.is_empty() {
        return Err("no header row".to_string());
    }
    let mut names: Vec<String> = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let base = if h.is_empty() {
            format!("column_{}", i + 1)
        } else {
            h.to_string()
        };
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        names.push(name);
    }
    Ok(names)
}

/// Parses CSV with a sniffed delimiter and a header row.
pub(crate) fn parse_csv(text: &str) -> Result<Table, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv_builder(sniff_delimiter(text)).from_reader(text.as_bytes());
    let names = header_names(reader.headers().map_err(|e| e.to_string())?)?;
    let mut table = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let row: Row = names
            .iter()
            .zip(record.iter())
            .map(|(n, cell)| (n.clone(), cell_value(cell)))
            .collect();
        table.push(row);
    }
    Ok(table)
}

/// Turns a value into a table (see the crate docs for the rules).
pub(crate) fn to_table(value: Value, name: &str) -> Result<Table, ToolFailure> {
    let mut value = value;
    for _ in 0..8 {
        match value {
            Value::Object(mut map) => {
                if map.contains_key("result") && map.contains_key("success") {
                    value = map.remove("result").unwrap_or(Value::Null);
                    continue;
                }
                if let Some(inner) = dataset_member(&mut map, name)? {
                    value = inner;
                    continue;
                }
                return Ok(vec![map]);
            }
            Value::Array(items) => return array_table(items, name),
            Value::Null => {
                return Err(invalid(
                    name,
                    "expected a table (a list of records), got null",
                ));
            }
            other => {
                return Err(invalid(
                    name,
                    format!(
                        "expected a table (a list of records), got {}",
                        describe(&other)
                    ),
                ));
            }
        }
    }
    Err(invalid(name, "too many nested dataset wrappers"))
}

/// The rows inside a dataset wrapper object, if it is one.
fn dataset_member(map: &mut Map<String, Value>, name: &str) -> Result<Option<Value>, ToolFailure> {
    if let Some(Value::Array(_)) = map.get("data") {
        return Ok(map.remove("data"));
    }
    if let Some(Value::String(text)) = map.get("data") {
        let format = match map.get("format").and_then(Value::as_str) {
            Some(f) => Format::from_name(f, &format!("{name}.format"))?,
            None => Format::Auto,
        };
        let loaded = parse_text(text, &format!("{name}.data"), format)?;
        return Ok(Some(loaded.value));
    }
    for key in ["records", "rows"] {
        if let Some(Value::Array(items)) = map.get(key)
            && items.iter().all(Value::is_object)
        {
            return Ok(map.remove(key));
        }
    }
    Ok(None)
}

fn array_table(items: Vec<Value>, name: &str) -> Result<Table, ToolFailure> {
    let objects = items.iter().filter(|v| v.is_object()).count();
    if objects == items.len() {
        return Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect());
    }
    if objects == 0 {
        return Ok(items
            .into_iter()
            .map(|v| {
                let mut row = Map::new();
                row.insert("value".to_string(), v);
                row
            })
            .collect());
    }
    let (i, bad) = items
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_object())
        .unwrap_or((0, &Value::Null));
    Err(invalid(
        name,
        format!(
            "mixes records with other values: element {i} is {}",
            describe(bad)
        ),
    ))
}
