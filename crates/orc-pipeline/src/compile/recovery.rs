//! py-orc's error handling and declared outputs on a step, read into drafts: `on_error` in all
//! its forms (a policy word, a step id, prose, a handler mapping, py-orc's legacy mapping, a
//! list of handlers) and `error_handlers`; `retry` and `retry_config`; `produces` and
//! `location`. Every key is checked; an unknown one is E013 at its place.

use crate::diag::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::plan::{Condition, OnFailure, Param};
use crate::plan::{DeclaredOutput, Handler, LogLevel, Recovery, RetryBackoff, Then};
use crate::yaml::{Kind, Node, Pos};

use super::draft::{Draft, DraftHandler, DraftRecovery, Drafter, POLICIES, UseSite};
use super::read::{Reader, valid_id};

/// py-orc's handler keys (`ErrorHandler`) and its legacy ones (`ErrorHandling`).
const HANDLER_KEYS: &[&str] = &[
    "handler_task_id",
    "handler_action",
    "error_types",
    "error_patterns",
    "error_codes",
    "retry_with_handler",
    "max_handler_retries",
    "propagate_error",
    "continue_on_handler_failure",
    "fallback_value",
    "capture_error_context",
    "log_level",
    "timeout",
    "priority",
    "enabled",
    "action",
    "retry_count",
    "retry_delay",
    "continue_on_error",
];

/// py-orc's legacy `ErrorHandling` keys: a mapping with any of them is that form.
const LEGACY_KEYS: &[&str] = &["action", "retry_count", "retry_delay", "continue_on_error"];

/// The error types orc can tell apart: py-orc's names (its schema's list) and orc's kinds.
pub(super) const ERROR_TYPES: &[&str] = &[
    "*",
    "Exception",
    "ValueError",
    "TypeError",
    "FileNotFoundError",
    "PermissionError",
    "TimeoutError",
    "ConnectionError",
    "HTTPError",
    "APIError",
    "ModelError",
    "ToolError",
    "AuthenticationError",
    "AuthorizationError",
    "OSError",
    "Timeout",
    "TemplateError",
    "OutputMissing",
];

const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "max_retries",
    "retries",
    "delay",
    "initial_delay",
    "base_delay",
    "backoff",
    "backoff_factor",
    "max_delay",
];

