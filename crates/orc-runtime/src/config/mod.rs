//! The config file: `--config FILE`, else `ORC_CONFIG`, else `orc.yaml` in the working directory,
//! else built-in defaults. Unknown keys and wrong types are errors naming the key and line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod layers;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The models pipelines can use.
    pub models: Vec<orc_models::ModelSpec>,
    /// How steps that name no model are routed, and the fallbacks.
    pub routing: orc_models::RoutingConfig,
    /// Budgets and the router's cost preferences.
    pub cost: orc_models::CostConfig,
    /// Where runs and their checkpoints are kept.
    pub state: StateSettings,
    /// Limits and settings of the engine, as the performance guide lays them out.
    pub performance: Performance,
    /// `orc serve`: where it listens, its limits and its tokens.
    pub server: ServerSettings,
    /// Runs across machines: the NATS JetStream queue and pool (`orc run --queue`, `orc worker`).
    pub queue: QueueSettings,
}

/// The `queue:` section: where a run's coordinator sends its steps and `orc worker` takes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// The NATS server (`nats://127.0.0.1:4222`); unset, runs execute every step themselves.
    /// `--queue` overrides it.
    pub url: Option<String>,
    /// The worker pool steps go to (default `default`); `--pool` overrides it.
    pub pool: String,
    /// Seconds a delivered step may go without a sign of life from its worker before another
    /// worker gets it (default 30; workers send one every third of it). Fixed when a pool is
    /// first used.
    pub ack_wait: f64,
    /// Most deliveries of one step (default 5). A step delivered that many times that no
    /// worker completed fails, saying so.
    pub max_deliver: u32,
    /// Seconds a coordinator lets a step wait for a worker of its pool to take it (default
    /// 300); past it the step fails, naming the pool, and its message is removed.
    pub claim_timeout: f64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            url: None,
            pool: "default".to_owned(),
            ack_wait: 30.0,
            max_deliver: 5,
            claim_timeout: 300.0,
        }
    }
}

/// The `server:` section (`orc serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// The address to listen on (`--bind` overrides it).
    pub bind: String,
    /// Requests in progress at once, at most; beyond it requests get 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Seconds a request may take (a run waited for with `wait` answers 202 at this point).
    pub request_timeout: f64,
    /// The largest request body, in bytes (`10MB`, `512KB` or a number); larger ones get 413.
    pub max_body_bytes: String,
    /// Seconds in-flight requests and runs get to finish on SIGTERM or Ctrl-C.
    pub shutdown_grace: f64,
    /// Bearer tokens; required whenever `bind` is not a loopback address.
    pub auth: AuthSettings,
    /// Requests per second each client (each bearer token) may make; beyond it 429 with
    /// `Retry-After`. `None` for no limit.
    pub rate_limit: Option<RateLimit>,
    /// What the pipelines posted to the service may reach.
    pub sandbox: SandboxSettings,
}

/// `server.sandbox`: pipelines posted to `orc serve` come from its API clients, who may not be
/// trusted with the server's files, programs and network. `orc run` keeps the rights of the
/// user who runs it unless `confine_cli` says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Whether posted pipelines are confined (default true).
    pub enabled: bool,
    /// The directory their files are confined to (relative paths are in it); default
    /// `<data dir>/workspace`, created when missing.
    pub workspace: Option<PathBuf>,
    /// Whether `terminal` and `python-executor` may run (default false: a posted pipeline
    /// that uses them is refused, 422). They are not confined when allowed.
    pub allow_commands: bool,
    /// Whether `http-client` may reach loopback, private, link-local and unspecified
    /// addresses (default false).
    pub allow_private_network: bool,
    /// Whether `orc run` and `orc resume` are confined the same way (default false).
    pub confine_cli: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            enabled: true,
            workspace: None,
            allow_commands: false,
            allow_private_network: false,
            confine_cli: false,
        }
    }
}

