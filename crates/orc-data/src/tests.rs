//! Tests through the public API.
#![allow(clippy::unwrap_used)]

use crate::{
    DATA_PROCESSING_ACTIONS, ToolFailure, VALIDATION_ACTIONS, data_processing, validation,
};
use serde_json::{Map, Value, json};

fn p(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn dp(action: &str, v: Value) -> Result<Value, ToolFailure> {
    data_processing(action, &p(v))
}

fn dp_err(action: &str, v: Value) -> String {
    dp(action, v).unwrap_err().to_string()
}

fn val(action: &str, v: Value) -> Result<Value, ToolFailure> {
    validation(action, &p(v))
}

fn sales() -> Value {
    json!([
        {"region": "west", "amount": 10, "item": "a"},
        {"region": "east", "amount": 5, "item": "b"},
        {"region": "west", "amount": 7.5, "item": "c"},
        {"region": "north", "amount": null, "item": "d"},
    ])
}

fn records(csv: &str) -> Value {
    dp("convert", json!({"data": csv, "output_format": "json"})).unwrap()["records"].clone()
}

// ---------- dispatch ----------

#[test]
fn unknown_actions_are_failures() {
    assert_eq!(
        dp_err("pivotx", json!({})),
        "unknown action `pivotx` for data-processing (expected one of: convert, filter, aggregate, transform, profile, pivot, clean, merge)"
    );
    assert_eq!(
        val("check", json!({})).unwrap_err().to_string(),
        "unknown action `check` for validation (expected one of: validate, infer_schema, quality_check)"
    );
    assert_eq!(DATA_PROCESSING_ACTIONS.len(), 8);
    assert_eq!(
        VALIDATION_ACTIONS,
        &["validate", "infer_schema", "quality_check"]
    );
}

#[test]
fn missing_data_is_named() {
    for action in [
        "convert",
        "filter",
        "aggregate",
        "transform",
        "profile",
        "clean",
    ] {
        let params = json!({"output_format": "csv", "criteria": {}, "aggregations": {"n": "count"}, "operations": []});
        assert_eq!(
            dp_err(action, params),
            "missing parameter `data`",
            "{action}"
        );
    }
    assert_eq!(dp_err("merge", json!({})), "missing parameter `datasets`");
    assert_eq!(
        val("infer_schema", json!({"data": null}))
            .unwrap_err()
            .to_string(),
        "missing parameter `data`"
    );
    assert_eq!(
        val("quality_check", json!({})).unwrap_err().to_string(),
        "missing parameter `data`"
    );
}

// ---------- input loading ----------

#[test]
fn csv_is_sniffed_and_typed() {
    assert_eq!(
        records("name;age;zip;active;score\nAnn; 31;007;TRUE;1.5e2\nBob;;02139;false;-3\n"),
        json!([
            {"name": "Ann", "age": 31, "zip": "007", "active": true, "score": 150.0},
            {"name": "Bob", "age": null, "zip": "02139", "active": false, "score": -3},
        ])
    );
    assert_eq!(records("a\tb\n1\t2"), json!([{"a": 1, "b": 2}]));
    assert_eq!(records("a|b\nx|0.5"), json!([{"a": "x", "b": 0.5}]));
    assert_eq!(
        records("a,b\n\"x, y\",2\n,\n"),
        json!([{"a": "x, y", "b": 2}, {"a": null, "b": null}])
    );
    assert_eq!(
        records("name\nann\nbob"),
        json!([{"name": "ann"}, {"name": "bob"}])
    );
    assert_eq!(
        records("\u{feff}a,a,\n1,2,3"),
        json!([{"a": 1, "a_2": 2, "column_3": 3}])
    );
    assert_eq!(
        records("{\"a\":1}\n{\"a\":2}\n"),
        json!([{"a": 1}, {"a": 2}])
    );
}

#[test]
fn bad_csv_rows_fail() {
    let e = dp_err("profile", json!({"data": "a,b,c\n1,2\n"}));
    assert!(
        e.starts_with("cannot parse `data` as JSON or CSV: invalid JSON ("),
        "{e}"
    );
    assert!(e.contains("invalid CSV"), "{e}");
}

#[test]
fn explicit_format_wins() {
    // Without `format`, "42" is JSON; with `format: csv` it is a header.
    let r = dp(
        "convert",
        json!({"data": "42\n7", "format": "csv", "output_format": "json"}),
    )
    .unwrap();
    assert_eq!(r["records"], json!([{"42": 7}]));
    let e = dp_err(
        "profile",
        json!({"data": "a,b\n1,2", "input_format": "json"}),
    );
    assert!(e.starts_with("cannot parse `data` as JSON: "), "{e}");
    assert_eq!(
        dp_err("profile", json!({"data": [], "format": "xml"})),
        "invalid parameter `format`: unsupported format `xml` (expected one of: json, csv, jsonl, auto)"
    );
}

#[test]
fn python_literal_input() {
    let r = dp(
        "filter",
        json!({"data": "[{'a': 1, 'b': True}, {'a': 2, 'b': None}, {'a': (3,), 'b': False}]", "criteria": {"b": true}}),
    )
    .unwrap();
    assert_eq!(r, json!({"data": [{"a": 1, "b": true}], "count": 1}));
}

#[test]
fn file_path_input() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("sales.csv");
    std::fs::write(&csv_path, "region,amount\nwest,10\neast,5\nwest,2\n").unwrap();
    let r = dp(
        "aggregate",
        json!({"data": csv_path.to_str().unwrap(), "group_by": "region", "aggregations": {"total": "sum:amount"}}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [{"region": "west", "total": 12}, {"region": "east", "total": 5}], "groups": 2})
    );

    let json_path = dir.path().join("rows.json");
    std::fs::write(&json_path, r#"[{"x": 1}, {"x": 2}]"#).unwrap();
    let r = dp(
        "filter",
        json!({"input_data": json_path.to_str().unwrap(), "criteria": {"x": 2}}),
    )
    .unwrap();
    assert_eq!(r, json!({"data": [{"x": 2}], "count": 1}));

    // No extension: sniffed (a Python literal here).
    let plain = dir.path().join("rows");
    std::fs::write(&plain, "[{'x': None}]").unwrap();
    let r = dp("profile", json!({"data": plain.to_str().unwrap()})).unwrap();
    assert_eq!(r["column_profiles"]["x"]["nulls"], json!(1));

    // `format` overrides the extension.
    let txt = dir.path().join("one.json");
    std::fs::write(&txt, "word\nalpha\n").unwrap();
    let r = dp(
        "convert",
        json!({"data": txt.to_str().unwrap(), "format": "csv", "output_format": "json"}),
    )
    .unwrap();
    assert_eq!(r["records"], json!([{"word": "alpha"}]));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{nope").unwrap();
    let e = dp_err("profile", json!({"data": bad.to_str().unwrap()}));
    assert!(e.starts_with("cannot parse `data` as JSON: file `"), "{e}");

    let binary = dir.path().join("bin.csv");
    std::fs::write(&binary, [0xff_u8, 0xfe, 0x00]).unwrap();
    let e = dp_err("profile", json!({"data": binary.to_str().unwrap()}));
    assert!(
        e.starts_with("cannot parse `data` as text: file `") && e.ends_with("is not UTF-8"),
        "{e}"
    );
}

#[test]
fn unparseable_and_non_table_data() {
    assert_eq!(
        dp_err("profile", json!({"data": "hello"})),
        "cannot parse `data` as JSON or CSV: invalid JSON (expected value at line 1 column 1); not CSV either (one line with no delimiter)"
    );
    let e = dp_err("profile", json!({"data": "[{'a': 1"}));
    assert!(
        e.starts_with("cannot parse `data` as JSON or CSV: invalid JSON ("),
        "{e}"
    );
    assert!(
        e.contains("invalid Python literal (missing `}` at the end)"),
        "{e}"
    );
    assert_eq!(
        dp_err("profile", json!({"data": "   "})),
        "cannot parse `data` as JSON or CSV: the text is empty"
    );
    assert_eq!(
        dp_err("profile", json!({"data": 42})),
        "invalid parameter `data`: expected a table (a list of records), got a number (42)"
    );
    assert_eq!(
        dp_err("profile", json!({"data": [{"a": 1}, 2]})),
        "invalid parameter `data`: mixes records with other values: element 1 is a number (2)"
    );
    let deep = "[".repeat(50_000);
    let e = dp_err("profile", json!({ "data": deep }));
    assert!(e.contains("nesting deeper than 128 levels"), "{e}");
}

#[test]
fn dataset_wrappers_chain_steps() {
    let filtered = dp(
        "filter",
        json!({"data": sales(), "criteria": {"region": "west"}}),
    )
    .unwrap();
    let r = dp(
        "aggregate",
        json!({"data": filtered, "aggregations": {"n": "count"}}),
    )
    .unwrap();
    assert_eq!(r, json!({"data": [{"n": 2}], "groups": 1}));
    // An engine envelope holding a `convert` result (CSV text).
    let converted = dp("convert", json!({"data": sales(), "output_format": "csv"})).unwrap();
    let envelope = json!({"result": converted, "success": true, "error": null});
    let r = dp(
        "filter",
        json!({"data": envelope, "criteria": {"amount": 5}}),
    )
    .unwrap();
    assert_eq!(
        r["data"],
        json!([{"region": "east", "amount": 5, "item": "b"}])
    );
    // A single record; a list of scalars.
    let r = dp("filter", json!({"data": {"a": 1}, "criteria": {"a": 1}})).unwrap();
    assert_eq!(r["count"], json!(1));
    let r = dp(
        "aggregate",
        json!({"data": [1, 2, 3], "aggregations": {"s": "sum:value"}}),
    )
    .unwrap();
    assert_eq!(r["data"], json!([{"s": 6}]));
}

// ---------- convert ----------

#[test]
fn convert_to_csv_and_json() {
    let r = dp("convert", json!({"data": sales(), "output_format": "csv"})).unwrap();
    assert_eq!(
        r["data"],
        json!("region,amount,item\nwest,10,a\neast,5,b\nwest,7.5,c\nnorth,,d\n")
    );
    assert_eq!(r["format"], json!("csv"));
    assert_eq!(r["rows"], json!(4));
    assert_eq!(r["columns"], json!(["region", "amount", "item"]));
    assert_eq!(r["records"], sales());

    let r = dp(
        "convert",
        json!({"data": "a,b\n1,x\n", "output_format": "JSON"}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({
            "data": "[\n  {\n    \"a\": 1,\n    \"b\": \"x\"\n  }\n]",
            "format": "json", "rows": 1, "columns": ["a", "b"], "records": [{"a": 1, "b": "x"}],
        })
    );
    let r = dp(
        "convert",
        json!({"data": [{"a": [1, 2], "b": "q\"x"}], "output_format": "csv"}),
    )
    .unwrap();
    assert_eq!(r["data"], json!("a,b\n\"[1,2]\",\"q\"\"x\"\n"));
}

#[test]
fn convert_failures() {
    assert_eq!(
        dp_err("convert", json!({"data": sales()})),
        "missing parameter `output_format`"
    );
    assert_eq!(
        dp_err("convert", json!({"data": sales(), "output_format": "xml"})),
        "invalid parameter `output_format`: unsupported format `xml` (expected json or csv)"
    );
    assert_eq!(
        dp_err("convert", json!({"data": sales(), "output_format": 3})),
        "invalid parameter `output_format`: expected a string, got a number (3)"
    );
}

// ---------- filter ----------

#[test]
fn filter_equality_and_operators() {
    let f = |criteria: Value| dp("filter", json!({"data": sales(), "criteria": criteria})).unwrap();
    let items = |r: Value| -> Vec<String> {
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["item"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(f(json!({"region": "west"}))["count"], json!(2));
    assert_eq!(items(f(json!({"region": "west"}))), ["a", "c"]);
    assert_eq!(items(f(json!({"amount": "10"}))), ["a"]);
    assert_eq!(items(f(json!({"amount": {"gte": 7.5}}))), ["a", "c"]);
    assert_eq!(items(f(json!({"amount": {"gt": 5, "lt": 10}}))), ["c"]);
    assert_eq!(items(f(json!({"amount": {"$lte": "5"}}))), ["b"]);
    assert_eq!(items(f(json!({"region": {"ne": "west"}}))), ["b", "d"]);
    assert_eq!(
        items(f(json!({"region": {"in": ["east", "north"]}}))),
        ["b", "d"]
    );
    assert_eq!(
        items(f(json!({"region": {"not_in": ["east", "north"]}}))),
        ["a", "c"]
    );
    assert_eq!(
        items(f(json!({"region": {"contains": "st"}}))),
        ["a", "b", "c"]
    );
    assert_eq!(
        items(f(json!({"region": {"matches": "^(e|n)"}}))),
        ["b", "d"]
    );
    assert_eq!(items(f(json!({"amount": null}))), ["d"]);
    assert_eq!(
        items(f(json!({"amount": {"exists": true}, "region": "west"}))),
        ["a", "c"]
    );
    assert_eq!(items(f(json!({}))), ["a", "b", "c", "d"]);
    let r = dp(
        "filter",
        json!({"data": sales(), "operation": {"criteria": {"item": "b"}}}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [{"region": "east", "amount": 5, "item": "b"}], "count": 1})
    );
    let r = dp(
        "filter",
        json!({"data": sales(), "criteria": "{'region': 'east'}"}),
    )
    .unwrap();
    assert_eq!(r["count"], json!(1));
}

#[test]
fn filter_failures() {
    assert_eq!(
        dp_err("filter", json!({"data": sales()})),
        "missing parameter `criteria`"
    );
    assert_eq!(
        dp_err(
            "filter",
            json!({"data": sales(), "operation": {"type": "filter"}})
        ),
        "missing parameter `operation.criteria`"
    );
    assert_eq!(
        dp_err(
            "filter",
            json!({"data": sales(), "criteria": {"regoin": "west"}})
        ),
        "invalid parameter `criteria`: unknown field `regoin` (columns: region, amount, item)"
    );
    assert_eq!(
        dp_err(
            "filter",
            json!({"data": sales(), "criteria": {"region": {"in": "west"}}})
        ),
        "invalid parameter `criteria.region.in`: expected a list, got a string (\"west\")"
    );
    assert!(
        dp_err(
            "filter",
            json!({"data": sales(), "criteria": {"region": {"matches": "("}}})
        )
        .starts_with("invalid parameter `criteria.region.matches`: bad regular expression:")
    );
    assert_eq!(
        dp_err(
            "filter",
            json!({"data": sales(), "criteria": {"amount": {"gt": [1]}}})
        ),
        "invalid parameter `criteria.amount.gt`: cannot compare with a list ([1])"
    );
    assert_eq!(
        dp_err("filter", json!({"data": sales(), "criteria": 5})),
        "invalid parameter `criteria`: expected a map, got a number (5)"
    );
}

// ---------- aggregate ----------

#[test]
fn aggregate_groups() {
    let r = dp(
        "aggregate",
        json!({
            "data": sales(),
            "group_by": "region",
            "aggregations": {
                "total": "sum:amount", "n": "count", "avg": {"op": "mean", "field": "amount"},
                "mx": "max:amount", "mn": "min:item", "first": "first:item", "last": "last:amount",
                "d": "count_distinct:item", "with_amount": "count:amount",
            },
        }),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [
            {"region": "west", "total": 17.5, "n": 2, "avg": 8.75, "mx": 10, "mn": "a", "first": "a", "last": 7.5, "d": 2, "with_amount": 2},
            {"region": "east", "total": 5, "n": 1, "avg": 5.0, "mx": 5, "mn": "b", "first": "b", "last": 5, "d": 1, "with_amount": 1},
            {"region": "north", "total": 0, "n": 1, "avg": null, "mx": null, "mn": "d", "first": "d", "last": null, "d": 1, "with_amount": 0},
        ], "groups": 3})
    );
    let r = dp(
        "aggregate",
        json!({"data": sales(), "aggregations": {"n": "count", "s": "avg:amount"}}),
    )
    .unwrap();
    assert_eq!(r, json!({"data": [{"n": 4, "s": 7.5}], "groups": 1}));
    let r = dp(
        "aggregate",
        json!({"data": sales(), "group_by": ["region", "item"]}),
    )
    .unwrap();
    assert_eq!(r["groups"], json!(4));
    assert_eq!(
        r["data"][0],
        json!({"region": "west", "item": "a", "count": 1})
    );
    let r = dp(
        "aggregate",
        json!({"data": [], "aggregations": {"n": "count", "s": "sum:x"}}),
    )
    .unwrap();
    assert_eq!(r, json!({"data": [{"n": 0, "s": 0}], "groups": 1}));
}

#[test]
fn aggregate_failures() {
    assert_eq!(
        dp_err("aggregate", json!({"data": sales()})),
        "missing parameter `aggregations`"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "aggregations": {"t": "median:amount"}})
        ),
        "invalid parameter `aggregations.t`: unknown operation `median` (expected one of: count, sum, mean, avg, min, max, first, last, count_distinct)"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "aggregations": {"t": "sum:item"}})
        ),
        "invalid parameter `aggregations.t`: `t` needs numbers, but field `item` has a string (\"a\")"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "aggregations": {"t": "sum"}})
        ),
        "invalid parameter `aggregations.t`: `sum` needs a field, as in \"sum:amount\""
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "group_by": "zone", "aggregations": {"n": "count"}})
        ),
        "invalid parameter `group_by`: unknown field `zone` (columns: region, amount, item)"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "group_by": 3, "aggregations": {"n": "count"}})
        ),
        "invalid parameter `group_by`: expected a field name or a list of them, got a number (3)"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": sales(), "aggregations": {"m": "max:x"}})
        ),
        "invalid parameter `aggregations.m`: unknown field `x` (columns: region, amount, item)"
    );
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": [{"x": 1}, {"x": "b"}], "aggregations": {"m": "max:x"}})
        ),
        "invalid parameter `aggregations.m`: cannot compare values of field `x`: a number (1) and a string (\"b\")"
    );
}

