//! `orc plan`: for every model step, the model it would use, its estimated tokens and cost, and
//! whether its answer is already cached, without calling anything.

use orc_models::{Gateway, actions};
use orc_pipeline::{Compiled, Param, Step, StepKind};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::models::{self, Choice, Pick};

/// One model step as `orc plan` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCall {
    /// The step's id (loop body steps once, for one iteration).
    pub step: String,
    /// The model action.
    pub action: String,
    /// Whether the step is inside a loop (it runs once per iteration).
    pub in_loop: bool,
    /// The model it would call; `None` when none could be chosen (see `error`).
    pub model: Option<String>,
    /// `named` or `router: <reason>`.
    pub chosen_by: Option<String>,
    /// Estimated input tokens (from the prompt; templates count as their source text).
    pub input_tokens: Option<u64>,
    /// The most output tokens the call may produce.
    pub max_output_tokens: Option<u64>,
    /// Expected USD when not cached; `None` when the model has no price.
    pub expected_usd: Option<f64>,
    /// The USD a budget reserves for the call.
    pub worst_case_usd: Option<f64>,
    /// Whether the answer is in the response cache; `None` when the prompt depends on
    /// values only the run knows (templates), so the request is not known yet.
    pub cached: Option<bool>,
    /// Why the step could not be planned.
    pub error: Option<String>,
}

/// Plans every model step of `compiled` against `gateway`, for a run with these `inputs` (the
/// values given by the caller; declared defaults fill in the rest). Makes no model call: the
/// router decides from what it has measured so far, and the cache is only read. A prompt whose
/// templates read only inputs is rendered, so its cache state is known before the run.
pub async fn plan_models(
    compiled: &Compiled,
    gateway: &Gateway,
    inputs: &Map<String, Value>,
) -> Vec<PlannedCall> {
    let known = known_inputs(compiled, inputs);
    let mut steps = Vec::new();
    collect(&compiled.plan.steps, false, &mut steps);
    let mut out = Vec::with_capacity(steps.len());
    for (step, in_loop) in steps {
        let StepKind::Action(a) = &step.kind else {
            continue;
        };
        let action = match &a.action {
            Param::Lit(Value::String(s)) => s.clone(),
            _ => continue,
        };
        let has_template = orc_pipeline::has_template(&a.params);
        let rendered = has_template
            .then(|| render_from_inputs(&a.params, compiled, &known))
            .flatten();
        let templated = has_template && rendered.is_none();
        let params = match rendered.unwrap_or_else(|| literal(&a.params, compiled)) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut row = PlannedCall {
            step: step.id.clone(),
            action: action.clone(),
            in_loop,
            model: None,
            chosen_by: None,
            input_tokens: None,
            max_output_tokens: None,
            expected_usd: None,
            worst_case_usd: None,
            cached: None,
            error: None,
        };
        if let Err(e) = plan_one(
            gateway, compiled, step, &action, params, templated, &mut row,
        )
        .await
        {
            row.error = Some(e);
        }
        out.push(row);
    }
    out
}

async fn plan_one(
    gateway: &Gateway,
    compiled: &Compiled,
    step: &Step,
    action: &str,
    mut params: Map<String, Value>,
    templated: bool,
    row: &mut PlannedCall,
) -> Result<(), String> {
    // An `auto` step is the `generate` call that asks its question.
    let action = if action == crate::auto::ACTION {
        params = crate::auto::question(&params)?.0;
        "generate"
    } else {
        action
    };
    let param = params
        .remove("model")
        .and_then(|v| v.as_str().map(str::to_owned));
    let choice = Choice {
        step: step.model.clone(),
        pipeline: compiled.plan.model.clone(),
    };
    let (model, chosen_by) = match models::pick(gateway, &choice, param.as_deref())? {
        Pick::Named(model) => (model, "named".to_owned()),
        Pick::NoModel => return Err("`requires_model: none`".to_owned()),
        Pick::Route(wanted) => {
            let features =
                actions::features(action, &params, &wanted.expertise).map_err(|e| e.to_string())?;
            let (model, decision) = gateway
                .route_model(&wanted, &features)
                .map_err(|e| e.to_string())?;
            (model, format!("router: {}", decision.reason))
        }
    };
    row.model = Some(model.spec.name.clone());
    row.chosen_by = Some(chosen_by);
    let use_cache = step.cache != Some(false) && !templated;
    let estimate = actions::estimate(gateway, &model.spec, action, &params, use_cache)
        .await
        .map_err(|e| e.to_string())?;
    row.input_tokens = Some(estimate.input_tokens);
    row.max_output_tokens = Some(estimate.max_output_tokens);
    row.expected_usd = estimate.expected_usd;
    row.worst_case_usd = estimate.worst_case_usd;
    row.cached = (!templated).then_some(estimate.cached);
    Ok(())
}