/// `server.rate_limit`: a token bucket per client.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, on average.
    pub per_second: f64,
    /// Requests a client may make at once after being idle (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:8080".to_owned(),
            max_concurrent_requests: 1000,
            request_timeout: 30.0,
            max_body_bytes: "10MB".to_owned(),
            shutdown_grace: 10.0,
            auth: AuthSettings::default(),
            rate_limit: None,
            sandbox: SandboxSettings::default(),
        }
    }
}

impl ServerSettings {
    /// `max_body_bytes` in bytes (checked when the config was loaded).
    pub fn max_body(&self) -> u64 {
        parse_bytes(&self.max_body_bytes).unwrap_or(10 << 20)
    }
}

/// The `server.auth:` section: where the bearer tokens come from. Tokens are never written in
/// the config file itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// An environment variable holding the tokens, separated by commas or whitespace.
    pub token_env: Option<String>,
    /// A file holding the tokens, one per line (`#` starts a comment).
    pub token_file: Option<PathBuf>,
}

/// The shortest `state.lease_seconds`.
pub const MIN_LEASE: f64 = 0.1;
/// The longest `state.lease_seconds`.
pub const MAX_LEASE: f64 = 86_400.0;

/// The `state:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// `sqlite://…`, `postgres://…` or `redis://…`; default SQLite in the data directory.
    pub url: Option<String>,
    /// How long a run's lease lasts without renewal, in seconds (default 10).
    pub lease_seconds: Option<f64>,
}

/// The `performance:` section, laid out as the performance guide's `config/performance.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Performance {
    /// The model response cache and the step-result cache.
    pub caching: Caching,
    /// Threads, steps at once, the default step time limit.
    pub parallel_execution: ParallelExecution,
    /// Memory admission and the CPU pool.
    pub resource_limits: ResourceLimits,
    /// Batching and the connection pool of model calls.
    pub model_optimization: ModelOptimization,
    /// The state store's pool and timeouts.
    pub database: Database,
}

