//! The one pooled HTTP client every provider call goes through.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHORIZATION,
    RETRY_AFTER, USER_AGENT,
};
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::BuilderVerifierExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::connect::{Connector, ConnectorOptions, UnsupportedProxy};
use crate::error::{self, CallSite, Error, FailureKind, Result};
use crate::public::NotPublic;
use crate::secret::ApiKey;
use crate::spec::ModelSpec;

/// Options of the shared HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long a whole call may take, from sending the request to the end of the
    /// answer (a stream included); `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// The connection pool's size (`performance.model_optimization.connection_pool_size`):
    /// at most this many calls are in flight through the client at once (all hosts
    /// together), and never more than this many connections to one host are open (a
    /// call that finds them all busy waits for one); idle connections are kept alive
    /// for reuse.
    pub connection_pool_size: usize,
    /// How long an idle connection is kept before it is closed; `None` keeps it until
    /// the server closes it.
    pub pool_idle_timeout: Option<Duration>,
    /// TCP keep-alive probes on open connections, every this often; `None` for none.
    pub tcp_keepalive: Option<Duration>,
    /// Connect to public addresses only: a URL whose host is, or resolves only to, a
    /// loopback, private, link-local, unspecified or otherwise reserved address is refused
    /// before any connection (every address a name resolves to is checked, and every redirect
    /// connects anew). Proxies from the environment are not used then, since where a proxy
    /// connects cannot be checked.
    pub public_only: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(600)),
            connection_pool_size: 100,
            pool_idle_timeout: Some(Duration::from_secs(90)),
            tcp_keepalive: Some(Duration::from_secs(60)),
            public_only: false,
        }
    }
}

impl HttpOptions {
    /// The TLS settings of `https` connections: the platform's certificate verifier
    /// (the system's roots) with rustls' ring provider, offering HTTP/2 and 1.1.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_platform_verifier())
            .map_err(|e| Error::Client {
                message: format!("cannot set up TLS: {e}"),
            })?
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The shared client, the limit on calls in flight, and the cap on connections.
///
/// Exchanges run on the caller's task: no hop to another thread. Connections come from a
/// [`Connector`] that gives each host at most `connection_pool_size` open connections,
/// so however many calls wait, no more connections are opened than the pool holds
/// (proxies named by `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` are
/// honoured). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<Connector, Full<Bytes>>,
    connector: Connector,
    in_flight: Arc<Semaphore>,
    timeout: Option<Duration>,
    /// Cancels connects still waiting for a slot when the last clone is dropped.
    _closed: DropGuard,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("connector", &self.connector)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A request to a provider, being built: a method, a URL, headers and a body.
///
/// Mistakes (a URL that does not parse, a header that is not valid) are kept and
/// reported when the request is sent, as an invalid request of the call.
#[derive(Debug)]
pub(crate) struct Request {
    request: std::result::Result<http::Request<Full<Bytes>>, String>,
}

impl Request {
    fn new(method: Method, url: &str) -> Self {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header(USER_AGENT, concat!("orc/", env!("CARGO_PKG_VERSION")))
            .body(Full::default())
            .map_err(|e| format!("the URL {url:?} is not valid: {e}"));
        Request { request }
    }

    /// A `GET` of `url`.
    pub(crate) fn get(url: &str) -> Self {
        Request::new(Method::GET, url)
    }

    /// A `POST` to `url`.
    pub(crate) fn post(url: &str) -> Self {
        Request::new(Method::POST, url)
    }

    /// Adds a header; `value` is marked sensitive (left out of debug output) when it is
    /// a secret.
    pub(crate) fn header<V>(mut self, name: HeaderName, value: V) -> Self
    where
        HeaderValue: TryFrom<V>,
    {
        if let Ok(request) = &mut self.request {
            match HeaderValue::try_from(value) {
                Ok(value) => {
                    request.headers_mut().insert(name, value);
                }
                Err(_) => {
                    self.request = Err(format!("the value of the {name} header is not valid"))
                }
            }
        }
        self
    }

    /// Sets `Authorization: Bearer <token>`, marked sensitive.
    pub(crate) fn bearer_auth(self, token: &str) -> Self {
        match HeaderValue::try_from(format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.header(AUTHORIZATION, value)
            }
            Err(_) => Request {
                request: Err("the API key is not a valid header value".to_owned()),
            },
        }
    }

