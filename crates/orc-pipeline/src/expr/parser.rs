//! Recursive-descent parser (Python precedence) producing the syntax tree.
//!
//! Nesting depth and node count are enforced while parsing, so hostile input
//! cannot overflow the stack.

use serde_json::{Number, Value};

use super::error::{ExprError, syntax, unsupported};
use super::lexer::{Tok, Token, is_ident, tokenize};
use super::{MAX_DEPTH, MAX_NODES, MAX_SOURCE_LEN};

type Res<T> = Result<T, ExprError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::FloorDiv => "//",
            Self::Mod => "%",
            Self::Pow => "**",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Neg,
    Pos,
}

impl UnaryOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Neg => "-",
            Self::Pos => "+",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

/// The allowlisted builtin functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Len,
    Str,
    Int,
    Float,
    Bool,
    Abs,
    Min,
    Max,
    Round,
    Sorted,
    Sum,
    Any,
    All,
}

impl Builtin {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "len" => Self::Len,
            "str" => Self::Str,
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "abs" => Self::Abs,
            "min" => Self::Min,
            "max" => Self::Max,
            "round" => Self::Round,
            "sorted" => Self::Sorted,
            "sum" => Self::Sum,
            "any" => Self::Any,
            "all" => Self::All,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Len => "len",
            Self::Str => "str",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Abs => "abs",
            Self::Min => "min",
            Self::Max => "max",
            Self::Round => "round",
            Self::Sorted => "sorted",
            Self::Sum => "sum",
            Self::Any => "any",
            Self::All => "all",
        }
    }
}

/// Every allowlisted method name (the per-type check happens at evaluation).
pub(crate) const METHODS: &[&str] = &[
    "startswith",
    "endswith",
    "lower",
    "upper",
    "strip",
    "lstrip",
    "rstrip",
    "split",
    "replace",
    "find",
    "count",
    "isdigit",
    "isalpha",
    "isnumeric",
    "title",
    "casefold",
    "get",
    "keys",
    "values",
    "items",
    "index",
];

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Value),
    Name(String),
    /// List or tuple display.
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
    Attr(Box<Node>, String),
    Index(Box<Node>, Box<Node>),
    Slice(
        Box<Node>,
        Option<Box<Node>>,
        Option<Box<Node>>,
        Option<Box<Node>>,
    ),
    Call(Builtin, Vec<Node>),
    Method(Box<Node>, String, Vec<Node>),
    Unary(UnaryOp, Box<Node>),
    Not(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Compare(Box<Node>, Vec<(CmpOp, Node)>),
    IfElse {
        then: Box<Node>,
        cond: Box<Node>,
        orelse: Box<Node>,
    },
}

impl Node {
    /// Collect free variable names in source order, deduplicated.
    pub(crate) fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Lit(_) => {}
            Self::Name(n) => {
                if !out.contains(&n.as_str()) {
                    out.push(n);
                }
            }
            Self::List(items) | Self::Call(_, items) | Self::And(items) | Self::Or(items) => {
                for item in items {
                    item.collect_names(out);
                }
            }
            Self::Dict(pairs) => {
                for (k, v) in pairs {
                    k.collect_names(out);
                    v.collect_names(out);
                }
            }
            Self::Attr(base, _) | Self::Unary(_, base) | Self::Not(base) => base.collect_names(out),
            Self::Index(a, b) | Self::Bin(_, a, b) => {
                a.collect_names(out);
                b.collect_names(out);
            }
            Self::Slice(base, lo, hi, step) => {
                base.collect_names(out);
                for part in [lo, hi, step].into_iter().flatten() {
                    part.collect_names(out);
                }
            }
            Self::Method(recv, _, args) => {
                recv.collect_names(out);
                for arg in args {
                    arg.collect_names(out);
                }
            }
            Self::Compare(first, rest) => {
                first.collect_names(out);
                for (_, n) in rest {
                    n.collect_names(out);
                }
            }
            Self::IfElse { then, cond, orelse } => {
                then.collect_names(out);
                cond.collect_names(out);
                orelse.collect_names(out);
            }
        }
    }
}

/// Parse a complete expression, enforcing the static limits.
pub(crate) fn parse(src: &str) -> Res<Node> {
    if src.len() > MAX_SOURCE_LEN {
        return Err(ExprError::TooLong {
            len: src.len(),
            limit: MAX_SOURCE_LEN,
        });
    }
    let mut parser = Parser {
        src,
        toks: tokenize(src),
        pos: 0,
        depth: 0,
        nodes: 0,
    };
    parser.parse_top()
}

