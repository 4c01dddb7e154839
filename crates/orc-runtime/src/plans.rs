//! Loading a pipeline file and compiling it, through the compile cache.

use std::path::Path;

use orc_pipeline::{Compiled, Diagnostics, Plan};
use serde::{Deserialize, Serialize};

/// The compile cache, when orc has a cache directory.
pub fn plan_cache() -> Option<orc_cache::FileCache> {
    crate::dirs::cache_dir().map(|d| orc_cache::FileCache::new(d.join("plans")))
}

/// Entries and bytes in the compile cache.
pub fn usage(cache: &orc_cache::FileCache) -> std::io::Result<(u64, u64)> {
    let mut totals = (0, 0);
    let entries = match std::fs::read_dir(cache.dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(totals),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            totals.0 += 1;
            totals.1 += meta.len();
        }
    }
    Ok(totals)
}

/// Removes every compiled plan; returns how many.
pub fn clear(cache: &orc_cache::FileCache) -> std::io::Result<u64> {
    let (entries, _) = usage(cache)?;
    match std::fs::remove_dir_all(cache.dir()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(entries),
    }
}

/// What the compile cache stores.
#[derive(Deserialize)]
struct Entry {
    plan: Plan,
    findings: Diagnostics,
}

/// [`Entry`] as it is written, borrowing the compiled plan.
#[derive(Serialize)]
struct EntryRef<'a> {
    plan: &'a Plan,
    findings: &'a Diagnostics,
}

/// A pipeline file that failed to load or compile.
pub enum LoadError {
    /// The file could not be read.
    Read(String),
    /// The compiler found errors.
    Invalid {
        /// What the compiler found.
        diags: Diagnostics,
        /// The pipeline's text, for rendering them.
        text: String,
    },
}

/// The file's text (for rendering diagnostics) and its compiled form.
#[derive(Debug)]
pub struct Loaded {
    /// The pipeline's text.
    pub text: String,
    /// The compiled plan and the compiler's findings.
    pub compiled: Compiled,
    /// Whether the plan came from the compile cache.
    pub cache_hit: bool,
}

/// What a compile depends on besides the pipeline text.
pub struct Compiler<'a> {
    /// The tools, actions and model names the pipeline may use.
    pub catalog: orc_pipeline::Catalog,
    /// Resolves `<AUTO>` tags; `None` when no model is configured.
    pub resolver: Option<&'a dyn orc_pipeline::AutoResolver>,
    /// What else decides the plan (the configured models), for the cache key.
    pub fingerprint: Vec<u8>,
}

impl<'a> Compiler<'a> {
    /// The compiler for the config's models.
    pub fn new(
        gateway: Option<&orc_models::Gateway>,
        resolver: Option<&'a dyn orc_pipeline::AutoResolver>,
    ) -> Self {
        // The router's settings decide the model of `model: <AUTO>` tags.
        let fingerprint = gateway.map_or_else(Vec::new, |g| {
            serde_json::to_vec(&(
                g.registry().models(),
                g.router().routing(),
                g.router().cost(),
            ))
            .unwrap_or_default()
        });
        Compiler {
            catalog: orc_engine::catalog_with_models(gateway),
            resolver,
            fingerprint,
        }
    }
}

/// Reads and compiles a pipeline, using the compile cache when it has an entry for this text and this orc.
pub fn load(path: &Path, compiler: &Compiler<'_>) -> Result<Loaded, LoadError> {
    load_bytes(&read(path)?, compiler)
}

/// Reads a pipeline file.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path)
        .map_err(|e| LoadError::Read(format!("{}: cannot read the pipeline: {e}", path.display())))
}

