//! One step's work, run as its own task: render, call the tool with timeouts and retries.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use minijinja::Value as JValue;
use orc_pipeline::expr::{Expr, ExprSet};
use orc_pipeline::templates::{Lookup, TemplateSet};
use orc_pipeline::{Condition, DeclaredOutput, Param, Recovery, RetryBackoff, TemplateId};
use serde_json::{Map, Value};

use crate::models::{self, ModelCall};
use crate::node_id::NodeId;
use crate::recovery::{self, Failure, Handled};
use crate::resources::ToolLimits;
use crate::tools::{self, Callee, Envelope, Retry};

/// Retry back-off: the one policy orc-models' transport retries use too.
pub use orc_models::Backoff;

/// The wait before retry number `n` of a failure that asked to be retried `after` a while (a
/// `Retry-After`): that wait, at most the back-off's longest; the back-off when it asked for
/// none.
fn retry_delay(backoff: &Backoff, n: u32, after: Option<Duration>) -> Duration {
    match after {
        Some(after) => after.min(backoff.max),
        None => backoff.delay(n),
    }
}

/// What the scheduler hands a step task.
pub(crate) struct Job {
    pub(crate) node: NodeId,
    pub(crate) tool: Option<String>,
    /// What the step's tool resolved to when the run started.
    pub(crate) callee: Callee,
    pub(crate) action: Param,
    pub(crate) params: Param,
    pub(crate) scope: Arc<dyn Lookup>,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    /// For model steps: the gateway and how the model is chosen.
    pub(crate) model: Option<ModelJob>,
    /// For tool steps with `cache: true`: the step-result cache.
    pub(crate) results: Option<orc_cache::Cache>,
    /// The CPU pool and data chunk size tool calls share.
    pub(crate) limits: Arc<ToolLimits>,
    /// The step's id, as the result document and handlers name it.
    pub(crate) step_id: Arc<str>,
    /// The wait between the step's retries, when it sets one (`retry_config`).
    pub(crate) retry_backoff: Option<RetryBackoff>,
    /// Its error handlers (`on_error`).
    pub(crate) recovery: Option<Box<Recovery>>,
    /// Its declared output (`produces`, `location`).
    pub(crate) output: Option<Box<DeclaredOutput>>,
}

/// What a model step needs besides its parameters.
pub(crate) struct ModelJob {
    pub(crate) gateway: Option<orc_models::Gateway>,
    /// Told of a streamed answer's text as it arrives ([`crate::events::Event::ModelOutput`]).
    pub(crate) observer: Option<Arc<dyn crate::events::Observer>>,
    /// The step's id, as events name it.
    pub(crate) step_id: Arc<str>,
    pub(crate) choice: Arc<models::Choice>,
    pub(crate) use_cache: bool,
}

/// What a step task hands back.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) node: NodeId,
    pub(crate) action: String,
    pub(crate) envelope: Envelope,
    pub(crate) error_type: Option<&'static str>,
    /// Times the step's call was made (0 when it never was: a template error, an
    /// answer from the step-result cache).
    pub(crate) attempts: u32,
    pub(crate) retries: u32,
    /// Model steps: upstream attempts orc-models made over all of them (its own
    /// retries and fallbacks included; 0 when every answer came from a cache).
    pub(crate) model_attempts: Option<u32>,
    pub(crate) timed_out: bool,
    pub(crate) started_at: SystemTime,
    pub(crate) duration: Duration,
    /// The model call's record, for model steps.
    pub(crate) model: Option<ModelCall>,
    /// Whether the result came from the step-result cache.
    pub(crate) cached: bool,
    /// What an error handler did, when one applied.
    pub(crate) handled: Option<Handled>,
    /// The declared output's rendered location, once found there.
    pub(crate) location: Option<String>,
}

impl Done {
    /// A step's end with nothing done: no call, no action, an empty success.
    pub(crate) fn blank(node: NodeId, started_at: SystemTime, duration: Duration) -> Done {
        Done {
            node,
            action: String::new(),
            envelope: Envelope::ok(Value::Null),
            error_type: None,
            attempts: 0,
            retries: 0,
            model_attempts: None,
            timed_out: false,
            started_at,
            duration,
            model: None,
            cached: false,
            handled: None,
            location: None,
        }
    }
}

