//! Credentials of a request, read from the environment variables a step names (never from
//! the pipeline's text), and the secrets they hold, which no result, error or log shows.
//!
//! ```yaml
//! auth: {type: bearer, token_env: NEWS_API_KEY}                 # Authorization: Bearer …
//! auth: {type: basic, username: alice, password_env: API_PASS}  # or username_env
//! auth: {type: header, name: X-Api-Key, value_env: API_KEY}     # any header
//! ```

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// Secret values: replaced by [`REDACTED`] wherever they appear in text orc shows.
#[derive(Debug, Default)]
pub(super) struct Secrets(Vec<String>);

/// What a secret is shown as.
pub(super) const REDACTED: &str = "[redacted]";

/// A secret shorter than this is not looked for in text: replacing every `a` in an answer
/// would hide the answer, not the secret.
const SHORTEST: usize = 4;

impl Secrets {
    fn add(&mut self, secret: String) {
        if secret.len() >= SHORTEST {
            self.0.push(secret);
            // The longest first, so that a secret containing another is replaced whole.
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced.
    pub(super) fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| {
            if text.contains(secret.as_str()) {
                text.replace(secret.as_str(), REDACTED)
            } else {
                text
            }
        })
    }

    /// `value` with every secret replaced in its strings and keys.
    pub(super) fn redact_value(&self, value: Value) -> Value {
        if self.0.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.redact(&k), self.redact_value(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// The header a step's `auth` sets, marked sensitive.
#[derive(Debug)]
pub(super) struct Credential {
    pub(super) name: HeaderName,
    pub(super) value: HeaderValue,
}

/// Reads `auth`: the header it sets, and its secrets added to `secrets`. An unset variable,
/// an unknown `type` or key is an error that names them (never a value).
pub(super) fn read(auth: &Map<String, Value>, secrets: &mut Secrets) -> Result<Credential, String> {
    let kind = text(auth, "type")?.ok_or(
        "`auth` needs a `type`: bearer (token_env), basic (username or username_env, password_env) or header (name, value_env)",
    )?;
    let (keys, credential): (&[&str], _) = match kind.as_str() {
        "bearer" => {
            let token = from_env(auth, "token_env")?;
            secrets.add(token.clone());
            let value = format!("Bearer {token}");
            (&["token_env"], (AUTHORIZATION, value))
        }
        "basic" => {
            let username = match (text(auth, "username")?, text(auth, "username_env")?) {
                (Some(_), Some(_)) => {
                    return Err("`auth` takes `username` or `username_env`, not both".into());
                }
                (Some(name), None) => name,
                (None, Some(_)) => from_env(auth, "username_env")?,
                (None, None) => {
                    return Err("`auth` of type basic needs `username` or `username_env`".into());
                }
            };
            let password = from_env(auth, "password_env")?;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            secrets.add(password);
            secrets.add(encoded.clone());
            let value = format!("Basic {encoded}");
            (
                &["username", "username_env", "password_env"],
                (AUTHORIZATION, value),
            )
        }
        "header" => {
            let name =
                text(auth, "name")?.ok_or("`auth` of type header needs the header's `name`")?;
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("`auth.name`: `{name}` is not a header name"))?;
            let value = from_env(auth, "value_env")?;
            secrets.add(value.clone());
            (&["name", "value_env"], (name, value))
        }
        other => {
            return Err(format!(
                "`auth.type` is `{other}`; expected bearer, basic or header"
            ));
        }
    };
    if let Some(key) = auth
        .keys()
        .find(|k| k.as_str() != "type" && !keys.contains(&k.as_str()))
    {
        return Err(format!(
            "`auth` of type {kind} takes no `{key}` (it takes {})",
            keys.join(", ")
        ));
    }
    let (name, value) = credential;
    let mut value = HeaderValue::try_from(value)
        .map_err(|_| format!("`auth`: the credential is not a valid value of the {name} header"))?;
    value.set_sensitive(true);
    Ok(Credential { name, value })
}

/// `auth.<key>` as text, if given.
fn text(auth: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match auth.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "`auth.{key}` must be text, not {}",
            crate::tools::json_type(other)
        )),
    }
}

