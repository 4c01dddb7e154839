//! Sending one request: over HTTP with a keep-alive connection pool (reqwest), or to the
//! service's routes in this process (no socket), and telling success from each kind of error.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::options::{Action, Target, Token};
use crate::template::{Ctx, Template};
use crate::{Error, Result};

/// How a request failed, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ErrorKind {
    /// An answer with another status than expected.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection.
    Connect,
    /// The request or answer broke off.
    Transport,
    /// A pipeline run that ended failed.
    RunFailed,
    /// A pipeline run that ended interrupted.
    RunInterrupted,
    /// A pipeline run still running when the service stopped waiting (202).
    RunUnfinished,
    /// An answer to a run that is not a result document.
    RunUnreadable,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "status {code}"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Transport => f.write_str("transport"),
            ErrorKind::RunFailed => f.write_str("run failed"),
            ErrorKind::RunInterrupted => f.write_str("run interrupted"),
            ErrorKind::RunUnfinished => f.write_str("run unfinished"),
            ErrorKind::RunUnreadable => f.write_str("run answer unreadable"),
        }
    }
}

/// A request that failed: how, and what the answer (or the client) said, shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
}

/// The longest detail a report keeps.
const DETAIL_CHARS: usize = 200;

impl Failure {
    pub(crate) fn new(kind: ErrorKind, detail: impl AsRef<[u8]>) -> Failure {
        let text = String::from_utf8_lossy(detail.as_ref());
        let mut detail: String = text.trim().chars().take(DETAIL_CHARS).collect();
        if text.trim().chars().count() > DETAIL_CHARS {
            detail.push('…');
        }
        Failure { kind, detail }
    }
}

/// How an answer is judged.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// This status, or any 2xx.
    Status(Option<u16>),
    /// A run's result document whose `status` is `completed`.
    Run,
}

#[derive(Debug)]
enum Body {
    Empty,
    Fixed(Bytes),
    Varies(Template),
}

/// A scenario's request, prepared once: its URL, and its body serialized once when it does not
/// vary.
#[derive(Debug)]
pub(crate) struct Prepared {
    method: Method,
    /// The full URL (HTTP) or the path (in process).
    uri: String,
    body: Body,
    check: Check,
}

impl Prepared {
    pub(crate) fn new(action: &Action, base: Option<&str>) -> Prepared {
        let (method, path, body) = action.request();
        let check = match action {
            Action::Pipeline { .. } => Check::Run,
            Action::Request { expect_status, .. } => Check::Status(*expect_status),
        };
        let body = match body {
            None => Body::Empty,
            Some(t) => match t.as_const() {
                Some(v) => Body::Fixed(Bytes::from(serde_json::to_vec(v).unwrap_or_default())),
                None => Body::Varies(t),
            },
        };
        let uri = match base {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path,
        };
        Prepared {
            method,
            uri,
            body,
            check,
        }
    }

    /// The body of one request (`None`: no body).
    pub(crate) fn body(&self, ctx: Ctx, rng: &mut fastrand::Rng) -> Option<Bytes> {
        match &self.body {
            Body::Empty => None,
            Body::Fixed(bytes) => Some(bytes.clone()),
            Body::Varies(t) => Some(Bytes::from(
                serde_json::to_vec(&t.render(ctx, rng)).unwrap_or_default(),
            )),
        }
    }

    fn judge(&self, status: StatusCode, body: &[u8]) -> Result<(), Failure> {
        self.verdict(status, body)
            .map_err(|kind| Failure::new(kind, body))
    }

    fn verdict(&self, status: StatusCode, body: &[u8]) -> Result<(), ErrorKind> {
        match self.check {
            Check::Status(Some(want)) if status.as_u16() == want => Ok(()),
            Check::Status(None) if status.is_success() => Ok(()),
            Check::Status(_) => Err(ErrorKind::Status(status.as_u16())),
            Check::Run if status == StatusCode::ACCEPTED => Err(ErrorKind::RunUnfinished),
            Check::Run if status != StatusCode::OK => Err(ErrorKind::Status(status.as_u16())),
            Check::Run => {
                #[derive(serde::Deserialize)]
                struct Doc<'a> {
                    #[serde(borrow)]
                    status: &'a str,
                }
                match serde_json::from_slice::<Doc<'_>>(body).map(|d| d.status) {
                    Ok("completed") => Ok(()),
                    Ok("failed") => Err(ErrorKind::RunFailed),
                    Ok("interrupted") => Err(ErrorKind::RunInterrupted),
                    _ => Err(ErrorKind::RunUnreadable),
                }
            }
        }
    }
}

