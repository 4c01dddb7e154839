//! First pass: YAML nodes to step drafts, with every type and key checked.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::expr::Expr;
use crate::plan::{
    Condition, DeclaredOutput, ExprId, Handler, ModelChoice, Param, RetryBackoff, TemplateId,
};
use crate::templates::is_template;
use crate::yaml::{Kind, Node, Pos, literal_bool};

use super::Catalog;
use super::model;
use super::read::{Reader, valid_id};

mod prose;
mod single;

/// Something a step reads from its scope: a template or a condition expression.
#[derive(Debug, Clone)]
pub(super) enum Use {
    Template(TemplateId),
    Names(Vec<String>),
}

/// A place a step reads names from, for name resolution and diagnostics.
#[derive(Debug, Clone)]
pub(super) struct UseSite {
    pub(super) what: Use,
    pub(super) pos: Pos,
    pub(super) field: String,
}

/// A step as written, with references still as names.
#[derive(Debug)]
pub(super) struct Draft {
    pub(super) id: String,
    pub(super) pos: Pos,
    /// Where the id is written.
    pub(super) id_pos: Pos,
    pub(super) kind: DraftKind,
    pub(super) deps: Vec<(String, Pos)>,
    pub(super) uses: Vec<UseSite>,
    pub(super) condition: Option<Condition>,
    pub(super) on_false: Option<(String, Pos)>,
    pub(super) on_success: Option<(String, Pos)>,
    pub(super) on_failure: Option<(String, Pos)>,
    pub(super) timeout: Option<f64>,
    pub(super) max_retries: Option<u32>,
    pub(super) model: Option<ModelChoice>,
    /// `cache: false` opts a model step out of the response cache; `cache: true` lets a
    /// tool step reuse the result of an identical earlier call (the step-result cache).
    pub(super) cache: Option<bool>,
    /// `pool:` the worker pool the step runs on when the run has a queue (`local`: the
    /// coordinator itself).
    pub(super) pool: Option<String>,
    /// `on_error`, `error_handlers`, `retry`, `retry_config`, `produces`, `location`.
    pub(super) recovery: DraftRecovery,
}

/// What `on_error`, `error_handlers`, `retry`, `retry_config`, `produces` and `location` say.
#[derive(Debug, Default)]
pub(super) struct DraftRecovery {
    /// `on_error: WORD`: a policy, or (when it names a step of the level) a step to go to.
    pub(super) word: Option<(String, Pos)>,
    /// The handlers, in the order they are tried.
    pub(super) handlers: Vec<DraftHandler>,
    /// Retries after the first attempt (`retry`, `retry_config`).
    pub(super) retries: Option<u32>,
    pub(super) backoff: Option<RetryBackoff>,
    pub(super) output: Option<DeclaredOutput>,
}

/// A handler as written: its step still a name.
#[derive(Debug)]
pub(super) struct DraftHandler {
    pub(super) handler: Handler,
    pub(super) step: Option<(String, Pos)>,
}

#[derive(Debug)]
pub(super) enum DraftKind {
    Action {
        tool: Option<String>,
        action: Param,
        params: Param,
    },
    ForEach {
        items: Param,
        body: Vec<Draft>,
        max_parallel: u32,
        loop_var: Option<String>,
        /// `max_concurrent: "{{ … }}"`, rendered when the loop starts.
        max_parallel_from: Option<TemplateId>,
        /// py-orc's `foreach:` on an action step: the loop's result lists the iterations'.
        collect: bool,
    },
    While {
        condition: Condition,
        until: Option<Condition>,
        body: Vec<Draft>,
        max_iterations: u32,
        /// `max_iterations: "{{ … }}"`, rendered when the loop starts.
        max_iterations_from: Option<TemplateId>,
    },
}

/// Words that are failure policies, and so can never be step ids.
pub(super) const POLICIES: &[&str] = &["fail", "continue", "skip", "retry"];

const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "metadata",
    "tool",
    "action",
    "parameters",
    "dependencies",
    "depends_on",
    "condition",
    "if",
    "on_false",
    "on_success",
    "on_failure",
    "continue_on_error",
    "timeout",
    "max_retries",
    "cache",
    "pool",
    "for_each",
    "foreach",
    "parallel",
    "max_concurrent",
    "steps",
    "max_parallel",
    "loop_var",
    "add_completion_task",
    "while",
    "max_iterations",
    "until",
    "model",
    "requires_model",
    "on_error",
    "error_handlers",
    "retry",
    "retry_config",
    "produces",
    "location",
    "inputs",
    "outputs",
];

/// Keys the earlier Python system accepted that orc does not implement, with what to do instead.
fn unsupported_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "goto" => "use `on_success`, `on_false` or `on_failure` with a step id",
        "action_loop"
        | "create_parallel_queue"
        | "while_condition"
        | "break_on_error"
        | "iteration_timeout" => "write the loop as `for_each` or `while` with `steps`",
        "format" | "output_schema" | "schema" | "size_limit" | "output_description" => {
            "declare the file with `produces` and `location`, and write it with a `filesystem` step"
        }
        "loop_name" => "the loop's id is its name; remove the key",
        _ => return None,
    })
}

/// Tools whose `timeout` parameter is the child process's time limit, in seconds.
const PROCESS_TOOLS: &[&str] = &["terminal", "python-executor"];

/// A literal `parameters.timeout` of a process tool: a number of seconds in range (a
/// template is checked when the step runs).
fn check_timeout_param(r: &mut Reader<'_>, t: &Node) {
    const FIELD: &str = "parameters.timeout";
    match &t.kind {
        Kind::Int(_) | Kind::Float(_) => {
            r.seconds(t, FIELD);
        }
        Kind::Str(s) if is_template(s) => {}
        Kind::Str(s) => match s.trim().parse::<f64>() {
            Ok(v) => {
                r.seconds_in_range(v, t, FIELD);
            }
            Err(_) => r.wrong_type(t, FIELD, "a number of seconds"),
        },
        Kind::Null => {}
        _ => r.wrong_type(t, FIELD, "a number of seconds"),
    }
}

