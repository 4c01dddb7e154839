//! The model actions pipelines call: `generate`, `generate_structured`,
//! `analyze_text`, `embed` and `extract_structured` (py-orc's `validation` action), from
//! rendered step parameters to a result.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::complexity::RequestFeatures;
use crate::error::Error;
use crate::fallback::Fallback;
use crate::gateway::{Answer, Gateway, Source};
use crate::pricing::{Estimate, estimate as estimate_on};
use crate::registry::Model;
use crate::request::{ChatRequest, ChatResponse, EmbeddingRequest, Message};
use crate::spec::ModelSpec;
use crate::usage::Usage;

/// The model actions, by their canonical names.
pub const ACTIONS: &[&str] = &[
    "generate",
    "generate_structured",
    "analyze_text",
    "embed",
    "extract_structured",
];

/// Whether `action` (canonical name) calls a model.
pub fn is_model_action(action: &str) -> bool {
    ACTIONS.contains(&action)
}

/// What a model action produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The envelope's `result`: the text, the parsed object, or the vector(s).
    pub result: Value,
    /// The model that answered: the one asked for, or the fallback that answered
    /// after it failed (see `fallback`).
    pub model: Arc<ModelSpec>,
    /// The fallbacks taken, in order: `{from, to, reason}` for the result document
    /// (empty when the model asked for answered).
    pub fallback: Vec<Fallback>,
    /// Where the answer came from (for several calls: upstream if any went upstream).
    pub source: Source,
    /// Tokens paid for by this step.
    pub usage: Usage,
    /// USD paid by this step; `None` when the model has no price.
    pub cost: Option<f64>,
}

type ActionResult<T> = crate::error::Result<T>;

/// A parameter error ([`Error::Parameter`]).
fn parameter(message: impl Into<String>) -> Error {
    Error::Parameter {
        message: message.into(),
    }
}

/// The parameters each action takes (`model`, which picks the model, among them); none for
/// an action that is not a model action.
pub fn parameters(action: &str) -> &'static [&'static str] {
    match action {
        "generate" => &[
            "prompt",
            "system",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "stream",
            "model",
        ],
        "generate_structured" => &[
            "prompt",
            "system",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "stream",
            "schema",
            "model",
        ],
        "analyze_text" => &[
            "text",
            "prompt",
            "analysis_type",
            "system",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "stream",
            "model",
        ],
        "embed" => &["input", "model"],
        "extract_structured" => &[
            "text",
            "schema",
            "system",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "model",
        ],
        _ => &[],
    }
}

/// Runs a model action on `model` with the step's rendered `params`. A chat action with
/// `stream: true` hands its answer's text to `on_delta` as it arrives, when one is given.
pub async fn run(
    gateway: &Gateway,
    model: &Model,
    action: &str,
    params: &Map<String, Value>,
    use_cache: bool,
    on_delta: Option<crate::OnDelta<'_>>,
) -> ActionResult<Outcome> {
    check_params(action, params)?;
    match action {
        "embed" => embed(gateway, model, params, use_cache).await,
        "generate_structured" => structured(gateway, model, params, use_cache).await,
        "extract_structured" => extract(gateway, model, params, use_cache).await,
        _ => {
            let req = chat_request(action, params)?;
            let answer = match on_delta.filter(|_| req.stream) {
                Some(on_delta) => {
                    gateway
                        .chat_streamed(model, &req, use_cache, on_delta)
                        .await?
                }
                None => gateway.chat(model, &req, use_cache).await?,
            };
            Ok(outcome(
                model,
                Value::String(answer.value.text.clone()),
                &[answer],
            ))
        }
    }
}

/// What the router needs to know of a model action's request ([`Gateway::route`]),
/// from the step's rendered `params` (without `model`). `expertise` is the step's
/// `requires_model.expertise`, if any.
pub fn features(
    action: &str,
    params: &Map<String, Value>,
    expertise: &[String],
) -> ActionResult<RequestFeatures> {
    check_params(action, params)?;
    let mut features = match action {
        "embed" => RequestFeatures::of_texts(embed_inputs(params)?.0.iter().map(String::as_str)),
        _ => RequestFeatures::of_chat(&schema_request(action, params)?),
    };
    features.expertise = expertise.to_vec();
    if action == "analyze_text" && features.expertise.is_empty() {
        features.expertise = vec!["analysis".to_owned()];
    }
    Ok(features)
}

