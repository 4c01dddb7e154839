//! The one pooled HTTP client every provider call goes through.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::error::{self, CallSite, Error, FailureKind, Result};
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
    /// together), so at most this many connections to one host are open; idle
    /// connections are kept alive for reuse, up to this many per host.
    pub connection_pool_size: usize,
    /// How long an idle connection is kept before it is closed; `None` keeps it until
    /// the server closes it.
    pub pool_idle_timeout: Option<Duration>,
    /// TCP keep-alive probes on open connections, every this often; `None` for none.
    pub tcp_keepalive: Option<Duration>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(600)),
            connection_pool_size: 100,
            pool_idle_timeout: Some(Duration::from_secs(90)),
            tcp_keepalive: Some(Duration::from_secs(60)),
        }
    }
}

impl HttpOptions {
    /// Builds the `reqwest` client these options describe.
    ///
    /// Build one per process (a [`crate::ModelClient`] does) and share it: its pool
    /// is what keeps connections warm.
    pub fn build_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(self.connection_pool_size.max(1))
            .pool_idle_timeout(self.pool_idle_timeout)
            .tcp_keepalive(self.tcp_keepalive)
            .tcp_nodelay(true)
            .user_agent(concat!("orc/", env!("CARGO_PKG_VERSION")));
        if let Some(timeout) = self.request_timeout {
            builder = builder.timeout(timeout);
        }
        builder.build().map_err(|e| Error::Client {
            message: error::chain(&e),
        })
    }
}

/// The shared client, the limit on calls in flight, and the thread its I/O runs on.
///
/// Every exchange runs on one dedicated I/O thread with a single-threaded runtime.
/// hyper puts an HTTP/1 connection back into the pool from a task of its own once the
/// answer is read; on a multi-threaded runtime the next call can look for an idle
/// connection before that task has run, and opens a new one. On one thread the order
/// is fixed: the connection is back before the next exchange starts, so sequential
/// calls reuse one connection and concurrent calls never open more connections than
/// calls are allowed in flight. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    in_flight: Arc<Semaphore>,
    io: Arc<IoThread>,
}

/// The I/O thread: it runs until this handle is dropped.
#[derive(Debug)]
struct IoThread {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl IoThread {
    fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("orc-models-io")
            .build()
            .map_err(|e| Error::Client {
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("orc-models-io".to_owned())
            .spawn(move || {
                // Runs every exchange until the owning client is gone.
                let _ = runtime.block_on(stopped);
                // Blocking tasks (name resolution) are not waited for.
                runtime.shutdown_background();
            })
            .map_err(|e| Error::Client {
                message: format!("cannot start the I/O thread: {e}"),
            })?;
        Ok(IoThread {
            handle,
            _stop: stop,
        })
    }
}

/// A success answer: its call site and its body, still arriving.
pub(crate) struct Answer {
    pub(crate) site: CallSite,
    pub(crate) body: BodyStream,
}

/// The body of an answer as the I/O thread reads it; dropping it stops the exchange.
pub(crate) struct BodyStream {
    chunks: mpsc::Receiver<reqwest::Result<Bytes>>,
    _task: AbortOnDropHandle<()>,
    /// Keeps the I/O thread running while the body is read, even if the client is gone.
    _io: Arc<IoThread>,
}

impl BodyStream {
    /// The next chunk; `None` at the end of the body.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<reqwest::Result<Bytes>>> {
        self.chunks.poll_recv(cx)
    }

    /// The whole rest of the body.
    async fn collect(mut self) -> reqwest::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunks.recv().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    }
}

/// The head of an answer, sent from the I/O thread.
struct Head {
    status: StatusCode,
    retry_after: Option<Duration>,
}

/// Body chunks in flight between the I/O thread and the caller.
const CHUNKS_IN_FLIGHT: usize = 32;

