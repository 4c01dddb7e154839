//! The parser of Python literals as `repr()` prints them: `[{'a': 1}]`,
//! `True`/`False`/`None`, tuples and sets (as lists), strings with any
//! prefix but `f` (bytes read as text), adjacent strings concatenated,
//! signed numbers. JSON's `true`/`false`/`null` are accepted too, as are
//! several signs (`--1`), which `ast.literal_eval` refuses.

use serde_json::{Map, Number, Value};

use super::error::LiteralError;
use super::lex::{NumberLit, Prefix, lex_number, lex_quoted, string_prefix};

/// The deepest container nesting accepted.
pub const MAX_DEPTH: usize = 128;

type Res<T> = Result<T, LiteralError>;

/// Parses one Python literal filling the whole text (surrounding
/// whitespace aside).
pub fn parse(text: &str) -> Res<Value> {
    let mut p = Parser {
        src: text,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(v),
        Some(c) => Err(p.unexpected(c)),
    }
}

struct Parser<'a> {
    src: &'a str,
    /// A byte offset.
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn byte_at(&self, offset: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + offset).copied()
    }

    /// The position of byte `offset` in characters, as errors count.
    fn char_pos(&self, offset: usize) -> usize {
        self.src.get(..offset).map_or(0, |s| s.chars().count())
    }

    fn unexpected(&self, found: char) -> LiteralError {
        LiteralError::Unexpected {
            found,
            at: self.char_pos(self.pos),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '\\' && self.byte_at(1) == Some(b'\n') {
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    /// Skips whitespace and consumes `want` if it comes next.
    fn eat(&mut self, want: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(want) {
            self.pos += want.len_utf8();
            true
        } else {
            false
        }
    }

    /// After an item: a `,` (consumed), the `close` (left), or an error.
    fn separator(&mut self, close: char) -> Res<bool> {
        self.skip_ws();
        match self.peek() {
            Some(',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => Ok(false),
            Some(found) => Err(LiteralError::Expected {
                want: match close {
                    ']' => "`,` or `]`",
                    ')' => "`,` or `)`",
                    _ => "`,` or `}`",
                },
                found,
                at: self.char_pos(self.pos),
            }),
            None => Err(LiteralError::Missing(close)),
        }
    }

    fn value(&mut self) -> Res<Value> {
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err(LiteralError::Empty);
        };
        match c {
            '[' | '(' | '{' => {
                if self.depth >= MAX_DEPTH {
                    return Err(LiteralError::TooDeep(MAX_DEPTH));
                }
                self.depth += 1;
                self.pos += 1;
                let v = match c {
                    '[' => self.items(']').map(Value::Array),
                    '(' => self.tuple(),
                    _ => self.dict_or_set(),
                };
                self.depth -= 1;
                v
            }
            '\'' | '"' => self.strings(),
            '0'..='9' | '-' | '+' | '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => self.word(),
            other => Err(self.unexpected(other)),
        }
    }

    /// Items up to `close`, allowing a trailing comma; the opener is consumed.
    fn items(&mut self, close: char) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(out);
            }
            out.push(self.value()?);
            if !self.separator(close)? {
                self.pos += 1;
                return Ok(out);
            }
        }
    }

    /// `()`, `(x)` (just x), `(x,)`, `(x, y)`; the `(` is consumed.
    fn tuple(&mut self) -> Res<Value> {
        if self.eat(')') {
            return Ok(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        if !self.separator(')')? {
            self.pos += 1;
            return Ok(first);
        }
        let mut rest = self.items(')')?;
        rest.insert(0, first);
        Ok(Value::Array(rest))
    }

    /// `{}`, `{k: v, ...}` or a set `{x, ...}` (as a list); the `{` is consumed.
    fn dict_or_set(&mut self) -> Res<Value> {
        if self.eat('}') {
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value()?;
        if !self.eat(':') {
            let mut rest = if self.separator('}')? {
                self.items('}')?
            } else {
                self.pos += 1;
                Vec::new()
            };
            rest.insert(0, first);
            return Ok(Value::Array(rest));
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let val = self.value()?;
            map.insert(key_text(key)?, val);
            if !self.separator('}')? {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            if self.eat('}') {
                return Ok(Value::Object(map));
            }
            key = self.value()?;
            self.skip_ws();
            match self.peek() {
                Some(':') => self.pos += 1,
                Some(found) => {
                    return Err(LiteralError::Expected {
                        want: "`:`",
                        found,
                        at: self.char_pos(self.pos),
                    });
                }
                None => return Err(LiteralError::Missing(':')),
            }
        }
    }

    /// A name (`True`, `None`, ...) or a prefixed string (`r'...'`).
    fn word(&mut self) -> Res<Value> {
        let start = self.pos;
        let end = self
            .src
            .get(start..)
            .and_then(|s| s.find(|c: char| !(c.is_alphanumeric() || c == '_')))
            .map_or(self.src.len(), |n| start + n);
        if self.string_start().is_some() {
            return self.strings();
        }
        let word = self.src.get(start..end).unwrap_or("");
        self.pos = end;
        match word {
            "True" | "true" => Ok(Value::Bool(true)),
            "False" | "false" => Ok(Value::Bool(false)),
            "None" | "null" => Ok(Value::Null),
            _ => Err(LiteralError::Name {
                name: word.to_owned(),
                at: self.char_pos(start),
            }),
        }
    }

    /// The length of the prefix of a string literal starting here, if one does.
    fn string_start(&self) -> Option<usize> {
        let rest = self.src.as_bytes().get(self.pos..)?;
        let n = rest
            .iter()
            .take(3)
            .position(|b| matches!(b, b'\'' | b'"'))?;
        string_prefix(self.src.get(self.pos..self.pos + n)?).map(|_| n)
    }

    /// One or more adjacent string literals, concatenated.
    fn strings(&mut self) -> Res<Value> {
        let mut out = String::new();
        loop {
            out.push_str(&self.string()?);
            let save = self.pos;
            self.skip_ws();
            if self.string_start().is_none() {
                self.pos = save;
                return Ok(Value::String(out));
            }
        }
    }

    /// One string literal with its prefix, at `self.pos`.
    fn string(&mut self) -> Res<String> {
        let start = self.pos;
        let prefix_len = self.string_start().unwrap_or(0);
        let prefix = self
            .src
            .get(start..start + prefix_len)
            .and_then(string_prefix)
            .unwrap_or(Prefix::Str);
        if prefix == Prefix::Format {
            return Err(LiteralError::FString {
                at: self.char_pos(start),
            });
        }
        let (s, end) =
            lex_quoted(self.src, start + prefix_len, prefix.is_raw()).map_err(|source| {
                LiteralError::String {
                    source,
                    at: self.char_pos(start),
                }
            })?;
        self.pos = end;
        Ok(s)
    }

    /// A number with any signs before it (and whitespace between).
    fn number(&mut self) -> Res<Value> {
        let start = self.pos;
        let mut negative = false;
        while let Some(c @ ('+' | '-')) = self.peek() {
            negative ^= c == '-';
            self.pos += 1;
            self.skip_ws();
        }
        let bad = |source| LiteralError::Number {
            source,
            at: self.char_pos(start),
        };
        let digit_next = |k: usize| self.byte_at(k).is_some_and(|b| b.is_ascii_digit());
        if !(digit_next(0) || (self.byte_at(0) == Some(b'.') && digit_next(1))) {
            return Err(match self.peek() {
                Some(c) => self.unexpected(c),
                None => LiteralError::Empty,
            });
        }
        let (lit, end) = lex_number(self.src, self.pos).map_err(bad)?;
        self.pos = end;
        let value = match lit {
            NumberLit::Float(f) => Number::from_f64(if negative { -f } else { f }),
            NumberLit::Int(i) => match (i.to_u64(), negative) {
                (Some(u), false) => Some(Number::from(u)),
                (Some(u), true) if u <= i64::MAX.unsigned_abs() + 1 => {
                    Some(Number::from(0_i64.wrapping_sub_unsigned(u)))
                }
                _ => Number::from_f64(if negative { -i.to_f64() } else { i.to_f64() }),
            },
        };
        value.map(Value::Number).ok_or(LiteralError::Number {
            source: super::NumberError::FloatRange,
            at: self.char_pos(start),
        })
    }
}

/// A dict key as JSON text, as `json.dumps` would write it.
fn key_text(key: Value) -> Res<String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Array(_) | Value::Object(_) => Err(LiteralError::UnhashableKey),
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_python_repr() {
        let v = parse("[{'a': 1, \"b\": 'x\\'y', 'c': None, 'd': True, 'e': (1, 2.5), 'f': (3,)}]")
            .unwrap();
        assert_eq!(
            v,
            json!([{"a": 1, "b": "x'y", "c": null, "d": true, "e": [1, 2.5], "f": [3]}])
        );
    }

    #[test]
    fn parses_scalars_sets_and_keys() {
        assert_eq!(parse("False").unwrap(), json!(false));
        assert_eq!(parse("-0x1F").unwrap(), json!(-31));
        assert_eq!(parse("1_000").unwrap(), json!(1000));
        assert_eq!(parse("{1, 2,}").unwrap(), json!([1, 2]));
        assert_eq!(
            parse("{1: 'a', None: 'b'}").unwrap(),
            json!({"1": "a", "null": "b"})
        );
        assert_eq!(parse("'ab' 'cd'").unwrap(), json!("abcd"));
        assert_eq!(parse("'ab' r'\\d' b'e'").unwrap(), json!("ab\\de"));
        assert_eq!(parse("r'a\\n'").unwrap(), json!("a\\n"));
        assert_eq!(parse("'''x'y'''").unwrap(), json!("x'y"));
        assert_eq!(parse("'\\u00e9\\x41'").unwrap(), json!("éA"));
        assert_eq!(parse("(1)").unwrap(), json!(1));
        assert_eq!(parse("1e3").unwrap(), json!(1000.0));
        assert_eq!(parse("- -1").unwrap(), json!(1));
        assert_eq!(parse("-9223372036854775808").unwrap(), json!(i64::MIN));
        assert_eq!(parse("18446744073709551615").unwrap(), json!(u64::MAX));
        assert_eq!(
            parse("-18446744073709551615").unwrap(),
            json!(-1.8446744073709552e19)
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert!(err("[1, 2").contains("missing `]`"));
        assert!(err("foo").contains("unexpected name `foo`"));
        assert!(err("'abc").contains("unterminated"));
        assert!(err("[1] x").contains("unexpected `x`"));
        assert!(err("{[1]: 2}").contains("cannot be a dict key"));
        assert!(err("f'x'").contains("f-strings"));
        assert!(err("'\\N{BULLET}'").contains("\\N{...}"));
        assert!(err("[1 2]").contains("expected `,` or `]` but found `2` at position 3"));
        assert!(err("{'a' 1}").contains("expected `,` or `}`"));
        assert!(err("{'a': 1, 'b' 2}").contains("expected `:`"));
        assert!(err("['é', x]").contains("unexpected name `x` at position 6"));
        assert!(parse("").is_err());
        assert!(parse("-").is_err());
        assert!(parse("1e400").is_err());
        // CPython reads these; JSON has no complex numbers or infinities.
        assert!(err("1j").contains("complex numbers are not supported"));
    }

    #[test]
    fn guards_depth() {
        let deep = "[".repeat(100_000);
        assert!(err(&deep).contains("nesting deeper than 128"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
