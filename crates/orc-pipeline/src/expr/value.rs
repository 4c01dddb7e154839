//! Python-like semantics over `serde_json::Value`: typing, equality,
//! ordering, arithmetic, indexing, formatting, and the work budget.

use serde_json::{Number, Value};
use std::cmp::Ordering;

use super::error::{ExprError, invalid, overflow, type_err};
use super::parser::{BinOp, CmpOp, UnaryOp};
use super::{MAX_COLLECTION_LEN, MAX_POW_BASE, MAX_POW_EXPONENT, MAX_STEPS, MAX_VALUE_DEPTH};

pub(crate) type Res<T> = Result<T, ExprError>;

/// Budget units per step (one syntax-tree node evaluation).
const STEP_COST: u64 = 1024;
/// Budget units per element visited, cloned or compared (1/16 step).
const ELEM_COST: u64 = 64;
// A byte of string data processed costs one unit (1/1024 step).

/// Work budget for one evaluation.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    used: u64,
}

impl Budget {
    pub(crate) fn charge(&mut self, units: u64) -> Res<()> {
        self.used = self.used.saturating_add(units);
        if self.used > MAX_STEPS.saturating_mul(STEP_COST) {
            return Err(ExprError::BudgetExhausted { limit: MAX_STEPS });
        }
        Ok(())
    }

    pub(crate) fn step(&mut self) -> Res<()> {
        self.charge(STEP_COST)
    }

    pub(crate) fn elems(&mut self, n: usize) -> Res<()> {
        self.charge(to_u64(n).saturating_mul(ELEM_COST))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Res<()> {
        self.charge(to_u64(n))
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Fail if a produced string/list would exceed the size limit.
pub(crate) fn check_len(n: usize) -> Res<()> {
    if n > MAX_COLLECTION_LEN {
        return Err(ExprError::TooLarge {
            size: to_u64(n),
            limit: MAX_COLLECTION_LEN,
        });
    }
    Ok(())
}

/// Python type name of a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A number, with `bool` treated as the integers 0 and 1 (as in Python).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }
}

pub(crate) fn as_num(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::Int(i64::from(*b))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Num::Int(i)),
            None => n.as_f64().map(Num::Float),
        },
        _ => None,
    }
}

pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match as_num(v) {
        Some(Num::Int(i)) => Some(i),
        _ => None,
    }
}

pub(crate) fn int_val(i: i64) -> Value {
    Value::from(i)
}

pub(crate) fn len_val(n: usize) -> Value {
    Value::from(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A float result; non-finite values are not representable in JSON.
pub(crate) fn float_val(f: f64) -> Res<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| overflow("float result is not finite"))
}

pub(crate) fn num_val(n: Num) -> Res<Value> {
    match n {
        Num::Int(i) => Ok(int_val(i)),
        Num::Float(f) => float_val(f),
    }
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Truncated float to i64, or an overflow error.
pub(crate) fn float_to_int(f: f64) -> Res<i64> {
    if (-TWO_POW_63..TWO_POW_63).contains(&f) {
        Ok(f as i64)
    } else {
        Err(overflow("float is too large to convert to int"))
    }
}

/// Exact comparison of an integer with a finite float.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    if f >= TWO_POW_63 {
        return Ordering::Less;
    }
    if f < -TWO_POW_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

pub(crate) fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).reverse(),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

fn check_depth(depth: usize) -> Res<()> {
    if depth > MAX_VALUE_DEPTH {
        return Err(ExprError::ValueTooDeep {
            limit: MAX_VALUE_DEPTH,
        });
    }
    Ok(())
}