// ---------- streamed files ----------

/// What `aggregate` answers for `params` when the input is loaded whole.
fn aggregate_in_memory(params: &Map<String, Value>) -> Result<Value, ToolFailure> {
    let rows = crate::aggregate::aggregate_step(&crate::input::load_table(params)?, params, "")?;
    let groups = rows.len();
    Ok(json!({"data": crate::value::table_value(rows), "groups": groups}))
}

fn outcome(r: Result<Value, ToolFailure>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("err {e}"),
    }
}

/// Aggregates `file` (streamed when it is CSV) and the same loaded whole.
fn both_ways(file: &std::path::Path, spec: &Value) -> (String, String) {
    let mut params = p(spec.clone());
    params.insert("data".into(), json!(file.to_str().unwrap()));
    let limits = crate::Limits { chunk_bytes: 16 };
    (
        outcome(crate::data_processing_with("aggregate", &params, &limits)),
        outcome(aggregate_in_memory(&params)),
    )
}

#[test]
fn streamed_files_match_the_in_memory_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({"group_by": "region", "aggregations": {
        "n": "count", "total": "sum:amount", "avg": "mean:amount", "d": "count_distinct:amount",
    }});
    let files = [
        ("plain.csv", "region,amount\nwest,10\neast,5\nwest,2.5\n"),
        (
            "bom.csv",
            "\u{feff}\u{feff}region;amount\r\nwest;1\r\n;\r\n\"we;st\";-0.0\r\nwest;3\r\n",
        ),
        (
            "tabs.tsv",
            "region\tamount\n  west \t 7\n\n10\t1\n10.0\t2\nTRUE\t\n",
        ),
        ("dup.csv", "region,region,amount\nw,x,1\nw,y,2\n"),
        ("header_only.csv", "region,amount\n"),
        ("empty.csv", ""),
        ("no_header.csv", "\n\n"),
    ];
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (streamed, in_memory) = both_ways(&path, &spec);
        assert_eq!(streamed, in_memory, "{name}");
    }
    // Unknown fields are checked against the header once a record is read.
    let path = dir.path().join("plain.csv");
    let (streamed, in_memory) = both_ways(&path, &json!({"group_by": "zone"}));
    assert_eq!(streamed, in_memory);
    assert_eq!(
        streamed,
        "err invalid parameter `group_by`: unknown field `zone` (columns: region, amount)"
    );
    let (streamed, in_memory) = both_ways(&path, &json!({"aggregations": {"m": "max:x"}}));
    assert_eq!(streamed, in_memory);
    // A table without rows has no fields to check.
    let header_only = dir.path().join("header_only.csv");
    let (streamed, in_memory) = both_ways(
        &header_only,
        &json!({"aggregations": {"n": "count", "s": "sum:zone"}}),
    );
    assert_eq!(streamed, in_memory);
    assert_eq!(streamed, r#"ok {"data":[{"n":0,"s":0}],"groups":1}"#);
}

