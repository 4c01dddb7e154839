//! Stores for the tests: each in its own namespace (a temporary directory, a fresh PostgreSQL
//! schema, a fresh Redis key prefix), cleaned up when dropped, even after a failed assertion.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orc_state::{Checkpoint, NewRun, StateOptions, Store};
use serde_json::json;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The backend of a [`Harness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
    Redis,
}

/// A store in a namespace of its own.
pub(crate) struct Harness {
    pub(crate) store: Store,
    pub(crate) kind: Kind,
    /// The URL the store was opened with.
    pub(crate) url: String,
    /// The namespace (PostgreSQL schema, Redis key prefix); `None` for SQLite.
    pub(crate) namespace: Option<String>,
    /// The SQLite file's directory.
    pub(crate) dir: Option<tempfile::TempDir>,
}

/// Options for tests: a small pool, a timeout that fails a stuck test quickly.
pub(crate) fn options(namespace: Option<String>) -> StateOptions {
    StateOptions {
        pool_size: 4,
        query_timeout: Duration::from_secs(10),
        compression: true,
        namespace,
        query_cache_ttl: None,
    }
}

/// A namespace no other test (or run) uses.
pub(crate) fn namespace(prefix: &str) -> String {
    format!("t_{prefix}_{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

pub(crate) fn postgres_url() -> String {
    std::env::var("ORC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub(crate) fn redis_url() -> String {
    std::env::var("ORC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Fails the test in CI, or says why it is skipped elsewhere.
#[allow(clippy::print_stderr)]
fn unreachable(server: &str, url: &str, error: &str, start: &str) {
    let message = format!(
        "{server} at {url} cannot be reached ({error}). Start it with `{start}` (see the README's \"Tests\" section) or point {} at one.",
        if server == "PostgreSQL" {
            "ORC_TEST_DATABASE_URL"
        } else {
            "ORC_TEST_REDIS_URL"
        }
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
}

/// Whether the test PostgreSQL answers; in CI it must.
pub(crate) async fn postgres_reachable() -> bool {
    let url = postgres_url();
    let connect = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url));
    match connect.await {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            true
        }
        Ok(Err(e)) => {
            unreachable("PostgreSQL", &url, &e.to_string(), PG_START);
            false
        }
        Err(_) => {
            unreachable("PostgreSQL", &url, "no answer within 5 s", PG_START);
            false
        }
    }
}

const PG_START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
const REDIS_START: &str =
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no";

/// Whether the test Redis answers; in CI it must.
pub(crate) async fn redis_reachable() -> bool {
    let url = redis_url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            unreachable("Redis", &url, &e.to_string(), REDIS_START);
            false
        }
        Err(_) => {
            unreachable("Redis", &url, "no answer within 5 s", REDIS_START);
            false
        }
    }
}

impl Harness {
    /// A SQLite store in a fresh temporary directory.
    pub(crate) async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/state.db", dir.path().display());
        let store = Store::open(&url, options(None)).await.unwrap();
        Harness {
            store,
            kind: Kind::Sqlite,
            url,
            namespace: None,
            dir: Some(dir),
        }
    }

    /// A PostgreSQL store in a fresh schema, or `None` when the server is unreachable outside CI.
    pub(crate) async fn postgres() -> Option<Harness> {
        if !postgres_reachable().await {
            return None;
        }
        let url = postgres_url();
        let ns = namespace("pg");
        let store = Store::open(&url, options(Some(ns.clone()))).await.unwrap();
        Some(Harness {
            store,
            kind: Kind::Postgres,
            url,
            namespace: Some(ns),
            dir: None,
        })
    }

    /// A Redis store under a fresh key prefix, or `None` when the server is unreachable outside CI.
    pub(crate) async fn redis() -> Option<Harness> {
        if !redis_reachable().await {
            return None;
        }
        let url = redis_url();
        let ns = namespace("redis");
        let store = Store::open(&url, options(Some(ns.clone()))).await.unwrap();
        Some(Harness {
            store,
            kind: Kind::Redis,
            url,
            namespace: Some(ns),
            dir: None,
        })
    }

    /// A second handle on the same store, as another process would open it.
    pub(crate) async fn reopen(&self, options: StateOptions) -> orc_state::Result<Store> {
        Store::open(
            &self.url,
            StateOptions {
                namespace: self.namespace.clone(),
                ..options
            },
        )
        .await
    }

    /// A raw connection to the PostgreSQL schema (search_path set), for tests that reach past
    /// the store.
    pub(crate) async fn pg_connection(&self) -> sqlx::PgConnection {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse().unwrap();
        let options = options.options([("search_path", self.namespace.clone().unwrap())]);
        sqlx::PgConnection::connect_with(&options).await.unwrap()
    }

    /// A raw connection to the SQLite file.
    pub(crate) async fn sqlite_connection(&self) -> sqlx::SqliteConnection {
        let path = self.dir.as_ref().unwrap().path().join("state.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap()
    }

    /// A raw Redis connection.
    pub(crate) async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// The Redis key prefix of the store.
    pub(crate) fn redis_prefix(&self) -> String {
        format!("orc:state:{}:", self.namespace.as_deref().unwrap())
    }
}

impl Drop for Harness {
    /// Drops the schema or deletes the keys, on a thread of its own (Drop cannot await).
    fn drop(&mut self) {
        let (kind, url, ns) = (self.kind, self.url.clone(), self.namespace.clone());
        let Some(ns) = ns else {
            return;
        };
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                match kind {
                    Kind::Postgres => {
                        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{ns}\" CASCADE"
                        )))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    }
                    Kind::Redis => {
                        let client = redis::Client::open(url.as_str()).unwrap();
                        let mut c = client.get_multiplexed_async_connection().await.unwrap();
                        let pattern = format!("orc:state:{ns}:*");
                        let mut cursor = 0u64;
                        loop {
                            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(1000)
                                .query_async(&mut c)
                                .await
                                .unwrap();
                            if !keys.is_empty() {
                                redis::cmd("DEL")
                                    .arg(keys)
                                    .query_async::<()>(&mut c)
                                    .await
                                    .unwrap();
                            }
                            if next == 0 {
                                break;
                            }
                            cursor = next;
                        }
                    }
                    Kind::Sqlite => {}
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Opens `n` handles on one store at the same moment, as `n` processes starting together would.
pub(crate) async fn open_all(
    url: &str,
    options: StateOptions,
    n: usize,
) -> Vec<orc_state::Result<Store>> {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (url, options) = (url.to_owned(), options.clone());
        tasks.spawn(async move { Store::open(&url, options).await });
    }
    tasks.join_all().await
}

/// A time with whole microseconds, `secs` after 2023-11-14.
pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + secs * 1_000_000 + 123)
}

/// A new run of `pipeline` started at [`at`]`(secs)`.
pub(crate) fn new_run(run_id: &str, pipeline: &str, secs: u64) -> NewRun {
    NewRun {
        run_id: run_id.to_owned(),
        pipeline_id: pipeline.to_owned(),
        pipeline_path: format!("pipelines/{pipeline}.yaml"),
        pipeline_hash: format!("hash-of-{pipeline}"),
        inputs: json!({"zeta": 1, "alpha": [true, null, "ß"], "mid": {"b": 2, "a": 1}}),
        started_at: at(secs),
    }
}

/// A completed step `step_id` whose envelope says `n`.
pub(crate) fn checkpoint(step_id: &str, n: u64) -> Checkpoint {
    Checkpoint {
        step_id: step_id.to_owned(),
        status: "completed".to_owned(),
        envelope: json!({"result": {"n": n, "text": "ok"}, "success": true, "error": null}),
        started_at: Some(at(n)),
        completed_at: Some(at(n + 1)),
        attempts: 1,
        model: None,
        usage: None,
        cost: None,
    }
}

/// A TCP forwarder on 127.0.0.1 to a server, that the test can cut (every connection dropped,
/// new ones refused) and restore on the same port: the server "going away" without touching
/// the shared server itself.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    upstream: String,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            upstream: upstream.to_owned(),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = Arc::downgrade(&self.tasks);
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let Some(tasks) = tasks.upgrade() else { return };
                tasks.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    /// Drops every connection and stops listening.
    pub(crate) fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Listens again on the same port.
    pub(crate) async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The columns migration 5 added to `model_metrics`.
pub(crate) const REQUEST_COLUMNS: [&str; 6] = [
    "source",
    "cache_hit",
    "error_kind",
    "run_id",
    "pipeline_id",
    "latency_bucket",
];

/// The tables migration 6 added (the rollups of `model_metrics`), and migration 7 (the caches'
/// lookups per minute), which a store set back to before migration 6 lacks too.
pub(crate) const ROLLUP_TABLES: [&str; 4] = [
    "request_hours",
    "request_minutes",
    "request_runs",
    "cache_minutes",
];

/// Statements that take migration 6's and 7's tables out of a SQL store, and those of the
/// migrations after them (PostgreSQL's 8).
pub(crate) fn drop_rollup_tables() -> sqlx::RawSql {
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop_rollups()))
}

/// Statements that set a SQL store back to schema 5: migration 6's and 7's tables out, and
/// their records.
pub(crate) fn before_rollups() -> sqlx::RawSql {
    let statements = drop_rollups() + "DELETE FROM orc_schema_migrations WHERE version >= 6;";
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements))
}

fn drop_rollups() -> String {
    ROLLUP_TABLES
        .iter()
        .map(|table| format!("DROP TABLE {table};"))
        .chain(["DROP TABLE IF EXISTS dispatched_steps;".to_owned()])
        .collect()
}

/// The fields of a metric of an upstream call made outside any run, with no cache consulted
/// (the rest of a `ModelMetric { .. }`).
pub(crate) fn upstream() -> orc_state::ModelMetric {
    orc_state::ModelMetric {
        model: String::new(),
        provider: String::new(),
        at: UNIX_EPOCH,
        latency_ms: 0.0,
        success: true,
        input_tokens: 0,
        output_tokens: 0,
        cost: 0.0,
        source: orc_state::CallSource::Upstream,
        cache_hit: None,
        error_kind: None,
        run_id: None,
        pipeline_id: None,
    }
}