/// Compiles a pipeline's text, using the compile cache when it has an entry for this text and
/// this orc.
pub fn load_bytes(bytes: &[u8], compiler: &Compiler<'_>) -> Result<Loaded, LoadError> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let cache = plan_cache();
    let key = cache_key(bytes, &compiler.fingerprint);
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
    let started = std::time::Instant::now();
    let compiled = orc_pipeline::compile_bytes_with(bytes, &compiler.catalog, compiler.resolver)
        .map_err(|diags| LoadError::Invalid {
            diags,
            text: text.clone(),
        })?;
    tracing::debug!(elapsed = ?started.elapsed(), "compiled");
    // A plan whose tags were only checked (`orc validate`) is not the plan a run needs.
    let deferred = compiled
        .findings
        .0
        .iter()
        .any(|d| d.code == orc_pipeline::Code::I202);
    if let Some(cache) = cache.as_ref().filter(|_| !deferred) {
        let entry = EntryRef {
            plan: &compiled.plan,
            findings: &compiled.findings,
        };
        let written = serde_json::to_vec(&entry);
        tracing::debug!(elapsed = ?started.elapsed(), "compile-cache entry serialized");
        match written {
            Ok(bytes) => {
                if let Err(e) = cache.put(&key, &bytes) {
                    tracing::debug!("compile cache not written: {e}");
                }
                tracing::debug!(elapsed = ?started.elapsed(), "compile-cache entry written");
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

/// The shape of a compile-cache entry, first in every key: bumped whenever the stored [`Plan`]
/// changes shape, so an entry written by another orc is never read as this one's. 2: condition
/// expressions are a table of sources (`Plan::exprs`) that conditions index. 3: steps' error
/// handlers, retry back-off and declared outputs. 4: inputs' choices and limits, loop limits
/// from templates, `foreach` steps, `enhanced_outputs`.
const ENTRY_FORMAT: &[u8] = b"orc-plan-4\0";

/// The cache key: the entry's format, orc's version and build, the configured models, and the
/// exact bytes of the pipeline.
fn cache_key(bytes: &[u8], fingerprint: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(bytes.len() + 64);
    key.extend_from_slice(ENTRY_FORMAT);
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
    key.extend_from_slice(blake3::hash(fingerprint).as_bytes());
    key.extend_from_slice(bytes);
    key
}

/// The compiler's findings as `orc validate --json` prints them (and the service answers an
/// invalid pipeline with): code, name, severity, message, file, line, column, step, field, hint.
pub fn findings(diags: &Diagnostics, file: &str) -> serde_json::Value {
    serde_json::Value::Array(
        diags
            .0
            .iter()
            .map(|d| {
                serde_json::json!({
                    "code": d.code.to_string(),
                    "name": d.code.name(),
                    "severity": d.severity,
                    "message": d.message,
                    "file": file,
                    "line": d.pos.line,
                    "column": d.pos.col,
                    "step": d.step,
                    "field": d.field,
                    "hint": d.hint,
                })
            })
            .collect(),
    )
}

/// What `orc plan` adds up over a pipeline's model steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PlanTotals {
    /// Model steps planned.
    pub model_steps: usize,
    /// Those whose answer is cached (they cost nothing).
    pub cached: usize,
    /// USD expected, over the steps not cached.
    pub expected_usd: f64,
    /// USD at worst, over the steps not cached.
    pub worst_case_usd: f64,
}

impl PlanTotals {
    /// The totals of `rows`.
    pub fn of(rows: &[orc_engine::PlannedCall]) -> Self {
        let uncached = |r: &&orc_engine::PlannedCall| r.cached != Some(true);
        // Folded from +0.0: `Sum` for floats starts at -0.0, which prints as `-0.000000`.
        let sum = |f: fn(&orc_engine::PlannedCall) -> Option<f64>| {
            rows.iter()
                .filter(uncached)
                .filter_map(f)
                .fold(0.0, |a, b| a + b)
        };
        PlanTotals {
            model_steps: rows.len(),
            cached: rows.iter().filter(|r| r.cached == Some(true)).count(),
            expected_usd: sum(|r| r.expected_usd),
            worst_case_usd: sum(|r| r.worst_case_usd),
        }
    }
}

/// The plan of a pipeline's model steps as `orc plan --json` prints it (and the service
/// answers with).
pub fn plan_document(pipeline: &str, rows: &[orc_engine::PlannedCall]) -> serde_json::Value {
    serde_json::json!({
        "pipeline": pipeline,
        "steps": rows,
        "totals": PlanTotals::of(rows),
    })
}
