//! Python's `int(text, base)` and `float(text)`, and `str.isspace`.

use thiserror::Error;

use crate::literal::lex::strip_underscores;

/// Python `str.isspace` of one character: what `str.split()` splits on.
/// (`int()` and `float()` strip less: not `\x1c`..`\x1f`; see [`parse_int`].)
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Text that `int()` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IntTextError {
    /// Not an integer in the base.
    #[error("invalid literal for int()")]
    Invalid,
    /// Beyond `i128`.
    #[error("integer is too large")]
    TooLarge,
}

/// Python `int(text, base)` for base 0 or 2..=36: surrounding whitespace
/// (what CPython strips, which is Unicode's White_Space), a sign, the radix
/// prefix its base allows (any of `0x`, `0o`, `0b` for base 0), `_` between
/// digits or after the prefix. ASCII digits only; base 0 reads `010` as 10
/// where CPython refuses it.
pub fn parse_int(text: &str, base: u32) -> Result<i128, IntTextError> {
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let rest = lower.get(2..).unwrap_or("");
    let (radix, digits, prefixed) = match (base, lower.get(..2)) {
        (16 | 0, Some("0x")) => (16, rest, true),
        (8 | 0, Some("0o")) => (8, rest, true),
        (2 | 0, Some("0b")) => (2, rest, true),
        (0, _) => (10, lower.as_str(), false),
        (b, _) => (b, lower.as_str(), false),
    };
    if !(2..=36).contains(&radix) || !digits.is_ascii() {
        return Err(IntTextError::Invalid);
    }
    let clean = strip_underscores(digits, prefixed).ok_or(IntTextError::Invalid)?;
    if clean.is_empty() || !clean.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IntTextError::Invalid);
    }
    let v = i128::from_str_radix(&clean, radix).map_err(|e| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            IntTextError::TooLarge
        } else {
            IntTextError::Invalid
        }
    })?;
    Ok(if negative { -v } else { v })
}

/// Python `float(text)`: surrounding whitespace as [`parse_int`], `_`
/// between digits, `inf`, `infinity` and `nan` in any case. `None` if
/// CPython would refuse it.
pub fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if !t.is_ascii() {
        return None;
    }
    strip_underscores(t, false)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int(" -0x_1f ", 0), Ok(-31));
        assert_eq!(parse_int("1f", 16), Ok(31));
        assert_eq!(parse_int("--5", 10), Err(IntTextError::Invalid));
        assert_eq!(parse_int("\u{1c}5", 10), Err(IntTextError::Invalid));
        assert_eq!(parse_int(&"9".repeat(40), 10), Err(IntTextError::TooLarge));
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float(" 1_000.5\u{3000}"), Some(1000.5));
        assert_eq!(parse_float("1_.5"), None);
        assert!(parse_float("-iNF").is_some_and(f64::is_infinite));
    }
}
