//! Any bytes through the whole front end: UTF-8 check, YAML parse with positions and the
//! compiler's checks. It must return a plan or diagnostics, never panic or hang.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static CATALOG: LazyLock<orc_pipeline::Catalog> = LazyLock::new(orc_engine::catalog);

fuzz_target!(|data: &[u8]| {
    let _ = orc_pipeline::compile_bytes(data, &CATALOG);
});
