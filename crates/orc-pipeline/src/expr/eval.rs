//! Tree-walking evaluator.

use serde_json::{Map, Value};

use super::builtins;
use super::error::type_err;
use super::parser::{BinOp, Builtin, CmpOp, Node, UnaryOp};
use super::value::{self, Budget, Res, type_name};
use super::{ExprError, Scope, truthy};

/// Evaluate a parsed tree against a scope with a fresh work budget.
pub(crate) fn evaluate(root: &Node, scope: &dyn Scope) -> Res<Value> {
    let mut ev = Evaluator {
        scope,
        budget: Budget::default(),
    };
    ev.eval(root)
}

struct Evaluator<'s> {
    scope: &'s dyn Scope,
    budget: Budget,
}

impl Evaluator<'_> {
    /// Dispatch only: every arm is a call, so this recursive frame stays
    /// small even in unoptimised builds (left-deep chains recurse up to
    /// `MAX_NODES` levels).
    fn eval(&mut self, node: &Node) -> Res<Value> {
        self.budget.step()?;
        match node {
            Node::Lit(v) => Ok(v.clone()),
            Node::Name(name) => self.eval_name(name),
            Node::List(items) => self.eval_list(items),
            Node::Dict(pairs) => self.eval_dict(pairs),
            Node::Attr(base, name) => self.eval_attr(base, name),
            Node::Index(base, index) => self.eval_index(base, index),
            Node::Slice(base, start, stop, step) => {
                self.eval_slice(base, start.as_deref(), stop.as_deref(), step.as_deref())
            }
            Node::Call(func, args) => self.eval_call(*func, args),
            Node::Method(recv, name, args) => self.eval_method(recv, name, args),
            Node::Unary(op, x) => self.eval_unary(*op, x),
            Node::Not(x) => self.eval_not(x),
            Node::Bin(op, a, b) => self.eval_binary(*op, a, b),
            Node::And(items) => self.eval_bool_op(items, false),
            Node::Or(items) => self.eval_bool_op(items, true),
            Node::Compare(first, rest) => self.eval_compare(first, rest),
            Node::IfElse { then, cond, orelse } => self.eval_if(then, cond, orelse),
        }
    }

    fn eval_name(&self, name: &str) -> Res<Value> {
        self.scope.get(name).ok_or_else(|| ExprError::UnknownName {
            name: name.to_owned(),
        })
    }

    fn eval_list(&mut self, items: &[Node]) -> Res<Value> {
        self.eval_all(items).map(Value::Array)
    }

    fn eval_attr(&mut self, base: &Node, name: &str) -> Res<Value> {
        let v = self.eval(base)?;
        value::attr(v, name)
    }

    fn eval_index(&mut self, base: &Node, index: &Node) -> Res<Value> {
        let v = self.eval(base)?;
        let i = self.eval(index)?;
        value::index(v, &i, &mut self.budget)
    }

    fn eval_call(&mut self, func: Builtin, args: &[Node]) -> Res<Value> {
        let args = self.eval_all(args)?;
        builtins::call(func, args, &mut self.budget)
    }

    fn eval_method(&mut self, recv: &Node, name: &str, args: &[Node]) -> Res<Value> {
        let recv = self.eval(recv)?;
        let args = self.eval_all(args)?;
        builtins::call_method(recv, name, args, &mut self.budget)
    }

    fn eval_unary(&mut self, op: UnaryOp, x: &Node) -> Res<Value> {
        let v = self.eval(x)?;
        value::unary(op, &v)
    }

    fn eval_not(&mut self, x: &Node) -> Res<Value> {
        let v = self.eval(x)?;
        Ok(Value::Bool(!truthy(&v)))
    }

    fn eval_if(&mut self, then: &Node, cond: &Node, orelse: &Node) -> Res<Value> {
        let c = self.eval(cond)?;
        if truthy(&c) {
            self.eval(then)
        } else {
            self.eval(orelse)
        }
    }

    fn eval_all(&mut self, nodes: &[Node]) -> Res<Vec<Value>> {
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            out.push(self.eval(node)?);
        }
        Ok(out)
    }

    fn eval_dict(&mut self, pairs: &[(Node, Node)]) -> Res<Value> {
        let mut map = Map::new();
        for (k, v) in pairs {
            let key = match self.eval(k)? {
                Value::String(s) => s,
                other => {
                    return Err(type_err(format!(
                        "dict keys must be strings, not '{}'",
                        type_name(&other)
                    )));
                }
            };
            let value = self.eval(v)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    fn eval_opt(&mut self, node: Option<&Node>) -> Res<Option<Value>> {
        node.map(|n| self.eval(n)).transpose()
    }

    fn eval_slice(
        &mut self,
        base: &Node,
        start: Option<&Node>,
        stop: Option<&Node>,
        step: Option<&Node>,
    ) -> Res<Value> {
        let v = self.eval(base)?;
        let start = self.eval_opt(start)?;
        let stop = self.eval_opt(stop)?;
        let step = self.eval_opt(step)?;
        value::slice(v, start, stop, step, &mut self.budget)
    }

    fn eval_binary(&mut self, op: BinOp, a: &Node, b: &Node) -> Res<Value> {
        let a = self.eval(a)?;
        let b = self.eval(b)?;
        value::binary(op, a, b, &mut self.budget)
    }

    /// `and` stops at the first falsy operand, `or` at the first truthy
    /// one; the deciding operand is the result, as in Python.
    fn eval_bool_op(&mut self, items: &[Node], stop_when: bool) -> Res<Value> {
        let mut last = Value::Null;
        for item in items {
            last = self.eval(item)?;
            if truthy(&last) == stop_when {
                break;
            }
        }
        Ok(last)
    }

    /// Chained comparison: `a < b < c` is `a < b and b < c`, each operand
    /// evaluated at most once, stopping at the first false link.
    fn eval_compare(&mut self, first: &Node, rest: &[(CmpOp, Node)]) -> Res<Value> {
        let mut left = self.eval(first)?;
        for (op, node) in rest {
            let right = self.eval(node)?;
            if !value::compare(*op, &left, &right, &mut self.budget)? {
                return Ok(Value::Bool(false));
            }
            left = right;
        }
        Ok(Value::Bool(true))
    }
}
