//! Second pass: names to indices. Infers dependencies from templates and conditions,
//! checks every name against what can provide it, and finds cycles and backward jumps.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::diag::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::graph;
use crate::plan::ERROR_BINDINGS;
use crate::plan::{ForEach, OnFailure, Step, StepKind, TemplateId, While};
use crate::templates::TemplateSet;
use crate::yaml::Pos;

use super::bindings::{FOR_EACH_BINDINGS, WHILE_BINDINGS};
use super::draft::{Draft, DraftKind, Use, UseSite};
use super::recovery::{binds_error, handler_steps, recovery_of};

/// Names every template can use. `output_path` is the run's output directory (an input every
/// pipeline takes, see `orc_engine::resolve_inputs`); `current_timestamp` and `current_date`
/// are the time when the template is rendered (the run's start is `timestamp`).
pub const GLOBALS: &[&str] = &[
    "inputs",
    "parameters",
    "execution",
    "execution_id",
    "pipeline_id",
    "timestamp",
    "output_path",
    "current_timestamp",
    "current_date",
];

/// A name a level could not resolve, handed to the level around it.
#[derive(Debug, Clone)]
pub(super) struct Unresolved {
    name: String,
    /// Whether it came from `dependencies` (must be a step) or from a template or condition.
    explicit: bool,
    /// Whether it came from a template, where the template engine's functions are names too.
    template: bool,
    pos: Pos,
    step: String,
    field: String,
    /// The step ids (and, for template names, loop variables) in scope where it was
    /// written: what a typo may have meant. Each level's names are shared by every name
    /// unresolved there (a copy per name made a 10,000-step pipeline's compile quadratic).
    candidates: Vec<Arc<[String]>>,
}

pub(super) struct Resolver<'a> {
    pub(super) diags: &'a mut Diagnostics,
    pub(super) templates: &'a TemplateSet,
    /// The pipeline text, to point at a name inside the value that holds it.
    pub(super) source: &'a SourceLines<'a>,
    /// Functions templates call that do not exist, already reported (E017): not names to resolve.
    pub(super) unknown_functions: Vec<(TemplateId, String)>,
}

/// The root of a dotted name.
fn root(name: &str) -> &str {
    name.split(['.', '[']).next().unwrap_or(name)
}

/// The ids one level provides, including the ids loop iterations will have.
pub(super) struct LevelIds<'d> {
    ids: HashMap<&'d str, usize>,
    /// The ids in document order.
    order: Vec<&'d str>,
    loops: Vec<(&'d str, usize)>,
}

impl<'d> LevelIds<'d> {
    pub(super) fn new(drafts: &'d [Draft]) -> Self {
        let ids = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let loops = drafts
            .iter()
            .enumerate()
            .filter(|(_, d)| !matches!(d.kind, DraftKind::Action { .. }))
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let order = drafts.iter().map(|d| d.id.as_str()).collect();
        LevelIds { ids, order, loops }
    }

    /// The step a name refers to: an id, or `<loop>_<n>_<step>` for a loop here.
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.ids.get(name) {
            return Some(i);
        }
        self.loops.iter().find_map(|&(id, i)| {
            let rest = name.strip_prefix(id)?.strip_prefix('_')?;
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            let tail = rest[digits..].strip_prefix('_')?;
            (digits > 0 && !tail.is_empty()).then_some(i)
        })
    }

    /// The ids, in document order (so suggestions do not depend on hashing).
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().copied()
    }
}

