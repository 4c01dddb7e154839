//! No text makes the compiler panic: arbitrary strings, YAML-ish fragments, and mutations of
//! the pipelines that compile.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Map, Value};

use orc_pipeline::{AutoRequest, AutoResolver, compile, compile_bytes, compile_with};

use crate::common::{catalog, fixtures};

static OK: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    fixtures("ok_")
        .into_iter()
        .map(|(_, t)| t.into_bytes())
        .collect()
});

static CATALOG: LazyLock<orc_pipeline::Catalog> = LazyLock::new(catalog);

/// A byte edit at a position given as a fraction of the length, so it applies to any text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(f64, usize),
    Insert(f64, Vec<u8>),
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
        match e {
            Edit::Delete(f, n) => {
                let start = at(*f, bytes.len());
                let end = (start + n).min(bytes.len());
                bytes.drain(start..end);
            }
            Edit::Insert(f, ins) => {
                let start = at(*f, bytes.len());
                bytes.splice(start..start, ins.iter().copied());
            }
        }
    }
    bytes
}

/// Bytes that mean something to YAML, templates or conditions, and some that mean nothing.
fn interesting() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..4),
        prop::sample::select(vec![
            "\n",
            " ",
            "  ",
            "- ",
            ": ",
            "{{",
            "}}",
            "{%",
            "%}",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "'",
            "#",
            "&a",
            "*a",
            "!!str",
            "|",
            ">",
            "\t",
            "id: ",
            "steps:",
            "for_each: ",
            "while: ",
            "on_failure: ",
            "dependencies: ",
            "tool: ",
            "action: ",
            "==",
            " and ",
            "(",
            ")",
            "\u{e9}",
            "\u{1F600}",
            "\r\n",
            "---\n",
            "...\n",
            ",",
            "item",
            "0",
            "-1",
            "1e999",
            "<AUTO>",
            "</AUTO>",
            "<AUTO type=\"integer\">",
            "<AUTO a='b'>",
            "\u{E000}0\u{E001}",
        ])
        .prop_map(|s: &str| s.as_bytes().to_vec()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..=1.0f64, 1usize..40).prop_map(|(f, n)| Edit::Delete(f, n)),
        (0.0..=1.0f64, interesting()).prop_map(|(f, b)| Edit::Insert(f, b)),
    ]
}

const IDS: &[&str] = &["a", "b", "c", "loop", "fail", "a_0_b", "bad id", ""];

/// A small text that is often meaningful to the compiler: ids, templates, conditions.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(IDS).prop_map(str::to_string),
        prop::sample::select(vec![
            "{{ a.result }}",
            "{{ item }}",
            "{{ b.result | upper }}",
            "{{ x",
            "{% if %}",
            "{{ range(3) | list }}",
            "{{ nope(1) }}",
            "{{ a | nofilter }}",
            "a.success and b",
            "iteration < 3",
            "len(",
            "true",
            "no",
            "1",
            "",
            "echo",
            "read",
            "write",
            "execute",
            "echo \"hi {{ a.result }}\"",
            "generate",
            "<AUTO>x</AUTO>",
            "<AUTO>x <AUTO>y</AUTO></AUTO>",
            "<AUTO type=\"list\">z</AUTO>",
            "a <AUTO>q</AUTO> b",
            "gpt-4o-mini",
            "continue",
            "skip",
            "retry",
            "filesystem",
            "terminal",
            "nope",
            "a, b",
            "c,,loop",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => prop::collection::vec(word().prop_map(Value::from), 0..3).prop_map(Value::from),
    ]
}

const KEYS: &[&str] = &[
    "id",
    "tool",
    "action",
    "parameters",
    "dependencies",
    "depends_on",
    "condition",
    "if",
    "on_false",
    "on_success",
    "on_failure",
    "timeout",
    "max_retries",
    "for_each",
    "while",
    "until",
    "max_iterations",
    "max_parallel",
    "loop_var",
    "goto",
    "name",
    "metadata",
    "model",
    "requires_model",
];

fn step(depth: u32) -> BoxedStrategy<Value> {
    let fields = prop::collection::vec((prop::sample::select(KEYS), value()), 0..8);
    let body: BoxedStrategy<Option<Vec<Value>>> = if depth == 0 {
        Just(None).boxed()
    } else {
        prop::option::of(prop::collection::vec(step(depth - 1), 0..3)).boxed()
    };
    (word(), fields, body)
        .prop_map(|(id, fields, body)| {
            let mut m = Map::new();
            m.insert("id".into(), Value::from(id));
            for (k, v) in fields {
                m.insert(k.to_string(), v);
            }
            if let Some(body) = body {
                m.insert("steps".into(), Value::from(body));
            }
            Value::Object(m)
        })
        .boxed()
}

/// A pipeline that is valid YAML (JSON is YAML) with arbitrary content.
fn pipeline() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(step(2), 0..6),
        prop::collection::vec((word(), value()), 0..3),
        prop::collection::vec((word(), value()), 0..3),
    )
        .prop_map(|(steps, params, outputs)| {
            let obj = |pairs: Vec<(String, Value)>| Value::Object(pairs.into_iter().collect());
            serde_json::json!({
                "name": "fuzz",
                "parameters": obj(params),
                "outputs": obj(outputs),
                "steps": steps,
            })
            .to_string()
        })
}

/// Answers by the instruction's length: numbers, lists, booleans, text, templates, failures.
struct Answers;

impl AutoResolver for Answers {
    fn resolve(&self, request: &AutoRequest) -> Result<String, String> {
        let answers = [
            "3",
            "[1, \"a\"]",
            "true",
            "some words",
            "{{ a.result }}",
            "-2.5",
            "{\"k\": [1]}",
        ];
        match request.instruction.len() % (answers.len() + 1) {
            i if i < answers.len() => Ok(answers[i].to_string()),
            _ => Err("no".into()),
        }
    }
}

proptest! {
    // 256 cases each by default; `PROPTEST_CASES=20000` searches harder.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = compile(&text, &CATALOG);
    }

    #[test]
    fn yamlish_text_never_panics(parts in prop::collection::vec(interesting(), 0..60)) {
        let bytes = parts.concat();
        let _ = compile_bytes(&bytes, &CATALOG);
    }

    #[test]
    fn generated_pipelines_never_panic(text in pipeline(), answer in any::<bool>()) {
        let resolver = answer.then_some(&Answers as &dyn AutoResolver);
        match compile_with(&text, &CATALOG, resolver) {
            Ok(compiled) => prop_assert!(!compiled.findings.has_errors()),
            Err(diags) => {
                prop_assert!(diags.has_errors());
                for d in &diags.0 {
                    // One line of JSON: every finding is on it, at a real column.
                    prop_assert!(d.pos.line == 1 && d.pos.col >= 1, "{d:?} in {text}");
                }
            }
        }
    }

    #[test]
    fn mutated_ok_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let original = which.get(&OK).clone();
        let bytes = apply(original, &edits);
        let result = compile_bytes(&bytes, &CATALOG);
        let text = String::from_utf8_lossy(&bytes);
        let _ = compile_with(&text, &CATALOG, Some(&Answers));
        if let Err(diags) = &result {
            // Whatever went wrong is said with a place, when the text is the file's.
            prop_assert!(diags.has_errors());
            let text = String::from_utf8_lossy(&bytes);
            let _ = diags.render("mutated.yaml", &text);
        }
    }
}
