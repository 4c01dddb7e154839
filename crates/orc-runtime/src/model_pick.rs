//! `model: <AUTO task="analyze">…</AUTO>`: the model for an AUTO tag in a model field,
//! chosen by the router from the tag's task and text, without a model call.
//!
//! The tag is read as a request: its words give the expertise it asks for (`analyze` asks for
//! analysis, `summarize` for a fast model, …), its `expertise` and `complexity` attributes
//! add to that, and the router ranks the configured models for the complexity this makes,
//! as it does for a step that names no model. The router is a fresh one (no call history),
//! so the same config always picks the same model for the same tag, and the compile cache
//! that keeps the answer stays right.

use std::sync::Arc;

use orc_models::{Gateway, ModelSpec, Requirements, RouteRequest, Router, complexity};
use orc_pipeline::{AutoRequest, ModelPick};

/// Words of a tag's task and text, and the expertise each asks for: what the complexity
/// score reads (`fast` 0, `general` ⅓, `code`/`reasoning` ⅔, `analysis`/`research` 1).
const TASK_WORDS: &[(&[&str], &str)] = &[
    (
        &[
            "analy", "assess", "evaluat", "review", "research", "synthes", "verif", "validat",
            "critic", "insight", "quality", "risk",
        ],
        "analysis",
    ),
    (&["code", "coding", "program", "script", "debug"], "code"),
    (
        &["reason", "math", "logic", "plan", "decid", "optimi"],
        "reasoning",
    ),
    (
        &[
            "summar", "extract", "pars", "format", "classif", "clean", "simple", "quick", "fast",
            "cheap", "detect", "status",
        ],
        "fast",
    ),
    (
        &[
            "generat",
            "writ",
            "report",
            "draft",
            "creat",
            "document",
            "conclusion",
        ],
        "general",
    ),
];

/// The expertise words a tag asks for, from its `task` attribute and its text (each word
/// once, in [`TASK_WORDS`] order), and its `expertise` attribute as written (`expert` is
/// `very-high`).
pub(crate) fn expertise_of(request: &AutoRequest) -> Vec<String> {
    let attribute = |name: &str| {
        request
            .attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let text = format!(
        "{} {}",
        attribute("task").unwrap_or_default(),
        request.instruction.to_ascii_lowercase()
    );
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (stems, expertise) in TASK_WORDS {
        if words.iter().any(|w| stems.iter().any(|s| w.starts_with(s))) {
            out.push((*expertise).to_owned());
        }
    }
    if let Some(level) = attribute("expertise") {
        out.push(match level.as_str() {
            "expert" | "very_high" => "very-high".to_owned(),
            _ => level,
        });
    }
    out
}

/// The complexity a `complexity="…"` attribute states, if it is a level or a number.
fn stated_complexity(request: &AutoRequest) -> Option<f64> {
    let (_, value) = request.attributes.iter().find(|(k, _)| k == "complexity")?;
    let value = value.trim().to_ascii_lowercase();
    match value.as_str() {
        "low" | "simple" => Some(0.1),
        "medium" | "moderate" => Some(0.5),
        "high" | "complex" => Some(0.9),
        other => other
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v)),
    }
}

/// The model the router picks for `request`, and its reason. Candidates are the configured
/// models whose API key is set, or every configured model when none has its key (so that
/// validating needs no key; running reports the missing key, as for any model named).
pub(crate) fn pick(gateway: &Gateway, request: &AutoRequest) -> Result<ModelPick, String> {
    let registry = gateway.registry();
    let candidates: Vec<Arc<ModelSpec>> = match registry.candidates(&Requirements::default()) {
        Ok(models) => models.into_iter().map(|m| m.spec).collect(),
        Err(_) => registry.models().to_vec(),
    };
    let settings = gateway.router();
    let router = Router::new(
        registry,
        settings.routing().clone(),
        settings.cost().clone(),
        Vec::new(),
    )
    .map_err(|e| e.to_string())?;
    let mut features = orc_models::RequestFeatures::of_texts([request.instruction.as_str()]);
    features.expertise = expertise_of(request);
    features.hint = stated_complexity(request);
    let decision = router
        .route(&RouteRequest {
            candidates: &candidates,
            estimated_input_tokens: features.estimated_input_tokens(),
            max_tokens: None,
            complexity: complexity(&features),
            stream: false,
        })
        .map_err(|e| e.to_string())?;
    let asked = if features.expertise.is_empty() {
        "the tag names no expertise".to_owned()
    } else {
        format!("the tag asks for {}", features.expertise.join(", "))
    };
    Ok(ModelPick {
        model: decision.model.name.clone(),
        reason: format!("{}; {asked}", decision.reason),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use orc_models::{Cost, ProviderKind, Registry};
    use orc_pipeline::Expected;

    fn tag(instruction: &str, attributes: &[(&str, &str)]) -> AutoRequest {
        AutoRequest {
            instruction: instruction.to_owned(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            expected: Expected::Text,
            path: "steps.a.parameters.model".to_owned(),
        }
    }

    #[test]
    fn task_words_give_expertise() {
        assert_eq!(
            expertise_of(&tag("Select model for analysis", &[("task", "analyze")])),
            vec!["analysis"]
        );
        assert_eq!(
            expertise_of(&tag("Select a model for summary", &[("task", "summarize")])),
            vec!["fast"]
        );
        assert_eq!(
            expertise_of(&tag("", &[("task", "generate"), ("expertise", "expert")])),
            vec!["general", "very-high"]
        );
        assert!(expertise_of(&tag("", &[])).is_empty());
    }

    fn spec(name: &str, per_1k: f64, size: &str) -> ModelSpec {
        let mut s = ModelSpec::new(name, ProviderKind::OpenAi);
        s.cost = Some(Cost {
            input_per_1k: per_1k,
            output_per_1k: per_1k,
        });
        s.size = Some(size.to_owned());
        s
    }

    #[test]
    fn analysis_goes_to_the_capable_tier_and_summaries_to_the_fast_one() {
        let registry =
            Registry::new(vec![spec("small", 0.0001, "1b"), spec("big", 0.01, "400b")]).unwrap();
        let client = orc_models::ModelClient::new(&orc_models::HttpOptions::default()).unwrap();
        let gateway = Gateway::new(registry, client, orc_models::GatewayOptions::default());
        let hard = pick(
            &gateway,
            &tag("Select model for analysis", &[("task", "analyze")]),
        )
        .unwrap();
        assert_eq!(hard.model, "big", "{}", hard.reason);
        assert!(hard.reason.contains("capable tier"), "{}", hard.reason);
        assert!(hard.reason.contains("asks for analysis"), "{}", hard.reason);
        let easy = pick(&gateway, &tag("Select a model", &[("task", "summarize")])).unwrap();
        assert_eq!(easy.model, "small", "{}", easy.reason);
        assert!(easy.reason.contains("fast tier"), "{}", easy.reason);
        // The same tag, the same pick.
        let again = pick(
            &gateway,
            &tag("Select model for analysis", &[("task", "analyze")]),
        )
        .unwrap();
        assert_eq!(again, hard);
    }
}
