//! Cheap estimates the router, the budget and `orc plan` make before a call: tokens,
//! a request's complexity, and a model's capability.

use crate::registry::level_of;
use crate::request::ChatRequest;
use crate::spec::ModelSpec;

/// Output tokens assumed for a chat or completion that sets no `max_tokens` (what the
/// Anthropic client sends). Under a budget such requests are sent with this
/// `max_tokens`, so the reserved worst case is a bound the provider enforces.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;

/// Tokens a text is estimated to take: one per four characters, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Tokens per message the estimate adds for roles and separators.
const MESSAGE_TOKENS: u64 = 4;
/// Tokens per message (and once per request) the bound adds for roles, separators
/// and the provider's priming.
const MESSAGE_TOKENS_BOUND: u64 = 8;
/// Tokens the bound adds for a schema instruction some providers get as text.
const SCHEMA_TOKENS_BOUND: u64 = 64;

/// What the router and the budget know of a request before it is sent: the size of
/// its text and the parameters that make it harder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFeatures {
    /// Characters of every text sent (system prompt, messages, schema).
    pub prompt_chars: u64,
    /// UTF-8 bytes of the same.
    pub prompt_bytes: u64,
    /// Messages (or prompts) sent.
    pub messages: u64,
    /// The answer's `max_tokens`, when set.
    pub max_tokens: Option<u32>,
    /// Whether the answer must follow a JSON Schema.
    pub structured: bool,
    /// Whether the answer is streamed (the router ranks by time to first token).
    pub stream: bool,
    /// Expertise the step asks for (`requires_model.expertise`): a level (`low`,
    /// `medium`, `high`, `very-high`) or tags (`code`, `analysis`, …).
    pub expertise: Vec<String>,
    /// A complexity the step states (0–1), blended evenly with the estimate.
    pub hint: Option<f64>,
}

impl RequestFeatures {
    /// The features of a chat request.
    pub fn of_chat(req: &ChatRequest) -> Self {
        let mut features = RequestFeatures {
            max_tokens: req.max_tokens,
            structured: req.json_schema.is_some(),
            stream: req.stream,
            ..RequestFeatures::default()
        };
        for message in &req.messages {
            features.add_text(&message.content);
        }
        if let Some(system) = &req.system {
            features.add_text(system);
        }
        if let Some(schema) = &req.json_schema {
            let text = schema.to_string();
            features.prompt_chars += text.chars().count() as u64;
            features.prompt_bytes += text.len() as u64;
        }
        features
    }

    /// The features of a list of prompts or inputs (completions, embeddings).
    pub fn of_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut features = RequestFeatures::default();
        for text in texts {
            features.add_text(text);
        }
        features
    }

    fn add_text(&mut self, text: &str) {
        self.prompt_chars += text.chars().count() as u64;
        self.prompt_bytes += text.len() as u64;
        self.messages += 1;
    }

    /// Input tokens, estimated: a token per four characters, plus a few per message.
    /// Used to rank models by cost and by `orc plan`.
    pub fn estimated_input_tokens(&self) -> u64 {
        self.prompt_chars.div_ceil(4) + MESSAGE_TOKENS * self.messages
    }

    /// The most input tokens the request can take: byte-level tokenizers never make
    /// more tokens than the text has bytes, plus the per-message overhead. Budgets
    /// reserve this, so that a provider's count never exceeds the reservation.
    pub fn input_token_bound(&self) -> u64 {
        let schema = if self.structured {
            SCHEMA_TOKENS_BOUND
        } else {
            0
        };
        self.prompt_bytes + MESSAGE_TOKENS_BOUND * (self.messages + 1) + schema
    }

    /// The most output tokens: `max_tokens`, else [`DEFAULT_MAX_OUTPUT_TOKENS`].
    pub fn output_token_bound(&self) -> u64 {
        u64::from(self.max_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS))
    }

    /// This request's complexity (see [`complexity`]).
    pub fn complexity(&self) -> f64 {
        complexity(self)
    }
}

/// How demanding a request is, from 0 (trivial) to 1, from what is known before it is
/// sent. A weighted sum:
///
/// - prompt length, 35 %: `ln(1 + tokens) / ln(1 + 8000)` (tokens as characters / 4),
///   so 10 tokens score 0.27, 1,000 score 0.77, 8,000 or more score 1;
/// - expertise asked for, 30 %: `low`/`fast`/`compact` 0, `medium`/`general` ⅓,
///   `high`/`code`/`reasoning` ⅔, `very-high`/`analysis`/`research` 1 (the highest
///   tag counts; none asked: 0);
/// - `max_tokens`, 20 %: `ln(1 + max_tokens) / ln(1 + 4096)`; unset counts 0.2;
/// - a JSON Schema to follow, 15 %.
///
/// A step's own `hint` is averaged with the sum. "Say hi" scores about 0.12; a
/// 2,000-token analysis with a schema and 2,000 tokens out about 0.9.
pub fn complexity(features: &RequestFeatures) -> f64 {
    let tokens = features.estimated_input_tokens() as f64;
    let length = (tokens.ln_1p() / 8000f64.ln_1p()).min(1.0);
    let output = match features.max_tokens {
        Some(n) => (f64::from(n).ln_1p() / 4096f64.ln_1p()).min(1.0),
        None => 0.2,
    };
    let expertise = features
        .expertise
        .iter()
        .map(|e| expertise_score(e))
        .fold(0.0, f64::max);
    let structured = if features.structured { 1.0 } else { 0.0 };
    let estimate = 0.35 * length + 0.3 * expertise + 0.2 * output + 0.15 * structured;
    let estimate = estimate.clamp(0.0, 1.0);
    match features.hint.filter(|h| h.is_finite()) {
        Some(hint) => ((estimate + hint.clamp(0.0, 1.0)) / 2.0).clamp(0.0, 1.0),
        None => estimate,
    }
}

