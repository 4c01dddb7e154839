//! Built-in data tools for orc: `data-processing` and `validation`.
//!
//! A pipeline step calls a tool with an `action` and a JSON object of already
//! rendered parameters. [`data_processing`] and [`validation`] run one action
//! and return either the tool's `result` value or a [`ToolFailure`] whose
//! message names the offending parameter. An operation that fails is always an
//! `Err`: unlike the earlier Python tool, nothing reports success on failure.
//!
//! # Input loading (`data`, or its alias `input_data`)
//! * A JSON value is used as is. An array of objects is a table; an array of
//!   scalars becomes rows `{"value": x}`; an object is one record, unless it is
//!   a dataset wrapper: `{"data" | "records" | "rows": [...]}` (so one step's
//!   result can feed the next) or an engine envelope `{"result": .., "success": ..}`.
//!   A wrapper whose `data` is a string (the result of `convert`) is parsed,
//!   honouring its `format` member.
//! * A string naming an existing file (one line, not starting with `{`/`[`) is
//!   read; its format comes from `format`/`input_format`, else the extension
//!   (`.json`, `.csv`, `.tsv`, `.jsonl`, `.ndjson`), else sniffing.
//! * Any other string is parsed as JSON, then JSON Lines, then a Python literal
//!   (single quotes, `True`/`False`/`None`, tuples, sets), then CSV. Text that
//!   starts with `{`, `[` or `(` is never taken as CSV.
//! * CSV: the delimiter is sniffed among `,` `\t` `;` `|`; the first row is the
//!   header; cells are trimmed; empty cells become `null`; numeric-looking
//!   cells become numbers (except integers with a leading zero such as `007`,
//!   which stay strings); `true`/`false` (any case) become booleans. Text
//!   that is a single line with a single column is rejected as not CSV.
//! * `format`/`input_format` (`json`, `csv`, `jsonl`, `auto`) forces the text
//!   format of string input.
//!
//! # Large files
//! `aggregate` and `filter` read a file named by `data` one record at a time
//! when the file is CSV: its format is `csv` (given, or from a `.csv`/`.tsv`
//! extension), or it is sniffed and does not start like JSON, JSON Lines or a
//! Python literal (sniffed text that turns out to have no records, or might
//! still be a bare literal such as `-5`, is then loaded whole). Memory grows
//! with the groups (or the matching rows), not with the file; [`Limits`]
//! bounds the read buffer. The result is the same as for the file loaded
//! whole, aggregation errors included. Other errors differ in two ways: a
//! malformed record names the file and its line (file `x.csv` line 12: ...),
//! and a bad parameter or unknown field is reported once the header and the
//! first record are read, before a malformed record further on. `transform`,
//! the other actions and the other formats load the input whole.
//!
//! Field names used by an action (`group_by`, aggregation fields, `criteria`
//! fields, `by`, `fields`, `join_on`, ...) must exist in at least one row of a
//! non-empty table; a typo is an error instead of an empty result.
//!
//! # `data-processing` actions and result shapes
//! * `convert {data, output_format: json|csv}` →
//!   `{"data": text, "format": f, "rows": n, "columns": [..], "records": [rows]}`.
//!   JSON output is pretty-printed (two spaces); CSV cells holding arrays or
//!   objects are written as compact JSON, `null` as an empty cell.
//! * `filter {data, criteria | operation: {criteria}}` → `{"data": [rows], "count": n}`.
//!   Criteria map a field to a value (equality) or to operators
//!   `eq ne gt gte lt lte in not_in contains matches exists` (also spelled
//!   `$gt`, `>`, `>=`, `<`, `<=`, `==`, `!=`), all of which must hold. Equality
//!   compares numbers numerically and a numeric string equals the number it
//!   spells; a missing field is `null`.
//! * `aggregate {data, group_by?, aggregations}` → `{"data": [row per group], "groups": n}`.
//!   Aggregations are `"op:field"`, `"count"` or `{"op": .., "field": ..}` with
//!   ops `count sum mean avg min max first last count_distinct`. Without
//!   `group_by` there is exactly one group; without `aggregations` but with
//!   `group_by`, `{"count": "count"}` is used. Nulls are skipped; `sum` of
//!   integers stays an integer; a non-numeric value in `sum`/`mean` is an error.
//! * `transform {data, operations: [{type, ..}]}` → `{"data": [rows], "count": n, "operations": k}`.
//!   Types: `filter {criteria}`, `aggregate {group_by, aggregations}`,
//!   `select {fields}`, `drop {fields}`, `rename {mapping}`,
//!   `sort {by, descending}` (nulls last), `limit {n}`, and
//!   `compute {field, expression | value}` where the expression is arithmetic
//!   (`+ - * / %`, parentheses, numbers, field names, `` `quoted field` ``);
//!   a null operand or division by zero gives `null`.
//!   py-orc's steps too: `deduplicate {columns?, keep: first|last}`,
//!   `cast {columns: {name: integer|float|string|boolean|date|datetime}}` (a value
//!   that does not convert is an error), `fill_missing {strategy: {name: value}}`,
//!   `calculate {expressions: {name: arithmetic | DATE_FORMAT(field, '%Y-%m')}}` and
//!   `filter {condition: "status != 'cancelled'"}` (comparisons joined by `and`).
//! * `aggregate`, `transform` and `pivot` take `output_format: json|csv`: their
//!   `data` is the rows, or the rows as CSV text.
//! * `pivot {data, index, columns?, values, aggfunc = sum, fill_value = 0}` →
//!   `{"data": [row per index value], "rows": n, "columns": [names]}`: a column per
//!   value of `columns` (`<value>_<values column>` with several `values`), each cell
//!   `aggfunc` (an `aggregate` op) of its rows, `fill_value` where none.
//! * `profile {data, profiling_options?}` → `{"rows": n, "columns": c, "column_profiles": {name:
//!   {"type", "non_null", "nulls", "distinct", "min"?, "max"?, "mean"?}}}`; type is
//!   `integer number string boolean array object null mixed`. `profiling_options`
//!   (py-orc's) adds `missing_count`/`missing_percentage` (`missing_values`),
//!   `median`/`std_dev` (`statistical_summary`), `outlier_count`/`outlier_percentage`
//!   (`outlier_detection`, 1.5×IQR) per column and `duplicate_rows`/`duplicate_percentage`
//!   (`duplicate_detection`); `data_types` is the `type` always given.
//! * `clean {data, remove_duplicates = true, handle_missing = none|drop|fill,
//!   fill_value, remove_outliers = false}` → `{"data", "count", "removed":
//!   {"duplicates", "missing", "outliers"}, "filled"}`. `fill_value` may be a map
//!   per column. Outliers use 1.5×IQR (linear-interpolated quartiles) on every
//!   column whose non-null values are all numbers (at least four of them).
//! * `merge {datasets: [..] | data + other, merge_strategy: concat|join,
//!   join_on, join_type: inner|left|right|outer}` → `{"data": [rows], "count": n}`.
//!   The strategy defaults to `join` when `join_on` is given, else `concat`
//!   (which fills absent columns with `null`). Joins fold left over the
//!   datasets; a non-key column of dataset `k` that clashes is renamed
//!   `name_k`; null keys never match.
//!
//! # `validation` actions
//! * `validate {data, schema, mode = strict|lenient|report_only}` →
//!   `{"valid", "mode", "errors": [{"path", "message", "schema_path", "row"?}],
//!   "error_count"}` (at most 100 errors listed). A table (a list of
//!   records, e.g. parsed CSV) is validated row by row, unless the schema
//!   describes an array (`type: array`, `items`, ...), and the result then
//!   adds `rows` and `invalid_rows`. `strict` turns invalid data into a [`ToolFailure`];
//!   `lenient` returns `data` too (the valid rows when row-wise);
//!   `report_only` only reports. Drafts are detected from `$schema`
//!   (default 2020-12).
//! * `infer_schema {data}` → the inferred JSON Schema (2020-12) itself.
//! * `quality_check {data, threshold = 0.8}` → `{"score", "passed", "threshold",
//!   "metrics": {"completeness", "uniqueness", "consistency"}, "issues": [..],
//!   "rows", "columns"}`; the score is the mean of the three metrics, rounded
//!   to four decimals. An empty table scores 0.

