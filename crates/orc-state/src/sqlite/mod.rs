//! The SQLite backend: one file in WAL mode (`synchronous=NORMAL`, a busy timeout), one writer
//! connection and a few readers. Every write runs inside a `BEGIN IMMEDIATE` transaction (shared
//! with the other writes waiting at the time), so two processes on the same file queue instead
//! of failing halfway.
//!
//! Migrations and reads go through sqlx. Writes do not: they go to one rusqlite connection owned
//! by a thread of its own ([`writer`]) that commits every write waiting for it in one
//! transaction, so that concurrent runs share commits instead of queueing for one each. sqlx
//! would hand each statement to its connection's thread and back, one at a time (appending a
//! checkpoint: ~20 µs of SQL, a median of 50–60 µs through sqlx on a busy 2-core machine); the
//! writer thread hands over a whole batch at once. The one long wait, for a lock another process
//! holds, is bounded by the busy timeout (the query timeout).
//!
//! A private in-memory store is a named shared-cache database, so that the sqlx connection that
//! migrates it and then serves its reads and the rusqlite writer see the same data; reads and
//! writes take turns on it (SQLite's busy timeout does not cover shared-cache table locks).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{OpenFlags, OptionalExtension, params};
use sqlx::SqlSafeStr;
use sqlx::SqliteConnection;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use crate::codec::{Packed, now_micros};
use crate::latency;
use crate::records::{
    Fence, LookupRecord, MetricRecord, NewPipelineRecord, NewRunRecord, NewStep, RawClaim,
    SlotGroup, StoredPipeline, StoredRun, StoredStats, StoredStep,
};
use crate::rollup::{self, HOUR, MINUTE, Rollup, busier};
use crate::sql::{
    Dialect, MIGRATIONS_TABLE, describe, is_unique_violation, migrate_error, query_error,
    rusqlite_primary, sqlite_primary, sqlite_write_error,
};
use crate::sql::{
    GroupTuple, HourTuple, LookupTotals, MetricTuple, MinuteTuple, PackedLookups,
    PipelineTextTuple, PipelineTuple, SlotTuple, hour_group, lookup_totals, metric_group,
    metric_record, minute_group, slot_group, stored_pipeline, stored_pipeline_text, stored_stats,
    unpack_lookups,
};
use crate::{Error, Result, RunState, StateOptions};

mod rollups;
mod writer;

use rollups::add_rollup;
use writer::{Failed, Writer};