impl Resolver<'_> {
    fn use_names(&self, site: &UseSite) -> Vec<String> {
        match &site.what {
            Use::Template(id) => {
                let names: BTreeSet<String> = self
                    .templates
                    .names(*id)
                    .iter()
                    .map(|n| root(n).to_string())
                    .filter(|n| !self.unknown_functions.contains(&(*id, n.clone())))
                    .collect();
                names.into_iter().collect()
            }
            Use::Names(names) => names.clone(),
        }
    }

    /// Resolves one level of steps; names it cannot resolve go to the caller.
    pub(super) fn level(
        &mut self,
        drafts: Vec<Draft>,
        bindings: &[&str],
    ) -> (Vec<Step>, Vec<Unresolved>) {
        let mut unresolved = Vec::new();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); drafts.len()];
        let mut inferred: Vec<BTreeSet<String>> = vec![BTreeSet::new(); drafts.len()];

        // Loop bodies first: what they cannot resolve becomes a use of the loop step.
        let mut bodies: Vec<Option<Vec<Step>>> = Vec::with_capacity(drafts.len());
        // A `while` loop's own conditions may read the steps of its latest iteration by short id.
        let while_body_ids: Vec<Vec<String>> = drafts
            .iter()
            .map(|d| match &d.kind {
                DraftKind::While { body, .. } => body.iter().map(|b| b.id.clone()).collect(),
                _ => Vec::new(),
            })
            .collect();
        let mut drafts = drafts;
        let mut outer_uses: Vec<Vec<Unresolved>> = vec![Vec::new(); drafts.len()];
        for (i, d) in drafts.iter_mut().enumerate() {
            let body = match &mut d.kind {
                DraftKind::ForEach { body, loop_var, .. } => {
                    let mut b: Vec<&str> = FOR_EACH_BINDINGS.to_vec();
                    if let Some(v) = loop_var.as_deref() {
                        b.push(v);
                    }
                    b.extend_from_slice(bindings);
                    let (steps, up) = self.level(std::mem::take(body), &b);
                    outer_uses[i] = up;
                    Some(steps)
                }
                DraftKind::While { body, .. } => {
                    let mut b: Vec<&str> = WHILE_BINDINGS.to_vec();
                    b.extend_from_slice(bindings);
                    let (steps, up) = self.level(std::mem::take(body), &b);
                    outer_uses[i] = up;
                    Some(steps)
                }
                DraftKind::Action { .. } => None,
            };
            bodies.push(body);
        }

        let drafts = drafts;
        let ids = LevelIds::new(&drafts);
        let level_ids: Arc<[String]> = ids.names().map(str::to_string).collect();
        let level_bindings: Arc<[String]> = bindings.iter().map(|b| (*b).to_string()).collect();
        // Handler steps (`handler_task_id`): each waits for the step it handles.
        let handlers = handler_steps(
            &drafts,
            |n| ids.ids.get(n).copied(),
            || ids.names().collect(),
            self.diags,
        );
        let mut is_handler = vec![false; drafts.len()];
        for (i, targets) in handlers.iter().enumerate() {
            for &j in targets.iter().flatten() {
                is_handler[j] = true;
                deps[j].push(i);
            }
        }
        for (i, d) in drafts.iter().enumerate() {
            let is_while = matches!(d.kind, DraftKind::While { .. });
            for site in &d.uses {
                for name in self.use_names(site) {
                    let local_binding = is_while
                        && matches!(site.field.as_str(), "while" | "until")
                        && (WHILE_BINDINGS.contains(&name.as_str())
                            || while_body_ids[i].contains(&name));
                    let error_binding = (is_handler[i] || binds_error(&site.field))
                        && ERROR_BINDINGS.contains(&name.as_str());
                    if local_binding || error_binding || bindings.contains(&name.as_str()) {
                        continue;
                    }
                    match ids.find(&name) {
                        Some(j) if j == i => self.diags.push(
                            Diagnostic::new(
                                Code::E007,
                                site.pos,
                                format!("step `{}` refers to its own result", d.id),
                            )
                            .step(&d.id)
                            .field(&site.field),
                        ),
                        Some(j) => {
                            deps[i].push(j);
                            inferred[i].insert(drafts[j].id.clone());
                        }
                        None => unresolved.push(Unresolved {
                            name,
                            explicit: false,
                            template: matches!(site.what, Use::Template(_)),
                            pos: site.pos,
                            step: d.id.clone(),
                            field: site.field.clone(),
                            candidates: vec![level_ids.clone(), level_bindings.clone()],
                        }),
                    }
                }
            }
            for up in std::mem::take(&mut outer_uses[i]) {
                match ids.find(&up.name) {
                    Some(j) if j == i => self.diags.push(
                        Diagnostic::new(
                            Code::E007,
                            up.pos,
                            format!("a step inside loop `{}` refers to the loop itself", d.id),
                        )
                        .step(&up.step)
                        .field(&up.field)
                        .hint("use the iteration's own steps by their short ids"),
                    ),
                    Some(j) => {
                        deps[i].push(j);
                        if !up.explicit {
                            inferred[i].insert(drafts[j].id.clone());
                        }
                    }
                    None if !up.explicit && bindings.contains(&up.name.as_str()) => {}
                    None => {
                        let mut up = up;
                        up.candidates.push(level_ids.clone());
                        unresolved.push(up);
                    }
                }
            }
            for (name, pos) in &d.deps {
                match ids.ids.get(name.as_str()) {
                    Some(&j) if j == i => self.diags.push(
                        Diagnostic::new(
                            Code::E007,
                            *pos,
                            format!("step `{name}` depends on itself"),
                        )
                        .step(&d.id)
                        .field("dependencies"),
                    ),
                    Some(&j) => {
                        deps[i].push(j);
                        inferred[i].remove(name);
                    }
                    None => unresolved.push(Unresolved {
                        name: name.clone(),
                        explicit: true,
                        template: false,
                        pos: *pos,
                        step: d.id.clone(),
                        field: "dependencies".into(),
                        candidates: vec![level_ids.clone()],
                    }),
                }
            }
            deps[i].sort_unstable();
            deps[i].dedup();
        }

        for (i, d) in drafts.iter().enumerate() {
            if !inferred[i].is_empty() {
                let names: Vec<String> = inferred[i].iter().map(|n| format!("`{n}`")).collect();
                self.diags.push(
                    Diagnostic::new(
                        Code::I201,
                        d.pos,
                        format!(
                            "step `{}` depends on {} through its templates",
                            d.id,
                            names.join(", ")
                        ),
                    )
                    .step(&d.id),
                );
            }
        }

        let cycle_free = match graph::find_cycle(drafts.len(), &deps) {
            Some(cycle) => {
                let mut path: Vec<&str> = cycle.iter().map(|&c| drafts[c].id.as_str()).collect();
                path.push(path[0]);
                let first = &drafts[cycle[0]];
                self.diags.push(
                    Diagnostic::new(Code::E007, first.pos, format!("dependency cycle: {}", path.join(" -> ")))
                        .step(&first.id)
                        .hint("a step cannot wait, directly or through others, for a step that waits for it"),
                );
                false
            }
            None => true,
        };

        let mut steps: Vec<Step> = Vec::with_capacity(drafts.len());
        let u32_of = |j: usize| u32::try_from(j).unwrap_or(u32::MAX);
        for ((d, dep), body) in drafts.iter().zip(&deps).zip(bodies) {
            let kind = match (&d.kind, body) {
                (
                    DraftKind::Action {
                        tool,
                        action,
                        params,
                    },
                    _,
                ) => StepKind::Action(crate::plan::Action {
                    tool: tool.clone(),
                    action: action.clone(),
                    params: params.clone(),
                }),
                (
                    DraftKind::ForEach {
                        items,
                        max_parallel,
                        loop_var,
                        max_parallel_from,
                        collect,
                        ..
                    },
                    Some(body),
                ) => StepKind::ForEach(ForEach {
                    items: items.clone(),
                    body,
                    max_parallel: *max_parallel,
                    loop_var: loop_var.clone(),
                    max_parallel_from: *max_parallel_from,
                    collect: *collect,
                }),
                (
                    DraftKind::While {
                        condition,
                        until,
                        max_iterations,
                        max_iterations_from,
                        ..
                    },
                    Some(body),
                ) => StepKind::While(While {
                    condition: condition.clone(),
                    until: until.clone(),
                    body,
                    max_iterations: *max_iterations,
                    max_iterations_from: *max_iterations_from,
                }),
                _ => continue,
            };
            steps.push(Step {
                id: d.id.clone(),
                kind,
                deps: dep.iter().map(|&j| u32_of(j)).collect(),
                condition: d.condition.clone(),
                on_false: None,
                on_success: None,
                on_failure: OnFailure::Fail,
                timeout: d.timeout,
                max_retries: d.max_retries.unwrap_or(0),
                cache: d.cache,
                pool: d.pool.clone(),
                model: d.model.clone(),
                pos: d.pos,
                recovery: None,
                retry_backoff: d.recovery.backoff,
                output: d.recovery.output.clone().map(Box::new),
                handles_errors: false,
            });
        }

        // Routing targets: known steps of this level, strictly forward.
        for (i, d) in drafts.iter().enumerate() {
            let target = |field: &str,
                          t: &(String, Pos),
                          steps: &[Step],
                          diags: &mut Diagnostics|
             -> Option<u32> {
                let Some(&j) = ids.ids.get(t.0.as_str()) else {
                    let mut diag = Diagnostic::new(
                        Code::E006,
                        t.1,
                        format!("`{field}` names unknown step `{}`", t.0),
                    )
                    .step(&d.id)
                    .field(field);
                    if let Some(s) = did_you_mean(&t.0, ids.names()) {
                        diag = diag.hint(format!("did you mean `{s}`?"));
                    }
                    diags.push(diag);
                    return None;
                };
                if cycle_free && (j == i || graph::ancestors(steps, i)[j]) {
                    diags.push(
                        Diagnostic::new(Code::E015, t.1, format!("`{field}` jumps back from `{}` to `{}`", d.id, t.0))
                            .step(&d.id)
                            .field(field)
                            .hint("routing only jumps forward, to a step that does not run before this one"),
                    );
                    return None;
                }
                Some(u32_of(j))
            };
            if steps.len() != drafts.len() {
                break;
            }
            let on_false = d
                .on_false
                .as_ref()
                .and_then(|t| target("on_false", t, &steps, self.diags));
            let on_success = d
                .on_success
                .as_ref()
                .and_then(|t| target("on_success", t, &steps, self.diags));
            let mut max_retries = steps[i].max_retries;
            let on_failure = match d.on_failure.as_ref() {
                None => OnFailure::Fail,
                Some((p, _)) if p == "fail" => OnFailure::Fail,
                Some((p, _)) if p == "continue" => OnFailure::Continue,
                Some((p, _)) if p == "skip" => OnFailure::Skip,
                Some((p, _)) if p == "retry" => {
                    if d.max_retries.is_none() {
                        max_retries = 3;
                    }
                    OnFailure::Fail
                }
                Some(t) => target("on_failure", t, &steps, self.diags)
                    .map_or(OnFailure::Fail, OnFailure::Goto),
            };
            let word_is_step = d
                .recovery
                .word
                .as_ref()
                .is_some_and(|(w, _)| ids.ids.contains_key(w.as_str()));
            let (on_failure, recovery) = recovery_of(
                d,
                on_failure,
                &handlers[i],
                word_is_step,
                self.diags,
                |t, diags| target("on_error", t, &steps, diags),
            );
            let s = &mut steps[i];
            s.recovery = recovery;
            s.handles_errors = is_handler[i];
            s.on_false = on_false;
            s.on_success = on_success;
            s.on_failure = on_failure;
            s.max_retries = max_retries;
        }
        (steps, unresolved)
    }

    /// Reports what the top level could not resolve.
    pub(super) fn report_unresolved(&mut self, unresolved: Vec<Unresolved>, known: &[&str]) {
        for u in unresolved {
            if !u.explicit
                && (known.contains(&u.name.as_str())
                    || (u.template && self.templates.is_global(&u.name)))
            {
                continue;
            }
            let (code, message) = if u.explicit {
                (
                    Code::E006,
                    format!("step `{}` depends on unknown step `{}`", u.step, u.name),
                )
            } else {
                (
                    Code::E011,
                    format!(
                        "`{}` is not defined: no input, step or loop variable has that name",
                        u.name
                    ),
                )
            };
            let pos = locate(self.source, u.pos, &u.name, u.template);
            let mut d = Diagnostic::new(code, pos, message)
                .step(&u.step)
                .field(&u.field);
            // A dependency names a step; a template name may be an input, a global or a step.
            let pool = u
                .candidates
                .iter()
                .flat_map(|c| c.iter())
                .map(String::as_str);
            let suggestion = if u.explicit {
                did_you_mean(&u.name, pool)
            } else {
                did_you_mean(&u.name, known.iter().copied().chain(pool))
            };
            d = match suggestion {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None if !u.explicit => d.hint(format!(
                    "declare it under `parameters:` to take it as an input (`orc run -i {}=…`)",
                    u.name
                )),
                None => d,
            };
            self.diags.push(d);
        }
    }
}

