//! What goes wrong reading a Python literal.

use thiserror::Error;

/// A string literal that cannot be read. Offsets are in bytes of the source.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StringError {
    /// The text ended before the closing quote.
    #[error("unterminated string literal")]
    Unterminated,
    /// A line break inside a string that is not triple-quoted.
    #[error("line break inside a string that is not triple-quoted")]
    LineBreak,
    /// `\x`, `\u` or `\U` without its hex digits; `at` is the backslash.
    #[error("truncated \\x, \\u or \\U escape")]
    TruncatedEscape {
        /// Where the escape starts.
        at: usize,
    },
    /// A `\u`/`\U` escape naming no character (a surrogate, beyond U+10FFFF).
    #[error("escape is not a valid Unicode character")]
    NotAChar {
        /// Where the escape starts.
        at: usize,
    },
    /// `\N{name}`, which would need Unicode's name table.
    #[error("\\N{{...}} escapes are not supported")]
    NamedEscape {
        /// Where the escape starts.
        at: usize,
    },
}

impl StringError {
    /// Where the problem is, if it is not the whole string.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Unterminated | Self::LineBreak => None,
            Self::TruncatedEscape { at } | Self::NotAChar { at } | Self::NamedEscape { at } => {
                Some(*at)
            }
        }
    }
}

/// A number literal that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    /// `0x`, `0o` or `0b` followed by no digits or wrong ones.
    #[error("invalid {0} literal")]
    Radix(&'static str),
    /// `_` not between two digits.
    #[error("invalid number literal")]
    Separator,
    /// Digits that do not make a float.
    #[error("invalid float literal")]
    Float,
    /// A float literal beyond `f64`.
    #[error("float literal is out of range")]
    FloatRange,
    /// `007`.
    #[error("leading zeros in decimal integer literals are not permitted")]
    LeadingZeros,
    /// `1j`.
    #[error("complex numbers are not supported")]
    Complex,
}

/// Text that is not a Python literal orc reads. Positions count characters
/// from the start of the text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LiteralError {
    /// The text is empty or ends where a value should start.
    #[error("the text ended where a value was expected")]
    Empty,
    /// A character that cannot start or continue what came before.
    #[error("unexpected `{found}` at position {at}")]
    Unexpected {
        /// The character.
        found: char,
        /// Where it is.
        at: usize,
    },
    /// A name other than `True`, `False`, `None` (or `true`, `false`, `null`).
    #[error("unexpected name `{name}` at position {at}")]
    Name {
        /// The name.
        name: String,
        /// Where it starts.
        at: usize,
    },
    /// A required punctuation mark is missing.
    #[error("expected {want} but found `{found}` at position {at}")]
    Expected {
        /// What had to come, quoted: "`,` or `]`".
        want: &'static str,
        /// What came instead.
        found: char,
        /// Where.
        at: usize,
    },
    /// The text ended before a container was closed or a pair completed.
    #[error("missing `{0}` at the end")]
    Missing(char),
    /// Containers nested deeper than [`super::MAX_DEPTH`].
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// A list or dict used as a dict key.
    #[error("a list or dict cannot be a dict key")]
    UnhashableKey,
    /// An f-string, which is code, not a literal.
    #[error("f-strings are not literals (position {at})")]
    FString {
        /// Where it starts.
        at: usize,
    },
    /// A string literal that cannot be read.
    #[error("{source} (the string starting at position {at})")]
    String {
        /// Why.
        source: StringError,
        /// Where the string starts.
        at: usize,
    },
    /// A number literal that cannot be read.
    #[error("bad number at position {at}: {source}")]
    Number {
        /// Why.
        source: NumberError,
        /// Where the number starts.
        at: usize,
    },
}
