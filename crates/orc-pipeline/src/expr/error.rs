//! The error type shared by parsing and evaluation.

/// An error from parsing or evaluating an expression.
///
/// Parse-time errors carry the byte offset into the source text, available
/// through [`ExprError::offset`]. Evaluation errors have no offset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// The source is not valid expression syntax.
    #[error("syntax error at byte {offset}: {message}")]
    Syntax {
        /// Byte offset of the offending token.
        offset: usize,
        /// What went wrong.
        message: String,
    },
    /// A Python construct that this language deliberately refuses
    /// (lambda, assignment, comprehensions, f-strings, keyword arguments, ...).
    #[error("not supported: {what} (at byte {offset})")]
    Unsupported {
        /// Byte offset of the construct.
        offset: usize,
        /// The refused construct.
        what: String,
    },
    /// A name or attribute starting with `_` (private and dunder names are refused).
    #[error("name '{name}' is not allowed: names starting with '_' are private (at byte {offset})")]
    PrivateName {
        /// Byte offset of the name.
        offset: usize,
        /// The refused name.
        name: String,
    },
    /// A call to a function or method outside the allowlist.
    #[error("'{name}' is not an allowed function or method (at byte {offset})")]
    NotAllowed {
        /// Byte offset of the callee name.
        offset: usize,
        /// The refused function or method name.
        name: String,
    },
    /// The source text exceeds the length limit.
    #[error("expression is too long: {len} bytes (limit {limit})")]
    TooLong {
        /// Length of the source in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The expression has too many syntax-tree nodes.
    #[error("expression is too large: more than {limit} nodes (at byte {offset})")]
    TooManyNodes {
        /// Byte offset where the limit was crossed.
        offset: usize,
        /// The node limit.
        limit: usize,
    },
    /// The expression is nested too deeply.
    #[error("expression is nested too deeply: more than {limit} levels (at byte {offset})")]
    TooDeep {
        /// Byte offset where the limit was crossed.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// A variable that the scope does not define.
    #[error("unknown variable '{name}'")]
    UnknownName {
        /// The variable name.
        name: String,
    },
    /// An attribute or key lookup on an object found no such key.
    #[error("key '{key}' not found")]
    MissingKey {
        /// The missing key (attribute name or index key).
        key: String,
    },
    /// An attribute or method on a value that has none by that name.
    #[error("'{type_name}' object has no attribute '{name}'")]
    NoAttribute {
        /// Python-style type name of the value (`str`, `list`, `int`, ...).
        type_name: String,
        /// The attribute name.
        name: String,
    },
    /// A list or string index outside the sequence.
    #[error("index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// The index as written.
        index: i64,
        /// Length of the sequence.
        len: usize,
    },
    /// An operation applied to values of the wrong type.
    #[error("type error: {message}")]
    Type {
        /// Description of the mismatch.
        message: String,
    },
    /// An argument with the right type but an invalid value.
    #[error("value error: {message}")]
    InvalidValue {
        /// Description of the problem.
        message: String,
    },
    /// Division or modulo by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// A numeric result that does not fit (64-bit integer overflow, non-finite float).
    #[error("numeric overflow: {message}")]
    Overflow {
        /// Description of the overflow.
        message: String,
    },
    /// `**` with an exponent or base outside the permitted range.
    #[error("exponentiation limit exceeded: {message}")]
    PowerLimit {
        /// Which bound was exceeded.
        message: String,
    },
    /// A produced string or list would exceed the size limit.
    #[error("result too large: {size} elements/bytes (limit {limit})")]
    TooLarge {
        /// The size that would have been produced (saturating).
        size: u64,
        /// The size limit.
        limit: usize,
    },
    /// Evaluation used up its work budget.
    #[error("evaluation budget of {limit} steps exhausted")]
    BudgetExhausted {
        /// The step budget.
        limit: u64,
    },
    /// A value (usually from the scope) is nested too deeply to compare or format.
    #[error("value is nested too deeply (more than {limit} levels)")]
    ValueTooDeep {
        /// The nesting limit for values.
        limit: usize,
    },
}

impl ExprError {
    /// Byte offset into the source for parse errors; `None` for evaluation errors.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Syntax { offset, .. }
            | Self::Unsupported { offset, .. }
            | Self::PrivateName { offset, .. }
            | Self::NotAllowed { offset, .. }
            | Self::TooManyNodes { offset, .. }
            | Self::TooDeep { offset, .. } => Some(*offset),
            Self::TooLong { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}

pub(crate) fn syntax(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError::Syntax {
        offset,
        message: message.into(),
    }
}

pub(crate) fn unsupported(offset: usize, what: impl Into<String>) -> ExprError {
    ExprError::Unsupported {
        offset,
        what: what.into(),
    }
}

pub(crate) fn type_err(message: impl Into<String>) -> ExprError {
    ExprError::Type {
        message: message.into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> ExprError {
    ExprError::InvalidValue {
        message: message.into(),
    }
}

pub(crate) fn overflow(message: impl Into<String>) -> ExprError {
    ExprError::Overflow {
        message: message.into(),
    }
}