#[test]
fn sniffed_files_that_may_not_be_csv_are_loaded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    let spec = json!({"group_by": "region", "aggregations": {"t": "sum:amount"}});
    for text in [
        "region,amount\nw,1\ne,2\nw,3\n",
        "region\tamount\nw\t1\n",
        "region\nw\ne\n",
        "42",
        "-\n5",
        "+\n-\n0x1F\n",
        "42 \\\n\\\n",
        "True\n",
        "region\n",
        "",
        "  \n",
        "[{'region': 'w', 'amount': 1}]",
        "{\"data\": [{\"region\": \"w\", \"amount\": 1}]}",
        "{\"region\": \"w\", \"amount\": 1}\n{\"region\": \"e\", \"amount\": 2}\n",
        "r'region'\n",
        "\\\n[{'region': 'w', 'amount': 1}]",
    ] {
        std::fs::write(&path, text).unwrap();
        let (streamed, in_memory) = both_ways(&path, &spec);
        assert_eq!(streamed, in_memory, "{text:?}");
    }
}

#[test]
fn streamed_csv_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let spec = |data: &str| json!({"data": data, "group_by": "a", "aggregations": {"s": "sum:b"}});
    let bad = write("bad.csv", b"a,b,c\n1,2,3\n\"x\ny\",5,6\n7,8\n");
    assert_eq!(
        dp_err("aggregate", spec(&bad)),
        format!(
            "cannot parse `data` as CSV: file `{bad}` line 5: found a record with 2 fields \
             where the header has 3 (a cell holding the delimiter `,` or a line break must be quoted)"
        )
    );
    let tabs = write("bad.tsv", b"a\tb\n1\t2\n3\n");
    assert!(
        dp_err("aggregate", spec(&tabs)).contains("line 3: found a record with 1 fields where the header has 2 (a cell holding the delimiter `\\t`"),
    );
    let latin1 = write("latin1.csv", b"a,b\n1,2\n\xe9t\xe9,3\n");
    assert_eq!(
        dp_err("aggregate", spec(&latin1)),
        format!("cannot parse `data` as text: file `{latin1}` line 3 is not UTF-8 (field 1)")
    );
    let empty = write("empty.csv", b"");
    assert_eq!(
        dp_err("aggregate", spec(&empty)),
        format!("cannot parse `data` as CSV: file `{empty}`: no header row")
    );
    // A malformed record after the first is found once the whole file is
    // read; a bad parameter or field before reading anything.
    assert_eq!(
        dp_err(
            "aggregate",
            json!({"data": bad, "aggregations": {"s": "median:b"}})
        ),
        "invalid parameter `aggregations.s`: unknown operation `median` (expected one of: count, sum, mean, avg, min, max, first, last, count_distinct)"
    );
    assert_eq!(
        dp_err("filter", json!({"data": bad, "criteria": {"zone": 1}})),
        "invalid parameter `criteria`: unknown field `zone` (columns: a, b, c)"
    );
    assert!(
        dp_err("filter", json!({"data": bad, "criteria": {"a": 1}}))
            .contains("line 5: found a record with 2 fields"),
    );
}

