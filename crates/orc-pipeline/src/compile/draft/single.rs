//! py-orc's loops of one action: `foreach:` on an action step (the action mapped over the
//! items) and `while:` on a step with its own `action`, each read as an orc loop whose body is
//! that one step; the loop limits py-orc spells differently (`parallel`, `max_concurrent`,
//! `max_iterations` as text); a step's `inputs` (py-orc's name for its `parameters`) and its
//! declared `outputs`.

use crate::diag::{Code, Diagnostic};
use crate::plan::{Condition, Param, TemplateId};
use crate::templates::is_template;
use crate::yaml::{Key, Kind, Node};

use super::super::bindings::{FOR_EACH_BINDINGS, WHILE_BINDINGS};
use super::super::read::Reader;
use super::{Draft, DraftKind, DraftRecovery, Drafter, POLICIES, UseSite};

/// `max_parallel` that sets no limit of the loop's own (`parallel: true`): only the run's.
pub(in crate::compile) const UNBOUNDED: u32 = u32::MAX;

/// A step that is a loop of its own action.
#[derive(Debug, Clone, Copy)]
pub(super) enum Form<'n> {
    /// `foreach: ITEMS` with `action` (and no `steps`).
    ForEach(&'n Node),
    /// `while: CONDITION` with `action` (and no `steps`).
    While(&'n Node),
}

impl<'n> Form<'n> {
    /// The form of a step node, if it is a loop of one action.
    pub(super) fn of(node: &'n Node) -> Option<Form<'n>> {
        if node.get("steps").is_some() || node.get("for_each").is_some() {
            return None;
        }
        if let Some(items) = node.get("foreach") {
            return Some(Form::ForEach(items));
        }
        match (node.get("while"), node.get("action")) {
            (Some(cond), Some(_)) => Some(Form::While(cond)),
            _ => None,
        }
    }

    /// The loop keys the step may carry beside its action.
    pub(super) fn loop_keys(self) -> &'static [&'static str] {
        match self {
            Form::ForEach(_) => &["max_parallel", "max_concurrent"],
            Form::While(_) => &["max_iterations", "until"],
        }
    }

    fn bindings(self) -> &'static [&'static str] {
        match self {
            Form::ForEach(_) => FOR_EACH_BINDINGS,
            Form::While(_) => WHILE_BINDINGS,
        }
    }
}

/// The step node with py-orc's step `inputs` read as its `parameters` (both is an error);
/// `None` when there is nothing to rename.
pub(super) fn parameters_from_inputs(r: &mut Reader<'_>, node: &Node) -> Option<Node> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let inputs = entries.iter().position(|(k, _)| k.name == "inputs")?;
    if let Some(p) = node.get("parameters") {
        r.report(
            Diagnostic::new(
                Code::E003,
                entries[inputs].0.pos,
                "a step has both `parameters` and `inputs`",
            )
            .field("inputs")
            .hint(format!(
                "a step's `inputs` is py-orc's name for its `parameters` (line {}); keep one",
                p.pos.line
            )),
        );
        return None;
    }
    let mut entries = entries.clone();
    entries[inputs].0 = Key {
        name: "parameters".into(),
        pos: entries[inputs].0.pos,
    };
    Some(Node {
        kind: Kind::Map(entries),
        pos: node.pos,
    })
}

/// Whether a name in `text` is one of `names` (identifiers as a template or an expression
/// writes them).
fn mentions(text: &str, names: &[&str]) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| names.contains(&w))
}

