//! The models a run can use, from the config file's `models:` list: lookup by name,
//! selection by requirements, and the API key of the model chosen.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::provider_kind::ProviderKind;
use crate::secret::ApiKey;
use crate::spec::ModelSpec;

/// What a step asks of a model when it names none (`requires_model: {…}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    /// Tokens the model must accept, at least.
    pub context_window: Option<u64>,
    /// Tags of which the model needs one (`code`, `fast`, …), or a single level
    /// (`low`, `medium`, `high`, `very-high`) the model's tags must reach.
    pub expertise: Vec<String>,
    /// Smallest size, in billions of parameters.
    pub min_size: Option<f64>,
    /// Largest size, in billions of parameters.
    pub max_size: Option<f64>,
    /// Most USD one call may cost, estimated at [`ESTIMATED_CALL_TOKENS`] tokens in and
    /// out; local models and models priced at zero always pass.
    pub cost_limit: Option<f64>,
}

/// Input and output tokens a call is assumed to use when `cost_limit` is checked
/// before the prompt is known.
pub const ESTIMATED_CALL_TOKENS: (u64, u64) = (500, 500);

/// A model ready to call: its config entry and its API key.
#[derive(Debug, Clone)]
pub struct Model {
    /// The config entry.
    pub spec: Arc<ModelSpec>,
    /// The key read from `api_key_env`, when the model names a variable.
    pub key: Option<ApiKey>,
}

/// The configured models.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    models: Vec<Arc<ModelSpec>>,
}

impl Registry {
    /// A registry of `models`, in config order. Names must be unique.
    pub fn new(models: Vec<ModelSpec>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for m in &models {
            if !seen.insert(m.name.as_str()) {
                return Err(format!("models: the name `{}` is used twice", m.name));
            }
        }
        Ok(Registry {
            models: models.into_iter().map(Arc::new).collect(),
        })
    }

    /// Every configured model, in config order.
    pub fn models(&self) -> &[Arc<ModelSpec>] {
        &self.models
    }

    /// Whether no model is configured.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Every spelling [`Registry::find`] accepts: names, `provider:name`,
    /// `provider:model`, and provider model ids that only one model has.
    pub fn references(&self) -> Vec<String> {
        let mut refs = Vec::with_capacity(self.models.len() * 4);
        for m in &self.models {
            refs.push(m.name.clone());
            refs.push(format!("{}:{}", m.provider, m.name));
            if m.model != m.name {
                refs.push(format!("{}:{}", m.provider, m.model));
                if self.find(&m.model).is_ok() {
                    refs.push(m.model.clone());
                }
            }
        }
        refs.sort();
        refs.dedup();
        refs
    }

    /// The model a pipeline names: its `name` exactly (names may contain `:`, like
    /// `llama3.2:1b`), else `provider:name` or `provider:model`, else a unique
    /// provider model id. Reads no key.
    pub fn find(&self, reference: &str) -> Result<Arc<ModelSpec>, Error> {
        let reference = reference.trim();
        if let Some(m) = self.models.iter().find(|m| m.name == reference) {
            return Ok(Arc::clone(m));
        }
        if let Some((provider, rest)) = reference.split_once(':')
            && let Ok(provider) = provider.parse::<ProviderKind>()
        {
            let found: Vec<_> = self
                .models
                .iter()
                .filter(|m| m.provider == provider && (m.name == rest || m.model == rest))
                .collect();
            return self.one(reference, found);
        }
        let found: Vec<_> = self
            .models
            .iter()
            .filter(|m| m.model == reference)
            .collect();
        self.one(reference, found)
    }