/// Runs a step: its attempts, then the check of its declared output, then, when it failed,
/// its error handlers (which may make more attempts, give a fallback value or name a handler
/// step).
pub(crate) async fn run(
    job: Job,
    templates: Arc<TemplateSet>,
    exprs: Arc<ExprSet>,
    backoff: Backoff,
) -> Done {
    let mut done = attempts(&job, &templates, backoff).await;
    check_output(&job, &templates, &exprs, &mut done).await;
    let Some(recovery) = job.recovery.as_deref() else {
        return done;
    };
    if done.envelope.success {
        return done;
    }
    let first = done.envelope.clone();
    let failed = failure(&job, &done, &first);
    let Some((index, handler)) =
        recovery::choose(recovery, &failed, &Renderer(&templates, &exprs), &job.scope)
    else {
        return done;
    };
    // The handler's own attempts of the step, whatever the failure.
    for n in 1..=handler.retries {
        tokio::time::sleep(delay(&job, &backoff, n, None)).await;
        tracing::info!(
            step = &*job.step_id,
            n,
            "the error handler tries the step again"
        );
        let mut again = attempts(&job, &templates, backoff).await;
        check_output(&job, &templates, &exprs, &mut again).await;
        again.retries += done.retries + 1;
        again.attempts += done.attempts;
        again.started_at = done.started_at;
        again.duration += done.duration;
        done = again;
        if done.envelope.success {
            done.handled = Some(Handled {
                record: serde_json::json!({ "handler": index, "recovered_by_retry": true }),
                step: None,
                error: Value::Null,
                then: orc_pipeline::Then::Continue,
            });
            return done;
        }
    }
    let last = done.envelope.clone();
    let failed = failure(&job, &done, &last);
    let handled = recovery::apply(
        index,
        handler,
        &failed,
        &mut done.envelope,
        &Renderer(&templates, &exprs),
        &job.scope,
    );
    if done.envelope.success {
        done.error_type = None;
    }
    done.handled = Some(handled);
    done
}

/// A step's templates and conditions, for its error handlers.
struct Renderer<'a>(&'a TemplateSet, &'a ExprSet);

impl recovery::Render for Renderer<'_> {
    fn value(&self, p: &Param, scope: &Arc<dyn Lookup>) -> Result<Value, String> {
        render(p, self.0, scope)
    }

    fn condition(&self, c: &Condition, scope: &Arc<dyn Lookup>) -> Result<bool, String> {
        condition(c, self.0, self.1, scope)
    }
}

/// A failed step's error as its handlers see it (`envelope` is the failed one's).
fn failure<'a>(job: &'a Job, done: &Done, envelope: &'a Envelope) -> Failure<'a> {
    Failure {
        step: &job.step_id,
        kind: done.error_type.unwrap_or("ToolError"),
        message: envelope.error.as_deref().unwrap_or(""),
        result: &envelope.result,
        attempts: done.attempts,
    }
}

/// After a step succeeded: its declared output must be there.
async fn check_output(job: &Job, templates: &TemplateSet, exprs: &ExprSet, done: &mut Done) {
    let Some(output) = job.output.as_deref() else {
        return;
    };
    if !done.envelope.success {
        return;
    }
    match recovery::check_output(
        &job.step_id,
        output,
        &mut done.envelope,
        &Renderer(templates, exprs),
        &job.scope,
        job.limits.sandbox.as_deref(),
    )
    .await
    {
        Ok(location) => done.location = location,
        Err((message, kind)) => {
            let info = done.envelope.output_info.take();
            done.envelope = Envelope::fail(message, done.envelope.result.take());
            done.envelope.output_info = info;
            done.error_type = Some(kind);
        }
    }
}

/// The wait before retry `n`: the step's own back-off when it sets one, else the run's.
fn delay(job: &Job, backoff: &Backoff, n: u32, after: Option<Duration>) -> Duration {
    match &job.retry_backoff {
        Some(b) => {
            let own = Duration::try_from_secs_f64(b.seconds(n)).unwrap_or(backoff.max);
            after.map_or(own, |a| {
                a.min(Duration::try_from_secs_f64(b.max_delay).unwrap_or(a))
            })
        }
        None => retry_delay(backoff, n, after),
    }
}