#[test]
fn streamed_filter_keeps_matching_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sales.csv");
    std::fs::write(&path, "region,amount\nwest,10\neast,5\nwest,\n").unwrap();
    let r = dp(
        "filter",
        json!({"data": path.to_str().unwrap(), "criteria": {"region": "west", "zone": {"exists": false}}}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [{"region": "west", "amount": 10}, {"region": "west", "amount": null}], "count": 2})
    );
}

// ---------- transform ----------

#[test]
fn transform_pipeline() {
    let r = dp(
        "transform",
        json!({"data": sales(), "operations": [
            {"type": "filter", "criteria": {"amount": {"ne": null}}},
            {"type": "compute", "field": "double", "expression": "amount * 2"},
            {"type": "sort", "by": "amount", "descending": true},
            {"type": "select", "fields": ["item", "double"]},
            {"type": "limit", "n": 2},
            {"type": "rename", "mapping": {"double": "twice"}},
        ]}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [{"item": "a", "twice": 20}, {"item": "c", "twice": 15.0}], "count": 2, "operations": 6})
    );
    let r = dp(
        "transform",
        json!({"data": sales(), "operations": [
            {"type": "aggregate", "group_by": "region", "aggregations": {"total": "sum:amount"}},
            {"type": "sort", "by": ["total"]},
            {"type": "compute", "field": "tag", "value": "x"},
            {"type": "drop", "fields": "region"},
        ]}),
    )
    .unwrap();
    assert_eq!(
        r["data"],
        json!([{"total": 0, "tag": "x"}, {"total": 5, "tag": "x"}, {"total": 17.5, "tag": "x"}])
    );
    // Nulls sort last in both directions.
    let r = dp(
        "transform",
        json!({"data": sales(), "operations": [{"type": "sort", "by": "amount", "ascending": false}, {"type": "select", "fields": "item"}]}),
    )
    .unwrap();
    assert_eq!(
        r["data"],
        json!([{"item": "a"}, {"item": "c"}, {"item": "b"}, {"item": "d"}])
    );
}

