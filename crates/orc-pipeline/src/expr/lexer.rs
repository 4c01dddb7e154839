//! Tokenizer. Never fails outright: a lexical error becomes a [`Tok::Error`]
//! token so that the parser reports errors in source order.

use orc_pycompat::literal::lex::{NumberLit, Prefix, lex_number, lex_quoted, string_prefix};
use orc_pycompat::literal::{NumberError, StringError};
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
            b'\'' | b'"' => self.string(start),
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
            match string_prefix(word) {
                Some(Prefix::Str | Prefix::Raw) => return self.string(start),
                Some(Prefix::Format) => return Err(unsupported(start, "f-strings")),
                Some(Prefix::Bytes | Prefix::RawBytes) => {
                    return Err(unsupported(start, "bytes literals"));
                }
                None => {}
            }
        }
        Ok(keyword(word).unwrap_or_else(|| Tok::Name(word.to_owned())))
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let (lit, end) = lex_number(self.src, start).map_err(|e| match e {
            NumberError::Complex => unsupported(start, "complex numbers"),
            e => syntax(start, e.to_string()),
        })?;
        self.pos = end;
        match lit {
            NumberLit::Float(f) => Ok(Tok::Float(f)),
            NumberLit::Int(i) => i
                .to_u64()
                .and_then(|u| i64::try_from(u).ok())
                .map(Tok::Int)
                .ok_or_else(|| syntax(start, "integer literal is too large")),
        }
    }

    /// Lex a string literal; `start` is at its prefix (if any), the opening
    /// quote just after the prefix at `self.pos`.
    fn string(&mut self, start: usize) -> Result<Tok, ExprError> {
        let raw = self
            .src
            .get(start..self.pos)
            .and_then(string_prefix)
            .is_some_and(Prefix::is_raw);
        let (value, end) = lex_quoted(self.src, self.pos, raw).map_err(|e| match e {
            StringError::Unterminated | StringError::LineBreak => {
                syntax(start, "unterminated string literal")
            }
            StringError::NamedEscape { at } => unsupported(at, "\\N{...} escapes"),
            e => syntax(e.offset().unwrap_or(start), e.to_string()),
        })?;
        self.pos = end;
        Ok(Tok::Str(value))
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
