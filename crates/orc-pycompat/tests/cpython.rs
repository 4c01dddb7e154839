//! orc-pycompat against CPython 3.11's output, recorded by
//! `fixtures/record_cpython.py` (rerun it to refresh the fixtures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use orc_pycompat::literal::parse;
use orc_pycompat::{float_repr, is_printable, is_space, parse_float, parse_int, py_repr, py_str};
use serde_json::Value;

const CASES: &str = include_str!("fixtures/cpython.jsonl");
const PRINTABLE: &str = include_str!("fixtures/printable.json");

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().expect("a string field")
}

/// What orc produces for one recorded case, next to what CPython did, when they differ.
fn mismatch(case: &Value) -> Option<String> {
    match text(case, "kind") {
        "value" => {
            let v = &case["value"];
            let (repr, str) = (py_repr(v), py_str(v));
            (repr != text(case, "repr") || str != text(case, "str"))
                .then(|| format!("value {v}: repr {repr:?}, str {str:?}; CPython {case}"))
        }
        "float" => {
            let x = f64::from_bits(case["bits"].as_u64().expect("bits"));
            let repr = float_repr(x);
            (repr != text(case, "repr")).then(|| format!("float {x:e}: {repr:?}; CPython {case}"))
        }
        "literal" => match parse(text(case, "text")) {
            Ok(v) if v == case["value"] => None,
            got => Some(format!("literal: {got:?}; CPython {case}")),
        },
        "literal_error" => parse(text(case, "text"))
            .ok()
            .map(|v| format!("literal {case} was refused by CPython; orc read {v}")),
        "int_text" => {
            let base = u32::try_from(case["base"].as_u64().expect("base")).expect("a base");
            let got = parse_int(text(case, "text"), base).ok();
            let want = case["value"].as_i64().map(i128::from);
            (got != want).then(|| format!("int_text: {got:?}; CPython {case}"))
        }
        "float_text" => {
            let got = parse_float(text(case, "text")).map(float_repr);
            let want = case["repr"].as_str();
            (got.as_deref() != want).then(|| format!("float_text: {got:?}; CPython {case}"))
        }
        other => Some(format!("unknown kind {other}")),
    }
}

#[test]
fn matches_recorded_cpython_output() {
    let mut failures = Vec::new();
    let mut count = 0;
    for line in CASES.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("a JSON line");
        count += 1;
        failures.extend(mismatch(&case));
    }
    assert!(count > 600, "only {count} cases recorded");
    assert!(
        failures.is_empty(),
        "{} of {count} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every assigned code point is escaped by `repr` exactly when CPython escapes it.
#[test]
fn printable_matches_cpython_for_every_assigned_code_point() {
    let fixture: Value = serde_json::from_str(PRINTABLE).unwrap();
    let mut wrong = Vec::new();
    for run in fixture["runs"].as_array().unwrap() {
        let first = u32::try_from(run[0].as_u64().unwrap()).unwrap();
        let last = u32::try_from(run[1].as_u64().unwrap()).unwrap();
        let printable = run[2].as_bool().unwrap();
        for c in (first..=last).filter_map(char::from_u32) {
            if is_printable(c) != printable {
                wrong.push(format!("U+{:04X}", u32::from(c)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "isprintable differs for {}",
        wrong.join(" ")
    );
}

/// `str.isspace` for every code point.
#[test]
fn isspace_matches_cpython() {
    let fixture: Value = serde_json::from_str(PRINTABLE).unwrap();
    let spaces: Vec<u32> = fixture["isspace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
        .collect();
    let ours: Vec<u32> = (0..=0x10_ffff)
        .filter_map(char::from_u32)
        .filter(|&c| is_space(c))
        .map(u32::from)
        .collect();
    assert_eq!(ours, spaces);
}