/// Python `==`: numbers compare by value across int/float/bool; otherwise
/// values of different types are unequal.
pub(crate) fn py_eq(a: &Value, b: &Value, bud: &mut Budget, depth: usize) -> Res<bool> {
    check_depth(depth)?;
    bud.elems(1)?;
    Ok(match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => {
            bud.bytes(x.len().min(y.len()))?;
            x == y
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q, bud, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (k, p) in x {
                match y.get(k) {
                    Some(q) if py_eq(p, q, bud, depth + 1)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        _ => match (as_num(a), as_num(b)) {
            (Some(p), Some(q)) => num_cmp(p, q) == Ordering::Equal,
            _ => false,
        },
    })
}

/// Python ordering: numbers, strings (by code point) and lists (lexicographic).
pub(crate) fn py_cmp(
    a: &Value,
    b: &Value,
    op: &str,
    bud: &mut Budget,
    depth: usize,
) -> Res<Ordering> {
    check_depth(depth)?;
    bud.elems(1)?;
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            bud.bytes(x.len().min(y.len()))?;
            Ok(x.cmp(y))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q, bud, depth + 1)? {
                    return py_cmp(p, q, op, bud, depth + 1);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => match (as_num(a), as_num(b)) {
            (Some(p), Some(q)) => Ok(num_cmp(p, q)),
            _ => Err(type_err(format!(
                "'{op}' not supported between instances of '{}' and '{}'",
                type_name(a),
                type_name(b)
            ))),
        },
    }
}

/// Python `item in container`.
pub(crate) fn contains(container: &Value, item: &Value, bud: &mut Budget) -> Res<bool> {
    match container {
        Value::String(s) => match item {
            Value::String(sub) => {
                bud.bytes(s.len())?;
                Ok(s.contains(sub.as_str()))
            }
            other => Err(type_err(format!(
                "'in <string>' requires string as left operand, not {}",
                type_name(other)
            ))),
        },
        Value::Array(items) => {
            for x in items {
                if py_eq(item, x, bud, 0)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Value::Object(m) => match item {
            Value::String(k) => Ok(m.contains_key(k)),
            Value::Array(_) | Value::Object(_) => Err(unhashable(item)),
            _ => Ok(false),
        },
        other => Err(type_err(format!(
            "argument of type '{}' is not iterable",
            type_name(other)
        ))),
    }
}

fn unhashable(v: &Value) -> ExprError {
    type_err(format!("unhashable type: '{}'", type_name(v)))
}

/// `is` / `is not`: identity of the singletons None, True and False.
fn is_same(a: &Value, b: &Value) -> Res<bool> {
    let singleton = |v: &Value| matches!(v, Value::Null | Value::Bool(_));
    if singleton(a) || singleton(b) {
        Ok(a == b)
    } else {
        Err(type_err(
            "'is' is only supported with None, True or False; use '==' to compare values",
        ))
    }
}

pub(crate) fn compare(op: CmpOp, a: &Value, b: &Value, bud: &mut Budget) -> Res<bool> {
    Ok(match op {
        CmpOp::Eq => py_eq(a, b, bud, 0)?,
        CmpOp::Ne => !py_eq(a, b, bud, 0)?,
        CmpOp::Lt => py_cmp(a, b, "<", bud, 0)? == Ordering::Less,
        CmpOp::Le => py_cmp(a, b, "<=", bud, 0)? != Ordering::Greater,
        CmpOp::Gt => py_cmp(a, b, ">", bud, 0)? == Ordering::Greater,
        CmpOp::Ge => py_cmp(a, b, ">=", bud, 0)? != Ordering::Less,
        CmpOp::In => contains(b, a, bud)?,
        CmpOp::NotIn => !contains(b, a, bud)?,
        CmpOp::Is => is_same(a, b)?,
        CmpOp::IsNot => !is_same(a, b)?,
    })
}

pub(crate) fn unary(op: UnaryOp, v: &Value) -> Res<Value> {
    match (op, as_num(v)) {
        (UnaryOp::Neg, Some(Num::Int(i))) => i
            .checked_neg()
            .map(int_val)
            .ok_or_else(|| overflow("integer result is too large")),
        (UnaryOp::Neg, Some(Num::Float(f))) => float_val(-f),
        (UnaryOp::Pos, Some(n)) => num_val(n),
        (op, None) => Err(type_err(format!(
            "bad operand type for unary {}: '{}'",
            op.symbol(),
            type_name(v)
        ))),
    }
}

fn operand_err(op: BinOp, a: &str, b: &str) -> ExprError {
    type_err(format!(
        "unsupported operand type(s) for {}: '{a}' and '{b}'",
        op.symbol()
    ))
}

pub(crate) fn binary(op: BinOp, a: Value, b: Value, bud: &mut Budget) -> Res<Value> {
    match op {
        BinOp::Add => add(a, b, bud),
        BinOp::Mul => mul(a, b, bud),
        BinOp::Mod if a.is_string() => Err(type_err("string formatting with '%' is not supported")),
        _ => match (as_num(&a), as_num(&b)) {
            (Some(x), Some(y)) => num_op(op, x, y),
            _ => Err(operand_err(op, type_name(&a), type_name(&b))),
        },
    }
}

fn add(a: Value, b: Value, bud: &mut Budget) -> Res<Value> {
    match (a, b) {
        (Value::String(mut x), Value::String(y)) => {
            let n = x.len().saturating_add(y.len());
            check_len(n)?;
            bud.bytes(n)?;
            x.push_str(&y);
            Ok(Value::String(x))
        }
        (Value::Array(mut x), Value::Array(y)) => {
            let n = x.len().saturating_add(y.len());
            check_len(n)?;
            bud.elems(n)?;
            x.extend(y);
            Ok(Value::Array(x))
        }
        (a, b) => match (as_num(&a), as_num(&b)) {
            (Some(x), Some(y)) => num_op(BinOp::Add, x, y),
            _ => Err(operand_err(BinOp::Add, type_name(&a), type_name(&b))),
        },
    }
}

fn mul(a: Value, b: Value, bud: &mut Budget) -> Res<Value> {
    if let (Some(x), Some(y)) = (as_num(&a), as_num(&b)) {
        return num_op(BinOp::Mul, x, y);
    }
    let err = operand_err(BinOp::Mul, type_name(&a), type_name(&b));
    match (a, b) {
        (Value::String(s), n) | (n, Value::String(s)) => match as_int(&n) {
            Some(k) => repeat_str(&s, k, bud),
            None => Err(err),
        },
        (Value::Array(l), n) | (n, Value::Array(l)) => match as_int(&n) {
            Some(k) => repeat_list(&l, k, bud),
            None => Err(err),
        },
        _ => Err(err),
    }
}

fn repeat_str(s: &str, k: i64, bud: &mut Budget) -> Res<Value> {
    if k <= 0 || s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let n = s.len().saturating_mul(k);
    check_len(n)?;
    bud.bytes(n)?;
    Ok(Value::String(s.repeat(k)))
}

fn repeat_list(l: &[Value], k: i64, bud: &mut Budget) -> Res<Value> {
    if k <= 0 || l.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let n = l.len().saturating_mul(k);
    check_len(n)?;
    let per_copy = l.iter().map(clone_cost).fold(0, u64::saturating_add);
    bud.charge(per_copy.saturating_mul(to_u64(k)))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..k {
        out.extend(l.iter().cloned());
    }
    Ok(Value::Array(out))
}

/// Budget units for deep-cloning a value (walked iteratively).
fn clone_cost(v: &Value) -> u64 {
    let mut total: u64 = 0;
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        total = total.saturating_add(ELEM_COST);
        match x {
            Value::String(s) => total = total.saturating_add(to_u64(s.len())),
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                for (k, v) in m {
                    total = total.saturating_add(to_u64(k.len()));
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    total
}

fn num_op(op: BinOp, x: Num, y: Num) -> Res<Value> {
    if op == BinOp::Pow {
        return pow(x, y);
    }
    match (x, y) {
        (Num::Int(a), Num::Int(b)) => int_op(op, a, b),
        _ => float_op(op, x.to_f64(), y.to_f64()),
    }
}

fn int_op(op: BinOp, a: i64, b: i64) -> Res<Value> {
    if b == 0 && matches!(op, BinOp::Div | BinOp::FloorDiv | BinOp::Mod) {
        return Err(ExprError::DivisionByZero);
    }
    let result = match op {
        BinOp::Add => a.checked_add(b),
        BinOp::Sub => a.checked_sub(b),
        BinOp::Mul => a.checked_mul(b),
        BinOp::Div => return float_val(a as f64 / b as f64),
        BinOp::FloorDiv => floor_div(a, b),
        BinOp::Mod => Some(floor_mod(a, b)),
        BinOp::Pow => return pow(Num::Int(a), Num::Int(b)),
    };
    result
        .map(int_val)
        .ok_or_else(|| overflow("integer result is too large"))
}

/// Python `//` on integers (floor division); `b != 0`.
fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    if a.wrapping_rem(b) != 0 && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

/// Python `%` on integers (result has the sign of `b`); `b != 0`.
fn floor_mod(a: i64, b: i64) -> i64 {
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) {
        r.wrapping_add(b)
    } else {
        r
    }
}

/// CPython's `float_divmod`; `w != 0`.
fn float_divmod(v: f64, w: f64) -> (f64, f64) {
    let mut m = v % w;
    let mut div = (v - m) / w;
    if m != 0.0 {
        if (w < 0.0) != (m < 0.0) {
            m += w;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(w);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0_f64.copysign(v / w)
    };
    (floordiv, m)
}

fn float_op(op: BinOp, a: f64, b: f64) -> Res<Value> {
    if b == 0.0 && matches!(op, BinOp::Div | BinOp::FloorDiv | BinOp::Mod) {
        return Err(ExprError::DivisionByZero);
    }
    match op {
        BinOp::Add => float_val(a + b),
        BinOp::Sub => float_val(a - b),
        BinOp::Mul => float_val(a * b),
        BinOp::Div => float_val(a / b),
        BinOp::FloorDiv => float_val(float_divmod(a, b).0),
        BinOp::Mod => float_val(float_divmod(a, b).1),
        BinOp::Pow => pow(Num::Float(a), Num::Float(b)),
    }
}

fn pow(x: Num, y: Num) -> Res<Value> {
    let (xf, yf) = (x.to_f64(), y.to_f64());
    if yf.is_nan() || yf.abs() > MAX_POW_EXPONENT as f64 {
        return Err(ExprError::PowerLimit {
            message: format!("the exponent must be at most {MAX_POW_EXPONENT} in absolute value"),
        });
    }
    if xf.is_nan() || xf.abs() > MAX_POW_BASE {
        return Err(ExprError::PowerLimit {
            message: format!("the base must be at most {MAX_POW_BASE} in absolute value"),
        });
    }
    match (x, y) {
        (Num::Int(a), Num::Int(b)) if b >= 0 => u32::try_from(b)
            .ok()
            .and_then(|e| a.checked_pow(e))
            .map(int_val)
            .ok_or_else(|| overflow("integer result is too large")),
        _ => {
            if xf == 0.0 && yf < 0.0 {
                return Err(ExprError::DivisionByZero);
            }
            if xf < 0.0 && yf.fract() != 0.0 {
                return Err(invalid(
                    "a negative number cannot be raised to a fractional power",
                ));
            }
            float_val(xf.powf(yf)).map_err(|_| overflow("float result is too large"))
        }
    }
}

/// Attribute access: key lookup on objects.
pub(crate) fn attr(v: Value, name: &str) -> Res<Value> {
    match v {
        Value::Object(mut m) => {
            m.get_mut(name)
                .map(Value::take)
                .ok_or_else(|| ExprError::MissingKey {
                    key: name.to_owned(),
                })
        }
        other => Err(ExprError::NoAttribute {
            type_name: type_name(&other).to_owned(),
            name: name.to_owned(),
        }),
    }
}

fn index_int(i: &Value, what: &str) -> Res<i64> {
    match i {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) if !n.is_f64() => Ok(n.as_i64().unwrap_or(i64::MAX)),
        other => Err(type_err(format!(
            "{what} indices must be integers, not {}",
            type_name(other)
        ))),
    }
}

fn norm_index(k: i64, len: usize) -> Res<usize> {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let j = if k < 0 { k.saturating_add(n) } else { k };
    if !(0..n).contains(&j) {
        return Err(ExprError::IndexOutOfRange { index: k, len });
    }
    usize::try_from(j).map_err(|_| ExprError::IndexOutOfRange { index: k, len })
}

/// `v[i]` for lists, strings (by character) and objects (by key).
pub(crate) fn index(v: Value, i: &Value, bud: &mut Budget) -> Res<Value> {
    match v {
        Value::Array(a) => {
            let k = index_int(i, "list")?;
            let len = a.len();
            let pos = norm_index(k, len)?;
            a.into_iter()
                .nth(pos)
                .ok_or(ExprError::IndexOutOfRange { index: k, len })
        }
        Value::String(s) => {
            let k = index_int(i, "string")?;
            bud.bytes(s.len())?;
            let len = s.chars().count();
            let pos = norm_index(k, len)?;
            s.chars()
                .nth(pos)
                .map(|c| Value::String(c.to_string()))
                .ok_or(ExprError::IndexOutOfRange { index: k, len })
        }
        Value::Object(mut m) => match i {
            Value::String(k) => m
                .get_mut(k.as_str())
                .map(Value::take)
                .ok_or_else(|| ExprError::MissingKey { key: k.clone() }),
            Value::Array(_) | Value::Object(_) => Err(unhashable(i)),
            other => Err(ExprError::MissingKey {
                key: scalar_repr(other),
            }),
        },
        other => Err(type_err(format!(
            "'{}' object is not subscriptable",
            type_name(&other)
        ))),
    }
}

fn slice_arg(v: Option<Value>) -> Res<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_int(&v).map(Some).ok_or_else(|| {
            type_err(format!(
                "slice indices must be integers or None, not {}",
                type_name(&v)
            ))
        }),
    }
}

/// Python's slice index computation: the selected positions, in order.
fn slice_positions(
    len: usize,
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
) -> Res<Vec<usize>> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(invalid("slice step cannot be zero"));
    }
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let adjust = |v: Option<i64>, default: i64| match v {
        None => default,
        Some(x) if x < 0 => {
            let x = x.saturating_add(n);
            if x < 0 {
                if step < 0 { -1 } else { 0 }
            } else {
                x
            }
        }
        Some(x) if x >= n => {
            if step < 0 {
                n - 1
            } else {
                n
            }
        }
        Some(x) => x,
    };
    let (mut i, stop) = if step > 0 {
        (adjust(start, 0), adjust(stop, n))
    } else {
        (adjust(start, n - 1), adjust(stop, -1))
    };
    let mut out = Vec::new();
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        if let Ok(p) = usize::try_from(i) {
            out.push(p);
        }
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
}

