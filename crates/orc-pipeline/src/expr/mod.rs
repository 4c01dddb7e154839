//! A small, safe, allowlisted expression language for pipeline `condition:` fields.
//!
//! Conditions use a subset of Python expression syntax, for example
//!
//! ```text
//! flag == 'yes' and count > 3
//! len(items) >= 2
//! step1.result.size > 10 or not done
//! 'error' in check.result.stdout
//! x if y else z
//! ```
//!
//! # Safety model
//!
//! Variables are looked up as *values* from a [`Scope`] while evaluating; they
//! are never pasted into the source text, so a bound string such as
//! `x" or "1` cannot change the logic of a condition. Only the constructs
//! listed below exist: there is no attribute access beyond JSON object keys,
//! no calls except the allowlisted builtins and methods, no names starting
//! with `_`, and every resource is bounded (see the `MAX_*` constants).
//! Parsing and evaluation never panic; failures are [`ExprError`]s.
//!
//! # Language
//!
//! * Literals: integers (`12`, `0x1f`, `1_000`), floats (`1.5`, `1e3`),
//!   strings in `'…'` or `"…"` with Python escapes (adjacent literals
//!   concatenate), `True`/`False`/`None` and the YAML spellings
//!   `true`/`false`/`null`/`none`, lists `[a, b]`, tuples `(a, b)` (as lists),
//!   dicts `{'k': v}` (string keys only).
//! * Operators, loosest first: `x if c else y`; `or`; `and`; `not`;
//!   comparisons `== != < <= > >= in, not in, is, is not` (chainable);
//!   `+ -`; `* / // %`; unary `- +`; `**`; then `a.b`, `a[i]`, `a[i:j:k]`,
//!   calls. `and`/`or` short-circuit and return the deciding operand.
//! * Arithmetic follows Python: `/` is true division, `//` and `%` floor,
//!   integers are 64-bit and overflow is an error, `bool` counts as 0/1.
//!   Non-finite floats cannot be represented in JSON and are errors.
//! * Functions: `len str int float bool abs min max round sorted sum any all`
//!   (positional arguments only). Methods: on `str` —
//!   `startswith endswith lower upper strip lstrip rstrip split replace find
//!   count isdigit isalpha isnumeric title casefold`; on `dict` —
//!   `get keys values items`; on `list` — `count index`.
//! * `a.b` on a JSON object is a key lookup.
//! * Refused with a clear error: lambda, assignment and `:=`, f-strings,
//!   starred arguments, keyword arguments, comprehensions, `%` formatting,
//!   bitwise operators, `_`-prefixed names and attributes.
//!
//! # Limits
//!
//! Source length, syntax-tree node count and nesting depth are checked while
//! parsing. Evaluation bounds `**`, the size of produced strings and lists,
//! and total work: every node evaluated costs one step, and bulk operations
//! (copying, comparing, sorting, scanning) cost 1/16 step per element and
//! 1/1024 step per byte of string data.

mod builtins;
mod error;
mod eval;
mod lexer;
mod parser;
mod set;
mod value;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use serde_json::{Map, Value};

pub use error::ExprError;
pub use set::{ExprSet, ExprSetError};

/// Maximum source length in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// Maximum number of syntax-tree nodes.
pub const MAX_NODES: usize = 500;
/// Maximum nesting depth of sub-expressions (brackets, calls, unary operators, ...).
pub const MAX_DEPTH: usize = 40;
/// Maximum absolute value of a `**` exponent.
pub const MAX_POW_EXPONENT: i64 = 1024;
/// Maximum absolute value of a `**` base.
pub const MAX_POW_BASE: f64 = 1e6;
/// Maximum length (elements, or bytes for strings) of a string or list produced
/// by repetition, concatenation or replacement.
pub const MAX_COLLECTION_LEN: usize = 1_000_000;
/// Evaluation work budget, in steps.
pub const MAX_STEPS: u64 = 100_000;
/// Maximum nesting of values compared or formatted.
pub const MAX_VALUE_DEPTH: usize = 256;

/// A parsed expression. Cheap to evaluate many times; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Expr {
    root: parser::Node,
}

impl Expr {
    /// Parse; enforces the static limits (length, node count, nesting depth)
    /// and refuses everything outside the allowlist.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        Ok(Expr {
            root: parser::parse(src)?,
        })
    }

    /// Root variable names the expression reads (free names, deduplicated,
    /// in first-use order), excluding the allowlisted function names.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.collect_names(&mut out);
        out
    }

    /// Evaluate against a scope.
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, ExprError> {
        eval::evaluate(&self.root, scope)
    }
}

/// Variable bindings for evaluation.
pub trait Scope {
    /// The value bound to a root variable name, or `None` if unbound.
    fn get(&self, name: &str) -> Option<Value>;
}

impl Scope for Map<String, Value> {
    fn get(&self, name: &str) -> Option<Value> {
        Map::get(self, name).cloned()
    }
}

/// Python truthiness: null, false, 0, 0.0, "", [], {} are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => match n.as_i64() {
            Some(i) => i != 0,
            None => n.as_f64().is_some_and(|f| f != 0.0),
        },
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}