impl Drafter<'_> {
    /// Reads a step's error handling, retries and declared output.
    pub(super) fn recovery(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> DraftRecovery {
        let mut out = DraftRecovery::default();
        match (node.get("on_error"), node.get("error_handlers")) {
            (Some(on), Some(more)) if matches!(on.kind, Kind::Seq(_)) => {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        more.pos,
                        "a step has both a list of `on_error` handlers and `error_handlers`",
                    )
                    .field("error_handlers")
                    .hint("put every handler in one list"),
                );
                self.on_error(r, on, step, uses, &mut out);
            }
            (on, more) => {
                if let Some(on) = on {
                    self.on_error(r, on, step, uses, &mut out);
                }
                if let Some(more) = more {
                    match &more.kind {
                        Kind::Seq(items) => {
                            for (i, item) in items.iter().enumerate() {
                                let field = format!("error_handlers[{i}]");
                                if let Some(h) = self.handler(r, item, &field, step, uses, &mut out)
                                {
                                    out.handlers.push(h);
                                }
                            }
                        }
                        _ => r.wrong_type(more, "error_handlers", "a list of handlers"),
                    }
                }
            }
        }
        // py-orc tries handlers by `priority` (lower first), then as written.
        out.handlers
            .sort_by_key(|h| priority_of(node, h.handler.pos).unwrap_or(100));
        self.retry(r, node, &mut out);
        out.output = self.declared_output(r, node, step, uses);
        out
    }

    fn on_error(
        &mut self,
        r: &mut Reader<'_>,
        on: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
        out: &mut DraftRecovery,
    ) {
        match &on.kind {
            Kind::Str(s) => {
                let text = s.trim();
                if text.is_empty() {
                    r.report(
                        Diagnostic::new(Code::E014, on.pos, "`on_error` is empty")
                            .field("on_error")
                            .hint("write a policy (`continue`, `skip`, `fail`, `retry`), a step id or a handler"),
                    );
                } else if POLICIES.contains(&text) || valid_id(text) {
                    out.word = Some((text.to_string(), on.pos));
                } else {
                    out.handlers.push(self.prose(on, "on_error", step, uses));
                }
            }
            Kind::Map(_) => {
                if let Some(h) = self.handler(r, on, "on_error", step, uses, out) {
                    out.handlers.push(h);
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("on_error[{i}]");
                    let h = match &item.kind {
                        Kind::Str(s) if !s.trim().is_empty() => {
                            Some(self.prose(item, &field, step, uses))
                        }
                        _ => self.handler(r, item, &field, step, uses, out),
                    };
                    out.handlers.extend(h);
                }
            }
            _ => r.wrong_type(
                on,
                "on_error",
                "a policy, a step id, a handler mapping or a list of handlers",
            ),
        }
    }

    /// `on_error: "Log the error and continue"`: py-orc runs the prose as a handler action
    /// for any error and lets the run go on; orc records it and goes on.
    fn prose(
        &mut self,
        n: &Node,
        field: &str,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> DraftHandler {
        let action = self.param(n, step, field, uses);
        DraftHandler {
            handler: prose_handler(action, n.pos),
            step: None,
        }
    }

    /// A handler mapping: py-orc's `ErrorHandler` keys, or its legacy `ErrorHandling` ones.
    fn handler(
        &mut self,
        r: &mut Reader<'_>,
        n: &Node,
        field: &str,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
        out: &mut DraftRecovery,
    ) -> Option<DraftHandler> {
        let Kind::Map(entries) = &n.kind else {
            r.wrong_type(n, field, "a handler mapping or a prose action");
            return None;
        };
        unknown_keys(r, entries, HANDLER_KEYS, field, "on_error");
        let f = |k: &str| format!("{field}.{k}");
        let legacy = LEGACY_KEYS.iter().any(|k| n.get(k).is_some());
        let action_node = match (n.get("handler_action"), n.get("action")) {
            (Some(a), Some(b)) => {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        b.pos,
                        "a handler has both `handler_action` and `action`",
                    )
                    .field(f("action"))
                    .hint("`action` is py-orc's older name for `handler_action`; keep one"),
                );
                Some((a, "handler_action"))
            }
            (Some(a), None) => Some((a, "handler_action")),
            (None, Some(b)) => Some((b, "action")),
            (None, None) => None,
        };
        let action = action_node.and_then(|(a, k)| match &a.kind {
            Kind::Str(_) => Some(self.param(a, step, &f(k), uses)),
            _ => {
                r.wrong_type(a, &f(k), "a string");
                None
            }
        });
        let target = n.get("handler_task_id").and_then(|t| {
            let s = r.string(t, &f("handler_task_id"))?;
            Some((s.trim().to_string(), t.pos))
        });
        if let (Some((_, pos)), Some(_)) = (&target, &action) {
            r.report(
                Diagnostic::new(
                    Code::E003,
                    *pos,
                    "a handler has both `handler_task_id` and an action",
                )
                .field(f("handler_task_id"))
                .hint("a handler runs a step or describes an action, not both"),
            );
        }
        let fallback = n
            .get("fallback_value")
            .map(|v| self.param(v, step, &f("fallback_value"), uses));
        if action.is_none() && target.is_none() && fallback.is_none() {
            r.report(
                Diagnostic::new(Code::E002, n.pos, "a handler does nothing")
                    .field(field.to_string())
                    .hint("give it `handler_task_id`, `handler_action` or `fallback_value`"),
            );
        }
        let error_types = strings(r, n, &f("error_types"), "error_types");
        for (t, pos) in &error_types {
            if !ERROR_TYPES.contains(&t.as_str()) {
                r.report(
                    Diagnostic::new(
                        Code::W102,
                        *pos,
                        format!("no error orc raises is of type `{t}`"),
                    )
                    .field(f("error_types"))
                    .hint(format!("orc tells apart: {}", ERROR_TYPES.join(", "))),
                );
            }
        }
        let error_patterns = strings(r, n, &f("error_patterns"), "error_patterns");
        for (p, pos) in &error_patterns {
            if let Err(e) = regex::RegexBuilder::new(p).case_insensitive(true).build() {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                r.report(
                    Diagnostic::new(
                        Code::E014,
                        *pos,
                        format!("`{p}` is not a regular expression: {first}"),
                    )
                    .field(f("error_patterns")),
                );
            }
        }
        let error_codes = match n.get("error_codes") {
            None => Vec::new(),
            Some(c) => match &c.kind {
                Kind::Seq(items) => items
                    .iter()
                    .filter_map(|i| match &i.kind {
                        Kind::Int(_) | Kind::Str(_) => Some(i.to_json()),
                        _ => {
                            r.wrong_type(i, &f("error_codes"), "a code (a number or a string)");
                            None
                        }
                    })
                    .collect(),
                _ => {
                    r.wrong_type(c, &f("error_codes"), "a list of codes");
                    Vec::new()
                }
            },
        };
        let flag = |r: &mut Reader<'_>, k: &str| n.get(k).and_then(|v| r.boolean(v, &f(k)));
        let retry_with_handler = flag(r, "retry_with_handler");
        let propagate = flag(r, "propagate_error");
        let continue_on_handler_failure = flag(r, "continue_on_handler_failure");
        let continue_on_error = flag(r, "continue_on_error");
        if flag(r, "capture_error_context") == Some(false)
            && let Some(v) = n.get("capture_error_context")
        {
            r.report(
                Diagnostic::new(
                    Code::W102,
                    v.pos,
                    "orc always binds `error` in a handler; `capture_error_context: false` has no effect",
                )
                .field(f("capture_error_context")),
            );
        }
        if let Some(t) = n.get("timeout")
            && r.seconds(t, &f("timeout")).is_some()
        {
            r.report(
                Diagnostic::new(
                    Code::W102,
                    t.pos,
                    "orc runs no handler action, so a handler's `timeout` has no effect",
                )
                .field(f("timeout"))
                .hint("give the handler step (`handler_task_id`) its own `timeout`"),
            );
        }
        if let Some(p) = n.get("priority") {
            r.count(p, &f("priority"), 1, 10_000);
        }
        let max_handler_retries = n
            .get("max_handler_retries")
            .and_then(|v| r.count(v, &f("max_handler_retries"), 0, 100));
        let retry_count = n
            .get("retry_count")
            .and_then(|v| r.count(v, &f("retry_count"), 0, 100));
        if let Some(d) = n.get("retry_delay")
            && let Some(s) = r.seconds(d, &f("retry_delay"))
            && out.backoff.is_none()
        {
            out.backoff = Some(RetryBackoff {
                delay: s,
                factor: 1.0,
                max_delay: s,
            });
        }
        let log_level = match n.get("log_level") {
            None => LogLevel::Error,
            Some(l) => match r.string(l, &f("log_level")).map(|s| s.to_ascii_lowercase()) {
                Some(s) if s == "debug" => LogLevel::Debug,
                Some(s) if s == "info" => LogLevel::Info,
                Some(s) if s == "warning" || s == "warn" => LogLevel::Warning,
                Some(s) if s == "error" || s == "critical" => LogLevel::Error,
                Some(s) => {
                    r.report(
                        Diagnostic::new(
                            Code::E014,
                            l.pos,
                            format!("`log_level` must be debug, info, warning, error or critical, not `{s}`"),
                        )
                        .field(f("log_level")),
                    );
                    LogLevel::Error
                }
                None => LogLevel::Error,
            },
        };
        let enabled: Option<Condition> = n
            .get("enabled")
            .and_then(|e| self.condition(r, e, &f("enabled"), uses));
        // py-orc's legacy form retries `retry_count` times and goes on only when it says so;
        // its handler form retries once after the handler (more with `max_handler_retries`)
        // unless `retry_with_handler: false`, and goes on unless `propagate_error: true`.
        let (retries, then) = if legacy {
            (
                retry_count.unwrap_or(0),
                if continue_on_error == Some(true) {
                    Then::Continue
                } else {
                    Then::Propagate
                },
            )
        } else {
            (
                if retry_with_handler.unwrap_or(true) {
                    max_handler_retries.unwrap_or(0).max(1)
                } else {
                    0
                },
                if propagate == Some(true) {
                    Then::Propagate
                } else {
                    Then::Continue
                },
            )
        };
        Some(DraftHandler {
            handler: Handler {
                error_types: error_types.into_iter().map(|(t, _)| t).collect(),
                error_patterns: error_patterns.into_iter().map(|(p, _)| p).collect(),
                error_codes,
                enabled,
                action,
                fallback,
                step: None,
                retries,
                then,
                continue_on_handler_failure: continue_on_handler_failure.unwrap_or(false),
                log_level,
                pos: n.pos,
            },
            step: target,
        })
    }

    /// `retry: N`, `retry: {…}` and `retry_config: {…}`.
    fn retry(&mut self, r: &mut Reader<'_>, node: &Node, out: &mut DraftRecovery) {
        let given: Vec<(&str, &Node)> = ["retry", "retry_config", "max_retries"]
            .into_iter()
            .filter_map(|k| node.get(k).map(|n| (k, n)))
            .collect();
        if let [(first, _), (second, n), ..] = given.as_slice() {
            r.report(
                Diagnostic::new(
                    Code::E003,
                    n.pos,
                    format!("a step has both `{first}` and `{second}`"),
                )
                .field(*second)
                .hint("they all set the step's retries; keep one"),
            );
        }
        let Some((key, n)) = given.into_iter().find(|(k, _)| *k != "max_retries") else {
            return;
        };
        match &n.kind {
            Kind::Int(_) if key == "retry" => out.retries = r.count(n, key, 0, 100),
            Kind::Map(entries) => {
                unknown_keys(r, entries, RETRY_KEYS, key, key);
                let f = |k: &str| format!("{key}.{k}");
                let get =
                    |names: &[&'static str]| names.iter().find_map(|k| n.get(k).map(|v| (*k, v)));
                if let Some((k, v)) = get(&["max_attempts"]) {
                    out.retries = r.count(v, &f(k), 1, 101).map(|a| a - 1);
                } else if let Some((k, v)) = get(&["max_retries", "retries"]) {
                    out.retries = r.count(v, &f(k), 0, 100);
                }
                let delay = get(&["delay", "initial_delay", "base_delay"])
                    .and_then(|(k, v)| r.seconds(v, &f(k)));
                let max_delay = get(&["max_delay"]).and_then(|(k, v)| r.seconds(v, &f(k)));
                let mut factor = None;
                if let Some((k, v)) = get(&["backoff_factor", "backoff"]) {
                    factor = match &v.kind {
                        Kind::Int(_) | Kind::Float(_) => match v.to_json().as_f64() {
                            Some(x) if (1.0..=100.0).contains(&x) => Some(x),
                            _ => {
                                r.report(
                                    Diagnostic::new(
                                        Code::E014,
                                        v.pos,
                                        format!("`{k}` must be a number from 1 to 100"),
                                    )
                                    .field(f(k)),
                                );
                                None
                            }
                        },
                        Kind::Str(s) if s == "exponential" => Some(2.0),
                        Kind::Str(s) if s == "fixed" || s == "constant" => Some(1.0),
                        _ => {
                            r.report(
                                Diagnostic::new(
                                    Code::E014,
                                    v.pos,
                                    format!("`{k}` must be a factor (a number), `exponential` or `fixed`"),
                                )
                                .field(f(k)),
                            );
                            None
                        }
                    };
                }
                if delay.is_some() || max_delay.is_some() || factor.is_some() {
                    // py-orc's `RetryStrategy` defaults: 1 s, doubling; orc caps it at a minute.
                    let delay = delay.unwrap_or(1.0);
                    out.backoff = Some(RetryBackoff {
                        delay,
                        factor: factor.unwrap_or(2.0),
                        max_delay: max_delay.unwrap_or(60.0).max(delay),
                    });
                }
            }
            _ => r.wrong_type(
                n,
                key,
                if key == "retry" {
                    "a number of retries or a mapping"
                } else {
                    "a mapping"
                },
            ),
        }
    }

    /// `produces` and `location`.
    fn declared_output(
        &mut self,
        r: &mut Reader<'_>,
        node: &Node,
        step: Option<&str>,
        uses: &mut Vec<UseSite>,
    ) -> Option<DeclaredOutput> {
        let produces_node = node.get("produces");
        let location_node = node.get("location");
        if produces_node.is_none() && location_node.is_none() {
            return None;
        }
        if node.get("for_each").is_some() || node.get("while").is_some() {
            for (k, n) in [("produces", produces_node), ("location", location_node)] {
                if let Some(n) = n {
                    r.report(
                        Diagnostic::new(
                            Code::E013,
                            n.pos,
                            format!("`{k}` does not belong on a loop step"),
                        )
                        .field(k)
                        .hint(format!(
                            "put `{k}` on the step inside the loop that writes the file"
                        )),
                    );
                }
            }
            return None;
        }
        let produces = produces_node.and_then(|n| r.scalar_text(n, "produces"));
        let location = location_node.and_then(|n| match &n.kind {
            Kind::Str(s) if s.trim().is_empty() => {
                r.report(
                    Diagnostic::new(Code::E014, n.pos, "`location` is empty")
                        .field("location")
                        .hint("write the path of the file the step writes, or remove the key"),
                );
                None
            }
            Kind::Str(_) => Some(self.param(n, step, "location", uses)),
            _ => {
                r.wrong_type(n, "location", "a path");
                None
            }
        });
        Some(DeclaredOutput { produces, location })
    }
}

