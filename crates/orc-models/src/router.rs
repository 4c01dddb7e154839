//! [`Router`]: picks a model for a step that names none, learns from every call's
//! outcome, sets failing models aside for a while, and orders fallbacks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::complexity::capability;
use crate::error::{Error, FailureKind};
use crate::pricing::price;
use crate::registry::{ESTIMATED_CALL_TOKENS, Registry};
use crate::routing::{CostConfig, FallbackStrategy, RoutingConfig, Strategy};
use crate::spec::ModelSpec;
use crate::usage::Usage;

/// Calls a model must have made before its success rate can make it ineligible
/// (`cost.performance_threshold`): a fresh model is always eligible.
pub const MIN_CALLS_JUDGED: u64 = 5;

/// At most this many past calls from [`ModelStats`] history weigh on the router, so
/// that what happens in this run still moves it.
pub const HISTORY_WEIGHT: u64 = 50;

/// Weight of the newest call in the moving averages of latency, time to first token
/// and cost.
const EWMA_ALPHA: f64 = 0.2;

/// The success rate is the share of successes with two successes assumed on top
/// (`(successes + 2) / (calls + 2)`), so a few calls are judged leniently: one failure
/// in the first five calls keeps a model at 6/7 ≈ 0.857.
const SUCCESS_PRIOR: f64 = 2.0;

/// Past this many calls the success rate becomes a moving average over about as many
/// calls, so a model's recent record counts more than its distant past.
const SUCCESS_WINDOW: u64 = 50;

/// Tolerance under which two scores are equal and the tie-breaks decide.
const EPSILON: f64 = 1e-9;

/// What is known of a model's past calls: what the router is seeded with (from the
/// state store's model metrics, say) and what [`Router::snapshot`] reports.
///
/// ```
/// let mut stats = orc_models::ModelStats::new("small");
/// stats.add_call(120.0, true, 0.0004);
/// stats.add_call(80.0, true, 0.0002);
/// stats.add_call(900.0, false, 0.0);
/// assert_eq!((stats.calls, stats.successes), (3, 2));
/// assert_eq!(stats.mean_latency_ms, 100.0); // successful calls only
/// assert!((stats.mean_cost_usd - 0.0002).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// The model's configured name.
    pub model: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Mean latency of the successful calls, in milliseconds.
    pub mean_latency_ms: f64,
    /// Mean time to the first streamed token, in milliseconds, when known.
    pub mean_ttft_ms: Option<f64>,
    /// Mean USD per call.
    pub mean_cost_usd: f64,
}

impl ModelStats {
    /// No calls yet.
    pub fn new(model: impl Into<String>) -> Self {
        ModelStats {
            model: model.into(),
            ..ModelStats::default()
        }
    }

    /// Adds one call: its latency in milliseconds (averaged over successful calls
    /// only), whether it succeeded, and its cost in USD. Non-finite or negative
    /// figures are ignored. Fits a row of `orc_state::ModelMetric`:
    /// `stats.add_call(m.latency_ms, m.success, m.cost)`.
    pub fn add_call(&mut self, latency_ms: f64, success: bool, cost_usd: f64) -> &mut Self {
        self.calls += 1;
        if success {
            self.successes += 1;
            if latency_ms.is_finite() && latency_ms >= 0.0 {
                let n = self.successes as f64;
                self.mean_latency_ms += (latency_ms - self.mean_latency_ms) / n;
            }
        }
        if cost_usd.is_finite() && cost_usd >= 0.0 {
            self.mean_cost_usd += (cost_usd - self.mean_cost_usd) / self.calls as f64;
        }
        self
    }

    /// Adds a streamed call's time to first token, in milliseconds.
    pub fn add_ttft(&mut self, ttft_ms: f64) -> &mut Self {
        if ttft_ms.is_finite() && ttft_ms >= 0.0 {
            self.mean_ttft_ms = Some(match self.mean_ttft_ms {
                Some(mean) => mean + EWMA_ALPHA * (ttft_ms - mean),
                None => ttft_ms,
            });
        }
        self
    }

    /// Successes per call, when there were calls.
    pub fn success_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.successes as f64 / self.calls as f64)
    }
}

/// How one call went, for [`Router::record`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallOutcome {
    /// From sending the request to the end of the answer (retries included).
    pub latency: Duration,
    /// Time to the first streamed token, for streams.
    pub ttft: Option<Duration>,
    /// Whether an answer came.
    pub success: bool,
    /// What went wrong, when it failed.
    pub kind: Option<FailureKind>,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// USD billed, when the model has a price.
    pub cost_usd: Option<f64>,
}

impl CallOutcome {
    /// A call answered after `latency`, with `usage` costing `cost_usd`.
    pub fn success(latency: Duration, usage: Usage, cost_usd: Option<f64>) -> Self {
        CallOutcome {
            latency,
            ttft: None,
            success: true,
            kind: None,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd,
        }
    }

    /// A call that failed with `kind` after `latency`.
    pub fn failure(latency: Duration, kind: Option<FailureKind>) -> Self {
        CallOutcome {
            latency,
            ttft: None,
            success: false,
            kind,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Some(0.0),
        }
    }

    /// UCB's reward for the call: 0 for a failure, else `1 / (1 + latency in
    /// seconds)` (1 for an instant answer, ½ for one that took a second).
    pub fn reward(&self) -> f64 {
        if self.success {
            reward(self.latency.as_secs_f64() * 1000.0)
        } else {
            0.0
        }
    }
}

