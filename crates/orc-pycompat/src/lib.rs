//! Python's text forms, written once for all of orc.
//!
//! Pipelines come from a Python system, so orc prints values the way
//! CPython does and reads the literals CPython writes:
//!
//! * [`py_repr`] and [`py_str`] of a JSON value (`None`, `True`, `1.0`,
//!   `['a', 1]`, `{'k': 'v'}`), with CPython's quote choice and escaping
//!   of strings ([`write_str_repr`]) and bytes ([`write_bytes_repr`]);
//!   [`write_repr_metered`] walks a value under a caller's work budget.
//! * [`float_repr`]: `repr(float)`, shortest round-trip digits.
//! * [`parse_int`] and [`parse_float`]: `int(text, base)` and `float(text)`;
//!   [`is_space`]: `str.isspace`.
//! * [`literal`]: the lexer of Python string and number literals and the
//!   parser of the literals `ast.literal_eval` accepts that orc supports.
//!
//! `tests/cpython.rs` checks all of this against output recorded from
//! CPython 3.11 by `tests/fixtures/record_cpython.py`.
//!
//! The crate depends on `serde_json` and `thiserror` only, so that the
//! pipeline language and the data tools can both use it without pulling
//! anything else into either.

mod float;
pub mod literal;
mod number;
mod printable;
mod repr;

pub use float::{float_repr, push_exponent};
pub use number::{IntTextError, is_space, parse_float, parse_int};
pub use printable::is_printable;
pub use repr::{
    Meter, Unmetered, py_repr, py_str, write_bytes_repr, write_number_repr, write_repr_metered,
    write_str_metered, write_str_repr,
};
