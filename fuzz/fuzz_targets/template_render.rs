//! Any text as one of a pipeline's templates: compiled into a `TemplateSet` the way the
//! compiler does, checked for unknown filters (the compiler's dry render), then rendered and
//! evaluated against a fixed scope the way a step does. Each must return a value or an error,
//! never panic; fuel bounds the work, and the fuzzer's `-rss_limit_mb`/`-malloc_limit_mb` and
//! `-timeout` make an allocation bomb or a hang a finding.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use orc_pipeline::TemplateId;
use orc_pipeline::templates::{Lookup, TemplateSet, to_value};
use serde_json::json;

struct Scope(HashMap<String, minijinja::Value>);

impl Lookup for Scope {
    fn lookup(&self, name: &str) -> Option<minijinja::Value> {
        self.0.get(name).cloned()
    }
}

static SCOPE: LazyLock<Arc<dyn Lookup>> = LazyLock::new(|| {
    let values = json!({
        "name": "orc",
        "count": 3,
        "ratio": 0.5,
        "flag": true,
        "none": null,
        "items": ["a", "b", 3, [4, 5], {"k": "v"}],
        "text": "Hello, World! 42 apples",
        "json_text": "{\"a\": [1, 2, {\"b\": null}]}",
        "read": {"result": {"content": "line one\nline two", "size": 17}, "success": true, "error": null},
        "inputs": {"topic": "fuzzing", "n": 10},
        "execution": {"id": "run-1", "timestamp": "2025-01-02T03:04:05Z", "date": "2025-01-02"},
        "output_path": "/tmp/orc-fuzz-out",
    });
    let map = values
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        .unwrap_or_default();
    Arc::new(Scope(map))
});

fuzz_target!(|text: &str| {
    let Ok(set) = TemplateSet::compile(vec![text.to_owned()].into()) else {
        return;
    };
    let id = TemplateId(0);
    let _ = set.names(id);
    let _ = set.unknown_callable(id);
    let _ = set.render(id, &SCOPE);
    if set.is_single_expression(id) {
        let _ = set.evaluate(id, &SCOPE);
    }
});