/// A step's `parameters` against its action's declared parameters: every unknown one (with the
/// closest declared name), every missing required one, and every literal of the wrong type.
/// Templates are checked when the step runs.
/// Tool parameters py-orc's examples pass that py-orc's tools never read: a warning, not
/// an error, since the pipeline means nothing by them that orc leaves undone.
const PY_ORC_IGNORED: &[(&str, &str, &str)] = &[(
    "validation",
    "validation_level",
    "py-orc's validation tool never read it, so orc does not either; its strictness is `mode` (strict, lenient, report_only)",
)];

/// A model step's `parameters` that its action does not take: each is a warning, and the step
/// runs without it. py-orc's model actions read the parameters they know and ignored the rest
/// (its examples pass `target:`, `topic: AUTO`, `response_format:`), so such a pipeline means
/// nothing by them that orc would leave undone; the warning names the closest parameter, for a
/// typo. Their `<AUTO>` tags are never asked (see [`super::auto`]).
fn ignored_model_params(
    r: &mut Reader<'_>,
    action: &str,
    takes: &[String],
    step: &Node,
) -> Vec<String> {
    let Some(Kind::Map(entries)) = step.get("parameters").map(|p| &p.kind) else {
        return Vec::new();
    };
    let mut ignored = Vec::new();
    for (key, _) in entries {
        if takes.contains(&key.name) {
            continue;
        }
        let d = Diagnostic::new(
            Code::W102,
            key.pos,
            format!(
                "`parameters.{}` has no effect: action `{action}` does not take it",
                key.name
            ),
        )
        .field(format!("parameters.{}", key.name));
        r.report(
            match did_you_mean(&key.name, takes.iter().map(String::as_str)) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!(
                    "it takes: {}; remove the parameter",
                    takes.join(", ")
                )),
            },
        );
        ignored.push(key.name.clone());
    }
    ignored
}

/// `params` without the mapping keys `names`.
fn without(params: Param, names: &[String]) -> Param {
    if names.is_empty() {
        return params;
    }
    match params {
        Param::Lit(serde_json::Value::Object(mut map)) => {
            map.retain(|k, _| !names.contains(k));
            Param::Lit(serde_json::Value::Object(map))
        }
        Param::Map(entries) => {
            let kept: Vec<(String, Param)> = entries
                .into_iter()
                .filter(|(k, _)| !names.contains(k))
                .collect();
            if kept.iter().all(|(_, p)| matches!(p, Param::Lit(_))) {
                Param::Lit(serde_json::Value::Object(
                    kept.into_iter()
                        .filter_map(|(k, p)| match p {
                            Param::Lit(v) => Some((k, v)),
                            _ => None,
                        })
                        .collect(),
                ))
            } else {
                Param::Map(kept)
            }
        }
        other => other,
    }
}