/// The step's attempts: render, call, and retry what a retry can help, `max_retries` times.
async fn attempts(job: &Job, templates: &Arc<TemplateSet>, backoff: Backoff) -> Done {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let done = |action: String, envelope: Envelope, error_type, retries, timed_out| Done {
        action,
        envelope,
        error_type,
        retries,
        timed_out,
        ..Done::blank(job.node, started_at, clock.elapsed())
    };
    let action = match render(&job.action, templates, &job.scope) {
        Ok(Value::String(a)) => a,
        Ok(other) => {
            let msg = format!(
                "`action` must render to text, not {}",
                tools::json_type(&other)
            );
            return done(
                String::new(),
                Envelope::fail(msg, Value::Null),
                Some("TemplateError"),
                0,
                false,
            );
        }
        Err(e) => {
            return done(
                String::new(),
                Envelope::fail(e, Value::Null),
                Some("TemplateError"),
                0,
                false,
            );
        }
    };
    if job.tool.is_none() && action == "evaluate_condition" {
        // Its parameters are not rendered: the condition is evaluated as written, with
        // values bound, never pasted into its text.
        let envelope = evaluate_condition(&job.params, templates, &job.scope);
        let mut finished = done(action, envelope, None, 0, false);
        finished.attempts = 1;
        return finished;
    }
    let params = match render(&job.params, templates, &job.scope) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(other) => {
            let msg = format!(
                "`parameters` must be a mapping, not {}",
                tools::json_type(&other)
            );
            return done(
                action,
                Envelope::fail(msg, Value::Null),
                Some("TemplateError"),
                0,
                false,
            );
        }
        Err(e) => {
            return done(
                action,
                Envelope::fail(e, Value::Null),
                Some("TemplateError"),
                0,
                false,
            );
        }
    };
    let cache_key = job
        .results
        .as_ref()
        .map(|_| result_key(job.tool.as_deref(), &action, &params));
    if let (Some(cache), Some(key)) = (&job.results, &cache_key)
        && let Some(envelope) = cache
            .get(key)
            .await
            .and_then(|bytes| serde_json::from_slice::<Envelope>(&bytes).ok())
    {
        let mut finished = done(action, envelope, None, 0, false);
        finished.cached = true;
        return finished;
    }
    // Model steps: every upstream attempt orc-models makes, over every step attempt
    // (one that timed out included).
    let model_attempts = orc_models::Attempts::default();
    let mut retries = 0;
    loop {
        let call = async {
            match &job.model {
                Some(m) => {
                    let emit = |text: &str| {
                        if let Some(observer) = &m.observer {
                            observer.event(crate::events::Event::ModelOutput {
                                id: &m.step_id,
                                text,
                            });
                        }
                    };
                    let on_delta: Option<orc_models::OnDelta<'_>> =
                        m.observer.is_some().then_some(&emit);
                    let call = models::call(
                        m.gateway.as_ref(),
                        &m.choice,
                        &action,
                        &params,
                        m.use_cache,
                        on_delta,
                    );
                    model_attempts.scope(call).await
                }
                None => (
                    job.callee.call(&action, params.clone(), &job.limits).await,
                    None,
                ),
            }
        };
        // Tools that start processes stop them at the deadline themselves, keeping what they
        // printed; the outer limit gives them time to, and catches any tool that overruns.
        // Boxed: a model call's future is large, and this one is awaited once per attempt.
        let call = Box::pin(tools::within_step_timeout(job.timeout, call));
        let limit = job.timeout.saturating_add(job.callee.stop_grace());
        let (envelope, timed_out, model) = match tokio::time::timeout(limit, call).await {
            Ok((e, model)) => {
                let timed_out = e
                    .result
                    .get("timed_out")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (e, timed_out, model)
            }
            Err(_) => (
                Envelope::fail_retryable(
                    format!("timed out after {} s", job.timeout.as_secs_f64()),
                    Value::Null,
                ),
                true,
                None,
            ),
        };
        let again = match envelope.retry {
            _ if envelope.success || retries >= job.max_retries => None,
            // Timeouts (the step's, or a command's own) and commands that ran and failed.
            Retry::Yes { after } => Some(after),
            Retry::No => {
                if job.max_retries > 0 {
                    tracing::info!(
                        node = job.node.index(),
                        error = envelope.error.as_deref().unwrap_or(""),
                        "step failed in a way a retry cannot help; not retried"
                    );
                }
                None
            }
        };
        let Some(after) = again else {
            let error_type = match (envelope.success, timed_out) {
                (true, _) => None,
                (false, true) => Some("Timeout"),
                (false, false) => Some(if model.is_some() {
                    "ModelError"
                } else {
                    "ToolError"
                }),
            };
            if envelope.success
                && let (Some(cache), Some(key)) = (&job.results, &cache_key)
                && let Ok(bytes) = serde_json::to_vec(&envelope)
            {
                cache.put(key, &bytes).await;
            }
            let mut finished = done(action, envelope, error_type, retries, timed_out);
            finished.model = model;
            finished.attempts = retries + 1;
            finished.model_attempts = job.model.as_ref().map(|_| model_attempts.get());
            return finished;
        };
        retries += 1;
        tracing::info!(
            node = job.node.index(),
            retries,
            error = envelope.error.as_deref().unwrap_or(""),
            "step failed; retrying"
        );
        tokio::time::sleep(delay(job, &backoff, retries, after)).await;
    }
}