/// The value of the environment variable `auth.<key>` names; an unset or empty one is an
/// error naming it.
fn from_env(auth: &Map<String, Value>, key: &str) -> Result<String, String> {
    let var = text(auth, key)?.ok_or_else(|| {
        format!("`auth` needs `{key}`: the name of the environment variable that holds it")
    })?;
    match std::env::var(&var) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => Err(format!(
            "`auth.{key}`: the environment variable {var} is not set; hint: export {var}"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap()
    }

    #[test]
    fn bearer_basic_and_header_credentials_come_from_the_environment() {
        // PATH is set in every test environment; its value stands in for a secret.
        let path = std::env::var("PATH").unwrap();
        let mut secrets = Secrets::default();
        let c = read(
            &auth(serde_json::json!({"type": "bearer", "token_env": "PATH"})),
            &mut secrets,
        )
        .unwrap();
        assert_eq!(c.name, AUTHORIZATION);
        assert_eq!(c.value.to_str().unwrap(), format!("Bearer {path}"));
        assert!(c.value.is_sensitive());
        assert_eq!(
            secrets.redact(&format!("echo: {path}!")),
            "echo: [redacted]!"
        );

        let mut secrets = Secrets::default();
        let c = read(
            &auth(
                serde_json::json!({"type": "basic", "username": "alice", "password_env": "PATH"}),
            ),
            &mut secrets,
        )
        .unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice:{path}"));
        assert_eq!(c.value.to_str().unwrap(), format!("Basic {encoded}"));
        assert_eq!(secrets.redact(&encoded), REDACTED);

        let mut secrets = Secrets::default();
        let c = read(
            &auth(serde_json::json!({"type": "header", "name": "X-Api-Key", "value_env": "PATH"})),
            &mut secrets,
        )
        .unwrap();
        assert_eq!(c.name.as_str(), "x-api-key");
        let echoed = serde_json::json!({"headers": {"X-Api-Key": path, path.clone(): [path]}});
        let shown = secrets.redact_value(echoed).to_string();
        assert!(!shown.contains(&path), "{shown}");
    }

    #[test]
    fn mistakes_name_the_key_or_variable_never_a_value() {
        let unset = "ORC_ENGINE_TEST_SURELY_UNSET_TOKEN";
        for (json, expected) in [
            (
                serde_json::json!({"token_env": "PATH"}),
                "`auth` needs a `type`",
            ),
            (
                serde_json::json!({"type": "digest"}),
                "`auth.type` is `digest`",
            ),
            (
                serde_json::json!({"type": "bearer", "token_env": unset}),
                "the environment variable ORC_ENGINE_TEST_SURELY_UNSET_TOKEN is not set",
            ),
            (
                serde_json::json!({"type": "bearer", "token_env": "PATH", "token": "x"}),
                "takes no `token`",
            ),
            (
                serde_json::json!({"type": "bearer"}),
                "`auth` needs `token_env`",
            ),
            (
                serde_json::json!({"type": "basic", "password_env": "PATH"}),
                "needs `username` or `username_env`",
            ),
            (
                serde_json::json!({"type": "header", "name": "bad name", "value_env": "PATH"}),
                "is not a header name",
            ),
            (serde_json::json!({"type": 3}), "`auth.type` must be text"),
        ] {
            let error = read(&auth(json.clone()), &mut Secrets::default()).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
            assert!(!error.contains(&std::env::var("PATH").unwrap()), "{error}");
        }
    }

    #[test]
    fn short_secrets_are_not_looked_for() {
        let mut secrets = Secrets::default();
        secrets.add("abc".into());
        secrets.add("abcdef".into());
        secrets.add("abcd".into());
        assert_eq!(
            secrets.redact("abc abcdef abcd"),
            "abc [redacted] [redacted]"
        );
    }
}