mod aggregate;
mod catalog;
mod clean;
mod convert;
mod criteria;
mod expr;
mod infer;
mod input;
mod merge;
mod params;
mod pivot;
mod profile;
mod quality;
mod reshape;
mod stream;
mod transform;
mod validate;
mod value;

#[cfg(test)]
mod tests;

pub use catalog::{ACTIONS, ActionDecl, ParamDecl};
use serde_json::{Map, Value};

/// The actions the `data-processing` tool accepts.
pub const DATA_PROCESSING_ACTIONS: &[&str] = &[
    "convert",
    "filter",
    "aggregate",
    "transform",
    "profile",
    "pivot",
    "clean",
    "merge",
];

/// The actions the `validation` tool accepts.
pub const VALIDATION_ACTIONS: &[&str] = &["validate", "infer_schema", "quality_check"];

/// Why a tool action failed; the message says what is wrong and names the parameter.
#[derive(Debug, thiserror::Error)]
pub enum ToolFailure {
    /// The action is not one the tool knows.
    #[error("unknown action `{action}` for {tool} (expected one of: {expected})")]
    UnknownAction {
        /// The tool's name.
        tool: &'static str,
        /// The action asked for.
        action: String,
        /// The accepted actions, comma-separated.
        expected: String,
    },
    /// A required parameter is absent or null.
    #[error("missing parameter `{0}`")]
    MissingParameter(String),
    /// A parameter has the wrong type or an unusable value.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter (path), e.g. `operations[1].by`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Text input could not be parsed in any accepted format.
    #[error("cannot parse `{name}` as {formats}: {reason}")]
    Unparseable {
        /// The parameter holding the text.
        name: String,
        /// The formats tried, e.g. `JSON or CSV`.
        formats: &'static str,
        /// The parser errors.
        reason: String,
    },
    /// A file named by a parameter exists but could not be read.
    #[error("cannot read file `{path}` given in `{name}`: {source}")]
    Io {
        /// The parameter naming the file.
        name: String,
        /// The file path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Data failed schema validation in `strict` mode.
    #[error("`{name}` does not match `schema` ({count} errors): {summary}")]
    SchemaMismatch {
        /// The parameter holding the data.
        name: String,
        /// How many errors were found.
        count: usize,
        /// The first errors, joined.
        summary: String,
    },
}

impl ToolFailure {
    fn unknown_action(tool: &'static str, action: &str, expected: &[&str]) -> Self {
        ToolFailure::UnknownAction {
            tool,
            action: action.to_string(),
            expected: expected.join(", "),
        }
    }
}

/// How much memory the tools may hold for input read from a file.
///
/// `aggregate` and `filter` stream a CSV/TSV file named by `data` (see the
/// crate docs): the file is read through a buffer of at most `chunk_bytes`
/// (and at most 1 MiB, which reads as fast as any larger buffer), one record
/// at a time, so memory grows with the result (the groups, the distinct
/// values of `count_distinct`, the matching rows), not with the file. One
/// record is held whole, so a single record longer than `chunk_bytes` goes
/// past it.
///
/// The engine is meant to size `chunk_bytes` from
/// `performance.resource_limits.max_memory` (a small fraction of it, shared
/// by the steps that run at once); [`data_processing`] uses
/// [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of input text held at once (values below 64 count as 64).
    pub chunk_bytes: usize,
}