/// Model steps, depth first, with whether each is inside a loop.
fn collect<'p>(steps: &'p [Step], in_loop: bool, out: &mut Vec<(&'p Step, bool)>) {
    for step in steps {
        if models::is_model_step(step) {
            out.push((step, in_loop));
        }
        if let Some(body) = step.body() {
            collect(body, true, out);
        }
    }
}

/// The inputs whose values are known before the run: given ones, then declared defaults that
/// are not themselves templates.
fn known_inputs(compiled: &Compiled, given: &Map<String, Value>) -> Map<String, Value> {
    let mut known = Map::new();
    for input in &compiled.plan.inputs {
        let value = given.get(&input.name).or(input.default.as_ref());
        match value {
            Some(Value::String(s)) if orc_pipeline::templates::is_template(s) => {}
            Some(v) => {
                known.insert(input.name.clone(), v.clone());
            }
            None => {}
        }
    }
    known
}

/// The parameters rendered, when every template in them reads only known inputs.
fn render_from_inputs(
    param: &Param,
    compiled: &Compiled,
    known: &Map<String, Value>,
) -> Option<Value> {
    let mut ids = Vec::new();
    templates_in(param, &mut ids);
    let only_inputs = ids.iter().all(|id| {
        compiled.templates.names(*id).iter().all(|name| {
            let root = name.split('.').next().unwrap_or_default();
            known.contains_key(root)
                || (matches!(root, "inputs" | "parameters")
                    && name
                        .split('.')
                        .nth(1)
                        .is_some_and(|n| known.contains_key(n)))
        })
    });
    if !only_inputs {
        return None;
    }
    let scope: std::sync::Arc<dyn orc_pipeline::templates::Lookup> =
        std::sync::Arc::new(InputScope(known.clone()));
    crate::step::render(param, &compiled.templates, &scope).ok()
}

fn templates_in(param: &Param, out: &mut Vec<orc_pipeline::TemplateId>) {
    match param {
        Param::Lit(_) => {}
        Param::Tmpl(id) => out.push(*id),
        Param::List(items) => items.iter().for_each(|p| templates_in(p, out)),
        Param::Map(entries) => entries.iter().for_each(|(_, p)| templates_in(p, out)),
    }
}

/// Inputs as a template scope: each by its name, and all of them as `inputs` and `parameters`.
struct InputScope(Map<String, Value>);

impl orc_pipeline::templates::Lookup for InputScope {
    fn lookup(&self, name: &str) -> Option<minijinja::Value> {
        match name {
            "inputs" | "parameters" => Some(orc_pipeline::templates::to_value(&self.0)),
            _ => self.0.get(name).map(orc_pipeline::templates::to_value),
        }
    }
}

/// A parameter as JSON, with each template standing as its source text.
fn literal(param: &Param, compiled: &Compiled) -> Value {
    match param {
        Param::Lit(v) => v.clone(),
        Param::Tmpl(id) => Value::String(compiled.templates.source(*id).to_owned()),
        Param::List(items) => Value::Array(items.iter().map(|p| literal(p, compiled)).collect()),
        Param::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, p)| (k.clone(), literal(p, compiled)))
                .collect(),
        ),
    }
}
