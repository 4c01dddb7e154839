//! The `convert` action and CSV writing.

use crate::ToolFailure;
use crate::input::load_data;
use crate::input::to_table;
use crate::params::{Params, invalid, lookup, missing, str_value};
use crate::value::{Table, columns, table_value};
use serde_json::{Value, json};

/// Writes a table as CSV: a header of all columns, `null` as an empty cell,
/// lists and maps as compact JSON.
pub(crate) fn to_csv(table: &Table) -> String {
    let cols = columns(table);
    if cols.is_empty() {
        return String::new();
    }
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing to a Vec cannot fail for I/O reasons; the record lengths always match.
    let _ = writer.write_record(&cols);
    for row in table {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match row.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
            .collect();
        let _ = writer.write_record(&cells);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// An `output_format` parameter's word: `json` or `csv`.
fn format_word(key: &str, v: &Value) -> Result<String, ToolFailure> {
    let target = str_value(v, key)?.trim().to_ascii_lowercase();
    if target != "json" && target != "csv" {
        return Err(invalid(
            key,
            format!("unsupported format `{target}` (expected json or csv)"),
        ));
    }
    Ok(target)
}

/// The rows an action gives (`aggregate`, `transform`, `pivot`), in its `output_format`:
/// `json` (the default) keeps them as a list of records, `csv` writes them as CSV text.
pub(crate) fn table_output(params: &Params, table: Table) -> Result<Value, ToolFailure> {
    match lookup(params, &["output_format"]) {
        Some((key, v)) if format_word(key, v)? == "csv" => Ok(Value::String(to_csv(&table))),
        _ => Ok(table_value(table)),
    }
}

/// The `convert` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let (key, target) =
        lookup(params, &["output_format"]).ok_or_else(|| missing("output_format"))?;
    let target = format_word(key, target)?;
    let loaded = load_data(params)?;
    let table = to_table(loaded.value, &loaded.name)?;
    let text = if target == "csv" {
        to_csv(&table)
    } else {
        let records = table_value(table.clone());
        serde_json::to_string_pretty(&records).unwrap_or_default()
    };
    Ok(json!({
        "data": text,
        "format": target,
        "rows": table.len(),
        "columns": columns(&table),
        "records": table_value(table),
    }))
}
