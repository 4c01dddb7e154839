//! `aggregate` and `filter` over a CSV file: streamed in bounded memory, with
//! the same result as the in-memory path.

use crate::alloc::measure;
use crate::csvgen::{Shape, write_csv};
use orc_data::{Limits, data_processing, data_processing_with};
use serde_json::{Map, Value, json};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// The result or the error message, as text, so comparisons are byte for byte.
fn outcome(r: Result<Value, orc_data::ToolFailure>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("err {e}"),
    }
}

fn generate(dir: &Path, file: &str, bytes: u64, shape: Shape) -> PathBuf {
    let path = dir.join(file);
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    write_csv(&mut out, bytes, shape, 7).unwrap();
    drop(out);
    path
}

/// `params` with `data` set to `data`.
fn with_data(data: Value, extra: &Value) -> Map<String, Value> {
    let mut p = params(extra.clone());
    p.insert("data".into(), data);
    p
}

fn aggregate_specs() -> Vec<Value> {
    vec![
        json!({"group_by": "region", "aggregations": {
            "n": "count", "c": "count:amount", "s": "sum:amount", "m": "mean:amount",
            "lo": "min:amount", "hi": "max:amount", "f": "first:note", "l": "last:note",
            "d": "count_distinct:note", "bs": "sum:big", "bm": "mean:big",
            "fl": "first:flag", "ll": "last:flag", "nlo": "min:note", "nhi": "max:note",
            "codes": "count_distinct:code",
        }}),
        json!({"group_by": ["region", "code"], "aggregations": {
            "n": "count", "s": {"op": "sum", "field": "amount"}, "d": "count_distinct:region",
        }}),
        json!({"group_by": "code"}),
        json!({"group_by": ["flag", "note"], "aggregations": {"hi": "max:id", "s": "sum:id"}}),
        json!({"aggregations": {
            "n": "count", "s": "sum:amount", "m": "avg:amount", "lo": "min:amount",
            "hi": "max:amount", "f": "first:region", "l": "last:region", "d": "count_distinct:region",
        }}),
        // Failures: the same message either way.
        json!({"group_by": "region", "aggregations": {"n": "count", "s": "sum:mixed"}}),
        json!({"group_by": "code", "aggregations": {"m": "min:mixed", "r": "mean:region"}}),
        json!({"aggregations": {"r": "max:region"}}),
        json!({"group_by": "zone", "aggregations": {"n": "count"}}),
        json!({"group_by": "region", "aggregations": {"x": "max:nope"}}),
    ]
}

#[test]
fn streamed_aggregate_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        messy: true,
        codes: 40,
    };
    let csv = generate(dir.path(), "messy.csv", 3_000_000, shape);
    let text = std::fs::read_to_string(&csv).unwrap();
    // Sniffed (no extension): the in-memory path sniffs the same text.
    let sniffed = dir.path().join("messy");
    std::fs::copy(&csv, &sniffed).unwrap();
    let limits = Limits {
        chunk_bytes: 64 << 10,
    };
    let mut failures = 0;
    for spec in aggregate_specs() {
        let in_memory = outcome(data_processing(
            "aggregate",
            &with_data(json!(text), &json!({"format": "csv"}).merge(&spec)),
        ));
        let in_memory_sniffed =
            outcome(data_processing("aggregate", &with_data(json!(text), &spec)));
        assert_eq!(in_memory, in_memory_sniffed, "{spec}");
        for path in [&csv, &sniffed] {
            let streamed = outcome(data_processing_with(
                "aggregate",
                &with_data(json!(path.to_str().unwrap()), &spec),
                &limits,
            ));
            assert_eq!(streamed, in_memory, "{spec} on {}", path.display());
        }
        failures += usize::from(in_memory.starts_with("err "));
    }
    assert_eq!(failures, 5, "the failing specs still fail");

    // The file really was streamed: a fraction of the in-memory peak.
    let spec = aggregate_specs().swap_remove(0);
    let (streamed, streamed_peak) = measure(|| {
        data_processing_with(
            "aggregate",
            &with_data(json!(csv.to_str().unwrap()), &spec),
            &limits,
        )
    });
    let (in_memory, in_memory_peak) =
        measure(|| data_processing("aggregate", &with_data(json!(text), &spec)));
    assert_eq!(outcome(streamed), outcome(in_memory));
    assert!(
        streamed_peak * 10 < in_memory_peak,
        "streamed {streamed_peak} bytes, in memory {in_memory_peak} bytes"
    );
}

#[test]
fn streamed_filter_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        messy: true,
        codes: 40,
    };
    let csv = generate(dir.path(), "messy.csv", 1_000_000, shape);
    let text = std::fs::read_to_string(&csv).unwrap();
    let limits = Limits {
        chunk_bytes: 16 << 10,
    };
    for criteria in [
        json!({"amount": {"gt": 900}, "region": {"in": ["west", 10, true]}}),
        json!({"note": {"contains": ","}}),
        json!({"note": {"matches": "^two"}, "mixed": {"exists": true}}),
        json!({"nope": {"exists": false}, "code": 3}),
        json!({"zone": 1}),
    ] {
        let spec = json!({ "criteria": criteria });
        let in_memory = outcome(data_processing("filter", &with_data(json!(text), &spec)));
        let streamed = outcome(data_processing_with(
            "filter",
            &with_data(json!(csv.to_str().unwrap()), &spec),
            &limits,
        ));
        assert_eq!(streamed, in_memory, "{criteria}");
    }
}

#[test]
#[allow(clippy::print_stderr)] // the figures, shown with `--nocapture`
fn streamed_aggregate_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        messy: false,
        codes: 50,
    };
    let target = 24_000_000;
    let csv = generate(dir.path(), "big.csv", target, shape);
    let chunk_bytes = 256 << 10;
    let limits = Limits { chunk_bytes };
    let spec = json!({"group_by": ["region", "code"], "aggregations": {
        "n": "count", "s": "sum:amount", "m": "mean:amount", "lo": "min:amount",
        "hi": "max:amount", "f": "first:note", "l": "last:note", "d": "count_distinct:note",
        "bs": "sum:big",
    }});
    let (streamed, streamed_peak) = measure(|| {
        data_processing_with(
            "aggregate",
            &with_data(json!(csv.to_str().unwrap()), &spec),
            &limits,
        )
        .unwrap()
    });
    assert_eq!(streamed["groups"], json!(300));
    let rows: u64 = streamed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["n"].as_u64().unwrap())
        .sum();
    assert!(rows > 300_000, "{rows} rows");
    let bound = 8 * chunk_bytes + (512 << 10);
    eprintln!(
        "streamed aggregate of {target} bytes: peak heap {streamed_peak} bytes (bound {bound})"
    );
    assert!(streamed_peak < bound, "peak {streamed_peak} bytes");

    let text = std::fs::read_to_string(&csv).unwrap();
    let (in_memory, in_memory_peak) =
        measure(|| data_processing("aggregate", &with_data(json!(text), &spec)).unwrap());
    eprintln!("in-memory aggregate of the same text: peak heap {in_memory_peak} bytes");
    assert_eq!(in_memory.to_string(), streamed.to_string());
    assert!(
        in_memory_peak > 10 * bound,
        "in memory {in_memory_peak} bytes"
    );
}

/// Merges the members of `other` into a copy of `self`.
trait Merge {
    fn merge(&self, other: &Value) -> Value;
}

impl Merge for Value {
    fn merge(&self, other: &Value) -> Value {
        let mut out = self.clone();
        if let (Some(a), Some(b)) = (out.as_object_mut(), other.as_object()) {
            a.extend(b.clone());
        }
        out
    }
}