/// What a model action would cost on `model`, and whether its answer is in the
/// response cache (looked up only with `use_cache`): for `orc plan`, which makes no
/// call. `generate_structured` is estimated for its first call (a repair doubles it).
pub async fn estimate(
    gateway: &Gateway,
    model: &ModelSpec,
    action: &str,
    params: &Map<String, Value>,
    use_cache: bool,
) -> ActionResult<Estimate> {
    check_params(action, params)?;
    if action == "embed" {
        let (inputs, _) = embed_inputs(params)?;
        let mut estimate = estimate_on(
            model,
            &RequestFeatures::of_texts(inputs.iter().map(String::as_str)),
        );
        let mut cached = use_cache && !inputs.is_empty();
        for input in inputs {
            if !cached {
                break;
            }
            let req = EmbeddingRequest {
                inputs: vec![input],
            };
            cached = gateway.is_cached(model, "embed", &req).await?;
        }
        estimate.cached = cached;
        return Ok(estimate);
    }
    let req = schema_request(action, params)?;
    gateway.estimate_chat(model, &req, use_cache).await
}

/// The chat request of a chat action, with its `schema` for the two that answer in JSON.
fn schema_request(action: &str, params: &Map<String, Value>) -> ActionResult<ChatRequest> {
    let mut req = chat_request(action, params)?;
    if matches!(action, "generate_structured" | "extract_structured") {
        req.json_schema = Some(schema(params)?);
    }
    Ok(req)
}

/// Refuses an action that calls no model, and parameters the action does not take.
fn check_params(action: &str, params: &Map<String, Value>) -> ActionResult<()> {
    let allowed = parameters(action);
    if allowed.is_empty() {
        return Err(parameter(format!("`{action}` is not a model action")));
    }
    if let Some(extra) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(parameter(format!(
            "`{action}` has no parameter `{extra}`; it takes {}",
            allowed.join(", ")
        )));
    }
    Ok(())
}

fn outcome(model: &Model, result: Value, answers: &[Answer<ChatResponse>]) -> Outcome {
    let mut usage = Usage::default();
    let mut cost: Option<f64> = Some(0.0);
    let mut fallback = Vec::new();
    for a in answers {
        usage += a.usage;
        cost = cost.zip(a.cost).map(|(x, y)| x + y);
        fallback.extend(a.fallback.iter().cloned());
    }
    let answered = answers
        .last()
        .map_or_else(|| Arc::clone(&model.spec), |a| Arc::clone(&a.model));
    let source = answers
        .iter()
        .map(|a| a.source)
        .find(|s| *s == Source::Upstream)
        .or_else(|| answers.first().map(|a| a.source))
        .unwrap_or(Source::Upstream);
    Outcome {
        result,
        model: answered,
        fallback,
        source,
        usage,
        cost,
    }
}

/// The chat request of `generate`, `analyze_text`, `generate_structured` and
/// `extract_structured`.
fn chat_request(action: &str, params: &Map<String, Value>) -> ActionResult<ChatRequest> {
    let prompt = if action == "extract_structured" {
        // py-orc's prompt, word for word.
        format!(
            "Extract structured data from the following text according to the provided schema.\n\nText:\n{}\n\nReturn the extracted data as a JSON object that matches the schema.",
            text(params, "text")?
        )
    } else if action == "analyze_text" {
        let text = text(params, "text")?;
        let instruction = match optional_text(params, "prompt")? {
            Some(p) => p,
            None => match optional_text(params, "analysis_type")? {
                Some(kind) => format!("Analyze the following text ({kind})."),
                None => "Analyze the following text.".to_owned(),
            },
        };
        format!("{instruction}\n\n{text}")
    } else {
        text(params, "prompt")?
    };
    Ok(ChatRequest {
        messages: vec![Message::user(prompt)],
        system: optional_text(params, "system")?,
        // `max_completion_tokens` is OpenAI's newer name, which py-orc's examples pass.
        max_tokens: match optional_u32(params, "max_tokens")? {
            Some(n) => Some(n),
            None => optional_u32(params, "max_completion_tokens")?,
        },
        temperature: optional_f32(params, "temperature")?,
        stream: optional_bool(params, "stream")?.unwrap_or(false),
        json_schema: None,
    })
}