#[test]
fn transform_takes_py_orcs_operation_form() {
    // As py-orc's `examples/data_processing.yaml` writes it, on JSON text with `records`.
    let data = r#"{"records": [
        {"id": 1, "active": true, "value": 10.5},
        {"id": 2, "active": false, "value": 4},
        {"id": 3, "active": true, "value": 2}
    ]}"#;
    let r = dp(
        "transform",
        json!({"data": data, "operation": {"transformations": [
            {"type": "filter", "field": "active", "value": true},
        ]}}),
    )
    .unwrap();
    assert_eq!(r["count"], 2);
    assert_eq!(r["data"][1]["id"], 3);
    let r = dp(
        "transform",
        json!({"data": data, "operation": {"transformations": [
            {"type": "filter", "field": "active", "value": true},
            {"type": "aggregate", "operation": "sum", "field": "value"},
        ]}}),
    )
    .unwrap();
    assert_eq!(r["data"], json!([{"value_sum": 12.5}]));
    assert_eq!(
        dp_err(
            "transform",
            json!({"data": data, "operation": {"steps": []}})
        ),
        "missing parameter `operation.transformations`"
    );
    assert_eq!(
        dp_err(
            "transform",
            json!({"data": data, "operation": {"operations": [{"type": "aggregate", "operation": "median", "field": "value"}]}})
        ),
        dp_err(
            "transform",
            json!({"data": data, "operations": [{"type": "aggregate", "aggregations": {"value_median": "median:value"}}]})
        )
        .replace("operations[0].aggregations.value_median", "operation.operations[0].aggregations.value_median")
    );
}

#[test]
fn transform_failures() {
    let t = |ops: Value| dp_err("transform", json!({"data": sales(), "operations": ops}));
    assert_eq!(
        dp_err("transform", json!({"data": sales()})),
        "missing parameter `operations`"
    );
    assert_eq!(
        t(json!({"type": "filter"})),
        "invalid parameter `operations`: expected a list, got a map ({\"type\":\"filter\"})"
    );
    assert_eq!(
        t(json!([{"criteria": {}}])),
        "missing parameter `operations[0].type`"
    );
    assert_eq!(
        t(json!([{"type": "limit", "n": 1}, {"type": "pivot"}])),
        "invalid parameter `operations[1].type`: unknown step type `pivot` (expected one of: filter, aggregate, select, drop, rename, sort, limit, compute, deduplicate, cast, fill_missing, calculate)"
    );
    assert_eq!(
        t(json!([{"type": "filter"}])),
        "missing parameter `operations[0].criteria`"
    );
    assert_eq!(
        t(json!([{"type": "sort"}])),
        "missing parameter `operations[0].by`"
    );
    assert_eq!(
        t(json!([{"type": "limit", "n": -1}])),
        "invalid parameter `operations[0].n`: expected a non-negative whole number, got a number (-1)"
    );
    assert_eq!(
        t(json!([{"type": "select", "fields": ["item", "nope"]}])),
        "invalid parameter `operations[0].fields`: unknown field `nope` (columns: region, amount, item)"
    );
    assert_eq!(
        t(json!([{"type": "rename", "mapping": {"item": "region"}}])),
        "invalid parameter `operations[0].mapping`: renaming would create a second field `region`"
    );
    assert_eq!(
        t(json!([{"type": "compute", "field": "x"}])),
        "missing parameter `operations[0].expression`"
    );
    assert_eq!(
        t(json!([{"type": "compute", "field": "x", "expression": "amount *"}])),
        "invalid parameter `operations[0].expression`: the expression ended early"
    );
    assert_eq!(
        t(json!([{"type": "compute", "field": "x", "expression": "item + 1"}])),
        "invalid parameter `operations[0].expression`: row 0: field `item` is not a number: a string (\"a\")"
    );
    assert_eq!(
        t(json!([{"type": "aggregate", "aggregations": {"n": "nope:amount"}}])),
        "invalid parameter `operations[0].aggregations.n`: unknown operation `nope` (expected one of: count, sum, mean, avg, min, max, first, last, count_distinct)"
    );
}

// ---------- profile ----------

#[test]
fn profile_columns() {
    let r = dp("profile", json!({"data": sales()})).unwrap();
    assert_eq!(
        r,
        json!({"rows": 4, "columns": 3, "column_profiles": {
            "region": {"type": "string", "non_null": 4, "nulls": 0, "distinct": 3},
            "amount": {"type": "number", "non_null": 3, "nulls": 1, "distinct": 3, "min": 5, "max": 10, "mean": 7.5},
            "item": {"type": "string", "non_null": 4, "nulls": 0, "distinct": 4},
        }})
    );
    let r = dp("profile", json!({"data": "n,m\n1,x\n2,\n2,3"})).unwrap();
    assert_eq!(
        r["column_profiles"],
        json!({
            "n": {"type": "integer", "non_null": 3, "nulls": 0, "distinct": 2, "min": 1, "max": 2, "mean": 1.6666666666666667},
            "m": {"type": "mixed", "non_null": 2, "nulls": 1, "distinct": 2},
        })
    );
}

// ---------- clean ----------

fn dirty() -> Value {
    json!([
        {"x": 1, "y": "a"}, {"y": "a", "x": 1}, {"x": 2, "y": null},
        {"x": 3, "y": "c"}, {"x": 4, "y": "d"}, {"x": 100, "y": "e"},
    ])
}