impl Http {
    pub(crate) fn new(client: reqwest::Client, max_in_flight: usize) -> Result<Self> {
        Ok(Http {
            client,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            io: Arc::new(IoThread::start()?),
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` for `spec` and returns the answer if its status is a success;
    /// otherwise the error, classified, with the provider's message.
    pub(crate) async fn send(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let mut site = site_of(spec);
        let request = request
            .build()
            .map_err(|e| transport_error(site.clone(), key, &e))?;
        let (head_tx, head_rx) = oneshot::channel();
        let (chunk_tx, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let exchange = exchange(
            self.client.clone(),
            Arc::clone(&self.in_flight),
            request,
            head_tx,
            chunk_tx,
        );
        let task = AbortOnDropHandle::new(self.io.handle.spawn(exchange));
        let body = BodyStream {
            chunks,
            _task: task,
            _io: Arc::clone(&self.io),
        };
        let head = match head_rx.await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return Err(transport_error(site, key, &e)),
            Err(_) => return Err(io_stopped(site)),
        };
        site.status = Some(head.status.as_u16());
        if head.status.is_success() {
            return Ok(Answer { site, body });
        }
        let body = body.collect().await.unwrap_or_default();
        Err(status_error(site, key, &head, &body))
    }
}

impl Http {
    /// Sends `request` for `spec`, reads the whole answer on the I/O thread, and parses a
    /// success body as JSON of type `T`; otherwise the error, classified, with the
    /// provider's message. The answer crosses threads once, whole. Also returns the call
    /// site (with the status), for errors found in the answer.
    pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        spec: &ModelSpec,
        key: Option<&ApiKey>,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, CallSite)> {
        let mut site = site_of(spec);
        let request = request
            .build()
            .map_err(|e| transport_error(site.clone(), key, &e))?;
        let (done_tx, done_rx) = oneshot::channel();
        let exchange = whole_exchange(
            self.client.clone(),
            Arc::clone(&self.in_flight),
            request,
            done_tx,
        );
        let _task = AbortOnDropHandle::new(self.io.handle.spawn(exchange));
        let (head, body) = match done_rx.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(transport_error(site, key, &e)),
            Err(_) => return Err(io_stopped(site)),
        };
        site.status = Some(head.status.as_u16());
        if head.status.is_success() {
            return parse_json(site.clone(), key, body).map(|value| (value, site));
        }
        Err(status_error(site, key, &head, &body.unwrap_or_default()))
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

/// What a caller sees when the I/O thread's answer never comes.
fn io_stopped(site: CallSite) -> Error {
    Error::call(
        site,
        FailureKind::Connection,
        "the HTTP client's I/O thread stopped",
        None,
    )
}

/// The error of an answer whose status is not a success, with the provider's own message.
fn status_error(site: CallSite, key: Option<&ApiKey>, head: &Head, body: &[u8]) -> Error {
    let message = redact(key, &error::provider_message(body));
    let kind = error::kind_of_answer(head.status.as_u16(), &message);
    Error::call(site, kind, message, head.retry_after)
}

/// What a whole exchange hands back: the head and the body (or why it broke off).
type Whole = reqwest::Result<(Head, reqwest::Result<Bytes>)>;

/// One exchange read to its end on the I/O thread, answered in one message.
async fn whole_exchange(
    client: reqwest::Client,
    in_flight: Arc<Semaphore>,
    request: reqwest::Request,
    done: oneshot::Sender<Whole>,
) {
    let Ok(_slot) = in_flight.acquire_owned().await else {
        return;
    };
    let response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let head = Head {
        status: response.status(),
        retry_after: retry_after(response.headers()),
    };
    let body = response.bytes().await;
    let complete = body.is_ok();
    let _ = done.send(Ok((head, body)));
    if complete {
        return_connection().await;
    }
}

/// hyper puts a connection whose answer has been read back into the pool from a task of
/// its own. Letting that task run before the call's slot is freed means the next exchange
/// finds the connection idle instead of opening another.
async fn return_connection() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

/// One exchange, on the I/O thread: wait for a slot, send, pass the head and then the
/// body chunks back. The slot is held until the body is read or the caller is gone.
async fn exchange(
    client: reqwest::Client,
    in_flight: Arc<Semaphore>,
    request: reqwest::Request,
    head_tx: oneshot::Sender<reqwest::Result<Head>>,
    chunk_tx: mpsc::Sender<reqwest::Result<Bytes>>,
) {
    let Ok(_slot) = in_flight.acquire_owned().await else {
        return;
    };
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => {
            let _ = head_tx.send(Err(e));
            return;
        }
    };
    let head = Head {
        status: response.status(),
        retry_after: retry_after(response.headers()),
    };
    if head_tx.send(Ok(head)).is_err() {
        return;
    }
    loop {
        let item = match response.chunk().await {
            Ok(Some(chunk)) => Ok(chunk),
            Ok(None) => {
                drop(response);
                return_connection().await;
                return;
            }
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if chunk_tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Parses a whole success body as JSON of type `T`.
///
/// A body cut short (the connection closed, or JSON that ends early) is
/// [`FailureKind::Truncated`]; a body that is not the expected JSON is
/// [`FailureKind::InvalidResponse`].
fn parse_json<T: serde::de::DeserializeOwned, B: AsRef<[u8]>>(
    site: CallSite,
    key: Option<&ApiKey>,
    body: reqwest::Result<B>,
) -> Result<T> {
    let body = body.map_err(|e| {
        let mut error = transport_error(site.clone(), key, &e);
        truncated_if_broken(&mut error);
        error
    })?;
    let body = body.as_ref();
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_eof() {
            FailureKind::Truncated
        } else {
            FailureKind::InvalidResponse
        };
        let message = format!(
            "the body is not the expected JSON ({e}); it starts: {}",
            error::cut(&String::from_utf8_lossy(body), 200)
        );
        Error::call(site, kind, redact(key, &message), None)
    })
}

/// A connection that broke while a body was being read is a truncated answer.
pub(crate) fn truncated_if_broken(error: &mut Error) {
    if let Error::Retryable { kind, message, .. } = error
        && *kind == FailureKind::Connection
    {
        *kind = FailureKind::Truncated;
        message.insert_str(0, "the answer broke off: ");
    }
}

/// Classifies an error of `reqwest` (sending, or reading a body).
pub(crate) fn transport_error(site: CallSite, key: Option<&ApiKey>, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_builder() {
        FailureKind::InvalidRequest
    } else if e.is_body() || e.is_decode() {
        FailureKind::Truncated
    } else {
        // Connect errors, and connections closed before an answer.
        FailureKind::Connection
    };
    Error::call(site, kind, redact(key, &error::chain(e)), None)
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
        assert!(HttpOptions::default().build_client().is_ok());
    }
}
