//! One entry of the config file's `models:` list.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::provider_kind::ProviderKind;
use crate::secret::ApiKey;

/// Parses a provider name as the config file writes it: `openai` or `anthropic`.
impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(Error::UnknownProvider {
                name: other.to_owned(),
            }),
        }
    }
}

/// Prices in USD per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// USD per 1,000 input (prompt) tokens.
    pub input_per_1k: f64,
    /// USD per 1,000 output (generated) tokens.
    pub output_per_1k: f64,
}

/// A model as the config file's `models:` list describes it, with defaults filled in.
///
/// ```
/// let spec: orc_models::ModelSpec = serde_json::from_str(
///     r#"{"name": "local", "provider": "openai", "model": "llama3.2:1b",
///         "base_url": "http://127.0.0.1:11434/v1", "local": true}"#,
/// ).unwrap();
/// assert_eq!(spec.model, "llama3.2:1b");
/// assert_eq!(spec.api_key_env, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModelSpec")]
pub struct ModelSpec {
    /// The name pipelines use (`model:`, `requires_model`).
    pub name: String,
    /// The wire protocol.
    pub provider: ProviderKind,
    /// The provider's own id for the model (may contain `:`, like `llama3.2:1b`).
    pub model: String,
    /// Where the provider's API lives, without a trailing slash.
    pub base_url: String,
    /// The environment variable holding the API key; `None` for servers that need none.
    pub api_key_env: Option<String>,
    /// Prices, when known.
    pub cost: Option<Cost>,
    /// The context window in tokens, when known.
    pub context_window: Option<u64>,
    /// The model's size as written in the config (`8b`, `70B`, `1.5b`).
    pub size: Option<String>,
    /// What the model is good at (`general`, `code`, `fast`, …).
    pub expertise: Vec<String>,
    /// Whether the model runs on this machine (no per-token cost, no network egress).
    pub local: bool,
    /// At most this many calls to the model at once, when limited.
    pub max_concurrency: Option<NonZeroUsize>,
}

impl ModelSpec {
    /// A spec with every optional field at its default.
    pub fn new(name: impl Into<String>, provider: ProviderKind) -> Self {
        let name = name.into();
        ModelSpec {
            model: name.clone(),
            name,
            provider,
            base_url: provider.default_base_url().to_owned(),
            api_key_env: None,
            cost: None,
            context_window: None,
            size: None,
            expertise: Vec::new(),
            local: false,
            max_concurrency: None,
        }
    }

    /// Reads the API key from the variable in `api_key_env`.
    ///
    /// `Ok(None)` when the model names no variable; [`crate::Error::MissingKey`] when
    /// it names one that is unset or empty.
    pub fn api_key(&self) -> Result<Option<ApiKey>> {
        self.api_key_env
            .as_deref()
            .map(|var| ApiKey::from_env(var, &self.name))
            .transpose()
    }

    /// The model's size in billions of parameters, when `size` reads like `8b`, `70B`
    /// or `1.5`.
    pub fn size_billions(&self) -> Option<f64> {
        let size = self.size.as_deref()?.trim();
        let number = size
            .strip_suffix(['b', 'B'])
            .unwrap_or(size)
            .trim_end()
            .parse::<f64>()
            .ok()?;
        (number.is_finite() && number >= 0.0).then_some(number)
    }
}

