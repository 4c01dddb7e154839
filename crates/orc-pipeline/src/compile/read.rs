//! Typed reads of YAML nodes that record a diagnostic instead of failing.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::yaml::{Kind, Node};

/// The longest timeout a pipeline may set, in seconds: a year.
pub const MAX_TIMEOUT_SECS: f64 = 31_536_000.0;

/// The context for reading one mapping: where findings go and whom they concern.
pub(super) struct Reader<'a> {
    pub(super) diags: &'a mut Diagnostics,
    pub(super) step: Option<String>,
}

impl Reader<'_> {
    pub(super) fn report(&mut self, d: Diagnostic) {
        let d = match &self.step {
            Some(s) if d.step.is_none() => d.step(s.clone()),
            _ => d,
        };
        self.diags.push(d);
    }

    pub(super) fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        self.report(
            Diagnostic::new(
                Code::E003,
                node.pos,
                format!("`{field}` must be {expected}, not {}", node.type_name()),
            )
            .field(field),
        );
    }

    pub(super) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// A string, or a number or boolean taken as its text.
    pub(super) fn scalar_text(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    pub(super) fn seconds(&mut self, node: &Node, field: &str) -> Option<f64> {
        let v = match node.kind {
            Kind::Int(i) => i as f64,
            Kind::Float(f) => f,
            _ => {
                self.wrong_type(node, field, "a number of seconds");
                return None;
            }
        };
        self.seconds_in_range(v, node, field)
    }

    /// A number of seconds that is positive and at most [`MAX_TIMEOUT_SECS`].
    pub(super) fn seconds_in_range(&mut self, v: f64, node: &Node, field: &str) -> Option<f64> {
        if !(v > 0.0 && v.is_finite() && v <= MAX_TIMEOUT_SECS) {
            self.report(
                Diagnostic::new(
                    Code::E014,
                    node.pos,
                    format!(
                        "`{field}` must be a positive number of seconds, at most {MAX_TIMEOUT_SECS} (a year), not {v}"
                    ),
                )
                .field(field),
            );
            return None;
        }
        Some(v)
    }

    /// An amount of US dollars, at least 0 (a budget).
    pub(super) fn usd(&mut self, node: &Node, field: &str) -> Option<f64> {
        let v = match node.kind {
            Kind::Int(i) => i as f64,
            Kind::Float(f) => f,
            _ => {
                self.wrong_type(node, field, "a number of US dollars");
                return None;
            }
        };
        if !(v >= 0.0 && v.is_finite()) {
            self.report(
                Diagnostic::new(
                    Code::E014,
                    node.pos,
                    format!("`{field}` must be a number of US dollars ≥ 0, not {v}"),
                )
                .field(field),
            );
            return None;
        }
        Some(v)
    }

    pub(super) fn count(&mut self, node: &Node, field: &str, min: i64, max: i64) -> Option<u32> {
        let Kind::Int(i) = node.kind else {
            self.wrong_type(node, field, "a whole number");
            return None;
        };
        if i < min || i > max {
            self.report(
                Diagnostic::new(
                    Code::E014,
                    node.pos,
                    format!("`{field}` must be between {min} and {max}, not {i}"),
                )
                .field(field),
            );
            return None;
        }
        u32::try_from(i).ok()
    }

    pub(super) fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, field, "true or false");
                None
            }
        }
    }

    /// A list of step ids, or one comma-separated string of them.
    pub(super) fn id_list(&mut self, node: &Node, field: &str) -> Vec<(String, crate::yaml::Pos)> {
        match &node.kind {
            Kind::Str(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| (s.to_string(), node.pos))
                .collect(),
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| {
                    let s = self.string(item, field)?;
                    Some((s.trim().to_string(), item.pos))
                })
                .collect(),
            Kind::Null => Vec::new(),
            _ => {
                self.wrong_type(
                    node,
                    field,
                    "a list of step ids or a comma-separated string",
                );
                Vec::new()
            }
        }
    }
}

/// `^[a-zA-Z][a-zA-Z0-9_-]*$`
pub(crate) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