/// `generate_structured`: the answer is parsed as JSON and checked against `schema`;
/// one repair attempt, then a failure that shows the validation error.
async fn structured(
    gateway: &Gateway,
    model: &Model,
    params: &Map<String, Value>,
    use_cache: bool,
) -> ActionResult<Outcome> {
    let validator = validator(params)?;
    let mut req = schema_request("generate_structured", params)?;
    let first = gateway.chat(model, &req, use_cache).await?;
    let problem = match check(&validator, &first.value.text) {
        Ok(value) => return Ok(outcome(model, value, &[first])),
        Err(problem) => problem,
    };
    tracing::info!(model = %first.model.name, %problem, "structured answer invalid; asking once more");
    req.messages
        .push(Message::assistant(first.value.text.clone()));
    req.messages.push(Message::user(format!(
        "That answer does not match the JSON Schema: {problem}\nReply with only a JSON value that matches the schema."
    )));
    // The repair goes to the model that gave the first answer (a fallback, maybe).
    let answered = match first.model.name == model.spec.name {
        true => None,
        false => gateway.registry().resolve(&first.model.name).ok(),
    };
    let second = gateway
        .chat(answered.as_ref().unwrap_or(model), &req, use_cache)
        .await?;
    match check(&validator, &second.value.text) {
        Ok(value) => Ok(outcome(model, value, &[first, second])),
        Err(problem) => Err(unusable(model, &[first, second], |answered| {
            format!(
                "the answer of {answered} does not match the schema after one repair attempt: {problem}"
            )
        })),
    }
}

/// The failure of calls that were made (and paid for) and gave no usable answer; `message`
/// is told the name of the model that answered.
fn unusable(
    model: &Model,
    answers: &[Answer<ChatResponse>],
    message: impl FnOnce(&str) -> String,
) -> Error {
    let spent = outcome(model, Value::Null, answers);
    Error::SchemaMismatch {
        message: message(&spent.model.name),
        usage: spent.usage,
        cost: spent.cost,
    }
}

/// `extract_structured` (py-orc's `validation` action): one call asks for the text's data
/// as JSON matching `schema`; the result is py-orc's `{valid, data, errors, warnings,
/// model_used}`, where data that does not match the schema is `valid: false` with the
/// errors, not a failure. An answer with no JSON in it fails the step.
async fn extract(
    gateway: &Gateway,
    model: &Model,
    params: &Map<String, Value>,
    use_cache: bool,
) -> ActionResult<Outcome> {
    let validator = validator(params)?;
    let req = schema_request("extract_structured", params)?;
    let answer = gateway.chat(model, &req, use_cache).await?;
    let data = match parse_answer(&answer.value.text) {
        Ok(data) => data,
        Err(problem) => {
            return Err(unusable(model, &[answer], |answered| {
                format!("could not read the answer of {answered} as JSON: {problem}")
            }));
        }
    };
    let errors = problems(&validator, &data, usize::MAX);
    let answered = answer.model.name.clone();
    let result = serde_json::json!({
        "valid": errors.is_empty(),
        "data": data,
        "errors": errors,
        "warnings": [],
        "model_used": answered,
    });
    Ok(outcome(model, result, &[answer]))
}

/// The `schema` parameter, compiled.
fn validator(params: &Map<String, Value>) -> ActionResult<jsonschema::Validator> {
    jsonschema::validator_for(&schema(params)?).map_err(|e| {
        parameter(format!(
            "parameter `schema` is not a valid JSON Schema: {e}"
        ))
    })
}

/// The `schema` parameter of `generate_structured`, as JSON.
fn schema(params: &Map<String, Value>) -> ActionResult<Value> {
    match params.get("schema") {
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| parameter(format!("parameter `schema` is not valid JSON: {e}"))),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(parameter(
            "parameter `schema` must be a JSON Schema object".to_owned(),
        )),
        None => Err(parameter("missing parameter `schema`".to_owned())),
    }
}

/// Parses an answer as JSON (inside a Markdown code fence, if any) and validates it.
fn check(validator: &jsonschema::Validator, answer: &str) -> Result<Value, String> {
    let text = strip_fence(answer.trim());
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let errors = problems(validator, &value, 3);
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors.join("; "))
    }
}

/// An answer's JSON: the whole answer (inside a Markdown code fence, if any), else, as
/// py-orc read it, the text from its first `{` to its last `}`.
fn parse_answer(answer: &str) -> Result<Value, String> {
    let text = strip_fence(answer.trim());
    serde_json::from_str(text).or_else(|e| {
        let object = text
            .find('{')
            .zip(text.rfind('}'))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| &text[a..=b]);
        object
            .and_then(|o| serde_json::from_str(o).ok())
            .ok_or_else(|| format!("the answer is not JSON ({e})"))
    })
}

