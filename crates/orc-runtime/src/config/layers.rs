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
pub enum Origin {
    /// Built into orc.
    Default,
    /// The config file, at this line and column.
    File(Pos),
    /// This environment variable.
    Env(String),
}

/// The effective configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The config file, when there is one.
    pub path: Option<PathBuf>,
    /// Positions of every key written in the file, by dotted path (`models[0].name`).
    positions: BTreeMap<String, Pos>,
    /// The overrides applied, by dotted path, with the variable that set each.
    overrides: BTreeMap<String, String>,
}

impl Loaded {
    /// Where the value at `key` (a dotted path) was set.
    pub fn origin(&self, key: &str) -> Origin {
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
pub fn environment() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("ORC_") && k.contains("__"))
        .collect();
    vars.sort();
    vars
}

/// The largest config file orc reads: a config is a few kilobytes, and a path such as
/// `/dev/zero` must not be read forever.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most problems one load reports; past it, the rest of the file is not examined.
const MAX_ISSUES: usize = 50;

/// Reads a text file of at most `limit` bytes; a larger one (or an endless one) is an error.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{}: the {what} is larger than {} MiB",
            path.display(),
            limit >> 20
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("{}: the {what} is not UTF-8 text: {e}", path.display()))
}

/// Finds the config file (`explicit`, else `ORC_CONFIG`, else `./orc.yaml` if it exists),
/// loads it over the defaults, applies `env` and checks the result. Every problem is listed,
/// each once: wrong types and unknown keys in the file, bad overrides, and values out of range.
pub fn load(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => match std::env::var_os("ORC_CONFIG") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => Some(PathBuf::from("orc.yaml")).filter(|p| p.is_file()),
        },
    };
    let text = match &path {
        Some(path) => Some(read_bounded(path, MAX_FILE_BYTES, "config file").map_err(ConfigError)?),
        None => None,
    };
    from_text(path, text.as_deref(), env)
}

/// Loads a config file's `text` (read from `path`, which only names it in messages; `None`
/// for no file) over the defaults, applies `env` and checks the result: [`load`] once the
/// file is read.
pub fn from_text(
    path: Option<PathBuf>,
    text: Option<&str>,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut issues = Vec::new();
    let (tree, positions) = match (&path, text) {
        (Some(path), Some(text)) => {
            if text.trim().is_empty() {
                (None, BTreeMap::new())
            } else {
                let root = orc_pipeline::parse(text).map_err(|e| {
                    ConfigError(format!(
                        "{}:{}:{}: {}",
                        path.display(),
                        e.pos.line,
                        e.pos.col,
                        e.message
                    ))
                })?;
                let mut positions = BTreeMap::new();
                collect_positions(&root, "", &mut positions);
                (Some(root.to_json()), positions)
            }
        }
        _ => (None, BTreeMap::new()),
    };
    let mut tree = match tree {
        Some(Value::Null) | None => Value::Object(serde_json::Map::new()),
        Some(t @ Value::Object(_)) => t,
        Some(other) => {
            return Err(ConfigError(format!(
                "{}: the config file must be a mapping of sections, not {}",
                path.as_deref()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                json_type(&other)
            )));
        }
    };
    let config = typed(&mut tree, &mut issues);
    let (config, overrides) = apply_env(config, env, &mut issues);
    let loaded = Loaded {
        config,
        path,
        positions,
        overrides,
    };
    issues.extend(loaded.config.check());
    if issues.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigError(render_issues(&loaded, &issues)))
    }
}

/// Reads the file's tree as a [`Config`]. Each value of the wrong type (or key that does not
/// exist) becomes an issue naming its dotted key and is taken out of the tree, and the rest is
/// read again, so one load lists every such problem. What is taken out keeps its default.
fn typed(tree: &mut Value, issues: &mut Vec<Issue>) -> Config {
    let mut taken = std::collections::HashSet::new();
    for _ in 0..MAX_ISSUES {
        let err = match serde_path_to_error::deserialize::<_, Config>(&*tree) {
            Ok(config) => return config,
            Err(e) => e,
        };
        let key = err.path().to_string();
        let message = err.inner().to_string();
        // Taking a required value out makes its parent miss it: already reported, so the
        // parent goes too, silently.
        let follows_from_removal = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .is_some_and(|field| taken.contains(&format!("{key}.{field}")));
        if !remove(tree, &key) {
            issues.push(super::issue(key, message));
            break;
        }
        if !follows_from_removal {
            issues.push(super::issue(key.clone(), message));
        }
        taken.insert(key);
    }
    Config::default()
}

/// Removes the value at a dotted path (`performance.caching.model_cache.ttl`, `models[0].name`).
fn remove(tree: &mut Value, key: &str) -> bool {
    let mut segments: Vec<Segment<'_>> = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            segments.push(Segment::Key(name));
        }
        while let Some((index, tail)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => segments.push(Segment::Index(i)),
                Err(_) => return false,
            }
            rest = tail.trim_start_matches('[');
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Key(k), Value::Object(map)) => match map.get_mut(*k) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Key(k), Value::Object(map)) => map.remove(*k).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// How issues about an override's variable itself start (their key is the variable).
const ENV_ISSUE: &str = "environment variable ";

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn render_issues(loaded: &Loaded, issues: &[Issue]) -> String {
    let mut seen = std::collections::HashSet::new();
    issues
        .iter()
        .filter(|i| seen.insert((i.key.as_str(), i.message.as_str())))
        .map(|i| {
            // A bad override is named by its variable, which is where it was set.
            if i.key.starts_with(ENV_ISSUE) {
                format!("{}: {}", i.key, i.message)
            } else {
                format!("{}{}: {}", loaded.locate(&i.key), i.key, i.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
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
/// number, `true` a boolean, anything else a string). A variable that names no key, names a
/// section or gives a value of the wrong type is an issue that names it (the key keeps its
/// value from the file); lists (`models`) cannot be overridden.
fn apply_env(
    config: Config,
    env: &[(String, String)],
    issues: &mut Vec<Issue>,
) -> (Config, BTreeMap<String, String>) {
    let mut overrides = BTreeMap::new();
    if env.is_empty() {
        return (config, overrides);
    }
    let Ok(mut tree) = serde_json::to_value(&config) else {
        return (config, overrides);
    };
    for (var, raw) in env {
        let segments: Vec<String> = var["ORC_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let key = segments.join(".");
        let at = format!("{ENV_ISSUE}{var}");
        let Some(slot) = lookup_mut(&mut tree, &segments) else {
            issues.push(super::issue(at, format!("there is no config key `{key}`")));
            continue;
        };
        if matches!(slot, Value::Object(_) | Value::Array(_)) {
            issues.push(super::issue(
                at,
                format!("`{key}` is a section, not a value; set one of its keys"),
            ));
            continue;
        }
        let before = std::mem::replace(slot, scalar(raw));
        // Check each override on its own, so an error names the variable that caused it.
        match serde_json::from_value::<Config>(tree.clone()) {
            Ok(_) => {
                overrides.insert(key, var.clone());
            }
            Err(e) => {
                issues.push(super::issue(at, format!("`{key}`: {e}")));
                if let Some(slot) = lookup_mut(&mut tree, &segments) {
                    *slot = before;
                }
            }
        }
    }
    match serde_json::from_value::<Config>(tree) {
        Ok(config) => (config, overrides),
        Err(_) => (config, BTreeMap::new()),
    }
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
pub fn leaves(config: &Config) -> Vec<(String, Value)> {
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
