//! API keys: a type that never prints its value.

use std::fmt;

use crate::error::{Error, Result};

/// An API key, read from the environment variable a model's config names.
///
/// `Debug` and `Display` print `***`; the only way to the value is
/// [`ApiKey::expose`], which the provider clients call to set a header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key given directly (tests, or a key from another secret store).
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// Reads the key from the environment variable `var` for model `model`.
    ///
    /// An unset or empty variable is [`Error::MissingKey`], which names the variable
    /// (never a value).
    pub fn from_env(var: &str, model: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(ApiKey(value.trim().to_owned())),
            _ => Err(Error::MissingKey {
                model: model.to_owned(),
                var: var.to_owned(),
            }),
        }
    }

    /// The key itself, for the request header. Never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of this key in `text` with `***`.
    ///
    /// Provider error messages sometimes quote the key they rejected; this keeps
    /// it out of our errors.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 || !text.contains(&self.0) {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_key() {
        let key = ApiKey::new("sk-very-secret");
        assert_eq!(key.to_string(), "***");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(format!("{:?}", Some(&key)), "Some(ApiKey(***))");
        assert_eq!(key.expose(), "sk-very-secret");
    }

    #[test]
    fn redacts_the_key_from_text() {
        let key = ApiKey::new("sk-very-secret");
        assert_eq!(
            key.redact("Incorrect API key provided: sk-very-secret."),
            "Incorrect API key provided: ***."
        );
        assert_eq!(key.redact("nothing here"), "nothing here");
    }

    #[test]
    fn missing_variable_names_the_variable() {
        let err = ApiKey::from_env("ORC_MODELS_TEST_SURELY_UNSET_VAR", "small")
            .err()
            .map(|e| e.to_string());
        let message = err.unwrap_or_default();
        assert!(
            message.contains("ORC_MODELS_TEST_SURELY_UNSET_VAR"),
            "{message}"
        );
        assert!(message.contains("small"), "{message}");
    }
}