fn reward(latency_ms: f64) -> f64 {
    1.0 / (1.0 + latency_ms.max(0.0) / 1000.0)
}

/// What [`Router::route`] chooses among.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The models the step may use, already filtered by its `requires_model` (and by
    /// what the budget can pay for).
    pub candidates: &'a [Arc<ModelSpec>],
    /// Input tokens, estimated (for ranking by cost).
    pub estimated_input_tokens: u64,
    /// The answer's `max_tokens`, when set (for ranking by cost; 500 assumed when not).
    pub max_tokens: Option<u32>,
    /// The request's complexity, 0–1 ([`crate::complexity`]).
    pub complexity: f64,
    /// Whether the answer is streamed: `performance` ranks by time to first token.
    pub stream: bool,
}

/// The model chosen, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The model.
    pub model: Arc<ModelSpec>,
    /// Why, for logs and the result document: `ucb: highest bound 1.42; complexity
    /// 0.12 < 0.30, fast tier (2 of 4)`.
    pub reason: String,
}

/// What the router knows of one model.
#[derive(Debug, Clone, Copy)]
struct Arm {
    /// Calls judged (history included, up to [`HISTORY_WEIGHT`]).
    calls: u64,
    successes: u64,
    /// The success rate, smoothed ([`SUCCESS_PRIOR`], [`SUCCESS_WINDOW`]); 1 for a
    /// fresh model.
    success: f64,
    latency_ms: Option<f64>,
    ttft_ms: Option<f64>,
    cost_usd: Option<f64>,
    /// UCB1: pulls and mean reward.
    pulls: f64,
    reward: f64,
    consecutive_failures: u32,
    cooled_until: Option<Instant>,
}

impl Default for Arm {
    fn default() -> Self {
        Arm {
            calls: 0,
            successes: 0,
            success: 1.0,
            latency_ms: None,
            ttft_ms: None,
            cost_usd: None,
            pulls: 0.0,
            reward: 0.0,
            consecutive_failures: 0,
            cooled_until: None,
        }
    }
}

impl Arm {
    fn seeded(stats: &ModelStats) -> Self {
        let mut arm = Arm::default();
        if stats.calls == 0 {
            return arm;
        }
        let weight = stats.calls.min(HISTORY_WEIGHT);
        let rate = stats.successes.min(stats.calls) as f64 / stats.calls as f64;
        arm.calls = weight;
        arm.successes = (rate * weight as f64).round() as u64;
        arm.success = (rate * weight as f64 + SUCCESS_PRIOR) / (weight as f64 + SUCCESS_PRIOR);
        if stats.successes > 0 && stats.mean_latency_ms.is_finite() {
            arm.latency_ms = Some(stats.mean_latency_ms.max(0.0));
        }
        arm.ttft_ms = stats.mean_ttft_ms.filter(|t| t.is_finite());
        arm.cost_usd = Some(stats.mean_cost_usd).filter(|c| c.is_finite() && *c >= 0.0);
        arm.pulls = weight as f64;
        arm.reward = rate * arm.latency_ms.map_or(1.0, reward);
        arm
    }

    fn cooling(&self, now: Instant) -> Option<Duration> {
        self.cooled_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }
}

/// Picks models for steps that name none, learns from every call, and orders
/// fallbacks. Cheap to clone (clones share what was learnt); `Send + Sync`.
///
/// - [`Router::route`] chooses among candidates by the configured [`Strategy`],
///   within the tier the request's complexity calls for: below
///   `complexity_threshold` the less capable half of the candidates (fast and
///   cheap), at or above it the more capable half ([`capability`]). Candidates
///   cooling down are skipped; so are those whose success rate is under
///   `performance_threshold` after [`MIN_CALLS_JUDGED`] calls, unless none is left.
///   Ties go to local models (with `prefer_local_models`), then to the cheaper model
///   (simple requests) or the more capable one (complex ones), then config order.
/// - [`Router::record`] learns from a call: moving averages of latency, time to
///   first token and cost; the success rate (`(successes + 2) / (calls + 2)`, a moving
///   average over the last 50 calls or so once there are more); UCB1's pulls and
///   reward; and consecutive failures, which start a cool-down at
///   `cooldown.failures`. A model under `performance_threshold` stays out until
///   every candidate is, or until a router is built again from fresher history.
/// - [`Router::fallbacks`] lists where a failed call goes next.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use orc_models::{CallOutcome, CostConfig, ModelSpec, ProviderKind, Registry, RouteRequest,
///                  Router, RoutingConfig, Strategy, Usage};
///
/// let registry = Registry::new(vec![
///     ModelSpec::new("a", ProviderKind::OpenAi),
///     ModelSpec::new("b", ProviderKind::OpenAi),
/// ]).unwrap();
/// let routing = RoutingConfig { strategy: Strategy::Performance, ..RoutingConfig::default() };
/// let router = Router::new(&registry, routing, CostConfig::default(), Vec::new()).unwrap();
/// router.record("a", &CallOutcome::success(Duration::from_millis(900), Usage::default(), None));
/// router.record("b", &CallOutcome::success(Duration::from_millis(100), Usage::default(), None));
/// let decision = router.route(&RouteRequest {
///     candidates: registry.models(),
///     estimated_input_tokens: 10,
///     max_tokens: None,
///     complexity: 0.1,
///     stream: false,
/// }).unwrap();
/// assert_eq!(decision.model.name, "b");
/// ```
#[derive(Clone)]
pub struct Router {
    inner: Arc<Shared>,
}

