//! Model steps: which model a step uses, checking every static choice before the run
//! starts, and calling the model action through the gateway.

use orc_models::{Gateway, Model, Requirements, Source, actions};
use orc_pipeline::{ModelChoice, ModelRequirements, Param, Plan, Step, StepKind};
use serde_json::{Map, Value};

use crate::auto;
use crate::result::{ChoiceRecord, Usage};
use crate::tools::{Envelope, Retry};

/// What a model step records besides its envelope.
#[derive(Debug, Clone)]
pub(crate) struct ModelCall {
    pub(crate) model: String,
    pub(crate) provider: &'static str,
    pub(crate) cached: bool,
    pub(crate) usage: Usage,
    pub(crate) cost: Option<f64>,
    /// Time spent in the model action (cache lookups included).
    pub(crate) elapsed: std::time::Duration,
    /// How the model was chosen, and the fallbacks taken.
    pub(crate) choice: ChoiceRecord,
}

/// How a step's model is chosen, from the plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Choice {
    /// The step's `model` / `requires_model`.
    pub(crate) step: Option<ModelChoice>,
    /// The pipeline's `model`.
    pub(crate) pipeline: Option<String>,
}

/// Whether a plan step calls a model.
pub(crate) fn is_model_step(step: &Step) -> bool {
    match &step.kind {
        StepKind::Action(a) => {
            a.tool.is_none()
                && matches!(&a.action, Param::Lit(Value::String(s))
                    if actions::is_model_action(s) || s == auto::ACTION)
        }
        _ => false,
    }
}

