//! Any text as `orc.yaml`: parsed with positions, read into the config's types, every rule
//! checked, then what `orc config show` and `orc serve` read from it (all but the token file).
//! Lines of the form `#ORC_SECTION__KEY=value` (YAML comments) are also given as environment
//! overrides. It must give a config or an error naming what is wrong, never panic or hang.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use orc_runtime::config::layers;

fuzz_target!(|text: &str| {
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| line.starts_with("ORC_"))
        .filter_map(|line| line.split_once('='))
        .map(|(var, value)| (var.to_owned(), value.to_owned()))
        .take(8)
        .collect();
    let Ok(loaded) = layers::from_text(Some(PathBuf::from("orc.yaml")), Some(text), &env) else {
        return;
    };
    for (key, _) in layers::leaves(&loaded.config) {
        let _ = loaded.origin(&key);
    }
    // The token file is read from disk: a fuzzer's path could name anything (a FIFO that
    // never ends), so only the rest of the section is read here.
    let mut server = loaded.config.server.clone();
    server.auth.token_file = None;
    let _ = orc_server::ServerOptions::from_settings(&server);
});
