//! The scenario file: YAML read with orc's front end (every value keeps its line and column),
//! typed strictly (an unknown key is an error), then checked rule by rule. Every problem found
//! is reported at once, each as `file:line:col: key: message`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orc_pipeline::{Kind, Node, Pos};
use serde::Deserialize;
use serde_json::Value;

use crate::options::{
    Action, DEFAULT_MAX_DURATION, DEFAULT_TIMEOUT, LoadTestOptions, PipelineSource, Scenario,
    Target, ThinkTime, Token,
};
use crate::template::Template;
use crate::{Error, Result};

/// The largest scenario file (or pipeline file it names) read.
const MAX_FILE_BYTES: u64 = 4 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    target: String,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    concurrent_users: Option<i64>,
    #[serde(default)]
    ramp_up_time: Option<Value>,
    #[serde(default)]
    test_duration: Option<Value>,
    #[serde(default)]
    requests: Option<i64>,
    #[serde(default)]
    think_time: Option<Value>,
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default)]
    max_duration: Option<Value>,
    #[serde(default)]
    rate: Option<f64>,
    scenarios: Vec<ScenarioSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    pipeline_id: Option<String>,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    pipeline_file: Option<PathBuf>,
    #[serde(default)]
    inputs: Option<Value>,
    #[serde(default)]
    input_list: Option<Vec<Value>>,
    #[serde(default)]
    request: Option<RequestSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    expect_status: Option<u16>,
}

/// The problems found so far, each at a dotted key.
#[derive(Default)]
struct Issues(Vec<(String, String)>);

impl Issues {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }
}

impl LoadTestOptions {
    /// Reads a scenario file. Paths in it (`pipeline_file`) are relative to its folder; the
    /// bearer token is read from the variable `token_env` names.
    pub fn from_file(path: &Path) -> Result<LoadTestOptions> {
        let text = orc_runtime::config::layers::read_bounded(path, MAX_FILE_BYTES, "scenario file")
            .map_err(Error::Scenario)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        LoadTestOptions::from_yaml(&path.display().to_string(), &text, dir)
    }

    /// Reads a scenario file's text; `name` is what errors call it, `dir` where its relative
    /// paths start.
    pub fn from_yaml(name: &str, text: &str, dir: &Path) -> Result<LoadTestOptions> {
        let root = orc_pipeline::parse(text).map_err(|e| {
            Error::Scenario(format!(
                "{name}:{}:{}: {}",
                e.pos.line, e.pos.col, e.message
            ))
        })?;
        let spec: FileSpec = serde_path_to_error::deserialize(root.to_json()).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().to_string();
            render(name, &root, &[(key, message)])
        })?;
        let mut issues = Issues::default();
        let options = check(spec, dir, &mut issues);
        if issues.0.is_empty() {
            Ok(options)
        } else {
            Err(render(name, &root, &issues.0))
        }
    }
}

/// Every rule the types alone do not enforce, each problem an issue.
fn check(spec: FileSpec, dir: &Path, issues: &mut Issues) -> LoadTestOptions {
    let target = match spec.target.as_str() {
        "inprocess" => Target::InProcess,
        url if url.starts_with("http://") || url.starts_with("https://") => {
            Target::Url(url.trim_end_matches('/').to_owned())
        }
        other => {
            issues.add(
                "target",
                format!("`{other}` is neither an http:// or https:// URL nor `inprocess`"),
            );
            Target::InProcess
        }
    };
    let token = spec.token_env.as_deref().and_then(|var| {
        match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Some(Token::new(t.trim().to_owned())),
            // The variable's name is safe to print; its value never is.
            _ => {
                issues.add(
                    "token_env",
                    format!("the environment variable `{var}` is not set"),
                );
                None
            }
        }
    });
    let users = match spec.concurrent_users {
        None => 1,
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=crate::MAX_USERS).contains(&n) => n,
            _ => {
                issues.add(
                    "concurrent_users",
                    format!("between 1 and {}, not {n}", crate::MAX_USERS),
                );
                1
            }
        },
    };
    let mut seconds = |key: &str, v: Option<&Value>| {
        v.and_then(|v| match duration(v) {
            Ok(d) => Some(d),
            Err(message) => {
                issues.add(key, message);
                None
            }
        })
    };
    let ramp_up = seconds("ramp_up_time", spec.ramp_up_time.as_ref()).unwrap_or_default();
    let duration = seconds("test_duration", spec.test_duration.as_ref());
    let timeout = seconds("timeout", spec.timeout.as_ref()).unwrap_or(DEFAULT_TIMEOUT);
    let max_duration =
        seconds("max_duration", spec.max_duration.as_ref()).unwrap_or(DEFAULT_MAX_DURATION);
    let think_time = match &spec.think_time {
        None => ThinkTime::None,
        Some(v) => think(v, issues),
    };
    let requests = spec.requests.and_then(|n| match u64::try_from(n) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            issues.add("requests", format!("a number of requests above 0, not {n}"));
            None
        }
    });
    if spec.test_duration.is_none() && spec.requests.is_none() {
        issues.add(
            "",
            "give `test_duration` or `requests` (or both): the test must end",
        );
    }
    if let Some(rate) = spec.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        issues.add("rate", format!("requests per second above 0, not {rate}"));
    }
    if spec.scenarios.is_empty() {
        issues.add("scenarios", "at least one scenario");
    }
    let scenarios = spec
        .scenarios
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| scenario(s, &format!("scenarios[{i}]"), dir, issues))
        .collect();
    LoadTestOptions {
        target,
        token,
        users,
        ramp_up,
        duration,
        requests,
        think_time,
        timeout,
        max_duration,
        rate: spec.rate,
        scenarios,
        runtime: None,
    }
}

