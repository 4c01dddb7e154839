//! Any text through the condition language: parse, then evaluate against a small fixed
//! scope. Both must return a value or an `ExprError`, never panic or run unbounded.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use orc_pipeline::expr::Expr;
use serde_json::{Map, Value, json};

static SCOPE: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let scope = json!({
        "x": 3,
        "y": 2.5,
        "flag": true,
        "none": null,
        "name": "orc",
        "items": [1, "two", 3.0, [4], {"k": "v"}],
        "step": {
            "result": {"content": "hello world", "size": 11, "lines": ["a", "b"]},
            "success": true,
            "error": null
        },
        "inputs": {"count": 10, "mode": "fast"}
    });
    match scope {
        Value::Object(map) => map,
        _ => Map::new(),
    }
});

fuzz_target!(|text: &str| {
    if let Ok(expr) = Expr::parse(text) {
        let _ = expr.names();
        if let Ok(value) = expr.eval(&*SCOPE) {
            let _ = orc_pipeline::expr::truthy(&value);
        }
    }
});