    /// Sets the body to `body` as JSON, with its content type.
    pub(crate) fn json<T: serde::Serialize>(mut self, body: &T) -> Self {
        if let Ok(request) = &mut self.request {
            match serde_json::to_vec(body) {
                Ok(json) => {
                    *request.body_mut() = Full::new(Bytes::from(json));
                    request
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Err(e) => self.request = Err(format!("the request body cannot be written: {e}")),
            }
        }
        self
    }
}

/// A success answer: its call site and its body, still arriving.
pub(crate) struct Answer {
    pub(crate) site: CallSite,
    pub(crate) body: BodyStream,
}

/// The body of an answer; dropping it before its end closes the connection.
pub(crate) struct BodyStream {
    body: Incoming,
    /// When the whole call must be over, if it has a time limit.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The call's place among those in flight, given back at the end of the body.
    slot: Option<OwnedSemaphorePermit>,
}

impl BodyStream {
    /// The next chunk; `None` at the end of the body.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Bytes, Transport>>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing a provider call reads.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.slot = None;
                    return Poll::Ready(Some(Err(Transport::reading(&e))));
                }
                Poll::Ready(None) => {
                    self.slot = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if let Some(deadline) = &mut self.deadline
                        && deadline.as_mut().poll(cx).is_ready()
                    {
                        self.slot = None;
                        return Poll::Ready(Some(Err(Transport::timed_out())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The whole rest of the body.
    async fn collect(mut self) -> std::result::Result<Vec<u8>, Transport> {
        let mut body = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| self.poll_chunk(cx)).await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    }
}

/// Why an exchange broke off before its answer was whole, classified.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Transport {
    /// The whole call took longer than the request timeout.
    fn timed_out() -> Self {
        Transport {
            kind: FailureKind::Timeout,
            message: "the request timed out".to_owned(),
        }
    }

    /// Sending failed, or no answer came: the connection could not be opened or broke.
    fn sending(e: &hyper_util::client::legacy::Error) -> Self {
        let kind =
            if causes(e).any(|cause| cause.is::<UnsupportedProxy>() || cause.is::<NotPublic>()) {
                FailureKind::InvalidRequest
            } else if caused_by_timeout(e) {
                FailureKind::Timeout
            } else {
                // Connect errors, and connections closed before an answer.
                FailureKind::Connection
            };
        Transport {
            kind,
            message: error::chain(e),
        }
    }

    /// Reading the body failed: the answer is cut short.
    fn reading(e: &hyper::Error) -> Self {
        let kind = if caused_by_timeout(e) {
            FailureKind::Timeout
        } else {
            FailureKind::Truncated
        };
        Transport {
            kind,
            message: format!("the answer broke off: {}", error::chain(e)),
        }
    }
}

/// `e` and its causes, outermost first.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// Whether a timeout (of connecting, say) is among the causes of `e`.
fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
    })
}

/// The head of an answer.
struct Head {
    status: StatusCode,
    retry_after: Option<Duration>,
}

