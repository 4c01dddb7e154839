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

/// The `convert` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let (key, target) =
        lookup(params, &["output_format"]).ok_or_else(|| missing("output_format"))?;
    let target = str_value(target, key)?.trim().to_ascii_lowercase();
    if target != "json" && target != "csv" {
        return Err(invalid(
            key,
            format!("unsupported format `{target}` (expected json or csv)"),
        ));
    }
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
