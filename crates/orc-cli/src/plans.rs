//! Loading a pipeline file and compiling it, through the compile cache.

use std::path::{Path, PathBuf};

use orc_pipeline::{Compiled, Diagnostics, Plan};
use serde::{Deserialize, Serialize};

/// Where orc keeps its data: `ORC_HOME`, else the platform's cache and data directories.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("ORC_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home).join("cache"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(xdg).join("orc"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("orc"))
}

/// What the compile cache stores.
#[derive(Serialize, Deserialize)]
struct Entry {
    plan: Plan,
    findings: Diagnostics,
}

/// A pipeline file that failed to load or compile.
pub(crate) enum LoadError {
    /// The file could not be read.
    Read(String),
    /// The compiler found errors.
    Invalid { diags: Diagnostics, text: String },
}

/// The file's text (for rendering diagnostics) and its compiled form.
pub(crate) struct Loaded {
    pub(crate) text: String,
    pub(crate) compiled: Compiled,
    pub(crate) cache_hit: bool,
}

/// Reads and compiles a pipeline, using the compile cache when it has an entry for this text and this orc.
pub(crate) fn load(path: &Path) -> Result<Loaded, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| {
        LoadError::Read(format!("{}: cannot read the pipeline: {e}", path.display()))
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let cache = cache_dir().map(|d| orc_cache::FileCache::new(d.join("plans")));
    let key = cache_key(&bytes);
    if let Some(cache) = &cache
        && let Ok(Some(entry)) = cache.get(&key)
    {
        match serde_json::from_slice::<Entry>(&entry)
            .ok()
            .and_then(|e| Compiled::from_plan(e.plan, e.findings))
        {
            Some(compiled) => {
                return Ok(Loaded {
                    text,
                    compiled,
                    cache_hit: true,
                });
            }
            None => tracing::warn!("ignoring a corrupt compile-cache entry; it will be rewritten"),
        }
    }
    let compiled =
        orc_pipeline::compile_bytes(&bytes, &orc_engine::catalog()).map_err(|diags| {
            LoadError::Invalid {
                diags,
                text: text.clone(),
            }
        })?;
    if let Some(cache) = &cache {
        let entry = Entry {
            plan: (*compiled.plan).clone(),
            findings: compiled.findings.clone(),
        };
        match serde_json::to_vec(&entry) {
            Ok(bytes) => {
                if let Err(e) = cache.put(&key, &bytes) {
                    tracing::debug!("compile cache not written: {e}");
                }
            }
            Err(e) => tracing::debug!("compile cache entry not serialized: {e}"),
        }
    }
    Ok(Loaded {
        text,
        compiled,
        cache_hit: false,
    })
}

/// The cache key: orc's version and build, and the exact bytes of the pipeline.
fn cache_key(bytes: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(bytes.len() + 64);
    key.extend_from_slice(b"orc-plan-1\0");
    key.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    key.push(0);
    // A rebuilt orc may compile differently: the executable's size and time tell builds apart.
    if let Some(meta) = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
    {
        key.extend_from_slice(&meta.len().to_le_bytes());
        if let Some(t) = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        {
            key.extend_from_slice(&t.as_nanos().to_le_bytes());
        }
    }
    key.push(0);
    key.extend_from_slice(bytes);
    key
}
