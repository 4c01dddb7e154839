//! A parser for Python literals as printed by `repr()`: `[{'a': 1}]`,
//! `True`/`False`/`None`, tuples and sets (as lists), single-, double- and
//! triple-quoted strings with escapes, adjacent string concatenation, and
//! `0x`/`0o`/`0b` integers. JSON's `true`/`false`/`null` are accepted too.
//! Nesting is limited to [`MAX_DEPTH`] containers.

use serde_json::{Map, Number, Value};

/// The deepest container nesting accepted.
pub(crate) const MAX_DEPTH: usize = 128;

/// Parses one Python literal filling the whole text.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(v),
        Some(c) => Err(format!("unexpected `{c}` at position {}", p.pos)),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += 1;
            } else if c == '\\' && self.peek_at(1) == Some('\n') {
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(format!(
                "expected `{want}` but found `{c}` at position {}",
                self.pos
            )),
            None => Err(format!("expected `{want}` but the text ended")),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err("the text ended where a value was expected".to_string());
        };
        match c {
            '[' | '(' | '{' => {
                if self.depth >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                self.depth += 1;
                let v = match c {
                    '[' => self.list(),
                    '(' => self.tuple(),
                    _ => self.dict_or_set(),
                };
                self.depth -= 1;
                v
            }
            '\'' | '"' => self.strings(),
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                if matches!(c, 'r' | 'R' | 'u' | 'U' | 'b' | 'B')
                    && matches!(self.peek_at(1), Some('\'' | '"'))
                {
                    return self.strings();
                }
                self.name()
            }
            other => Err(format!("unexpected `{other}` at position {}", self.pos)),
        }
    }

    /// Items up to `close`, allowing a trailing comma; the opener is consumed.
    fn items(&mut self, close: char) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(out);
            }
            out.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                Some(c) => {
                    return Err(format!(
                        "expected `,` or `{close}` but found `{c}` at position {}",
                        self.pos
                    ));
                }
                None => return Err(format!("missing `{close}` at the end")),
            }
        }
    }

    fn list(&mut self) -> Result<Value, String> {
        self.pos += 1;
        self.items(']').map(Value::Array)
    }

    fn tuple(&mut self) -> Result<Value, String> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        self.skip_ws();
        match self.peek() {
            Some(')') => {
                self.pos += 1;
                Ok(first)
            }
            Some(',') => {
                self.pos += 1;
                let mut rest = self.items(')')?;
                rest.insert(0, first);
                Ok(Value::Array(rest))
            }
            Some(c) => Err(format!(
                "expected `,` or `)` but found `{c}` at position {}",
                self.pos
            )),
            None => Err("missing `)` at the end".to_string()),
        }
    }

    fn dict_or_set(&mut self) -> Result<Value, String> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some('}') {
            self.pos += 1;
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value()?;
        self.skip_ws();
        if self.peek() != Some(':') {
            // A set literal.
            let mut rest = match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    self.items('}')?
                }
                _ => {
                    self.expect('}')?;
                    Vec::new()
                }
            };
            rest.insert(0, first);
            return Ok(Value::Array(rest));
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            self.expect(':')?;
            let val = self.value()?;
            map.insert(key_text(key)?, val);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some('}') {
                        self.pos += 1;
                        return Ok(Value::Object(map));
                    }
                    key = self.value()?;
                }
                Some('}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(c) => {
                    return Err(format!(
                        "expected `,` or `}}` but found `{c}` at position {}",
                        self.pos
                    ));
                }
                None => return Err("missing `}` at the end".to_string()),
            }
        }
    }

    /// One or more adjacent string literals, concatenated.
    fn strings(&mut self) -> Result<Value, String> {
        let mut out = self.string()?;
        loop {
            let save = self.pos;
            self.skip_ws();
            let starts_string = match self.peek() {
                Some('\'' | '"') => true,
                Some('r' | 'R' | 'u' | 'U' | 'b' | 'B') => {
                    matches!(self.peek_at(1), Some('\'' | '"'))
                }
                _ => false,
            };
            if !starts_string {
                self.pos = save;
                return Ok(Value::String(out));
            }
            out.push_str(&self.string()?);
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let mut raw = false;
        if let Some(c) = self.peek()
            && matches!(c, 'r' | 'R' | 'u' | 'U' | 'b' | 'B')
        {
            raw = matches!(c, 'r' | 'R');
            self.pos += 1;
        }
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err("the text ended inside a string".to_string());
        };
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!("unterminated string starting at position {start}"));
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Ok(out);
                }
                if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
                    self.pos += 3;
                    return Ok(out);
                }
            }
            if c == '\n' && !triple {
                return Err(format!(
                    "line break inside the string starting at position {start}"
                ));
            }
            self.pos += 1;
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(format!("unterminated string starting at position {start}"));
            };
            self.pos += 1;
            if raw {
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' | '\'' | '"' => out.push(e),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, len: usize) -> Result<char, String> {
        let digits: String = self.chars.iter().skip(self.pos).take(len).collect();
        if digits.chars().count() != len || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad escape sequence at position {}", self.pos));
        }
        self.pos += len;
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("escape `{digits}` is not a character"))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut text = String::new();
        let mut negative = false;
        while let Some(c @ ('+' | '-')) = self.peek() {
            negative ^= c == '-';
            self.pos += 1;
            self.skip_ws();
        }
        // Radix-prefixed integers.
        if self.peek() == Some('0') {
            let radix = match self.peek_at(1) {
                Some('x' | 'X') => 16,
                Some('o' | 'O') => 8,
                Some('b' | 'B') => 2,
                _ => 0,
            };
            if radix != 0 {
                self.pos += 2;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        if c != '_' {
                            text.push(c);
                        }
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let n = i64::from_str_radix(&text, radix)
                    .map_err(|_| format!("bad number at position {start}"))?;
                return Ok(Value::from(if negative { -n } else { n }));
            }
        }
        let mut is_float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' => text.push(c),
                '_' => {}
                '.' => {
                    is_float = true;
                    text.push(c);
                }
                'e' | 'E' => {
                    is_float = true;
                    text.push(c);
                    if let Some(s @ ('+' | '-')) = self.peek_at(1) {
                        text.push(s);
                        self.pos += 1;
                    }
                }
                _ => break,
            }
            self.pos += 1;
        }
        if !text.chars().any(|c| c.is_ascii_digit()) {
            return Err(format!("bad number at position {start}"));
        }
        if negative {
            text.insert(0, '-');
        }
        if !is_float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Value::from(u));
            }
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("bad number at position {start}"))
    }

    fn name(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        match word.as_str() {
            "True" | "true" => Ok(Value::Bool(true)),
            "False" | "false" => Ok(Value::Bool(false)),
            "None" | "null" => Ok(Value::Null),
            _ => Err(format!("unexpected name `{word}` at position {start}")),
        }
    }
}