fn expertise_score(word: &str) -> f64 {
    let word = word.trim().to_ascii_lowercase();
    match word.as_str() {
        "low" | "fast" | "compact" => 0.0,
        "high" | "code" | "reasoning" => 2.0 / 3.0,
        "very-high" | "analysis" | "research" => 1.0,
        _ => 1.0 / 3.0,
    }
}

/// How capable a model is, from 0 to 1, from its config entry: the mean of the
/// signals it has of
///
/// - size: `ln(1 + billions) / ln(1 + 1000)` (8b 0.32, 70b 0.62, 400b 0.87);
/// - expertise tags: the level they reach (as for `requires_model`: only
///   `fast`/`compact` 0, otherwise ⅓, `code`/`reasoning` ⅔, `analysis`/`research` 1);
/// - context window: `(log2(tokens) − 12) / 8`, so 4k scores 0, 128k 0.63, 1M 1.
///
/// A model with none of these is ranked by price instead (USD per 1k input plus 1k
/// output tokens: `ln(1 + 1000·price) / ln(101)`, so dearer reads as more capable);
/// with no price either it scores 0.5.
pub fn capability(spec: &ModelSpec) -> f64 {
    let mut sum = 0.0;
    let mut signals = 0.0;
    if let Some(b) = spec.size_billions() {
        sum += (b.ln_1p() / 1000f64.ln_1p()).clamp(0.0, 1.0);
        signals += 1.0;
    }
    if !spec.expertise.is_empty() {
        sum += level_of(&spec.expertise) as f64 / 3.0;
        signals += 1.0;
    }
    if let Some(window) = spec.context_window.filter(|w| *w > 0) {
        sum += ((window as f64).log2() - 12.0).clamp(0.0, 8.0) / 8.0;
        signals += 1.0;
    }
    if signals > 0.0 {
        return sum / signals;
    }
    match (spec.local, spec.cost) {
        (false, Some(c)) => {
            let per_1k = (c.input_per_1k + c.output_per_1k).max(0.0);
            ((1000.0 * per_1k).ln_1p() / 100f64.ln_1p()).clamp(0.0, 1.0)
        }
        _ => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_kind::ProviderKind;
    use crate::spec::Cost;

    #[test]
    fn tokens_are_estimated_and_bounded() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        let req = ChatRequest::user("x".repeat(400));
        let f = RequestFeatures::of_chat(&req);
        assert_eq!(f.estimated_input_tokens(), 100 + 4);
        assert_eq!(f.input_token_bound(), 400 + 16);
        assert_eq!(f.output_token_bound(), u64::from(DEFAULT_MAX_OUTPUT_TOKENS));
        // Multi-byte text: the bound counts bytes.
        let f = RequestFeatures::of_texts(["日本語"]);
        assert_eq!(f.prompt_chars, 3);
        assert_eq!(f.prompt_bytes, 9);
    }

    #[test]
    fn simple_requests_score_low_and_demanding_ones_high() {
        let hi = RequestFeatures::of_chat(&ChatRequest::user("Say hi"));
        assert!(complexity(&hi) < 0.15, "{}", complexity(&hi));
        let mut analysis = RequestFeatures::of_chat(&ChatRequest::user("word ".repeat(1600)));
        analysis.expertise = vec!["analysis".into()];
        analysis.max_tokens = Some(2000);
        analysis.structured = true;
        assert!(complexity(&analysis) > 0.85, "{}", complexity(&analysis));
        let mut code = hi.clone();
        code.expertise = vec!["code".into()];
        assert!(complexity(&code) > 0.3 && complexity(&code) > complexity(&hi));
        let mut hinted = hi.clone();
        hinted.hint = Some(1.0);
        assert!((complexity(&hinted) - (complexity(&hi) + 1.0) / 2.0).abs() < 1e-12);
        for f in [&hi, &analysis, &code, &hinted] {
            assert!((0.0..=1.0).contains(&complexity(f)));
        }
    }

    #[test]
    fn capability_ranks_size_expertise_window_then_price() {
        let spec = |f: &dyn Fn(&mut ModelSpec)| {
            let mut s = ModelSpec::new("m", ProviderKind::OpenAi);
            f(&mut s);
            s
        };
        let tiny = spec(&|s| {
            s.size = Some("1b".into());
            s.expertise = vec!["fast".into()];
            s.context_window = Some(8192);
        });
        let big = spec(&|s| {
            s.size = Some("400b".into());
            s.expertise = vec!["code".into(), "analysis".into()];
            s.context_window = Some(200_000);
        });
        assert!(capability(&tiny) < 0.2, "{}", capability(&tiny));
        assert!(capability(&big) > 0.8, "{}", capability(&big));
        let cheap = spec(&|s| {
            s.cost = Some(Cost {
                input_per_1k: 0.00015,
                output_per_1k: 0.0006,
            })
        });
        let dear = spec(&|s| {
            s.cost = Some(Cost {
                input_per_1k: 0.003,
                output_per_1k: 0.015,
            })
        });
        assert!(capability(&cheap) < capability(&dear));
        assert_eq!(capability(&ModelSpec::new("m", ProviderKind::OpenAi)), 0.5);
    }
}
