//! The config file's `routing:` and `cost:` sections, and their checks against the
//! configured models.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigIssue, Error};
use crate::registry::Registry;

/// How the router picks among the models that may serve a step that names none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Lowest recent latency (time to first token for streams), weighted by success
    /// rate.
    Performance,
    /// Cheapest for the request's estimated tokens.
    Cost,
    /// An even mix of cost and latency (weighted by success rate), each taken
    /// relative to the highest among the candidates.
    #[default]
    Balanced,
    /// UCB1 over the calls so far: exploits the model with the best reward (success,
    /// quickly) and explores the ones tried least.
    Ucb,
}

impl Strategy {
    /// The name used in config files and decisions: `performance`, `cost`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Performance => "performance",
            Strategy::Cost => "cost",
            Strategy::Balanced => "balanced",
            Strategy::Ucb => "ucb",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fallback order for models without an explicit chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackStrategy {
    /// No fallback: the error is the step's.
    #[default]
    None,
    /// The other eligible models, cheapest first.
    Cost,
    /// The other eligible models, fastest (weighted by success rate) first.
    Performance,
}

/// `routing.cooldown`: a model that fails `failures` calls in a row is not chosen
/// (by the router, or as a fallback) for `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cooldown {
    /// Consecutive failures that start a cool-down (at least 1).
    pub failures: u32,
    /// How long it lasts, in seconds.
    pub seconds: f64,
}

impl Default for Cooldown {
    fn default() -> Self {
        Cooldown {
            failures: 3,
            seconds: 30.0,
        }
    }
}

/// The config file's `routing:` section: how a step that names no model gets one,
/// and where a failed call goes next.
///
/// ```
/// let routing: orc_models::RoutingConfig = serde_json::from_str(
///     r#"{"strategy": "ucb", "fallbacks": {"small": ["large"]}}"#,
/// ).unwrap();
/// assert_eq!(routing.strategy, orc_models::Strategy::Ucb);
/// assert_eq!(routing.complexity_threshold, 0.3);
/// assert_eq!(routing.cooldown.failures, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How the router picks (default `balanced`).
    pub strategy: Strategy,
    /// The fallback order for models without an explicit chain (default `none`).
    pub fallback_strategy: FallbackStrategy,
    /// Explicit fallback chains, by model name: tried in order on retryable errors
    /// (once the retry policy gave up), timeouts and context-window errors.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Requests whose complexity (0–1) is below this go to fast/cheap models, the
    /// others to capable ones (default 0.3).
    pub complexity_threshold: f64,
    /// When a failing model is set aside.
    pub cooldown: Cooldown,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            strategy: Strategy::default(),
            fallback_strategy: FallbackStrategy::default(),
            fallbacks: BTreeMap::new(),
            complexity_threshold: 0.3,
            cooldown: Cooldown::default(),
        }
    }
}

/// The config file's `cost:` section.
///
/// ```
/// let cost: orc_models::CostConfig = serde_json::from_str(r#"{"budget_per_hour": 100.0}"#).unwrap();
/// assert_eq!(cost.budget_per_hour, Some(100.0));
/// assert_eq!(cost.performance_threshold, 0.85);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// USD that may be spent in any sliding hour; `None` for no limit.
    pub budget_per_hour: Option<f64>,
    /// The success rate (0–1) a model must keep to stay eligible for routing and for
    /// strategy-ordered fallbacks (default 0.85). Only judged once a model has made
    /// [`MIN_CALLS_JUDGED`](crate::MIN_CALLS_JUDGED) calls, so a fresh model is always
    /// eligible; when no candidate meets it, all are eligible again.
    pub performance_threshold: f64,
    /// Prefer `local: true` models among candidates that are otherwise equal
    /// (default true).
    pub prefer_local_models: bool,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            budget_per_hour: None,
            performance_threshold: 0.85,
            prefer_local_models: true,
        }
    }
}

impl RoutingConfig {
    /// Every problem of the section against `registry`, in key order: fallback
    /// chains naming unknown models or their own model, cycles through chains, a
    /// `complexity_threshold` outside 0–1, a cool-down of 0 failures or of negative
    /// or non-finite seconds.
    pub fn issues(&self, registry: &Registry) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !(0.0..=1.0).contains(&self.complexity_threshold) {
            issues.push(ConfigIssue::new(
                "routing.complexity_threshold",
                format!("must be between 0 and 1, got {}", self.complexity_threshold),
            ));
        }
        if self.cooldown.failures == 0 {
            issues.push(ConfigIssue::new(
                "routing.cooldown.failures",
                "must be at least 1",
            ));
        }
        if !(self.cooldown.seconds.is_finite() && self.cooldown.seconds >= 0.0) {
            issues.push(ConfigIssue::new(
                "routing.cooldown.seconds",
                format!(
                    "must be a number of seconds ≥ 0, got {}",
                    self.cooldown.seconds
                ),
            ));
        }
        // Chains by canonical model name, for the cycle check.
        let mut edges: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (name, chain) in &self.fallbacks {
            let key = format!("routing.fallbacks.{name}");
            let from = match registry.find(name) {
                Ok(spec) => spec.name.clone(),
                Err(e) => {
                    issues.push(ConfigIssue::new(key, e.to_string()));
                    continue;
                }
            };
            for (i, to) in chain.iter().enumerate() {
                let key = format!("{key}[{i}]");
                match registry.find(to) {
                    Ok(spec) if spec.name == from => issues.push(ConfigIssue::new(
                        key,
                        format!("`{to}` is the model this chain is for; hint: remove it"),
                    )),
                    Ok(spec) => edges
                        .entry(from.clone())
                        .or_default()
                        .push((spec.name.clone(), key)),
                    Err(e) => issues.push(ConfigIssue::new(key, e.to_string())),
                }
            }
        }
        issues.extend(cycles(&edges));
        issues
    }

    /// The first of [`RoutingConfig::issues`], if any.
    pub fn validate(&self, registry: &Registry) -> Result<(), Error> {
        first(self.issues(registry))
    }
}