/// `performance.caching`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caching {
    /// The model response cache.
    pub model_cache: CacheSettings,
    /// The step-result cache of `cache: true` steps.
    pub pipeline_cache: CacheSettings,
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
pub struct CacheSettings {
    /// Whether the cache is used.
    pub enabled: bool,
    /// `memory`, `file` or `redis`.
    pub backend: String,
    /// Seconds an entry lives; 0 for ever.
    pub ttl: u64,
    /// The most entries kept (memory backend).
    pub max_size: u64,
    /// Whether values are zstd-compressed.
    pub compression: bool,
    /// The Redis URL (`backend: redis`).
    pub url: Option<String>,
    /// The directory (`backend: file`).
    pub path: Option<PathBuf>,
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
pub struct ParallelExecution {
    /// Threads of the async runtime.
    pub max_workers: usize,
    /// Steps running at once.
    pub max_concurrent_tasks: usize,
    /// Default per-step time limit, seconds.
    pub task_timeout: f64,
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
pub struct ResourceLimits {
    /// The memory the process may use (`8GB`).
    pub max_memory: String,
    /// Slots of the CPU pool data tools run on.
    pub max_cpu_cores: usize,
    /// The share of `max_memory` above which no step starts and caches are emptied.
    pub memory_cleanup_threshold: f64,
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
pub struct ModelOptimization {
    /// The most requests sent in one batch.
    pub batch_size: usize,
    /// Seconds a request waits for others to batch with.
    pub max_wait_time: f64,
    /// The most connections open to one provider host.
    pub connection_pool_size: usize,
    /// Batches in flight at once per model.
    pub max_concurrent_batches: usize,
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
pub struct Database {
    /// Connections of the state store's pool.
    pub connection_pool_size: u32,
    /// Seconds a state store query may take.
    pub query_timeout: f64,
    /// Whether status queries are answered from a 1 s cache.
    pub enable_query_caching: bool,
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

/// A config file (or override) that could not be used; the message names the file, line and
/// key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A value that breaks a rule: its dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The dotted key of the value.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

fn issue(key: impl Into<String>, message: impl Into<String>) -> Issue {
    Issue {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Finds and loads the config file (or the defaults when there is none), then applies the
    /// `ORC_<SECTION>__<KEY>` environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let loaded = layers::load(explicit, &layers::environment())?;
        Ok((loaded.config, loaded.path))
    }

    /// Every rule the types alone do not enforce; all the issues, not just the first.
    pub fn check(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if !names.insert(m.name.as_str()) {
                issues.push(issue(
                    format!("models[{i}].name"),
                    format!("the name `{}` is used twice", m.name),
                ));
            }
        }
        if let Ok(registry) = orc_models::Registry::new(self.models.clone()) {
            for i in self
                .routing
                .issues(&registry)
                .into_iter()
                .chain(self.cost.issues(&registry))
            {
                issues.push(issue(i.key, i.message));
            }
        }
        if let Some(secs) = self.state.lease_seconds
            && !(secs.is_finite() && (MIN_LEASE..=MAX_LEASE).contains(&secs))
        {
            issues.push(issue(
                "state.lease_seconds".to_owned(),
                format!("must be a number of seconds from {MIN_LEASE} to {MAX_LEASE}"),
            ));
        }
        let queue = &self.queue;
        if !orc_pipeline::is_pool_name(&queue.pool) {
            issues.push(issue(
                "queue.pool".to_owned(),
                format!(
                    "`{}` is not a pool name: 1 to 64 letters, digits, `-` and `_`",
                    queue.pool
                ),
            ));
        }
        if !(queue.ack_wait.is_finite() && queue.ack_wait >= 1.0 && queue.ack_wait <= 31_536_000.0)
        {
            issues.push(issue(
                "queue.ack_wait".to_owned(),
                "must be a number of seconds from 1 to 31536000".to_owned(),
            ));
        }
        if !(queue.claim_timeout.is_finite()
            && queue.claim_timeout >= 1.0
            && queue.claim_timeout <= 31_536_000.0)
        {
            issues.push(issue(
                "queue.claim_timeout".to_owned(),
                "must be a number of seconds from 1 to 31536000".to_owned(),
            ));
        }
        if queue.max_deliver == 0 {
            issues.push(issue(
                "queue.max_deliver".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        let server = &self.server;
        if server.bind.parse::<std::net::SocketAddr>().is_err() {
            issues.push(issue(
                "server.bind",
                format!(
                    "`{}` is not an address with a port, e.g. 127.0.0.1:8080",
                    server.bind
                ),
            ));
        }
        if server.max_concurrent_requests == 0 {
            issues.push(issue(
                "server.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        for (key, secs) in [
            ("server.request_timeout", server.request_timeout),
            ("server.shutdown_grace", server.shutdown_grace),
        ] {
            if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
                issues.push(issue(
                    key,
                    "must be a number of seconds above 0, at most 86400",
                ));
            }
        }
        if let Some(rate) = &server.rate_limit
            && !(rate.per_second.is_finite() && rate.per_second > 0.0 && rate.per_second <= 1e6)
        {
            issues.push(issue(
                "server.rate_limit.per_second",
                "must be a number of requests per second above 0, at most 1000000",
            ));
        }
        if let Err(e) = parse_bytes(&server.max_body_bytes) {
            issues.push(issue("server.max_body_bytes", e));
        }
        if server
            .sandbox
            .workspace
            .as_ref()
            .is_some_and(|w| w.as_os_str().is_empty())
        {
            issues.push(issue(
                "server.sandbox.workspace",
                "must be a directory (leave it out for <data dir>/workspace)",
            ));
        }
        if server.sandbox.confine_cli && !server.sandbox.enabled {
            issues.push(issue(
                "server.sandbox.confine_cli",
                "confines `orc run` as the service's runs are, which `enabled: false` turns off",
            ));
        }
        let perf = &self.performance;
        let at = |rest: &str| format!("performance.{rest}");
        let mo = &perf.model_optimization;
        for (key, value) in [
            ("batch_size", mo.batch_size),
            ("connection_pool_size", mo.connection_pool_size),
            ("max_concurrent_batches", mo.max_concurrent_batches),
        ] {
            if value == 0 {
                issues.push(issue(
                    at(&format!("model_optimization.{key}")),
                    "must be at least 1",
                ));
            }
        }
        if !(mo.max_wait_time == 0.0 || seconds_in_range(mo.max_wait_time)) {
            issues.push(issue(
                at("model_optimization.max_wait_time"),
                "must be a number of seconds ≥ 0, at most 31536000 (a year)",
            ));
        }
        for (name, c) in [
            ("model_cache", &perf.caching.model_cache),
            ("pipeline_cache", &perf.caching.pipeline_cache),
        ] {
            if !matches!(c.backend.as_str(), "memory" | "file" | "redis") {
                issues.push(issue(
                    at(&format!("caching.{name}.backend")),
                    format!("unknown backend `{}`; use memory, file or redis", c.backend),
                ));
            }
            if c.max_size == 0 {
                issues.push(issue(
                    at(&format!("caching.{name}.max_size")),
                    "must be at least 1",
                ));
            }
        }
        let p = &perf.parallel_execution;
        if p.max_concurrent_tasks == 0 {
            issues.push(issue(
                at("parallel_execution.max_concurrent_tasks"),
                "must be at least 1",
            ));
        }
        if p.max_workers == 0 {
            issues.push(issue(
                at("parallel_execution.max_workers"),
                "must be at least 1",
            ));
        }
        if !seconds_in_range(p.task_timeout) {
            issues.push(issue(at("parallel_execution.task_timeout"), SECONDS_RANGE));
        }
        let r = &perf.resource_limits;
        if let Err(e) = parse_bytes(&r.max_memory) {
            issues.push(issue(at("resource_limits.max_memory"), e));
        }
        if r.max_cpu_cores == 0 {
            issues.push(issue(
                at("resource_limits.max_cpu_cores"),
                "must be at least 1",
            ));
        }
        if !(r.memory_cleanup_threshold > 0.0 && r.memory_cleanup_threshold <= 1.0) {
            issues.push(issue(
                at("resource_limits.memory_cleanup_threshold"),
                "must be a fraction in (0, 1]",
            ));
        }
        let db = &perf.database;
        if db.connection_pool_size == 0 {
            issues.push(issue(
                at("database.connection_pool_size"),
                "must be at least 1",
            ));
        }
        if !seconds_in_range(db.query_timeout) {
            issues.push(issue(at("database.query_timeout"), SECONDS_RANGE));
        }
        issues
    }
}

/// The longest time limit orc takes: a year. Longer ones are mistakes (and would not fit a timer).
const MAX_SECONDS: f64 = 31_536_000.0;

const SECONDS_RANGE: &str = "must be a positive number of seconds, at most 31536000 (a year)";

fn seconds_in_range(s: f64) -> bool {
    s > 0.0 && s <= MAX_SECONDS
}

impl ResourceLimits {
    /// `max_memory` in bytes (checked when the config was loaded).
    pub fn max_memory_bytes(&self) -> u64 {
        parse_bytes(&self.max_memory).unwrap_or(u64::MAX)
    }
}

/// Parses a size such as `8GB`, `512 MiB`, `1.5G` or `1048576`: decimal units (`KB`, `MB`,
/// `GB`, `TB`, or just `K`, `M`, `G`, `T`) are powers of 1000, binary ones (`KiB`, `MiB`,
/// `GiB`, `TiB`) powers of 1024; case does not matter.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a size; write it like 8GB, 512MiB or 1048576");
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = n * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("`{text}` is out of range"));
    }
    // In range: checked just above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_performance_guide_file_loads() {
        let text = "performance:\n  caching:\n    model_cache:\n      enabled: true\n      backend: \"redis\"\n      ttl: 3600\n      max_size: 50000\n    pipeline_cache:\n      enabled: true\n      backend: \"memory\"\n      ttl: 1800\n      max_size: 1000\n  parallel_execution:\n    max_workers: 16\n    max_concurrent_tasks: 50\n    task_timeout: 600\n  resource_limits:\n    max_memory: \"8GB\"\n    max_cpu_cores: 12\n    memory_cleanup_threshold: 0.85\n  model_optimization:\n    batch_size: 20\n    max_wait_time: 0.05\n    connection_pool_size: 100\n  database:\n    connection_pool_size: 50\n    query_timeout: 30\n    enable_query_caching: true\n";
        let c = load_text(text).unwrap();
        assert_eq!(c.performance.parallel_execution.max_concurrent_tasks, 50);
        assert_eq!(c.performance.caching.model_cache.backend, "redis");
    }

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_bytes("8GB").unwrap(), 8_000_000_000);
        assert_eq!(parse_bytes("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 1_500_000_000);
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        for bad in ["", "lots", "8XB", "0", "-1GB", "1e30"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = load_text("performance:\n  parallel_execution:\n    max_conccurent_tasks: 5\n")
            .unwrap_err();
        assert!(
            err.contains(
                ":3:5: performance.parallel_execution.max_conccurent_tasks: unknown field"
            ),
            "{err}"
        );
    }

    #[test]
    fn every_type_error_is_listed_once_with_its_key() {
        let err = load_text(
            "performance:\n  parallel_execution:\n    max_workers: \"many\"\n    task_timeout: soon\n  caching:\n    model_cache: { ttl: -1, backnd: file }\nstate: { url: 5 }\n",
        )
        .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 5, "{err}");
        for (line, key) in [
            (
                ":3:5: ",
                "performance.parallel_execution.max_workers: invalid type: string \"many\"",
            ),
            (
                ":4:5: ",
                "performance.parallel_execution.task_timeout: invalid type",
            ),
            (
                ":6:20: ",
                "performance.caching.model_cache.ttl: invalid value",
            ),
            (
                ":6:29: ",
                "performance.caching.model_cache.backnd: unknown field",
            ),
            (":7:10: ", "state.url: invalid type"),
        ] {
            assert!(
                lines.iter().any(|l| l.contains(&format!("{line}{key}"))),
                "no `{line}{key}` in:\n{err}"
            );
        }
        assert!(!err.contains("error:"), "{err}");
    }

    #[test]
    fn timeouts_beyond_a_year_are_refused() {
        let err = load_text(
            "performance:\n  parallel_execution: { task_timeout: 1e20 }\n  database: { query_timeout: 1e20 }\n",
        )
        .unwrap_err();
        assert!(err.contains("performance.parallel_execution.task_timeout: must be a positive number of seconds, at most"), "{err}");
        assert!(
            err.contains(
                "performance.database.query_timeout: must be a positive number of seconds, at most"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_service_confines_posted_pipelines_by_default() {
        let c = load_text("server: { bind: \"127.0.0.1:9\" }\n").unwrap();
        let sandbox = &c.server.sandbox;
        assert!(sandbox.enabled && !sandbox.allow_commands && !sandbox.allow_private_network);
        assert!(!sandbox.confine_cli && sandbox.workspace.is_none());
        let c = load_text(
            "server:\n  sandbox: { workspace: /srv/ws, allow_commands: true, allow_private_network: true }\n",
        )
        .unwrap();
        assert_eq!(
            c.server.sandbox.workspace.as_deref(),
            Some(Path::new("/srv/ws"))
        );
        assert!(c.server.sandbox.allow_commands && c.server.sandbox.allow_private_network);
        let err = load_text(
            "server:\n  sandbox: { enabled: false, confine_cli: true, allow_comands: true }\n",
        )
        .unwrap_err();
        assert!(
            err.contains("server.sandbox.allow_comands: unknown field"),
            "{err}"
        );
        let err =
            load_text("server:\n  sandbox: { enabled: false, confine_cli: true }\n").unwrap_err();
        assert!(
            err.contains("server.sandbox.confine_cli: confines"),
            "{err}"
        );
    }

    fn load_text(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orc.yaml");
        std::fs::write(&path, text).unwrap();
        layers::load(Some(&path), &[])
            .map(|l| l.config)
            .map_err(|e| e.0)
    }
}
