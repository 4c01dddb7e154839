//! The `infer_schema` action: a JSON Schema (2020-12) describing the data.

use crate::ToolFailure;
use crate::input::load_data;
use crate::params::Params;
use crate::value::type_name;
use serde_json::{Map, Value, json};

const MAX_DEPTH: usize = 32;
const TYPE_ORDER: &[&str] = &[
    "boolean", "integer", "number", "string", "array", "object", "null",
];

/// Infers a schema matching every value in `values`.
pub(crate) fn infer(values: &[&Value], depth: usize) -> Value {
    let mut schema = Map::new();
    if values.is_empty() || depth > MAX_DEPTH {
        return Value::Object(schema);
    }
    let mut types: Vec<&str> = TYPE_ORDER
        .iter()
        .copied()
        .filter(|t| values.iter().any(|v| type_name(v) == *t))
        .collect();
    if types.contains(&"number") {
        types.retain(|t| *t != "integer");
    }
    schema.insert(
        "type".into(),
        match types.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
    );
    let objects: Vec<&Map<String, Value>> = values.iter().filter_map(|v| v.as_object()).collect();
    if !objects.is_empty() {
        let keys = crate::value::columns(&objects.iter().map(|m| (*m).clone()).collect::<Vec<_>>());
        let mut props = Map::new();
        let mut required = Vec::new();
        for key in keys {
            let present: Vec<&Value> = objects.iter().filter_map(|m| m.get(&key)).collect();
            if present.len() == objects.len() {
                required.push(json!(key));
            }
            props.insert(key, infer(&present, depth + 1));
        }
        schema.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
    }
    let elements: Vec<&Value> = values
        .iter()
        .filter_map(|v| v.as_array())
        .flatten()
        .collect();
    if !elements.is_empty() {
        schema.insert("items".into(), infer(&elements, depth + 1));
    }
    Value::Object(schema)
}

/// The `infer_schema` action.
pub(crate) fn run(params: &Params) -> Result<Value, ToolFailure> {
    let loaded = load_data(params)?;
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    if let Value::Object(inner) = infer(&[&loaded.value], 0) {
        schema.extend(inner);
    }
    Ok(Value::Object(schema))
}
