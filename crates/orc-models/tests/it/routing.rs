//! The router, fallbacks and budgets through the gateway, against the fake provider
//! with several models of different prices, latencies and failure rates.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use orc_fake_provider::{Behaviour, FakeProvider, ModelBehaviour};
use orc_models::{
    Backoff, Budget, BudgetLimits, ChatRequest, Cooldown, Cost, CostConfig, Error,
    FallbackStrategy, Gateway, GatewayOptions, HttpOptions, Model, ModelClient, ModelSpec,
    ModelStats, ProviderKind, Registry, RequestFeatures, Requirements, RetryPolicy, Router,
    RoutingConfig, Source, Strategy, actions, worst_case_cost,
};
use tokio::task::JoinSet;

/// One model of the fleet: its name, how the fake answers it, its price.
struct Member {
    name: &'static str,
    behaviour: ModelBehaviour,
    cost: Option<Cost>,
    context_window: Option<u64>,
}

fn member(name: &'static str, behaviour: ModelBehaviour, price: f64) -> Member {
    Member {
        name,
        behaviour,
        cost: Some(Cost {
            input_per_1k: price,
            output_per_1k: price,
        }),
        context_window: None,
    }
}

fn latency(ms: u64) -> ModelBehaviour {
    ModelBehaviour {
        latency: Some(Duration::from_millis(ms)),
        ..ModelBehaviour::default()
    }
}

fn failing(rate: f64, status: u16) -> ModelBehaviour {
    ModelBehaviour {
        failure_rate: rate,
        failure_status: Some(status),
        ..ModelBehaviour::default()
    }
}

/// One fake provider serving every model of the fleet, and the registry of them.
struct Fleet {
    fake: FakeProvider,
    registry: Registry,
}

async fn fleet(members: Vec<Member>) -> Result<Fleet> {
    let mut behaviour = Behaviour::default();
    let mut specs = Vec::new();
    for m in members {
        behaviour = behaviour.with_model(m.name, m.behaviour);
        let mut spec = ModelSpec::new(m.name, ProviderKind::OpenAi);
        spec.cost = m.cost;
        spec.size = Some("8b".to_owned());
        spec.context_window = m.context_window;
        specs.push(spec);
    }
    let fake = FakeProvider::start(behaviour).await?;
    for spec in &mut specs {
        spec.base_url = fake.openai_base_url();
    }
    let registry = Registry::new(specs).map_err(anyhow::Error::msg)?;
    Ok(Fleet { fake, registry })
}

/// Retries as a test wants them: quick, and a `Retry-After` of a second is not
/// waited for (the 429 is returned, so the call falls back).
fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            jitter: false,
        },
        max_retry_after: Duration::from_millis(100),
    }
}

struct Rig<'a> {
    routing: RoutingConfig,
    history: Vec<ModelStats>,
    budget: Option<Budget>,
    retry: RetryPolicy,
    cache: bool,
    fleet: &'a Fleet,
}

impl<'a> Rig<'a> {
    fn new(fleet: &'a Fleet) -> Self {
        Rig {
            routing: RoutingConfig::default(),
            history: Vec::new(),
            budget: None,
            retry: RetryPolicy::none(),
            cache: false,
            fleet,
        }
    }

    fn strategy(mut self, strategy: Strategy) -> Self {
        self.routing.strategy = strategy;
        self
    }

    fn gateway(self) -> Result<Gateway> {
        let router = Router::new(
            &self.fleet.registry,
            self.routing,
            CostConfig::default(),
            self.history,
        )?;
        let cache = match self.cache {
            true => Some(orc_cache::Cache::open(orc_cache::CacheOptions {
                namespace: "routing-test".into(),
                ..orc_cache::CacheOptions::default()
            })?),
            false => None,
        };
        let client = ModelClient::new(&HttpOptions::default())?.with_retry_policy(self.retry);
        Ok(Gateway::new(
            self.fleet.registry.clone(),
            client,
            GatewayOptions {
                cache,
                router: Some(router),
                budget: self.budget,
                ..GatewayOptions::default()
            },
        ))
    }
}

fn model(gateway: &Gateway, name: &str) -> Result<Model> {
    Ok(gateway.registry().resolve(name)?)
}