static EOF: Tok = Tok::Eof;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    nodes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> &Tok {
        self.toks
            .get(self.pos.saturating_add(k))
            .map_or(&EOF, |t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.start)
    }

    fn text(&self) -> &str {
        self.toks
            .get(self.pos)
            .and_then(|t| self.src.get(t.start..t.end))
            .unwrap_or("")
    }

    /// Take the current token and advance.
    fn bump(&mut self) -> Tok {
        let tok = self
            .toks
            .get_mut(self.pos)
            .map_or(Tok::Eof, |t| std::mem::replace(&mut t.tok, Tok::Eof));
        self.pos = self.pos.saturating_add(1);
        tok
    }

    fn at(&self, tok: &Tok) -> bool {
        self.peek() == tok
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.at(tok);
        if found {
            self.bump();
        }
        found
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Res<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// Error for the current token, which is not what the grammar needs.
    fn unexpected(&self, expected: &str) -> ExprError {
        let offset = self.offset();
        let text = self.text();
        match self.peek() {
            Tok::Error(e) => (**e).clone(),
            Tok::Unsupported(what) => unsupported(offset, *what),
            Tok::Assign => unsupported(offset, "assignment ('='); use '==' to compare"),
            Tok::For => unsupported(offset, "comprehensions and generator expressions"),
            Tok::Reserved => syntax(offset, format!("'{text}' is a reserved keyword")),
            Tok::Eof => syntax(
                offset,
                format!("expected {expected}, found end of expression"),
            ),
            _ => syntax(offset, format!("expected {expected}, found `{text}`")),
        }
    }

    /// Count a new node against the node limit.
    fn mk(&mut self, node: Node) -> Res<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ExprError::TooManyNodes {
                offset: self.offset(),
                limit: MAX_NODES,
            });
        }
        Ok(node)
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::TooDeep {
                offset: self.offset(),
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn parse_top(&mut self) -> Res<Node> {
        if self.at(&Tok::Eof) {
            return Err(syntax(self.offset(), "empty expression"));
        }
        let first = self.parse_ternary()?;
        let node = if self.at(&Tok::Comma) {
            // A bare tuple, `a, b`, as Python's eval mode allows.
            let mut items = vec![first];
            while self.eat(&Tok::Comma) {
                if self.at(&Tok::Eof) {
                    break;
                }
                items.push(self.parse_ternary()?);
            }
            self.mk(Node::List(items))?
        } else {
            first
        };
        if !self.at(&Tok::Eof) {
            return Err(self.unexpected("end of expression"));
        }
        Ok(node)
    }

    /// `or_test ['if' or_test 'else' test]`; every sub-expression passes here,
    /// so this is where nesting depth is counted.
    fn parse_ternary(&mut self) -> Res<Node> {
        self.enter()?;
        let result = self.parse_ternary_inner();
        self.leave();
        result
    }

    fn parse_ternary_inner(&mut self) -> Res<Node> {
        let then = self.parse_or()?;
        if !self.eat(&Tok::If) {
            return Ok(then);
        }
        let cond = self.parse_or()?;
        self.expect(&Tok::Else, "'else'")?;
        let orelse = self.parse_ternary()?;
        self.mk(Node::IfElse {
            then: Box::new(then),
            cond: Box::new(cond),
            orelse: Box::new(orelse),
        })
    }

    fn parse_or(&mut self) -> Res<Node> {
        let first = self.parse_and()?;
        if !self.at(&Tok::Or) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::Or) {
            items.push(self.parse_and()?);
        }
        self.mk(Node::Or(items))
    }

    fn parse_and(&mut self) -> Res<Node> {
        let first = self.parse_not()?;
        if !self.at(&Tok::And) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::And) {
            items.push(self.parse_not()?);
        }
        self.mk(Node::And(items))
    }

    fn parse_not(&mut self) -> Res<Node> {
        if !self.eat(&Tok::Not) {
            return self.parse_comparison();
        }
        self.enter()?;
        let inner = self.parse_not();
        self.leave();
        let inner = inner?;
        self.mk(Node::Not(Box::new(inner)))
    }

    fn parse_comparison(&mut self) -> Res<Node> {
        let first = self.parse_arith()?;
        let mut rest = Vec::new();
        loop {
            let (op, width) = match (self.peek(), self.peek_at(1)) {
                (Tok::EqEq, _) => (CmpOp::Eq, 1),
                (Tok::NotEq, _) => (CmpOp::Ne, 1),
                (Tok::Lt, _) => (CmpOp::Lt, 1),
                (Tok::Le, _) => (CmpOp::Le, 1),
                (Tok::Gt, _) => (CmpOp::Gt, 1),
                (Tok::Ge, _) => (CmpOp::Ge, 1),
                (Tok::In, _) => (CmpOp::In, 1),
                (Tok::Not, Tok::In) => (CmpOp::NotIn, 2),
                (Tok::Is, Tok::Not) => (CmpOp::IsNot, 2),
                (Tok::Is, _) => (CmpOp::Is, 1),
                _ => break,
            };
            for _ in 0..width {
                self.bump();
            }
            rest.push((op, self.parse_arith()?));
        }
        if rest.is_empty() {
            Ok(first)
        } else {
            self.mk(Node::Compare(Box::new(first), rest))
        }
    }

    fn parse_arith(&mut self) -> Res<Node> {
        let mut left = self.parse_term()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.parse_term()?;
            left = self.mk(Node::Bin(op, Box::new(left), Box::new(right)))?;
        }
    }

    fn parse_term(&mut self) -> Res<Node> {
        let mut left = self.parse_factor()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::DoubleSlash => BinOp::FloorDiv,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(left),
            };
            if op == BinOp::Mod && matches!(left, Node::Lit(Value::String(_))) {
                return Err(unsupported(self.offset(), "string formatting with '%'"));
            }
            self.bump();
            let right = self.parse_factor()?;
            left = self.mk(Node::Bin(op, Box::new(left), Box::new(right)))?;
        }
    }

    /// Unary `-`/`+`, which bind looser than `**` on their right.
    fn parse_factor(&mut self) -> Res<Node> {
        let op = match self.peek() {
            Tok::Minus => UnaryOp::Neg,
            Tok::Plus => UnaryOp::Pos,
            _ => return self.parse_power(),
        };
        self.bump();
        self.enter()?;
        let inner = self.parse_factor();
        self.leave();
        let inner = inner?;
        self.mk(Node::Unary(op, Box::new(inner)))
    }

    /// `postfix ['**' factor]` (right-associative).
    fn parse_power(&mut self) -> Res<Node> {
        let base = self.parse_postfix()?;
        if !self.eat(&Tok::DoubleStar) {
            return Ok(base);
        }
        self.enter()?;
        let exp = self.parse_factor();
        self.leave();
        let exp = exp?;
        self.mk(Node::Bin(BinOp::Pow, Box::new(base), Box::new(exp)))
    }

    fn parse_postfix(&mut self) -> Res<Node> {
        let mut node = self.parse_atom()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let offset = self.offset();
                    let name = self.attr_name()?;
                    if name.starts_with('_') {
                        return Err(ExprError::PrivateName { offset, name });
                    }
                    if self.eat(&Tok::LParen) {
                        if !METHODS.contains(&name.as_str()) {
                            return Err(ExprError::NotAllowed { offset, name });
                        }
                        let args = self.parse_call_args()?;
                        node = self.mk(Node::Method(Box::new(node), name, args))?;
                    } else {
                        node = self.mk(Node::Attr(Box::new(node), name))?;
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    node = self.parse_subscript(node)?;
                }
                Tok::LParen => {
                    return Err(syntax(
                        self.offset(),
                        "only the allowlisted functions and methods can be called",
                    ));
                }
                _ => return Ok(node),
            }
        }
    }

    /// The name after `.`; keywords are accepted as attribute names.
    fn attr_name(&mut self) -> Res<String> {
        let ok = match self.peek() {
            Tok::Name(_) => true,
            Tok::Const(_)
            | Tok::And
            | Tok::Or
            | Tok::Not
            | Tok::In
            | Tok::Is
            | Tok::If
            | Tok::Else
            | Tok::For
            | Tok::Reserved
            | Tok::Unsupported(_) => is_ident(self.text()),
            _ => false,
        };
        if !ok {
            return Err(self.unexpected("an attribute name"));
        }
        let name = self.text().to_owned();
        self.bump();
        Ok(name)
    }

    /// After `[`: an index or a slice, up to and including `]`.
    fn parse_subscript(&mut self, base: Node) -> Res<Node> {
        let lower = if self.at(&Tok::Colon) {
            None
        } else {
            Some(Box::new(self.parse_ternary()?))
        };
        if !self.eat(&Tok::Colon) {
            self.expect(&Tok::RBracket, "']'")?;
            return match lower {
                Some(index) => self.mk(Node::Index(Box::new(base), index)),
                None => Err(self.unexpected("an index")),
            };
        }
        let upper = if matches!(self.peek(), Tok::Colon | Tok::RBracket) {
            None
        } else {
            Some(Box::new(self.parse_ternary()?))
        };
        let step = if self.eat(&Tok::Colon) && !self.at(&Tok::RBracket) {
            Some(Box::new(self.parse_ternary()?))
        } else {
            None
        };
        self.expect(&Tok::RBracket, "']'")?;
        self.mk(Node::Slice(Box::new(base), lower, upper, step))
    }

    /// After `(`: positional arguments up to and including `)`.
    fn parse_call_args(&mut self) -> Res<Vec<Node>> {
        let mut args = Vec::new();
        loop {
            if self.eat(&Tok::RParen) {
                return Ok(args);
            }
            match (self.peek(), self.peek_at(1)) {
                (Tok::Star | Tok::DoubleStar, _) => {
                    return Err(unsupported(self.offset(), "argument unpacking"));
                }
                (Tok::Name(_), Tok::Assign) => {
                    return Err(unsupported(self.offset(), "keyword arguments"));
                }
                _ => {}
            }
            args.push(self.parse_ternary()?);
            if !self.eat(&Tok::Comma) {
                self.expect(&Tok::RParen, "',' or ')'")?;
                return Ok(args);
            }
        }
    }

    fn parse_atom(&mut self) -> Res<Node> {
        let offset = self.offset();
        match self.peek() {
            Tok::Int(_) | Tok::Float(_) | Tok::Const(_) | Tok::Name(_) => {}
            Tok::Str(_) => return self.parse_strings(),
            Tok::LParen => return self.parse_paren(),
            Tok::LBracket => return self.parse_list(),
            Tok::LBrace => return self.parse_dict(),
            Tok::Star | Tok::DoubleStar => {
                return Err(unsupported(offset, "unpacking with '*' or '**'"));
            }
            _ => return Err(self.unexpected("an expression")),
        }
        match self.bump() {
            Tok::Int(i) => self.mk(Node::Lit(Value::from(i))),
            Tok::Float(f) => match Number::from_f64(f) {
                Some(n) => self.mk(Node::Lit(Value::Number(n))),
                None => Err(syntax(offset, "invalid float literal")),
            },
            Tok::Const(v) => self.mk(Node::Lit(v)),
            Tok::Name(name) => self.parse_name(name, offset),
            _ => Err(syntax(offset, "unexpected token")),
        }
    }

    fn parse_name(&mut self, name: String, offset: usize) -> Res<Node> {
        if name.starts_with('_') {
            return Err(ExprError::PrivateName { offset, name });
        }
        if let Some(func) = Builtin::from_name(&name) {
            if !self.eat(&Tok::LParen) {
                return Err(syntax(
                    offset,
                    format!("'{name}' is a function and must be called, e.g. {name}(...)"),
                ));
            }
            let args = self.parse_call_args()?;
            return self.mk(Node::Call(func, args));
        }
        if self.at(&Tok::LParen) {
            return Err(ExprError::NotAllowed { offset, name });
        }
        self.mk(Node::Name(name))
    }

    /// Adjacent string literals concatenate, as in Python.
    fn parse_strings(&mut self) -> Res<Node> {
        let mut s = String::new();
        while matches!(self.peek(), Tok::Str(_)) {
            if let Tok::Str(part) = self.bump() {
                s.push_str(&part);
            }
        }
        self.mk(Node::Lit(Value::String(s)))
    }

    /// Parenthesised expression or tuple (tuples become lists).
    fn parse_paren(&mut self) -> Res<Node> {
        self.bump();
        if self.eat(&Tok::RParen) {
            return self.mk(Node::List(Vec::new()));
        }
        let first = self.parse_ternary()?;
        if !self.at(&Tok::Comma) {
            self.expect(&Tok::RParen, "')'")?;
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::Comma) {
            if self.at(&Tok::RParen) {
                break;
            }
            items.push(self.parse_ternary()?);
        }
        self.expect(&Tok::RParen, "',' or ')'")?;
        self.mk(Node::List(items))
    }

    fn parse_list(&mut self) -> Res<Node> {
        self.bump();
        let mut items = Vec::new();
        loop {
            if self.eat(&Tok::RBracket) {
                break;
            }
            items.push(self.parse_ternary()?);
            if !self.eat(&Tok::Comma) {
                self.expect(&Tok::RBracket, "',' or ']'")?;
                break;
            }
        }
        self.mk(Node::List(items))
    }

    fn parse_dict(&mut self) -> Res<Node> {
        self.bump();
        let mut pairs = Vec::new();
        loop {
            if self.eat(&Tok::RBrace) {
                break;
            }
            let offset = self.offset();
            if self.at(&Tok::DoubleStar) {
                return Err(unsupported(offset, "dict unpacking with '**'"));
            }
            let key = self.parse_ternary()?;
            if matches!(self.peek(), Tok::Comma | Tok::RBrace) {
                return Err(unsupported(offset, "set literals"));
            }
            if matches!(&key, Node::Lit(v) if !v.is_string()) {
                return Err(syntax(offset, "dict keys must be strings"));
            }
            self.expect(&Tok::Colon, "':'")?;
            let value = self.parse_ternary()?;
            pairs.push((key, value));
            if !self.eat(&Tok::Comma) {
                self.expect(&Tok::RBrace, "',' or '}'")?;
                break;
            }
        }
        self.mk(Node::Dict(pairs))
    }
}