/// The step-result cache's key: a format version, the tool, the action and the rendered
/// parameters (serialized with their keys in a fixed order).
fn result_key(tool: Option<&str>, action: &str, params: &Map<String, Value>) -> Vec<u8> {
    let mut sorted: Vec<(&String, &Value)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut key = format!("orc-step-result/v1\n{}\n{action}\n", tool.unwrap_or("")).into_bytes();
    for (k, v) in sorted {
        key.extend_from_slice(k.as_bytes());
        key.push(b'=');
        key.extend_from_slice(orc_models::canonical_json(v).unwrap_or_default().as_bytes());
        key.push(b'\n');
    }
    key
}

/// Renders a parameter tree: templates become strings, literals stay as they are.
pub(crate) fn render(
    p: &Param,
    templates: &TemplateSet,
    scope: &Arc<dyn Lookup>,
) -> Result<Value, String> {
    Ok(match p {
        Param::Lit(v) => v.clone(),
        Param::Tmpl(id) => Value::String(
            templates
                .render(*id, scope)
                .map_err(|e| format!("template `{}`: {e}", templates.source(*id)))?,
        ),
        Param::List(items) => Value::Array(
            items
                .iter()
                .map(|i| render(i, templates, scope))
                .collect::<Result<_, _>>()?,
        ),
        Param::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v, templates, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Evaluates a condition of the plan. Errors are reported, never taken as true.
pub(crate) fn condition(
    c: &Condition,
    templates: &TemplateSet,
    exprs: &ExprSet,
    scope: &Arc<dyn Lookup>,
) -> Result<bool, String> {
    match c {
        Condition::Literal(b) => Ok(*b),
        Condition::Template(id) => template_condition(*id, templates, scope),
        Condition::Expr(id) => match exprs.get(*id) {
            Some(expr) => expr_condition(expr, scope),
            None => Err(format!("the plan has no condition expression {}", id.0)),
        },
    }
}

/// A `{{ }}` condition: the value of a lone `{{ expression }}` (text read as a condition), else
/// the rendered text read as a condition. Which of the two was decided when the plan's
/// templates were compiled.
fn template_condition(
    id: TemplateId,
    templates: &TemplateSet,
    scope: &Arc<dyn Lookup>,
) -> Result<bool, String> {
    if templates.is_single_expression(id) {
        let v = templates.evaluate(id, scope).map_err(|e| e.message)?;
        if let Some(s) = v.as_str() {
            return read_text(s);
        }
        return Ok(v.is_true());
    }
    let text = templates.render(id, scope).map_err(|e| e.message)?;
    read_text(&text)
}

/// An expression of orc's condition language, parsed already, on the scope's values.
fn expr_condition(expr: &Expr, scope: &Arc<dyn Lookup>) -> Result<bool, String> {
    let scope = ExprScope(Arc::clone(scope));
    let v = expr.eval(&scope).map_err(|e| e.to_string())?;
    Ok(orc_pipeline::expr::truthy(&v))
}

/// A rendered condition must say true or false; any other text is an error, never parsed as code.
fn read_text(text: &str) -> Result<bool, String> {
    orc_pipeline::literal_bool(text).ok_or_else(|| {
        let shown: String = text.chars().take(80).collect();
        format!("the condition rendered to `{shown}`, which is neither true nor false")
    })
}

struct ExprScope(Arc<dyn Lookup>);

impl orc_pipeline::expr::Scope for ExprScope {
    fn get(&self, name: &str) -> Option<Value> {
        self.0
            .lookup(name)
            .and_then(|v: JValue| serde_json::to_value(&v).ok())
    }
}

/// The tool-less `evaluate_condition` action, on its unrendered parameters: its
/// `condition` is evaluated exactly as a step's `condition:` key is (a `{{ }}`
/// template by the template engine, whose text must then say true or false; any other
/// text as an expression with its variables bound as values), so no input can change
/// the logic of the condition.
fn evaluate_condition(
    params: &Param,
    templates: &TemplateSet,
    scope: &Arc<dyn Lookup>,
) -> Envelope {
    let cond = match params {
        Param::Lit(Value::Object(map)) => map.get("condition").cloned().map(Param::Lit),
        Param::Map(entries) => entries
            .iter()
            .find(|(k, _)| k == "condition")
            .map(|(_, v)| v.clone()),
        Param::Lit(Value::Null) => None,
        _ => {
            return Envelope::fail(
                "`parameters` of `evaluate_condition` must be a mapping",
                Value::Null,
            );
        }
    };
    let (outcome, shown, evaluator) = match cond {
        None => return Envelope::fail("missing parameter `condition`", Value::Null),
        Some(Param::Lit(Value::Bool(b))) => (Ok(b), Value::Bool(b), "literal"),
        Some(Param::Lit(Value::Number(n))) if n.as_u64().is_some_and(|n| n <= 1) => {
            let b = n.as_u64() == Some(1);
            (Ok(b), Value::Number(n), "literal")
        }
        Some(Param::Lit(Value::String(s))) => {
            let text = s.trim().to_owned();
            match orc_pipeline::literal_bool(&text) {
                Some(b) => (Ok(b), Value::String(text), "literal"),
                None => (
                    // A parameter, not a condition of the plan: parsed when the step runs.
                    Expr::parse(&text)
                        .map_err(|e| e.to_string())
                        .and_then(|expr| expr_condition(&expr, scope)),
                    Value::String(text),
                    "expression",
                ),
            }
        }
        Some(Param::Tmpl(id)) => (
            template_condition(id, templates, scope),
            Value::String(templates.source(id).trim().to_owned()),
            "template",
        ),
        Some(Param::Lit(other)) => {
            return Envelope::fail(
                format!("`condition` must be text, not {}", tools::json_type(&other)),
                Value::Null,
            );
        }
        Some(Param::List(_) | Param::Map(_)) => {
            return Envelope::fail("`condition` must be text, not a collection", Value::Null);
        }
    };
    match outcome {
        Ok(b) => Envelope::ok(
            serde_json::json!({ "result": b, "condition": shown, "evaluator_type": evaluator }),
        ),
        Err(e) => {
            let text = shown
                .as_str()
                .map_or_else(|| shown.to_string(), str::to_owned);
            Envelope::fail(
                format!("condition `{text}`: {e}"),
                serde_json::json!({ "result": false, "condition": shown }),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A scope of plain values.
    struct Vars(Map<String, Value>);

    impl Lookup for Vars {
        fn lookup(&self, name: &str) -> Option<JValue> {
            self.0.get(name).map(orc_pipeline::templates::to_value)
        }
    }

    const CONDITIONS: &str = r#"
name: conditions
inputs: { n: 3, word: "yes" }
steps:
  - { id: a, action: echo, parameters: { message: a }, condition: "n > 2" }
  - { id: b, action: echo, parameters: { message: b }, condition: "{{ word }}" }
  - { id: c, action: echo, parameters: { message: c }, condition: "{{ n > 2 }}" }
  - { id: d, action: echo, parameters: { message: d }, condition: "{% if n > 2 %}yes{% endif %}no" }
  - { id: e, action: echo, parameters: { message: e }, condition: "{{ word }} and {{ n }}" }
  - { id: f, action: echo, parameters: { message: f }, condition: "n > 2 and word == 'yes'" }
  - { id: g, action: echo, parameters: { message: g }, condition: "true" }
  - { id: h, action: echo, parameters: { message: h }, condition: "{{ word | length }}" }
"#;

    fn scopes() -> Vec<Arc<dyn Lookup>> {
        let mut out: Vec<Arc<dyn Lookup>> = Vec::new();
        for (n, word) in [
            (json!(3), json!("yes")),
            (json!(1), json!("no")),
            (json!(5), json!("maybe")),
            (json!("x"), json!(true)),
            (json!(null), json!(0)),
        ] {
            let mut m = Map::new();
            m.insert("n".into(), n);
            m.insert("word".into(), word);
            out.push(Arc::new(Vars(m)));
        }
        // Nothing bound: every condition that reads a name fails.
        out.push(Arc::new(Vars(Map::new())));
        out
    }

    #[test]
    fn a_plan_from_the_compile_cache_evaluates_conditions_as_a_fresh_one() {
        let catalog = orc_pipeline::Catalog::new();
        let fresh = orc_pipeline::compile(CONDITIONS, &catalog).expect("compiles");
        let stored = serde_json::to_vec(&*fresh.plan).expect("serializes");
        let plan: orc_pipeline::Plan = serde_json::from_slice(&stored).expect("deserializes");
        let loaded =
            orc_pipeline::Compiled::from_plan(plan, fresh.findings.clone()).expect("loads");
        let mut outcomes = Vec::new();
        for scope in scopes() {
            for (a, b) in fresh.plan.steps.iter().zip(&loaded.plan.steps) {
                let (Some(ca), Some(cb)) = (&a.condition, &b.condition) else {
                    panic!("step `{}` lost its condition", a.id);
                };
                // Evaluated many times: parsed once, the same answer every time.
                let first = condition(ca, &fresh.templates, &fresh.exprs, &scope);
                for _ in 0..10 {
                    assert_eq!(condition(ca, &fresh.templates, &fresh.exprs, &scope), first);
                    assert_eq!(
                        condition(cb, &loaded.templates, &loaded.exprs, &scope),
                        first,
                        "step `{}`",
                        a.id
                    );
                }
                outcomes.push(first);
            }
        }
        // Under the first scope (n = 3, word = "yes"): as before the executable form existed.
        let first: Vec<_> = outcomes[..8]
            .iter()
            .map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(
            first,
            [
                Some(true),
                Some(true),
                Some(true),
                None,
                None,
                Some(true),
                Some(true),
                Some(true)
            ]
        );
        assert!(outcomes.iter().any(|r| r == &Ok(false)));
    }

    #[test]
    fn an_expression_missing_from_the_table_is_an_error_not_a_panic() {
        let templates = TemplateSet::compile(Vec::new().into()).expect("empty set");
        let scope: Arc<dyn Lookup> = Arc::new(Vars(Map::new()));
        let c = Condition::Expr(orc_pipeline::ExprId(7));
        assert_eq!(
            condition(&c, &templates, &ExprSet::default(), &scope),
            Err("the plan has no condition expression 7".to_string())
        );
    }

    #[test]
    fn a_wait_the_failure_asks_for_is_honoured_up_to_the_longest() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: true,
        };
        let asked = Some(Duration::from_secs(3));
        assert_eq!(retry_delay(&b, 1, asked), Duration::from_secs(3));
        assert_eq!(retry_delay(&b, 5, asked), Duration::from_secs(3));
        let too_long = Some(Duration::from_secs(3600));
        assert_eq!(retry_delay(&b, 1, too_long), Duration::from_secs(10));
        let d = retry_delay(&b, 2, None);
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
    }
}
