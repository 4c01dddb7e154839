//! The PostgreSQL backend: a connection pool whose connections set `statement_timeout` and, for a
//! namespace, `search_path`. Every write is one statement (an append is one
//! `WITH … UPDATE … RETURNING` + `INSERT … SELECT FROM UNNEST(…)`), so it commits whole or not at
//! all and needs one round trip.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::codec::{Packed, millis};
use crate::latency;
use crate::records::{
    Fence, LookupRecord, MetricRecord, NewPipelineRecord, NewRunRecord, NewStep, RawClaim,
    SlotGroup, StoredPipeline, StoredRun, StoredStats, StoredStep,
};
use crate::rollup::{self, HOUR, MINUTE, Rollup, busier};
use crate::sql::{Dialect, MIGRATIONS_TABLE, db_code, describe, migrate_error, query_error};
use crate::sql::{
    GroupTuple, HourTuple, LookupTotals, MetricTuple, MinuteTuple, PackedLookups,
    PipelineTextTuple, PipelineTuple, SlotTuple, hour_group, lookup_totals, metric_group,
    metric_record, minute_group, slot_group, stored_pipeline, stored_pipeline_text, stored_stats,
    unpack_lookups,
};
use crate::url::scrub;

mod rollups;

use crate::{Error, Result, RunState, StateOptions};
use rollups::add_rollup;

