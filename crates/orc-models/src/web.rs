//! [`HttpClient`]: the pooled client model calls go through, for requests that are not model
//! calls (the `http-client` tool). One exchange per [`HttpClient::send`]: the caller decides
//! what a status means, whether to follow a redirect and whether to try again.

use std::future::poll_fn;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderMap, USER_AGENT};
use http::{Method, StatusCode, Uri};
use http_body_util::Full;

use crate::error::{Error, FailureKind, Result};
use crate::http::{Http, HttpOptions, Transport};

/// The shared HTTP client (its pool, its cap on connections per host, its limit on requests in
/// flight, TLS and the proxies of the environment), for any request. Cheap to clone; clones
/// share the pool. A [`ModelClient`](crate::ModelClient) and a [`Gateway`](crate::Gateway)
/// hand out theirs ([`ModelClient::http`](crate::ModelClient::http)), so that other requests
/// share the model calls' connections and limits.
#[derive(Debug, Clone)]
pub struct HttpClient {
    http: Http,
}

/// One request: method, URL, headers and body, and the limits of its answer.
#[derive(Debug, Clone)]
pub struct WebRequest {
    /// The method.
    pub method: Method,
    /// An absolute `http` or `https` URL.
    pub uri: Uri,
    /// The headers; `User-Agent` is `orc/<version>` unless one is given. Mark secret values
    /// sensitive ([`http::HeaderValue::set_sensitive`]).
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
    /// How long the whole exchange may take, from sending to the end of the body.
    pub timeout: Duration,
    /// The largest body read; a longer one fails the request.
    pub max_body_bytes: usize,
}

/// A whole answer, whatever its status.
#[derive(Debug, Clone)]
pub struct WebResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl WebResponse {
    /// The wait the answer asks for before another try (`Retry-After` in seconds, or
    /// `retry-after-ms`); `None` when it asks for none (an HTTP date is not read).
    pub fn retry_after(&self) -> Option<Duration> {
        crate::http::retry_after(&self.headers)
    }
}

impl HttpClient {
    /// A client with its own pool, as `options` describe (its `request_timeout` is not used:
    /// each request has its own).
    pub fn new(options: &HttpOptions) -> Result<Self> {
        Ok(HttpClient {
            http: Http::new(options)?,
        })
    }

    pub(crate) fn of(http: Http) -> Self {
        HttpClient { http }
    }

    /// Sends `request` and reads its whole answer. [`Error::Request`] when no whole answer
    /// came (a connection that failed, a timeout, a body cut short or longer than
    /// `max_body_bytes`); an answer of any status is `Ok`.
    pub async fn send(&self, request: WebRequest) -> Result<WebResponse> {
        // The answer to a HEAD announces the length of a body it does not have.
        let bodiless = request.method == Method::HEAD;
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
            if !headers.contains_key(USER_AGENT) {
                headers.insert(
                    USER_AGENT,
                    http::HeaderValue::from_static(concat!("orc/", env!("CARGO_PKG_VERSION"))),
                );
            }
        }
        let built = builder
            .body(Full::new(request.body))
            .map_err(|e| Error::Request {
                kind: FailureKind::InvalidRequest,
                message: format!("the request is not valid: {e}"),
            })?;
        let (head, mut body) = self
            .http
            .open(built, Some(request.timeout))
            .await?
            .map_err(failed)?;
        let limit = request.max_body_bytes;
        let too_large = || Error::Request {
            kind: FailureKind::InvalidResponse,
            message: format!("the body is larger than the limit of {limit} bytes"),
        };
        let announced = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if !bodiless && announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut bytes = BytesMut::new();
        while let Some(chunk) = poll_fn(|cx| body.poll_chunk(cx)).await {
            let chunk = chunk.map_err(failed)?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(WebResponse {
            status: head.status,
            headers: head.headers,
            body: bytes.freeze(),
        })
    }
}

fn failed(e: Transport) -> Error {
    Error::Request {
        kind: e.kind,
        message: e.message,
    }
}