/// A dict key as JSON text, as `json.dumps` would write it.
fn key_text(key: Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Array(_) | Value::Object(_) => {
            Err("a list or dict cannot be a dict key".to_string())
        }
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(parse("r'a\\n'").unwrap(), json!("a\\n"));
        assert_eq!(parse("'''x'y'''").unwrap(), json!("x'y"));
        assert_eq!(parse("'\\u00e9\\x41'").unwrap(), json!("éA"));
        assert_eq!(parse("(1)").unwrap(), json!(1));
        assert_eq!(parse("1e3").unwrap(), json!(1000.0));
    }

    #[test]
    fn rejects_bad_text() {
        assert!(parse("[1, 2").unwrap_err().contains("missing `]`"));
        assert!(parse("foo").unwrap_err().contains("unexpected name `foo`"));
        assert!(parse("'abc").unwrap_err().contains("unterminated"));
        assert!(parse("[1] x").unwrap_err().contains("unexpected `x`"));
        assert!(
            parse("{[1]: 2}")
                .unwrap_err()
                .contains("cannot be a dict key")
        );
        assert!(parse("").is_err());
        assert!(parse("-").is_err());
    }

    #[test]
    fn guards_depth() {
        let deep = "[".repeat(100_000);
        assert!(
            parse(&deep)
                .unwrap_err()
                .contains("nesting deeper than 128")
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