fn check_params(
    r: &mut Reader<'_>,
    tool: &str,
    spec: &super::ActionSpec,
    declared: &[super::ParamSpec],
    step: &Node,
) {
    let params = step.get("parameters");
    let entries: &[(crate::yaml::Key, Node)] = match params.map(|p| &p.kind) {
        Some(Kind::Map(entries)) => entries,
        _ => &[],
    };
    for (key, value) in entries {
        if let Some((_, _, why)) = PY_ORC_IGNORED
            .iter()
            .find(|(t, k, _)| *t == tool && *k == key.name)
        {
            r.report(
                Diagnostic::new(
                    Code::W102,
                    key.pos,
                    format!("`parameters.{}` has no effect", key.name),
                )
                .field(format!("parameters.{}", key.name))
                .hint(*why),
            );
            continue;
        }
        let Some(p) = declared.iter().find(|p| p.name == key.name) else {
            let mut d = Diagnostic::new(
                Code::E022,
                key.pos,
                format!(
                    "`{tool}` action `{}` has no parameter `{}`",
                    spec.name, key.name
                ),
            )
            .field(format!("parameters.{}", key.name));
            d = match did_you_mean(&key.name, declared.iter().map(|p| p.name.as_str())) {
                Some(s) => d.hint(format!(
                    "did you mean `{s}`? (`orc tools {tool}` lists them)"
                )),
                None if declared.is_empty() => d.hint("it takes no parameters"),
                None => d.hint(format!(
                    "it takes: {}",
                    declared
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            r.report(d);
            continue;
        };
        let literal = match &value.kind {
            Kind::Str(s) if is_template(s) => None,
            _ if contains_template(value) => None,
            _ => Some(value.to_json()),
        };
        // A process tool's `timeout` has its own check, with its range (above).
        let checked = PROCESS_TOOLS.contains(&tool) && p.name == "timeout";
        if let Some(v) = literal
            && !checked
            && !p.ty.accepts(&v)
        {
            r.wrong_type(
                value,
                &format!("parameters.{}", key.name),
                &format!("{} {}", article(p.ty.name()), p.ty.name()),
            );
        }
    }
    for group in &spec.one_of {
        if !entries.iter().any(|(k, _)| group.contains(&k.name)) {
            let names: Vec<String> = group.iter().map(|n| format!("`{n}`")).collect();
            r.report(
                Diagnostic::new(
                    Code::E002,
                    params.map_or(step.pos, |n| n.pos),
                    format!(
                        "`{tool}` action `{}` needs one of the parameters {}",
                        spec.name,
                        names.join(", ")
                    ),
                )
                .field(format!(
                    "parameters.{}",
                    group.first().map_or("", String::as_str)
                )),
            );
        }
    }
    for p in declared.iter().filter(|p| p.required) {
        if !entries.iter().any(|(k, _)| k.name == p.name) {
            r.report(
                Diagnostic::new(
                    Code::E002,
                    params.map_or(step.pos, |n| n.pos),
                    format!(
                        "`{tool}` action `{}` needs the parameter `{}`",
                        spec.name, p.name
                    ),
                )
                .field(format!("parameters.{}", p.name))
                .hint(format!("`{}`: {}", p.name, p.description)),
            );
        }
    }
}

/// Whether a node holds a template anywhere inside it.
fn contains_template(node: &Node) -> bool {
    match &node.kind {
        Kind::Str(s) => is_template(s),
        Kind::Seq(items) => items.iter().any(contains_template),
        Kind::Map(entries) => entries.iter().any(|(_, v)| contains_template(v)),
        _ => false,
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Tool-less actions and the aliases users write for them.
pub(super) fn normalize_action(action: &str) -> &str {
    match action {
        "generate_text" | "generate-text" => "generate",
        "analyze" => "analyze_text",
        // py-orc's examples' names for a model call and for structured output.
        "llm_generate" | "llm_call" => "generate",
        "generate-structured" => "generate_structured",
        other => other,
    }
}

/// Tool-less actions that call a model.
pub(super) const MODEL_ACTIONS: &[&str] = &[
    "generate",
    // Asks one `<AUTO>` tag over templates when its step is about to run.
    "auto",
    "generate_structured",
    "analyze_text",
    "embed",
    "extract_structured",
];
const TOOLLESS_ACTIONS: &[&str] = &["echo", "debug", "evaluate_condition"];

/// A mapping parameter from its entries: a literal when none holds a template.
fn mapping(node: &Node, parts: Vec<(String, Param)>) -> Param {
    if parts.iter().all(|(_, p)| matches!(p, Param::Lit(_))) {
        Param::Lit(node.to_json())
    } else {
        Param::Map(parts)
    }
}

/// The tool whose `pipeline` parameter may be a sub-pipeline's own YAML, kept unrendered.
const SUB_PIPELINE_TOOL: &str = "pipeline-executor";

/// Collects step drafts and template sources.
pub(super) struct Drafter<'a> {
    pub(super) catalog: &'a Catalog,
    /// The pipeline text, to place findings inside a value.
    source: &'a str,
    pub(super) templates: Vec<String>,
    template_index: HashMap<String, TemplateId>,
    /// Where each template was first written: for syntax diagnostics.
    pub(super) template_sites: Vec<(Pos, Option<String>, String)>,
    /// Condition expression sources, each once, in [`ExprId`] order.
    pub(super) exprs: Vec<String>,
    /// The same expressions, parsed.
    pub(super) parsed_exprs: Vec<Expr>,
    expr_index: HashMap<String, ExprId>,
    /// The innermost `while` loop whose body is being drafted: py-orc's `{{ <loop>.iteration }}`
    /// there is the iteration's number.
    while_loop: Option<String>,
}

impl<'a> Drafter<'a> {
    pub(super) fn new(catalog: &'a Catalog, source: &'a str) -> Self {
        Drafter {
            catalog,
            source,
            templates: Vec::new(),
            template_index: HashMap::new(),
            template_sites: Vec::new(),
            exprs: Vec::new(),
            parsed_exprs: Vec::new(),
            expr_index: HashMap::new(),
            while_loop: None,
        }
    }

    /// The id of a condition expression that parsed, added on its first use.
    fn expr(&mut self, src: String, parsed: Expr) -> ExprId {
        if let Some(id) = self.expr_index.get(&src) {
            return *id;
        }
        let id = ExprId(u32::try_from(self.exprs.len()).unwrap_or(u32::MAX));
        self.exprs.push(src.clone());
        self.parsed_exprs.push(parsed);
        self.expr_index.insert(src, id);
        id
    }

    pub(super) fn template(
        &mut self,
        src: &str,
        pos: Pos,
        step: Option<&str>,
        field: &str,
    ) -> TemplateId {
        let own_iteration = self
            .while_loop
            .as_deref()
            .and_then(|l| own_iteration(src, l));
        let src = &*super::bindings::strip_loop_dollars(own_iteration.as_deref().unwrap_or(src));
        if let Some(id) = self.template_index.get(src) {
            return *id;
        }
        let id = TemplateId(u32::try_from(self.templates.len()).unwrap_or(u32::MAX));
        self.templates.push(src.to_string());
        self.template_index.insert(src.to_string(), id);
        self.template_sites
            .push((pos, step.map(str::to_string), field.to_string()));
        id
    }

    /// A parameter tree: strings with templates become [`Param::Tmpl`].
    pub(super) fn param(
        &mut self,
        node: &Node,
        step: Option<&str>,
        field: &str,
        uses: &mut Vec<UseSite>,
    ) -> Param {
        match &node.kind {
            Kind::Str(s) if is_template(s) => {
                let id = self.template(s, node.pos, step, field);
                uses.push(UseSite {
                    what: Use::Template(id),
                    pos: node.pos,
                    field: field.to_string(),
                });
                Param::Tmpl(id)
            }
            Kind::Seq(items) => {
                let parts: Vec<Param> = items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.param(n, step, &format!("{field}[{i}]"), uses))
                    .collect();
                if parts.iter().all(|p| matches!(p, Param::Lit(_))) {
                    Param::Lit(node.to_json())
                } else {
                    Param::List(parts)
                }
            }
            Kind::Map(entries) => {
                let parts: Vec<(String, Param)> = entries
                    .iter()
                    .map(|(k, v)| {
                        let p = self.param(v, step, &format!("{field}.{}", k.name), uses);
                        (k.name.clone(), p)
                    })
                    .collect();
                mapping(node, parts)
            }
            _ => Param::Lit(node.to_json()),
        }
    }

    /// `pipeline-executor`'s parameters. An inline sub-pipeline (a `pipeline` text with a line
    /// break) is kept as written: its templates are the sub-pipeline's own, rendered in its
    /// run over its inputs and steps, never in the caller's.
    fn sub_pipeline_params(
        &mut self,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> Param {
        let Kind::Map(entries) = &node.kind else {
            return self.param(node, step, "parameters", uses);
        };
        let parts: Vec<(String, Param)> = entries
            .iter()
            .map(|(k, v)| {
                let p = match &v.kind {
                    Kind::Str(s) if k.name == "pipeline" && s.trim_end().contains('\n') => {
                        Param::Lit(serde_json::Value::String(s.clone()))
                    }
                    _ => self.param(v, step, &format!("parameters.{}", k.name), uses),
                };
                (k.name.clone(), p)
            })
            .collect();
        mapping(node, parts)
    }

    /// A condition: a boolean, a literal word, a `{{ }}` template, or an expression.
    pub(super) fn condition(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        field: &str,
        uses: &mut Vec<UseSite>,
    ) -> Option<Condition> {
        let text = match &node.kind {
            Kind::Bool(b) => return Some(Condition::Literal(*b)),
            Kind::Int(0) => return Some(Condition::Literal(false)),
            Kind::Int(1) => return Some(Condition::Literal(true)),
            Kind::Str(s) => s.trim().to_string(),
            _ => {
                r.wrong_type(node, field, "a condition (a string or true/false)");
                return None;
            }
        };
        if let Some(b) = literal_bool(&text) {
            return Some(Condition::Literal(b));
        }
        if is_template(&text) {
            let id = self.template(&text, node.pos, r.step.as_deref(), field);
            uses.push(UseSite {
                what: Use::Template(id),
                pos: node.pos,
                field: field.to_string(),
            });
            return Some(Condition::Template(id));
        }
        if text.is_empty() {
            r.report(
                Diagnostic::new(Code::E012, node.pos, format!("`{field}` is empty"))
                    .field(field)
                    .hint("write a condition such as `count > 3`, or remove the key"),
            );
            return None;
        }
        match Expr::parse(&text) {
            Ok(expr) => {
                uses.push(UseSite {
                    what: Use::Names(expr.names().into_iter().map(str::to_string).collect()),
                    pos: node.pos,
                    field: field.to_string(),
                });
                Some(Condition::Expr(self.expr(text, expr)))
            }
            Err(e) => {
                let mut pos = node.pos;
                if let (Some(off), Kind::Str(raw)) = (e.offset(), &node.kind)
                    && let Some(quote) = self.written_at(node.pos, raw)
                {
                    // Point into the condition when it is written as is, on one line.
                    let off = (raw.len() - raw.trim_start().len() + off).min(raw.len());
                    let chars = raw.get(..off).map_or(0, |s| s.chars().count());
                    pos.col += quote + u32::try_from(chars).unwrap_or(0);
                }
                r.report(
                    Diagnostic::new(Code::E012, pos, format!("`{field}` does not parse: {e}"))
                        .field(field)
                        .hint("conditions use Python-like expressions: `a == 'x' and n > 3`, or a `{{ }}` template"),
                );
                None
            }
        }
    }

    /// Whether `raw` is written verbatim at `pos`: `Some(0)` when plain, `Some(1)` when in
    /// quotes; `None` when escapes, folding or line breaks make the text differ.
    fn written_at(&self, pos: Pos, raw: &str) -> Option<u32> {
        let line = self
            .source
            .lines()
            .nth((pos.line as usize).checked_sub(1)?)?;
        let at = line
            .char_indices()
            .nth((pos.col as usize).checked_sub(1)?)
            .map(|(i, _)| i)?;
        let rest = &line[at..];
        if rest.starts_with(raw) {
            Some(0)
        } else if (rest.starts_with('"') || rest.starts_with('\'')) && rest[1..].starts_with(raw) {
            Some(1)
        } else {
            None
        }
    }

    /// Reads a list of step mappings.
    pub(super) fn steps(&mut self, r: &mut Reader<'_>, node: &Node, field: &str) -> Vec<Draft> {
        let Kind::Seq(items) = &node.kind else {
            r.wrong_type(node, field, "a list of steps");
            return Vec::new();
        };
        if items.is_empty() {
            r.report(
                Diagnostic::new(Code::E002, node.pos, format!("`{field}` has no steps"))
                    .field(field)
                    .hint("a pipeline needs at least one step"),
            );
        }
        items.iter().filter_map(|item| self.step(r, item)).collect()
    }

    fn step(&mut self, outer: &mut Reader<'_>, node: &Node) -> Option<Draft> {
        let renamed = single::parameters_from_inputs(outer, node);
        let node = renamed.as_ref().unwrap_or(node);
        let Kind::Map(entries) = &node.kind else {
            outer.wrong_type(node, "steps[]", "a mapping with `id` and `action`");
            return None;
        };
        let id = match node.get("id") {
            Some(n) => outer.scalar_text(n, "id").unwrap_or_default(),
            None => {
                outer.report(
                    Diagnostic::new(Code::E002, node.pos, "a step has no `id`")
                        .field("id")
                        .hint("give every step a unique `id`, such as `id: read_input`"),
                );
                String::new()
            }
        };
        let mut r = Reader {
            diags: &mut *outer.diags,
            step: (!id.is_empty()).then(|| id.clone()),
        };
        let id_pos = node.get("id").map_or(node.pos, |n| n.pos);
        if !id.is_empty() {
            if !valid_id(&id) {
                r.report(
                    Diagnostic::new(
                        Code::E005,
                        id_pos,
                        format!("step id `{id}` is not a valid id"),
                    )
                    .field("id")
                    .hint("ids start with a letter and contain only letters, digits, `_` and `-`"),
                );
            } else if POLICIES.contains(&id.as_str()) {
                r.report(
                    Diagnostic::new(Code::E005, id_pos, format!("step id `{id}` is a failure-policy word"))
                        .field("id")
                        .hint("`fail`, `continue`, `skip` and `retry` are reserved for `on_failure`; rename the step"),
                );
            } else if id.contains('-') {
                r.report(
                    Diagnostic::new(Code::W101, id_pos, format!("step id `{id}` contains `-`"))
                        .field("id")
                        .hint("templates read `{{ a-b.result }}` as a subtraction; prefer `_`"),
                );
            }
        }
        let step_name = id.clone();
        let step = Some(step_name.as_str());
        let mut uses = Vec::new();

        for (key, value) in entries {
            let k = key.name.as_str();
            if STEP_KEYS.contains(&k) {
                if matches!(k, "name" | "description" | "metadata") {
                    self.inert(&mut r, value, k);
                }
                continue;
            }
            let mut d = Diagnostic::new(
                Code::E013,
                key.pos,
                format!("orc does not support the step key `{k}`"),
            )
            .field(k);
            if let Some(h) = unsupported_hint(k) {
                d = d.hint(h);
            } else if let Some(s) = did_you_mean(k, STEP_KEYS.iter().copied()) {
                d = d.hint(format!("did you mean `{s}`?"));
            }
            r.report(d);
        }

        let mut deps = Vec::new();
        for k in ["dependencies", "depends_on"] {
            if let Some(n) = node.get(k) {
                deps.extend(r.id_list(n, k));
            }
        }
        let condition = match (node.get("condition"), node.get("if")) {
            (Some(c), Some(i)) => {
                r.report(
                    Diagnostic::new(Code::E003, i.pos, "a step has both `condition` and `if`")
                        .field("if")
                        .hint("`if` is another name for `condition`; keep one"),
                );
                self.condition(&mut r, c, "condition", &mut uses)
            }
            (Some(c), None) => self.condition(&mut r, c, "condition", &mut uses),
            (None, Some(i)) => self.condition(&mut r, i, "if", &mut uses),
            (None, None) => None,
        };
        let route = |r: &mut Reader<'_>, k: &str| {
            node.get(k)
                .and_then(|n| r.string(n, k).map(|s| (s.trim().to_string(), n.pos)))
        };
        let mut on_false = route(&mut r, "on_false");
        let mut on_success = route(&mut r, "on_success");
        let mut on_failure = route(&mut r, "on_failure");
        // py-orc's `continue_on_error: true` is `on_failure: continue`.
        if let Some(n) = node.get("continue_on_error")
            && let Some(go_on) = r.boolean(n, "continue_on_error")
        {
            if on_failure.is_some() {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        n.pos,
                        "a step has both `on_failure` and `continue_on_error`",
                    )
                    .field("continue_on_error")
                    .hint("`continue_on_error: true` means `on_failure: continue`; keep one"),
                );
            } else if go_on {
                on_failure = Some(("continue".to_string(), n.pos));
            }
        }
        for (field, target) in [("on_false", &mut on_false), ("on_success", &mut on_success)] {
            // Reported here, and dropped so that name resolution does not report it again.
            if let Some((t, pos)) = target.take_if(|(t, _)| POLICIES.contains(&t.as_str())) {
                r.report(
                    Diagnostic::new(
                        Code::E014,
                        pos,
                        format!("`{field}` must name a step, not the policy `{t}`"),
                    )
                    .field(field)
                    .hint("policies go in `on_failure`"),
                );
            }
        }
        let timeout = node.get("timeout").and_then(|n| r.seconds(n, "timeout"));
        let mut recovery = self.recovery(&mut r, node, step, &mut uses);
        // `on_error: continue` (a policy word) is `on_failure: continue`.
        if let Some((word, pos)) = recovery
            .word
            .take_if(|(w, _)| POLICIES.contains(&w.as_str()))
        {
            if on_failure.is_some() {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        pos,
                        "a step has both `on_error` and `on_failure` (or `continue_on_error`)",
                    )
                    .field("on_error")
                    .hint(format!(
                        "`on_error: {word}` means `on_failure: {word}`; keep one"
                    )),
                );
            } else {
                on_failure = Some((word, pos));
            }
        }
        let max_retries = node
            .get("max_retries")
            .and_then(|n| r.count(n, "max_retries", 0, 100))
            .or(recovery.retries);

        let cache = node.get("cache").and_then(|n| r.boolean(n, "cache"));
        let pool = node.get("pool").and_then(|n| Self::pool(&mut r, n));
        let choice = model::step_choice(&mut r, node, self.catalog);
        let single = single::Form::of(node);
        let for_each = match (node.get("for_each"), node.get("foreach")) {
            (Some(items), Some(other)) => {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        other.pos,
                        "a step has both `for_each` and `foreach`",
                    )
                    .field("foreach")
                    .hint("`foreach` is py-orc's spelling of `for_each`; keep one"),
                );
                Some(items)
            }
            (Some(items), None) => Some(items),
            (None, Some(items)) if single.is_none() => Some(items),
            _ => None,
        };
        self.step_outputs(&mut r, node);
        let kind = if let Some(items) = for_each {
            self.for_each(&mut r, node, items, step, &mut uses)
        } else if let Some(cond) = node.get("while").filter(|_| single.is_none()) {
            self.while_loop(&mut r, node, cond, &mut uses)
        } else {
            self.action(&mut r, node, step, &mut uses)
        };
        let model = choice.and_then(|c| Self::model_fits(&mut r, &kind, c));
        if let (Some(_), Some(key)) = (cache, node.get("cache"))
            && !matches!(kind, DraftKind::Action { .. })
        {
            r.report(
                Diagnostic::new(Code::W102, key.pos, "`cache` has no effect on a loop step")
                    .field("cache")
                    .hint("put `cache` on the steps inside the loop"),
            );
        }
        if id.is_empty() {
            return None;
        }
        if single.is_none() && !matches!(kind, DraftKind::ForEach { .. }) {
            Self::parallel_outside_loop(&mut r, node);
        }
        let draft = Draft {
            id,
            pos: node.pos,
            id_pos,
            kind,
            deps,
            uses,
            condition,
            on_false,
            on_success,
            on_failure,
            timeout,
            max_retries,
            model,
            cache,
            pool,
            recovery,
        };
        Some(match single {
            Some(form) => self.wrap(&mut r, form, node, draft),
            None => draft,
        })
    }

    /// `pool: NAME`: letters, digits, `-` and `_`, at most 64 (it names a NATS subject).
    fn pool(r: &mut Reader<'_>, n: &Node) -> Option<String> {
        let name = r.string(n, "pool")?;
        if crate::plan::is_pool_name(&name) {
            return Some(name);
        }
        r.report(
            Diagnostic::new(Code::E014, n.pos, format!("`pool: {name}` is not a pool name"))
                .field("pool")
                .hint("a pool name is 1 to 64 letters, digits, `-` and `_`; `local` keeps the step on the coordinator"),
        );
        None
    }

    /// Keeps a step's model choice where it means something, and says so where it does not.
    fn model_fits(r: &mut Reader<'_>, kind: &DraftKind, c: model::Choice) -> Option<ModelChoice> {
        let field = c.field;
        let action = match kind {
            DraftKind::ForEach { .. } | DraftKind::While { .. } => {
                r.report(
                    Diagnostic::new(
                        Code::E013,
                        c.key_pos,
                        format!("`{field}` does not belong on a loop step"),
                    )
                    .field(field)
                    .hint(format!("put `{field}` on the steps inside the loop")),
                );
                return None;
            }
            DraftKind::Action { tool, action, .. } => match (tool, action) {
                (None, Param::Lit(serde_json::Value::String(a))) => a.as_str(),
                (Some(_), _) => "",
                // The action is in error, already reported.
                _ => return Some(c.choice),
            },
        };
        let calls_model = MODEL_ACTIONS.contains(&action);
        match (&c.choice, calls_model) {
            (ModelChoice::NoModel, true) => r.report(
                Diagnostic::new(
                    Code::E014,
                    c.pos,
                    format!(
                        "action `{action}` calls a model, and `requires_model` says it needs none"
                    ),
                )
                .field(field)
                .hint("name a model or requirements, or remove `requires_model`"),
            ),
            (ModelChoice::NoModel, false) | (_, true) => {}
            (_, false) => r.report(
                Diagnostic::new(
                    Code::W102,
                    c.key_pos,
                    format!("the step does not call a model, so `{field}` has no effect"),
                )
                .field(field)
                .hint(format!(
                    "`{field}` applies to model actions ({}); remove it here",
                    MODEL_ACTIONS.join(", ")
                )),
            ),
        }
        Some(c.choice)
    }

    pub(super) fn inert(&mut self, r: &mut Reader<'_>, node: &Node, field: &str) {
        match &node.kind {
            Kind::Str(s) if is_template(s) => r.report(
                Diagnostic::new(
                    Code::W101,
                    node.pos,
                    format!("`{field}` is never rendered, but holds a template"),
                )
                .field(field)
                .hint("templates work in `parameters`, `action`, conditions and loop fields"),
            ),
            Kind::Map(entries) => entries
                .iter()
                .for_each(|(k, v)| self.inert(r, v, &format!("{field}.{}", k.name))),
            Kind::Seq(items) => items.iter().for_each(|v| self.inert(r, v, field)),
            _ => {}
        }
    }

    fn loop_only_keys(r: &mut Reader<'_>, node: &Node, allowed: &[&str]) {
        for k in [
            "steps",
            "max_parallel",
            "loop_var",
            "add_completion_task",
            "max_iterations",
            "until",
            "max_concurrent",
        ] {
            if !allowed.contains(&k)
                && let Some(n) = node.get(k)
            {
                r.report(
                    Diagnostic::new(Code::E013, n.pos, format!("`{k}` does not belong on this kind of step"))
                        .field(k)
                        .hint(match k {
                            "steps" => "nested `steps` go with `for_each` or `while`",
                            "until" | "max_iterations" => "`until` and `max_iterations` go with `while`",
                            "max_concurrent" => "`max_concurrent` and `max_parallel` go with `for_each` or `foreach`",
                            _ => "`max_parallel`, `loop_var` and `add_completion_task` go with `for_each`",
                        }),
                );
            }
        }
    }

    fn body(&mut self, r: &mut Reader<'_>, node: &Node) -> Vec<Draft> {
        let Some(steps) = node.get("steps") else {
            r.report(
                Diagnostic::new(Code::E002, node.pos, "a loop step has no `steps`")
                    .field("steps")
                    .hint("list the steps of one iteration under `steps`"),
            );
            return Vec::new();
        };
        let step = r.step.clone();
        let mut inner = Reader {
            diags: &mut *r.diags,
            step,
        };
        self.steps(&mut inner, steps, "steps")
    }

    fn for_each(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        items_node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> DraftKind {
        Self::loop_only_keys(
            r,
            node,
            &[
                "steps",
                "max_parallel",
                "max_concurrent",
                "loop_var",
                "add_completion_task",
            ],
        );
        for k in ["tool", "action", "parameters", "while"] {
            if let Some(n) = node.get(k) {
                r.report(
                    Diagnostic::new(
                        Code::E013,
                        n.pos,
                        format!("a `for_each` step cannot also have `{k}`"),
                    )
                    .field(k)
                    .hint("put the work in the loop's `steps`"),
                );
            }
        }
        // Every field is checked; one in error is reported and replaced by its default.
        let field = if node.get("for_each").is_some() {
            "for_each"
        } else {
            "foreach"
        };
        let items = self.loop_items(r, items_node, field, step, uses);
        let (max_parallel, max_parallel_from) = self.concurrency(r, node, step, uses);
        let loop_var = node.get("loop_var").and_then(|n| {
            let v = r.string(n, "loop_var")?;
            if !valid_id(&v) || v.contains('-') {
                r.report(
                    Diagnostic::new(
                        Code::E005,
                        n.pos,
                        format!("`loop_var` `{v}` is not a valid name"),
                    )
                    .field("loop_var"),
                );
            }
            Some(v)
        });
        if let Some(n) = node.get("add_completion_task") {
            r.boolean(n, "add_completion_task");
        }
        DraftKind::ForEach {
            items,
            body: self.body(r, node),
            max_parallel,
            loop_var,
            max_parallel_from,
            collect: false,
        }
    }

    fn while_loop(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        cond: &Node,
        uses: &mut Vec<UseSite>,
    ) -> DraftKind {
        Self::loop_only_keys(r, node, &["steps", "max_iterations", "until"]);
        for k in ["tool", "action", "parameters"] {
            if let Some(n) = node.get(k) {
                r.report(
                    Diagnostic::new(
                        Code::E013,
                        n.pos,
                        format!("a `while` step cannot also have `{k}`"),
                    )
                    .field(k)
                    .hint("put the work in the loop's `steps`"),
                );
            }
        }
        let condition = self.condition(r, cond, "while", uses);
        let until = node
            .get("until")
            .and_then(|n| self.condition(r, n, "until", uses));
        let step = r.step.clone();
        let (max_iterations, max_iterations_from) =
            self.iteration_limit(r, node, step.as_deref(), uses);
        let outer = std::mem::replace(&mut self.while_loop, step.clone());
        let body = self.body(r, node);
        self.while_loop = outer;
        DraftKind::While {
            condition: condition.unwrap_or(Condition::Literal(false)),
            until,
            body,
            max_iterations,
            max_iterations_from,
        }
    }

    fn action(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> DraftKind {
        Self::loop_only_keys(
            r,
            node,
            single::Form::of(node).map_or(&[], single::Form::loop_keys),
        );
        let labelled = prose::on_tool(self.catalog, node).or_else(|| prose::model_on_tool(node));
        let node = labelled.as_ref().unwrap_or(node);
        let tool_node = node.get("tool");
        let tool = tool_node.and_then(|n| r.string(n, "tool"));
        let mut params = match node.get("parameters") {
            Some(p) if tool.as_deref() == Some(SUB_PIPELINE_TOOL) => {
                self.sub_pipeline_params(p, step, uses)
            }
            Some(p) if matches!(p.kind, Kind::Map(_) | Kind::Null) => {
                self.param(p, step, "parameters", uses)
            }
            Some(p) => {
                r.wrong_type(p, "parameters", "a mapping");
                Param::Lit(serde_json::Value::Null)
            }
            None => Param::Lit(serde_json::Value::Object(Default::default())),
        };
        if matches!(params, Param::Lit(serde_json::Value::Null)) {
            params = Param::Lit(serde_json::Value::Object(Default::default()));
        }
        let Some(action_node) = node.get("action") else {
            r.report(
                Diagnostic::new(Code::E002, node.pos, "the step has no `action`")
                    .field("action")
                    .hint("write `tool: filesystem` with `action: read`, a tool-less action such as `action: echo`, or a loop with `for_each`/`while`"),
            );
            return stand_in();
        };
        let Some(action_text) = r.string(action_node, "action") else {
            return stand_in();
        };
        if tool.is_none() && tool_node.is_some() {
            // The tool is not a string (reported): its action cannot be checked.
            return stand_in();
        }

        if let Some(tool) = &tool {
            let pos = tool_node.map_or(node.pos, |n| n.pos);
            match self.catalog.actions(tool) {
                None => {
                    let mut d = Diagnostic::new(Code::E008, pos, format!("unknown tool `{tool}`"))
                        .field("tool");
                    d = match did_you_mean(tool, self.catalog.tool_names()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(format!(
                            "orc's tools are: {}",
                            self.catalog.tool_names().collect::<Vec<_>>().join(", ")
                        )),
                    };
                    r.report(d);
                    return stand_in();
                }
                Some(actions)
                    if !is_template(&action_text) && !actions.iter().any(|a| *a == action_text) =>
                {
                    let mut d = Diagnostic::new(
                        Code::E009,
                        action_node.pos,
                        format!("tool `{tool}` has no action `{action_text}`"),
                    )
                    .field("action");
                    d = match did_you_mean(&action_text, actions.iter().copied()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(format!("`{tool}` actions are: {}", actions.join(", "))),
                    };
                    r.report(d);
                    return stand_in();
                }
                Some(_) => {}
            }
            if PROCESS_TOOLS.contains(&tool.as_str())
                && let Some(t) = node.get("parameters").and_then(|p| p.get("timeout"))
            {
                check_timeout_param(r, t);
            }
            if let Some(spec) = self.catalog.tool(tool).and_then(|t| t.action(&action_text))
                && let Some(declared) = &spec.params
            {
                check_params(r, tool, spec, declared, node);
            }
            let action = self.param(action_node, step, "action", uses);
            return DraftKind::Action {
                tool: Some(tool.clone()),
                action,
                params,
            };
        }

        // Tool-less actions.
        let trimmed = action_text.trim();
        let auto = trimmed.contains("<AUTO");
        if !auto && let Some(message) = prose_echo(trimmed) {
            let msg_node = Node {
                kind: Kind::Str(message),
                pos: action_node.pos,
            };
            let msg = self.param(&msg_node, step, "action", uses);
            params = merge_param(params, "message", msg);
            return DraftKind::Action {
                tool: None,
                action: Param::Lit("echo".into()),
                params,
            };
        }
        let normalized = normalize_action(trimmed);
        if TOOLLESS_ACTIONS.contains(&normalized) {
            return DraftKind::Action {
                tool: None,
                action: Param::Lit(normalized.into()),
                params,
            };
        }
        if MODEL_ACTIONS.contains(&normalized) || auto {
            if self.catalog.models().is_empty() {
                r.report(
                    Diagnostic::new(
                        Code::E016,
                        action_node.pos,
                        format!("action `{trimmed}` calls a model, and no model is configured"),
                    )
                    .field("action")
                    .hint("add a `models:` entry to the config file"),
                );
                return stand_in();
            }
            if let Some(n) = node.get("parameters").and_then(|p| p.get("model")) {
                match &n.kind {
                    Kind::Str(name) if !is_template(name) => {
                        model::check_name(r, self.catalog, name, n.pos, "parameters.model", true);
                    }
                    Kind::Str(_) => {}
                    _ => r.wrong_type(n, "parameters.model", "a model name"),
                }
            }
            let called = if auto { "generate" } else { normalized };
            if let Some(takes) = self.catalog.model_action_parameters(called) {
                let ignored = ignored_model_params(r, called, takes, node);
                params = without(params, &ignored);
            }
            if auto {
                // The action is the prompt: a `generate` step.
                if let Some(p) = node.get("parameters").and_then(|p| p.get("prompt")) {
                    r.report(
                        Diagnostic::new(
                            Code::E003,
                            p.pos,
                            "the step's `action` is an AUTO prompt and it also has `parameters.prompt`",
                        )
                        .field("parameters.prompt")
                        .hint("keep one prompt: the `<AUTO>` action or `parameters.prompt`"),
                    );
                    return stand_in();
                }
                let prompt = Node {
                    kind: Kind::Str(auto_prompt(trimmed)),
                    pos: action_node.pos,
                };
                let prompt = self.param(&prompt, step, "action", uses);
                return DraftKind::Action {
                    tool: None,
                    action: Param::Lit("generate".into()),
                    params: merge_param(params, "prompt", prompt),
                };
            }
            return DraftKind::Action {
                tool: None,
                action: Param::Lit(normalized.into()),
                params,
            };
        }
        let mut d = Diagnostic::new(
            Code::E009,
            action_node.pos,
            format!("unknown action `{trimmed}`"),
        )
        .field("action");
        d = match did_you_mean(
            trimmed,
            TOOLLESS_ACTIONS.iter().chain(MODEL_ACTIONS).copied(),
        ) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None if self.catalog.actions(trimmed).is_some() => d.hint(format!(
                "`{trimmed}` is a tool: write `tool: {trimmed}` and an `action`"
            )),
            None => {
                d.hint("name a `tool` and one of its actions, or use `echo` / `evaluate_condition`")
            }
        };
        r.report(d);
        stand_in()
    }
}