/// `size` as written: a string such as `8b`, or a bare number.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeField {
    Text(String),
    Number(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelSpec {
    name: String,
    provider: ProviderKind,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    cost: Option<Cost>,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    size: Option<SizeField>,
    #[serde(default)]
    expertise: Vec<String>,
    #[serde(default)]
    local: bool,
    #[serde(default)]
    max_concurrency: Option<NonZeroUsize>,
}

impl TryFrom<RawModelSpec> for ModelSpec {
    type Error = String;

    fn try_from(raw: RawModelSpec) -> std::result::Result<Self, String> {
        if raw.name.trim().is_empty() {
            return Err("model `name` must not be empty".to_owned());
        }
        let model = raw.model.unwrap_or_else(|| raw.name.clone());
        if model.trim().is_empty() {
            return Err(format!("model `{}`: `model` must not be empty", raw.name));
        }
        let base_url = raw
            .base_url
            .unwrap_or_else(|| raw.provider.default_base_url().to_owned());
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "model `{}`: `base_url` must start with http:// or https://, got `{base_url}`",
                raw.name
            ));
        }
        if raw
            .api_key_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(format!(
                "model `{}`: `api_key_env` must name an environment variable",
                raw.name
            ));
        }
        let size = raw.size.map(|size| match size {
            SizeField::Text(text) => text,
            SizeField::Number(n) => format!("{n}b"),
        });
        Ok(ModelSpec {
            name: raw.name,
            provider: raw.provider,
            model,
            base_url,
            api_key_env: raw.api_key_env,
            cost: raw.cost,
            context_window: raw.context_window,
            size,
            expertise: raw.expertise,
            local: raw.local,
            max_concurrency: raw.max_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<ModelSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn full_entry_as_in_the_design() -> std::result::Result<(), serde_json::Error> {
        let spec = parse(
            r#"{"name": "small", "provider": "openai", "model": "gpt-4o-mini",
                "base_url": "https://api.openai.com/v1/", "api_key_env": "OPENAI_API_KEY",
                "cost": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
                "context_window": 128000, "size": "8b", "expertise": ["general", "fast"],
                "local": false, "max_concurrency": 16}"#,
        )?;
        assert_eq!(spec.provider, ProviderKind::OpenAi);
        assert_eq!(spec.model, "gpt-4o-mini");
        assert_eq!(spec.base_url, "https://api.openai.com/v1");
        assert_eq!(spec.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(spec.cost.map(|c| c.output_per_1k), Some(0.0006));
        assert_eq!(spec.context_window, Some(128_000));
        assert_eq!(spec.size_billions(), Some(8.0));
        assert_eq!(spec.expertise, ["general", "fast"]);
        assert_eq!(spec.max_concurrency.map(NonZeroUsize::get), Some(16));
        Ok(())
    }

    #[test]
    fn defaults_follow_the_provider() -> std::result::Result<(), serde_json::Error> {
        let spec = parse(r#"{"name": "claude-3-5-haiku-latest", "provider": "anthropic"}"#)?;
        assert_eq!(spec.model, "claude-3-5-haiku-latest");
        assert_eq!(spec.base_url, "https://api.anthropic.com");
        assert_eq!(
            spec,
            ModelSpec::new("claude-3-5-haiku-latest", ProviderKind::Anthropic)
        );
        let spec = parse(r#"{"name": "llama3.2:1b", "provider": "openai", "size": 1.5}"#)?;
        assert_eq!(spec.model, "llama3.2:1b");
        assert_eq!(spec.base_url, "https://api.openai.com/v1");
        assert_eq!(spec.size.as_deref(), Some("1.5b"));
        assert_eq!(spec.size_billions(), Some(1.5));
        Ok(())
    }

    #[test]
    fn unknown_fields_and_providers_are_errors() {
        let err = parse(r#"{"name": "x", "provider": "openai", "temprature": 1}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("temprature"), "{err}");
        let err = parse(r#"{"name": "x", "provider": "cohere"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cohere"), "{err}");
        let err = parse(r#"{"name": "x", "provider": "openai", "base_url": "localhost:8080"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("base_url"), "{err}");
        assert!(parse(r#"{"name": "x", "provider": "openai", "max_concurrency": 0}"#).is_err());
    }

    #[test]
    fn provider_names_round_trip() {
        for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
            assert_eq!(provider.as_str().parse::<ProviderKind>(), Ok(provider));
        }
        assert!("OpenAI".parse::<ProviderKind>().is_err());
    }
}
