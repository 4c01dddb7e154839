//! What model calls cost: the price of a call's tokens, the worst case a budget
//! reserves, and the estimate `orc plan` shows. A leaf: the gateway, the router and
//! the metrics all price calls here.

use serde::Serialize;

use crate::complexity::RequestFeatures;
use crate::registry::ESTIMATED_CALL_TOKENS;
use crate::spec::{Cost, ModelSpec};
use crate::usage::Usage;

/// The USD price of `usage` on `spec`: zero for local models, `None` when unpriced.
pub fn price(spec: &ModelSpec, usage: Usage) -> Option<f64> {
    rate_of(spec).map(|rate| cost_at(rate, usage))
}

/// What `spec`'s tokens cost: nothing for local models, its `cost` for the others
/// (`None` when unpriced).
pub(crate) fn rate_of(spec: &ModelSpec) -> Option<Cost> {
    if spec.local {
        return Some(Cost {
            input_per_1k: 0.0,
            output_per_1k: 0.0,
        });
    }
    spec.cost
}

/// The USD price of `usage` at `rate`.
pub(crate) fn cost_at(rate: Cost, usage: Usage) -> f64 {
    (usage.input_tokens as f64 * rate.input_per_1k
        + usage.output_tokens as f64 * rate.output_per_1k)
        / 1000.0
}

/// The most USD a call may cost, as a budget reserves it: the input tokens bounded by
/// the prompt's bytes ([`RequestFeatures::input_token_bound`]) and the output by
/// `max_tokens` (else [`DEFAULT_MAX_OUTPUT_TOKENS`](crate::DEFAULT_MAX_OUTPUT_TOKENS)), priced with the model's `cost`.
/// Zero for local models; `None` when the model has no price.
pub fn worst_case_cost(spec: &ModelSpec, features: &RequestFeatures) -> Option<f64> {
    let usage = Usage {
        input_tokens: features.input_token_bound(),
        output_tokens: features.output_token_bound(),
        ..Usage::default()
    };
    price(spec, usage)
}

/// What a request is expected to cost on a model, before it is made (`orc plan`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The model's name.
    pub model: String,
    /// Input tokens, estimated (characters / 4, plus a few per message).
    pub input_tokens: u64,
    /// The most output tokens: `max_tokens`, else [`DEFAULT_MAX_OUTPUT_TOKENS`](crate::DEFAULT_MAX_OUTPUT_TOKENS).
    pub max_output_tokens: u64,
    /// USD for the estimated input and up to 500 output tokens (fewer when
    /// `max_tokens` says so); `None` when the model has no price.
    pub expected_usd: Option<f64>,
    /// USD a budget reserves for the call ([`worst_case_cost`]).
    pub worst_case_usd: Option<f64>,
    /// Whether the response cache holds the answer (it then costs nothing).
    pub cached: bool,
}

/// [`Estimate`] of a request with `features` on `spec`, without looking in the cache.
pub fn estimate(spec: &ModelSpec, features: &RequestFeatures) -> Estimate {
    let input_tokens = features.estimated_input_tokens();
    let max_output_tokens = features.output_token_bound();
    let output = match features.max_tokens {
        Some(_) if max_output_tokens == 0 => 0,
        _ => max_output_tokens.min(ESTIMATED_CALL_TOKENS.1),
    };
    Estimate {
        model: spec.name.clone(),
        input_tokens,
        max_output_tokens,
        expected_usd: price(
            spec,
            Usage {
                input_tokens,
                output_tokens: output,
                ..Usage::default()
            },
        ),
        worst_case_usd: worst_case_cost(spec, features),
        cached: false,
    }
}