/// Checks, before anything runs, that every model step's model can be used: the name
/// exists, its key variable is set, some model meets its requirements. Steps whose
/// model is a template are checked when they run.
pub(crate) fn check_plan(plan: &Plan, gateway: Option<&Gateway>) -> Result<(), String> {
    let mut problems = Vec::new();
    visit(&plan.steps, &mut |step| {
        if !is_model_step(step) {
            return;
        }
        let Some(gateway) = gateway else {
            problems.push(format!(
                "step `{}` calls a model, and no model is configured",
                step.id
            ));
            return;
        };
        let literal_model = match &step.kind {
            StepKind::Action(a) => param_model(&a.params),
            _ => None,
        };
        let choice = Choice {
            step: step.model.clone(),
            pipeline: plan.model.clone(),
        };
        let checked = pick(gateway, &choice, literal_model.as_deref()).and_then(|p| match p {
            Pick::Route(wanted) => check_route(gateway, &wanted),
            Pick::Named(_) | Pick::NoModel => Ok(()),
        });
        if let Err(e) = checked {
            problems.push(format!("step `{}`: {e}", step.id));
        }
    });
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn visit(steps: &[Step], f: &mut impl FnMut(&Step)) {
    for step in steps {
        f(step);
        if let Some(body) = step.body() {
            visit(body, f);
        }
    }
}

/// A literal `parameters.model`, when the step has one.
fn param_model(params: &Param) -> Option<String> {
    match params {
        Param::Lit(Value::Object(map)) => map.get("model")?.as_str().map(str::to_owned),
        Param::Map(entries) => entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("model", Param::Lit(Value::String(s))) => Some(s.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// How a step's model is found.
pub(crate) enum Pick {
    /// Named by `parameters.model`, the step's `model` or the pipeline's `model`.
    Named(Model),
    /// Chosen by the router among the models that meet these requirements.
    Route(Requirements),
    /// `requires_model: none`.
    NoModel,
}

/// The model for a step: `parameters.model`, else the step's `model` or
/// `requires_model`, else the pipeline's `model`, else the router's choice.
pub(crate) fn pick(
    gateway: &Gateway,
    choice: &Choice,
    param: Option<&str>,
) -> Result<Pick, String> {
    let registry = gateway.registry();
    let named = |name: &str| {
        registry
            .resolve(name)
            .map(Pick::Named)
            .map_err(|e| e.to_string())
    };
    if let Some(name) = param {
        return named(name);
    }
    match &choice.step {
        Some(ModelChoice::Named(name)) => named(name),
        Some(ModelChoice::NoModel) => Ok(Pick::NoModel),
        Some(ModelChoice::Requirements(r)) => Ok(Pick::Route(requirements(r))),
        None => match &choice.pipeline {
            Some(name) => named(name),
            None => Ok(Pick::Route(Requirements::default())),
        },
    }
}

/// Checks that some model meets `wanted` and can be used (its key is set).
fn check_route(gateway: &Gateway, wanted: &Requirements) -> Result<(), String> {
    gateway
        .registry()
        .select(wanted)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn requirements(r: &ModelRequirements) -> Requirements {
    Requirements {
        context_window: r.context_window,
        expertise: r.expertise.clone(),
        min_size: r.min_size,
        max_size: r.max_size,
        cost_limit: r.cost_limit,
    }
}

/// Runs a model action with the step's rendered parameters. An `auto` step asks its
/// question with `generate`, and fails when the answer is not of its type.
pub(crate) async fn call(
    gateway: Option<&Gateway>,
    choice: &Choice,
    action: &str,
    params: &Map<String, Value>,
    use_cache: bool,
    on_delta: Option<orc_models::OnDelta<'_>>,
) -> (Envelope, Option<ModelCall>) {
    if action != auto::ACTION {
        return call_action(gateway, choice, action, params, use_cache, on_delta).await;
    }
    let (question, expected) = match auto::question(params) {
        Ok(asked) => asked,
        Err(e) => return (Envelope::fail(e, Value::Null), None),
    };
    let (mut envelope, record) =
        call_action(gateway, choice, "generate", &question, use_cache, on_delta).await;
    if envelope.success {
        let text = match &envelope.result {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match orc_pipeline::parse_answer(expected, &text) {
            Some(value) => envelope.result = value,
            None => {
                let model_used = envelope.model_used.take();
                envelope = Envelope::fail(
                    format!(
                        "the model's answer is not {}: `{}`",
                        expected.describe(),
                        text.trim()
                    ),
                    Value::String(text),
                );
                envelope.model_used = model_used;
            }
        }
    }
    (envelope, record)
}

async fn call_action(
    gateway: Option<&Gateway>,
    choice: &Choice,
    action: &str,
    params: &Map<String, Value>,
    use_cache: bool,
    on_delta: Option<orc_models::OnDelta<'_>>,
) -> (Envelope, Option<ModelCall>) {
    let Some(gateway) = gateway else {
        return (
            Envelope::fail(
                format!("`{action}` calls a model, and no model is configured"),
                Value::Null,
            ),
            None,
        );
    };
    let param = match params.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return (
                Envelope::fail("parameter `model` must be a model name", Value::Null),
                None,
            );
        }
    };
    let mut params = params.clone();
    params.remove("model");
    let (model, chosen_by) = match pick(gateway, choice, param) {
        Ok(Pick::Named(model)) => (model, None),
        Ok(Pick::Route(wanted)) => {
            let routed = actions::features(action, &params, &wanted.expertise)
                .map_err(|e| e.to_string())
                .and_then(|f| gateway.route_model(&wanted, &f).map_err(|e| e.to_string()));
            match routed {
                Ok((model, decision)) => (model, Some(format!("router: {}", decision.reason))),
                Err(e) => return (Envelope::fail(e, Value::Null), None),
            }
        }
        Err(e) => return (Envelope::fail(e, Value::Null), None),
        Ok(Pick::NoModel) => {
            return (
                Envelope::fail(
                    format!("`{action}` calls a model, and the step says `requires_model: none`"),
                    Value::Null,
                ),
                None,
            );
        }
    };
    let clock = std::time::Instant::now();
    let outcome = actions::run(gateway, &model, action, &params, use_cache, on_delta).await;
    let elapsed = clock.elapsed();
    match outcome {
        Ok(outcome) => {
            let record = ModelCall {
                model: outcome.model.name.clone(),
                provider: outcome.model.provider.as_str(),
                cached: outcome.source != Source::Upstream,
                usage: outcome.usage,
                cost: outcome.cost,
                elapsed,
                choice: ChoiceRecord {
                    chosen_by: chosen_by.unwrap_or_else(|| "named".to_owned()),
                    fallbacks: outcome.fallback,
                },
            };
            let mut envelope = Envelope::ok(outcome.result);
            envelope.model_used = Some(record.model.clone());
            (envelope, Some(record))
        }
        Err(e) => {
            let mut envelope = Envelope::fail(e.to_string(), Value::Null);
            envelope.retry = step_retry(&e);
            envelope.model_used = Some(model.spec.name.clone());
            let (usage, cost) = e.spent();
            let record = ModelCall {
                model: model.spec.name.clone(),
                provider: model.spec.provider.as_str(),
                cached: false,
                usage,
                cost,
                elapsed,
                choice: ChoiceRecord {
                    chosen_by: chosen_by.unwrap_or_else(|| "named".to_owned()),
                    fallbacks: e.fallbacks().to_vec(),
                },
            };
            (envelope, Some(record))
        }
    }
}

/// Whether the step's retry loop may run a failed model action again. One layer owns
/// each retry, and for a model call that layer is orc-models: it has already retried
/// what a retry can help (429, 5xx, connection errors and request timeouts, honouring
/// `Retry-After`, as often as its policy allows) and taken the fallbacks, so the step
/// does not multiply those attempts. Everything else would fail the same way again:
/// a budget refusal, another 4xx, a missing key, no model to route to, bad
/// parameters, an answer that did not match its schema even after the repair
/// attempt. (A model step that hits its own `timeout` is retried by the step: that
/// is not an error of the call.)
fn step_retry(_error: &orc_models::Error) -> Retry {
    Retry::No
}