#[test]
fn clean_everything() {
    let r = dp(
        "clean",
        json!({"data": dirty(), "remove_duplicates": true, "handle_missing": "drop", "remove_outliers": "true"}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({
            "data": [{"x": 1, "y": "a"}, {"x": 3, "y": "c"}, {"x": 4, "y": "d"}],
            "count": 3, "removed": {"duplicates": 1, "missing": 1, "outliers": 1}, "filled": 0,
        })
    );
    let r = dp("clean", json!({"data": dirty(), "remove_duplicates": false, "handle_missing": "fill", "fill_value": "?"})).unwrap();
    assert_eq!(r["data"][2], json!({"x": 2, "y": "?"}));
    assert_eq!(r["count"], json!(6));
    assert_eq!(r["filled"], json!(1));
    let r = dp(
        "clean",
        json!({"data": [{"a": null, "b": null}, {"a": 1}], "handle_missing": "fill", "fill_value": {"b": 0}}),
    )
    .unwrap();
    assert_eq!(r["data"], json!([{"a": null, "b": 0}, {"a": 1, "b": 0}]));
    // Defaults: duplicates removed, nothing else.
    let r = dp("clean", json!({"data": dirty()})).unwrap();
    assert_eq!(
        r["removed"],
        json!({"duplicates": 1, "missing": 0, "outliers": 0})
    );
}

#[test]
fn clean_failures() {
    assert_eq!(
        dp_err("clean", json!({"data": dirty(), "handle_missing": "fill"})),
        "missing parameter `fill_value`"
    );
    assert_eq!(
        dp_err(
            "clean",
            json!({"data": dirty(), "handle_missing": "impute"})
        ),
        "invalid parameter `handle_missing`: unknown strategy `impute` (expected one of: drop, fill, none)"
    );
    assert_eq!(
        dp_err(
            "clean",
            json!({"data": dirty(), "remove_duplicates": "maybe"})
        ),
        "invalid parameter `remove_duplicates`: expected true or false, got a string (\"maybe\")"
    );
}

// ---------- merge ----------

fn people() -> Value {
    json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
}

fn scores() -> Value {
    json!([{"id": 1, "score": 9}, {"id": 3, "score": 7}, {"id": 4, "score": 5}])
}

#[test]
fn merge_joins() {
    let m = |how: &str| {
        dp(
            "merge",
            json!({"data": people(), "other": scores(), "join_on": "id", "join_type": how}),
        )
        .unwrap()["data"]
            .clone()
    };
    assert_eq!(
        m("inner"),
        json!([{"id": 1, "name": "a", "score": 9}, {"id": 3, "name": "c", "score": 7}])
    );
    assert_eq!(
        m("left"),
        json!([{"id": 1, "name": "a", "score": 9}, {"id": 2, "name": "b", "score": null}, {"id": 3, "name": "c", "score": 7}])
    );
    assert_eq!(
        m("right"),
        json!([{"id": 1, "name": "a", "score": 9}, {"id": 3, "name": "c", "score": 7}, {"id": 4, "name": null, "score": 5}])
    );
    assert_eq!(
        m("outer"),
        json!([
            {"id": 1, "name": "a", "score": 9}, {"id": 2, "name": "b", "score": null},
            {"id": 3, "name": "c", "score": 7}, {"id": 4, "name": null, "score": 5},
        ])
    );
    let r = dp(
        "merge",
        json!({"datasets": [people(), "id,name\n1,z\n", "[{'id': 1, 'name': 'q'}]"], "merge_strategy": "join", "join_on": ["id"]}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"data": [{"id": 1, "name": "a", "name_1": "z", "name_2": "q"}], "count": 1})
    );
}

#[test]
fn merge_concat() {
    let r = dp("merge", json!({"datasets": [people(), scores()]})).unwrap();
    assert_eq!(r["count"], json!(6));
    assert_eq!(r["data"][0], json!({"id": 1, "name": "a", "score": null}));
    assert_eq!(r["data"][5], json!({"id": 4, "name": null, "score": 5}));
}

#[test]
fn merge_failures() {
    assert_eq!(
        dp_err("merge", json!({"datasets": [people()]})),
        "invalid parameter `datasets`: needs at least two datasets, got 1"
    );
    assert_eq!(
        dp_err("merge", json!({"data": people()})),
        "missing parameter `other`"
    );
    assert_eq!(
        dp_err(
            "merge",
            json!({"datasets": [people(), scores()], "merge_strategy": "join"})
        ),
        "missing parameter `join_on`"
    );
    assert_eq!(
        dp_err(
            "merge",
            json!({"datasets": [people(), scores()], "join_on": "id", "join_type": "cross"})
        ),
        "invalid parameter `join_type`: unknown join type `cross` (expected one of: inner, left, right, outer)"
    );
    assert_eq!(
        dp_err(
            "merge",
            json!({"datasets": [people(), scores()], "join_on": "name"})
        ),
        "invalid parameter `join_on (in `datasets[1]`)`: unknown field `name` (columns: id, score)"
    );
    assert_eq!(
        dp_err("merge", json!({"datasets": [people(), 7]})),
        "invalid parameter `datasets[1]`: expected a table (a list of records), got a number (7)"
    );
    assert_eq!(
        dp_err(
            "merge",
            json!({"datasets": [people(), scores()], "merge_strategy": "zip"})
        ),
        "invalid parameter `merge_strategy`: unknown strategy `zip` (expected concat or join)"
    );
}

// ---------- validate ----------

fn person_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
    })
}

const PEOPLE_CSV: &str = "name,age\nann,31\nbob,x\ncy,-1\n";

#[test]
fn validate_modes() {
    let r = val(
        "validate",
        json!({"data": PEOPLE_CSV, "schema": person_schema(), "mode": "report_only"}),
    )
    .unwrap();
    assert_eq!(r["valid"], json!(false));
    assert_eq!(r["mode"], json!("report_only"));
    assert_eq!(r["error_count"], json!(2));
    assert_eq!(r["rows"], json!(3));
    assert_eq!(r["invalid_rows"], json!(2));
    assert_eq!(
        r["errors"][0],
        json!({"path": "/age", "message": "\"x\" is not of type \"integer\"", "schema_path": "/properties/age/type", "row": 1})
    );
    assert_eq!(r["errors"][1]["row"], json!(2));
    assert_eq!(
        r["errors"][1]["message"],
        json!("-1 is less than the minimum of 0")
    );
    assert!(r.get("data").is_none());

    let r = val(
        "validate",
        json!({"data": PEOPLE_CSV, "schema": person_schema(), "mode": "lenient"}),
    )
    .unwrap();
    assert_eq!(r["valid"], json!(false));
    assert_eq!(r["data"], json!([{"name": "ann", "age": 31}]));

    let e = val(
        "validate",
        json!({"data": PEOPLE_CSV, "schema": person_schema()}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`data` does not match `schema` (2 errors): row 1 at /age: \"x\" is not of type \"integer\"; row 2 at /age: -1 is less than the minimum of 0"
    );

    let r = val(
        "validate",
        json!({"data": [{"name": "ann", "age": 31}], "schema": person_schema(), "mode": "strict"}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"valid": true, "mode": "strict", "errors": [], "error_count": 0, "rows": 1, "invalid_rows": 0})
    );
}