impl CostConfig {
    /// Every problem of the section against `registry`: a `performance_threshold`
    /// outside 0–1, a negative or non-finite `budget_per_hour`, and, when that budget
    /// is set, every model a budget cannot price ([`require_prices`]).
    pub fn issues(&self, registry: &Registry) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !(0.0..=1.0).contains(&self.performance_threshold) {
            issues.push(ConfigIssue::new(
                "cost.performance_threshold",
                format!(
                    "must be between 0 and 1, got {}",
                    self.performance_threshold
                ),
            ));
        }
        if let Some(budget) = self.budget_per_hour {
            match budget_issue("cost.budget_per_hour", budget) {
                Ok(()) => issues.extend(unpriced(registry, "cost.budget_per_hour")),
                Err(issue) => issues.push(issue),
            }
        }
        issues
    }

    /// The first of [`CostConfig::issues`], if any.
    pub fn validate(&self, registry: &Registry) -> Result<(), Error> {
        first(self.issues(registry))
    }
}

/// Checks a budget given as `key` (`--budget`, `cost.budget_per_hour`): a finite
/// number of USD ≥ 0.
pub fn check_budget(key: &str, usd: f64) -> Result<(), Error> {
    budget_issue(key, usd).map_err(Error::Config)
}

fn budget_issue(key: &str, usd: f64) -> Result<(), ConfigIssue> {
    if usd.is_finite() && usd >= 0.0 {
        Ok(())
    } else {
        Err(ConfigIssue::new(
            key,
            format!("must be a number of USD ≥ 0, got {usd}"),
        ))
    }
}

/// Under a budget (named by `budget_key`, e.g. `--budget`), every model must have a
/// price: a model with no `cost` that is not `local: true` is refused, since its
/// calls could not be counted against the budget.
pub fn require_prices(registry: &Registry, budget_key: &str) -> Result<(), Error> {
    first(unpriced(registry, budget_key))
}

fn unpriced(registry: &Registry, budget_key: &str) -> Vec<ConfigIssue> {
    registry
        .models()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.cost.is_none() && !m.local)
        .map(|(i, m)| {
            ConfigIssue::new(
                format!("models[{i}].cost"),
                format!(
                    "model `{}` has no price and is not local, so {budget_key} cannot cover its calls; hint: add `cost: {{input_per_1k: …, output_per_1k: …}}`, or `local: true` if it runs on this machine",
                    m.name
                ),
            )
        })
        .collect()
}

fn first(issues: Vec<ConfigIssue>) -> Result<(), Error> {
    match issues.into_iter().next() {
        Some(issue) => Err(Error::Config(issue)),
        None => Ok(()),
    }
}