/// The newest schema version this binary knows.
pub(crate) const LATEST: i64 = 8;

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
        Migration::new(
            8,
            "dispatched steps".into(),
            MigrationType::Simple,
            include_str!("migrations/0008_dispatched_steps.sql").into_sql_str(),
            false,
        ),
    ]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Microseconds since the Unix epoch of a `timestamptz` column, exactly (PostgreSQL 14 and later
/// extract a numeric).
macro_rules! us {
    ($column:literal) => {
        concat!("(extract(epoch FROM ", $column, ") * 1000000)::int8")
    };
}

/// The `timestamptz` of a parameter holding microseconds since the Unix epoch (NULL stays NULL).
macro_rules! ts {
    ($param:literal) => {
        concat!(
            "(timestamptz 'epoch' + ",
            $param,
            "::int8 * interval '1 microsecond')"
        )
    };
}

/// The keyset condition of a page of runs: after the run `($4, $5)` (start, id) in the list's
/// order, or every run when `$4` is NULL.
macro_rules! after {
    () => {
        concat!(
            "($4::int8 IS NULL OR started_at < ",
            ts!("$4"),
            " OR (started_at = ",
            ts!("$4"),
            " AND run_id COLLATE \"C\" < $5::text))"
        )
    };
}

/// `at` within `[$1, $2)` (microseconds since the Unix epoch): a range scan of `model_metrics_at`.
macro_rules! period {
    () => {
        concat!("at >= ", ts!("$1"), " AND at < ", ts!("$2"))
    };
}

/// The columns of a run row, in [`StoredRun`]'s order.
macro_rules! run_columns {
    () => {
        concat!(
            "run_id, pipeline_id, pipeline_path, pipeline_hash, inputs::text, status, ",
            us!("started_at"),
            ", ",
            us!("finished_at"),
            ", steps_done, COALESCE(lease_owner IS NOT NULL AND lease_expires_at > now(), false)"
        )
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
        concat!(
            "id, pipeline_id, name, description, hash, steps, version, ",
            us!("created_at"),
            ", ",
            us!("updated_at")
        )
    };
}

/// A PostgreSQL database (one schema of it).
pub(crate) struct PgStore {
    pool: PgPool,
    /// The URL for messages, password redacted.
    url: String,
    /// The URL as given, to scrub its password from messages.
    raw_url: String,
}

impl PgStore {
    /// Connects, creates the namespace's schema when missing, and migrates.
    pub(crate) async fn open(raw_url: &str, url: String, options: &StateOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(raw_url).map_err(|e| Error::InvalidUrl {
            url: url.clone(),
            reason: scrub(e.to_string(), raw_url),
        })?;
        let mut settings = vec![(
            "statement_timeout",
            millis(options.query_timeout).to_string(),
        )];
        if let Some(schema) = &options.namespace {
            // Validated by Store::open: lower-case letters, digits and `_`.
            settings.push(("search_path", schema.clone()));
        }
        let connect = match connect.get_application_name() {
            Some(_) => connect,
            None => connect.application_name("orc"),
        };
        let connect = connect.options(settings);
        let where_ = format!("{}:{}", connect.get_host(), connect.get_port());
        // The pool retries a refused connection until `acquire_timeout`; one direct attempt
        // first makes a server that is down, a wrong password or a missing database an error
        // at once.
        let probe = tokio::time::timeout(
            options.query_timeout,
            <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&connect),
        )
        .await;
        match probe {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(e)) => return Err(connect_error(&url, raw_url, &where_, e)),
            // A slow server: let the pool wait for it under the same limit.
            Err(_) => {}
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(options.query_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| connect_error(&url, raw_url, &where_, e))?;
        let store = PgStore {
            pool,
            url,
            raw_url: raw_url.to_owned(),
        };
        if let Some(schema) = &options.namespace {
            store.create_schema(schema).await?;
        }
        store.migrate().await?;
        Ok(store)
    }

    /// Creates `schema` unless it exists (checked first: creating needs a right that using does not).
    async fn create_schema(&self, schema: &str) -> Result<()> {
        let (exists,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.open_error(e))?;
        if !exists {
            let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&self.pool)
            .await;
            // Two processes creating it at once: IF NOT EXISTS does not stop the second from
            // failing on the catalog's unique index; the schema is there all the same.
            if let Err(e) = created
                && !matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation())
            {
                return Err(self.open_error(e));
            }
        }
        Ok(())
    }

    /// Refuses a newer schema, then applies the migrations the database lacks.
    async fn migrate(&self) -> Result<()> {
        let found = self.schema_version().await?;
        if found > LATEST {
            return Err(Error::SchemaTooNew {
                url: self.url.clone(),
                found,
                supported: LATEST,
            });
        }
        if found == LATEST {
            return Ok(());
        }
        // sqlx holds an advisory lock while it migrates, so concurrent opens take turns.
        migrator()
            .run(&self.pool)
            .await
            .map_err(|e| migrate_error(&self.url, &self.raw_url, e))
    }

    /// The newest migration applied; 0 for a database without orc's tables.
    async fn schema_version(&self) -> Result<i64> {
        let (table,): (Option<String>,) =
            sqlx::query_as("SELECT to_regclass('orc_schema_migrations')::text")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.open_error(e))?;
        if table.is_none() {
            return Ok(0);
        }
        let (version,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM orc_schema_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.open_error(e))?;
        Ok(version.unwrap_or(0))
    }

    fn open_error(&self, e: sqlx::Error) -> Error {
        connect_error(&self.url, &self.raw_url, "the server", e)
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |e| query_error(&self.url, &self.raw_url, operation, e, Dialect::Postgres)
    }

    /// Why a write under a lease changed nothing: the run is gone, or its lease moved on.
    async fn refused(&self, run_id: &str, operation: &'static str) -> Error {
        let holder: Result<Option<(Option<String>,)>, _> =
            sqlx::query_as("SELECT lease_owner FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await;
        match holder {
            Ok(None) => Error::RunNotFound {
                run_id: run_id.to_owned(),
            },
            Ok(Some((holder,))) => Error::LeaseLost {
                run_id: run_id.to_owned(),
                holder,
            },
            Err(e) => self.error(operation)(e),
        }
    }

    pub(crate) async fn create_run(&self, run: &NewRunRecord<'_>) -> Result<()> {
        // One statement: the pipeline's row and the run's commit together.
        let inserted = sqlx::query(concat!(
            "WITH pipeline AS (
                 INSERT INTO pipelines (pipeline_id, pipeline_path, pipeline_hash, created_at, last_run_at)
                 VALUES ($2, $3, $4, ",
            ts!("$6"),
            ", ",
            ts!("$6"),
            ")
                 ON CONFLICT (pipeline_id) DO UPDATE SET
                     pipeline_path = excluded.pipeline_path,
                     pipeline_hash = excluded.pipeline_hash,
                     last_run_at = greatest(pipelines.last_run_at, excluded.last_run_at)
                 RETURNING pipeline_id
             )
             INSERT INTO runs (run_id, pipeline_id, pipeline_path, pipeline_hash, inputs, status, started_at)
             SELECT $1, pipeline.pipeline_id, $3, $4, $5::json, 'running', ",
            ts!("$6"),
            " FROM pipeline"
        ))
        .bind(run.run_id)
        .bind(run.pipeline_id)
        .bind(run.pipeline_path)
        .bind(run.pipeline_hash)
        .bind(&run.inputs)
        .bind(run.started_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(Error::RunExists {
                run_id: run.run_id.to_owned(),
            }),
            Err(e) => Err(self.error("create_run")(e)),
        }
    }

    pub(crate) async fn append(
        &self,
        run_id: &str,
        steps: Vec<NewStep<'_>>,
        fence: Option<Fence<'_>>,
    ) -> Result<()> {
        let n = steps.len() as u64;
        let mut step_ids = Vec::with_capacity(steps.len());
        let mut statuses = Vec::with_capacity(steps.len());
        let mut started = Vec::with_capacity(steps.len());
        let mut completed = Vec::with_capacity(steps.len());
        let mut attempts = Vec::with_capacity(steps.len());
        let mut models = Vec::with_capacity(steps.len());
        let mut usages = Vec::with_capacity(steps.len());
        let mut costs = Vec::with_capacity(steps.len());
        let mut compressed = Vec::with_capacity(steps.len());
        let mut payloads = Vec::with_capacity(steps.len());
        for step in steps {
            step_ids.push(step.step_id);
            statuses.push(step.status);
            started.push(step.started_at);
            completed.push(step.completed_at);
            attempts.push(step.attempts);
            models.push(step.model);
            usages.push(step.usage);
            costs.push(step.cost);
            compressed.push(step.compressed);
            payloads.push(step.payload);
        }
        // The UPDATE locks the run's row until commit, so concurrent appends to one run take
        // turns and get distinct positions; a missing run inserts nothing.
        let inserted = sqlx::query(concat!(
            "WITH bumped AS (
                 UPDATE runs SET steps_done = steps_done + cardinality($2::text[])
                 WHERE run_id = $1
                   AND ($12::text IS NULL OR (lease_owner = $12 AND lease_generation = $13))
                 RETURNING steps_done - cardinality($2::text[]) AS base
             )
             INSERT INTO steps (run_id, seq, step_id, status, started_at, completed_at, attempts, model, usage, cost, compressed, payload)
             SELECT $1, bumped.base + s.ord - 1, s.step_id, s.status, ",
            ts!("s.started_us"),
            ", ",
            ts!("s.completed_us"),
            ", s.attempts, s.model, s.usage::json, s.cost, s.compressed, s.payload
             FROM bumped, UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::float8[], $10::bool[], $11::bytea[])
                 WITH ORDINALITY AS s(step_id, status, started_us, completed_us, attempts, model, usage, cost, compressed, payload, ord)"
        ))
        .bind(run_id)
        .bind(step_ids)
        .bind(statuses)
        .bind(started)
        .bind(completed)
        .bind(attempts)
        .bind(models)
        .bind(usages)
        .bind(costs)
        .bind(compressed)
        .bind(payloads)
        .bind(fence.map(|f| f.owner))
        .bind(fence.map(|f| f.generation))
        .execute(&self.pool)
        .await
        .map_err(self.error("append"))?;
        if inserted.rows_affected() != n {
            return Err(self.refused(run_id, "append").await);
        }
        Ok(())
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
        let updated = sqlx::query(concat!(
            "UPDATE runs SET status = $2, finished_at = ",
            ts!("$3"),
            ", result = $4, result_compressed = $5
             WHERE run_id = $1 AND ($6::text IS NULL OR (lease_owner = $6 AND lease_generation = $7))"
        ))
        .bind(run_id)
        .bind(status.as_str())
        .bind(finished_at)
        .bind(result)
        .bind(compressed)
        .bind(fence.map(|f| f.owner))
        .bind(fence.map(|f| f.generation))
        .execute(&self.pool)
        .await
        .map_err(self.error("finish_run"))?;
        if updated.rows_affected() == 0 {
            return Err(self.refused(run_id, "finish_run").await);
        }
        Ok(())
    }

    pub(crate) async fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
        let row: Option<RunTuple> = sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE run_id = $1"
        ))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.error("run"))?;
        Ok(row.map(stored_run))
    }

    pub(crate) async fn result_document(&self, run_id: &str) -> Result<Option<Packed>> {
        let row: Option<(Option<Vec<u8>>, bool)> =
            sqlx::query_as("SELECT result, result_compressed FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.error("result_document"))?;
        Ok(row.and_then(|(bytes, compressed)| bytes.map(|bytes| Packed { bytes, compressed })))
    }

    pub(crate) async fn checkpoints(&self, run_id: &str) -> Result<Vec<StoredStep>> {
        type StepTuple = (
            i64,
            String,
            String,
            Option<i64>,
            Option<i64>,
            i32,
            Option<String>,
            Option<String>,
            Option<f64>,
            bool,
            Vec<u8>,
        );
        let rows: Vec<StepTuple> = sqlx::query_as(concat!(
            "SELECT seq, step_id, status, ",
            us!("started_at"),
            ", ",
            us!("completed_at"),
            ", attempts, model, usage::text, cost, compressed, payload
             FROM steps WHERE run_id = $1 ORDER BY seq"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("checkpoints"))?;
        Ok(rows
            .into_iter()
            .map(|t| StoredStep {
                seq: t.0,
                step_id: t.1,
                status: t.2,
                started_at: t.3,
                completed_at: t.4,
                attempts: i64::from(t.5),
                model: t.6,
                usage: t.7,
                cost: t.8,
                compressed: t.9,
                payload: t.10,
            })
            .collect())
    }

    pub(crate) async fn run_costs(&self, run_ids: &[String]) -> Result<HashMap<String, f64>> {
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT run_id, SUM(cost) FROM steps
             WHERE run_id = ANY($1) AND cost IS NOT NULL
             GROUP BY run_id",
        )
        .bind(run_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("run_costs"))?;
        Ok(rows.into_iter().collect())
    }

    pub(crate) async fn list_runs(
        &self,
        status: Option<RunState>,
        pipeline_id: Option<&str>,
        limit: u32,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<StoredRun>> {
        // LIMIT NULL means none.
        let limit = (limit != 0).then_some(i64::from(limit));
        let status = status.map(RunState::as_str);
        let query = match (status, pipeline_id) {
            (None, None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE $2::text IS NULL AND $3::text IS NULL AND ",
                after!(),
                " ORDER BY started_at DESC, run_id COLLATE \"C\" DESC LIMIT $1"
            )),
            (Some(_), None) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = $2 AND $3::text IS NULL AND ",
                after!(),
                " ORDER BY started_at DESC, run_id COLLATE \"C\" DESC LIMIT $1"
            )),
            (None, Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE $2::text IS NULL AND pipeline_id = $3 AND ",
                after!(),
                " ORDER BY started_at DESC, run_id COLLATE \"C\" DESC LIMIT $1"
            )),
            (Some(_), Some(_)) => sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE status = $2 AND pipeline_id = $3 AND ",
                after!(),
                " ORDER BY started_at DESC, run_id COLLATE \"C\" DESC LIMIT $1"
            )),
        };
        let rows: Vec<RunTuple> = query
            .bind(limit)
            .bind(status)
            .bind(pipeline_id)
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id))
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("list_runs"))?;
        Ok(rows.into_iter().map(stored_run).collect())
    }

    pub(crate) async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        lease: Duration,
        replace: Option<&str>,
    ) -> Result<RawClaim> {
        // One UPDATE: the row lock makes concurrent claimers take turns, and each re-checks the
        // lease after the one before it committed, so only one of them can win. The generation
        // goes up when the owner changes.
        let claimed: Option<(i64,)> = sqlx::query_as(
            "UPDATE runs SET lease_owner = $2,
                 lease_expires_at = now() + $3 * interval '1 millisecond',
                 lease_generation = CASE WHEN lease_owner IS NOT DISTINCT FROM $2
                     THEN lease_generation ELSE lease_generation + 1 END
             WHERE run_id = $1
               AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at <= now()
                    OR lease_owner = $4)
             RETURNING lease_generation",
        )
        .bind(run_id)
        .bind(owner)
        .bind(millis(lease) as f64)
        .bind(replace)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.error("claim"))?;
        if let Some((generation,)) = claimed {
            return Ok(RawClaim::Held(generation));
        }
        let holder: Option<(Option<String>,)> =
            sqlx::query_as("SELECT lease_owner FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.error("claim"))?;
        match holder {
            None => Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            }),
            Some((holder,)) => Ok(RawClaim::Refused(holder.unwrap_or_default())),
        }
    }

    pub(crate) async fn renew(
        &self,
        run_id: &str,
        fence: Fence<'_>,
        lease: Duration,
    ) -> Result<()> {
        let renewed = sqlx::query(
            "UPDATE runs SET lease_expires_at = now() + $4 * interval '1 millisecond'
             WHERE run_id = $1 AND lease_owner = $2 AND lease_generation = $3",
        )
        .bind(run_id)
        .bind(fence.owner)
        .bind(fence.generation)
        .bind(millis(lease) as f64)
        .execute(&self.pool)
        .await
        .map_err(self.error("renew"))?;
        if renewed.rows_affected() == 0 {
            return Err(self.refused(run_id, "renew").await);
        }
        Ok(())
    }

    pub(crate) async fn dispatch_step(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<(u32, Option<String>)> {
        // One statement: a new row is attempt 1; an unfinished one goes to the next attempt (the
        // earlier attempt's worker can no longer store its result); a finished one is left as it
        // is and its outcome handed back.
        let row: Option<(i32, Option<String>)> = sqlx::query_as(
            "INSERT INTO dispatched_steps AS d (run_id, step_id, attempt)
             SELECT $1, $2, 1 WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = $1)
             ON CONFLICT (run_id, step_id) DO UPDATE
                 SET attempt = CASE WHEN d.finished_at IS NULL THEN d.attempt + 1 ELSE d.attempt END,
                     dispatched_at = CASE WHEN d.finished_at IS NULL THEN now() ELSE d.dispatched_at END
             RETURNING attempt, outcome",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.error("dispatch_step"))?;
        let Some((attempt, outcome)) = row else {
            return Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            });
        };
        Ok((u32::try_from(attempt).unwrap_or(1), outcome))
    }

    /// The step's current attempt, with its result when it is finished (`None`: never
    /// dispatched).
    pub(crate) async fn attempt_state(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<Option<(u32, Option<String>)>> {
        let row: Option<(i32, Option<String>)> = sqlx::query_as(
            "SELECT attempt, CASE WHEN finished_at IS NULL THEN NULL ELSE outcome END
             FROM dispatched_steps WHERE run_id = $1 AND step_id = $2",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.error("attempt_state"))?;
        Ok(row.map(|(attempt, outcome)| (u32::try_from(attempt).unwrap_or(0), outcome)))
    }

    pub(crate) async fn finish_dispatched(
        &self,
        run_id: &str,
        step_id: &str,
        attempt: u32,
        outcome: &str,
    ) -> Result<bool> {
        let stored = sqlx::query(
            "UPDATE dispatched_steps SET finished_at = now(), outcome = $4
             WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND finished_at IS NULL",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(i64::from(attempt))
        .bind(outcome)
        .execute(&self.pool)
        .await
        .map_err(self.error("finish_dispatched"))?;
        Ok(stored.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
             WHERE run_id = $1 AND lease_owner = $2",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(self.error("release"))?;
        Ok(())
    }

    pub(crate) async fn prune(&self, older_than: i64) -> Result<u64> {
        // Checkpoints go with their runs (ON DELETE CASCADE).
        let deleted = sqlx::query(concat!(
            "DELETE FROM runs WHERE started_at < ",
            ts!("$1"),
            " AND (lease_owner IS NULL OR lease_expires_at <= now())"
        ))
        .bind(older_than)
        .execute(&self.pool)
        .await
        .map_err(self.error("prune"))?;
        Ok(deleted.rows_affected())
    }

    pub(crate) async fn record_model_metrics(&self, metrics: &[MetricRecord]) -> Result<()> {
        // The rows and what they add to the rollups in one transaction: each statement one
        // round trip, each column as an array, unnested into rows.
        let rollup = Rollup::of(metrics);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.error("record_model_metrics"))?;
        let column = |f: fn(&MetricRecord) -> String| metrics.iter().map(f).collect::<Vec<_>>();
        let optional =
            |f: fn(&MetricRecord) -> Option<String>| metrics.iter().map(f).collect::<Vec<_>>();
        sqlx::query(concat!(
            "INSERT INTO model_metrics (model, provider, at, latency_ms, success, input_tokens, output_tokens, cost,
                                        source, cache_hit, error_kind, run_id, pipeline_id, latency_bucket)
             SELECT m, p, ",
            ts!("a"),
            ", l, s, i, o, c, src, hit, k, r, pl, b
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::float8[], $5::bool[], $6::int8[], $7::int8[], $8::float8[],
                         $9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::int8[])
                  AS t(m, p, a, l, s, i, o, c, src, hit, k, r, pl, b)"
        ))
        .bind(column(|m| m.model.clone()))
        .bind(column(|m| m.provider.clone()))
        .bind(metrics.iter().map(|m| m.at).collect::<Vec<i64>>())
        .bind(metrics.iter().map(|m| m.latency_ms).collect::<Vec<f64>>())
        .bind(metrics.iter().map(|m| m.success).collect::<Vec<bool>>())
        .bind(metrics.iter().map(|m| m.input_tokens).collect::<Vec<i64>>())
        .bind(metrics.iter().map(|m| m.output_tokens).collect::<Vec<i64>>())
        .bind(metrics.iter().map(|m| m.cost).collect::<Vec<f64>>())
        .bind(column(|m| m.source.clone()))
        .bind(metrics.iter().map(|m| m.cache_hit).collect::<Vec<Option<bool>>>())
        .bind(optional(|m| m.error_kind.clone()))
        .bind(optional(|m| m.run_id.clone()))
        .bind(optional(|m| m.pipeline_id.clone()))
        .bind(
            metrics
                .iter()
                .map(|m| latency::bucket(m.latency_ms))
                .collect::<Vec<i64>>(),
        )
        .execute(&mut *tx)
        .await
        .map_err(self.error("record_model_metrics"))?;
        add_rollup(&mut tx, &rollup)
            .await
            .map_err(self.error("record_model_metrics"))?;
        tx.commit()
            .await
            .map_err(self.error("record_model_metrics"))?;
        Ok(())
    }

    pub(crate) async fn record_cache_lookups(&self, lookups: &[LookupRecord]) -> Result<()> {
        // One statement: each column as an array, unnested into rows (one per minute and cache,
        // in order), added to what the rows hold.
        sqlx::query(
            "INSERT INTO cache_minutes (minute, cache, hits, misses)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (minute, cache) DO UPDATE SET hits = cache_minutes.hits + excluded.hits,
                 misses = cache_minutes.misses + excluded.misses",
        )
        .bind(lookups.iter().map(|l| l.minute).collect::<Vec<i64>>())
        .bind(
            lookups
                .iter()
                .map(|l| l.cache.to_string())
                .collect::<Vec<String>>(),
        )
        .bind(lookups.iter().map(|l| l.hits).collect::<Vec<i64>>())
        .bind(lookups.iter().map(|l| l.misses).collect::<Vec<i64>>())
        .execute(&self.pool)
        .await
        .map_err(self.error("record_cache_lookups"))?;
        Ok(())
    }

    /// Each cache's lookups of the minutes `[lo, hi)`, summed (one record per cache).
    pub(crate) async fn cache_totals(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let rows: Vec<LookupTotals> = sqlx::query_as(
            "SELECT cache, sum(hits)::int8, sum(misses)::int8 FROM cache_minutes
             WHERE minute >= $1 AND minute < $2 GROUP BY cache",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("cache_totals"))?;
        Ok(lookup_totals(rows, lo))
    }

    pub(crate) async fn cache_lookups(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let rows: Vec<PackedLookups> = sqlx::query_as(
            "SELECT cache, string_agg(minute::text || ':' || hits::text || ':' || misses::text, ',')
             FROM cache_minutes WHERE minute >= $1 AND minute < $2 GROUP BY cache",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("cache_lookups"))?;
        unpack_lookups(rows, &self.url)
    }

    pub(crate) async fn model_metrics(
        &self,
        model: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<MetricRecord>> {
        let limit = (limit != 0).then_some(i64::from(limit));
        let rows: Vec<MetricTuple> = sqlx::query_as(concat!(
            "SELECT model, provider, ",
            us!("at"),
            ", latency_ms, success, input_tokens, output_tokens, cost,
                source, cache_hit, error_kind, run_id, pipeline_id
             FROM model_metrics WHERE model = $1 AND at >= ",
            ts!("$2"),
            " AND source = 'upstream' ORDER BY at DESC, id DESC LIMIT $3"
        ))
        .bind(model)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("model_metrics"))?;
        Ok(rows.into_iter().map(metric_record).collect())
    }

    pub(crate) async fn request_stats(&self, since: i64, until: i64) -> Result<StoredStats> {
        let hours = rollup::split(since, until, HOUR);
        let mut groups = Vec::new();
        if let Some((lo, hi)) = hours.whole {
            let rows: Vec<HourTuple> = sqlx::query_as(
                "SELECT model, provider, pipeline_id, cache_hit::int8, error_kind, success, requests,
                        cost, latency_ms, input_tokens, output_tokens, latency_hist::text
                 FROM request_hours WHERE hour >= $1 AND hour < $2",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("request_stats"))?;
            for row in rows {
                groups.push(hour_group(row).map_err(|e| rollup::corrupt(&self.url, e))?);
            }
        }
        for &(a, b) in &hours.edges {
            let rows: Vec<GroupTuple> = sqlx::query_as(concat!(
                "SELECT model, provider, pipeline_id, cache_hit, error_kind, success, latency_bucket,
                        count(*), COALESCE(sum(cost), 0)::float8, COALESCE(sum(latency_ms), 0)::float8,
                        COALESCE(sum(input_tokens), 0)::int8, COALESCE(sum(output_tokens), 0)::int8
                 FROM model_metrics WHERE ",
                period!(),
                " GROUP BY model, provider, pipeline_id, cache_hit, error_kind, success, latency_bucket"
            ))
            .bind(a)
            .bind(b)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("request_stats"))?;
            groups.extend(rows.into_iter().map(metric_group));
        }
        let minutes = rollup::split(since, until, MINUTE);
        let mut peak_minute = None;
        if let Some((lo, hi)) = minutes.whole {
            let peak: Option<(i64, i64)> = sqlx::query_as(
                "SELECT minute, requests FROM request_minutes WHERE minute >= $1 AND minute < $2
                 ORDER BY requests DESC, minute LIMIT 1",
            )
            .bind(lo)
            .bind(hi)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.error("request_stats"))?;
            peak_minute = busier(peak_minute, peak);
        }
        for &(a, b) in &minutes.edges {
            let peak: Option<(i64, i64)> = sqlx::query_as(concat!(
                "SELECT ",
                us!("at"),
                " / 60000000 AS minute, count(*) AS n FROM model_metrics WHERE ",
                period!(),
                " GROUP BY minute ORDER BY n DESC, minute LIMIT 1"
            ))
            .bind(a)
            .bind(b)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.error("request_stats"))?;
            peak_minute = busier(peak_minute, peak);
        }
        // The runs of the whole hours and of the edges' rows, each once.
        let (lo, hi) = hours.whole.unwrap_or((0, 0));
        let edge = |i: usize| hours.edges.get(i).copied().unwrap_or((0, 0));
        let (runs_with_requests,): (i64,) = sqlx::query_as(concat!(
            "SELECT count(*) FROM (
                 SELECT run_id FROM request_runs WHERE hour >= $1 AND hour < $2
                 UNION SELECT run_id FROM model_metrics WHERE at >= ",
            ts!("$3"),
            " AND at < ",
            ts!("$4"),
            " AND run_id IS NOT NULL
                 UNION SELECT run_id FROM model_metrics WHERE at >= ",
            ts!("$5"),
            " AND at < ",
            ts!("$6"),
            " AND run_id IS NOT NULL) AS r"
        ))
        .bind(lo)
        .bind(hi)
        .bind(edge(0).0)
        .bind(edge(0).1)
        .bind(edge(1).0)
        .bind(edge(1).1)
        .fetch_one(&self.pool)
        .await
        .map_err(self.error("request_stats"))?;
        let runs: Vec<(String, String, i64)> = sqlx::query_as(concat!(
            "SELECT pipeline_id, status, count(*) FROM runs WHERE started_at >= ",
            ts!("$1"),
            " AND started_at < ",
            ts!("$2"),
            " GROUP BY pipeline_id, status"
        ))
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("request_stats"))?;
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
            let rows: Vec<MinuteTuple> = sqlx::query_as(
                "SELECT minute, requests, errors, cache_hits, cache_misses, cost, latency_hist::text
                 FROM request_minutes WHERE minute >= $1 AND minute < $2",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("request_series"))?;
            for row in rows {
                groups.push(
                    minute_group(row, since, step).map_err(|e| rollup::corrupt(&self.url, e))?,
                );
            }
        }
        for &(a, b) in &minutes.edges {
            let rows: Vec<SlotTuple> = sqlx::query_as(concat!(
                "SELECT (",
                us!("at"),
                " - $3) / $4 AS slot, cache_hit, success, latency_bucket, count(*), COALESCE(sum(cost), 0)::float8
                 FROM model_metrics WHERE ",
                period!(),
                " GROUP BY slot, cache_hit, success, latency_bucket"
            ))
            .bind(a)
            .bind(b)
            .bind(since)
            .bind(step)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("request_series"))?;
            groups.extend(rows.into_iter().map(slot_group));
        }
        Ok(groups)
    }

    pub(crate) async fn put_pipeline(&self, p: NewPipelineRecord<'_>) -> Result<StoredPipeline> {
        // One statement: a new id at version 1; a known one replaced, its version raised and
        // `created_at` kept, when the hash differs; left as it is when the hash is the same (the
        // row lock makes concurrent puts of one id take turns).
        let row: PipelineTuple = sqlx::query_as(concat!(
            "INSERT INTO pipeline_registry AS p
                 (id, pipeline_id, name, description, hash, steps, version, created_at, updated_at, text_compressed, text)
             VALUES ($1, $2, $3, $4, $5, $6, 1, ",
            ts!("$7"),
            ", ",
            ts!("$7"),
            ", $8, $9)
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
        ))
        .bind(p.id)
        .bind(p.pipeline_id)
        .bind(p.name)
        .bind(p.description)
        .bind(p.hash)
        .bind(p.steps)
        .bind(p.now)
        .bind(p.text.compressed)
        .bind(p.text.bytes)
        .fetch_one(&self.pool)
        .await
        .map_err(self.error("put_pipeline"))?;
        Ok(stored_pipeline(row))
    }

    pub(crate) async fn pipeline(&self, id: &str) -> Result<Option<(StoredPipeline, Packed)>> {
        let row: Option<PipelineTextTuple> = sqlx::query_as(concat!(
            "SELECT ",
            pipeline_columns!(),
            ", text_compressed, text FROM pipeline_registry WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.error("pipeline"))?;
        Ok(row.map(stored_pipeline_text))
    }

    pub(crate) async fn list_pipelines(&self, limit: u32) -> Result<Vec<StoredPipeline>> {
        // LIMIT NULL means none. `id` is in the "C" collation: byte order.
        let limit = (limit != 0).then_some(i64::from(limit));
        let rows: Vec<PipelineTuple> = sqlx::query_as(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipeline_registry ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(self.error("list_pipelines"))?;
        Ok(rows.into_iter().map(stored_pipeline).collect())
    }

    pub(crate) async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM pipeline_registry WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.error("delete_pipeline"))?;
        Ok(deleted.rows_affected() > 0)
    }
}

/// An error while connecting or reading the schema, with a hint for the usual causes.
fn connect_error(url: &str, raw_url: &str, server: &str, e: sqlx::Error) -> Error {
    let code = db_code(&e);
    let hint = match (&e, code.as_deref()) {
        (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut, _) => format!(
            "is PostgreSQL running and accepting connections at {server}? Start it (e.g. `pg_ctlcluster <version> main start`) or fix the host and port in the URL"
        ),
        (sqlx::Error::Tls(_), _) => {
            "TLS failed: check `sslmode` and the server's certificate, or use sslmode=disable on a trusted network".to_owned()
        }
        (_, Some("28P01" | "28000")) => {
            "the server refused the login: check the user and password in the URL and pg_hba.conf".to_owned()
        }
        (_, Some("3D000")) => {
            "the database does not exist: create it (`createdb NAME`) or fix the database name in the URL".to_owned()
        }
        (_, Some("42501")) => {
            "the user lacks a permission: grant it CONNECT and CREATE on the database (or use a namespace whose schema it owns)".to_owned()
        }
        (_, Some("53300")) => {
            "the server has no free connection slots: lower performance.database.connection_pool_size or raise max_connections".to_owned()
        }
        _ => "check the URL and the server's log".to_owned(),
    };
    Error::Connect {
        url: url.to_owned(),
        message: scrub(describe(&e), raw_url),
        hint,
    }
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