impl Drafter<'_> {
    /// A step's declared `outputs` (py-orc's documentation of what a step gives): a mapping
    /// of names to a type or a spec, or a list of names. Read and checked, never rendered.
    pub(super) fn step_outputs(&mut self, r: &mut Reader<'_>, node: &Node) {
        let Some(outputs) = node.get("outputs") else {
            return;
        };
        match &outputs.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    if !matches!(v.kind, Kind::Map(_) | Kind::Str(_) | Kind::Null) {
                        r.wrong_type(
                            v,
                            &format!("outputs.{}", k.name),
                            "a type name or a mapping such as `{type: string, description: …}`",
                        );
                    }
                }
                self.inert(r, outputs, "outputs");
            }
            Kind::Seq(items) => {
                for v in items {
                    if !matches!(v.kind, Kind::Str(_)) {
                        r.wrong_type(v, "outputs[]", "an output name");
                    }
                }
            }
            Kind::Null => {}
            _ => r.wrong_type(
                outputs,
                "outputs",
                "a mapping of output names to their types",
            ),
        }
    }

    /// `max_parallel` (or py-orc's `max_concurrent`, a number, digits or a template) and
    /// `parallel: true` (no limit of the loop's own): the loop's limit, and the template that
    /// gives it when the loop starts.
    pub(super) fn concurrency(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> (u32, Option<TemplateId>) {
        let parallel = node.get("parallel").and_then(|n| r.boolean(n, "parallel"));
        let limit = match (node.get("max_parallel"), node.get("max_concurrent")) {
            (Some(a), Some(b)) => {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        b.pos,
                        "a loop has both `max_parallel` and `max_concurrent`",
                    )
                    .field("max_concurrent")
                    .hint("`max_concurrent` is py-orc's name for `max_parallel`; keep one"),
                );
                Some((a, "max_parallel"))
            }
            (Some(a), None) => Some((a, "max_parallel")),
            (None, Some(b)) => Some((b, "max_concurrent")),
            (None, None) => None,
        };
        let Some((n, field)) = limit else {
            return (if parallel == Some(true) { UNBOUNDED } else { 1 }, None);
        };
        if parallel == Some(false) {
            r.report(
                Diagnostic::new(
                    Code::W102,
                    n.pos,
                    format!("`{field}` has no effect with `parallel: false`"),
                )
                .field(field)
                .hint("the iterations run one at a time; remove one of the two"),
            );
            return (1, None);
        }
        self.bound(r, n, field, 100_000, step, uses)
            .map_or((1, None), |(v, t)| (v.unwrap_or(1), t))
    }

    /// `max_iterations` of a `while` loop: a number, digits or a template (default 10).
    pub(super) fn iteration_limit(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> (u32, Option<TemplateId>) {
        node.get("max_iterations")
            .and_then(|n| self.bound(r, n, "max_iterations", 1_000_000, step, uses))
            .map_or((10, None), |(v, t)| (v.unwrap_or(10), t))
    }

    /// A whole number from 1 to `max`, written as a number, as digits, or as a template
    /// (checked when the loop starts).
    fn bound(
        &mut self,
        r: &mut Reader<'_>,
        n: &Node,
        field: &str,
        max: i64,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> Option<(Option<u32>, Option<TemplateId>)> {
        match &n.kind {
            Kind::Int(_) => r.count(n, field, 1, max).map(|v| (Some(v), None)),
            Kind::Str(s) if is_template(s) => match self.param(n, step, field, uses) {
                Param::Tmpl(id) => Some((None, Some(id))),
                _ => None,
            },
            Kind::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => {
                    let digits = Node {
                        kind: Kind::Int(i),
                        pos: n.pos,
                    };
                    r.count(&digits, field, 1, max).map(|v| (Some(v), None))
                }
                Err(_) => {
                    r.wrong_type(n, field, "a whole number or a template that gives one");
                    None
                }
            },
            _ => {
                r.wrong_type(n, field, "a whole number or a template that gives one");
                None
            }
        }
    }

    /// A `for_each` (or `foreach`) loop's items: a list or a template that gives one.
    pub(super) fn loop_items(
        &mut self,
        r: &mut Reader<'_>,
        items: &Node,
        field: &str,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> Param {
        match &items.kind {
            Kind::Str(_) | Kind::Seq(_) => self.param(items, step, field, uses),
            _ => {
                r.wrong_type(items, field, "a list or a template that gives one");
                Param::Lit(serde_json::Value::Array(Vec::new()))
            }
        }
    }

    /// The loop a step of one action stands for, with `body` (the step as read) its only step.
    ///
    /// What concerns the whole loop moves to the loop: its dependencies, the routes, and a
    /// condition that reads no loop name (one that does, such as `{{ item in [...] }}`, is
    /// checked per iteration). The body keeps its action, model, timeout, retries and cache,
    /// and the failure policy, which the loop also takes (a route stays on the loop).
    pub(super) fn wrap(
        &mut self,
        r: &mut Reader<'_>,
        form: Form<'_>,
        node: &Node,
        mut body: Draft,
    ) -> Draft {
        let step = body.id.clone();
        let step = (!step.is_empty()).then_some(step.as_str());
        let mut uses = Vec::new();
        let per_iteration = body.condition.as_ref().is_some_and(|c| {
            let text = match c {
                Condition::Literal(_) => return false,
                Condition::Template(id) => &self.templates[id.0 as usize],
                Condition::Expr(id) => &self.exprs[id.0 as usize],
            };
            mentions(text, form.bindings())
        });
        let condition = if per_iteration {
            None
        } else {
            let (guard, rest): (Vec<UseSite>, Vec<UseSite>) = std::mem::take(&mut body.uses)
                .into_iter()
                .partition(|u| matches!(u.field.as_str(), "condition" | "if"));
            body.uses = rest;
            uses.extend(guard);
            body.condition.take()
        };
        let on_failure = body.on_failure.clone();
        if body
            .on_failure
            .as_ref()
            .is_some_and(|(t, _)| !POLICIES.contains(&t.as_str()))
        {
            body.on_failure = None;
        }
        let kind = match form {
            Form::ForEach(items) => {
                let items = self.loop_items(r, items, "foreach", step, &mut uses);
                let (max_parallel, max_parallel_from) = self.concurrency(r, node, step, &mut uses);
                DraftKind::ForEach {
                    items,
                    body: Vec::new(),
                    max_parallel,
                    loop_var: None,
                    max_parallel_from,
                    collect: true,
                }
            }
            Form::While(cond) => {
                let condition = self.condition(r, cond, "while", &mut uses);
                let until = node
                    .get("until")
                    .and_then(|n| self.condition(r, n, "until", &mut uses));
                let (max_iterations, max_iterations_from) =
                    self.iteration_limit(r, node, step, &mut uses);
                DraftKind::While {
                    condition: condition.unwrap_or(Condition::Literal(false)),
                    until,
                    body: Vec::new(),
                    max_iterations,
                    max_iterations_from,
                }
            }
        };
        let mut outer = Draft {
            id: body.id.clone(),
            pos: body.pos,
            id_pos: body.id_pos,
            kind,
            deps: std::mem::take(&mut body.deps),
            uses,
            condition,
            on_false: body.on_false.take(),
            on_success: body.on_success.take(),
            on_failure,
            timeout: None,
            max_retries: None,
            model: None,
            cache: None,
            // Where it runs belongs to each item's call.
            pool: None,
            // `on_error` handlers, retries and declared outputs stay with the action: each
            // item's call fails, retries and falls back on its own.
            recovery: DraftRecovery::default(),
        };
        match &mut outer.kind {
            DraftKind::ForEach { body: b, .. } | DraftKind::While { body: b, .. } => b.push(body),
            DraftKind::Action { .. } => {}
        }
        outer
    }

    /// `parallel` on a step that is not a loop: it changes nothing (steps without a
    /// dependency between them already run at once), and says so.
    pub(super) fn parallel_outside_loop(r: &mut Reader<'_>, node: &Node) {
        if let Some(n) = node.get("parallel") {
            r.boolean(n, "parallel");
            r.report(
                Diagnostic::new(Code::W102, n.pos, "`parallel` has no effect on a step that is not a loop")
                    .field("parallel")
                    .hint("steps without dependencies between them already run in parallel; remove the key"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_condition_mentions_a_loop_name_only_as_a_whole_word() {
        let names = &["item", "index"];
        assert!(mentions("{{ item in ['a'] }}", names));
        assert!(mentions("item.name.endswith('.py')", names));
        assert!(!mentions("{{ items_count > 0 }}", names));
        assert!(!mentions("{{ research_depth == 'x' }}", names));
    }
}
