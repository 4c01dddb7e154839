//! The `auto` action: one `<AUTO>` tag over templates, asked when its step is about to run
//! (the compiler makes an `auto` step for each). It is the `generate` call that asks the tag's
//! question, with the system prompt a tag answered at compile time gets; its result is the
//! answer, typed.

use orc_pipeline::Expected;
use serde_json::{Map, Value};

/// The tool-less action that asks one `<AUTO>` tag over templates when its step is about to
/// run (the compiler makes an `auto` step for each): `question`, the `type` of the answer
/// (`text`, `integer`, `number`, `boolean`, `list`, `any`), the `field` it fills, the tag's
/// other `attributes`, and optionally a `model`. Its result is the typed answer.
pub(crate) const ACTION: &str = "auto";

/// The parameters the `auto` action takes.
pub(crate) const PARAMETERS: &[&str] = &["question", "type", "field", "attributes", "model"];

/// An `auto` step's parameters as the `generate` call that asks its question (with the same
/// system prompt a tag answered at compile time gets), and the type the answer must have.
pub(crate) fn question(
    params: &Map<String, Value>,
) -> Result<(Map<String, Value>, Expected), String> {
    if let Some(unknown) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(format!(
            "`{ACTION}` has no parameter `{unknown}`; it takes: {}",
            PARAMETERS.join(", ")
        ));
    }
    let question = match params.get("question") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) => return Err("parameter `question` is empty".to_owned()),
        Some(_) => return Err("parameter `question` must be text".to_owned()),
        None => return Err("missing parameter `question`".to_owned()),
    };
    let expected = match params.get("type") {
        None | Some(Value::Null) => Expected::Any,
        Some(Value::String(word)) => Expected::from_attribute(word).ok_or_else(|| {
            format!(
                "parameter `type`: `{word}` is not one of text, integer, number, boolean, list, any"
            )
        })?,
        Some(_) => return Err("parameter `type` must be text".to_owned()),
    };
    let field = match params.get("field") {
        None | Some(Value::Null) => "the step's value",
        Some(Value::String(f)) => f.as_str(),
        Some(_) => return Err("parameter `field` must be text".to_owned()),
    };
    let attributes = match params.get("attributes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Some(_) => return Err("parameter `attributes` must be a mapping".to_owned()),
    };
    let mut call = Map::new();
    call.insert("prompt".into(), Value::String(question));
    call.insert(
        "system".into(),
        Value::String(orc_pipeline::system_prompt(field, &attributes, expected)),
    );
    call.insert("temperature".into(), Value::from(0.0));
    if let Some(model) = params.get("model") {
        call.insert("model".into(), model.clone());
    }
    Ok((call, expected))
}
