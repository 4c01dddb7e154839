//! Tokenizer. Never fails outright: a lexical error becomes a [`Tok::Error`]
//! token so that the parser reports errors in source order.

use std::num::IntErrorKind;

use serde_json::Value;

use super::error::{ExprError, syntax, unsupported};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    /// `True`/`False`/`None` and their lowercase YAML spellings.
    Const(Value),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    Plus,
    Minus,
    Star,
    DoubleStar,
    Slash,
    DoubleSlash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    /// A single `=`.
    Assign,
    And,
    Or,
    Not,
    In,
    Is,
    If,
    Else,
    For,
    /// A recognised construct that is refused wherever it appears.
    Unsupported(&'static str),
    /// Any other Python keyword.
    Reserved,
    Error(Box<ExprError>),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

const AUGMENTED: &str = "augmented assignment";

/// Tokenize the whole source. The result always ends with `Eof` or `Error`.
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia();
        let start = lx.pos;
        let tok = lx.next_token().unwrap_or_else(|e| Tok::Error(Box::new(e)));
        let stop = matches!(tok, Tok::Eof | Tok::Error(_));
        out.push(Token {
            tok,
            start,
            end: lx.pos,
        });
        if stop {
            return out;
        }
    }
}

/// True if `s` is an ASCII identifier.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Remove `_` digit separators; each must sit between two alphanumerics
/// (or directly after a radix prefix when `allow_leading`). ASCII input only.
pub(crate) fn strip_underscores(raw: &str, allow_leading: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'_' {
            let prev_ok = match i.checked_sub(1) {
                None => allow_leading,
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

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "is" => Tok::Is,
        "if" => Tok::If,
        "else" => Tok::Else,
        "for" => Tok::For,
        "True" | "true" => Tok::Const(Value::Bool(true)),
        "False" | "false" => Tok::Const(Value::Bool(false)),
        "None" | "none" | "null" => Tok::Const(Value::Null),
        "lambda" => Tok::Unsupported("lambda expressions"),
        "await" => Tok::Unsupported("await"),
        "yield" => Tok::Unsupported("yield"),
        "async" => Tok::Unsupported("async"),
        "def" | "class" | "return" | "import" | "from" | "as" | "global" | "nonlocal" | "del"
        | "pass" | "break" | "continue" | "while" | "with" | "try" | "except" | "finally"
        | "raise" | "assert" | "elif" => Tok::Reserved,
        _ => return None,
    })
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn byte(&self, k: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos.saturating_add(k)).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn skip_trivia(&mut self) {
        loop {
            match (self.byte(0), self.byte(1)) {
                (Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'), _) => self.pos += 1,
                (Some(b'\\'), Some(b'\n')) => self.pos += 2,
                (Some(b'\\'), Some(b'\r')) if self.byte(2) == Some(b'\n') => self.pos += 3,
                (Some(b'#'), _) => {
                    while self.byte(0).is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn next_token(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let Some(b) = self.byte(0) else {
            return Ok(Tok::Eof);
        };
        match b {
            b'0'..=b'9' => self.number(),
            b'.' if self.byte(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
            b'\'' | b'"' => self.string(start, false),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => self.word(),
            _ => self.punct(),
        }
    }

    fn word(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        while self
            .byte(0)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.pos += 1;
        }
        let word = self.src.get(start..self.pos).unwrap_or("");
        if matches!(self.byte(0), Some(b'\'' | b'"')) {
            match word.to_ascii_lowercase().as_str() {
                "r" => return self.string(start, true),
                "u" => return self.string(start, false),
                "f" | "rf" | "fr" => return Err(unsupported(start, "f-strings")),
                "b" | "rb" | "br" => return Err(unsupported(start, "bytes literals")),
                _ => {}
            }
        }
        Ok(keyword(word).unwrap_or_else(|| Tok::Name(word.to_owned())))
    }

    fn digits(&mut self) {
        while self
            .byte(0)
            .is_some_and(|b| b.is_ascii_digit() || b == b'_')
        {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        if self.byte(0) == Some(b'0') {
            let radix = match self.byte(1) {
                Some(b'x' | b'X') => Some((16, "hexadecimal")),
                Some(b'o' | b'O') => Some((8, "octal")),
                Some(b'b' | b'B') => Some((2, "binary")),
                _ => None,
            };
            if let Some((radix, what)) = radix {
                self.pos += 2;
                let digits_start = self.pos;
                while self
                    .byte(0)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.pos += 1;
                }
                let raw = self.src.get(digits_start..self.pos).unwrap_or("");
                let invalid = || syntax(start, format!("invalid {what} literal"));
                let digits = strip_underscores(raw, true).ok_or_else(invalid)?;
                return match i64::from_str_radix(&digits, radix) {
                    Ok(v) => Ok(Tok::Int(v)),
                    Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow) => {
                        Err(syntax(start, "integer literal is too large"))
                    }
                    Err(_) => Err(invalid()),
                };
            }
        }
        self.digits();
        let mut is_float = false;
        if self.byte(0) == Some(b'.') {
            is_float = true;
            self.pos += 1;
            self.digits();
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.byte(1), Some(b'+' | b'-')));
            if self.byte(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                is_float = true;
                self.pos += 1 + sign;
                self.digits();
            }
        }
        if matches!(self.byte(0), Some(b'j' | b'J')) {
            return Err(unsupported(start, "complex numbers"));
        }
        let raw = self.src.get(start..self.pos).unwrap_or("");
        let text =
            strip_underscores(raw, false).ok_or_else(|| syntax(start, "invalid number literal"))?;
        if is_float {
            return match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
                Ok(_) => Err(syntax(start, "float literal is out of range")),
                Err(_) => Err(syntax(start, "invalid float literal")),
            };
        }
        if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
            return Err(syntax(
                start,
                "leading zeros in decimal integer literals are not permitted",
            ));
        }
        text.parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| syntax(start, "integer literal is too large"))
    }

    /// Lex a string literal; `self.pos` is at the opening quote, `start` at
    /// the prefix (if any).
    fn string(&mut self, start: usize, raw: bool) -> Result<Tok, ExprError> {
        let unterminated = || syntax(start, "unterminated string literal");
        let Some(quote) = self.byte(0) else {
            return Err(unterminated());
        };
        let triple = self.byte(1) == Some(quote) && self.byte(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let quote = char::from(quote);
        let mut out = String::new();
        loop {
            let c = self.peek_char().ok_or_else(unterminated)?;
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Ok(Tok::Str(out));
                }
                if self.byte(1) == self.byte(0) && self.byte(2) == self.byte(0) {
                    self.pos += 3;
                    return Ok(Tok::Str(out));
                }
                out.push(c);
                self.pos += 1;
                continue;
            }
            if c == '\n' && !triple {
                return Err(unterminated());
            }
            let at = self.pos;
            self.pos += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.peek_char().ok_or_else(unterminated)?;
            self.pos += e.len_utf8();
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
                        match self.byte(0) {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(char::from_u32(v).ok_or_else(|| syntax(at, "invalid octal escape"))?);
                }
                'x' => out.push(self.hex_escape(2, at)?),
                'u' => out.push(self.hex_escape(4, at)?),
                'U' => out.push(self.hex_escape(8, at)?),
                'N' => return Err(unsupported(at, "\\N{...} escapes")),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, n: usize, at: usize) -> Result<char, ExprError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let d = self
                .byte(0)
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| syntax(at, "truncated \\x, \\u or \\U escape"))?;
            v = v.saturating_mul(16).saturating_add(d);
            self.pos += 1;
        }
        char::from_u32(v).ok_or_else(|| syntax(at, "escape is not a valid Unicode character"))
    }

    fn punct(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let b0 = self.byte(0).unwrap_or(0);
        let b2 = self.byte(2);
        let (tok, len) = match (b0, self.byte(1)) {
            (b'*', Some(b'*')) if b2 == Some(b'=') => (Tok::Unsupported(AUGMENTED), 3),
            (b'*', Some(b'*')) => (Tok::DoubleStar, 2),
            (b'/', Some(b'/')) if b2 == Some(b'=') => (Tok::Unsupported(AUGMENTED), 3),
            (b'/', Some(b'/')) => (Tok::DoubleSlash, 2),
            (b'<', Some(b'<')) | (b'>', Some(b'>')) => {
                (Tok::Unsupported("bitwise shift operators"), 2)
            }
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'!', Some(b'=')) => (Tok::NotEq, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b':', Some(b'=')) => (Tok::Unsupported("assignment expressions (':=')"), 2),
            (b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' | b'@', Some(b'=')) => {
                (Tok::Unsupported(AUGMENTED), 2)
            }
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b',', _) => (Tok::Comma, 1),
            (b':', _) => (Tok::Colon, 1),
            (b'.', _) => (Tok::Dot, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'=', _) => (Tok::Assign, 1),
            (b'~' | b'&' | b'|' | b'^', _) => (Tok::Unsupported("bitwise operators"), 1),
            (b'@', _) => (Tok::Unsupported("the '@' operator"), 1),
            (b'!', _) => return Err(syntax(start, "unexpected '!' (use 'not' to negate)")),
            _ => {
                let c = self.peek_char().unwrap_or('?');
                return Err(syntax(start, format!("unexpected character {c:?}")));
            }
        };
        self.pos += len;
        Ok(tok)
    }
}
