//! Python string and number literals, read from a byte offset of the source.
//!
//! Both readers stop at the end of their literal and return the byte offset
//! after it, so a caller's tokenizer goes on from there.

use super::error::{NumberError, StringError};

/// What a string literal's prefix makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// No prefix, or `u`.
    Str,
    /// `r`: backslashes are kept.
    Raw,
    /// `b`.
    Bytes,
    /// `rb` or `br`.
    RawBytes,
    /// `f`, `rf` or `fr`: code, not a literal.
    Format,
}

impl Prefix {
    /// Whether backslashes are kept as they are.
    pub fn is_raw(self) -> bool {
        matches!(self, Self::Raw | Self::RawBytes)
    }
}

/// The prefix a word makes when a quote follows it, in any case (`""`,
/// `u`, `r`, `b`, `rb`, `br`, `f`, `rf`, `fr`); `None` for any other word.
pub fn string_prefix(word: &str) -> Option<Prefix> {
    Some(match word.to_ascii_lowercase().as_str() {
        "" | "u" => Prefix::Str,
        "r" => Prefix::Raw,
        "b" => Prefix::Bytes,
        "rb" | "br" => Prefix::RawBytes,
        "f" | "rf" | "fr" => Prefix::Format,
        _ => return None,
    })
}

/// Reads a quoted string whose opening quote (`'`, `"`, `'''` or `"""`) is
/// at byte `pos` of `src`: the value, with escapes resolved unless `raw`,
/// and the offset after the closing quote.
///
/// Escapes are CPython's: `\\ \' \" \a \b \f \n \r \t \v`, octal `\ooo`,
/// `\xhh`, `\uhhhh`, `\Uhhhhhhhh`, and a backslash before a line break
/// joins lines; any other backslash is kept. `\N{name}` is refused.
pub fn lex_quoted(src: &str, pos: usize, raw: bool) -> Result<(String, usize), StringError> {
    let bytes = src.as_bytes();
    let byte = |k: usize| bytes.get(k).copied();
    let Some(quote) = byte(pos).filter(|q| matches!(q, b'\'' | b'"')) else {
        return Err(StringError::Unterminated);
    };
    let triple = byte(pos + 1) == Some(quote) && byte(pos + 2) == Some(quote);
    let mut at = pos + if triple { 3 } else { 1 };
    let quote = char::from(quote);
    let mut out = String::new();
    loop {
        let c = src
            .get(at..)
            .and_then(|s| s.chars().next())
            .ok_or(StringError::Unterminated)?;
        if c == quote {
            if !triple {
                return Ok((out, at + 1));
            }
            if byte(at + 1) == byte(at) && byte(at + 2) == byte(at) {
                return Ok((out, at + 3));
            }
            out.push(c);
            at += 1;
            continue;
        }
        if c == '\n' && !triple {
            return Err(StringError::LineBreak);
        }
        let backslash = at;
        at += c.len_utf8();
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = src
            .get(at..)
            .and_then(|s| s.chars().next())
            .ok_or(StringError::Unterminated)?;
        at += e.len_utf8();
        if raw {
            out.push('\\');
            out.push(e);
            continue;
        }
        match e {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(e),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match byte(at) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            at += 1;
                        }
                        _ => break,
                    }
                }
                // At most 0o777: always a character.
                out.push(char::from_u32(v).ok_or(StringError::NotAChar { at: backslash })?);
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v: u32 = 0;
                for _ in 0..n {
                    let d = byte(at)
                        .and_then(|b| char::from(b).to_digit(16))
                        .ok_or(StringError::TruncatedEscape { at: backslash })?;
                    v = v.saturating_mul(16).saturating_add(d);
                    at += 1;
                }
                out.push(char::from_u32(v).ok_or(StringError::NotAChar { at: backslash })?);
            }
            'N' => return Err(StringError::NamedEscape { at: backslash }),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}