/// What an action step whose tool or action is in error (already reported) stands as: it keeps
/// its id, dependencies and templates in the checks that follow, and the plan is never built.
/// Its action is null, which no real action is.
fn stand_in() -> DraftKind {
    DraftKind::Action {
        tool: None,
        action: Param::Lit(serde_json::Value::Null),
        params: Param::Lit(serde_json::Value::Object(Default::default())),
    }
}

/// An `<AUTO>…</AUTO>` action as a prompt: the text without its tags.
fn auto_prompt(action: &str) -> String {
    let mut out = String::with_capacity(action.len());
    let mut rest = action;
    loop {
        let open = rest.find("<AUTO");
        let close = rest.find("</AUTO>");
        match (open, close) {
            (Some(o), c) if c.is_none_or(|c| o < c) => {
                out.push_str(&rest[..o]);
                let after = &rest[o..];
                rest = after.find('>').map_or("", |e| &after[e + 1..]);
            }
            (_, Some(c)) => {
                out.push_str(&rest[..c]);
                rest = &rest[c + "</AUTO>".len()..];
            }
            (_, None) => {
                out.push_str(rest);
                return out.trim().to_string();
            }
        }
    }
}

/// py-orc's `{{ <loop>.iteration }}` (or `{{<loop>.iteration}}`, the two forms it replaces) in a
/// `while` body as `{{ iteration }}`, the iteration's number; `None` when the text has neither.
fn own_iteration(src: &str, loop_id: &str) -> Option<String> {
    let forms = [
        format!("{{{{ {loop_id}.iteration }}}}"),
        format!("{{{{{loop_id}.iteration}}}}"),
    ];
    if !forms.iter().any(|f| src.contains(f.as_str())) {
        return None;
    }
    let mut out = src.to_string();
    for f in &forms {
        out = out.replace(f.as_str(), "{{ iteration }}");
    }
    Some(out)
}

/// `echo "text"`, `print text`, …: the message, without one pair of surrounding quotes.
fn prose_echo(action: &str) -> Option<String> {
    let (word, rest) = action.split_once(char::is_whitespace)?;
    if !matches!(
        word.to_ascii_lowercase().as_str(),
        "echo" | "print" | "display" | "show" | "output"
    ) {
        return None;
    }
    let rest = rest.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| rest.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
        .unwrap_or(rest);
    Some(unquoted.to_string())
}

fn merge_param(params: Param, key: &str, value: Param) -> Param {
    match params {
        Param::Lit(serde_json::Value::Object(map)) => {
            if map.contains_key(key) {
                return Param::Lit(serde_json::Value::Object(map));
            }
            let mut parts: Vec<(String, Param)> =
                map.into_iter().map(|(k, v)| (k, Param::Lit(v))).collect();
            parts.push((key.to_string(), value));
            Param::Map(parts)
        }
        Param::Map(mut parts) => {
            if !parts.iter().any(|(k, _)| k == key) {
                parts.push((key.to_string(), value));
            }
            Param::Map(parts)
        }
        other => other,
    }
}
