//! Where the effective configuration comes from, in order of precedence: built-in defaults,
//! the config file, then `ORC_<SECTION>__<KEY>` environment variables (`__` separates the
//! levels: `ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS=8`). Remembers where each value
//! was set, for error messages (file, line, column) and `orc config show`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orc_pipeline::{Kind, Node, Pos};
use serde_json::Value;

use super::{Config, ConfigError, Issue};

/// Where a value of the effective configuration was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Built into orc.
    Default,
    /// The config file, at this line and column.
    File(Pos),
    /// This environment variable.
    Env(String),
}

/// The effective configuration and where it came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    /// The config file, when there is one.
    pub(crate) path: Option<PathBuf>,
    /// Positions of every key written in the file, by dotted path (`models[0].name`).
    positions: BTreeMap<String, Pos>,
    /// The overrides applied, by dotted path, with the variable that set each.
    overrides: BTreeMap<String, String>,
}

impl Loaded {
    /// Where the value at `key` (a dotted path) was set.
    pub(crate) fn origin(&self, key: &str) -> Origin {
        if let Some(var) = self.overrides.get(key) {
            return Origin::Env(var.clone());
        }
        match self.positions.get(key) {
            Some(pos) => Origin::File(*pos),
            None => Origin::Default,
        }
    }

    /// Where a message about `key` points: the key itself, else its nearest enclosing key that
    /// was written somewhere.
    fn nearest_origin(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            match self.origin(k) {
                Origin::Default => match k.rfind(['.', '[']) {
                    Some(i) => k = &k[..i],
                    None => return Origin::Default,
                },
                found => return found,
            }
        }
    }

    /// `file:line:col: ` (or `ORC_…: `) in front of a message about `key`.
    fn locate(&self, key: &str) -> String {
        let file = self.path.as_deref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        match self.nearest_origin(key) {
            Origin::Env(var) => format!("environment variable {var}: "),
            Origin::File(pos) => format!("{file}:{}:{}: ", pos.line, pos.col),
            Origin::Default => format!("{file}: "),
        }
    }
}

/// The environment's `ORC_<SECTION>__<KEY>` variables (those with a `__`), in a stable order.
pub(crate) fn environment() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("ORC_") && k.contains("__"))
        .collect();
    vars.sort();
    vars
}

/// Finds the config file (`explicit`, else `ORC_CONFIG`, else `./orc.yaml` if it exists),
/// loads it over the defaults, applies `env` and checks the result.
pub(crate) fn load(
    explicit: Option<&Path>,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => match std::env::var_os("ORC_CONFIG") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => Some(PathBuf::from("orc.yaml")).filter(|p| p.is_file()),
        },
    };
    let (config, positions) = match &path {
        None => (Config::default(), BTreeMap::new()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "{}: cannot read the config file: {e}",
                    path.display()
                ))
            })?;
            let config =
                parse(&text).map_err(|e| ConfigError(format!("{}:{e}", path.display())))?;
            let mut positions = BTreeMap::new();
            if let Ok(root) = orc_pipeline::parse(&text) {
                collect_positions(&root, "", &mut positions);
            }
            (config, positions)
        }
    };
    let (config, overrides) = apply_env(config, env)?;
    let loaded = Loaded {
        config,
        path,
        positions,
        overrides,
    };
    let issues = loaded.config.check();
    if issues.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigError(render_issues(&loaded, &issues)))
    }
}

fn render_issues(loaded: &Loaded, issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}{}: {}", loaded.locate(&i.key), i.key, i.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses the file's text; errors start with `line:col: ` (the caller puts the file in front).
pub(crate) fn parse(text: &str) -> Result<Config, String> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_saphyr::from_str::<Config>(text).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        match e.location() {
            Some(l) => format!("{}:{}: {first}", l.line(), l.column()),
            None => format!(" {first}"),
        }
    })
}

fn collect_positions(node: &Node, prefix: &str, out: &mut BTreeMap<String, Pos>) {
    match &node.kind {
        Kind::Map(entries) => {
            for (key, value) in entries {
                let path = if prefix.is_empty() {
                    key.name.clone()
                } else {
                    format!("{prefix}.{}", key.name)
                };
                out.insert(path.clone(), key.pos);
                collect_positions(value, &path, out);
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                out.insert(path.clone(), item.pos);
                collect_positions(item, &path, out);
            }
        }
        _ => {}
    }
}