/// Where requests are sent. Cheap to share: the pool and the routes are behind `Arc`s.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Http {
        client: reqwest::Client,
        auth: Option<HeaderValue>,
    },
    InProcess {
        router: axum::Router,
        auth: Option<HeaderValue>,
    },
}

fn bearer(token: Option<&Token>) -> Result<Option<HeaderValue>> {
    token
        .map(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                Error::Options("the bearer token is not a valid header value".into())
            })?;
            v.set_sensitive(true);
            Ok(v)
        })
        .transpose()
}

impl Transport {
    /// The transport of `target`; an in-process one serves the runtime's routes as `orc serve`
    /// would, with the config's server settings.
    pub(crate) async fn new(
        target: &Target,
        token: Option<&Token>,
        runtime: Option<&orc_runtime::Runtime>,
        users: u32,
    ) -> Result<Transport> {
        let auth = bearer(token)?;
        match target {
            Target::Url(_) => {
                // reqwest takes its TLS crypto from the process default (the workspace builds it with
                // `rustls-no-provider`); installing it again is a no-op.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    // Loopback and the service only: never through a proxy from the environment.
                    .no_proxy()
                    .tcp_nodelay(true)
                    .pool_max_idle_per_host(usize::try_from(users).unwrap_or(usize::MAX))
                    .build()
                    .map_err(|e| Error::Client(e.to_string()))?;
                Ok(Transport::Http { client, auth })
            }
            Target::InProcess => {
                let runtime = runtime.ok_or_else(|| {
                    Error::Options("an `inprocess` target needs a runtime to drive".into())
                })?;
                let options = orc_server::ServerOptions::from_settings(&runtime.config().server)
                    .map_err(|e| Error::Options(e.to_string()))?;
                let router = orc_server::app(
                    runtime.clone(),
                    &options,
                    tokio_util::sync::CancellationToken::new(),
                )
                .await?;
                Ok(Transport::InProcess { router, auth })
            }
        }
    }

    /// Sends one request and reads the whole answer.
    pub(crate) async fn send(&self, req: &Prepared, body: Option<Bytes>) -> Result<(), Failure> {
        match self {
            Transport::Http { client, auth } => {
                let mut builder = client.request(req.method.clone(), req.uri.as_str());
                if let Some(auth) = auth {
                    builder = builder.header(AUTHORIZATION, auth.clone());
                }
                if let Some(body) = body {
                    builder = builder
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(body);
                }
                let answer = builder.send().await.map_err(classify)?;
                let status = answer.status();
                let bytes = answer.bytes().await.map_err(classify)?;
                req.judge(status, &bytes)
            }
            Transport::InProcess { router, auth } => {
                let mut builder = http::Request::builder()
                    .method(req.method.clone())
                    .uri(req.uri.as_str());
                if let Some(auth) = auth {
                    builder = builder.header(AUTHORIZATION, auth.clone());
                }
                let request = match body {
                    Some(body) => builder
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(axum::body::Body::from(body)),
                    None => builder.body(axum::body::Body::empty()),
                }
                .map_err(|e| Failure::new(ErrorKind::Transport, e.to_string()))?;
                let Ok(answer) = router.clone().oneshot(request).await;
                let (parts, body) = answer.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| Failure::new(ErrorKind::Transport, e.to_string()))?
                    .to_bytes();
                req.judge(parts.status, &bytes)
            }
        }
    }
}

fn classify(e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Transport
    };
    // The causes say why (`Connection refused`); the URL is the target's, in the report.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::new(kind, detail)
}
