//! A step's parameters read into one request: the method, the URL with its query, headers
//! and credentials, the body (JSON, a form, or text), and the limits of the exchange.
//! Anything wrong is an error that names the parameter, before anything is sent.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use super::auth::{self, Credential, Secrets};
use crate::tools::{bool_param, json_type, seconds_param};

/// Seconds one exchange (each redirect and each retry) may take, unless `timeout` says.
pub(super) const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Retries of a 408, 429, 5xx answer or a failed connection, unless `retries` says.
pub(super) const DEFAULT_RETRIES: u32 = 2;
/// The most `retries` may ask for.
pub(super) const MAX_RETRIES: u32 = 10;
/// The largest body read, unless `max_response_bytes` says: 10 MiB.
pub(super) const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The most `max_response_bytes` may ask for: 1 GiB.
pub(super) const MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// A request, ready to send.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: Method,
    /// The URL with the query of `params`.
    pub(super) url: Url,
    /// The step's headers and its credential.
    pub(super) headers: HeaderMap,
    /// The header `auth` set, dropped when a redirect leaves the URL's origin.
    pub(super) credential: Option<HeaderName>,
    pub(super) body: Bytes,
    pub(super) timeout: Duration,
    pub(super) retries: u32,
    pub(super) max_bytes: usize,
    pub(super) allow_redirects: bool,
    pub(super) raise_for_status: bool,
    /// What no result or error may show.
    pub(super) secrets: Secrets,
}