/// Every key of a mapping not in `known` is E013 at its place, with the closest known one.
fn unknown_keys(
    r: &mut Reader<'_>,
    entries: &[(crate::yaml::Key, Node)],
    known: &[&str],
    field: &str,
    within: &str,
) {
    for (key, _) in entries {
        if known.contains(&key.name.as_str()) {
            continue;
        }
        let d = Diagnostic::new(
            Code::E013,
            key.pos,
            format!("orc does not support the key `{}` in `{within}`", key.name),
        )
        .field(format!("{field}.{}", key.name));
        r.report(match did_you_mean(&key.name, known.iter().copied()) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint(format!("`{within}` takes: {}", known.join(", "))),
        });
    }
}

/// A handler's `priority` as written, found again by the handler's position.
fn priority_of(step: &Node, pos: Pos) -> Option<i64> {
    let lists = ["on_error", "error_handlers"]
        .into_iter()
        .filter_map(|k| step.get(k));
    for l in lists {
        let items: Vec<&Node> = match &l.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![l],
        };
        if let Some(h) = items.into_iter().find(|h| h.pos == pos) {
            return match h.get("priority").map(|p| &p.kind) {
                Some(Kind::Int(p)) => Some(*p),
                // py-orc gives its legacy form the lowest priority.
                _ if LEGACY_KEYS.iter().any(|k| h.get(k).is_some()) => Some(1000),
                _ => None,
            };
        }
    }
    None
}