/// The newest schema version this binary knows.
pub(crate) const LATEST: i64 = 7;

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
        Migration::new(
            3,
            "lease generation".into(),
            MigrationType::Simple,
            include_str!("migrations/0003_lease_generation.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "pipeline registry".into(),
            MigrationType::Simple,
            include_str!("migrations/0004_pipelines.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "request metrics".into(),
            MigrationType::Simple,
            include_str!("migrations/0005_request_metrics.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "request rollups".into(),
            MigrationType::Simple,
            include_str!("migrations/0006_request_rollups.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "cache lookups".into(),
            MigrationType::Simple,
            include_str!("migrations/0007_cache_lookups.sql").into_sql_str(),
            false,
        ),
    ]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// The tables of an orc store; a file holding any other table is some other program's.
const OUR_TABLES: [&str; 10] = [
    MIGRATIONS_TABLE,
    "pipelines",
    "runs",
    "steps",
    "model_metrics",
    "pipeline_registry",
    "request_hours",
    "request_minutes",
    "request_runs",
    "cache_minutes",
];

/// Tries at migrating, when another process migrates the same file at the same time.
const MIGRATE_ATTEMPTS: u64 = 3;

/// Most reader connections, whatever the pool size.
const MAX_READERS: u32 = 4;

/// Names the private in-memory databases of this process apart.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

/// Runs a read on a reader connection, or on the one connection of an in-memory database.
macro_rules! read {
    ($self:ident, $query:expr, $fetch:ident) => {
        match &$self.reader {
            Reader::Pool(pool) => $query.$fetch(pool).await,
            Reader::Memory(c) => $query.$fetch(&mut *c.lock().await).await,
        }
    };
}

/// The columns of a run row, in [`StoredRun`]'s order.
macro_rules! run_columns {
    () => {
        "run_id, pipeline_id, pipeline_path, pipeline_hash, inputs, status, started_at, finished_at, steps_done,
         COALESCE(lease_owner IS NOT NULL AND lease_expires_at > CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER), 0)"
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
    bool,
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
        held: t.9,
    }
}

/// The columns of a registered pipeline's row, in [`StoredPipeline`]'s order.
macro_rules! pipeline_columns {
    () => {
        "id, pipeline_id, name, description, hash, steps, version, created_at, updated_at"
    };
}

/// Registers a pipeline in one statement: a new id at version 1; a known one replaced, its
/// version raised, `created_at` kept, when the hash differs; left as it is when the hash is the
/// same. Returns the row as it is afterwards.
const PUT_PIPELINE: &str = concat!(
    "INSERT INTO pipeline_registry AS p
         (id, pipeline_id, name, description, hash, steps, version, created_at, updated_at, text_compressed, text)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?8, ?9)
     ON CONFLICT (id) DO UPDATE SET
         pipeline_id = CASE WHEN p.hash = excluded.hash THEN p.pipeline_id ELSE excluded.pipeline_id END,
         name = CASE WHEN p.hash = excluded.hash THEN p.name ELSE excluded.name END,
         description = CASE WHEN p.hash = excluded.hash THEN p.description ELSE excluded.description END,
         hash = excluded.hash,
         steps = CASE WHEN p.hash = excluded.hash THEN p.steps ELSE excluded.steps END,
         version = CASE WHEN p.hash = excluded.hash THEN p.version ELSE p.version + 1 END,
         updated_at = CASE WHEN p.hash = excluded.hash THEN p.updated_at ELSE excluded.updated_at END,
         text_compressed = CASE WHEN p.hash = excluded.hash THEN p.text_compressed ELSE excluded.text_compressed END,
         text = CASE WHEN p.hash = excluded.hash THEN p.text ELSE excluded.text END
     RETURNING ",
    pipeline_columns!()
);

/// The INSERT … SELECT of one checkpoint: it takes its position from the run's `steps_done` (which
/// the `steps_count` trigger then bumps) and inserts nothing when the run does not exist.
const INSERT_STEP: &str = "INSERT INTO steps (run_id, seq, step_id, status, started_at, completed_at, attempts, model, usage, cost, created_at, compressed, payload)
     SELECT run_id, steps_done, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 FROM runs
     WHERE run_id = ?1 AND (?13 IS NULL OR (lease_owner = ?13 AND lease_generation = ?14))";

/// Why a write under a lease changed nothing.
enum Refused {
    /// No such run.
    NoRun,
    /// The lease moved on; who holds it now.
    Lost(Option<String>),
}

/// Why a write that changed nothing did not: the run is gone, or its lease moved on.
fn refused(c: &rusqlite::Connection, run_id: &str) -> rusqlite::Result<Refused> {
    let holder: Option<Option<String>> = c
        .prepare_cached("SELECT lease_owner FROM runs WHERE run_id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    Ok(match holder {
        None => Refused::NoRun,
        Some(holder) => Refused::Lost(holder),
    })
}

impl Refused {
    fn into_error(self, run_id: &str) -> Error {
        match self {
            Refused::NoRun => Error::RunNotFound {
                run_id: run_id.to_owned(),
            },
            Refused::Lost(holder) => Error::LeaseLost {
                run_id: run_id.to_owned(),
                holder,
            },
        }
    }
}

/// A checkpoint as the writer takes it: [`NewStep`] with its text owned, so that it can go to the
/// blocking pool.
struct StepRow {
    step_id: String,
    status: String,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    attempts: i64,
    model: Option<String>,
    usage: Option<String>,
    cost: Option<f64>,
    compressed: bool,
    payload: Vec<u8>,
}

impl From<NewStep<'_>> for StepRow {
    fn from(s: NewStep<'_>) -> Self {
        StepRow {
            step_id: s.step_id.to_owned(),
            status: s.status.to_owned(),
            started_at: s.started_at,
            completed_at: s.completed_at,
            attempts: s.attempts,
            model: s.model.map(str::to_owned),
            usage: s.usage,
            cost: s.cost,
            compressed: s.compressed,
            payload: s.payload,
        }
    }
}