/// Applies each `ORC_A__B__C=value` to the key `a.b.c`. The value is read as YAML (`8` is a
/// number, `true` a boolean, anything else a string). A variable that names no key is an
/// error that names it; lists (`models`) cannot be overridden.
fn apply_env(
    config: Config,
    env: &[(String, String)],
) -> Result<(Config, BTreeMap<String, String>), ConfigError> {
    let mut overrides = BTreeMap::new();
    if env.is_empty() {
        return Ok((config, overrides));
    }
    let mut tree = serde_json::to_value(&config)
        .map_err(|e| ConfigError(format!("cannot apply environment overrides: {e}")))?;
    for (var, raw) in env {
        let segments: Vec<String> = var["ORC_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let key = segments.join(".");
        let slot = lookup_mut(&mut tree, &segments).ok_or_else(|| {
            ConfigError(format!(
                "environment variable {var}: there is no config key `{key}`"
            ))
        })?;
        if matches!(slot, Value::Object(_) | Value::Array(_)) {
            return Err(ConfigError(format!(
                "environment variable {var}: `{key}` is a section, not a value; set one of its keys"
            )));
        }
        *slot = scalar(raw);
        // Check each override on its own, so an error names the variable that caused it.
        serde_json::from_value::<Config>(tree.clone())
            .map_err(|e| ConfigError(format!("environment variable {var} (`{key}`): {e}")))?;
        overrides.insert(key, var.clone());
    }
    let config = serde_json::from_value::<Config>(tree)
        .map_err(|e| ConfigError(format!("environment overrides: {e}")))?;
    Ok((config, overrides))
}

fn lookup_mut<'a>(tree: &'a mut Value, segments: &[String]) -> Option<&'a mut Value> {
    segments
        .iter()
        .try_fold(tree, |node, segment| node.as_object_mut()?.get_mut(segment))
}

fn scalar(raw: &str) -> Value {
    match serde_saphyr::from_str::<Value>(raw) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(raw.to_owned()),
    }
}

/// Every leaf of the effective configuration as `(dotted key, value)`, in document order.
pub(crate) fn leaves(config: &Config) -> Vec<(String, Value)> {
    fn walk(v: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(child, path, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{prefix}[{i}]"), out);
                }
            }
            other => out.push((prefix, other.clone())),
        }
    }
    let mut out = Vec::new();
    if let Ok(tree) = serde_json::to_value(config) {
        walk(&tree, String::new(), &mut out);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orc.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn out_of_range_values_name_file_line_and_key() {
        let (_dir, path) = write(
            "performance:\n  resource_limits:\n    memory_cleanup_threshold: 1.5\n    max_memory: lots\n",
        );
        let err = load(Some(&path), &[]).unwrap_err().0;
        let file = path.display().to_string();
        assert!(
            err.contains(&format!(
                "{file}:3:5: performance.resource_limits.memory_cleanup_threshold: must be a fraction in (0, 1]"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "{file}:4:5: performance.resource_limits.max_memory:"
            )),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_the_file_and_is_remembered() {
        let (_dir, path) = write("performance:\n  parallel_execution:\n    max_workers: 4\n");
        let loaded = load(
            Some(&path),
            &env(&[
                ("ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS", "8"),
                ("ORC_STATE__URL", "sqlite:///tmp/x.db"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.performance.parallel_execution.max_workers, 8);
        assert_eq!(
            loaded.config.state.url.as_deref(),
            Some("sqlite:///tmp/x.db")
        );
        assert_eq!(
            loaded.origin("performance.parallel_execution.max_workers"),
            Origin::Env("ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS".into())
        );
        assert_eq!(
            loaded.origin("performance.parallel_execution"),
            Origin::File(Pos { line: 2, col: 3 })
        );
        assert_eq!(
            loaded.origin("performance.parallel_execution.task_timeout"),
            Origin::Default
        );
        assert_eq!(
            loaded.origin("performance.database.query_timeout"),
            Origin::Default
        );
    }

    #[test]
    fn bad_overrides_name_the_variable() {
        let unknown = load(None, &env(&[("ORC_PERFORMANCE__PARALLEL__WORKERS", "8")])).unwrap_err();
        assert!(
            unknown.0.contains("ORC_PERFORMANCE__PARALLEL__WORKERS")
                && unknown.0.contains("performance.parallel.workers"),
            "{unknown}"
        );
        let wrong_type = load(
            None,
            &env(&[("ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS", "many")]),
        )
        .unwrap_err();
        assert!(
            wrong_type.0.starts_with(
                "environment variable ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS"
            ),
            "{wrong_type}"
        );
        let range = load(
            None,
            &env(&[("ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS", "0")]),
        )
        .unwrap_err();
        assert!(
            range.0.contains(
                "environment variable ORC_PERFORMANCE__PARALLEL_EXECUTION__MAX_WORKERS: performance.parallel_execution.max_workers: must be at least 1"
            ),
            "{range}"
        );
    }

    #[test]
    fn leaves_cover_every_section() {
        let keys: Vec<String> = leaves(&Config::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(keys.contains(&"performance.caching.model_cache.backend".to_owned()));
        assert!(keys.contains(&"performance.database.enable_query_caching".to_owned()));
        assert!(keys.contains(&"state.url".to_owned()));
    }
}
