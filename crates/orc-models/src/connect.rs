//! Opening connections to providers: TCP, TLS, proxies named by the environment, and a
//! hard cap on the connections open to each host.
//!
//! The cap is why orc connects through its own connector instead of leaving the pool to
//! `reqwest`: a pool can only limit the connections it keeps idle, while every open
//! connection here holds one of its host's slots until it closes. A call that finds no
//! idle connection while all slots are taken waits for one to come back to the pool (or
//! to close) instead of opening another.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::header::HeaderValue;
use http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::public::{self, Resolver};

/// What connecting can fail with; hyper reports it as the cause of a connect error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The settings a [`Connector`] is built from.
pub(crate) struct ConnectorOptions {
    /// Most connections open to one host (scheme, name and port) at once.
    pub(crate) per_host: usize,
    /// How long opening a connection (name lookup, TCP, a proxy's tunnel, TLS) may take, and
    /// how long a call waits for a host's slot when all its connections are busy.
    pub(crate) connect_timeout: Duration,
    /// TCP keep-alive probes on open connections.
    pub(crate) tcp_keepalive: Option<Duration>,
    /// The TLS settings (roots, ALPN) of `https` connections.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Which destinations go through which proxy.
    pub(crate) proxies: Matcher,
    /// Connect to public addresses only (no proxy then: orc could not check where it connects).
    pub(crate) public_only: bool,
}

/// Opens capped connections; cheap to clone (clones share the slots).
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector<Resolver>,
    tls: Arc<rustls::ClientConfig>,
    proxies: Arc<Matcher>,
    slots: Arc<Slots>,
    /// Cancelled when the owning client is gone: connects still waiting for a slot give up.
    closed: CancellationToken,
    /// Whether only public addresses may be reached (checked for addresses in URLs here, for
    /// names by the resolver).
    public_only: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("per_host", &self.slots.per_host)
            .finish_non_exhaustive()
    }
}

/// The slots of each host, made when the host is first connected to.
struct Slots {
    per_host: usize,
    /// How long a connect may take, waiting for a slot and then opening the connection.
    connect_timeout: Duration,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Slots {
    fn of(&self, dst: &Uri) -> Arc<Semaphore> {
        let host = format!(
            "{}://{}",
            dst.scheme_str().unwrap_or("http"),
            dst.authority().map_or("", |a| a.as_str())
        );
        // A poisoned lock only means another thread panicked between two map operations,
        // which leave the map whole.
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host))),
        )
    }
}

impl Connector {
    /// A connector with `options`; `closed` is cancelled when its client is dropped.
    pub(crate) fn new(options: ConnectorOptions, closed: CancellationToken) -> Self {
        let mut tcp = HttpConnector::new_with_resolver(Resolver::new(options.public_only));
        // `https` URLs are handed to rustls after the TCP connection is open.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(options.connect_timeout));
        tcp.set_keepalive(options.tcp_keepalive);
        Connector {
            tcp,
            tls: options.tls,
            proxies: Arc::new(options.proxies),
            slots: Arc::new(Slots {
                per_host: options.per_host.max(1),
                connect_timeout: options.connect_timeout,
                hosts: Mutex::new(HashMap::new()),
            }),
            closed,
            public_only: options.public_only,
        }
    }

    /// The `Proxy-Authorization` a plain-HTTP request to `dst` needs, when it goes
    /// through a proxy whose URL carries credentials. (`https` requests go through a
    /// tunnel, which carries them itself.)
    pub(crate) fn proxy_authorization(&self, dst: &Uri) -> Option<HeaderValue> {
        if dst.scheme() == Some(&Scheme::HTTPS) {
            return None;
        }
        self.proxies.intercept(dst)?.basic_auth().cloned()
    }

    async fn connect(self, dst: Uri) -> Result<Capped, BoxError> {
        if self.public_only {
            public::check_literal(dst.host().unwrap_or_default())?;
        }
        let slots = self.slots.of(&dst);
        let wait = self.slots.connect_timeout;
        let slot = tokio::select! {
            slot = tokio::time::timeout(wait, slots.acquire_owned()) => match slot {
                Ok(Ok(slot)) => slot,
                Ok(Err(_closed)) => return Err("the HTTP client is shut down".into()),
                Err(_elapsed) => {
                    return Err(format!(
                        "no connection to {dst} became free within {wait:?} (all {} are in use)",
                        self.slots.per_host
                    )
                    .into());
                }
            },
            () = self.closed.cancelled() => return Err("the HTTP client is shut down".into()),
        };
        // The whole connect (name lookup, TCP, a proxy's tunnel, TLS) within the timeout, as
        // reqwest's connect timeout was: a handshake that stalls must not keep its slot.
        let connect_timeout = self.slots.connect_timeout;
        let io = match tokio::time::timeout(connect_timeout, self.open(dst)).await {
            Ok(io) => io?,
            Err(_elapsed) => {
                return Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting took longer than {connect_timeout:?}"),
                )));
            }
        };
        Ok(Capped { io, _slot: slot })
    }

    /// A connection to `dst`: directly, through a proxy's tunnel (`https`), or to the
    /// proxy itself, which is then sent absolute URLs (plain HTTP).
    async fn open(&self, dst: Uri) -> Result<Box<dyn Io>, BoxError> {
        let Some(proxy) = self.proxies.intercept(&dst) else {
            let mut https = HttpsConnector::from((self.tcp.clone(), Arc::clone(&self.tls)));
            return Ok(Box::new(https.call(dst).await?));
        };
        if proxy.uri().scheme() != Some(&Scheme::HTTP) {
            return Err(Box::new(UnsupportedProxy {
                proxy: orc_redact::origin(&proxy.uri().to_string()),
            }));
        }
        if dst.scheme() == Some(&Scheme::HTTPS) {
            let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let mut https = HttpsConnector::from((tunnel, Arc::clone(&self.tls)));
            return Ok(Box::new(https.call(dst).await?));
        }
        let io = self.tcp.clone().call(proxy.uri().clone()).await?;
        Ok(Box::new(ToProxy(io)))
    }
}

/// The environment names a proxy orc cannot use (only `http://` proxies are supported): no
/// retry can help, so calls fail at once.
#[derive(Debug, thiserror::Error)]
#[error("the proxy {proxy} is not an http:// proxy, the only kind orc supports")]
pub(crate) struct UnsupportedProxy {
    /// The proxy's URL without credentials.
    proxy: String,
}

impl Service<Uri> for Connector {
    type Response = Capped;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Capped, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        Box::pin(self.clone().connect(dst))
    }
}

/// Any connection hyper can speak HTTP over.
pub(crate) trait Io: Read + Write + Connection + Send + Unpin + 'static {}

impl<T: Read + Write + Connection + Send + Unpin + 'static> Io for T {}

/// A connection to a forward proxy: hyper sends it absolute URLs.
struct ToProxy(TokioIo<TcpStream>);

impl Connection for ToProxy {
    fn connected(&self) -> Connected {
        self.0.connected().proxy(true)
    }
}

/// An open connection holding its host's slot until it is dropped (closed).
pub(crate) struct Capped {
    io: Box<dyn Io>,
    _slot: OwnedSemaphorePermit,
}

impl Connection for Capped {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// Reading and writing pass straight through to the inner connection.
macro_rules! delegate_io {
    ($type:ty, $field:tt) => {
        impl Read for $type {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.$field).poll_read(cx, buf)
            }
        }

        impl Write for $type {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.$field).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.$field).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.$field).poll_shutdown(cx)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
            }
        }
    };
}

delegate_io!(Capped, io);
delegate_io!(ToProxy, 0);