    fn one(&self, reference: &str, found: Vec<&Arc<ModelSpec>>) -> Result<Arc<ModelSpec>, Error> {
        match found.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => {
                let known: Vec<String> = self.models.iter().map(|m| m.name.clone()).collect();
                Err(Error::UnknownModel {
                    reference: reference.to_owned(),
                    suggestion: closest(reference, &known),
                    known,
                })
            }
            many => Err(Error::AmbiguousModel {
                reference: reference.to_owned(),
                matches: many
                    .iter()
                    .map(|m| format!("{}:{}", m.provider, m.name))
                    .collect(),
            }),
        }
    }

    /// The named model with its key; an unset key variable is an error naming it.
    pub fn resolve(&self, reference: &str) -> Result<Model, Error> {
        let spec = self.find(reference)?;
        let key = read_key(&spec)?;
        Ok(Model { spec, key })
    }

    /// Every model that meets `wanted` and whose key is set, in config order: the
    /// candidates the router chooses among for a step that names no model. An error
    /// names each model and why it was not eligible when none is.
    pub fn candidates(&self, wanted: &Requirements) -> Result<Vec<Model>, Error> {
        let mut rejected = Vec::new();
        let mut found = Vec::new();
        for spec in &self.models {
            if let Err(why) = meets(spec, wanted) {
                rejected.push((spec.name.clone(), why));
                continue;
            }
            match read_key(spec) {
                Ok(key) => found.push(Model {
                    spec: Arc::clone(spec),
                    key,
                }),
                Err(e) => rejected.push((spec.name.clone(), e.to_string())),
            }
        }
        if found.is_empty() {
            return Err(Error::NoModelMatch {
                wanted: describe(wanted),
                rejected,
            });
        }
        Ok(found)
    }

    /// The model for a step that names none: among the models that meet `wanted` and
    /// whose key is set, local models first, then the cheapest, then config order.
    /// Never falls back to a model that does not meet `wanted`.
    pub fn select(&self, wanted: &Requirements) -> Result<Model, Error> {
        let mut rejected = Vec::new();
        let mut best: Option<(Model, (bool, f64, usize))> = None;
        for (index, spec) in self.models.iter().enumerate() {
            if let Err(why) = meets(spec, wanted) {
                rejected.push((spec.name.clone(), why));
                continue;
            }
            let key = match read_key(spec) {
                Ok(key) => key,
                Err(e) => {
                    rejected.push((spec.name.clone(), e.to_string()));
                    continue;
                }
            };
            let rank = (!spec.local, price_per_1k(spec), index);
            if best.as_ref().is_none_or(|(_, r)| rank_lt(rank, *r)) {
                best = Some((
                    Model {
                        spec: Arc::clone(spec),
                        key,
                    },
                    rank,
                ));
            }
        }
        best.map(|(m, _)| m).ok_or_else(|| Error::NoModelMatch {
            wanted: describe(wanted),
            rejected,
        })
    }
}

fn rank_lt(a: (bool, f64, usize), b: (bool, f64, usize)) -> bool {
    a.0.cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then(a.2.cmp(&b.2))
        .is_lt()
}

fn read_key(spec: &ModelSpec) -> Result<Option<ApiKey>, Error> {
    spec.api_key().map_err(|e| match e {
        Error::MissingKey { .. } => e,
        other => Error::MissingKey {
            model: spec.name.clone(),
            var: other.to_string(),
        },
    })
}

/// USD per 1k input plus 1k output tokens; local models cost nothing, unpriced remote
/// models sort last.
fn price_per_1k(spec: &ModelSpec) -> f64 {
    if spec.local {
        return 0.0;
    }
    spec.cost
        .map_or(f64::INFINITY, |c| c.input_per_1k + c.output_per_1k)
}

/// Expertise levels, lowest first.
const LEVELS: &[&str] = &["low", "medium", "high", "very-high"];

/// The level a model's tags reach: analysis/research → very-high, code/reasoning →
/// high, only fast/compact → low, otherwise medium.
pub(crate) fn level_of(tags: &[String]) -> usize {
    let has = |t: &str| tags.iter().any(|x| x.eq_ignore_ascii_case(t));
    if has("analysis") || has("research") {
        3
    } else if has("code") || has("reasoning") {
        2
    } else if !tags.is_empty() && tags.iter().all(|t| t == "fast" || t == "compact") {
        0
    } else {
        1
    }
}

