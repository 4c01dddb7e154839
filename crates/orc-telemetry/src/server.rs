//! The `/metrics` HTTP endpoint: axum routes ([`router`]) served by an accept loop of our own
//! (a bound on open connections, the header read timeout, histogram upkeep between accepts),
//! one hyper HTTP/1.1 connection task per socket, all owned by the loop's `JoinSet`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::exporter::UPKEEP_INTERVAL;
use crate::{Error, Exporter, Result};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish the request they are serving.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The HTTP endpoint Prometheus scrapes: `GET /metrics` answers with [`Exporter::render`]; any
/// other path is a 404. Bound by [`MetricsServer::bind`], served by [`MetricsServer::run`].
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    exporter: Exporter,
}

impl MetricsServer {
    /// Listens on `addr` at once, so that an address in use is an error before a run starts.
    /// Port 0 picks a free port ([`MetricsServer::local_addr`] tells which).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be listened on, for example because another
    /// process listens there: `cannot listen on 127.0.0.1:9090 for metrics: address already in
    /// use`.
    pub async fn bind(addr: SocketAddr, exporter: Exporter) -> Result<MetricsServer> {
        let bind_error = |source: io::Error| Error::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(MetricsServer {
            listener,
            local_addr,
            exporter,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves HTTP/1.1 until `cancel` fires, then stops accepting, lets open connections finish
    /// the request they are serving (for up to two seconds) and returns once every connection
    /// task has ended. Also folds histogram samples into buckets every few seconds, so the
    /// process needs no separate [`Exporter::run`].
    pub async fn run(self, cancel: CancellationToken) {
        let MetricsServer {
            listener,
            local_addr,
            exporter,
        } = self;
        tracing::debug!(%local_addr, "serving metrics");
        let router = router(exporter.clone());
        let mut connections = JoinSet::new();
        let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = upkeep.tick() => exporter.run_upkeep(),
                accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                    match accepted {
                        Ok((stream, _peer)) => {
                            connections.spawn(serve_connection(
                                stream,
                                router.clone(),
                                cancel.clone(),
                            ));
                        }
                        // Out of file descriptors and the like: back off instead of spinning.
                        Err(error) => {
                            tracing::warn!(
                                %local_addr, %error,
                                "metrics endpoint cannot accept a connection"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }
        drop(listener);
        // Every connection sees the cancellation and ends within its grace period; the extra
        // second only covers scheduling.
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drain)
            .await
            .is_err()
        {
            connections.shutdown().await;
        }
        tracing::debug!(%local_addr, "metrics endpoint stopped");
    }
}

async fn serve_connection(stream: TcpStream, router: Router, cancel: CancellationToken) {
    let service = service_fn(move |request| router.clone().oneshot(request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        // A connection error (client gone, bad request) only ends this connection.
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// The endpoint's routes: `GET /metrics`; any other method there is a 405 (`HEAD` too, as
/// ever), any other path a 404.
pub(crate) fn router(exporter: Exporter) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(scrape).head(wrong_method).fallback(wrong_method),
        )
        .fallback(not_found)
        .with_state(exporter)
}

/// `GET /metrics`. Rendering is a little CPU work on the async worker; the text is small (a few
/// hundred series), so it stays inline.
async fn scrape(State(exporter): State<Exporter>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], exporter.render()).into_response()
}

async fn wrong_method() -> Response {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET /metrics\n");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    response
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: orc serves GET /metrics\n",
    )
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
