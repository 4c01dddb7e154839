//! Bearer tokens: read from an environment variable or a file, kept only as BLAKE3 digests, and
//! compared in constant time. Tokens never appear in logs, metrics or errors.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orc_runtime::config::AuthSettings;
use orc_runtime::config::layers::read_bounded;

use crate::problem::Problem;

/// The largest token file read: a token is tens of bytes, and a path such as `/dev/zero` must
/// not be read forever.
const MAX_TOKEN_FILE_BYTES: u64 = 1 << 20;

/// The tokens the service accepts; empty when no token is configured (loopback only).
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<blake3::Hash>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Tokens from their clear text (which is not kept).
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Tokens(Arc::new(
            tokens
                .into_iter()
                .map(|t| blake3::hash(t.as_ref().as_bytes()))
                .collect(),
        ))
    }

    /// The tokens `settings` point at: the environment variable's and the file's together.
    pub fn load(settings: &AuthSettings) -> Result<Tokens, crate::Error> {
        let mut text = String::new();
        if let Some(var) = &settings.token_env {
            match std::env::var(var) {
                Ok(value) => text.push_str(&value),
                Err(_) => {
                    return Err(crate::Error::Auth(format!(
                        "server.auth.token_env: the environment variable `{var}` is not set"
                    )));
                }
            }
            text.push('\n');
        }
        if let Some(path) = &settings.token_file {
            let file = read_bounded(path, MAX_TOKEN_FILE_BYTES, "token file")
                .map_err(|e| crate::Error::Auth(format!("server.auth.token_file: {e}")))?;
            for line in file.lines() {
                text.push_str(line.split('#').next().unwrap_or_default());
                text.push('\n');
            }
        }
        let tokens: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if (settings.token_env.is_some() || settings.token_file.is_some()) && tokens.is_empty() {
            return Err(crate::Error::Auth(
                "server.auth: the configured token source holds no token".to_owned(),
            ));
        }
        Ok(Tokens::new(tokens))
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The digest of `presented` when it is one of the tokens. `blake3::Hash` compares in
    /// constant time, and every configured token is compared, so the time taken says nothing
    /// about which matched.
    fn accepts(&self, presented: &str) -> Option<blake3::Hash> {
        let digest = blake3::hash(presented.as_bytes());
        let ok = self.0.iter().fold(false, |ok, t| ok | (*t == digest));
        ok.then_some(digest)
    }
}

/// Who made a request, for per-client limits: the digest of its token (`None` without auth).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client(pub(crate) Option<blake3::Hash>);

/// Lets a request through when no token is configured or it carries a valid one; else 401.
/// Names the request's [`Client`].
pub(crate) async fn require(
    State(tokens): State<Tokens>,
    mut request: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        request.extensions_mut().insert(Client(None));
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) => match tokens.accepts(token) {
            Some(digest) => {
                request.extensions_mut().insert(Client(Some(digest)));
                next.run(request).await
            }
            None => unauthorized("the bearer token is not valid"),
        },
        None => unauthorized("this server needs `Authorization: Bearer <token>`"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_accepted_and_none_is_kept_in_clear() {
        let tokens = Tokens::new(["alpha", "beta"]);
        assert!(tokens.accepts("alpha").is_some() && tokens.accepts("beta").is_some());
        for wrong in ["alph", "", "gamma"] {
            assert!(tokens.accepts(wrong).is_none());
        }
        assert!(!format!("{tokens:?}").contains("alpha"));
    }

    #[test]
    fn an_endless_token_file_is_refused_not_read_forever() {
        let settings = AuthSettings {
            token_env: None,
            token_file: Some("/dev/zero".into()),
        };
        let Err(e) = Tokens::load(&settings) else {
            panic!("/dev/zero gave tokens");
        };
        let e = e.to_string();
        assert!(
            e.contains("server.auth.token_file") && e.contains("larger than 1 MiB"),
            "{e}"
        );
    }
}