#[test]
fn validate_whole_values_and_2020_12() {
    let schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array", "maxItems": 1});
    let r = val(
        "validate",
        json!({"data": [{"a": 1}, {"a": 2}], "schema": schema, "mode": "report_only"}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"valid": false, "mode": "report_only", "error_count": 1, "errors": [
            {"path": "", "message": "[{\"a\":1},{\"a\":2}] has more than 1 item", "schema_path": "/maxItems"}
        ]})
    );
    let r = val(
        "validate",
        json!({"data": {"a": 1}, "schema": "{\"required\": [\"b\"]}", "mode": "lenient"}),
    )
    .unwrap();
    assert_eq!(
        r["errors"][0]["message"],
        json!("\"b\" is a required property")
    );
    assert_eq!(r["data"], json!({"a": 1}));
}

#[test]
fn validate_failures() {
    assert_eq!(
        val("validate", json!({"data": []}))
            .unwrap_err()
            .to_string(),
        "missing parameter `schema`"
    );
    let e = val("validate", json!({"data": [], "schema": {"type": 5}}))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid parameter `schema`: not a valid JSON Schema: "),
        "{e}"
    );
    assert_eq!(
        val("validate", json!({"data": [], "schema": [1]}))
            .unwrap_err()
            .to_string(),
        "invalid parameter `schema`: expected a JSON Schema (a map), got a list ([1])"
    );
    assert_eq!(
        val(
            "validate",
            json!({"data": [], "schema": {}, "mode": "loose"})
        )
        .unwrap_err()
        .to_string(),
        "invalid parameter `mode`: unknown mode `loose` (expected one of: strict, lenient, report_only)"
    );
    let e = val("validate", json!({"data": [], "schema": "{oops"}))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot parse `schema` as JSON: "), "{e}");
}

// ---------- infer_schema ----------

#[test]
fn infer_schema_round_trips() {
    let schema = val("infer_schema", json!({"data": "name,age\nann,31\nbob,\n"})).unwrap();
    assert_eq!(
        schema,
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
                "required": ["name", "age"],
            },
        })
    );
    let r = val(
        "validate",
        json!({"data": "name,age\nann,31\nbob,\n", "schema": schema.clone()}),
    )
    .unwrap();
    assert_eq!(r["valid"], json!(true));
    let r = val(
        "validate",
        json!({"data": [{"name": "x", "age": 1.5}], "schema": schema, "mode": "report_only"}),
    )
    .unwrap();
    assert_eq!(r["valid"], json!(false));

    let schema = val(
        "infer_schema",
        json!({"data": {"tags": ["a", 1], "n": {"x": 1.5}}}),
    )
    .unwrap();
    assert_eq!(
        schema,
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": ["integer", "string"]}},
                "n": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
            },
            "required": ["tags", "n"],
        })
    );
}

// ---------- quality_check ----------

