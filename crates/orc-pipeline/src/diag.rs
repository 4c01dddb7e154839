//! Diagnostics: what is wrong with a pipeline, where, and what to do about it.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::yaml::Pos;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pipeline cannot run.
    Error,
    /// The pipeline runs, but probably not as its author meant.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

/// A stable diagnostic code. The number never changes meaning; new problems get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Code {
    /// The text is not valid YAML (or not UTF-8, or too large or deep).
    E001,
    /// A required key is missing.
    E002,
    /// A value has the wrong type.
    E003,
    /// Two steps share an id.
    E004,
    /// An id does not match `^[a-zA-Z][a-zA-Z0-9_-]*$`, or is reserved.
    E005,
    /// A reference names a step that does not exist.
    E006,
    /// The dependencies form a cycle.
    E007,
    /// The tool is not known.
    E008,
    /// The action is not known (for the tool, or as a tool-less action).
    E009,
    /// A template does not parse.
    E010,
    /// A template or condition uses a name that nothing provides.
    E011,
    /// A condition does not parse.
    E012,
    /// A key orc does not implement.
    E013,
    /// A value is out of range or not one of the allowed words.
    E014,
    /// A routing target is not after its source.
    E015,
    /// A step needs a model and no model is configured.
    E016,
    /// A template uses a filter, test or function that does not exist.
    E017,
    /// A step or the pipeline names a model the configuration does not have.
    E018,
    /// An AUTO tag cannot be answered when the pipeline compiles (no resolver, or a template in it).
    E019,
    /// An AUTO tag is not closed, closes nothing, or is malformed.
    E020,
    /// An AUTO tag's answer failed or does not fit its field.
    E021,
    /// A step gives a parameter its tool's action does not take.
    E022,
    /// A step uses a tool the service does not allow in the pipelines posted to it.
    E023,
    /// A template in a field that is never rendered.
    W101,
    /// A key orc reads but ignores, or a setting that has no effect where it is.
    W102,
    /// A key written twice in one mapping: the later value is used, as py-orc's parser did.
    W103,
    /// A dependency inferred from a template only.
    I201,
    /// An AUTO tag a model answers, not asked yet (`orc validate` without `--resolve`).
    I202,
    /// An AUTO tag in a model field, answered by the router without a model call.
    I203,
    /// An AUTO tag answered by a model when the pipeline compiled.
    I204,
}

impl Code {
    /// The severity that goes with the code.
    pub fn severity(self) -> Severity {
        match self {
            Code::W101 | Code::W102 | Code::W103 => Severity::Warning,
            Code::I201 | Code::I202 | Code::I203 | Code::I204 => Severity::Info,
            _ => Severity::Error,
        }
    }

    /// A short kebab-case name, printed with the code.
    pub fn name(self) -> &'static str {
        match self {
            Code::E001 => "invalid-yaml",
            Code::E002 => "missing-key",
            Code::E003 => "wrong-type",
            Code::E004 => "duplicate-id",
            Code::E005 => "bad-id",
            Code::E006 => "unknown-step",
            Code::E007 => "dependency-cycle",
            Code::E008 => "unknown-tool",
            Code::E009 => "unknown-action",
            Code::E010 => "template-syntax",
            Code::E011 => "undefined-name",
            Code::E012 => "bad-condition",
            Code::E013 => "unsupported-key",
            Code::E014 => "bad-value",
            Code::E015 => "backward-route",
            Code::E016 => "no-model",
            Code::E017 => "unknown-filter",
            Code::E018 => "unknown-model",
            Code::E019 => "auto-unresolved",
            Code::E020 => "auto-syntax",
            Code::E021 => "auto-answer",
            Code::E022 => "unknown-parameter",
            Code::E023 => "tool-not-allowed",
            Code::W101 => "inert-template",
            Code::W102 => "ignored-setting",
            Code::W103 => "duplicate-key",
            Code::I201 => "implicit-dependency",
            Code::I202 => "auto-needs-model",
            Code::I203 => "auto-model-picked",
            Code::I204 => "auto-answered",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One finding, with everything a person needs to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error, warning or info.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Where it is.
    pub pos: Pos,
    /// The step it concerns, if any.
    pub step: Option<String>,
    /// The field path within the step or document (`parameters.path`).
    pub field: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A finding with the code's own severity.
    pub fn new(code: Code, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            pos,
            step: None,
            field: None,
            hint: None,
        }
    }

    /// Names the step.
    pub fn step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }

    /// Names the field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the finding with a source excerpt and a caret, as a compiler does.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = writeln!(
            out,
            "{sev}[{}/{}]: {}",
            self.code,
            self.code.name(),
            self.message
        );
        if self.pos.line > 0 {
            let _ = writeln!(out, "  --> {file}:{}:{}", self.pos.line, self.pos.col);
            let line_no = self.pos.line.to_string();
            let pad = " ".repeat(line_no.len());
            if let Some(text) = source.lines().nth(self.pos.line as usize - 1) {
                let caret_at = text
                    .chars()
                    .take(self.pos.col.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect::<String>();
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line_no} | {text}");
                let _ = writeln!(out, "{pad} | {caret_at}^");
            }
        } else {
            let _ = writeln!(out, "  --> {file}");
        }
        match (&self.step, &self.field) {
            (Some(s), Some(f)) => {
                let _ = writeln!(out, "  = step: {s}, field: {f}");
            }
            (Some(s), None) => {
                let _ = writeln!(out, "  = step: {s}");
            }
            (None, Some(f)) => {
                let _ = writeln!(out, "  = field: {f}");
            }
            (None, None) => {}
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "  = hint: {h}");
        }
        out
    }
}

/// Every finding of one compilation, in source order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds a finding.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The number of errors.
    pub fn error_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Sorts by position, keeping the order of findings at the same place.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.pos.line, d.pos.col));
    }

    /// Renders every finding, then a summary line.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out.push_str(&d.render(file, source));
            out.push('\n');
        }
        let errors = self.error_count();
        if errors > 0 {
            let _ = writeln!(
                out,
                "{file}: {errors} error{} found; nothing was run",
                if errors == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// The closest candidate to `name`, if one is close enough to suggest (a third of its
/// characters at most, a swap of neighbours counting as one edit); the first of equals.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let longest = name.chars().count().max(c.chars().count());
        let limit = (longest / 3).max(1);
        // A name with nothing in common (`c` for `a`) is no suggestion.
        if d <= limit && d < longest && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edits between two strings, counting a swap of two neighbouring characters as one edit
/// (`raed` is one edit from `read`), as people mistype.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && *ca == b[j - 1] && a[i - 1] == *cb {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("red_alpha", ["read_alpha", "beta"]),
            Some("read_alpha")
        );
        assert_eq!(did_you_mean("zzz", ["read_alpha", "beta"]), None);
        assert_eq!(did_you_mean("c", ["a", "b"]), None);
        assert_eq!(did_you_mean("ba", ["ab"]), Some("ab"));
        assert_eq!(did_you_mean("raed", ["write", "read"]), Some("read"));
        assert_eq!(
            did_you_mean("ecoh", ["echo", "evaluate_condition"]),
            Some("echo")
        );
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn renders_caret_under_column() {
        let d = Diagnostic::new(Code::E006, Pos { line: 2, col: 5 }, "bad")
            .step("s")
            .hint("fix it");
        let text = d.render("p.yaml", "a: 1\nb:  x\n");
        assert!(text.contains("--> p.yaml:2:5"), "{text}");
        assert!(text.contains("2 | b:  x\n  |     ^"), "{text}");
        assert!(text.contains("= hint: fix it"), "{text}");
    }
}