struct Shared {
    routing: RoutingConfig,
    cost: CostConfig,
    cooldown: Duration,
    models: Vec<Arc<ModelSpec>>,
    index: HashMap<String, usize>,
    capability: Vec<f64>,
    chains: Vec<Option<Vec<Arc<ModelSpec>>>>,
    arms: Vec<Mutex<Arm>>,
    /// The last [`RECENT_DECISIONS`] decisions, oldest first.
    recent: Mutex<std::collections::VecDeque<RouteRecord>>,
}

/// How many decisions a router keeps for [`Router::recent_decisions`].
pub const RECENT_DECISIONS: usize = 100;

/// One routing decision as the router keeps it ([`Router::recent_decisions`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteRecord {
    /// When it was made.
    pub at: std::time::SystemTime,
    /// The strategy in force (`balanced`, `ucb`, …).
    pub strategy: String,
    /// The model chosen.
    pub chosen: String,
    /// The candidates it was chosen among, in order.
    pub candidates: Vec<String>,
    /// Why ([`Decision::reason`]).
    pub reason: String,
}

/// A candidate as one decision sees it.
struct Seen<'a> {
    spec: &'a Arc<ModelSpec>,
    order: usize,
    arm: Arm,
    capability: f64,
    cost: f64,
}

impl Router {
    /// A router over `registry`'s models, seeded with `history` (one entry per model;
    /// entries for unknown models are ignored). Fails on the first problem of either
    /// section ([`RoutingConfig::issues`], [`CostConfig::issues`]).
    pub fn new(
        registry: &Registry,
        routing: RoutingConfig,
        cost: CostConfig,
        history: Vec<ModelStats>,
    ) -> Result<Self, Error> {
        routing.validate(registry)?;
        cost.validate(registry)?;
        Ok(Router::build(registry, routing, cost, history))
    }

    /// A router with the default configuration (balanced, no fallbacks), which
    /// cannot fail: what a gateway uses when it is given none.
    pub fn with_defaults(registry: &Registry) -> Self {
        Router::build(
            registry,
            RoutingConfig::default(),
            CostConfig::default(),
            Vec::new(),
        )
    }

    fn build(
        registry: &Registry,
        routing: RoutingConfig,
        cost: CostConfig,
        history: Vec<ModelStats>,
    ) -> Self {
        let models: Vec<Arc<ModelSpec>> = registry.models().to_vec();
        let index: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let capability = models.iter().map(|m| capability(m)).collect();
        let mut chains = vec![None; models.len()];
        for (name, chain) in &routing.fallbacks {
            let Some(from) = registry.find(name).ok().and_then(|m| index.get(&m.name)) else {
                continue;
            };
            let resolved: Vec<Arc<ModelSpec>> = chain
                .iter()
                .filter_map(|to| registry.find(to).ok())
                .collect();
            chains[*from] = Some(resolved);
        }
        let mut arms: Vec<Arm> = vec![Arm::default(); models.len()];
        for stats in &history {
            let found = index.get(&stats.model).copied().or_else(|| {
                registry
                    .find(&stats.model)
                    .ok()
                    .and_then(|m| index.get(&m.name).copied())
            });
            if let Some(i) = found {
                arms[i] = Arm::seeded(stats);
            }
        }
        let cooldown = Duration::try_from_secs_f64(routing.cooldown.seconds).unwrap_or_default();
        Router {
            inner: Arc::new(Shared {
                routing,
                cost,
                cooldown,
                models,
                index,
                capability,
                chains,
                arms: arms.into_iter().map(Mutex::new).collect(),
                recent: Mutex::default(),
            }),
        }
    }

    /// The `routing:` section in force.
    pub fn routing(&self) -> &RoutingConfig {
        &self.inner.routing
    }

    /// The `cost:` section in force.
    pub fn cost(&self) -> &CostConfig {
        &self.inner.cost
    }