/// An integer literal's digits, checked for its radix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntLit {
    radix: u32,
    digits: String,
}

impl IntLit {
    /// The value, if it fits in a `u64`.
    pub fn to_u64(&self) -> Option<u64> {
        u64::from_str_radix(&self.digits, self.radix).ok()
    }

    /// The nearest float (what serde_json makes of an integer beyond `u64`).
    pub fn to_f64(&self) -> f64 {
        if self.radix == 10 {
            return self.digits.parse().unwrap_or(f64::INFINITY);
        }
        self.digits
            .chars()
            .filter_map(|c| c.to_digit(self.radix))
            .fold(0.0, |acc, d| acc * f64::from(self.radix) + f64::from(d))
    }
}

/// A number literal (without a sign: in Python that is an operator).
#[derive(Debug, Clone, PartialEq)]
pub enum NumberLit {
    /// `42`, `0x2a`, `0o52`, `0b101010`, `1_000`.
    Int(IntLit),
    /// `1.5`, `.5`, `5.`, `1e3`: always finite.
    Float(f64),
}

/// Reads the number literal at byte `pos` of `src` (a digit, or a `.`
/// followed by one): the number and the offset after it.
pub fn lex_number(src: &str, pos: usize) -> Result<(NumberLit, usize), NumberError> {
    let bytes = src.as_bytes();
    let byte = |k: usize| bytes.get(k).copied();
    let text = |from: usize, to: usize| src.get(from..to).unwrap_or("");
    let digits_from = |mut at: usize| {
        while byte(at).is_some_and(|b| b.is_ascii_digit() || b == b'_') {
            at += 1;
        }
        at
    };
    if byte(pos) == Some(b'0') {
        let radix = match byte(pos + 1) {
            Some(b'x' | b'X') => Some((16, "hexadecimal")),
            Some(b'o' | b'O') => Some((8, "octal")),
            Some(b'b' | b'B') => Some((2, "binary")),
            _ => None,
        };
        if let Some((radix, what)) = radix {
            let start = pos + 2;
            let mut end = start;
            while byte(end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                end += 1;
            }
            let digits = strip_underscores(text(start, end), true)
                .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_digit(radix)))
                .ok_or(NumberError::Radix(what))?;
            return Ok((NumberLit::Int(IntLit { radix, digits }), end));
        }
    }
    let mut end = digits_from(pos);
    let mut is_float = false;
    if byte(end) == Some(b'.') {
        is_float = true;
        end = digits_from(end + 1);
    }
    if matches!(byte(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(byte(end + 1), Some(b'+' | b'-')));
        if byte(end + 1 + sign).is_some_and(|b| b.is_ascii_digit()) {
            is_float = true;
            end = digits_from(end + 1 + sign);
        }
    }
    if matches!(byte(end), Some(b'j' | b'J')) {
        return Err(NumberError::Complex);
    }
    let clean = strip_underscores(text(pos, end), false).ok_or(NumberError::Separator)?;
    if is_float {
        return match clean.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((NumberLit::Float(f), end)),
            Ok(_) => Err(NumberError::FloatRange),
            Err(_) => Err(NumberError::Float),
        };
    }
    if clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
        return Err(NumberError::LeadingZeros);
    }
    let digits = clean;
    Ok((NumberLit::Int(IntLit { radix: 10, digits }), end))
}

/// Removes `_` digit separators as Python's literals and `int()` allow them:
/// each between two alphanumerics, or directly after a radix prefix when
/// `after_prefix`. `None` for a misplaced one. ASCII input only.
pub fn strip_underscores(raw: &str, after_prefix: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'_' {
            let prev_ok = match i.checked_sub(1) {
                None => after_prefix,
                Some(p) => bytes.get(p).is_some_and(u8::is_ascii_alphanumeric),
            };
            let next_ok = bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
            if !(prev_ok && next_ok) {
                return None;
            }
        } else {
            out.push(char::from(c));
        }
    }
    Some(out)
}