/// Whether `spec` meets `wanted`, or why not.
fn meets(spec: &ModelSpec, wanted: &Requirements) -> Result<(), String> {
    if let Some(need) = wanted.context_window {
        match spec.context_window {
            Some(have) if have >= need => {}
            Some(have) => return Err(format!("context window {have} < {need}")),
            None => return Err(format!("context window unknown (need {need})")),
        }
    }
    if !wanted.expertise.is_empty() {
        let level = match wanted.expertise.as_slice() {
            [one] => LEVELS.iter().position(|l| l.eq_ignore_ascii_case(one)),
            _ => None,
        };
        match level {
            Some(need) if level_of(&spec.expertise) < need => {
                return Err(format!(
                    "expertise level {} < {}",
                    LEVELS[level_of(&spec.expertise)],
                    LEVELS[need]
                ));
            }
            Some(_) => {}
            None => {
                let any = wanted
                    .expertise
                    .iter()
                    .any(|w| spec.expertise.iter().any(|t| t.eq_ignore_ascii_case(w)));
                if !any {
                    return Err(format!(
                        "expertise [{}] has none of [{}]",
                        spec.expertise.join(", "),
                        wanted.expertise.join(", ")
                    ));
                }
            }
        }
    }
    if wanted.min_size.is_some() || wanted.max_size.is_some() {
        let Some(size) = spec.size_billions() else {
            return Err("size unknown".to_owned());
        };
        if let Some(min) = wanted.min_size.filter(|min| size < *min) {
            return Err(format!("size {size}b < {min}b"));
        }
        if let Some(max) = wanted.max_size.filter(|max| size > *max) {
            return Err(format!("size {size}b > {max}b"));
        }
    }
    if let Some(limit) = wanted.cost_limit {
        let cost = estimated_call_cost(spec);
        match cost {
            Some(c) if c <= limit => {}
            Some(c) => return Err(format!("estimated ${c:.6} per call > ${limit}")),
            None => return Err("no price configured (`cost:`)".to_owned()),
        }
    }
    Ok(())
}

/// The estimated cost of one call at [`ESTIMATED_CALL_TOKENS`]; zero for local models.
fn estimated_call_cost(spec: &ModelSpec) -> Option<f64> {
    if spec.local {
        return Some(0.0);
    }
    let (input, output) = ESTIMATED_CALL_TOKENS;
    spec.cost
        .map(|c| (input as f64 * c.input_per_1k + output as f64 * c.output_per_1k) / 1000.0)
}

fn describe(wanted: &Requirements) -> String {
    let mut parts = Vec::new();
    if let Some(c) = wanted.context_window {
        parts.push(format!("context_window ≥ {c}"));
    }
    if !wanted.expertise.is_empty() {
        parts.push(format!("expertise [{}]", wanted.expertise.join(", ")));
    }
    if let Some(s) = wanted.min_size {
        parts.push(format!("min_size {s}b"));
    }
    if let Some(s) = wanted.max_size {
        parts.push(format!("max_size {s}b"));
    }
    if let Some(c) = wanted.cost_limit {
        parts.push(format!("cost_limit ${c}"));
    }
    if parts.is_empty() {
        "no requirements".to_owned()
    } else {
        parts.join(", ")
    }
}

impl fmt::Display for Requirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}

