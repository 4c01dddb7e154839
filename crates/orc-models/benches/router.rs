//! What one routing decision costs: [`Router::route`] over 8 candidate models with
//! history, for each strategy (target: under 20 µs per decision), and what
//! [`Router::record`] adds to every call.
//!
//! `cargo bench -p orc-models --bench router -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use orc_models::{
    CallOutcome, Cost, CostConfig, ModelSpec, ModelStats, ProviderKind, Registry, RouteRequest,
    Router, RoutingConfig, Strategy, Usage,
};

/// Eight models of different sizes and prices, each with some history.
fn setup(strategy: Strategy) -> (Router, Vec<Arc<ModelSpec>>) {
    let sizes = ["1b", "3b", "8b", "14b", "32b", "70b", "180b", "400b"];
    let mut specs = Vec::new();
    let mut history = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let mut spec = ModelSpec::new(format!("model-{i}"), ProviderKind::OpenAi);
        spec.size = Some((*size).to_owned());
        spec.context_window = Some(8192 << i);
        spec.expertise = vec!["general".to_owned()];
        spec.local = i == 0;
        spec.cost = Some(Cost {
            input_per_1k: 0.0001 * (i + 1) as f64,
            output_per_1k: 0.0004 * (i + 1) as f64,
        });
        let mut stats = ModelStats::new(spec.name.clone());
        for call in 0..40 {
            stats.add_call(100.0 + 50.0 * i as f64, call % 17 != 0, 0.001);
        }
        specs.push(spec);
        history.push(stats);
    }
    let registry = Registry::new(specs).unwrap();
    let routing = RoutingConfig {
        strategy,
        ..RoutingConfig::default()
    };
    let router = Router::new(&registry, routing, CostConfig::default(), history).unwrap();
    (router, registry.models().to_vec())
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_8_models");
    for strategy in [
        Strategy::Performance,
        Strategy::Cost,
        Strategy::Balanced,
        Strategy::Ucb,
    ] {
        let (router, candidates) = setup(strategy);
        for complexity in [0.1, 0.8] {
            let request = RouteRequest {
                candidates: &candidates,
                estimated_input_tokens: 400,
                max_tokens: Some(256),
                complexity,
                stream: false,
            };
            let id = BenchmarkId::new(strategy.as_str(), complexity);
            group.bench_with_input(id, &request, |b, request| {
                b.iter(|| black_box(router.route(black_box(request)).unwrap()));
            });
        }
    }
    group.finish();
}

fn record(c: &mut Criterion) {
    let (router, _) = setup(Strategy::Ucb);
    let outcome = CallOutcome::success(
        Duration::from_millis(120),
        Usage {
            input_tokens: 400,
            output_tokens: 200,
            ..Usage::default()
        },
        Some(0.0003),
    );
    c.bench_function("record", |b| {
        b.iter(|| router.record(black_box("model-3"), black_box(&outcome)));
    });
}

criterion_group!(benches, route, record);
criterion_main!(benches);
