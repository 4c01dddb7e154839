//! `repr()` and `str()` of JSON values, and CPython's quoting of strings and
//! bytes.

use std::convert::Infallible;
use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::float::float_repr;
use crate::printable::is_printable;

/// Python `repr()` of a value: `None`, `True`, `1`, `1.0`, `'it'`,
/// `['a', 1]`, `{'k': 'v'}` (keys in the map's order).
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    let Ok(()) = write_repr_metered(v, &mut out, &mut Unmetered);
    out
}

/// Python `str()` of a value: a string as it is, anything else as [`py_repr`].
pub fn py_str(v: &Value) -> String {
    let mut out = String::new();
    let Ok(()) = write_str_metered(v, &mut out, &mut Unmetered);
    out
}

/// The work a caller allows a repr: told of every value before it is
/// written and of the string data written, so it can stop a walk that is
/// too deep or too long.
pub trait Meter {
    /// Why the walk stopped.
    type Error;
    /// Before each value; `depth` is 0 for the outermost one.
    fn value(&mut self, depth: usize) -> Result<(), Self::Error>;
    /// The length in bytes of each string and dict key about to be written.
    fn bytes(&mut self, n: usize) -> Result<(), Self::Error>;
}

/// No limit. The walk recurses once per level of nesting, so give it only
/// values of bounded depth (serde_json's parser and [`crate::literal`] stop
/// at 128 levels).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

impl Meter for Unmetered {
    type Error = Infallible;
    fn value(&mut self, _depth: usize) -> Result<(), Infallible> {
        Ok(())
    }
    fn bytes(&mut self, _n: usize) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Appends Python `repr()` of `v`, asking `meter` before each step.
pub fn write_repr_metered<M: Meter>(
    v: &Value,
    out: &mut String,
    meter: &mut M,
) -> Result<(), M::Error> {
    write_repr_at(v, out, meter, 0)
}

/// Appends Python `str()` of `v`, asking `meter` before each step.
pub fn write_str_metered<M: Meter>(
    v: &Value,
    out: &mut String,
    meter: &mut M,
) -> Result<(), M::Error> {
    match v {
        Value::String(s) => {
            meter.bytes(s.len())?;
            out.push_str(s);
            Ok(())
        }
        _ => write_repr_metered(v, out, meter),
    }
}

fn write_repr_at<M: Meter>(
    v: &Value,
    out: &mut String,
    meter: &mut M,
    depth: usize,
) -> Result<(), M::Error> {
    meter.value(depth)?;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => write_number_repr(n, out),
        Value::String(s) => {
            meter.bytes(s.len())?;
            write_str_repr(s, out);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr_at(x, out, meter, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                meter.bytes(k.len())?;
                write_str_repr(k, out);
                out.push_str(": ");
                write_repr_at(x, out, meter, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Appends Python `repr()` of a JSON number: integers as they are, floats by
/// [`float_repr`].
pub fn write_number_repr(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    }
}

/// The quote CPython's repr puts around text: `'`, unless the text holds a
/// `'` and no `"`.
fn choose_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

/// Appends Python `repr()` of a string: quoted as [`choose_quote`] says,
/// `\\`, `\n`, `\r`, `\t` and the quote escaped, and every character that is
/// not [printable](is_printable) as `\xhh`, `\uhhhh` or `\Uhhhhhhhh`.
pub fn write_str_repr(s: &str, out: &mut String) {
    let quote = choose_quote(s.contains('\''), s.contains('"'));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let cp = u32::from(c);
                let _ = if cp < 0x100 {
                    write!(out, "\\x{cp:02x}")
                } else if cp < 0x10000 {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Appends Python `repr()` of bytes: `b'...'`, printable ASCII as it is,
/// everything else as `\xhh`.
pub fn write_bytes_repr(b: &[u8], out: &mut String) {
    let quote = choose_quote(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            byte if char::from(byte) == quote => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            byte => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote);
}