/// `v[start:stop:step]` on lists and strings.
pub(crate) fn slice(
    v: Value,
    start: Option<Value>,
    stop: Option<Value>,
    step: Option<Value>,
    bud: &mut Budget,
) -> Res<Value> {
    let (start, stop, step) = (slice_arg(start)?, slice_arg(stop)?, slice_arg(step)?);
    match v {
        Value::Array(a) => {
            bud.elems(a.len())?;
            let positions = slice_positions(a.len(), start, stop, step)?;
            let mut slots: Vec<Option<Value>> = a.into_iter().map(Some).collect();
            Ok(Value::Array(
                positions
                    .into_iter()
                    .filter_map(|p| slots.get_mut(p).and_then(Option::take))
                    .collect(),
            ))
        }
        Value::String(s) => {
            bud.bytes(s.len())?;
            let chars: Vec<char> = s.chars().collect();
            let positions = slice_positions(chars.len(), start, stop, step)?;
            Ok(Value::String(
                positions.into_iter().filter_map(|p| chars.get(p)).collect(),
            ))
        }
        other => Err(type_err(format!(
            "'{}' object is not subscriptable",
            type_name(&other)
        ))),
    }
}

/// Charges the budget for a repr's walk and stops it beyond the depth limit.
struct Metered<'a>(&'a mut Budget);

impl orc_pycompat::Meter for Metered<'_> {
    type Error = ExprError;
    fn value(&mut self, depth: usize) -> Res<()> {
        check_depth(depth)?;
        self.0.elems(1)
    }
    fn bytes(&mut self, n: usize) -> Res<()> {
        self.0.bytes(n)
    }
}

/// Python `str()` of a value.
pub(crate) fn py_str(v: &Value, bud: &mut Budget) -> Res<String> {
    let mut out = String::new();
    orc_pycompat::write_str_metered(v, &mut out, &mut Metered(bud))?;
    Ok(out)
}

/// Python `repr()` of a value.
pub(crate) fn py_repr(v: &Value, bud: &mut Budget) -> Res<String> {
    let mut out = String::new();
    orc_pycompat::write_repr_metered(v, &mut out, &mut Metered(bud))?;
    Ok(out)
}

/// repr of a scalar, for messages (no budget needed); containers as `[...]`/`{...}`.
pub(crate) fn scalar_repr(v: &Value) -> String {
    match v {
        Value::Array(_) => "[...]".to_owned(),
        Value::Object(_) => "{...}".to_owned(),
        scalar => orc_pycompat::py_repr(scalar),
    }
}