/// The features of a short, simple request.
fn simple() -> RequestFeatures {
    RequestFeatures::of_chat(&ChatRequest::user("Say hi"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_chooses_by_what_the_calls_showed() -> Result<()> {
    let fleet = fleet(vec![
        member("fast-dear", latency(20), 0.01),
        member("slow-cheap", latency(80), 0.0001),
    ])
    .await?;
    let expected = [
        (Strategy::Performance, "fast-dear"),
        (Strategy::Cost, "slow-cheap"),
        (Strategy::Balanced, "slow-cheap"),
        (Strategy::Ucb, "fast-dear"),
    ];
    for (strategy, winner) in expected {
        let gateway = Rig::new(&fleet).strategy(strategy).gateway()?;
        // Three calls each, so the router has seen both.
        for name in ["fast-dear", "slow-cheap"] {
            let m = model(&gateway, name)?;
            for i in 0..3 {
                let req = ChatRequest::user(format!("warm up {strategy} {i}"));
                gateway.chat(&m, &req, false).await?;
            }
        }
        let decision = gateway.route(gateway.registry().models(), &simple())?;
        ensure!(
            decision.model.name == winner,
            "{strategy}: {} ({})",
            decision.model.name,
            decision.reason
        );
        ensure!(
            decision.reason.starts_with(strategy.as_str()),
            "{}",
            decision.reason
        );
        // The router keeps the decision for the dashboard.
        let kept = gateway.router().recent_decisions();
        ensure!(kept.len() == 1, "{kept:?}");
        ensure!(kept[0].chosen == winner && kept[0].reason == decision.reason);
        ensure!(kept[0].strategy == strategy.as_str());
        ensure!(
            kept[0].candidates == ["fast-dear", "slow-cheap"],
            "{kept:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucb_learns_to_prefer_the_reliable_model() -> Result<()> {
    let flaky = ModelBehaviour {
        latency: Some(Duration::from_millis(5)),
        ..failing(0.5, 500)
    };
    let fleet = fleet(vec![
        member("flaky", flaky, 0.001),
        member("steady", latency(5), 0.001),
    ])
    .await?;
    let gateway = Rig::new(&fleet).strategy(Strategy::Ucb).gateway()?;
    let mut chosen = Vec::new();
    for i in 0..40 {
        let decision = gateway.route(gateway.registry().models(), &simple())?;
        let m = model(&gateway, &decision.model.name)?;
        // Failures are the router's lesson; the test goes on.
        let _ = gateway
            .chat(&m, &ChatRequest::user(format!("round {i}")), false)
            .await;
        chosen.push(decision.model.name.clone());
    }
    let late_steady = chosen[20..].iter().filter(|n| *n == "steady").count();
    ensure!(
        late_steady >= 14,
        "steady {late_steady} of the last 20: {chosen:?}"
    );
    let stats = gateway.router().snapshot();
    let flaky = stats.iter().find(|s| s.model == "flaky").context("flaky")?;
    ensure!(
        flaky.calls >= 1 && flaky.successes < flaky.calls,
        "{flaky:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_down_the_fallback_chain_and_say_so() -> Result<()> {
    let fleet = fleet(vec![
        member("small", failing(1.0, 500), 0.001),
        member("medium", failing(1.0, 429), 0.002),
        member("large", latency(0), 0.01),
    ])
    .await?;
    let mut rig = Rig::new(&fleet);
    rig.routing.fallbacks = [(
        "small".to_owned(),
        vec!["medium".to_owned(), "large".to_owned()],
    )]
    .into();
    rig.retry = quick_retries(2);
    let gateway = rig.gateway()?;
    let small = model(&gateway, "small")?;

    let answer = gateway
        .chat(&small, &ChatRequest::user("who answers?"), false)
        .await?;
    ensure!(answer.model.name == "large", "{:?}", answer.model.name);
    ensure!(answer.value.text == "echo: who answers?");
    let path: Vec<(&str, &str)> = answer
        .fallback
        .iter()
        .map(|f| (f.from.as_str(), f.to.as_str()))
        .collect();
    ensure!(
        path == [("small", "medium"), ("medium", "large")],
        "{path:?}"
    );
    ensure!(
        answer.fallback[0].reason.contains("HTTP 500"),
        "{:?}",
        answer.fallback
    );
    ensure!(
        answer.fallback[1].reason.contains("HTTP 429"),
        "{:?}",
        answer.fallback
    );
    // small was retried once (500 is retryable); the 429's Retry-After was too long to wait.
    let stats = fleet.fake.stats();
    ensure!(
        (
            stats.requests_for("small"),
            stats.requests_for("medium"),
            stats.requests_for("large")
        ) == (2, 1, 1),
        "{:?}",
        stats.requests_by_model
    );
    ensure!(gateway.stats().fallbacks == 2);
    // The router recorded each model's outcome.
    let seen: Vec<(String, u64, u64)> = gateway
        .router()
        .snapshot()
        .into_iter()
        .map(|s| (s.model, s.calls, s.successes))
        .collect();
    ensure!(
        seen == [
            ("small".to_owned(), 1, 0),
            ("medium".to_owned(), 1, 0),
            ("large".to_owned(), 1, 1)
        ],
        "{seen:?}"
    );

    // The action's outcome carries the model that answered and the path to it.
    let params = serde_json::json!({"prompt": "through an action"});
    let params = params.as_object().cloned().unwrap_or_default();
    let outcome = actions::run(&gateway, &small, "generate", &params, false, None).await?;
    ensure!(outcome.model.name == "large" && outcome.fallback.len() == 2);

    // A request the provider rejects is not fallen back on.
    let before = fleet.fake.stats().requests_for("large");
    let err = gateway
        .chat(&small, &ChatRequest::user("[[fake:status=400]] bad"), false)
        .await
        .err()
        .context("a 400 fails")?;
    ensure!(
        err.status() == Some(400) && err.fallbacks().is_empty(),
        "{err}"
    );
    ensure!(fleet.fake.stats().requests_for("large") == before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_fallback_fails_the_error_lists_them() -> Result<()> {
    let fleet = fleet(vec![
        member("small", failing(1.0, 503), 0.001),
        member("medium", failing(1.0, 502), 0.002),
    ])
    .await?;
    let mut rig = Rig::new(&fleet);
    rig.routing.fallbacks = [("small".to_owned(), vec!["medium".to_owned()])].into();
    let gateway = rig.gateway()?;
    let err = gateway
        .chat(
            &model(&gateway, "small")?,
            &ChatRequest::user("anyone?"),
            false,
        )
        .await
        .err()
        .context("every model fails")?;
    let text = err.to_string();
    ensure!(matches!(err, Error::FallbacksFailed { .. }), "{err:?}");
    ensure!(
        text.contains("HTTP 502") && text.ends_with("fallbacks tried: small → medium"),
        "{text}"
    );
    ensure!(err.is_retryable() && err.status() == Some(502));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_too_long_goes_to_a_larger_window() -> Result<()> {
    let windowed = |window: u64| ModelBehaviour {
        context_window: Some(window),
        ..ModelBehaviour::default()
    };
    let mut short = member("short", windowed(4), 0.001);
    short.context_window = Some(4);
    let mut narrow = member("narrow", windowed(3), 0.001);
    narrow.context_window = Some(3);
    let mut wide = member("wide", ModelBehaviour::default(), 0.002);
    wide.context_window = Some(100_000);
    let fleet = fleet(vec![short, narrow, wide]).await?;
    let mut rig = Rig::new(&fleet);
    rig.routing.fallback_strategy = FallbackStrategy::Cost;
    let gateway = rig.gateway()?;
    let answer = gateway
        .chat(
            &model(&gateway, "short")?,
            &ChatRequest::user("one two three four five six"),
            false,
        )
        .await?;
    ensure!(answer.model.name == "wide", "{}", answer.model.name);
    ensure!(answer.fallback.len() == 1, "{:?}", answer.fallback);
    ensure!(
        answer.fallback[0]
            .reason
            .contains("context window exceeded"),
        "{:?}",
        answer.fallback
    );
    ensure!(
        fleet.fake.stats().requests_for("narrow") == 0,
        "narrow was skipped"
    );
    Ok(())
}

/// Cool-downs on the paused clock: the fake provider answers at once, and time moves
/// only when the test moves it.
#[tokio::test(start_paused = true)]
async fn a_failing_model_cools_down_then_comes_back() -> Result<()> {
    let fleet = fleet(vec![
        member("bad", failing(1.0, 500), 0.0001),
        member("good", ModelBehaviour::default(), 0.01),
        member("first", failing(1.0, 503), 0.001),
    ])
    .await?;
    let mut rig = Rig::new(&fleet).strategy(Strategy::Cost);
    rig.routing.cooldown = Cooldown {
        failures: 2,
        seconds: 30.0,
    };
    rig.routing.fallbacks = [(
        "first".to_owned(),
        vec!["bad".to_owned(), "good".to_owned()],
    )]
    .into();
    let gateway = rig.gateway()?;
    let candidates: Vec<Arc<ModelSpec>> = gateway.registry().models()[..2].to_vec();
    let bad = model(&gateway, "bad")?;

    ensure!(
        gateway.route(&candidates, &simple())?.model.name == "bad",
        "cheapest"
    );
    for i in 0..2 {
        let failed = gateway
            .chat(&bad, &ChatRequest::user(format!("try {i}")), false)
            .await;
        ensure!(failed.is_err());
    }
    let left = gateway.router().cooldown_left("bad").unwrap_or_default();
    ensure!(left > Duration::from_secs(29), "{left:?}");
    let decision = gateway.route(&candidates, &simple())?;
    ensure!(decision.model.name == "good", "{}", decision.reason);

    // A fallback chain skips it too.
    let answer = gateway
        .chat(
            &model(&gateway, "first")?,
            &ChatRequest::user("via chain"),
            false,
        )
        .await?;
    ensure!(answer.model.name == "good");
    ensure!(
        answer.fallback.len() == 1 && answer.fallback[0].to == "good",
        "{:?}",
        answer.fallback
    );
    ensure!(
        fleet.fake.stats().requests_for("bad") == 2,
        "bad was not called while cooling"
    );

    tokio::time::advance(Duration::from_secs(31)).await;
    ensure!(gateway.router().cooldown_left("bad").is_none());
    ensure!(
        gateway.route(&candidates, &simple())?.model.name == "bad",
        "back after the cool-down"
    );
    Ok(())
}

/// 64 concurrent calls against a budget that covers 10 of them at their worst case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_overspend_the_budget() -> Result<()> {
    let fleet = fleet(vec![member("paid", latency(100), 1.0)]).await?;
    let request = |i: usize| ChatRequest {
        max_tokens: Some(10),
        ..ChatRequest::user(format!("question {i:02}"))
    };
    let spec = fleet.registry.find("paid")?;
    let worst = worst_case_cost(&spec, &RequestFeatures::of_chat(&request(0))).context("priced")?;
    // Worst case: (11 bytes + 16) input + 10 output tokens at $1 per 1k.
    ensure!((worst - 0.037).abs() < 1e-12, "{worst}");
    let limit = worst * 10.0 + 1e-7;
    let budget = Budget::new(BudgetLimits {
        per_run: Some(limit),
        per_hour: None,
    });
    let mut rig = Rig::new(&fleet);
    rig.budget = Some(budget.clone());
    let gateway = rig.gateway()?;
    let paid = model(&gateway, "paid")?;

    let mut granted_total = 0;
    for round in 0..2 {
        let mut calls = JoinSet::new();
        for i in 0..64 {
            let (gateway, paid, req) = (gateway.clone(), paid.clone(), request(round * 64 + i));
            calls.spawn(async move { gateway.chat(&paid, &req, false).await });
        }
        let (mut granted, mut refused, mut paid_usd) = (0, 0, 0.0);
        while let Some(joined) = calls.join_next().await {
            match joined? {
                Ok(answer) => {
                    granted += 1;
                    paid_usd += answer.cost.context("priced")?;
                }
                Err(e) => {
                    ensure!(e.is_budget_refusal(), "only budget refusals: {e}");
                    ensure!(
                        e.to_string()
                            .starts_with("budget exhausted: run budget $0.37, spent $"),
                        "{e}"
                    );
                    refused += 1;
                }
            }
            // At no point is more settled than the limit.
            let now = budget.snapshot();
            ensure!(now.run_spent + now.reserved <= limit + 1e-12, "{now:?}");
        }
        ensure!(granted + refused == 64);
        if round == 0 {
            // Every call reserves before any settles: exactly ten fit.
            ensure!(granted == 10, "{granted} granted");
        } else {
            // What the first ten did not use buys more calls.
            ensure!(granted >= 1, "{granted} granted");
        }
        granted_total += granted;
        ensure!(
            (paid_usd - granted as f64 * 0.005).abs() < 1e-9,
            "{paid_usd}"
        );
    }
    let spent = budget.spent();
    ensure!(spent <= limit, "spent {spent} of {limit}");
    let snapshot = budget.snapshot();
    ensure!(
        snapshot.reserved == 0.0 && snapshot.overrun == 0.0,
        "{snapshot:?}"
    );
    // Each answer cost 5 tokens ("question NN" in, "echo: question NN" out) at $1 per 1k.
    ensure!(
        (spent - granted_total as f64 * 0.005).abs() < 1e-9,
        "{spent} for {granted_total}"
    );
    let stats = gateway.stats();
    ensure!(stats.upstream_calls == granted_total as u64);
    ensure!(stats.budget_refusals == 128 - granted_total as u64);
    ensure!(fleet.fake.stats().requests_for("paid") == granted_total as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_shared_calls_reserve_nothing() -> Result<()> {
    let fleet = fleet(vec![
        member("paid", latency(100), 1.0),
        Member {
            cost: None,
            ..member("unpriced", ModelBehaviour::default(), 0.0)
        },
    ])
    .await?;
    let req = ChatRequest {
        max_tokens: Some(10),
        ..ChatRequest::user("question 01")
    };
    let spec = fleet.registry.find("paid")?;
    let worst = worst_case_cost(&spec, &RequestFeatures::of_chat(&req)).context("priced")?;
    let budget = Budget::new(BudgetLimits {
        per_run: Some(worst + 1e-9),
        per_hour: None,
    });
    let mut rig = Rig::new(&fleet);
    rig.budget = Some(budget.clone());
    rig.cache = true;
    let gateway = rig.gateway()?;
    let paid = model(&gateway, "paid")?;

    // Eight identical requests in flight: one call, one reservation.
    let answers = futures::future::join_all((0..8).map(|_| gateway.chat(&paid, &req, true))).await;
    let mut shared = 0;
    for answer in answers {
        shared += usize::from(answer?.source == Source::Shared);
    }
    ensure!(shared == 7);
    // From the cache, though the budget could not pay for the call again.
    let again = gateway.chat(&paid, &req, true).await?;
    ensure!(again.source == Source::Cache && again.cost == Some(0.0));
    let other = ChatRequest {
        max_tokens: Some(10),
        ..ChatRequest::user("question 02")
    };
    let err = gateway
        .chat(&paid, &other, true)
        .await
        .err()
        .context("over budget")?;
    ensure!(err.is_budget_refusal(), "{err}");
    ensure!(budget.spent() <= worst + 1e-9);
    ensure!(fleet.fake.stats().requests_for("paid") == 1);

    // A model without a price cannot be paid for under a budget.
    let err = gateway
        .chat(&model(&gateway, "unpriced")?, &other, true)
        .await
        .err()
        .context("unpriced")?;
    ensure!(
        err.to_string().contains("model `unpriced` has no price"),
        "{err}"
    );
    ensure!(fleet.fake.stats().requests_for("unpriced") == 0);

    // What `orc plan` sees: the estimate, and whether the answer is cached.
    let estimate = gateway.estimate_chat(&spec, &req, true).await?;
    ensure!(
        estimate.cached && estimate.worst_case_usd == Some(worst),
        "{estimate:?}"
    );
    let estimate = gateway.estimate_chat(&spec, &other, true).await?;
    ensure!(
        !estimate.cached && estimate.input_tokens == 3 + 4,
        "{estimate:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_carries_what_was_learnt_into_the_next_run() -> Result<()> {
    let fleet = fleet(vec![
        member("a", failing(1.0, 500), 0.001),
        member("b", latency(0), 0.001),
    ])
    .await?;

    // Run 1 calls both models by name: a fails every time, b answers.
    let run1 = Rig::new(&fleet).gateway()?;
    for name in ["a", "b"] {
        let m = model(&run1, name)?;
        for i in 0..6 {
            let _ = run1
                .chat(&m, &ChatRequest::user(format!("run 1 {i}")), false)
                .await;
        }
    }
    // What the state store would hold: one row per call, folded into stats.
    let mut history = Vec::new();
    for stats in run1.router().snapshot() {
        let mut rows = ModelStats::new(stats.model.clone());
        for i in 0..stats.calls {
            rows.add_call(stats.mean_latency_ms, i < stats.successes, 0.0);
        }
        history.push(rows);
    }

    // Run 2, seeded with run 1's history, prefers b without calling a again.
    for strategy in [Strategy::Balanced, Strategy::Performance, Strategy::Ucb] {
        let mut rig = Rig::new(&fleet).strategy(strategy);
        rig.history = history.clone();
        let run2 = rig.gateway()?;
        let decision = run2.route(run2.registry().models(), &simple())?;
        ensure!(
            decision.model.name == "b",
            "{strategy}: {}",
            decision.reason
        );
        // Through the requirements the step states, too.
        let (m, _) = run2.route_model(&Requirements::default(), &simple())?;
        ensure!(m.spec.name == "b");
    }
    // Without the history both look alike and config order decides.
    let fresh = Rig::new(&fleet).gateway()?;
    let decision = fresh.route(fresh.registry().models(), &simple())?;
    if decision.model.name != "a" {
        bail!(
            "a fresh router has no reason to avoid a: {}",
            decision.reason
        );
    }
    Ok(())
}