fn scenario(s: ScenarioSpec, at: &str, dir: &Path, issues: &mut Issues) -> Option<Scenario> {
    let weight = match s.weight {
        None => 1,
        Some(w) => match u32::try_from(w) {
            Ok(w) if w > 0 => w,
            _ => {
                issues.add(
                    format!("{at}.weight"),
                    format!("a whole number above 0, not {w}"),
                );
                1
            }
        },
    };
    let given = [
        s.pipeline_id.is_some(),
        s.pipeline.is_some(),
        s.pipeline_file.is_some(),
        s.request.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        issues.add(
            at.to_owned(),
            format!(
                "scenario `{}`: give one of `pipeline_id`, `pipeline`, `pipeline_file` or `request`",
                s.name
            ),
        );
        return None;
    }
    let action = if let Some(request) = s.request {
        if s.inputs.is_some() || s.input_list.is_some() {
            issues.add(
                format!("{at}.inputs"),
                "inputs are for pipelines; a request's values vary in its `body`",
            );
        }
        let method = request.method.as_deref().unwrap_or("GET");
        let method = match http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                issues.add(
                    format!("{at}.request.method"),
                    format!("`{method}` is not an HTTP method"),
                );
                http::Method::GET
            }
        };
        if !request.path.starts_with('/') {
            issues.add(
                format!("{at}.request.path"),
                format!("`{}` does not start with `/`", request.path),
            );
        }
        let body = request
            .body
            .as_ref()
            .and_then(|b| template(issues, format!("{at}.request.body"), b));
        Action::Request {
            method,
            path: request.path,
            body,
            expect_status: request.expect_status,
        }
    } else {
        let pipeline = if let Some(id) = s.pipeline_id {
            PipelineSource::Registered(id)
        } else if let Some(text) = s.pipeline {
            PipelineSource::Text {
                name: format!("{}.yaml", s.name),
                text,
            }
        } else {
            let file = dir.join(s.pipeline_file.unwrap_or_default());
            match orc_runtime::config::layers::read_bounded(&file, MAX_FILE_BYTES, "pipeline file")
            {
                Ok(text) => PipelineSource::Text {
                    name: file
                        .file_name()
                        .map_or_else(|| s.name.clone(), |n| n.to_string_lossy().into_owned()),
                    text,
                },
                Err(e) => {
                    issues.add(format!("{at}.pipeline_file"), e);
                    return None;
                }
            }
        };
        let fixed = match &s.inputs {
            None => Some(Template::constant(Value::Object(serde_json::Map::new()))),
            Some(v @ Value::Object(_)) => template(issues, format!("{at}.inputs"), v),
            Some(_) => {
                issues.add(format!("{at}.inputs"), "a mapping of input names to values");
                None
            }
        };
        let mut list = Vec::new();
        for (i, item) in s.input_list.iter().flatten().enumerate() {
            let key = format!("{at}.input_list[{i}]");
            if item.is_object() {
                list.extend(template(issues, key, item));
            } else {
                issues.add(key, "a mapping of input names to values");
            }
        }
        Action::Pipeline {
            pipeline,
            inputs: Template::inputs(list, fixed?),
        }
    };
    Some(Scenario {
        name: s.name,
        weight,
        action,
    })
}