/// The known name closest to `wanted`, when it is close (edit distance ≤ 2, or a
/// prefix of one another).
fn closest(wanted: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(wanted.len() / 4) || k.starts_with(wanted))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(json: &str) -> Registry {
        let specs: Vec<ModelSpec> = serde_json::from_str(json).unwrap_or_default();
        Registry::new(specs).unwrap_or_default()
    }

    fn three() -> Registry {
        registry(
            r#"[
            {"name": "llama3.2:1b", "provider": "openai", "base_url": "http://127.0.0.1:11434/v1",
             "local": true, "size": "1b", "expertise": ["fast"], "context_window": 8192},
            {"name": "small", "provider": "openai", "model": "gpt-4o-mini",
             "cost": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
             "size": "8b", "expertise": ["general", "fast"], "context_window": 128000},
            {"name": "big", "provider": "anthropic", "model": "claude-sonnet",
             "cost": {"input_per_1k": 0.003, "output_per_1k": 0.015},
             "size": "400b", "expertise": ["code", "analysis"], "context_window": 200000}
        ]"#,
        )
    }

    #[test]
    fn lookup_by_name_provider_name_and_colon_ids() {
        let r = three();
        assert_eq!(r.models().len(), 3);
        assert_eq!(
            r.find("llama3.2:1b").map(|m| m.name.clone()),
            Ok("llama3.2:1b".into())
        );
        assert_eq!(
            r.find("openai:llama3.2:1b").map(|m| m.name.clone()),
            Ok("llama3.2:1b".into())
        );
        assert_eq!(
            r.find("openai:small").map(|m| m.name.clone()),
            Ok("small".into())
        );
        assert_eq!(
            r.find("openai:gpt-4o-mini").map(|m| m.name.clone()),
            Ok("small".into())
        );
        assert_eq!(
            r.find("gpt-4o-mini").map(|m| m.name.clone()),
            Ok("small".into())
        );
        assert_eq!(
            r.find("anthropic:big").map(|m| m.name.clone()),
            Ok("big".into())
        );
        let err = r
            .find("smal")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("did you mean `small`"), "{err}");
        assert!(matches!(
            r.find("anthropic:small"),
            Err(Error::UnknownModel { .. })
        ));
        assert!(r.references().contains(&"openai:llama3.2:1b".to_owned()));
    }

    #[test]
    fn requirements_filter_and_never_fall_back() {
        let r = three();
        let pick = |w: Requirements| r.select(&w).map(|m| m.spec.name.clone());
        assert_eq!(
            pick(Requirements::default()),
            Ok("llama3.2:1b".into()),
            "local first"
        );
        let big_window = Requirements {
            context_window: Some(150_000),
            ..Requirements::default()
        };
        assert_eq!(pick(big_window), Ok("big".into()));
        let code = Requirements {
            expertise: vec!["code".into()],
            ..Requirements::default()
        };
        assert_eq!(pick(code), Ok("big".into()));
        let high = Requirements {
            expertise: vec!["high".into()],
            ..Requirements::default()
        };
        assert_eq!(pick(high), Ok("big".into()));
        let mid = Requirements {
            min_size: Some(2.0),
            max_size: Some(100.0),
            ..Requirements::default()
        };
        assert_eq!(pick(mid), Ok("small".into()));
        let cheap_and_big = Requirements {
            min_size: Some(100.0),
            cost_limit: Some(0.001),
            ..Requirements::default()
        };
        let err = r
            .select(&cheap_and_big)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("big: estimated"), "{err}");
        assert!(err.contains("small: size 8b < 100b"), "{err}");
        let names = |w: Requirements| -> Vec<String> {
            r.candidates(&w)
                .map(|c| c.iter().map(|m| m.spec.name.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            names(Requirements::default()),
            ["llama3.2:1b", "small", "big"]
        );
        let mid = Requirements {
            min_size: Some(2.0),
            ..Requirements::default()
        };
        assert_eq!(names(mid), ["small", "big"]);
        assert!(r.candidates(&cheap_and_big).is_err());
    }

    #[test]
    fn an_unset_key_makes_a_model_unselectable_and_names_the_variable() {
        let r = registry(
            r#"[{"name": "paid", "provider": "openai", "api_key_env": "ORC_TEST_SURELY_UNSET_KEY"}]"#,
        );
        let err = r
            .resolve("paid")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ORC_TEST_SURELY_UNSET_KEY"), "{err}");
        let err = r
            .select(&Requirements::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ORC_TEST_SURELY_UNSET_KEY"), "{err}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let specs = vec![
            ModelSpec::new("a", ProviderKind::OpenAi),
            ModelSpec::new("a", ProviderKind::Anthropic),
        ];
        assert!(Registry::new(specs).is_err());
    }
}