/// One issue per cycle through the chains, at the entry that closes it.
fn cycles(edges: &BTreeMap<String, Vec<(String, String)>>) -> Vec<ConfigIssue> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, Vec<(String, String)>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
        issues: &mut Vec<ConfigIssue>,
    ) {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for (to, key) in edges.get(node).into_iter().flatten() {
            match marks.get(to) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|p| p == to).unwrap_or(0);
                    let mut names: Vec<&str> = path[start..].iter().map(String::as_str).collect();
                    names.push(to);
                    issues.push(ConfigIssue::new(
                        key.clone(),
                        format!(
                            "fallback chains form a cycle: {}; hint: a chain should only lead to models that do not fall back to it",
                            names.join(" → ")
                        ),
                    ));
                }
                Some(Mark::Done) => {}
                None => visit(to, edges, marks, path, issues),
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut issues = Vec::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut issues);
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;
    use crate::spec::{Cost, ModelSpec};

    fn registry() -> Registry {
        let mut small = ModelSpec::new("small", ProviderKind::OpenAi);
        small.cost = Some(Cost {
            input_per_1k: 0.1,
            output_per_1k: 0.2,
        });
        let mut medium = ModelSpec::new("medium", ProviderKind::OpenAi);
        medium.cost = small.cost;
        let mut large = ModelSpec::new("large", ProviderKind::Anthropic);
        large.cost = small.cost;
        let mut local = ModelSpec::new("llama3.2:1b", ProviderKind::OpenAi);
        local.local = true;
        Registry::new(vec![small, medium, large, local]).unwrap_or_default()
    }

    fn routing(json: &str) -> RoutingConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn keys(issues: &[ConfigIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn defaults_are_the_designs() {
        let r = routing("{}");
        assert_eq!(r, RoutingConfig::default());
        assert_eq!(r.strategy, Strategy::Balanced);
        assert_eq!(r.fallback_strategy, FallbackStrategy::None);
        assert_eq!(
            r.cooldown,
            Cooldown {
                failures: 3,
                seconds: 30.0
            }
        );
        let c: CostConfig = serde_json::from_str("{}").unwrap_or_default();
        assert_eq!(c.budget_per_hour, None);
        assert!(c.prefer_local_models);
        assert!(r.issues(&registry()).is_empty());
        assert!(c.issues(&registry()).is_empty());
    }

    #[test]
    fn unknown_keys_and_strategies_are_refused() {
        for bad in [
            r#"{"strategy": "fastest"}"#,
            r#"{"stratgy": "cost"}"#,
            r#"{"cooldown": {"failures": 3, "secs": 1}}"#,
            r#"{"fallback_strategy": "random"}"#,
        ] {
            assert!(serde_json::from_str::<RoutingConfig>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CostConfig>(r#"{"budget": 1}"#).is_err());
    }

    #[test]
    fn unknown_models_in_chains_are_named_with_their_index() {
        let r = routing(r#"{"fallbacks": {"small": ["medium", "lage"], "tiny": ["large"]}}"#);
        let issues = r.issues(&registry());
        assert_eq!(
            keys(&issues),
            ["routing.fallbacks.small[1]", "routing.fallbacks.tiny"]
        );
        assert!(
            issues[0].message.contains("did you mean `large`"),
            "{}",
            issues[0]
        );
        assert_eq!(
            r.validate(&registry()).map_err(|e| match e {
                Error::Config(issue) => issue.key,
                other => other.to_string(),
            }),
            Err("routing.fallbacks.small[1]".to_owned())
        );
        // Other spellings of a configured model are fine.
        let r = routing(r#"{"fallbacks": {"openai:small": ["anthropic:large"]}}"#);
        assert!(r.issues(&registry()).is_empty());
    }

    #[test]
    fn cycles_through_chains_are_refused() {
        let r = routing(r#"{"fallbacks": {"small": ["medium"], "medium": ["large", "small"]}}"#);
        let issues = r.issues(&registry());
        assert_eq!(keys(&issues), ["routing.fallbacks.small[0]"]);
        assert!(
            issues[0].message.contains("medium → small → medium"),
            "{}",
            issues[0]
        );
        let r = routing(r#"{"fallbacks": {"small": ["small"]}}"#);
        assert_eq!(keys(&r.issues(&registry())), ["routing.fallbacks.small[0]"]);
        // A chain that only leads down is fine, even when chains share models.
        let r = routing(r#"{"fallbacks": {"small": ["medium", "large"], "medium": ["large"]}}"#);
        assert!(r.issues(&registry()).is_empty());
    }

    #[test]
    fn thresholds_and_cooldowns_are_checked() {
        let r =
            routing(r#"{"complexity_threshold": 1.5, "cooldown": {"failures": 0, "seconds": -1}}"#);
        assert_eq!(
            keys(&r.issues(&registry())),
            [
                "routing.complexity_threshold",
                "routing.cooldown.failures",
                "routing.cooldown.seconds"
            ]
        );
        let c = CostConfig {
            performance_threshold: -0.1,
            ..CostConfig::default()
        };
        assert_eq!(keys(&c.issues(&registry())), ["cost.performance_threshold"]);
        let c = CostConfig {
            performance_threshold: f64::NAN,
            ..CostConfig::default()
        };
        assert_eq!(keys(&c.issues(&registry())), ["cost.performance_threshold"]);
    }

    #[test]
    fn budgets_must_be_finite_and_cover_every_model() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let c = CostConfig {
                budget_per_hour: Some(bad),
                ..CostConfig::default()
            };
            assert_eq!(keys(&c.issues(&registry())), ["cost.budget_per_hour"]);
        }
        assert!(check_budget("--budget", -0.5).is_err());
        assert!(check_budget("--budget", 0.0).is_ok());
        let c = CostConfig {
            budget_per_hour: Some(10.0),
            ..CostConfig::default()
        };
        assert!(c.issues(&registry()).is_empty(), "priced and local models");
        let mut specs: Vec<ModelSpec> = registry().models().iter().map(|m| (**m).clone()).collect();
        specs.push(ModelSpec::new("mystery", ProviderKind::OpenAi));
        let with_unpriced = Registry::new(specs).unwrap_or_default();
        let issues = c.issues(&with_unpriced);
        assert_eq!(keys(&issues), ["models[4].cost"]);
        assert!(issues[0].message.contains("`mystery`"), "{}", issues[0]);
        let err = require_prices(&with_unpriced, "--budget")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("--budget cannot cover")),
            "{err:?}"
        );
        assert!(require_prices(&registry(), "--budget").is_ok());
    }
}
