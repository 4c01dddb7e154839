//! `http-client`: HTTP requests as steps, through the pooled client the model calls use (the
//! run's gateway's when models are configured; else one client for the whole process), so
//! they share its connections, its cap per host and the proxies of the environment.
//!
//! | part | its one job |
//! |---|---|
//! | [`params`] | the step's parameters read into one request |
//! | [`auth`] | credentials from the environment variables a step names; their redaction |
//! | [`exchange`] | the request sent: redirects followed, retries after 408, 429, 5xx |
//! | [`answer`] | the answer as the step's result, and the message of an error status |

mod answer;
mod auth;
mod exchange;
mod params;

use std::sync::OnceLock;

use orc_models::{Backoff, HttpClient, HttpOptions};
use orc_pipeline::ParamType::{Any, Boolean, Integer, Mapping, Number, String as Text};
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::resources::ToolLimits;
use crate::tools::declare::{Param, action, tool};
use crate::tools::tool::{Call, Tool};
use crate::tools::{Envelope, Retry};

/// The `http-client` tool.
pub(crate) struct HttpTool;

/// The actions: one per method, and `request` with a `method` (what the registry test checks).
#[cfg(test)]
pub(crate) const ACTIONS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "request"];

/// Parameters every action takes.
const COMMON: &[Param] = &[
    ("url", Text, true, None, "an absolute http or https URL"),
    (
        "params",
        Mapping,
        false,
        None,
        "query parameters (a list value repeats the key)",
    ),
    ("headers", Mapping, false, None, "request headers"),
    (
        "auth",
        Mapping,
        false,
        None,
        "credentials from the environment: {type: bearer, token_env}, {type: basic, username or username_env, password_env}, {type: header, name, value_env}",
    ),
    (
        "timeout",
        Number,
        false,
        Some("30"),
        "seconds each exchange (each redirect and retry) may take",
    ),
    (
        "retries",
        Integer,
        false,
        Some("2"),
        "retries after a 408, 429 or 5xx answer or a failed connection (Retry-After honoured), at most 10",
    ),
    (
        "allow_redirects",
        Boolean,
        false,
        Some("true"),
        "follow redirects, at most 10",
    ),
    (
        "raise_for_status",
        Boolean,
        false,
        Some("true"),
        "a 4xx or 5xx answer fails the step",
    ),
    (
        "max_response_bytes",
        Integer,
        false,
        Some("10485760"),
        "the largest body read; a longer one fails the step",
    ),
];

/// The body parameters.
const BODY: &[Param] = &[
    (
        "json",
        Any,
        false,
        None,
        "a JSON body (text that parses as JSON is that JSON)",
    ),
    (
        "data",
        Any,
        false,
        None,
        "a form body (a mapping) or a text body",
    ),
];

impl Tool for HttpTool {
    fn spec(&self) -> ToolSpec {
        let params = |body: bool, method: bool| {
            let mut params: Vec<Param> = Vec::new();
            if method {
                params.push((
                    "method",
                    Text,
                    true,
                    None,
                    "the HTTP method (GET, POST, OPTIONS, …)",
                ));
            }
            params.extend_from_slice(COMMON);
            if body {
                params.extend_from_slice(BODY);
            }
            params
        };
        let described = |name: &str, body: bool| {
            let what = format!(
                "{} a URL; the result is {{status, url, headers, json}} for a JSON body, else {{status, url, headers, text}}",
                name.to_ascii_uppercase()
            );
            action(name, &what, &params(body, false))
        };
        tool(
            "http-client",
            "HTTP requests through orc's pooled client: query, headers, JSON or form bodies, credentials from the environment, retries",
            vec![
                described("get", false),
                described("post", true),
                described("put", true),
                described("patch", true),
                described("delete", true),
                described("head", false),
                action(
                    "request",
                    "A request of any method; the result as the other actions give it",
                    &params(true, true),
                ),
            ],
        )
    }

    fn call<'a>(
        &'a self,
        action: &'a str,
        params: Map<String, Value>,
        limits: &'a ToolLimits,
    ) -> Call<'a> {
        Box::pin(call(action, params, limits))
    }
}

/// The process's client for runs without a gateway, built when first needed.
fn shared_client() -> Result<HttpClient, String> {
    static CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| HttpClient::new(&HttpOptions::default()).map_err(|e| e.to_string()))
        .clone()
}

/// The process's client for confined runs (pipelines posted to `orc serve`): public addresses
/// only, checked after every name lookup, no proxy.
fn public_client() -> Result<HttpClient, String> {
    static CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let options = HttpOptions {
                public_only: true,
                ..HttpOptions::default()
            };
            HttpClient::new(&options).map_err(|e| e.to_string())
        })
        .clone()
}

/// The client a run's requests go through.
fn client_of(limits: &ToolLimits) -> Result<HttpClient, String> {
    match &limits.sandbox {
        Some(sandbox) if !sandbox.allow_private_network => public_client(),
        _ => limits.http.clone().map_or_else(shared_client, Ok),
    }
}

async fn call(action: &str, params: Map<String, Value>, limits: &ToolLimits) -> Envelope {
    let request = match params::read(action, &params) {
        Ok(request) => request,
        Err(message) => return Envelope::fail(message, Value::Null),
    };
    let client = match client_of(limits) {
        Ok(client) => client,
        Err(message) => return Envelope::fail(message, Value::Null),
    };
    let span = tracing::info_span!(
        "http_client",
        method = %request.method,
        host = request.url.host_str().unwrap_or_default(),
    );
    let outcome = exchange::send(&client, &request, &Backoff::default())
        .instrument(span)
        .await;
    let secrets = &request.secrets;
    let answer = match outcome.result {
        Ok(answer) => answer,
        Err(failure) => {
            let mut message = secrets.redact(&failure.message);
            if outcome.attempts > 1 {
                message.push_str(&format!(" (after {} attempts)", outcome.attempts));
            }
            return if failure.retryable {
                Envelope::fail_retryable(message, Value::Null)
            } else {
                Envelope::fail(message, Value::Null)
            };
        }
    };
    let status = answer.response.status;
    let result = answer::result(&answer.response, &answer.url, secrets);
    if !(request.raise_for_status && (status.is_client_error() || status.is_server_error())) {
        return Envelope::ok(result);
    }
    let message = answer::status_error(
        &request.method,
        &answer.url,
        &answer.response,
        outcome.attempts,
        secrets,
    );
    let retry = if exchange::retryable_status(status) {
        Retry::Yes {
            after: answer.response.retry_after(),
        }
    } else {
        Retry::No
    };
    Envelope {
        retry,
        ..Envelope::fail(message, result)
    }
}
