//! The SQLite backend: one file in WAL mode (`synchronous=NORMAL`, a busy timeout), one writer
//! connection and a few readers. Every write is one statement or one `BEGIN IMMEDIATE`
//! transaction, so two processes on the same file queue instead of failing halfway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::Mutex;

use crate::codec::{Packed, now_micros};
use crate::records::{MetricRecord, NewRunRecord, NewStep, StoredRun, StoredStep};
use crate::sql::{Dialect, MIGRATIONS_TABLE, describe, migrate_error, query_error, sqlite_primary};
use crate::{Error, Result, RunState, StateOptions};

/// The newest schema version this binary knows.
pub(crate) const LATEST: i64 = 2;

/// The migrations, embedded. A released migration is never edited (sqlx checks each applied
/// one's checksum): a change to the schema is a new file and a new entry here, and [`LATEST`]
/// goes up with it.
fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(vec![
        Migration::new(
            1,
            "runs and checkpoints".into(),
            MigrationType::Simple,
            include_str!("migrations/0001_runs_and_checkpoints.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "model metrics".into(),
            MigrationType::Simple,
            include_str!("migrations/0002_model_metrics.sql").into_sql_str(),
            false,
        ),
    ]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// The tables of an orc store; a file holding any other table is some other program's.
const OUR_TABLES: [&str; 5] = [
    MIGRATIONS_TABLE,
    "pipelines",
    "runs",
    "steps",
    "model_metrics",
];

/// Checkpoints per multi-row INSERT: 13 parameters each, well under SQLite's limit of 32766.
const INSERT_CHUNK: usize = 256;

/// Tries at migrating, when another process migrates the same file at the same time.
const MIGRATE_ATTEMPTS: u64 = 3;

/// Most reader connections, whatever the pool size.
const MAX_READERS: u32 = 4;

/// Runs a read on a reader connection, or on the writer for an in-memory database.
macro_rules! read {
    ($self:ident, $query:expr, $fetch:ident) => {
        match &$self.reader {
            Some(pool) => $query.$fetch(pool).await,
            None => $query.$fetch(&mut *$self.writer.lock().await).await,
        }
    };
}

/// The columns of a run row, in [`StoredRun`]'s order.
macro_rules! run_columns {
    () => {
        "run_id, pipeline_id, pipeline_path, pipeline_hash, inputs, status, started_at, finished_at, steps_done"
    };
}

/// A run row as sqlx decodes it.
type RunTuple = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
);

fn stored_run(t: RunTuple) -> StoredRun {
    StoredRun {
        run_id: t.0,
        pipeline_id: t.1,
        pipeline_path: t.2,
        pipeline_hash: t.3,
        inputs: t.4,
        status: t.5,
        started_at: t.6,
        finished_at: t.7,
        steps_done: t.8,
    }
}

/// A SQLite state file (or a private in-memory database).
pub(crate) struct SqliteStore {
    /// The one connection that writes. Writes queue for it here rather than fight over SQLite's
    /// lock, so the mutex is held across the write's await on purpose: it *is* the queue. A bare
    /// connection, not a pool of one, because a pool pings the connection each time it is taken
    /// and given back: two extra trips to the connection's thread per write.
    writer: Mutex<SqliteConnection>,
    /// Read-only connections; `None` for an in-memory database, which only its one connection
    /// can see.
    reader: Option<SqlitePool>,
    /// The URL for messages.
    url: String,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and migrates. `path` is `None`
    /// for an in-memory database.
    pub(crate) async fn open(
        path: Option<&Path>,
        url: String,
        options: &StateOptions,
    ) -> Result<Self> {
        if options.namespace.is_some() {
            return Err(Error::InvalidOptions {
                url,
                reason: "a SQLite store is one file and takes no namespace; use another file"
                    .to_owned(),
            });
        }
        let timeout = options.query_timeout;
        let base = SqliteConnectOptions::new()
            .busy_timeout(timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);
        let (write_options, read_options) = match path {
            Some(path) => {
                create_parent(path).await?;
                let base = base.filename(path);
                (
                    base.clone()
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal),
                    Some(base.read_only(true)),
                )
            }
            None => (base.in_memory(true), None),
        };
        // The writer connection comes out of a pool of one because sqlx's migrator takes a pool
        // (given a bare connection, the future it makes is not `Send`).
        let setup = connect_writer(write_options, timeout, &url).await?;
        migrate(&setup, &url).await?;
        let writer = setup
            .acquire()
            .await
            .map_err(|e| open_error(&url, e))?
            .detach();
        setup.close().await;
        let reader = read_options.map(|read_options| {
            SqlitePoolOptions::new()
                .max_connections(options.pool_size.clamp(1, MAX_READERS))
                .acquire_timeout(timeout)
                // A local file needs no health check before each use.
                .test_before_acquire(false)
                .connect_lazy_with(read_options)
        });
        let store = SqliteStore {
            writer: Mutex::new(writer),
            reader,
            url,
        };
        Ok(store)
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |e| query_error(&self.url, &self.url, operation, e, Dialect::Sqlite)
    }

    pub(crate) async fn create_run(&self, run: &NewRunRecord<'_>) -> Result<()> {
        let error = || self.error("create_run");
        let mut writer = self.writer.lock().await;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error())?;
        sqlx::query(
            "INSERT INTO pipelines (pipeline_id, pipeline_path, pipeline_hash, created_at, last_run_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (pipeline_id) DO UPDATE SET
                 pipeline_path = excluded.pipeline_path,
                 pipeline_hash = excluded.pipeline_hash,
                 last_run_at = max(last_run_at, excluded.last_run_at)",
        )
        .bind(run.pipeline_id)
        .bind(run.pipeline_path)
        .bind(run.pipeline_hash)
        .bind(run.started_at)
        .execute(&mut *tx)
        .await
        .map_err(error())?;
        let inserted = sqlx::query(
            "INSERT INTO runs (run_id, pipeline_id, pipeline_path, pipeline_hash, inputs, status, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
        )
        .bind(run.run_id)
        .bind(run.pipeline_id)
        .bind(run.pipeline_path)
        .bind(run.pipeline_hash)
        .bind(&run.inputs)
        .bind(run.started_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => tx.commit().await.map_err(error()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(Error::RunExists {
                run_id: run.run_id.to_owned(),
            }),
            Err(e) => Err(error()(e)),
        }
    }

    pub(crate) async fn append(&self, run_id: &str, steps: Vec<NewStep<'_>>) -> Result<()> {
        let error = || self.error("append");
        let now = now_micros();
        if let [step] = steps.as_slice() {
            // One statement commits on its own: no BEGIN and COMMIT round trips.
            let inserted = insert_step(run_id, step, now)
                .execute(&mut *self.writer.lock().await)
                .await
                .map_err(error())?;
            return self.found(run_id, inserted.rows_affected());
        }
        // Several: BEGIN IMMEDIATE, read the position, one multi-row INSERT per chunk, COMMIT;
        // four round trips to the connection's thread however many checkpoints there are.
        let mut writer = self.writer.lock().await;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error())?;
        let base: Option<(i64,)> = sqlx::query_as("SELECT steps_done FROM runs WHERE run_id = ?1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error())?;
        let Some((mut seq,)) = base else {
            return self.found(run_id, 0);
        };
        for chunk in steps.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO steps (run_id, seq, step_id, status, started_at, completed_at, attempts, model, usage, cost, created_at, compressed, payload) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for step in chunk {
                query = query
                    .bind(run_id)
                    .bind(seq)
                    .bind(step.step_id)
                    .bind(step.status)
                    .bind(step.started_at)
                    .bind(step.completed_at)
                    .bind(step.attempts)
                    .bind(step.model)
                    .bind(step.usage.as_deref())
                    .bind(step.cost)
                    .bind(now)
                    .bind(step.compressed)
                    .bind(step.payload.as_slice());
                seq += 1;
            }
            query.execute(&mut *tx).await.map_err(error())?;
        }
        tx.commit().await.map_err(error())
    }

    /// `Ok` when a statement that touches only the run's own rows changed one.
    fn found(&self, run_id: &str, rows: u64) -> Result<()> {
        if rows == 0 {
            return Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) async fn finish_run(
        &self,
        run_id: &str,
        status: RunState,
        finished_at: Option<i64>,
        result: Option<Packed>,
    ) -> Result<()> {
        let (result, compressed) = match result {
            Some(p) => (Some(p.bytes), p.compressed),
            None => (None, false),
        };
        let updated = sqlx::query(
            "UPDATE runs SET status = ?2, finished_at = ?3, result = ?4, result_compressed = ?5
             WHERE run_id = ?1",
        )
        .bind(run_id)
        .bind(status.as_str())
        .bind(finished_at)
        .bind(result)
        .bind(compressed)
        .execute(&mut *self.writer.lock().await)
        .await
        .map_err(self.error("finish_run"))?;
        self.found(run_id, updated.rows_affected())
    }

    pub(crate) async fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
        let query = sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE run_id = ?1"
        ))
        .bind(run_id);
        let row: Option<RunTuple> =
            read!(self, query, fetch_optional).map_err(self.error("run"))?;
        Ok(row.map(stored_run))
    }

    pub(crate) async fn result_document(&self, run_id: &str) -> Result<Option<Packed>> {
        let query = sqlx::query_as("SELECT result, result_compressed FROM runs WHERE run_id = ?1")
            .bind(run_id);
        let row: Option<(Option<Vec<u8>>, bool)> =
            read!(self, query, fetch_optional).map_err(self.error("result_document"))?;
        Ok(row.and_then(|(bytes, compressed)| bytes.map(|bytes| Packed { bytes, compressed })))
    }

    pub(crate) async fn checkpoints(&self, run_id: &str) -> Result<Vec<StoredStep>> {
        type StepTuple = (
            i64,
            String,
            String,
            Option<i64>,
            Option<i64>,
            i64,
            Option<String>,
            Option<String>,
            Option<f64>,
            bool,
            Vec<u8>,
        );
        let query = sqlx::query_as(
            "SELECT seq, step_id, status, started_at, completed_at, attempts, model, usage, cost, compressed, payload
             FROM steps WHERE run_id = ?1 ORDER BY seq",
        )
        .bind(run_id);
        let rows: Vec<StepTuple> =
            read!(self, query, fetch_all).map_err(self.error("checkpoints"))?;
        Ok(rows
            .into_iter()
            .map(|t| StoredStep {
                seq: t.0,
                step_id: t.1,
                status: t.2,
                started_at: t.3,
                completed_at: t.4,
                attempts: t.5,
                model: t.6,
                usage: t.7,
                cost: t.8,
                compressed: t.9,
                payload: t.10,
            })
            .collect())
    }

    pub(crate) async fn list_runs(
        &self,
        status: Option<RunState>,
        pipeline_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredRun>> {
        // SQLite: a negative LIMIT means none.
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let status = status.map(RunState::as_str);
        let query = match (status, pipeline_id) {
            (None, None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (Some(_), None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = ?2 ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (None, Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE pipeline_id = ?3 ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (Some(_), Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = ?2 AND pipeline_id = ?3 ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
        };
        let query = query.bind(limit).bind(status).bind(pipeline_id);
        let rows: Vec<RunTuple> = read!(self, query, fetch_all).map_err(self.error("list_runs"))?;
        Ok(rows.into_iter().map(stored_run).collect())
    }

    pub(crate) async fn claim(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let error = || self.error("claim");
        let now = now_micros();
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        // BEGIN IMMEDIATE takes the write lock first, so the check and the update see the same
        // lease even with other processes on the file.
        let mut writer = self.writer.lock().await;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error())?;
        let claimed = sqlx::query(
            "UPDATE runs SET lease_owner = ?2, lease_expires_at = ?3
             WHERE run_id = ?1
               AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires_at <= ?4)",
        )
        .bind(run_id)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(error())?
        .rows_affected()
            == 1;
        if !claimed {
            let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM runs WHERE run_id = ?1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(error())?;
            self.found(run_id, u64::from(exists.is_some()))?;
        }
        tx.commit().await.map_err(error())?;
        Ok(claimed)
    }

    pub(crate) async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
             WHERE run_id = ?1 AND lease_owner = ?2",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&mut *self.writer.lock().await)
        .await
        .map_err(self.error("release"))?;
        Ok(())
    }

    pub(crate) async fn prune(&self, older_than: i64) -> Result<u64> {
        // Checkpoints go with their runs (ON DELETE CASCADE).
        let deleted = sqlx::query(
            "DELETE FROM runs WHERE started_at < ?1
               AND (lease_owner IS NULL OR lease_expires_at <= ?2)",
        )
        .bind(older_than)
        .bind(now_micros())
        .execute(&mut *self.writer.lock().await)
        .await
        .map_err(self.error("prune"))?;
        Ok(deleted.rows_affected())
    }

    pub(crate) async fn record_model_metric(&self, m: &MetricRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_metrics (model, provider, at, latency_ms, success, input_tokens, output_tokens, cost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&m.model)
        .bind(&m.provider)
        .bind(m.at)
        .bind(m.latency_ms)
        .bind(m.success)
        .bind(m.input_tokens)
        .bind(m.output_tokens)
        .bind(m.cost)
        .execute(&mut *self.writer.lock().await)
        .await
        .map_err(self.error("record_model_metric"))?;
        Ok(())
    }

    pub(crate) async fn model_metrics(
        &self,
        model: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<MetricRecord>> {
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        type MetricTuple = (String, String, i64, f64, bool, i64, i64, f64);
        let query = sqlx::query_as(
            "SELECT model, provider, at, latency_ms, success, input_tokens, output_tokens, cost
             FROM model_metrics WHERE model = ?1 AND at >= ?2 ORDER BY at DESC, id DESC LIMIT ?3",
        )
        .bind(model)
        .bind(since)
        .bind(limit);
        let rows: Vec<MetricTuple> =
            read!(self, query, fetch_all).map_err(self.error("model_metrics"))?;
        Ok(rows
            .into_iter()
            .map(|t| MetricRecord {
                model: t.0,
                provider: t.1,
                at: t.2,
                latency_ms: t.3,
                success: t.4,
                input_tokens: t.5,
                output_tokens: t.6,
                cost: t.7,
            })
            .collect())
    }
}

/// The INSERT … SELECT of one checkpoint: it takes its position from the run's `steps_done` (which
/// the `steps_count` trigger then bumps) and inserts nothing when the run does not exist.
fn insert_step<'q>(
    run_id: &'q str,
    step: &'q NewStep<'q>,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "INSERT INTO steps (run_id, seq, step_id, status, started_at, completed_at, attempts, model, usage, cost, created_at, compressed, payload)
         SELECT run_id, steps_done, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 FROM runs WHERE run_id = ?1",
    )
    .bind(run_id)
    .bind(step.step_id)
    .bind(step.status)
    .bind(step.started_at)
    .bind(step.completed_at)
    .bind(step.attempts)
    .bind(step.model)
    .bind(step.usage.as_deref())
    .bind(step.cost)
    .bind(now)
    .bind(step.compressed)
    .bind(step.payload.as_slice())
}