impl Http {
    pub(crate) fn new(options: &HttpOptions) -> Result<Self> {
        let per_host = options.connection_pool_size.max(1);
        let closed = CancellationToken::new();
        let connector = Connector::new(
            ConnectorOptions {
                per_host,
                connect_timeout: options.connect_timeout,
                tcp_keepalive: options.tcp_keepalive,
                tls: options.tls()?,
                proxies: if options.public_only {
                    Matcher::builder().build()
                } else {
                    Matcher::from_env()
                },
                public_only: options.public_only,
            },
            closed.clone(),
        );
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(per_host)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector.clone());
        Ok(Http {
            inner: Arc::new(Inner {
                client,
                connector,
                in_flight: Arc::new(Semaphore::new(per_host)),
                timeout: options.request_timeout,
                _closed: closed.drop_guard(),
            }),
        })
    }

    /// Sends `request` for `spec` and returns the answer if its status is a success;
    /// otherwise the error, classified, with the provider's message.
    pub(crate) async fn send(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        request: Request,
    ) -> Result<Answer> {
        let mut site = site_of(spec);
        let (head, body) = self.exchange(&site, key, request).await?;
        site.status = Some(head.status.as_u16());
        if head.status.is_success() {
            return Ok(Answer { site, body });
        }
        let body = body.collect().await.unwrap_or_default();
        Err(status_error(site, key, &head, &body))
    }

    /// Sends `request` for `spec`, reads the whole answer, and parses a success body as
    /// JSON of type `T`; otherwise the error, classified, with the provider's message.
    /// Also returns the call site (with the status), for errors found in the answer.
    pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        request: Request,
    ) -> Result<(T, CallSite)> {
        let mut site = site_of(spec);
        let (head, body) = self.exchange(&site, key, request).await?;
        site.status = Some(head.status.as_u16());
        let body = body.collect().await;
        if head.status.is_success() {
            return parse_json(site.clone(), key, body).map(|value| (value, site));
        }
        Err(status_error(site, key, &head, &body.unwrap_or_default()))
    }

    /// Waits for a slot, sends `request`, and returns the head of the answer and its
    /// body (which holds the slot until it ends).
    async fn exchange(
        &self,
        site: &CallSite,
        key: Option<&ApiKey>,
        request: Request,
    ) -> Result<(Head, BodyStream)> {
        let request = request.request.map_err(|message| {
            Error::call(
                site.clone(),
                FailureKind::InvalidRequest,
                redact(key, &message),
                None,
            )
        })?;
        let (response, body) = self
            .open(request, self.inner.timeout)
            .await?
            .map_err(|e| transport_error(site.clone(), key, &e))?;
        let head = Head {
            status: response.status,
            retry_after: retry_after(&response.headers),
        };
        Ok((head, body))
    }

    /// Waits for a slot among the calls in flight, sends `request` (through a proxy when
    /// the environment names one) and returns the head of the answer and its body, which
    /// holds the slot until it ends; the whole exchange, body included, within `timeout`.
    ///
    /// The outer error is the client's own (it is shut down); the inner one, the exchange's.
    pub(crate) async fn open(
        &self,
        mut request: http::Request<Full<Bytes>>,
        timeout: Option<Duration>,
    ) -> Result<std::result::Result<(http::response::Parts, BodyStream), Transport>> {
        if let Some(auth) = self.inner.connector.proxy_authorization(request.uri()) {
            request.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
        let Ok(slot) = Arc::clone(&self.inner.in_flight).acquire_owned().await else {
            return Err(Error::Client {
                message: "the HTTP client is shut down".to_owned(),
            });
        };
        let mut deadline = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        let sending = self.inner.client.request(request);
        let answer = match &mut deadline {
            Some(deadline) => tokio::select! {
                answer = sending => answer,
                () = deadline.as_mut() => return Ok(Err(Transport::timed_out())),
            },
            None => sending.await,
        };
        Ok(answer.map_err(|e| Transport::sending(&e)).map(|response| {
            let (parts, body) = response.into_parts();
            let body = BodyStream {
                body,
                deadline,
                slot: Some(slot),
            };
            (parts, body)
        }))
    }
}

/// The call site of a request for `spec`, before any answer.
fn site_of(spec: &ModelSpec) -> CallSite {
    CallSite {
        provider: spec.provider,
        model: spec.model.clone(),
        status: None,
    }
}

/// The error of an answer whose status is not a success, with the provider's own message.
fn status_error(site: CallSite, key: Option<&ApiKey>, head: &Head, body: &[u8]) -> Error {
    let message = redact(key, &error::provider_message(body));
    let kind = error::kind_of_answer(head.status.as_u16(), &message);
    Error::call(site, kind, message, head.retry_after)
}

/// Parses a whole success body as JSON of type `T`.
///
/// A body cut short (the connection closed, or JSON that ends early) is
/// [`FailureKind::Truncated`]; a body that is not the expected JSON is
/// [`FailureKind::InvalidResponse`].
fn parse_json<T: serde::de::DeserializeOwned>(
    site: CallSite,
    key: Option<&ApiKey>,
    body: std::result::Result<Vec<u8>, Transport>,
) -> Result<T> {
    let body = body.map_err(|e| transport_error(site.clone(), key, &e))?;
    serde_json::from_slice(&body).map_err(|e| {
        let kind = if e.is_eof() {
            FailureKind::Truncated
        } else {
            FailureKind::InvalidResponse
        };
        let message = format!(
            "the body is not the expected JSON ({e}); it starts: {}",
            error::cut(&String::from_utf8_lossy(&body), 200)
        );
        Error::call(site, kind, redact(key, &message), None)
    })
}

/// The error of a call whose exchange broke off.
pub(crate) fn transport_error(site: CallSite, key: Option<&ApiKey>, e: &Transport) -> Error {
    Error::call(site, e.kind, redact(key, &e.message), None)
}

pub(crate) fn redact(key: Option<&ApiKey>, text: &str) -> String {
    match key {
        Some(key) => key.redact(text),
        None => text.to_owned(),
    }
}

/// The wait a 429 or 503 asks for: `retry-after-ms`, else `Retry-After` in seconds.
/// (An HTTP date in `Retry-After` is ignored; back-off applies instead.)
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let parse = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let seconds = parse("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| parse(RETRY_AFTER.as_str()))?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn default_options_build_a_client() {
        assert!(HttpOptions::default().tls().is_ok());
    }
}