#[test]
fn quality_check_scores() {
    let data =
        json!([{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": null}, {"a": 3, "b": "y"}]);
    let r = val("quality_check", json!({"data": data})).unwrap();
    assert_eq!(
        r,
        json!({
            "score": 0.875, "passed": true, "threshold": 0.8,
            "metrics": {"completeness": 0.875, "uniqueness": 0.75, "consistency": 1.0},
            "issues": [
                {"type": "missing_values", "column": "b", "count": 1, "message": "column `b` has 1 missing value(s) in 4 rows"},
                {"type": "duplicate_rows", "count": 1, "rows": [1], "message": "1 row(s) repeat an earlier row"},
            ],
            "rows": 4, "columns": 2,
        })
    );
    let r = val("quality_check", json!({"data": data, "threshold": "0.9"})).unwrap();
    assert_eq!(r["passed"], json!(false));

    let r = val(
        "quality_check",
        json!({"data": [{"a": 1}, {"a": "x"}, {"a": 2.5}, {"a": 3}]}),
    )
    .unwrap();
    assert_eq!(r["metrics"]["consistency"], json!(0.75));
    assert_eq!(r["issues"][0]["types"], json!(["number", "string"]));

    let r = val("quality_check", json!({"data": []})).unwrap();
    assert_eq!(r["score"], json!(0.0));
    assert_eq!(r["passed"], json!(false));

    assert_eq!(
        val("quality_check", json!({"data": data, "threshold": 2}))
            .unwrap_err()
            .to_string(),
        "invalid parameter `threshold`: must be between 0 and 1, got 2"
    );
}

// ---------- robustness ----------

#[test]
fn odd_inputs_never_panic() {
    let inputs = [
        json!(null),
        json!(""),
        json!("["),
        json!("{{{"),
        json!("((((("),
        json!("a\n\"unterminated"),
        json!("\u{feff}"),
        json!("x,y\n\"a\"b\",1"),
        json!([[1, 2], [3]]),
        json!([{"a": {"b": [1, {"c": null}]}}, {"a": [1e300, -1e300]}]),
        json!({"data": "{"}),
        json!({"result": {"result": {"result": 1, "success": true}, "success": true}, "success": true}),
        json!([{"a": i64::MIN}, {"a": u64::MAX}, {"a": -0.0}]),
        json!("/"),
        json!("/proc/self"),
    ];
    let extras = json!({
        "output_format": "csv", "criteria": {"a": {"gt": 1}}, "group_by": "a",
        "aggregations": {"s": "sum:a", "m": "max:a"}, "operations": [{"type": "sort", "by": "a"}, {"type": "compute", "field": "z", "expression": "a * a + a / 0"}],
        "remove_outliers": true, "handle_missing": "drop", "other": [{"a": 1}], "join_on": "a",
        "schema": {"type": "object"}, "mode": "lenient",
    });
    for data in &inputs {
        let mut params = p(extras.clone());
        params.insert("data".into(), data.clone());
        for action in DATA_PROCESSING_ACTIONS {
            let _ = data_processing(action, &params);
        }
        for action in VALIDATION_ACTIONS {
            let _ = validation(action, &params);
        }
    }
}

// ---------- py-orc's pivot, transform steps, output_format, profiling_options ----------

#[test]
fn pivot_makes_a_column_per_value_and_fills_the_gaps() {
    let data = json!([
        {"p": "x", "s": "a", "q": 1, "r": 2},
        {"p": "y", "s": "b", "q": 3, "r": 4},
        {"p": "x", "s": "a", "q": 5, "r": 6},
    ]);
    let out = dp(
        "pivot",
        json!({"data": data, "index": "p", "columns": ["s"], "values": ["q"], "fill_value": -1}),
    )
    .unwrap();
    assert_eq!(
        out["data"],
        json!([{"p": "x", "a": 6, "b": -1}, {"p": "y", "a": -1, "b": 3}])
    );
    assert_eq!(out["columns"], json!(["a", "b"]));
    let out = dp(
        "pivot",
        json!({"data": data, "index": "p", "columns": "s", "values": ["q", "r"], "aggfunc": "mean", "output_format": "csv"}),
    )
    .unwrap();
    assert_eq!(
        out["data"],
        "p,a_q,a_r,b_q,b_r\nx,3.0,4.0,0,0\ny,0,0,3.0,4.0\n"
    );
    let out = dp("pivot", json!({"data": data, "index": "p", "values": "q"})).unwrap();
    assert_eq!(out["data"], json!([{"p": "x", "q": 6}, {"p": "y", "q": 3}]));
    assert!(dp_err("pivot", json!({"data": data, "values": "q"})).contains("`index`"));
    assert!(
        dp_err("pivot", json!({"data": data, "index": "p", "values": "s"})).contains("aggfunc")
    );
    assert!(
        dp_err(
            "pivot",
            json!({"data": data, "index": "p", "values": "q", "aggfunc": "median"})
        )
        .contains("unknown operation `median`")
    );
}

#[test]
fn py_orc_transform_steps() {
    let data = json!([
        {"id": 1, "n": "2", "d": "2024-05-01", "s": "ok"},
        {"id": 1, "n": "3", "d": "2024-05-02", "s": "ok"},
        {"id": 2, "n": null, "d": "2024-06-30", "s": ""},
    ]);
    let run = |ops: Value| dp("transform", json!({"data": data, "operations": ops}));
    let last = run(json!([{"type": "deduplicate", "columns": ["id"], "keep": "last"}])).unwrap();
    assert_eq!(last["data"][0]["n"], "3");
    assert_eq!(last["count"], 2);
    let cast =
        run(json!([{"type": "cast", "columns": {"n": "integer", "d": "date", "id": "string"}}]))
            .unwrap();
    assert_eq!(
        cast["data"][0],
        json!({"id": "1", "n": 2, "d": "2024-05-01", "s": "ok"})
    );
    assert_eq!(cast["data"][2]["n"], Value::Null, "null stays null");
    let err = run(json!([{"type": "cast", "columns": {"s": "integer"}}])).unwrap_err();
    assert!(err.to_string().contains("row 0: cannot convert"), "{err}");
    let filled = run(json!([{"type": "fill_missing", "strategy": {"n": 0, "s": "new"}}])).unwrap();
    assert_eq!(filled["data"][2]["n"], 0);
    assert_eq!(filled["data"][2]["s"], "new");
    let calc = run(json!([
        {"type": "cast", "columns": {"n": "float"}},
        {"type": "calculate", "expressions": {"twice": "n * 2", "month": "DATE_FORMAT(d, '%Y/%m')"}},
        {"type": "filter", "condition": "month != '2024/06' and twice >= 5"},
    ]))
    .unwrap();
    assert_eq!(
        calc["data"],
        json!([{"id": 1, "n": 3.0, "d": "2024-05-02", "s": "ok", "twice": 6.0, "month": "2024/05"}])
    );
    let err = run(json!([{"type": "filter", "condition": "s ~ 'x'"}])).unwrap_err();
    assert!(err.to_string().contains("operations[0].condition"), "{err}");
    let err = run(json!([{"type": "calculate", "expressions": {"x": "nope + 1"}}])).unwrap_err();
    assert!(err.to_string().contains("unknown field `nope`"), "{err}");
}

#[test]
fn profiling_options_add_their_sections() {
    let data = json!([
        {"a": 1, "b": "x"}, {"a": 2, "b": null}, {"a": 3, "b": "x"}, {"a": 50, "b": "y"}, {"a": 1, "b": "x"},
    ]);
    let plain = dp("profile", json!({"data": data})).unwrap();
    assert!(plain.get("duplicate_rows").is_none());
    assert!(plain["column_profiles"]["a"].get("median").is_none());
    let out = dp(
        "profile",
        json!({"data": data, "profiling_options": ["missing_values", "statistical_summary", "outlier_detection", "duplicate_detection"]}),
    )
    .unwrap();
    assert_eq!(out["duplicate_rows"], 1);
    assert_eq!(out["duplicate_percentage"], 20.0);
    assert_eq!(out["column_profiles"]["b"]["missing_count"], 1);
    assert_eq!(out["column_profiles"]["b"]["missing_percentage"], 20.0);
    assert_eq!(out["column_profiles"]["a"]["median"], 2.0);
    assert_eq!(out["column_profiles"]["a"]["outlier_count"], 1);
    assert!(out["column_profiles"]["a"]["std_dev"].as_f64().unwrap() > 20.0);
    assert!(
        dp_err(
            "profile",
            json!({"data": data, "profiling_options": ["everything"]})
        )
        .contains("unknown option `everything`")
    );
}

#[test]
fn output_format_csv_gives_text() {
    let out = dp(
        "aggregate",
        json!({"data": sales(), "group_by": "region", "aggregations": {"n": "count"}, "output_format": "csv"}),
    )
    .unwrap();
    assert_eq!(out["data"], "region,n\nwest,2\neast,1\nnorth,1\n");
    assert!(
        dp_err(
            "transform",
            json!({"data": sales(), "operations": [], "output_format": "xml"})
        )
        .contains("unsupported format `xml`")
    );
}