impl Limits {
    /// The default `chunk_bytes`: 8 MiB.
    pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chunk_bytes: Self::DEFAULT_CHUNK_BYTES,
        }
    }
}

/// Runs a data-processing action with the default [`Limits`]. Ok(result) is the tool's `result` (the engine wraps it as {result, success: true, error: null}); Err is a failure with a clear message (the engine reports success: false with it).
pub fn data_processing(action: &str, params: &Map<String, Value>) -> Result<Value, ToolFailure> {
    data_processing_with(action, params, &Limits::default())
}

/// Runs a data-processing action, holding at most `limits.chunk_bytes` of a
/// streamed input file at once; otherwise the same as [`data_processing`].
pub fn data_processing_with(
    action: &str,
    params: &Map<String, Value>,
    limits: &Limits,
) -> Result<Value, ToolFailure> {
    match action {
        "convert" => convert::run(params),
        "filter" => criteria::run(params, limits),
        "aggregate" => aggregate::run(params, limits),
        "transform" => transform::run(params),
        "profile" => profile::run(params),
        "pivot" => pivot::run(params),
        "clean" => clean::run(params),
        "merge" => merge::run(params),
        _ => Err(ToolFailure::unknown_action(
            "data-processing",
            action,
            DATA_PROCESSING_ACTIONS,
        )),
    }
}

/// Runs a validation action, same contract.
pub fn validation(action: &str, params: &Map<String, Value>) -> Result<Value, ToolFailure> {
    match action {
        "validate" => validate::run(params),
        "infer_schema" => infer::run(params),
        "quality_check" => quality::run(params),
        _ => Err(ToolFailure::unknown_action(
            "validation",
            action,
            VALIDATION_ACTIONS,
        )),
    }
}

/// Parses a Python literal (`[{'a': 1}]`, `True`, `None`, tuples) into JSON; the error says where it stopped.
pub fn parse_python_literal(text: &str) -> Result<Value, String> {
    orc_pycompat::literal::parse(text).map_err(|e| e.to_string())
}
