//! The config file: `--config FILE`, else `ORC_CONFIG`, else `orc.yaml` in the working directory,
//! else built-in defaults. Unknown keys and wrong types are errors naming the key and line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// The models pipelines can use.
    pub(crate) models: Vec<orc_models::ModelSpec>,
    /// Where runs and their checkpoints are kept.
    pub(crate) state: StateSettings,
    pub(crate) performance: Performance,
}

/// The `state:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StateSettings {
    /// `sqlite://…`, `postgres://…` or `redis://…`; default SQLite in the data directory.
    pub(crate) url: Option<String>,
}

/// The `performance:` section, laid out as the performance guide's `config/performance.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Performance {
    pub(crate) caching: Caching,
    pub(crate) parallel_execution: ParallelExecution,
    pub(crate) resource_limits: ResourceLimits,
    pub(crate) model_optimization: ModelOptimization,
    pub(crate) database: Database,
}

/// `performance.caching`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Caching {
    pub(crate) model_cache: CacheSettings,
    pub(crate) pipeline_cache: CacheSettings,
}

impl Default for Caching {
    fn default() -> Self {
        Caching {
            model_cache: CacheSettings {
                backend: "file".into(),
                ttl: 3600,
                max_size: 50_000,
                ..CacheSettings::default()
            },
            // On disk, so `cache: true` steps reuse results across runs of the command line.
            pipeline_cache: CacheSettings {
                backend: "file".into(),
                ..CacheSettings::default()
            },
        }
    }
}

/// One cache's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CacheSettings {
    pub(crate) enabled: bool,
    pub(crate) backend: String,
    pub(crate) ttl: u64,
    pub(crate) max_size: u64,
    pub(crate) compression: bool,
    pub(crate) url: Option<String>,
    pub(crate) path: Option<PathBuf>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            backend: "memory".into(),
            ttl: 1800,
            max_size: 1000,
            compression: false,
            url: None,
            path: None,
        }
    }
}

/// `performance.parallel_execution`: read by the scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ParallelExecution {
    /// Threads of the async runtime.
    pub(crate) max_workers: usize,
    /// Steps running at once.
    pub(crate) max_concurrent_tasks: usize,
    /// Default per-step time limit, seconds.
    pub(crate) task_timeout: f64,
}

impl Default for ParallelExecution {
    fn default() -> Self {
        ParallelExecution {
            max_workers: 16,
            max_concurrent_tasks: 50,
            task_timeout: 600.0,
        }
    }
}

/// `performance.resource_limits`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ResourceLimits {
    pub(crate) max_memory: String,
    pub(crate) max_cpu_cores: usize,
    pub(crate) memory_cleanup_threshold: f64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            max_memory: "8GB".into(),
            max_cpu_cores: 12,
            memory_cleanup_threshold: 0.85,
        }
    }
}

/// `performance.model_optimization`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ModelOptimization {
    pub(crate) batch_size: usize,
    pub(crate) max_wait_time: f64,
    pub(crate) connection_pool_size: usize,
    pub(crate) max_concurrent_batches: usize,
}

impl Default for ModelOptimization {
    fn default() -> Self {
        ModelOptimization {
            batch_size: 20,
            max_wait_time: 0.05,
            connection_pool_size: 100,
            max_concurrent_batches: 5,
        }
    }
}

/// `performance.database`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Database {
    pub(crate) connection_pool_size: u32,
    pub(crate) query_timeout: f64,
    pub(crate) enable_query_caching: bool,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            connection_pool_size: 50,
            query_timeout: 30.0,
            enable_query_caching: true,
        }
    }
}

/// A config file that could not be used.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Finds and loads the config file, or the defaults when there is none.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => match std::env::var_os("ORC_CONFIG") {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => Some(PathBuf::from("orc.yaml")).filter(|p| p.is_file()),
            },
        };
        let Some(path) = path else {
            return Ok((Config::default(), None));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError(format!(
                "{}: cannot read the config file: {e}",
                path.display()
            ))
        })?;
        let config =
            Self::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        config
            .check()
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Ok((config, Some(path)))
    }

    fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str::<Config>(text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            match e.location() {
                Some(l) => format!("{}:{}: {first}", l.line(), l.column()),
                None => first,
            }
        })
    }

    fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for m in &self.models {
            if !names.insert(m.name.as_str()) {
                return Err(format!("models: the name `{}` is used twice", m.name));
            }
        }
        let mo = &self.performance.model_optimization;
        if mo.batch_size == 0 {
            return Err("performance.model_optimization.batch_size must be at least 1".into());
        }
        if mo.connection_pool_size == 0 {
            return Err(
                "performance.model_optimization.connection_pool_size must be at least 1".into(),
            );
        }
        if mo.max_concurrent_batches == 0 {
            return Err(
                "performance.model_optimization.max_concurrent_batches must be at least 1".into(),
            );
        }
        if !(mo.max_wait_time >= 0.0 && mo.max_wait_time.is_finite()) {
            return Err(
                "performance.model_optimization.max_wait_time must be a number of seconds ≥ 0"
                    .into(),
            );
        }
        for (name, c) in [
            ("model_cache", &self.performance.caching.model_cache),
            ("pipeline_cache", &self.performance.caching.pipeline_cache),
        ] {
            match c.backend.as_str() {
                "memory" | "file" => {}
                "redis" if c.url.is_none() => {
                    return Err(format!(
                        "performance.caching.{name}.url is required with backend `redis` (e.g. redis://127.0.0.1:6379)"
                    ));
                }
                "redis" => {}
                other => {
                    return Err(format!(
                        "performance.caching.{name}.backend: unknown backend `{other}`; use memory, file or redis"
                    ));
                }
            }
        }
        let p = &self.performance.parallel_execution;
        if p.max_concurrent_tasks == 0 {
            return Err(
                "performance.parallel_execution.max_concurrent_tasks must be at least 1".into(),
            );
        }
        if p.max_workers == 0 {
            return Err("performance.parallel_execution.max_workers must be at least 1".into());
        }
        if !(p.task_timeout > 0.0 && p.task_timeout.is_finite()) {
            return Err(
                "performance.parallel_execution.task_timeout must be a positive number of seconds"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_performance_guide_file_loads() {
        let text = "performance:\n  caching:\n    model_cache:\n      enabled: true\n      backend: \"redis\"\n      ttl: 3600\n      max_size: 50000\n    pipeline_cache:\n      enabled: true\n      backend: \"memory\"\n      ttl: 1800\n      max_size: 1000\n  parallel_execution:\n    max_workers: 16\n    max_concurrent_tasks: 50\n    task_timeout: 600\n  resource_limits:\n    max_memory: \"8GB\"\n    max_cpu_cores: 12\n    memory_cleanup_threshold: 0.85\n  model_optimization:\n    batch_size: 20\n    max_wait_time: 0.05\n    connection_pool_size: 100\n  database:\n    connection_pool_size: 50\n    query_timeout: 30\n    enable_query_caching: true\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.performance.parallel_execution.max_concurrent_tasks, 50);
        assert_eq!(c.performance.caching.model_cache.backend, "redis");
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err =
            Config::parse("performance:\n  parallel_execution:\n    max_conccurent_tasks: 5\n")
                .unwrap_err();
        assert!(
            err.contains("max_conccurent_tasks") && err.starts_with("3:"),
            "{err}"
        );
    }
}
