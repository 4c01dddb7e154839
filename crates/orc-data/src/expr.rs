//! A small arithmetic expression language for the `compute` transform step:
//! numbers, field names (identifiers or `` `quoted names` ``), `+ - * / %`,
//! unary minus and parentheses. A null or missing operand, or a division by
//! zero, yields null; a non-numeric operand is an error.

use crate::value::{Row, as_f64, f64_value};
use serde_json::Value;

const MAX_DEPTH: usize = 64;

/// A parsed expression.
#[derive(Debug)]
pub(crate) enum Expr {
    Num(Num),
    Field(String),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
}

/// An integer or a float.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            // Exact enough for arithmetic on data values.
            #[allow(clippy::cast_precision_loss)]
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }

    fn value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(x) => f64_value(x),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64, bool),
    Name(String),
    Op(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let s: String = chars[start..i].iter().collect();
            let is_int = s.chars().all(|c| c.is_ascii_digit());
            let x: f64 = s.parse().map_err(|_| format!("bad number `{s}`"))?;
            out.push(Tok::Num(x, is_int));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else if c == '`' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated `quoted` field name".to_string());
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
            i += 1;
        } else if "+-*/%()".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(format!("unexpected `{c}`"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<char> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let mut left = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.term()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek_op() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Op(sign @ ('-' | '+'))) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                let inner = self.factor()?;
                self.depth -= 1;
                Ok(if sign == '-' {
                    Expr::Neg(Box::new(inner))
                } else {
                    inner
                })
            }
            Some(Tok::Op('(')) => {
                let inner = self.expr()?;
                if self.peek_op() != Some(')') {
                    return Err("missing `)`".to_string());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Num(x, true)) if x.abs() < 9.0e15 => {
                // Whole and in range, so exact.
                #[allow(clippy::cast_possible_truncation)]
                Ok(Expr::Num(Num::Int(x as i64)))
            }
            Some(Tok::Num(x, _)) => Ok(Expr::Num(Num::Float(x))),
            Some(Tok::Name(n)) => Ok(Expr::Field(n)),
            Some(Tok::Op(c)) => Err(format!("unexpected `{c}`")),
            None => Err("the expression ended early".to_string()),
        }
    }
}

/// Parses an expression.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("the expression is empty".to_string());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "unexpected {:?} after the expression",
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

impl Expr {
    /// The field names the expression reads.
    pub(crate) fn fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::Num(_) => {}
            Expr::Field(f) => out.push(f.clone()),
            Expr::Neg(e) => e.fields(out),
            Expr::Bin(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
        }
    }

    fn eval_num(&self, row: &Row) -> Result<Option<Num>, String> {
        Ok(match self {
            Expr::Num(n) => Some(*n),
            Expr::Field(f) => match row.get(f) {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_i64() {
                    Some(i) => Some(Num::Int(i)),
                    None => Some(Num::Float(as_f64(v).ok_or_else(|| {
                        format!(
                            "field `{f}` is not a number: {}",
                            crate::params::describe(v)
                        )
                    })?)),
                },
            },
            Expr::Neg(e) => e.eval_num(row)?.map(|n| match n {
                Num::Int(i) => i.checked_neg().map_or(Num::Float(-n.f()), Num::Int),
                Num::Float(x) => Num::Float(-x),
            }),
            Expr::Bin(op, a, b) => {
                let (Some(x), Some(y)) = (a.eval_num(row)?, b.eval_num(row)?) else {
                    return Ok(None);
                };
                binary(*op, x, y)
            }
        })
    }

    /// Evaluates on one row.
    pub(crate) fn eval(&self, row: &Row) -> Result<Value, String> {
        Ok(self.eval_num(row)?.map_or(Value::Null, Num::value))
    }
}

fn binary(op: char, x: Num, y: Num) -> Option<Num> {
    if let (Num::Int(a), Num::Int(b)) = (x, y) {
        let exact = match op {
            '+' => a.checked_add(b),
            '-' => a.checked_sub(b),
            '*' => a.checked_mul(b),
            '%' => {
                if b == 0 {
                    return None;
                }
                a.checked_rem(b)
            }
            _ => None,
        };
        if let Some(r) = exact {
            return Some(Num::Int(r));
        }
    }
    let (a, b) = (x.f(), y.f());
    let r = match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' | '%' if b == 0.0 => return None,
        '/' => a / b,
        _ => a % b,
    };
    Some(Num::Float(r))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => m,
            _ => Row::new(),
        }
    }

    #[test]
    fn evaluates_arithmetic() {
        let r = row(json!({"a": 6, "b": 4, "c": null, "price x": 2.5, "s": "x"}));
        assert_eq!(parse("a * b + 1").unwrap().eval(&r).unwrap(), json!(25));
        assert_eq!(parse("(a - b) / 4").unwrap().eval(&r).unwrap(), json!(0.5));
        assert_eq!(parse("-a % 4").unwrap().eval(&r).unwrap(), json!(-2));
        assert_eq!(
            parse("`price x` * 2").unwrap().eval(&r).unwrap(),
            json!(5.0)
        );
        assert_eq!(parse("a + c").unwrap().eval(&r).unwrap(), json!(null));
        assert_eq!(parse("a / 0").unwrap().eval(&r).unwrap(), json!(null));
        assert!(
            parse("s + 1")
                .unwrap()
                .eval(&r)
                .unwrap_err()
                .contains("field `s`")
        );
        assert!(parse("a +").is_err());
        assert!(parse("(a").is_err());
        assert!(parse("a $ b").is_err());
        assert!(parse(&"(".repeat(10_000)).unwrap_err().contains("nesting"));
        assert!(parse(&"-".repeat(10_000)).unwrap_err().contains("nesting"));
        assert!(parse(&"+".repeat(10_000)).unwrap_err().contains("nesting"));
    }
}