/// Reads the parameters of `action` (`get`, `post`, …, or `request` with a `method`).
pub(super) fn read(action: &str, params: &Map<String, Value>) -> Result<Request, String> {
    let method = match action {
        "request" => match params.get("method") {
            Some(Value::String(m)) => Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("parameter `method`: `{m}` is not an HTTP method"))?,
            Some(other) => {
                return Err(format!(
                    "parameter `method` must be text, not {}",
                    json_type(other)
                ));
            }
            None => return Err("missing parameter `method`".into()),
        },
        other => Method::from_bytes(other.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{other}` is not an HTTP method"))?,
    };
    let mut url = read_url(params)?;
    if let Some(query) = mapping(params, "params")? {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &query {
            for value in scalars(value).map_err(|e| format!("parameter `params.{key}`: {e}"))? {
                pairs.append_pair(key, &value);
            }
        }
    }
    // A URL whose query was empty keeps a bare `?` after `query_pairs_mut`; drop it.
    if url.query() == Some("") {
        url.set_query(None);
    }
    let mut headers = HeaderMap::new();
    if let Some(given) = mapping(params, "headers")? {
        for (name, value) in &given {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("parameter `headers`: `{name}` is not a header name"))?;
            for value in scalars(value).map_err(|e| format!("parameter `headers.{name}`: {e}"))? {
                let value = HeaderValue::try_from(value).map_err(|_| {
                    format!("parameter `headers.{name}`: the value is not a valid header value")
                })?;
                headers.append(header.clone(), value);
            }
        }
    }
    let mut secrets = Secrets::default();
    let credential = match mapping(params, "auth")? {
        Some(given) => {
            let Credential { name, value } = auth::read(&given, &mut secrets)?;
            headers.insert(name.clone(), value);
            Some(name)
        }
        None => None,
    };
    let body = read_body(params, &mut headers)?;
    Ok(Request {
        method,
        url,
        headers,
        credential,
        body,
        timeout: Duration::from_secs_f64(seconds_param(params, "timeout", DEFAULT_TIMEOUT_SECS)?),
        retries: whole(
            params,
            "retries",
            DEFAULT_RETRIES.into(),
            MAX_RETRIES.into(),
        )?
        .try_into()
        .unwrap_or(MAX_RETRIES),
        max_bytes: whole(params, "max_response_bytes", DEFAULT_MAX_BYTES, MAX_BYTES)?
            .try_into()
            .unwrap_or(usize::MAX),
        allow_redirects: bool_param(params, "allow_redirects", true)?,
        raise_for_status: bool_param(params, "raise_for_status", true)?,
        secrets,
    })
}

/// `url`: an absolute `http` or `https` URL without credentials.
fn read_url(params: &Map<String, Value>) -> Result<Url, String> {
    let text = crate::tools::str_param(params, "url")?;
    let url = Url::parse(text.trim()).map_err(|e| format!("parameter `url`: {e}: {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "parameter `url`: the scheme is `{}`; only http and https URLs are fetched",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "parameter `url` carries credentials; hint: name the variables that hold them in `auth`"
                .into(),
        );
    }
    Ok(url)
}

/// The body: `json` (any value; text that parses as JSON is that JSON), or `data` (a mapping
/// sent as a form, or text sent as it is). Sets the content type unless `headers` did.
fn read_body(params: &Map<String, Value>, headers: &mut HeaderMap) -> Result<Bytes, String> {
    let present = |key| params.get(key).is_some_and(|v| !v.is_null());
    let (body, content_type) = match (present("json"), present("data")) {
        (true, true) => return Err("give `json` or `data`, not both".into()),
        (false, false) => return Ok(Bytes::new()),
        (true, false) => {
            let json = match &params["json"] {
                Value::String(s) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::from(s.as_str()))
                }
                other => other.clone(),
            };
            let bytes = serde_json::to_vec(&json).map_err(|e| format!("parameter `json`: {e}"))?;
            (bytes, "application/json")
        }
        (false, true) => match mapping(params, "data") {
            Ok(Some(form)) => {
                let mut encoded = url::form_urlencoded::Serializer::new(String::new());
                for (key, value) in &form {
                    for value in
                        scalars(value).map_err(|e| format!("parameter `data.{key}`: {e}"))?
                    {
                        encoded.append_pair(key, &value);
                    }
                }
                (
                    encoded.finish().into_bytes(),
                    "application/x-www-form-urlencoded",
                )
            }
            _ => match &params["data"] {
                Value::String(text) => (text.clone().into_bytes(), "text/plain; charset=utf-8"),
                other => {
                    return Err(format!(
                        "parameter `data` must be a mapping (a form) or text, not {}",
                        json_type(other)
                    ));
                }
            },
        },
    };
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(Bytes::from(body))
}

/// A mapping parameter; text that parses as a JSON object is read as one (a template gives
/// text). `None` when absent or null.
fn mapping(params: &Map<String, Value>, key: &str) -> Result<Option<Map<String, Value>>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(format!("parameter `{key}` must be a mapping, not text")),
        },
        Some(other) => Err(format!(
            "parameter `{key}` must be a mapping, not {}",
            json_type(other)
        )),
    }
}

/// The texts of a query, form or header value: a scalar as Python's `str()` shows it, a list
/// as one text per item (the key repeated); null as none.
fn scalars(value: &Value) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(orc_pipeline::templates::filters::py_str(
            &orc_pipeline::templates::to_value(v),
        )),
        other => Err(format!(
            "a value must be text, a number or a boolean, not {}",
            json_type(other)
        )),
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).map(one).collect(),
        other => one(other).map(|v| vec![v]),
    }
}

/// A whole number from 0 to `max`, with a default; text is read as a number.
fn whole(params: &Map<String, Value>, key: &str, default: u64, max: u64) -> Result<u64, String> {
    let Some(value) = params.get(key).filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            format!("parameter `{key}` must be a whole number from 0 to {max}, not {value}")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_json(action: &str, json: Value) -> Result<Request, String> {
        read(action, json.as_object().unwrap())
    }

    #[test]
    fn query_headers_and_defaults() {
        let r = read_json(
            "get",
            serde_json::json!({
                "url": "https://example.com/search?lang=en",
                "params": {"q": "rust & tokio", "n": 5, "tags": ["a", "b"], "skip": null, "exact": true},
                "headers": {"User-Agent": "bot 1.0", "Accept": ["application/json", "text/plain"]},
            }),
        )
        .unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(
            r.url.as_str(),
            "https://example.com/search?lang=en&q=rust+%26+tokio&n=5&tags=a&tags=b&exact=True"
        );
        assert_eq!(r.headers["user-agent"], "bot 1.0");
        assert_eq!(r.headers.get_all("accept").iter().count(), 2);
        assert!(r.body.is_empty() && r.credential.is_none());
        assert_eq!(r.timeout, Duration::from_secs(30));
        assert_eq!((r.retries, r.max_bytes), (2, 10 * 1024 * 1024));
        assert!(r.allow_redirects && r.raise_for_status);
        let bare = read_json(
            "get",
            serde_json::json!({"url": "http://h/p", "params": {}}),
        )
        .unwrap();
        assert_eq!(bare.url.as_str(), "http://h/p");
    }

    #[test]
    fn json_form_and_text_bodies() {
        let r = read_json(
            "post",
            serde_json::json!({"url": "http://h/", "json": {"a": [1, 2]}}),
        )
        .unwrap();
        assert_eq!(&r.body[..], br#"{"a":[1,2]}"#);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        let templated = read_json(
            "post",
            serde_json::json!({"url": "http://h/", "json": "{\"a\": 1}"}),
        )
        .unwrap();
        assert_eq!(&templated.body[..], br#"{"a":1}"#);
        let word = read_json(
            "put",
            serde_json::json!({"url": "http://h/", "json": "hello"}),
        )
        .unwrap();
        assert_eq!(&word.body[..], br#""hello""#);
        let form = read_json(
            "patch",
            serde_json::json!({"url": "http://h/", "data": {"name": "a b", "n": 1}}),
        )
        .unwrap();
        assert_eq!(&form.body[..], b"name=a+b&n=1");
        assert_eq!(
            form.headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let text = read_json(
            "request",
            serde_json::json!({"method": "options", "url": "http://h/", "data": "raw", "headers": {"Content-Type": "text/csv"}}),
        )
        .unwrap();
        assert_eq!(text.method, Method::OPTIONS);
        assert_eq!(&text.body[..], b"raw");
        assert_eq!(text.headers[CONTENT_TYPE], "text/csv");
    }

    #[test]
    fn limits_read_text_as_templates_give_it() {
        let r = read_json(
            "get",
            serde_json::json!({"url": "http://h/", "timeout": "2.5", "retries": "0", "max_response_bytes": 100, "allow_redirects": "False", "raise_for_status": false}),
        )
        .unwrap();
        assert_eq!(r.timeout, Duration::from_millis(2500));
        assert_eq!((r.retries, r.max_bytes), (0, 100));
        assert!(!r.allow_redirects && !r.raise_for_status);
    }

    #[test]
    fn mistakes_name_their_parameter() {
        for (action, json, expected) in [
            ("get", serde_json::json!({}), "missing parameter `url`"),
            (
                "get",
                serde_json::json!({"url": "example.com"}),
                "parameter `url`: relative URL",
            ),
            (
                "get",
                serde_json::json!({"url": "ftp://h/"}),
                "only http and https",
            ),
            (
                "get",
                serde_json::json!({"url": "http://u:p@h/"}),
                "carries credentials",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "params": "q=1"}),
                "`params` must be a mapping",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "params": {"q": {"x": 1}}}),
                "`params.q`",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "headers": {"bad name": "x"}}),
                "not a header name",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "headers": {"X": "a\nb"}}),
                "`headers.X`",
            ),
            (
                "post",
                serde_json::json!({"url": "http://h/", "json": 1, "data": "x"}),
                "not both",
            ),
            (
                "post",
                serde_json::json!({"url": "http://h/", "data": 3}),
                "`data` must be a mapping",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "timeout": 0}),
                "`timeout`",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "retries": 11}),
                "from 0 to 10",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "retries": -1}),
                "`retries`",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "allow_redirects": "maybe"}),
                "true or false",
            ),
            (
                "request",
                serde_json::json!({"url": "http://h/"}),
                "missing parameter `method`",
            ),
            (
                "request",
                serde_json::json!({"url": "http://h/", "method": "GE T"}),
                "not an HTTP method",
            ),
            (
                "get",
                serde_json::json!({"url": "http://h/", "auth": {"type": "bearer"}}),
                "`auth` needs `token_env`",
            ),
        ] {
            let error = read_json(action, json.clone()).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