/// Refuses a foreign or newer database, then applies the migrations it lacks.
async fn migrate(pool: &SqlitePool, url: &str) -> Result<()> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| open_error(url, e))?;
    let tables: Vec<String> = tables.into_iter().map(|(name,)| name).collect();
    let ours = tables.iter().any(|t| t == MIGRATIONS_TABLE);
    let foreign: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| !OUR_TABLES.contains(t))
        .collect();
    if !ours && !tables.is_empty() {
        return Err(Error::NotAStateDatabase {
            url: url.to_owned(),
            reason: format!(
                "it is a SQLite database of another program (it has the tables {})",
                tables.join(", ")
            ),
        });
    }
    if ours {
        let found = schema_version(pool, url).await?;
        if found > LATEST {
            return Err(Error::SchemaTooNew {
                url: url.to_owned(),
                found,
                supported: LATEST,
            });
        }
        if found == LATEST {
            return Ok(());
        }
    }
    if !foreign.is_empty() {
        tracing::warn!(store = %url, tables = ?foreign, "the state database holds tables orc does not know");
    }
    // Two processes opening a new file at once both try to migrate it; the one that loses
    // fails on a table the other made, and then finds that migration applied.
    let mut attempt = 1;
    loop {
        match migrator().run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                if schema_version(pool, url).await.ok() == Some(LATEST) {
                    return Ok(());
                }
                if attempt == MIGRATE_ATTEMPTS {
                    return Err(migrate_error(url, url, e));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
        attempt += 1;
    }
}