/// The lines of the pipeline text, found once: a file with many findings is not read again
/// from its start for each.
pub(super) struct SourceLines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> SourceLines<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|&i| i < text.len())
            .collect();
        SourceLines { text, starts }
    }

    /// Line `i` (from 0), without its line break.
    fn line(&self, i: usize) -> Option<&'a str> {
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).map_or(self.text.len(), |&e| e - 1);
        let line = self.text.get(start..end)?;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// How far [`locate`] looks into a value, in characters, before it settles for the value's start.
const LOCATE_SCAN: usize = 64 * 1024;

/// Where `name` is written in the value that starts at `pos`: the first place it stands as a
/// whole name (inside `{{ }}` or `{% %}` when the value is a `template`), on the value's line
/// or the lines below indented at least as far (a block scalar). `pos` when it is not found
/// there (as when escapes make the text differ) or not in the value's first 64 K characters.
pub(super) fn locate(source: &SourceLines<'_>, pos: Pos, name: &str, template: bool) -> Pos {
    let Some(first) = (pos.line as usize).checked_sub(1) else {
        return pos;
    };
    let indent = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let Some(head) = source.line(first) else {
        return pos;
    };
    let skip = pos.col.saturating_sub(1) as usize;
    let mut finder = NameFinder {
        name: &name.chars().collect::<Vec<char>>(),
        template,
        in_expr: !template,
        quote: None,
    };
    if let Some(col) = finder.find(head, skip) {
        return at(pos.line, col);
    }
    // A block scalar starts on its first line of text; its other lines are indented as far.
    let base = skip.max(1);
    let mut scanned = head.len();
    let mut k = first + 1;
    while let Some(line) = source.line(k) {
        scanned += line.len();
        if scanned > LOCATE_SCAN {
            break;
        }
        if !line.trim().is_empty() {
            if indent(line) < base {
                break;
            }
            if let Some(col) = finder.find(line, 0) {
                return at(u32::try_from(k + 1).unwrap_or(u32::MAX), col);
            }
        }
        k += 1;
    }
    pos
}