/// Where `value` breaks the schema: at most `limit` messages, each with its place.
fn problems(validator: &jsonschema::Validator, value: &Value, limit: usize) -> Vec<String> {
    validator
        .iter_errors(value)
        .take(limit)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect()
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

async fn embed(
    gateway: &Gateway,
    model: &Model,
    params: &Map<String, Value>,
    use_cache: bool,
) -> ActionResult<Outcome> {
    let (inputs, single) = embed_inputs(params)?;
    let answer = gateway.embed(model, inputs, use_cache).await?;
    let mut vectors: Vec<Value> = answer
        .value
        .iter()
        .map(|v| Value::from(v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()))
        .collect();
    let result = match (single, vectors.pop()) {
        (true, Some(v)) => v,
        (_, last) => {
            vectors.extend(last);
            Value::Array(vectors)
        }
    };
    Ok(Outcome {
        result,
        model: answer.model,
        fallback: answer.fallback,
        source: answer.source,
        usage: answer.usage,
        cost: answer.cost,
    })
}

/// `embed`'s `input`: the texts, and whether it was a single string.
fn embed_inputs(params: &Map<String, Value>) -> ActionResult<(Vec<String>, bool)> {
    let wrong = || parameter("parameter `input` must be a string or a list of strings".to_owned());
    match params.get("input") {
        Some(Value::String(s)) => Ok((vec![s.clone()], true)),
        Some(Value::Array(items)) => Ok((
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(wrong()),
                })
                .collect::<ActionResult<_>>()?,
            false,
        )),
        Some(_) => Err(wrong()),
        None => Err(parameter("missing parameter `input`".to_owned())),
    }
}

fn text(params: &Map<String, Value>, key: &str) -> ActionResult<String> {
    optional_text(params, key)?.ok_or_else(|| parameter(format!("missing parameter `{key}`")))
}

fn optional_text(params: &Map<String, Value>, key: &str) -> ActionResult<Option<String>> {
    Ok(match params.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    })
}

fn optional_u32(params: &Map<String, Value>, key: &str) -> ActionResult<Option<u32>> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| parameter(format!("parameter `{key}` must be a positive integer"))),
    }
}

fn optional_f32(params: &Map<String, Value>, key: &str) -> ActionResult<Option<f32>> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| Some(t as f32))
            .ok_or_else(|| parameter(format!("parameter `{key}` must be a number ≥ 0"))),
    }
}

fn optional_bool(params: &Map<String, Value>, key: &str) -> ActionResult<Option<bool>> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(parameter(format!(
            "parameter `{key}` must be true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_stripped() {
        assert_eq!(strip_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_fence("{\"a\": 1}"), "{\"a\": 1}");
    }

    #[test]
    fn answers_are_checked_against_the_schema() {
        let schema = serde_json::json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
        let Ok(v) = jsonschema::validator_for(&schema) else {
            panic!("schema")
        };
        assert_eq!(check(&v, "{\"n\": 3}"), Ok(serde_json::json!({"n": 3})));
        let err = check(&v, "{\"n\": \"x\"}").err().unwrap_or_default();
        assert!(err.contains("/n"), "{err}");
        assert!(check(&v, "not json").is_err());
    }

    #[test]
    fn features_of_actions() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"text": "some long report", "max_tokens": 300}"#)
                .unwrap_or_default();
        let f = features("analyze_text", &params, &[]).ok();
        assert_eq!(
            f.as_ref().map(|f| f.expertise.clone()),
            Some(vec!["analysis".to_owned()])
        );
        assert_eq!(f.as_ref().and_then(|f| f.max_tokens), Some(300));
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"prompt": "x", "schema": {"type": "object"}}"#)
                .unwrap_or_default();
        let f = features("generate_structured", &params, &["code".to_owned()]).ok();
        assert_eq!(f.as_ref().map(|f| f.structured), Some(true));
        assert_eq!(f.map(|f| f.expertise), Some(vec!["code".to_owned()]));
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"input": ["a", "bb"]}"#).unwrap_or_default();
        let f = features("embed", &params, &[]).ok();
        assert_eq!(f.map(|f| (f.messages, f.prompt_chars)), Some((2, 3)));
        assert!(
            features("generate", &params, &[]).is_err(),
            "no `input` for generate"
        );
    }

    #[test]
    fn unknown_parameters_and_bad_types_are_refused() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"prompt": "hi", "max_tokens": "12", "temperature": 0.5}"#)
                .unwrap_or_default();
        let req = chat_request("generate", &params).ok();
        assert_eq!(req.as_ref().and_then(|r| r.max_tokens), Some(12));
        let bad: Map<String, Value> =
            serde_json::from_str(r#"{"prompt": "hi", "max_tokens": -1}"#).unwrap_or_default();
        assert!(chat_request("generate", &bad).is_err());
    }
}