/// A pool of one writer connection. Switching a new file to WAL takes a lock that SQLite's busy
/// timeout does not wait for, so when several processes open a new file at once the losers are
/// told "locked" at once; they try again until the timeout.
async fn connect_writer(
    options: SqliteConnectOptions,
    timeout: Duration,
    url: &str,
) -> Result<SqlitePool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let connected = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await;
        match connected {
            Ok(pool) => return Ok(pool),
            Err(e)
                if matches!(sqlite_primary(&e), Some(5 | 6))
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(open_error(url, e)),
        }
    }
}

/// The newest migration applied.
async fn schema_version(c: &SqlitePool, url: &str) -> Result<i64> {
    let (version,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM orc_schema_migrations WHERE success")
            .fetch_one(c)
            .await
            .map_err(|e| open_error(url, e))?;
    Ok(version.unwrap_or(0))
}

/// Creates the directory the database file goes in.
async fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })
        }
        _ => Ok(()),
    }
}

/// An error while opening the file or reading its schema.
fn open_error(url: &str, e: sqlx::Error) -> Error {
    let message = match &e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        e => describe(e),
    };
    match sqlite_primary(&e) {
        Some(11) => Error::NotAStateDatabase {
            url: url.to_owned(),
            reason: format!("it is damaged ({message})"),
        },
        Some(26) => Error::NotAStateDatabase {
            url: url.to_owned(),
            reason: format!("it is not a SQLite database ({message})"),
        },
        // SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_AUTH
        Some(3 | 8 | 14 | 23) => Error::Connect {
            url: url.to_owned(),
            message,
            hint: "check that the file and its directory exist and are readable and writable by this user".to_owned(),
        },
        // SQLITE_BUSY, SQLITE_LOCKED
        Some(5 | 6) => Error::Connect {
            url: url.to_owned(),
            message,
            hint: "another process holds the database locked; wait for it or raise the query timeout".to_owned(),
        },
        _ => Error::Connect {
            url: url.to_owned(),
            message,
            hint: "check the path in the state URL".to_owned(),
        },
    }
}

/// The file a SQLite URL's path names: relative paths are taken from the working directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_the_newest_migration() {
        let versions: Vec<i64> = migrator().iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=LATEST).collect::<Vec<_>>());
    }
}