fn at(line: u32, col: usize) -> Pos {
    Pos {
        line,
        col: u32::try_from(col + 1).unwrap_or(u32::MAX),
    }
}

/// Scans text for a whole name, keeping track of template delimiters and quotes across lines.
struct NameFinder<'n> {
    name: &'n [char],
    template: bool,
    /// Inside `{{ }}` or `{% %}` (always, for an expression).
    in_expr: bool,
    /// The quote of a string literal inside an expression.
    quote: Option<char>,
}

impl NameFinder<'_> {
    /// The column (0-based, in characters) of the name in `line`, from character `skip` on.
    fn find(&mut self, line: &str, skip: usize) -> Option<usize> {
        let chars: Vec<char> = line
            .chars()
            .take(skip.saturating_add(LOCATE_SCAN))
            .collect();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let mut i = skip;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if self.template && !self.in_expr {
                if c == '{' && matches!(next, Some('{' | '%')) {
                    self.in_expr = true;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if let Some(q) = self.quote {
                if c == q {
                    self.quote = None;
                }
                i += 1;
                continue;
            }
            if self.template && matches!(c, '}' | '%') && next == Some('}') {
                self.in_expr = false;
                i += 2;
                continue;
            }
            if self.template && matches!(c, '\'' | '"') {
                self.quote = Some(c);
                i += 1;
                continue;
            }
            let starts = chars[i..].starts_with(self.name)
                && (i == 0 || !(word(chars[i - 1]) || chars[i - 1] == '.'))
                && chars.get(i + self.name.len()).is_none_or(|&c| !word(c));
            if starts {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(source: &str, line: u32, col: u32, name: &str, template: bool) -> (u32, u32) {
        let p = locate(&SourceLines::new(source), Pos { line, col }, name, template);
        (p.line, p.col)
    }

    #[test]
    fn a_name_is_found_where_it_is_written() {
        // Inside the template's braces, not in its text, nor as an attribute or a string.
        let src = "m: \"a x.a {{ 'a' ~ x.a ~ a }}\"\n";
        assert_eq!(place(src, 1, 4, "a", true), (1, 26));
        // An expression has no braces.
        assert_eq!(place("if: \"b and a\"\n", 1, 5, "a", false), (1, 12));
        // A block scalar (its position is its first line of text): on the lines of its
        // block, not after it.
        let src = "k:\n  m: |\n    text a\n    {{ b }} {{ a }}\n  a: 1\n  b: \"{{ z }}\"\n";
        assert_eq!(place(src, 3, 5, "a", true), (4, 16));
        assert_eq!(place(src, 3, 5, "z", true), (3, 5));
        // A one-line value stops at its line: the next key is indented less than the value.
        assert_eq!(
            place("a: \"{{ x }}\"\nb: \"{{ y }}\"\n", 1, 4, "y", true),
            (1, 4)
        );
        // Line breaks may be CRLF.
        assert_eq!(place("a: 1\r\nm: \"{{ b }}\"\r\n", 2, 4, "b", true), (2, 8));
        let lines = SourceLines::new("a\r\nb\n\nc");
        let got: Vec<Option<&str>> = (0..5).map(|i| lines.line(i)).collect();
        assert_eq!(got, [Some("a"), Some("b"), Some(""), Some("c"), None]);
        // Columns count characters.
        assert_eq!(place("m: \"→ {{ é }}\"\n", 1, 4, "é", true), (1, 10));
    }
}