/// A list of strings (`error_types`, `error_patterns`), each with its place.
fn strings(r: &mut Reader<'_>, n: &Node, field: &str, key: &str) -> Vec<(String, Pos)> {
    match n.get(key) {
        None => Vec::new(),
        Some(l) => match &l.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|i| r.string(i, field).map(|s| (s, i.pos)))
                .collect(),
            Kind::Str(s) => vec![(s.clone(), l.pos)],
            _ => {
                r.wrong_type(l, field, "a list of strings");
                Vec::new()
            }
        },
    }
}

/// A prose handler: any error, nothing retried, the run goes on (py-orc's reading of
/// `on_error: "…"`).
pub(super) fn prose_handler(action: Param, pos: Pos) -> Handler {
    Handler {
        error_types: Vec::new(),
        error_patterns: Vec::new(),
        error_codes: Vec::new(),
        enabled: None,
        action: Some(action),
        fallback: None,
        step: None,
        retries: 0,
        then: Then::Continue,
        continue_on_handler_failure: true,
        log_level: LogLevel::Error,
        pos,
    }
}

/// Whether a template or condition at `field` is a handler's, where `error` is bound.
pub(super) fn binds_error(field: &str) -> bool {
    field.starts_with("on_error") || field.starts_with("error_handlers")
}

