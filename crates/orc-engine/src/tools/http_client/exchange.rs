//! A request sent through the shared client: redirects followed (at most
//! [`MAX_REDIRECTS`]), and the whole exchange tried again after a 408, 429 or 5xx answer or a
//! failed connection, waiting what `Retry-After` asks or the back-off.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION};
use http::{Method, StatusCode};
use orc_models::{Backoff, HttpClient, WebRequest, WebResponse};
use url::Url;

use super::params::Request;

/// The most redirects one exchange follows.
pub(super) const MAX_REDIRECTS: usize = 10;
/// The longest `Retry-After` waited for; an answer that asks for more ends the retries.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The last answer, and the URL it came from (after redirects).
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) response: WebResponse,
    pub(super) url: Url,
}

/// What a request came to: its last answer or failure, and how many times it was sent.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) result: Result<Answer, Failure>,
    pub(super) attempts: u32,
}

/// No answer: the transport failed, or a redirect could not be followed.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    /// Whether another attempt may succeed.
    pub(super) retryable: bool,
}

/// Whether an answer with this status is worth another try: 408, 429, and the 5xx of a
/// server that may recover (not 501 or 505, which say the request will never work).
pub(super) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429)
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// Sends `request`, following redirects, with up to `request.retries` retries.
pub(super) async fn send(client: &HttpClient, request: &Request, backoff: &Backoff) -> Outcome {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = follow(client, request).await;
        let (again, asked) = match &result {
            Ok(answer) => (
                retryable_status(answer.response.status),
                answer.response.retry_after(),
            ),
            Err(failure) => (failure.retryable, None),
        };
        if !again || attempts > request.retries {
            return Outcome { result, attempts };
        }
        let wait = match asked {
            Some(after) if after > MAX_RETRY_AFTER => return Outcome { result, attempts },
            Some(after) => after,
            None => backoff.delay(attempts),
        };
        match &result {
            Ok(answer) => tracing::warn!(
                attempt = attempts,
                status = answer.response.status.as_u16(),
                wait_ms = wait.as_millis() as u64,
                "http-client: retrying after a {} answer",
                answer.response.status
            ),
            Err(failure) => tracing::warn!(
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                "http-client: retrying after a failure: {}",
                request.secrets.redact(&failure.message)
            ),
        }
        tokio::time::sleep(wait).await;
    }
}

/// One attempt: the request, and each redirect of its answers in turn.
async fn follow(client: &HttpClient, request: &Request) -> Result<Answer, Failure> {
    let mut url = request.url.clone();
    let mut method = request.method.clone();
    let mut headers = request.headers.clone();
    let mut body = request.body.clone();
    let mut redirects = 0;
    loop {
        let uri = url.as_str().parse().map_err(|e| Failure {
            message: format!("the URL {url} cannot be sent: {e}"),
            retryable: false,
        })?;
        let response = client
            .send(WebRequest {
                method: method.clone(),
                uri,
                headers: headers.clone(),
                body: body.clone(),
                timeout: request.timeout,
                max_body_bytes: request.max_bytes,
            })
            .await
            .map_err(|e| Failure {
                retryable: e.is_retryable(),
                message: e.to_string(),
            })?;
        let location = response.headers.get(LOCATION).and_then(|l| l.to_str().ok());
        let Some(location) =
            location.filter(|_| request.allow_redirects && response.status.is_redirection())
        else {
            return Ok(Answer { response, url });
        };
        if redirects == MAX_REDIRECTS {
            return Err(Failure {
                message: format!("more than {MAX_REDIRECTS} redirects, the last to {location}"),
                retryable: false,
            });
        }
        redirects += 1;
        let next = url
            .join(location)
            .ok()
            .filter(|next| matches!(next.scheme(), "http" | "https"))
            .ok_or_else(|| Failure {
                message: format!(
                    "{url} redirected to {location:?}, which is not an http or https URL"
                ),
                retryable: false,
            })?;
        // 303 always, and 301/302 after a POST, become a GET without the body (as browsers
        // and Python's requests do); 307 and 308 repeat the request as it was.
        let status = response.status;
        if method != Method::HEAD
            && (status == StatusCode::SEE_OTHER
                || (method == Method::POST
                    && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)))
        {
            method = Method::GET;
            body = bytes::Bytes::new();
            headers.remove(CONTENT_TYPE);
            headers.remove(CONTENT_LENGTH);
        }
        // Credentials are for the origin the step named: not sent on to another.
        if next.origin() != url.origin() {
            headers.remove(AUTHORIZATION);
            headers.remove(COOKIE);
            if let Some(name) = &request.credential {
                headers.remove(name);
            }
        }
        url = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_worth_another_try() {
        for status in [408, 429, 500, 502, 503, 504, 507, 599] {
            assert!(
                retryable_status(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
        for status in [200, 301, 400, 401, 403, 404, 409, 422, 501, 505] {
            assert!(
                !retryable_status(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
    }
}