/// The template of the value at `key`, or an issue at the bad part of it.
fn template(issues: &mut Issues, key: String, v: &Value) -> Option<Template> {
    match Template::new(v) {
        Ok(t) => Some(t),
        Err((path, message)) => {
            let key = if path.is_empty() {
                key
            } else if path.starts_with('[') {
                format!("{key}{path}")
            } else {
                format!("{key}.{path}")
            };
            issues.add(key, message);
            None
        }
    }
}

/// A duration as scenario files and `--duration` write it: seconds, or `500ms`, `30s`, `5m`,
/// `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration(&Value::String(text.to_owned()))
}

/// A duration: a number of seconds, or text such as `500ms`, `30s`, `5m`, `1h`.
fn duration(v: &Value) -> Result<Duration, String> {
    let bad = || format!("a duration (seconds, or `250us`, `500ms`, `30s`, `5m`, `1h`), not {v}");
    let secs = match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim();
            let (number, unit) = s
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or((s, "s"), |i| (&s[..i], &s[i..]));
            let scale = match unit {
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            number.trim().parse::<f64>().map_err(|_| bad())? * scale
        }
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && (0.0..=1e7).contains(&secs)) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `think_time`: a duration, or `{min, max}` for a uniformly random one.
fn think(v: &Value, issues: &mut Issues) -> ThinkTime {
    match v {
        Value::Object(map) => {
            for key in map.keys().filter(|k| *k != "min" && *k != "max") {
                issues.add(
                    format!("think_time.{key}"),
                    format!("unknown field `{key}`, expected `min` or `max`"),
                );
            }
            let mut bound = |key: &str| match map.get(key).map(duration) {
                Some(Ok(d)) => Some(d),
                Some(Err(m)) => {
                    issues.add(format!("think_time.{key}"), m);
                    None
                }
                None => {
                    issues.add("think_time", format!("missing field `{key}`"));
                    None
                }
            };
            match (bound("min"), bound("max")) {
                (Some(min), Some(max)) if min <= max => ThinkTime::Uniform(min, max),
                (Some(_), Some(_)) => {
                    issues.add("think_time.max", "must not be below `min`");
                    ThinkTime::None
                }
                _ => ThinkTime::None,
            }
        }
        other => match duration(other) {
            Ok(d) => ThinkTime::Fixed(d),
            Err(m) => {
                issues.add("think_time", m);
                ThinkTime::None
            }
        },
    }
}

/// The problems as lines `file:line:col: key: message`, in the file's order.
fn render(name: &str, root: &Node, issues: &[(String, String)]) -> Error {
    let mut lines: Vec<(Pos, String)> = issues
        .iter()
        .map(|(key, message)| {
            let pos = locate(root, key, message);
            let message = with_suggestion(message);
            let line = if key.is_empty() {
                format!("{name}:{}:{}: {message}", pos.line, pos.col)
            } else {
                format!("{name}:{}:{}: {key}: {message}", pos.line, pos.col)
            };
            (pos, line)
        })
        .collect();
    lines.sort_by_key(|(pos, _)| (pos.line, pos.col));
    Error::Scenario(
        lines
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// serde's `unknown field `x`, expected one of `a`, `b`` with the closest name suggested.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let field = rest.split('`').next().unwrap_or_default();
    let candidates = rest
        .split_once("expected")
        .map(|(_, names)| names.split('`').skip(1).step_by(2).collect::<Vec<_>>())
        .unwrap_or_default();
    match orc_pipeline::did_you_mean(field, candidates) {
        Some(name) => format!("{message} (did you mean `{name}`?)"),
        None => message.to_owned(),
    }
}

/// Where the value at a dotted key (`scenarios[1].request.path`) is written: the key itself,
/// else its nearest enclosing one; an unknown field named in `message` is found in its mapping.
fn locate(root: &Node, key: &str, message: &str) -> Pos {
    let mut node = root;
    let mut pos = if root.pos.line == 0 {
        Pos { line: 1, col: 1 }
    } else {
        root.pos
    };
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            let Kind::Map(entries) = &node.kind else {
                return pos;
            };
            let Some((k, v)) = entries.iter().find(|(k, _)| k.name == name) else {
                return pos;
            };
            pos = k.pos;
            node = v;
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            let (Kind::Seq(items), Ok(i)) = (&node.kind, index.parse::<usize>()) else {
                return pos;
            };
            let Some(item) = items.get(i) else {
                return pos;
            };
            pos = item.pos;
            node = item;
        }
    }
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        && let Kind::Map(entries) = &node.kind
        && let Some((k, _)) = entries.iter().find(|(k, _)| k.name == field)
    {
        return k.pos;
    }
    pos
}