    fn arm(&self, i: usize) -> Arm {
        *self.inner.arms[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn seen<'a>(&self, spec: &'a Arc<ModelSpec>, order: usize, req: &RouteRequest<'_>) -> Seen<'a> {
        let known = self.inner.index.get(&spec.name).copied();
        let output = req.max_tokens.map_or(ESTIMATED_CALL_TOKENS.1, u64::from);
        let usage = Usage {
            input_tokens: req.estimated_input_tokens,
            output_tokens: output,
            ..Usage::default()
        };
        Seen {
            spec,
            order,
            arm: known.map(|i| self.arm(i)).unwrap_or_default(),
            capability: known.map_or_else(|| capability(spec), |i| self.inner.capability[i]),
            cost: price(spec, usage).unwrap_or(f64::INFINITY),
        }
    }

    /// Chooses a model among `req.candidates`, or says why none can be.
    pub fn route(&self, req: &RouteRequest<'_>) -> Result<Decision, Error> {
        if req.candidates.is_empty() {
            return Err(Error::NoCandidates);
        }
        let now = Instant::now();
        let all: Vec<Seen<'_>> = req
            .candidates
            .iter()
            .enumerate()
            .map(|(order, spec)| self.seen(spec, order, req))
            .collect();
        let open: Vec<&Seen<'_>> = all
            .iter()
            .filter(|c| c.arm.cooling(now).is_none())
            .collect();
        if open.is_empty() {
            return Err(Error::CoolingDown {
                models: all
                    .iter()
                    .map(|c| {
                        let left = c.arm.cooling(now).unwrap_or_default();
                        (c.spec.name.clone(), left.as_secs_f64())
                    })
                    .collect(),
            });
        }
        let threshold = self.inner.cost.performance_threshold;
        let mut eligible: Vec<&Seen<'_>> = open
            .iter()
            .copied()
            .filter(|c| c.arm.calls < MIN_CALLS_JUDGED || c.arm.success >= threshold)
            .collect();
        let all_below = eligible.is_empty();
        if all_below {
            eligible = open;
        }
        let complex = req.complexity >= self.inner.routing.complexity_threshold;
        let tier = tier(&eligible, complex);
        let (chosen, detail) = match self.inner.routing.strategy {
            Strategy::Performance => self.by_performance(&tier, req.stream, complex),
            Strategy::Cost => self.by_cost(&tier, complex),
            Strategy::Balanced => self.by_balance(&tier, req.stream, complex),
            Strategy::Ucb => self.by_ucb(&tier, complex),
        };
        let mut reason = format!(
            "{}: {detail}; complexity {:.2} {} {:.2}, {} tier ({} of {})",
            self.inner.routing.strategy,
            req.complexity,
            if complex { "≥" } else { "<" },
            self.inner.routing.complexity_threshold,
            if complex { "capable" } else { "fast" },
            tier.len(),
            req.candidates.len(),
        );
        if all_below {
            reason.push_str(&format!(
                "; no candidate meets the success threshold {threshold:.2}"
            ));
        }
        self.keep(RouteRecord {
            at: std::time::SystemTime::now(),
            strategy: self.inner.routing.strategy.to_string(),
            chosen: chosen.spec.name.clone(),
            candidates: req.candidates.iter().map(|c| c.name.clone()).collect(),
            reason: reason.clone(),
        });
        Ok(Decision {
            model: Arc::clone(chosen.spec),
            reason,
        })
    }

    fn keep(&self, record: RouteRecord) {
        let mut recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT_DECISIONS {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    /// The last [`RECENT_DECISIONS`] routing decisions this router made, newest first (for
    /// the dashboard's models page).
    pub fn recent_decisions(&self) -> Vec<RouteRecord> {
        let recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.iter().rev().cloned().collect()
    }

    /// The lowest score wins; ties by [`Router::tie_break`].
    fn lowest<'a, 'b>(
        &self,
        tier: &[&'b Seen<'a>],
        complex: bool,
        score: impl Fn(&Seen<'a>) -> f64,
    ) -> (&'b Seen<'a>, f64) {
        let mut best = (tier[0], score(tier[0]));
        for c in &tier[1..] {
            let s = score(c);
            let better = if same(s, best.1) {
                self.tie_break(c, best.0, complex)
            } else {
                s < best.1
            };
            if better {
                best = (c, s);
            }
        }
        best
    }

    /// Whether `a` wins a tie against `b` (see [`Router::tie_order`]).
    fn tie_break(&self, a: &Seen<'_>, b: &Seen<'_>, complex: bool) -> bool {
        self.tie_order(a, b, complex).is_lt()
    }

    /// The order of tied candidates: local first (with `prefer_local_models`), then
    /// cheaper (simple requests) or more capable (complex ones), then earlier.
    fn tie_order(&self, a: &Seen<'_>, b: &Seen<'_>, complex: bool) -> std::cmp::Ordering {
        let local = if self.inner.cost.prefer_local_models {
            b.spec.local.cmp(&a.spec.local)
        } else {
            std::cmp::Ordering::Equal
        };
        let by_fit = if complex {
            b.capability.total_cmp(&a.capability)
        } else {
            a.cost.total_cmp(&b.cost)
        };
        local.then(by_fit).then(a.order.cmp(&b.order))
    }

    fn by_performance<'a, 'b>(
        &self,
        tier: &[&'b Seen<'a>],
        stream: bool,
        complex: bool,
    ) -> (&'b Seen<'a>, String) {
        let latencies = expected_latencies(tier, stream);
        let (chosen, score) = self.lowest(tier, complex, |c| {
            latencies[position(tier, c)] / c.arm.success.max(0.05)
        });
        let what = if stream {
            "time to first token"
        } else {
            "latency"
        };
        let detail = if score > 0.0 {
            format!(
                "lowest expected {what} {score:.0} ms (success {:.2})",
                chosen.arm.success
            )
        } else {
            format!("no {what} known yet")
        };
        (chosen, detail)
    }

    fn by_cost<'a, 'b>(&self, tier: &[&'b Seen<'a>], complex: bool) -> (&'b Seen<'a>, String) {
        let (chosen, cost) = self.lowest(tier, complex, |c| c.cost);
        let detail = if cost.is_finite() {
            format!("cheapest at ${cost:.6} for the estimated tokens")
        } else {
            "no candidate has a price".to_owned()
        };
        (chosen, detail)
    }

    fn by_balance<'a, 'b>(
        &self,
        tier: &[&'b Seen<'a>],
        stream: bool,
        complex: bool,
    ) -> (&'b Seen<'a>, String) {
        let latencies = expected_latencies(tier, stream);
        let perf: Vec<f64> = tier
            .iter()
            .enumerate()
            .map(|(i, c)| latencies[i] / c.arm.success.max(0.05))
            .collect();
        let costs: Vec<f64> = tier.iter().map(|c| c.cost).collect();
        let perf = normalise(&perf);
        let costs = normalise(&costs);
        let (chosen, score) = self.lowest(tier, complex, |c| {
            let i = position(tier, c);
            0.5 * costs[i] + 0.5 * perf[i]
        });
        let i = position(tier, chosen);
        (
            chosen,
            format!(
                "best cost/latency score {score:.2} (cost {:.2}, latency {:.2}, each relative to the highest)",
                costs[i], perf[i]
            ),
        )
    }

    fn by_ucb<'a, 'b>(&self, tier: &[&'b Seen<'a>], complex: bool) -> (&'b Seen<'a>, String) {
        let total: f64 = tier.iter().map(|c| c.arm.pulls).sum::<f64>().max(1.0);
        let bound = |c: &Seen<'_>| {
            if c.arm.pulls <= 0.0 {
                f64::INFINITY
            } else {
                c.arm.reward + (2.0 * total.ln() / c.arm.pulls).sqrt()
            }
        };
        let (chosen, score) = self.lowest(tier, complex, |c| -bound(c));
        let detail = if score.is_finite() {
            format!(
                "highest bound {:.2} (mean reward {:.2} over {:.0} calls)",
                -score, chosen.arm.reward, chosen.arm.pulls
            )
        } else {
            "untried model".to_owned()
        };
        (chosen, detail)
    }

    /// Learns from one call to `model`. Calls that failed for the request's own
    /// sake (rejected, invalid, too long for the context window) say nothing of the
    /// model and are ignored; unknown models are ignored.
    pub fn record(&self, model: &str, outcome: &CallOutcome) {
        let Some(&i) = self.inner.index.get(model) else {
            return;
        };
        if !outcome.success && !outcome.kind.is_none_or(FailureKind::is_model_failure) {
            return;
        }
        let now = Instant::now();
        let mut arm = self.inner.arms[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        arm.calls += 1;
        let hit = if outcome.success { 1.0 } else { 0.0 };
        let weight = arm.calls.min(SUCCESS_WINDOW) as f64 + SUCCESS_PRIOR;
        arm.success += (hit - arm.success) / weight;
        if outcome.success {
            arm.successes += 1;
            arm.consecutive_failures = 0;
            arm.cooled_until = None;
            let ms = outcome.latency.as_secs_f64() * 1000.0;
            arm.latency_ms = Some(ewma(arm.latency_ms, ms));
            if let Some(ttft) = outcome.ttft {
                arm.ttft_ms = Some(ewma(arm.ttft_ms, ttft.as_secs_f64() * 1000.0));
            }
            if let Some(cost) = outcome.cost_usd.filter(|c| c.is_finite()) {
                arm.cost_usd = Some(ewma(arm.cost_usd, cost));
            }
        } else {
            arm.consecutive_failures = arm.consecutive_failures.saturating_add(1);
            if arm.consecutive_failures >= self.inner.routing.cooldown.failures {
                arm.cooled_until = Some(now + self.inner.cooldown);
            }
        }
        arm.pulls += 1.0;
        arm.reward += (outcome.reward() - arm.reward) / arm.pulls;
    }

    /// How long `model` is still cooling down, if it is.
    pub fn cooldown_left(&self, model: &str) -> Option<Duration> {
        let &i = self.inner.index.get(model)?;
        self.arm(i).cooling(Instant::now())
    }

    /// The explicit chain configured for `model`, if any.
    pub fn explicit_fallbacks(&self, model: &str) -> Option<&[Arc<ModelSpec>]> {
        let &i = self.inner.index.get(model)?;
        self.inner.chains[i].as_deref()
    }

    /// Where a failed call to `model` goes next, in order: its explicit chain when one
    /// is configured; else, per `fallback_strategy`, the other models that are at
    /// least as capable ([`capability`]) and meet `performance_threshold`, cheapest or
    /// fastest first; else nothing. Cool-downs are not applied here (the gateway
    /// skips models cooling down when it walks the list).
    pub fn fallbacks(&self, model: &ModelSpec) -> Vec<Arc<ModelSpec>> {
        if let Some(chain) = self.explicit_fallbacks(&model.name) {
            return chain.to_vec();
        }
        let strategy = self.inner.routing.fallback_strategy;
        if strategy == FallbackStrategy::None {
            return Vec::new();
        }
        let floor = self
            .inner
            .index
            .get(&model.name)
            .map_or_else(|| capability(model), |i| self.inner.capability[*i]);
        let req = RouteRequest {
            candidates: &self.inner.models,
            estimated_input_tokens: ESTIMATED_CALL_TOKENS.0,
            max_tokens: None,
            complexity: 1.0,
            stream: false,
        };
        let threshold = self.inner.cost.performance_threshold;
        let others: Vec<Seen<'_>> = self
            .inner
            .models
            .iter()
            .enumerate()
            .filter(|(i, m)| m.name != model.name && self.inner.capability[*i] >= floor - EPSILON)
            .map(|(order, m)| self.seen(m, order, &req))
            .filter(|c| c.arm.calls < MIN_CALLS_JUDGED || c.arm.success >= threshold)
            .collect();
        let refs: Vec<&Seen<'_>> = others.iter().collect();
        let latencies = expected_latencies(&refs, false);
        let key = |c: &Seen<'_>| match strategy {
            FallbackStrategy::Cost => c.cost,
            _ => latencies[position(&refs, c)] / c.arm.success.max(0.05),
        };
        let mut order: Vec<&Seen<'_>> = refs.clone();
        order.sort_by(|a, b| {
            key(a)
                .total_cmp(&key(b))
                .then_with(|| self.tie_order(a, b, false))
        });
        order.into_iter().map(|c| Arc::clone(c.spec)).collect()
    }

    /// What the router knows of each configured model now, in config order (latency,
    /// time to first token and cost are moving averages; calls include the history it
    /// was seeded with, up to [`HISTORY_WEIGHT`]).
    pub fn snapshot(&self) -> Vec<ModelStats> {
        self.inner
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let arm = self.arm(i);
                ModelStats {
                    model: m.name.clone(),
                    calls: arm.calls,
                    successes: arm.successes,
                    mean_latency_ms: arm.latency_ms.unwrap_or(0.0),
                    mean_ttft_ms: arm.ttft_ms,
                    mean_cost_usd: arm.cost_usd.unwrap_or(0.0),
                }
            })
            .collect()
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routing", &self.inner.routing)
            .field("cost", &self.inner.cost)
            .field("models", &self.inner.models.len())
            .finish_non_exhaustive()
    }
}

fn ewma(previous: Option<f64>, sample: f64) -> f64 {
    match previous {
        Some(p) => p + EWMA_ALPHA * (sample - p),
        None => sample,
    }
}

fn position(tier: &[&Seen<'_>], c: &Seen<'_>) -> usize {
    tier.iter().position(|t| std::ptr::eq(*t, c)).unwrap_or(0)
}

/// The candidates of the tier a request's complexity calls for: the more capable half
/// (complex) or the less capable half (simple), ties included; at least one.
fn tier<'b, 'a>(eligible: &[&'b Seen<'a>], complex: bool) -> Vec<&'b Seen<'a>> {
    let mut caps: Vec<f64> = eligible.iter().map(|c| c.capability).collect();
    caps.sort_by(f64::total_cmp);
    let n = caps.len();
    let cut = if complex {
        caps[n / 2]
    } else {
        caps[(n - 1) / 2]
    };
    eligible
        .iter()
        .copied()
        .filter(|c| {
            if complex {
                c.capability >= cut - EPSILON
            } else {
                c.capability <= cut + EPSILON
            }
        })
        .collect()
}

/// Each candidate's expected latency in ms (time to first token for streams, when
/// known): what it has shown, else the mean of what the others have shown, else 0.
fn expected_latencies(tier: &[&Seen<'_>], stream: bool) -> Vec<f64> {
    let shown: Vec<Option<f64>> = tier
        .iter()
        .map(|c| {
            if stream {
                c.arm.ttft_ms.or(c.arm.latency_ms)
            } else {
                c.arm.latency_ms
            }
        })
        .collect();
    let known: Vec<f64> = shown.iter().flatten().copied().collect();
    let prior = if known.is_empty() {
        0.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    shown.into_iter().map(|s| s.unwrap_or(prior)).collect()
}

/// Each value divided by the largest finite one, so 0–1 with the proportions kept
/// (infinite values read 1; when every finite value is 0, they read 0).
fn normalise(values: &[f64]) -> Vec<f64> {
    let hi = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                1.0
            } else if hi <= 0.0 {
                0.0
            } else {
                (v / hi).clamp(0.0, 1.0)
            }
        })
        .collect()
}

/// Whether two scores are equal within [`EPSILON`] (infinities equal themselves).
fn same(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    a.is_finite() && b.is_finite() && (a - b).abs() <= EPSILON * a.abs().max(b.abs()).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;
    use crate::spec::Cost;

    fn spec(name: &str, price: f64, size: &str) -> ModelSpec {
        let mut s = ModelSpec::new(name, ProviderKind::OpenAi);
        s.cost = Some(Cost {
            input_per_1k: price,
            output_per_1k: price * 2.0,
        });
        s.size = Some(size.to_owned());
        s
    }

    fn router(
        strategy: Strategy,
        specs: Vec<ModelSpec>,
        history: Vec<ModelStats>,
    ) -> (Router, Registry) {
        let registry = Registry::new(specs).unwrap_or_default();
        let routing = RoutingConfig {
            strategy,
            ..RoutingConfig::default()
        };
        let router = Router::new(&registry, routing, CostConfig::default(), history)
            .unwrap_or_else(|e| panic!("{e}"));
        (router, registry)
    }

    fn request(candidates: &[Arc<ModelSpec>], complexity: f64) -> RouteRequest<'_> {
        RouteRequest {
            candidates,
            estimated_input_tokens: 200,
            max_tokens: Some(100),
            complexity,
            stream: false,
        }
    }

    fn pick(router: &Router, candidates: &[Arc<ModelSpec>], complexity: f64) -> String {
        match router.route(&request(candidates, complexity)) {
            Ok(d) => d.model.name.clone(),
            Err(e) => format!("error: {e}"),
        }
    }

    fn history(model: &str, calls: u64, successes: u64, latency_ms: f64) -> ModelStats {
        ModelStats {
            model: model.to_owned(),
            calls,
            successes,
            mean_latency_ms: latency_ms,
            mean_ttft_ms: None,
            mean_cost_usd: 0.0,
        }
    }

    fn same_size() -> Vec<ModelSpec> {
        vec![
            spec("cheap-slow", 0.001, "8b"),
            spec("dear-fast", 0.01, "8b"),
        ]
    }

    #[test]
    fn each_strategy_ranks_by_its_measure() {
        let seen = vec![
            history("cheap-slow", 20, 20, 2000.0),
            history("dear-fast", 20, 20, 100.0),
        ];
        let (r, reg) = router(Strategy::Performance, same_size(), seen.clone());
        assert_eq!(pick(&r, reg.models(), 0.1), "dear-fast");
        let (r, reg) = router(Strategy::Cost, same_size(), seen.clone());
        assert_eq!(pick(&r, reg.models(), 0.1), "cheap-slow");
        let (r, reg) = router(Strategy::Ucb, same_size(), seen.clone());
        assert_eq!(pick(&r, reg.models(), 0.1), "dear-fast", "higher reward");
        // Balanced: ten times dearer and twenty times faster; the latency gap wins.
        let (r, reg) = router(Strategy::Balanced, same_size(), seen);
        let decision = r.route(&request(reg.models(), 0.1));
        assert_eq!(
            decision.as_ref().map(|d| d.model.name.as_str()),
            Ok("dear-fast")
        );
        let reason = decision.map(|d| d.reason).unwrap_or_default();
        assert!(
            reason.starts_with("balanced: best cost/latency score"),
            "{reason}"
        );
        // A small latency gap is not worth ten times the price.
        let seen = vec![
            history("cheap-slow", 20, 20, 150.0),
            history("dear-fast", 20, 20, 100.0),
        ];
        let (r, reg) = router(Strategy::Balanced, same_size(), seen);
        assert_eq!(pick(&r, reg.models(), 0.1), "cheap-slow");
    }

    #[test]
    fn complexity_picks_the_tier() {
        let specs = vec![
            spec("tiny", 0.0001, "1b"),
            spec("mid", 0.001, "8b"),
            spec("huge", 0.01, "400b"),
        ];
        let (r, reg) = router(Strategy::Cost, specs, Vec::new());
        assert_eq!(pick(&r, reg.models(), 0.1), "tiny");
        // Complex: the capable half (mid and huge), cheapest of them.
        assert_eq!(pick(&r, reg.models(), 0.9), "mid");
        let decision = r.route(&request(reg.models(), 0.9));
        let reason = decision.map(|d| d.reason).unwrap_or_default();
        assert!(reason.contains("capable tier (2 of 3)"), "{reason}");
        let (r, reg) = router(
            Strategy::Performance,
            vec![spec("tiny", 0.0001, "1b"), spec("huge", 0.01, "400b")],
            Vec::new(),
        );
        assert_eq!(pick(&r, reg.models(), 0.1), "tiny");
        assert_eq!(pick(&r, reg.models(), 0.5), "huge");
    }

    #[test]
    fn local_models_win_ties_when_preferred() {
        let mut local = spec("local", 0.0, "8b");
        local.local = true;
        local.cost = None;
        let mut free = spec("free", 0.0, "8b");
        free.cost = Some(Cost {
            input_per_1k: 0.0,
            output_per_1k: 0.0,
        });
        let specs = vec![free, local];
        let (r, reg) = router(Strategy::Cost, specs.clone(), Vec::new());
        assert_eq!(pick(&r, reg.models(), 0.1), "local");
        let registry = Registry::new(specs).unwrap_or_default();
        let cost = CostConfig {
            prefer_local_models: false,
            ..CostConfig::default()
        };
        let r = Router::new(
            &registry,
            RoutingConfig {
                strategy: Strategy::Cost,
                ..RoutingConfig::default()
            },
            cost,
            Vec::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pick(&r, registry.models(), 0.1), "free", "config order");
    }

    #[test]
    fn unreliable_models_are_not_eligible_unless_none_is() {
        let seen = vec![
            history("cheap-slow", 20, 10, 100.0),
            history("dear-fast", 3, 0, 100.0),
        ];
        let (r, reg) = router(Strategy::Cost, same_size(), seen);
        // cheap-slow succeeds half the time after 20 calls; dear-fast has too few calls
        // to be judged.
        assert_eq!(pick(&r, reg.models(), 0.1), "dear-fast");
        let only = &reg.models()[..1];
        let decision = r.route(&request(only, 0.1));
        let reason = decision.map(|d| d.reason).unwrap_or_default();
        assert!(
            reason.contains("no candidate meets the success threshold"),
            "{reason}"
        );
    }

    #[test]
    fn ucb_tries_every_model_then_exploits_the_best() {
        let specs = vec![
            spec("a", 0.001, "8b"),
            spec("b", 0.001, "8b"),
            spec("c", 0.001, "8b"),
        ];
        let (r, reg) = router(Strategy::Ucb, specs, Vec::new());
        let mut chosen = Vec::new();
        for i in 0..300 {
            let d = r.route(&request(reg.models(), 0.1));
            let name = d.map(|d| d.model.name.clone()).unwrap_or_default();
            // b answers in 100 ms, a in 600 ms, c fails one call in two.
            let outcome = match name.as_str() {
                "b" => CallOutcome::success(Duration::from_millis(100), Usage::default(), None),
                "a" => CallOutcome::success(Duration::from_millis(600), Usage::default(), None),
                _ if i % 2 == 0 => {
                    CallOutcome::failure(Duration::from_millis(50), Some(FailureKind::Server))
                }
                _ => CallOutcome::success(Duration::from_millis(100), Usage::default(), None),
            };
            r.record(&name, &outcome);
            chosen.push(name);
        }
        let mut first: Vec<&str> = chosen[..3].iter().map(String::as_str).collect();
        first.sort_unstable();
        assert_eq!(first, ["a", "b", "c"], "each untried model first");
        let late_b = chosen[200..].iter().filter(|n| *n == "b").count();
        assert!(late_b >= 70, "b chosen {late_b} of the last 100");
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_start_a_cooldown() {
        let (r, reg) = router(Strategy::Cost, same_size(), Vec::new());
        let fail = CallOutcome::failure(Duration::from_millis(5), Some(FailureKind::Server));
        r.record("cheap-slow", &fail);
        r.record("cheap-slow", &fail);
        assert_eq!(pick(&r, reg.models(), 0.1), "cheap-slow", "two failures");
        r.record("cheap-slow", &fail);
        assert_eq!(r.cooldown_left("cheap-slow"), Some(Duration::from_secs(30)));
        assert_eq!(pick(&r, reg.models(), 0.1), "dear-fast");
        // Requests' own faults do not count.
        let rejected = CallOutcome::failure(Duration::ZERO, Some(FailureKind::ContextLength));
        for _ in 0..5 {
            r.record("dear-fast", &rejected);
        }
        assert_eq!(r.cooldown_left("dear-fast"), None);
        let only = &reg.models()[..1];
        let err = pick(&r, only, 0.1);
        assert!(
            err.contains("cooling down") && err.contains("cheap-slow (30.0 s left)"),
            "{err}"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(pick(&r, reg.models(), 0.1), "cheap-slow", "cooled down");
        // One more failure sets it aside again at once.
        r.record("cheap-slow", &fail);
        assert!(r.cooldown_left("cheap-slow").is_some());
        r.record(
            "cheap-slow",
            &CallOutcome::success(Duration::from_millis(5), Usage::default(), None),
        );
        assert_eq!(r.cooldown_left("cheap-slow"), None, "a success ends it");
    }

    #[test]
    fn one_early_failure_is_forgiven_a_steady_rate_is_not() {
        let (r, reg) = router(Strategy::Cost, same_size(), Vec::new());
        let ok = CallOutcome::success(Duration::from_millis(5), Usage::default(), None);
        let fail = CallOutcome::failure(Duration::from_millis(5), Some(FailureKind::Server));
        for outcome in [&ok, &ok, &ok, &ok, &fail] {
            r.record("cheap-slow", outcome);
        }
        assert_eq!(
            pick(&r, reg.models(), 0.1),
            "cheap-slow",
            "4 of 5 is 6/7 smoothed"
        );
        for outcome in [&ok, &fail, &ok, &fail] {
            r.record("cheap-slow", outcome);
        }
        assert_eq!(
            pick(&r, reg.models(), 0.1),
            "dear-fast",
            "6 of 9 is below 0.85"
        );
    }

    #[test]
    fn history_weighs_on_the_choice() {
        let good_a = vec![
            history("cheap-slow", 500, 495, 100.0),
            history("dear-fast", 500, 300, 100.0),
        ];
        let (r, reg) = router(Strategy::Performance, same_size(), good_a);
        assert_eq!(pick(&r, reg.models(), 0.1), "cheap-slow");
        let good_b = vec![
            history("cheap-slow", 500, 300, 100.0),
            history("dear-fast", 500, 495, 100.0),
        ];
        let (r, reg) = router(Strategy::Performance, same_size(), good_b);
        assert_eq!(pick(&r, reg.models(), 0.1), "dear-fast");
        let snapshot = r.snapshot();
        assert_eq!(snapshot[0].calls, HISTORY_WEIGHT, "history is capped");
    }

    #[test]
    fn fallbacks_follow_chains_then_the_strategy() {
        let specs = vec![
            spec("small", 0.001, "8b"),
            spec("medium", 0.002, "70b"),
            spec("large", 0.01, "400b"),
            spec("other", 0.0005, "70b"),
        ];
        let registry = Registry::new(specs).unwrap_or_default();
        let routing = RoutingConfig {
            fallbacks: [("small".to_owned(), vec!["large".to_owned()])].into(),
            fallback_strategy: FallbackStrategy::Cost,
            ..RoutingConfig::default()
        };
        let r = Router::new(&registry, routing, CostConfig::default(), Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let names = |m: &str| -> Vec<String> {
            let spec = registry.find(m).unwrap_or_else(|e| panic!("{e}"));
            r.fallbacks(&spec).iter().map(|s| s.name.clone()).collect()
        };
        assert_eq!(names("small"), ["large"], "the explicit chain");
        assert_eq!(
            names("medium"),
            ["other", "large"],
            "as capable or more, cheapest first"
        );
        assert!(names("large").is_empty(), "nothing is as capable");
        let none = Router::with_defaults(&registry);
        let spec = registry.find("medium").unwrap_or_else(|e| panic!("{e}"));
        assert!(none.fallbacks(&spec).is_empty());
    }

    #[test]
    fn stats_fold_rows() {
        let mut s = ModelStats::new("m");
        assert_eq!(s.success_rate(), None);
        s.add_call(100.0, true, 0.01)
            .add_call(f64::NAN, false, f64::NAN);
        assert_eq!(s.success_rate(), Some(0.5));
        assert_eq!(s.mean_latency_ms, 100.0);
        assert_eq!(s.mean_cost_usd, 0.01);
        s.add_ttft(40.0);
        assert_eq!(s.mean_ttft_ms, Some(40.0));
    }

    #[test]
    fn routers_are_shared_across_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Router>();
    }
}
