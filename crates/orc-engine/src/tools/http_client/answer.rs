//! An answer as the step's result: `{status, url, headers, json}` when the body is JSON,
//! `{status, url, headers, text}` otherwise; with the request's secrets replaced wherever the
//! server echoed them.

use http::header::CONTENT_TYPE;
use orc_models::WebResponse;
use serde_json::{Map, Value};
use url::Url;

use super::auth::Secrets;

/// The result of an answer.
pub(super) fn result(response: &WebResponse, url: &Url, secrets: &Secrets) -> Value {
    let mut headers = Map::new();
    for name in response.headers.keys() {
        let values: Vec<String> = response
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    let mut result = Map::new();
    result.insert("status".into(), response.status.as_u16().into());
    result.insert("url".into(), url.as_str().into());
    result.insert("headers".into(), Value::Object(headers));
    match json_body(response) {
        Some(json) => result.insert("json".into(), json),
        None => result.insert(
            "text".into(),
            String::from_utf8_lossy(&response.body).into_owned().into(),
        ),
    };
    secrets.redact_value(Value::Object(result))
}

/// The body as JSON, when the content type says JSON (`application/json`, `…+json`) and it
/// parses.
fn json_body(response: &WebResponse) -> Option<Value> {
    let content_type = response.headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let json = essence == "application/json" || essence.ends_with("+json");
    json.then(|| serde_json::from_slice(&response.body).ok())?
}

/// The message of an answer whose status is an error: the method, the URL without its query,
/// the status, and the start of the body.
pub(super) fn status_error(
    method: &http::Method,
    url: &Url,
    response: &WebResponse,
    attempts: u32,
    secrets: &Secrets,
) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let body = String::from_utf8_lossy(&response.body);
    let body = body.trim();
    let mut message = format!("{method} {shown} answered {}", response.status);
    if attempts > 1 {
        message.push_str(&format!(" (after {attempts} attempts)"));
    }
    if !body.is_empty() {
        const SHOWN: usize = 200;
        let mut end = body.len().min(SHOWN);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < body.len() { "…" } else { "" };
        message.push_str(&format!(": {}{more}", &body[..end]));
    }
    secrets.redact(&message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::{HeaderMap, StatusCode};

    fn response(status: u16, content_type: &str, body: &str) -> WebResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        headers.append("set-cookie", "a=1".parse().unwrap());
        headers.append("set-cookie", "b=2".parse().unwrap());
        WebResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn json_when_the_type_says_so_and_it_parses_else_text() {
        let url = Url::parse("http://h/p?q=1").unwrap();
        let none = Secrets::default();
        let json = result(
            &response(200, "application/json; charset=utf-8", r#"{"a": 1}"#),
            &url,
            &none,
        );
        assert_eq!(json["json"], serde_json::json!({"a": 1}));
        assert_eq!(json["status"], 200);
        assert_eq!(json["url"], "http://h/p?q=1");
        assert_eq!(json["headers"]["set-cookie"], "a=1, b=2");
        assert!(json.get("text").is_none());
        let problem = result(
            &response(400, "application/problem+json", r#"{"title": "x"}"#),
            &url,
            &none,
        );
        assert_eq!(problem["json"]["title"], "x");
        let broken = result(&response(200, "application/json", "{oops"), &url, &none);
        assert_eq!(broken["text"], "{oops");
        let html = result(&response(200, "text/html", "<p>{}</p>"), &url, &none);
        assert_eq!(html["text"], "<p>{}</p>");
    }

    #[test]
    fn status_errors_show_the_status_and_the_start_of_the_body() {
        let url = Url::parse("http://h/p?token=abc").unwrap();
        let none = Secrets::default();
        let long = "x".repeat(500);
        let message = status_error(
            &http::Method::GET,
            &url,
            &response(404, "text/plain", &long),
            1,
            &none,
        );
        assert!(
            message.starts_with("GET http://h/p answered 404 Not Found: xxx"),
            "{message}"
        );
        assert!(message.ends_with('…') && message.len() < 300, "{message}");
        let retried = status_error(
            &http::Method::POST,
            &url,
            &response(503, "text/plain", ""),
            3,
            &none,
        );
        assert_eq!(
            retried,
            "POST http://h/p answered 503 Service Unavailable (after 3 attempts)"
        );
    }
}