/// Where reads go.
enum Reader {
    /// Read-only connections to the file.
    Pool(SqlitePool),
    /// The sqlx connection of an in-memory database. Writes take this lock too, so that reads and
    /// writes never meet in the shared cache, where SQLite's busy timeout does not apply.
    Memory(Arc<Mutex<SqliteConnection>>),
}

/// A SQLite state file (or a private in-memory database).
pub(crate) struct SqliteStore {
    /// The thread that owns the one connection that writes, and commits writes in batches.
    writer: Writer,
    reader: Reader,
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
        let (file, write_options, read_options) = match path {
            Some(path) => {
                create_parent(path).await?;
                let base = base.filename(path);
                (
                    path.to_path_buf(),
                    base.clone()
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal),
                    Some(base.read_only(true)),
                )
            }
            None => {
                let name = format!(
                    "file:orc-state-memory-{}",
                    MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed)
                );
                (
                    PathBuf::from(&name),
                    base.filename(name).in_memory(true).shared_cache(true),
                    None,
                )
            }
        };
        // Migrating takes a pool: sqlx's migrator given a bare connection makes a future that is
        // not `Send`.
        let setup = connect_setup(write_options, timeout, &url).await?;
        migrate(&setup, &url).await?;
        let reader = match read_options {
            Some(read_options) => Reader::Pool(
                SqlitePoolOptions::new()
                    .max_connections(options.pool_size.clamp(1, MAX_READERS))
                    .acquire_timeout(timeout)
                    // A local file needs no health check before each use.
                    .test_before_acquire(false)
                    .connect_lazy_with(read_options),
            ),
            // The connection that migrated keeps the in-memory database alive and reads it.
            None => Reader::Memory(Arc::new(Mutex::new(
                setup
                    .acquire()
                    .await
                    .map_err(|e| open_error(&url, e))?
                    .detach(),
            ))),
        };
        setup.close().await;
        let memory = path.is_none();
        let writer = tokio::task::spawn_blocking(move || open_writer(&file, memory, timeout))
            .await
            .map_err(|e| Error::Connect {
                url: url.clone(),
                message: format!("opening the writer connection failed: {e}"),
                hint: "check the path in the state URL".to_owned(),
            })?
            .map_err(|e| writer_open_error(&url, e))?;
        let turn = match &reader {
            Reader::Memory(c) => Some(Arc::clone(c)),
            Reader::Pool(_) => None,
        };
        let writer = Writer::start(writer, turn).map_err(|e| Error::Connect {
            url: url.clone(),
            message: format!("starting the writer thread failed: {e}"),
            hint: "the machine is out of threads or memory".to_owned(),
        })?;
        Ok(SqliteStore {
            writer,
            reader,
            url,
        })
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |e| query_error(&self.url, &self.url, operation, e, Dialect::Sqlite)
    }

    /// Runs `work` on the writer connection in its next batch and returns what it returned
    /// once the batch is committed (see [`writer`]). `work` must be short: one statement, or
    /// several under a savepoint it rolls back when it gives up. Its `Ok` carries what the caller
    /// needs to tell a missing run or a taken id from success; its `Err` becomes
    /// [`Error::Backend`].
    async fn write<T, F>(&self, operation: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        match self.writer.write(work).await {
            Ok(value) => Ok(value),
            Err(Failed::Sql(e)) => Err(sqlite_write_error(&self.url, operation, e)),
            Err(Failed::Gone) => Err(Error::Backend {
                url: self.url.clone(),
                operation,
                message: "the store's writer stopped".to_owned(),
                retryable: false,
            }),
        }
    }

    pub(crate) async fn create_run(&self, run: &NewRunRecord<'_>) -> Result<()> {
        let run_id = run.run_id.to_owned();
        let pipeline_id = run.pipeline_id.to_owned();
        let pipeline_path = run.pipeline_path.to_owned();
        let pipeline_hash = run.pipeline_hash.to_owned();
        let inputs = run.inputs.clone();
        let started_at = run.started_at;
        let created = self
            .write("create_run", move |c| {
                let tx = c.savepoint()?;
                tx.prepare_cached(
                    "INSERT INTO pipelines (pipeline_id, pipeline_path, pipeline_hash, created_at, last_run_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (pipeline_id) DO UPDATE SET
                         pipeline_path = excluded.pipeline_path,
                         pipeline_hash = excluded.pipeline_hash,
                         last_run_at = max(last_run_at, excluded.last_run_at)",
                )?
                .execute(params![pipeline_id, pipeline_path, pipeline_hash, started_at])?;
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO runs (run_id, pipeline_id, pipeline_path, pipeline_hash, inputs, status, started_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
                    )?
                    .execute(params![
                        run_id,
                        pipeline_id,
                        pipeline_path,
                        pipeline_hash,
                        inputs,
                        started_at
                    ]);
                match inserted {
                    Ok(_) => tx.commit().map(|()| true),
                    // Dropping the transaction rolls it back.
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if !created {
            return Err(Error::RunExists {
                run_id: run.run_id.to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) async fn append(
        &self,
        run_id: &str,
        steps: Vec<NewStep<'_>>,
        fence: Option<Fence<'_>>,
    ) -> Result<()> {
        let now = now_micros();
        let id = run_id.to_owned();
        let fence_owner = fence.map(|f| f.owner.to_owned());
        let fence_generation = fence.map(|f| f.generation);
        let steps: Vec<StepRow> = steps.into_iter().map(StepRow::from).collect();
        let found = self
            .write("append", move |c| {
                // Each insert takes the run's `steps_done` as its position, and the trigger
                // counts it, so checkpoints appended together get consecutive positions.
                let insert_all = |c: &rusqlite::Connection| -> rusqlite::Result<bool> {
                    let mut insert = c.prepare_cached(INSERT_STEP)?;
                    for s in &steps {
                        let inserted = insert.execute(params![
                            id,
                            s.step_id,
                            s.status,
                            s.started_at,
                            s.completed_at,
                            s.attempts,
                            s.model,
                            s.usage,
                            s.cost,
                            now,
                            s.compressed,
                            s.payload,
                            fence_owner,
                            fence_generation,
                        ])?;
                        if inserted == 0 {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                };
                if steps.len() == 1 {
                    // One statement is undone on its own when it fails: no savepoint.
                    return match insert_all(c)? {
                        true => Ok(None),
                        false => refused(c, &id).map(Some),
                    };
                }
                let tx = c.savepoint()?;
                if !insert_all(&tx)? {
                    return refused(&tx, &id).map(Some);
                }
                tx.commit().map(|()| None)
            })
            .await?;
        match found {
            None => Ok(()),
            Some(refused) => Err(refused.into_error(run_id)),
        }
    }

    pub(crate) async fn finish_run(
        &self,
        run_id: &str,
        status: RunState,
        finished_at: Option<i64>,
        result: Option<Packed>,
        fence: Option<Fence<'_>>,
    ) -> Result<()> {
        let (result, compressed) = match result {
            Some(p) => (Some(p.bytes), p.compressed),
            None => (None, false),
        };
        let id = run_id.to_owned();
        let fence_owner = fence.map(|f| f.owner.to_owned());
        let fence_generation = fence.map(|f| f.generation);
        let refused = self
            .write("finish_run", move |c| {
                let updated = c
                    .prepare_cached(
                        "UPDATE runs SET status = ?2, finished_at = ?3, result = ?4, result_compressed = ?5
                         WHERE run_id = ?1 AND (?6 IS NULL OR (lease_owner = ?6 AND lease_generation = ?7))",
                    )?
                    .execute(params![
                        id,
                        status.as_str(),
                        finished_at,
                        result,
                        compressed,
                        fence_owner,
                        fence_generation
                    ])?;
                if updated == 0 {
                    return refused(c, &id).map(Some);
                }
                Ok(None)
            })
            .await?;
        match refused {
            None => Ok(()),
            Some(refused) => Err(refused.into_error(run_id)),
        }
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

    pub(crate) async fn run_costs(&self, run_ids: &[String]) -> Result<HashMap<String, f64>> {
        // One JSON array of the ids, unpacked by `json_each`: one statement for any number.
        let ids = serde_json::json!(run_ids).to_string();
        let query = sqlx::query_as(
            "SELECT run_id, SUM(cost) FROM steps
             WHERE run_id IN (SELECT value FROM json_each(?1)) AND cost IS NOT NULL
             GROUP BY run_id",
        )
        .bind(ids);
        let rows: Vec<(String, f64)> =
            read!(self, query, fetch_all).map_err(self.error("run_costs"))?;
        Ok(rows.into_iter().collect())
    }

    pub(crate) async fn list_runs(
        &self,
        status: Option<RunState>,
        pipeline_id: Option<&str>,
        limit: u32,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<StoredRun>> {
        // SQLite: a negative LIMIT means none.
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let status = status.map(RunState::as_str);
        let query = match (status, pipeline_id) {
            (None, None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE TRUE AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND run_id < ?5)) ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (Some(_), None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = ?2 AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND run_id < ?5)) ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (None, Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE pipeline_id = ?3 AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND run_id < ?5)) ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
            (Some(_), Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = ?2 AND pipeline_id = ?3 AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND run_id < ?5)) ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            )),
        };
        let query = query
            .bind(limit)
            .bind(status)
            .bind(pipeline_id)
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id));
        let rows: Vec<RunTuple> = read!(self, query, fetch_all).map_err(self.error("list_runs"))?;
        Ok(rows.into_iter().map(stored_run).collect())
    }

    pub(crate) async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        lease: Duration,
        replace: Option<&str>,
    ) -> Result<RawClaim> {
        let now = now_micros();
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let id = run_id.to_owned();
        let owner = owner.to_owned();
        let replace = replace.map(str::to_owned);
        // The writer's batch began with BEGIN IMMEDIATE, which takes the write lock first, so
        // the check and the update see the same lease even with other processes on the file. `None`: no such run.
        let claimed = self
            .write("claim", move |c| {
                let tx = c.savepoint()?;
                let found: Option<(Option<String>, Option<i64>, i64)> = tx
                    .prepare_cached(
                        "SELECT lease_owner, lease_expires_at, lease_generation FROM runs WHERE run_id = ?1",
                    )?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let Some((holder, expires, generation)) = found else {
                    return Ok(None);
                };
                let free = match holder.as_deref() {
                    None => true,
                    Some(h) => {
                        h == owner
                            || expires.is_none_or(|e| e <= now)
                            || replace.as_deref() == Some(h)
                    }
                };
                if !free {
                    return Ok(Some(RawClaim::Refused(holder.unwrap_or_default())));
                }
                let generation = if holder.as_deref() == Some(owner.as_str()) {
                    generation
                } else {
                    generation + 1
                };
                tx.prepare_cached(
                    "UPDATE runs SET lease_owner = ?2, lease_expires_at = ?3, lease_generation = ?4
                     WHERE run_id = ?1",
                )?
                .execute(params![id, owner, until, generation])?;
                tx.commit()?;
                Ok(Some(RawClaim::Held(generation)))
            })
            .await?;
        claimed.ok_or_else(|| Error::RunNotFound {
            run_id: run_id.to_owned(),
        })
    }

    pub(crate) async fn renew(
        &self,
        run_id: &str,
        fence: Fence<'_>,
        lease: Duration,
    ) -> Result<()> {
        let now = now_micros();
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let id = run_id.to_owned();
        let owner = fence.owner.to_owned();
        let generation = fence.generation;
        let refused = self
            .write("renew", move |c| {
                let renewed = c
                    .prepare_cached(
                        "UPDATE runs SET lease_expires_at = ?4
                         WHERE run_id = ?1 AND lease_owner = ?2 AND lease_generation = ?3",
                    )?
                    .execute(params![id, owner, generation, until])?;
                if renewed == 0 {
                    return refused(c, &id).map(Some);
                }
                Ok(None)
            })
            .await?;
        match refused {
            None => Ok(()),
            Some(refused) => Err(refused.into_error(run_id)),
        }
    }

    pub(crate) async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        let id = run_id.to_owned();
        let owner = owner.to_owned();
        self.write("release", move |c| {
            c.prepare_cached(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
                 WHERE run_id = ?1 AND lease_owner = ?2",
            )?
            .execute(params![id, owner])
        })
        .await?;
        Ok(())
    }

    pub(crate) async fn prune(&self, older_than: i64) -> Result<u64> {
        let now = now_micros();
        // Checkpoints go with their runs (ON DELETE CASCADE).
        let deleted = self
            .write("prune", move |c| {
                c.prepare_cached(
                    "DELETE FROM runs WHERE started_at < ?1
                       AND (lease_owner IS NULL OR lease_expires_at <= ?2)",
                )?
                .execute(params![older_than, now])
            })
            .await?;
        Ok(deleted as u64)
    }

    pub(crate) async fn record_model_metrics(&self, metrics: &[MetricRecord]) -> Result<()> {
        let rollup = Rollup::of(metrics);
        let metrics = metrics.to_vec();
        self.write("record_model_metrics", move |c| {
            // The rows and what they add to the sums together, or neither.
            let tx = c.savepoint()?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO model_metrics (model, provider, at, latency_ms, success, input_tokens, output_tokens, cost,
                                            source, cache_hit, error_kind, run_id, pipeline_id, latency_bucket)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for m in &metrics {
                insert.execute(params![
                    m.model,
                    m.provider,
                    m.at,
                    m.latency_ms,
                    m.success,
                    m.input_tokens,
                    m.output_tokens,
                    m.cost,
                    m.source,
                    m.cache_hit,
                    m.error_kind,
                    m.run_id,
                    m.pipeline_id,
                    latency::bucket(m.latency_ms)
                ])?;
            }
            drop(insert);
            add_rollup(&tx, &rollup)?;
            tx.commit()
        })
        .await
    }

    pub(crate) async fn record_cache_lookups(&self, lookups: &[LookupRecord]) -> Result<()> {
        let lookups = lookups.to_vec();
        self.write("record_cache_lookups", move |c| {
            let tx = c.savepoint()?;
            let mut add = tx.prepare_cached(
                "INSERT INTO cache_minutes (minute, cache, hits, misses) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET hits = hits + excluded.hits,
                     misses = misses + excluded.misses",
            )?;
            for l in &lookups {
                add.execute(params![l.minute, l.cache, l.hits, l.misses])?;
            }
            drop(add);
            tx.commit()
        })
        .await
    }

    /// Each cache's lookups of the minutes `[lo, hi)`, summed (one record per cache).
    pub(crate) async fn cache_totals(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let query = sqlx::query_as(
            "SELECT cache, sum(hits), sum(misses) FROM cache_minutes
             WHERE minute >= ?1 AND minute < ?2 GROUP BY cache",
        )
        .bind(lo)
        .bind(hi);
        let rows: Vec<LookupTotals> =
            read!(self, query, fetch_all).map_err(self.error("cache_totals"))?;
        Ok(lookup_totals(rows, lo))
    }

    pub(crate) async fn cache_lookups(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let query = sqlx::query_as(
            "SELECT cache, group_concat(minute || ':' || hits || ':' || misses, ',')
             FROM cache_minutes WHERE minute >= ?1 AND minute < ?2 GROUP BY cache",
        )
        .bind(lo)
        .bind(hi);
        let rows: Vec<PackedLookups> =
            read!(self, query, fetch_all).map_err(self.error("cache_lookups"))?;
        unpack_lookups(rows, &self.url)
    }

    pub(crate) async fn model_metrics(
        &self,
        model: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<MetricRecord>> {
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let query = sqlx::query_as(
            "SELECT model, provider, at, latency_ms, success, input_tokens, output_tokens, cost,
                    source, cache_hit, error_kind, run_id, pipeline_id
             FROM model_metrics WHERE model = ?1 AND at >= ?2 AND source = 'upstream'
             ORDER BY at DESC, id DESC LIMIT ?3",
        )
        .bind(model)
        .bind(since)
        .bind(limit);
        let rows: Vec<MetricTuple> =
            read!(self, query, fetch_all).map_err(self.error("model_metrics"))?;
        Ok(rows.into_iter().map(metric_record).collect())
    }

    pub(crate) async fn request_stats(&self, since: i64, until: i64) -> Result<StoredStats> {
        let hours = rollup::split(since, until, HOUR);
        let mut groups = Vec::new();
        if let Some((lo, hi)) = hours.whole {
            let query = sqlx::query_as(
                "SELECT model, provider, pipeline_id, cache_hit, error_kind, success, requests,
                        cost, latency_ms, input_tokens, output_tokens, latency_hist
                 FROM request_hours WHERE hour >= ?1 AND hour < ?2",
            )
            .bind(lo)
            .bind(hi);
            let rows: Vec<HourTuple> =
                read!(self, query, fetch_all).map_err(self.error("request_stats"))?;
            for row in rows {
                groups.push(hour_group(row).map_err(|e| rollup::corrupt(&self.url, e))?);
            }
        }
        for &(a, b) in &hours.edges {
            let query = sqlx::query_as(
                "SELECT model, provider, pipeline_id, cache_hit, error_kind, success, latency_bucket,
                        count(*), total(cost), total(latency_ms), sum(input_tokens), sum(output_tokens)
                 FROM model_metrics WHERE at >= ?1 AND at < ?2
                 GROUP BY model, provider, pipeline_id, cache_hit, error_kind, success, latency_bucket",
            )
            .bind(a)
            .bind(b);
            let rows: Vec<GroupTuple> =
                read!(self, query, fetch_all).map_err(self.error("request_stats"))?;
            groups.extend(rows.into_iter().map(metric_group));
        }
        let minutes = rollup::split(since, until, MINUTE);
        let mut peak_minute = None;
        if let Some((lo, hi)) = minutes.whole {
            let query = sqlx::query_as(
                "SELECT minute, requests FROM request_minutes WHERE minute >= ?1 AND minute < ?2
                 ORDER BY requests DESC, minute LIMIT 1",
            )
            .bind(lo)
            .bind(hi);
            let peak = read!(self, query, fetch_optional).map_err(self.error("request_stats"))?;
            peak_minute = busier(peak_minute, peak);
        }
        for &(a, b) in &minutes.edges {
            let query = sqlx::query_as(
                "SELECT at / 60000000 AS minute, count(*) AS n FROM model_metrics
                 WHERE at >= ?1 AND at < ?2 GROUP BY minute ORDER BY n DESC, minute LIMIT 1",
            )
            .bind(a)
            .bind(b);
            let peak = read!(self, query, fetch_optional).map_err(self.error("request_stats"))?;
            peak_minute = busier(peak_minute, peak);
        }
        // The runs of the whole hours and of the edges' rows, each once.
        let (lo, hi) = hours.whole.unwrap_or((0, 0));
        let edge = |i: usize| hours.edges.get(i).copied().unwrap_or((0, 0));
        let distinct = sqlx::query_as(
            "SELECT count(*) FROM (
                 SELECT run_id FROM request_runs WHERE hour >= ?1 AND hour < ?2
                 UNION SELECT run_id FROM model_metrics WHERE at >= ?3 AND at < ?4 AND run_id IS NOT NULL
                 UNION SELECT run_id FROM model_metrics WHERE at >= ?5 AND at < ?6 AND run_id IS NOT NULL)",
        )
        .bind(lo)
        .bind(hi)
        .bind(edge(0).0)
        .bind(edge(0).1)
        .bind(edge(1).0)
        .bind(edge(1).1);
        let (runs_with_requests,): (i64,) =
            read!(self, distinct, fetch_one).map_err(self.error("request_stats"))?;
        let runs = sqlx::query_as(
            "SELECT pipeline_id, status, count(*) FROM runs
             WHERE started_at >= ?1 AND started_at < ?2 GROUP BY pipeline_id, status",
        )
        .bind(since)
        .bind(until);
        let runs: Vec<(String, String, i64)> =
            read!(self, runs, fetch_all).map_err(self.error("request_stats"))?;
        Ok(stored_stats(groups, peak_minute, runs_with_requests, runs))
    }

    pub(crate) async fn request_series(
        &self,
        since: i64,
        until: i64,
        step: i64,
    ) -> Result<Vec<SlotGroup>> {
        // Whole minutes from their sums when each falls in one step; the rest from the rows.
        let minutes = rollup::series_split(since, until, step);
        let mut groups = Vec::new();
        if let Some((lo, hi)) = minutes.whole {
            let query = sqlx::query_as(
                "SELECT minute, requests, errors, cache_hits, cache_misses, cost, latency_hist
                 FROM request_minutes WHERE minute >= ?1 AND minute < ?2",
            )
            .bind(lo)
            .bind(hi);
            let rows: Vec<MinuteTuple> =
                read!(self, query, fetch_all).map_err(self.error("request_series"))?;
            for row in rows {
                groups.push(
                    minute_group(row, since, step).map_err(|e| rollup::corrupt(&self.url, e))?,
                );
            }
        }
        for &(a, b) in &minutes.edges {
            let query = sqlx::query_as(
                "SELECT (at - ?3) / ?4 AS slot, cache_hit, success, latency_bucket, count(*), total(cost)
                 FROM model_metrics WHERE at >= ?1 AND at < ?2
                 GROUP BY slot, cache_hit, success, latency_bucket",
            )
            .bind(a)
            .bind(b)
            .bind(since)
            .bind(step);
            let rows: Vec<SlotTuple> =
                read!(self, query, fetch_all).map_err(self.error("request_series"))?;
            groups.extend(rows.into_iter().map(slot_group));
        }
        Ok(groups)
    }

    pub(crate) async fn put_pipeline(&self, p: NewPipelineRecord<'_>) -> Result<StoredPipeline> {
        let id = p.id.to_owned();
        let pipeline_id = p.pipeline_id.to_owned();
        let name = p.name.map(str::to_owned);
        let description = p.description.map(str::to_owned);
        let hash = p.hash.to_owned();
        let (steps, now, text) = (p.steps, p.now, p.text);
        self.write("put_pipeline", move |c| {
            c.prepare_cached(PUT_PIPELINE)?.query_row(
                params![
                    id,
                    pipeline_id,
                    name,
                    description,
                    hash,
                    steps,
                    now,
                    text.compressed,
                    text.bytes
                ],
                |r| {
                    Ok(StoredPipeline {
                        id: r.get(0)?,
                        pipeline_id: r.get(1)?,
                        name: r.get(2)?,
                        description: r.get(3)?,
                        hash: r.get(4)?,
                        steps: r.get(5)?,
                        version: r.get(6)?,
                        created_at: r.get(7)?,
                        updated_at: r.get(8)?,
                    })
                },
            )
        })
        .await
    }

    pub(crate) async fn pipeline(&self, id: &str) -> Result<Option<(StoredPipeline, Packed)>> {
        let query = sqlx::query_as(concat!(
            "SELECT ",
            pipeline_columns!(),
            ", text_compressed, text FROM pipeline_registry WHERE id = ?1"
        ))
        .bind(id);
        let row: Option<PipelineTextTuple> =
            read!(self, query, fetch_optional).map_err(self.error("pipeline"))?;
        Ok(row.map(stored_pipeline_text))
    }

    pub(crate) async fn list_pipelines(&self, limit: u32) -> Result<Vec<StoredPipeline>> {
        // SQLite: a negative LIMIT means none.
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let query = sqlx::query_as(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipeline_registry ORDER BY id LIMIT ?1"
        ))
        .bind(limit);
        let rows: Vec<PipelineTuple> =
            read!(self, query, fetch_all).map_err(self.error("list_pipelines"))?;
        Ok(rows.into_iter().map(stored_pipeline).collect())
    }

    pub(crate) async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let deleted = self
            .write("delete_pipeline", move |c| {
                c.prepare_cached("DELETE FROM pipeline_registry WHERE id = ?1")?
                    .execute([id])
            })
            .await?;
        Ok(deleted > 0)
    }
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

