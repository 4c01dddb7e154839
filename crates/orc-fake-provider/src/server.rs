//! The server's life: our own accept loop (so every accepted socket is counted), one hyper
//! HTTP/1.1 connection task per socket serving the axum [`router`](crate::routes::router), and
//! the graceful stop.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::behaviour::{Behaviour, Reply};
use crate::routes::{self, CloseConnection};
use crate::shared::Shared;
use crate::stats::Stats;

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running fake provider on `127.0.0.1` (HTTP/1.1 with keep-alive). Dropping
/// it shuts the server down in the background (open connections get a 2 s grace
/// period to finish their requests); [`FakeProvider::shutdown`] waits for that.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FakeProvider {
    /// Starts a server on `127.0.0.1` on a free port.
    pub async fn start(behaviour: Behaviour) -> io::Result<FakeProvider> {
        FakeProvider::start_on(0, behaviour).await
    }

    /// Starts a server on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> io::Result<FakeProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(behaviour));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), cancel.clone()));
        Ok(FakeProvider {
            addr,
            shared,
            cancel,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, with `/v1`: `http://127.0.0.1:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Anthropic-style base URL, without `/v1` (clients append
    /// `/v1/messages`): `http://127.0.0.1:PORT`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Zeroes the request and connection counters and forgets the recorded
    /// bodies and the requests `fail_times` has seen. The script and answer
    /// overrides stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Appends `reply` to the scripted queue (see [`Behaviour::script`]).
    pub fn push_reply(&self, reply: Reply) {
        self.shared.lock().script.push_back(reply);
    }

    /// Adds an answer override (see [`Behaviour::answers`]).
    pub fn add_answer(&self, substring: impl Into<String>, answer: impl Into<String>) {
        self.shared
            .lock()
            .answers
            .push((substring.into(), answer.into()));
    }

    /// Stops accepting, lets open connections finish their requests (up to a
    /// grace period) and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // The loop never panics; a JoinError can only mean it already ended.
            let _ = task.await;
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let router = routes::router(Arc::clone(&shared));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let guard = OpenConnection::new(Arc::clone(&shared));
                    connections.spawn(serve_connection(stream, router.clone(), guard, cancel.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    // Each connection sees the cancellation and finishes within its grace
    // period; the extra second only covers scheduling.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
}

/// An accepted socket: counted when created, counted as closed when dropped.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.counters.accepted();
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.counters.closed();
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    guard: OpenConnection,
    cancel: CancellationToken,
) {
    // Small writes (SSE events) go out at once.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
            if CloseConnection::marks(&response) {
                return Err(CloseConnection);
            }
            Ok(response)
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        // A connection error (client gone, injected fault) just ends the connection.
        _ = connection.as_mut() => {}
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
    drop(guard);
}