/// The step each handler of each draft runs (`handler_task_id`), as an index of the level:
/// unknown names and a step handling itself are reported.
pub(super) fn handler_steps<'d>(
    drafts: &'d [Draft],
    find: impl Fn(&str) -> Option<usize>,
    names: impl Fn() -> Vec<&'d str>,
    diags: &mut Diagnostics,
) -> Vec<Vec<Option<usize>>> {
    drafts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.recovery
                .handlers
                .iter()
                .map(|h| {
                    let (name, pos) = h.step.as_ref()?;
                    match find(name) {
                        Some(j) if j == i => {
                            diags.push(
                                Diagnostic::new(
                                    Code::E007,
                                    *pos,
                                    format!("step `{name}` is its own error handler"),
                                )
                                .step(&d.id)
                                .field("on_error.handler_task_id")
                                .hint("name another step of the same level"),
                            );
                            None
                        }
                        Some(j) => Some(j),
                        None => {
                            let mut diag = Diagnostic::new(
                                Code::E006,
                                *pos,
                                format!("`handler_task_id` names unknown step `{name}`"),
                            )
                            .step(&d.id)
                            .field("on_error.handler_task_id");
                            if let Some(s) = did_you_mean(name, names()) {
                                diag = diag.hint(format!("did you mean `{s}`?"));
                            }
                            diags.push(diag);
                            None
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// A step's failure policy and handlers once names are indices: `on_error: STEP` goes to that
/// step (as `on_failure: STEP` does); another single word is prose, as py-orc reads it.
pub(super) fn recovery_of(
    d: &Draft,
    on_failure: OnFailure,
    handler_steps: &[Option<usize>],
    word_is_step: bool,
    diags: &mut Diagnostics,
    goto: impl FnOnce(&(String, Pos), &mut Diagnostics) -> Option<u32>,
) -> (OnFailure, Option<Box<Recovery>>) {
    let mut on_failure = on_failure;
    let mut handlers: Vec<Handler> = d
        .recovery
        .handlers
        .iter()
        .zip(handler_steps)
        .map(|(h, j)| Handler {
            step: j.and_then(|j| u32::try_from(j).ok()),
            ..h.handler.clone()
        })
        .collect();
    if let Some(word) = &d.recovery.word {
        if !word_is_step {
            handlers.push(prose_handler(
                Param::Lit(serde_json::Value::String(word.0.clone())),
                word.1,
            ));
        } else if d.on_failure.is_some() {
            diags.push(
                Diagnostic::new(
                    Code::E003,
                    word.1,
                    "a step has both `on_error` and `on_failure` (or `continue_on_error`)",
                )
                .step(&d.id)
                .field("on_error")
                .hint(format!(
                    "`on_error: {}` means `on_failure: {}`; keep one",
                    word.0, word.0
                )),
            );
        } else if let Some(t) = goto(word, diags) {
            on_failure = OnFailure::Goto(t);
        }
    }
    let recovery = (!handlers.is_empty()).then(|| Box::new(Recovery { handlers }));
    (on_failure, recovery)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::plan::Then;
    use crate::plan::{OnFailure, Param, Step};
    use crate::{Catalog, Code, compile};

    fn steps(text: &str) -> Vec<Step> {
        match compile(text, &Catalog::new()) {
            Ok(c) => c.plan.steps.clone(),
            Err(d) => panic!("{}", d.render("t.yaml", text)),
        }
    }

    fn codes(text: &str) -> Vec<(Code, u32, u32)> {
        let Err(d) = compile(text, &Catalog::new()) else {
            panic!("compiled");
        };
        d.0.iter()
            .map(|d| (d.code, d.pos.line, d.pos.col))
            .collect()
    }

    const HEAD: &str = "id: t\nname: t\nsteps:\n";

    #[test]
    fn policy_words_and_step_ids_are_routes_and_other_text_is_a_prose_handler() {
        let s = steps(&format!(
            "{HEAD}  - {{ id: a, action: echo, on_error: skip }}\n  - {{ id: b, action: echo, on_error: d }}\n  - {{ id: c, action: echo, on_error: ignore }}\n  - {{ id: d, action: echo, on_error: 'Log and go on' }}\n"
        ));
        assert_eq!(s[0].on_failure, OnFailure::Skip);
        assert!(s[0].recovery.is_none());
        assert_eq!(s[1].on_failure, OnFailure::Goto(3));
        for step in &s[2..] {
            assert_eq!(step.on_failure, OnFailure::Fail);
            let h = &step.recovery.as_ref().expect("a handler").handlers[0];
            assert_eq!(h.then, Then::Continue);
            assert!(matches!(h.action, Some(Param::Lit(_))));
        }
    }

    #[test]
    fn handlers_are_tried_by_priority_and_name_their_step() {
        let s = steps(&format!(
            "{HEAD}  - id: a\n    action: echo\n    on_error:\n      - {{ handler_action: late, priority: 50 }}\n      - {{ handler_task_id: h, error_types: [ValueError], priority: 1, retry_with_handler: false }}\n      - {{ action: legacy, retry_count: 2, continue_on_error: true }}\n  - id: h\n    action: echo\n    parameters: {{ message: '{{{{ error.message }}}} in {{{{ failed_task_id }}}}' }}\n"
        ));
        let hs = &s[0].recovery.as_ref().unwrap().handlers;
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].step, Some(1));
        assert_eq!(hs[0].retries, 0);
        assert_eq!(hs[1].retries, 1);
        // The legacy form: py-orc's lowest priority, its retries, its policy.
        assert_eq!(hs[2].retries, 2);
        assert_eq!(hs[2].then, Then::Continue);
        assert!(s[1].handles_errors);
        assert_eq!(s[1].deps, vec![0]);
    }

    #[test]
    fn retry_forms_set_retries_and_the_wait() {
        let s = steps(&format!(
            "{HEAD}  - {{ id: a, action: echo, retry: 2 }}\n  - {{ id: b, action: echo, retry_config: {{ max_attempts: 4, delay: 0.5, backoff: fixed }} }}\n  - {{ id: c, action: echo, retry_config: {{ max_retries: 1, backoff_factor: 3, max_delay: 5 }} }}\n"
        ));
        assert_eq!(s[0].max_retries, 2);
        assert!(s[0].retry_backoff.is_none());
        assert_eq!(s[1].max_retries, 3);
        let b = s[1].retry_backoff.unwrap();
        assert!((b.delay - 0.5).abs() < 1e-9 && (b.factor - 1.0).abs() < 1e-9);
        let c = s[2].retry_backoff.unwrap();
        assert!((c.delay - 1.0).abs() < 1e-9 && (c.factor - 3.0).abs() < 1e-9);
        assert!((c.max_delay - 5.0).abs() < 1e-9);
    }

    #[test]
    fn declared_outputs_keep_what_they_produce_and_where() {
        let s = steps(&format!(
            "{HEAD}  - {{ id: a, action: echo, produces: markdown-file, location: '{{{{ output_path }}}}/r.md' }}\n  - {{ id: b, action: echo, produces: text }}\n"
        ));
        let a = s[0].output.as_ref().unwrap();
        assert_eq!(a.produces.as_deref(), Some("markdown-file"));
        assert!(matches!(a.location, Some(Param::Tmpl(_))));
        assert!(s[1].output.as_ref().unwrap().location.is_none());
    }

    #[test]
    fn bad_forms_are_errors_at_their_place() {
        let found = codes(&format!(
            "{HEAD}  - id: a\n    action: echo\n    on_error: {{ handler_action: x, fallback_result: 1 }}\n  - {{ id: b, action: echo, on_error: {{ handler_task_id: b }} }}\n  - {{ id: c, action: echo, retry: 1, max_retries: 2 }}\n  - {{ id: d, action: echo, on_error: {{ log_level: loud, fallback_value: 1 }} }}\n  - {{ id: e, action: echo, on_error: {{ priority: 3 }} }}\n  - {{ id: f, action: echo, on_error: {{ handler_action: '{{{{ error.message }}}}' }}, parameters: {{ message: '{{{{ error }}}}' }} }}\n"
        ));
        for want in [
            (Code::E013, 6, 36),
            (Code::E007, 7, 57),
            (Code::E003, 8, 51),
            (Code::E014, 9, 51),
            (Code::E002, 10, 38),
            (Code::E011, 11, 108),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
    }
}