/// A pool of one read-write connection, to migrate with. Switching a new file to WAL takes a lock
/// that SQLite's busy timeout does not wait for, so when several processes open a new file at once
/// the losers are told "locked" at once; they try again until the timeout.
async fn connect_setup(
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

/// The writer connection, opened after migrating: the settings the sqlx connections get (WAL is
/// the file's own, set when sqlx first opened it). `name` is the file, or the in-memory
/// database's shared-cache name when `memory`.
fn open_writer(
    name: &Path,
    memory: bool,
    timeout: Duration,
) -> rusqlite::Result<rusqlite::Connection> {
    // As sqlx opens it: a `file:` name is a URI; the connection is only ever used under a lock.
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if memory {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let c = rusqlite::Connection::open_with_flags(name, flags)?;
    c.busy_timeout(timeout)?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    // A write of several statements runs under a savepoint inside the batch's transaction; the
    // savepoint's journal is kept in memory, not in a temporary file.
    c.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(c)
}

/// An error while opening the file or reading its schema.
fn open_error(url: &str, e: sqlx::Error) -> Error {
    let message = match &e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        e => describe(e),
    };
    open_failure(url, sqlite_primary(&e), message)
}

/// [`open_error`] for the rusqlite writer connection.
fn writer_open_error(url: &str, e: rusqlite::Error) -> Error {
    let message = match &e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        e => e.to_string(),
    };
    open_failure(url, rusqlite_primary(&e), message)
}

/// An error while opening, by SQLite's primary result code.
fn open_failure(url: &str, primary: Option<i32>, message: String) -> Error {
    match primary {
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
