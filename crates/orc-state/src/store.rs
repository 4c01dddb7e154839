//! [`Store`]: the one handle callers use, whatever the backend.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::codec::{from_micros, micros, micros_opt, now_micros, pack_all, unpack_async};
use crate::postgres::PgStore;
use crate::records::{
    Fence, LookupRecord, MetricRecord, NewPipelineRecord, NewRunRecord, NewStep, RawClaim,
    StoredPipeline, StoredRun, StoredStep,
};
use crate::redis_store::RedisStore;
use crate::rollup::MINUTE;
use crate::sqlite::{SqliteStore, absolute};
use crate::stats::{self, CacheCounts, CacheLookups, RequestStats, SeriesPoint};
use crate::url::{Target, redact_url, target};
use crate::{
    AttemptState, CallSource, Checkpoint, Claim, Dispatched, Error, Lease, LeaseOwner, ModelMetric,
    NewPipeline, NewRun, Pipeline, PipelineRow, Result, RunFilter, RunRow, RunState, StateOptions,
};

/// Longest namespace accepted.
const MAX_NAMESPACE: usize = 48;

/// Longest registry id accepted, in characters.
const MAX_PIPELINE_ID: usize = 200;

/// The durable state store: runs, their step checkpoints, resume leases and model metrics, in
/// SQLite, PostgreSQL or Redis, chosen by the URL given to [`Store::open`]. Cheap to clone; all
/// clones share one connection pool.
///
/// Every call is bounded by [`StateOptions::query_timeout`]. A call that fails changes nothing
/// (writes are single transactions), except that a write which times out may or may not have
/// been applied.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// The URL, password redacted.
    described: String,
    timeout: Duration,
    compression: bool,
    /// Status answers (`run`, `list_runs`) for a short while, when query caching is on.
    queries: Option<moka::future::Cache<String, Answer>>,
    /// Lookups in `queries` that found an answer, and that found none.
    query_hits: AtomicU64,
    query_misses: AtomicU64,
}

/// A remembered status answer.
#[derive(Clone)]
enum Answer {
    Run(Option<RunRow>),
    Runs(Vec<RunRow>),
}

// One per store, behind the Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
    Redis(RedisStore),
}

/// Calls the same method on whichever backend the store has.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.inner.backend {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
            Backend::Postgres(b) => b.$method($($arg),*).await,
            Backend::Redis(b) => b.$method($($arg),*).await,
        }
    };
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.inner.described).finish()
    }
}

impl Store {
    /// Opens the store `url` names, creating and migrating it as needed:
    ///
    /// - `sqlite:///absolute/path/state.db`, `sqlite://relative/path/state.db` (from the working
    ///   directory), `sqlite:path` or `sqlite::memory:` (private to this handle). The file and its
    ///   directory are created when missing.
    /// - `postgres://user[:password]@host[:port]/database[?sslmode=…]` (or `postgresql://`).
    /// - `redis://[user][:password@]host[:port][/db]`, `rediss://…` (TLS), `redis+unix:///path`.
    ///
    /// Fails with [`Error::SchemaTooNew`] when a newer orc wrote the store, and
    /// [`Error::NotAStateDatabase`] when a SQLite file is damaged or some other program's.
    pub async fn open(url: &str, options: StateOptions) -> Result<Store> {
        let target = target(url)?;
        let described = match &target {
            Target::SqliteFile(path) => format!("sqlite://{}", absolute(path).display()),
            Target::SqliteMemory => "sqlite::memory:".to_owned(),
            Target::Postgres | Target::Redis => redact_url(url),
        };
        check_options(&described, &options)?;
        let backend = match &target {
            Target::SqliteFile(path) => {
                Backend::Sqlite(SqliteStore::open(Some(path), described.clone(), &options).await?)
            }
            Target::SqliteMemory => {
                Backend::Sqlite(SqliteStore::open(None, described.clone(), &options).await?)
            }
            Target::Postgres => {
                Backend::Postgres(PgStore::open(url, described.clone(), &options).await?)
            }
            Target::Redis => {
                Backend::Redis(RedisStore::open(url, described.clone(), &options).await?)
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                described,
                timeout: options.query_timeout,
                compression: options.compression,
                queries: options.query_cache_ttl.map(|ttl| {
                    moka::future::Cache::builder()
                        .max_capacity(1_000)
                        .time_to_live(ttl)
                        .build()
                }),
                query_hits: AtomicU64::new(0),
                query_misses: AtomicU64::new(0),
            }),
        })
    }

    /// The store's URL without its password, e.g. `sqlite:///home/me/.local/share/orc/state.db`
    /// or `postgres://orc:***@db:5432/orc`.
    pub fn describe(&self) -> String {
        self.inner.described.clone()
    }

    /// Records a new run in state [`RunState::Running`] with no checkpoints. Fails with
    /// [`Error::RunExists`] when the id is taken.
    pub async fn create_run(&self, run: &NewRun) -> Result<()> {
        let record = NewRunRecord {
            run_id: &run.run_id,
            pipeline_id: &run.pipeline_id,
            pipeline_path: &run.pipeline_path,
            pipeline_hash: &run.pipeline_hash,
            inputs: run.inputs.to_string(),
            started_at: micros(run.started_at, || {
                format!("started_at of run {}", run.run_id)
            })?,
        };
        let done = self
            .timed("create_run", async { dispatch!(self.create_run(&record)) })
            .await;
        self.forget();
        done
    }

    /// Appends `steps` to the run's checkpoints, in order, as one transaction (group commit):
    /// all of them are stored or none. Each is one new record; nothing already stored is
    /// rewritten. An empty slice writes nothing. Fails with [`Error::RunNotFound`] for an unknown
    /// run.
    pub async fn append(&self, run_id: &str, steps: &[Checkpoint]) -> Result<()> {
        self.append_fenced(run_id, steps, None).await
    }

    /// [`Store::append`] by the holder of `lease`: refused with [`Error::LeaseLost`], nothing
    /// written, when another owner has taken the run over since (or the lease was released), in
    /// the same transaction (script) that would write the checkpoints.
    pub async fn append_leased(&self, lease: &Lease, steps: &[Checkpoint]) -> Result<()> {
        let fence = Fence {
            owner: &lease.owner,
            generation: lease.generation,
        };
        self.append_fenced(&lease.run_id, steps, Some(fence)).await
    }

    async fn append_fenced(
        &self,
        run_id: &str,
        steps: &[Checkpoint],
        fence: Option<Fence<'_>>,
    ) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut payloads = Vec::with_capacity(steps.len());
        for step in steps {
            payloads.push(
                serde_json::to_vec(&step.envelope).map_err(|e| Error::InvalidValue {
                    what: format!("the envelope of step {} of run {run_id}", step.step_id),
                    reason: e.to_string(),
                })?,
            );
        }
        let packed = pack_all(payloads, self.inner.compression).await;
        let mut records = Vec::with_capacity(steps.len());
        for (step, payload) in steps.iter().zip(packed) {
            let what = |field: &str| format!("{field} of step {} of run {run_id}", step.step_id);
            records.push(NewStep {
                step_id: &step.step_id,
                status: &step.status,
                started_at: micros_opt(step.started_at, || what("started_at"))?,
                completed_at: micros_opt(step.completed_at, || what("completed_at"))?,
                attempts: i64::from(step.attempts),
                model: step.model.as_deref(),
                usage: step.usage.as_ref().map(Value::to_string),
                cost: step.cost,
                compressed: payload.compressed,
                payload: payload.bytes,
            });
        }
        let done = self
            .timed("append", async {
                dispatch!(self.append(run_id, records, fence))
            })
            .await;
        self.forget();
        done
    }

    /// Sets the run's status and stores its result document (`None` removes a stored one).
    /// Any state but [`RunState::Running`] sets `finished_at` to now; `Running` clears it, which
    /// is how a resume reopens an interrupted or failed run. Leaves the lease alone. Fails with
    /// [`Error::RunNotFound`] for an unknown run.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunState,
        result: Option<&[u8]>,
    ) -> Result<()> {
        self.finish_fenced(run_id, status, result, None).await
    }

    /// [`Store::finish_run`] by the holder of `lease`: refused with [`Error::LeaseLost`], nothing
    /// changed, when another owner has taken the run over since (or the lease was released).
    pub async fn finish_leased(
        &self,
        lease: &Lease,
        status: RunState,
        result: Option<&[u8]>,
    ) -> Result<()> {
        let fence = Fence {
            owner: &lease.owner,
            generation: lease.generation,
        };
        self.finish_fenced(&lease.run_id, status, result, Some(fence))
            .await
    }

    async fn finish_fenced(
        &self,
        run_id: &str,
        status: RunState,
        result: Option<&[u8]>,
        fence: Option<Fence<'_>>,
    ) -> Result<()> {
        let finished_at = (status != RunState::Running)
            .then(|| micros(SystemTime::now(), || "now".to_owned()))
            .transpose()?;
        let result = match result {
            Some(document) => pack_all(vec![document.to_vec()], self.inner.compression)
                .await
                .pop(),
            None => None,
        };
        let done = self
            .timed("finish_run", async {
                dispatch!(self.finish_run(run_id, status, finished_at, result, fence))
            })
            .await;
        self.forget();
        done
    }

    /// The run, or `None` when there is no such run.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRow>> {
        let key = format!("run\n{run_id}");
        if let Some(Answer::Run(row)) = self.remembered(&key).await {
            return Ok(row);
        }
        let stored = self
            .timed("run", async { dispatch!(self.run(run_id)) })
            .await?;
        let row = stored.map(|s| self.decode_run(s)).transpose()?;
        self.remember(key, Answer::Run(row.clone())).await;
        Ok(row)
    }

    /// The result document [`Store::finish_run`] stored, or `None` when the run has none (or
    /// does not exist).
    pub async fn result_document(&self, run_id: &str) -> Result<Option<Vec<u8>>> {
        let stored = self
            .timed("result_document", async {
                dispatch!(self.result_document(run_id))
            })
            .await?;
        let Some(packed) = stored else {
            return Ok(None);
        };
        unpack_async(packed.bytes, packed.compressed)
            .await
            .map(Some)
            .map_err(|reason| self.corrupt(format!("result document of run {run_id}"), reason))
    }

    /// The run's checkpoints in append order (empty for an unknown run). A step appended twice
    /// (retried after a resume) appears twice; the later one is the current one.
    pub async fn checkpoints(&self, run_id: &str) -> Result<Vec<Checkpoint>> {
        let stored = self
            .timed("checkpoints", async { dispatch!(self.checkpoints(run_id)) })
            .await?;
        let mut out = Vec::with_capacity(stored.len());
        for step in stored {
            out.push(self.decode_step(run_id, step).await?);
        }
        Ok(out)
    }

    /// What each of `run_ids` spent on models, in USD: the sum of its checkpoints' costs (runs
    /// without a priced step are left out). One indexed query for the SQL stores, however many
    /// runs; the runs list shows it beside each run.
    pub async fn run_costs(&self, run_ids: &[String]) -> Result<HashMap<String, f64>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.timed("run_costs", async { dispatch!(self.run_costs(run_ids)) })
            .await
    }

    /// Runs that match `filter`, newest first (by start time, then run id).
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let pipeline_id = filter.pipeline_id.as_deref();
        let after = match &filter.after {
            Some(c) => Some((
                micros(c.started_at, || "the cursor's start time".to_owned())?,
                c.run_id.as_str(),
            )),
            None => None,
        };
        let key = format!(
            "list\n{:?}\n{:?}\n{}\n{:?}",
            filter.status, filter.pipeline_id, filter.limit, after
        );
        if let Some(Answer::Runs(rows)) = self.remembered(&key).await {
            return Ok(rows);
        }
        let stored = self
            .timed("list_runs", async {
                dispatch!(self.list_runs(filter.status, pipeline_id, filter.limit, after))
            })
            .await?;
        let rows: Vec<RunRow> = stored
            .into_iter()
            .map(|s| self.decode_run(s))
            .collect::<Result<_>>()?;
        self.remember(key, Answer::Runs(rows.clone())).await;
        Ok(rows)
    }

    /// A status query's answer from the query cache, when it has one.
    async fn remembered(&self, key: &str) -> Option<Answer> {
        let answer = self.inner.queries.as_ref()?.get(key).await;
        let counter = match answer {
            Some(_) => &self.inner.query_hits,
            None => &self.inner.query_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// The status-query cache's lookups by this handle and its clones since it was opened;
    /// `None` when query caching is off.
    pub fn query_cache_counts(&self) -> Option<CacheCounts> {
        self.inner.queries.as_ref().map(|_| CacheCounts {
            hits: self.inner.query_hits.load(Ordering::Relaxed),
            misses: self.inner.query_misses.load(Ordering::Relaxed),
        })
    }

    async fn remember(&self, key: String, answer: Answer) {
        if let Some(queries) = &self.inner.queries {
            queries.insert(key, answer).await;
        }
    }

    /// Drops every remembered status answer: this process just changed the runs.
    fn forget(&self) {
        if let Some(queries) = &self.inner.queries {
            queries.invalidate_all();
        }
    }

    /// Takes (or renews) the run's lease for `owner` until `lease` from now, so that no other
    /// process resumes it meanwhile. [`Claim::Held`] when `owner` now holds it: nobody held it,
    /// the lease had expired, `owner` already held it, or its holder is provably dead (an orc
    /// [`LeaseOwner`] on this host, boot and pid namespace whose process is gone or is another
    /// process now: taken over at once, without waiting for the lease to lapse).
    /// [`Claim::Refused`] when another owner holds an unexpired lease. Each change of owner
    /// raises the lease's generation, which fences the writes of the owner before. Fails with
    /// [`Error::RunNotFound`] for an unknown run. Expiry is judged by the server's clock
    /// (PostgreSQL, Redis) or this machine's (SQLite).
    ///
    /// To keep a lease, call [`Store::renew`] before it runs out.
    pub async fn claim(&self, run_id: &str, owner: &str, lease: Duration) -> Result<Claim> {
        let mut replace: Option<String> = None;
        let mut holder = String::new();
        // A holder that lets go, or a dead one another claimer replaces first, is looked at
        // again; a few rounds settle any race.
        for _ in 0..4 {
            let raw = self
                .timed("claim", async {
                    dispatch!(self.claim(run_id, owner, lease, replace.as_deref()))
                })
                .await?;
            match raw {
                RawClaim::Held(generation) => {
                    self.forget();
                    return Ok(Claim::Held(Lease {
                        run_id: run_id.to_owned(),
                        owner: owner.to_owned(),
                        generation,
                    }));
                }
                RawClaim::Refused(now) if now.is_empty() => {}
                RawClaim::Refused(now) => {
                    if replace.as_deref() != Some(now.as_str()) && provably_dead(&now).await {
                        tracing::info!(run = run_id, holder = %now, "taking over the run of a dead holder");
                        replace = Some(now.clone());
                        holder = now;
                        continue;
                    }
                    return Ok(Claim::Refused { holder: now });
                }
            }
        }
        Ok(Claim::Refused { holder })
    }

    /// Extends the lease `lease` holds to `duration` from now. Fails with [`Error::LeaseLost`]
    /// when its owner no longer holds the run (another owner took it over, or it was released),
    /// and [`Error::RunNotFound`] when the run is gone. A lease that expired without anyone
    /// taking the run is renewed.
    pub async fn renew(&self, lease: &Lease, duration: Duration) -> Result<()> {
        let fence = Fence {
            owner: &lease.owner,
            generation: lease.generation,
        };
        let run_id = lease.run_id.as_str();
        self.timed("renew", async {
            dispatch!(self.renew(run_id, fence, duration))
        })
        .await
    }

    /// Hands step `step_id` of the run out to a worker (`orc run --queue`): returns the attempt
    /// the worker must store its result under, and, when a worker already stored the result of
    /// the current attempt (the run's earlier coordinator died before writing the step's
    /// checkpoint), that result instead, so the step is not run again. An unfinished earlier
    /// attempt is superseded: its worker can no longer store a result. PostgreSQL only: the
    /// other backends fail with [`Error::Unsupported`].
    pub async fn dispatch_step(&self, run_id: &str, step_id: &str) -> Result<Dispatched> {
        let (attempt, outcome) = self
            .timed("dispatch_step", async {
                match &self.inner.backend {
                    Backend::Postgres(b) => b.dispatch_step(run_id, step_id).await,
                    Backend::Sqlite(_) | Backend::Redis(_) => {
                        Err(self.unsupported("dispatch_step"))
                    }
                }
            })
            .await?;
        let outcome = match outcome {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                url: self.inner.described.clone(),
                what: format!("the worker's result of step {step_id} of run {run_id}"),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Dispatched { attempt, outcome })
    }

    /// Where attempt `attempt` of a dispatched step stands: what a worker asks before it runs
    /// the step. A step delivered again after its result was stored is not run again: the
    /// stored result comes back, for the worker to hand to the coordinator once more (the
    /// first worker may have died between storing it and telling the coordinator).
    /// PostgreSQL only, like [`Store::dispatch_step`].
    pub async fn attempt_state(
        &self,
        run_id: &str,
        step_id: &str,
        attempt: u32,
    ) -> Result<AttemptState> {
        let found = self
            .timed("attempt_state", async {
                match &self.inner.backend {
                    Backend::Postgres(b) => b.attempt_state(run_id, step_id).await,
                    Backend::Sqlite(_) | Backend::Redis(_) => {
                        Err(self.unsupported("attempt_state"))
                    }
                }
            })
            .await?;
        Ok(match found {
            None => AttemptState::Superseded,
            Some((current, _)) if current != attempt => AttemptState::Superseded,
            Some((_, None)) => AttemptState::Current,
            Some((_, Some(text))) => {
                AttemptState::Finished(serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                    url: self.inner.described.clone(),
                    what: format!("the worker's result of step {step_id} of run {run_id}"),
                    reason: e.to_string(),
                })?)
            }
        })
    }

    /// Stores a worker's result of attempt `attempt` of a dispatched step, once: `false` (and
    /// nothing written) when that attempt was superseded or its result is already stored.
    /// PostgreSQL only, like [`Store::dispatch_step`].
    pub async fn finish_dispatched(
        &self,
        run_id: &str,
        step_id: &str,
        attempt: u32,
        outcome: &Value,
    ) -> Result<bool> {
        let text = outcome.to_string();
        self.timed("finish_dispatched", async {
            match &self.inner.backend {
                Backend::Postgres(b) => b.finish_dispatched(run_id, step_id, attempt, &text).await,
                Backend::Sqlite(_) | Backend::Redis(_) => {
                    Err(self.unsupported("finish_dispatched"))
                }
            }
        })
        .await
    }

    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            url: self.inner.described.clone(),
            operation,
            needs: "a PostgreSQL store (`--state postgres://…`), which every machine of the run shares",
        }
    }

    /// Gives up `owner`'s lease on the run; does nothing when `owner` does not hold it.
    pub async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        let done = self
            .timed("release", async { dispatch!(self.release(run_id, owner)) })
            .await;
        self.forget();
        done
    }

    /// Deletes the runs that started before `older_than`, with their checkpoints and result
    /// documents, except runs whose lease someone holds (they are being resumed). Returns how
    /// many runs were deleted.
    pub async fn prune(&self, older_than: SystemTime) -> Result<u64> {
        let older_than = micros(older_than, || "the prune cutoff".to_owned())?;
        let done = self
            .timed("prune", async { dispatch!(self.prune(older_than)) })
            .await;
        self.forget();
        done
    }

    /// Records one model call's outcome.
    pub async fn record_model_metric(&self, m: &ModelMetric) -> Result<()> {
        self.record_model_metrics(std::slice::from_ref(m)).await
    }

    /// Records the outcomes of several model calls in one write (one transaction, one round
    /// trip or one pipeline). Metrics are measurements: a write that fails part-way may keep
    /// the ones before the failure.
    pub async fn record_model_metrics(&self, metrics: &[ModelMetric]) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let records = metrics
            .iter()
            .map(metric_record)
            .collect::<Result<Vec<MetricRecord>>>()?;
        self.timed("record_model_metrics", async {
            dispatch!(self.record_model_metrics(&records))
        })
        .await
    }

    /// Adds lookups of orc's caches (other than the model response cache, whose lookups are
    /// recorded with its requests) to the per-minute sums that [`Store::request_series`] and
    /// [`Store::request_stats`] read, in one write. Lookups of one cache in one minute may come
    /// in several calls (and from several processes): they add up.
    pub async fn record_cache_lookups(&self, lookups: &[CacheLookups]) -> Result<()> {
        // One row per cache and minute, in order (concurrent PostgreSQL writers then take the
        // rows' locks in the same order).
        let mut sums: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
        for l in lookups {
            if l.hits == 0 && l.misses == 0 {
                continue;
            }
            let at = micros(l.at, || {
                format!("the time of the {} cache's lookups", l.cache)
            })?;
            let sum = sums.entry((at.div_euclid(MINUTE), &l.cache)).or_default();
            sum.0 = sum
                .0
                .saturating_add(i64::try_from(l.hits).unwrap_or(i64::MAX));
            sum.1 = sum
                .1
                .saturating_add(i64::try_from(l.misses).unwrap_or(i64::MAX));
        }
        if sums.is_empty() {
            return Ok(());
        }
        let records: Vec<LookupRecord> = sums
            .into_iter()
            .map(|((minute, cache), (hits, misses))| LookupRecord {
                minute,
                cache: cache.into(),
                hits,
                misses,
            })
            .collect();
        self.timed("record_cache_lookups", async {
            dispatch!(self.record_cache_lookups(&records))
        })
        .await
    }

    /// The model's recorded calls that went upstream (not the cache hits, nor the requests that
    /// shared another's call) at or after `since`, newest first, at most `limit` (0 = all): what
    /// the router learns from and the hourly budget counts.
    pub async fn model_metrics(
        &self,
        model: &str,
        since: SystemTime,
        limit: u32,
    ) -> Result<Vec<ModelMetric>> {
        let since = micros(since, || "since".to_owned())?;
        let records = self
            .timed("model_metrics", async {
                dispatch!(self.model_metrics(model, since, limit))
            })
            .await?;
        Ok(records
            .into_iter()
            .map(|r| ModelMetric {
                model: r.model,
                provider: r.provider,
                at: from_micros(r.at),
                latency_ms: r.latency_ms,
                success: r.success,
                input_tokens: r.input_tokens.max(0) as u64,
                output_tokens: r.output_tokens.max(0) as u64,
                cost: r.cost,
                source: CallSource::parse(&r.source),
                cache_hit: r.cache_hit,
                error_kind: r.error_kind,
                run_id: r.run_id,
                pipeline_id: r.pipeline_id,
            })
            .collect())
    }

    /// The model requests (every source) and the runs started in `[since, until)`, summed for
    /// the daily report: counts, errors by kind, the busiest minute, response-time percentiles
    /// (within 2 %, see [`LATENCY_ERROR_BOUND`](crate::LATENCY_ERROR_BOUND)), the response
    /// cache's hits and misses, the other caches' ([`Store::record_cache_lookups`]; those of
    /// the minutes that start in the period), and spend per model and per pipeline. The SQL backends sum
    /// with range scans of the `at` index (and the runs' `started_at` index); Redis reads the
    /// period's requests from its time-ordered set and sums them here. Fails with
    /// [`Error::InvalidValue`] when `until` is not after `since`.
    pub async fn request_stats(
        &self,
        since: SystemTime,
        until: SystemTime,
    ) -> Result<RequestStats> {
        let (from, to) = period(since, until)?;
        let (lo, hi) = stats::lookup_minutes(from, to);
        let (stored, lookups) = tokio::try_join!(
            self.timed("request_stats", async {
                dispatch!(self.request_stats(from, to))
            }),
            self.timed("cache_totals", async {
                dispatch!(self.cache_totals(lo, hi))
            }),
        )?;
        Ok(stats::roll_up(since, until, stored, &lookups))
    }

    /// The model requests of `[since, until)` per slot of `step`: one point per slot from
    /// `since`, empty ones included, each with its requests, errors, median and 95th percentile
    /// response time, spend, response-cache lookups and the other caches' lookups
    /// ([`Store::record_cache_lookups`]; kept per minute, each minute in the slot it starts in).
    /// Fails with [`Error::InvalidValue`] when
    /// `until` is not after `since`, `step` is under a second, or the period holds more than
    /// [`MAX_SERIES_POINTS`] slots.
    pub async fn request_series(
        &self,
        since: SystemTime,
        until: SystemTime,
        step: Duration,
    ) -> Result<Vec<SeriesPoint>> {
        let (from, to) = period(since, until)?;
        let invalid = |reason: String| Error::InvalidValue {
            what: "the series' step".to_owned(),
            reason,
        };
        if step < Duration::from_secs(1) {
            return Err(invalid("it must be at least one second".to_owned()));
        }
        let step_us =
            i64::try_from(step.as_micros()).map_err(|_| invalid("it is too long".to_owned()))?;
        let slots = (to - from).saturating_add(step_us - 1) / step_us;
        let slots = u32::try_from(slots)
            .ok()
            .filter(|n| *n <= MAX_SERIES_POINTS)
            .ok_or_else(|| {
                invalid(format!(
                    "the period holds {slots} steps of {} s; at most {MAX_SERIES_POINTS}",
                    step.as_secs()
                ))
            })?;
        let (lo, hi) = stats::lookup_minutes(from, to);
        let (groups, lookups) = tokio::try_join!(
            self.timed("request_series", async {
                dispatch!(self.request_series(from, to, step_us))
            }),
            self.timed("cache_lookups", async {
                dispatch!(self.cache_lookups(lo, hi))
            }),
        )?;
        Ok(stats::series(since, from, step, slots, &groups, &lookups))
    }

    /// Registers `p` under `p.id`, or replaces the pipeline registered there, and returns its row
    /// as stored. A new id gets version 1 and `created_at` = `updated_at` = now. A known id whose
    /// stored hash differs from `p.hash` gets the new text and fields, its version raised by one
    /// and `updated_at` set to now; `created_at` stays. A known id with the same hash is left as it
    /// is (the put is idempotent) and its stored row returned. One statement (script): concurrent
    /// puts of one id take turns. Fails with [`Error::InvalidValue`] for an invalid id (see
    /// [`NewPipeline::id`]).
    ///
    /// Registered pipelines are not cached (the query cache holds run answers only), so a put
    /// leaves it alone.
    pub async fn put_pipeline(&self, p: &NewPipeline) -> Result<PipelineRow> {
        check_pipeline_id(&p.id)?;
        let text = pack_all(vec![p.text.as_bytes().to_vec()], self.inner.compression)
            .await
            .pop()
            .ok_or_else(|| Error::InvalidValue {
                what: format!("the text of pipeline {}", p.id),
                reason: "compressing it did not finish".to_owned(),
            })?;
        let record = NewPipelineRecord {
            id: &p.id,
            pipeline_id: &p.pipeline_id,
            name: p.name.as_deref(),
            description: p.description.as_deref(),
            hash: &p.hash,
            steps: i64::from(p.steps),
            now: now_micros(),
            text,
        };
        let stored = self
            .timed("put_pipeline", async {
                dispatch!(self.put_pipeline(record))
            })
            .await?;
        self.decode_pipeline(stored)
    }

    /// The pipeline registered under `id`, with its text, or `None` when there is none. Fails
    /// with [`Error::InvalidValue`] for an invalid id.
    pub async fn pipeline(&self, id: &str) -> Result<Option<Pipeline>> {
        check_pipeline_id(id)?;
        let stored = self
            .timed("pipeline", async { dispatch!(self.pipeline(id)) })
            .await?;
        let Some((stored, packed)) = stored else {
            return Ok(None);
        };
        let what = || format!("pipeline {id}");
        let bytes = unpack_async(packed.bytes, packed.compressed)
            .await
            .map_err(|reason| self.corrupt(what(), reason))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| self.corrupt(what(), format!("its text is not UTF-8: {e}")))?;
        Ok(Some(Pipeline {
            row: self.decode_pipeline(stored)?,
            text,
        }))
    }

    /// The registered pipelines, without their texts, ordered by id (byte order of its UTF-8);
    /// at most `limit` of them (0 = all).
    pub async fn list_pipelines(&self, limit: u32) -> Result<Vec<PipelineRow>> {
        let stored = self
            .timed("list_pipelines", async {
                dispatch!(self.list_pipelines(limit))
            })
            .await?;
        stored
            .into_iter()
            .map(|s| self.decode_pipeline(s))
            .collect()
    }

    /// Removes the pipeline registered under `id`; returns whether there was one. Runs started
    /// from it keep their records. Fails with [`Error::InvalidValue`] for an invalid id.
    pub async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        check_pipeline_id(id)?;
        self.timed("delete_pipeline", async {
            dispatch!(self.delete_pipeline(id))
        })
        .await
    }

    /// `operation` bounded by the query timeout.
    async fn timed<T>(
        &self,
        operation: &'static str,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                url: self.inner.described.clone(),
                operation,
                after: self.inner.timeout,
            }),
        }
    }

    fn corrupt(&self, what: String, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            url: self.inner.described.clone(),
            what,
            reason: reason.into(),
        }
    }

    fn decode_run(&self, s: StoredRun) -> Result<RunRow> {
        let what = || format!("run {}", s.run_id);
        let inputs = serde_json::from_str(&s.inputs)
            .map_err(|e| self.corrupt(what(), format!("inputs: {e}")))?;
        let status = s
            .status
            .parse()
            .map_err(|e: crate::UnknownRunState| self.corrupt(what(), e.to_string()))?;
        Ok(RunRow {
            inputs,
            status,
            started_at: from_micros(s.started_at),
            finished_at: s.finished_at.map(from_micros),
            steps_done: s.steps_done.max(0) as u64,
            held: s.held,
            run_id: s.run_id,
            pipeline_id: s.pipeline_id,
            pipeline_path: s.pipeline_path,
            pipeline_hash: s.pipeline_hash,
        })
    }

    fn decode_pipeline(&self, s: StoredPipeline) -> Result<PipelineRow> {
        let what = || format!("pipeline {}", s.id);
        let steps = u32::try_from(s.steps)
            .map_err(|_| self.corrupt(what(), format!("steps is {}", s.steps)))?;
        let version = u64::try_from(s.version)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| self.corrupt(what(), format!("version is {}", s.version)))?;
        Ok(PipelineRow {
            steps,
            version,
            created_at: from_micros(s.created_at),
            updated_at: from_micros(s.updated_at),
            id: s.id,
            pipeline_id: s.pipeline_id,
            name: s.name,
            description: s.description,
            hash: s.hash,
        })
    }

    async fn decode_step(&self, run_id: &str, s: StoredStep) -> Result<Checkpoint> {
        let what = || format!("checkpoint {} ({}) of run {run_id}", s.seq, s.step_id);
        let payload = unpack_async(s.payload, s.compressed)
            .await
            .map_err(|reason| self.corrupt(what(), reason))?;
        let envelope = serde_json::from_slice(&payload)
            .map_err(|e| self.corrupt(what(), format!("envelope: {e}")))?;
        let usage = s
            .usage
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| self.corrupt(what(), format!("usage: {e}")))?;
        Ok(Checkpoint {
            step_id: s.step_id,
            status: s.status,
            envelope,
            started_at: s.started_at.map(from_micros),
            completed_at: s.completed_at.map(from_micros),
            attempts: u32::try_from(s.attempts).unwrap_or(0),
            model: s.model,
            usage,
            cost: s.cost,
        })
    }
}

/// Whether the lease holder `holder` is provably dead (see [`LeaseOwner`]).
async fn provably_dead(holder: &str) -> bool {
    let Some(owner) = LeaseOwner::parse(holder) else {
        return false;
    };
    tokio::task::spawn_blocking(move || owner.is_provably_dead(std::path::Path::new("/proc")))
        .await
        .unwrap_or(false)
}

/// Refuses a registry id that is empty, longer than [`MAX_PIPELINE_ID`] characters, holds a
/// control character or starts or ends with white space.
fn check_pipeline_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty".to_owned()
    } else if id.chars().count() > MAX_PIPELINE_ID {
        format!("it is longer than {MAX_PIPELINE_ID} characters")
    } else if let Some(c) = id.chars().find(|c| c.is_control()) {
        format!("it holds the control character {c:?}")
    } else if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        "it starts or ends with white space".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidValue {
        what: format!("pipeline id {id:?}"),
        reason,
    })
}

/// Refuses options no backend can use.
fn check_options(url: &str, options: &StateOptions) -> Result<()> {
    let invalid = |reason: String| Error::InvalidOptions {
        url: url.to_owned(),
        reason,
    };
    if options.query_timeout.is_zero() {
        return Err(invalid("query_timeout must be more than zero".to_owned()));
    }
    if options.pool_size == 0 {
        return Err(invalid("pool_size must be at least 1".to_owned()));
    }
    if let Some(ns) = &options.namespace {
        let ok = !ns.is_empty()
            && ns.len() <= MAX_NAMESPACE
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !ns.as_bytes()[0].is_ascii_digit()
            && !ns.starts_with("pg_");
        if !ok {
            return Err(invalid(format!(
                "namespace `{ns}`: use lower-case letters, digits and `_`, not starting with a digit or `pg_`, at most {MAX_NAMESPACE} characters"
            )));
        }
    }
    Ok(())
}

/// A metric as the backends store it: times in microseconds, token counts that fit an `i64`.
fn metric_record(m: &ModelMetric) -> Result<MetricRecord> {
    let what = |field: &str| format!("{field} of a metric of model {}", m.model);
    let tokens = |n: u64, field: &str| {
        i64::try_from(n).map_err(|_| Error::InvalidValue {
            what: what(field),
            reason: "too large".to_owned(),
        })
    };
    Ok(MetricRecord {
        model: m.model.clone(),
        provider: m.provider.clone(),
        at: micros(m.at, || what("at"))?,
        latency_ms: m.latency_ms,
        success: m.success,
        input_tokens: tokens(m.input_tokens, "input_tokens")?,
        output_tokens: tokens(m.output_tokens, "output_tokens")?,
        cost: m.cost,
        source: m.source.as_str().to_owned(),
        cache_hit: m.cache_hit,
        error_kind: m.error_kind.clone(),
        run_id: m.run_id.clone(),
        pipeline_id: m.pipeline_id.clone(),
    })
}

/// The most points [`Store::request_series`] returns: a day by the minute.
pub const MAX_SERIES_POINTS: u32 = 1440;

/// A period in microseconds, refused unless it ends after it starts.
fn period(since: SystemTime, until: SystemTime) -> Result<(i64, i64)> {
    let from = micros(since, || "the period's start".to_owned())?;
    let to = micros(until, || "the period's end".to_owned())?;
    if to <= from {
        return Err(Error::InvalidValue {
            what: "the period".to_owned(),
            reason: "its end is not after its start".to_owned(),
        });
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every future the API returns can go to `tokio::spawn` (sqlx's migrator, given a bare
    /// connection, once made `open`'s future not `Send`).
    #[allow(dead_code, clippy::let_underscore_future)]
    fn futures_are_send(
        store: &Store,
        run: &NewRun,
        m: &ModelMetric,
        filter: &RunFilter,
        pipeline: &NewPipeline,
    ) {
        fn send<T: Send>(_: T) {}
        send(Store::open("sqlite::memory:", StateOptions::default()));
        send(store.create_run(run));
        send(store.append("r", &[]));
        send(store.finish_run("r", RunState::Completed, None));
        send(store.run("r"));
        send(store.result_document("r"));
        send(store.checkpoints("r"));
        send(store.list_runs(filter));
        send(store.claim("r", "me", Duration::from_secs(1)));
        let lease = Lease {
            run_id: "r".into(),
            owner: "me".into(),
            generation: 1,
        };
        send(store.renew(&lease, Duration::from_secs(1)));
        send(store.append_leased(&lease, &[]));
        send(store.finish_leased(&lease, RunState::Failed, None));
        send(store.release("r", "me"));
        send(store.prune(SystemTime::now()));
        send(store.record_model_metric(m));
        send(store.model_metrics("m", SystemTime::now(), 0));
        send(store.request_stats(SystemTime::UNIX_EPOCH, SystemTime::now()));
        send(store.request_series(
            SystemTime::UNIX_EPOCH,
            SystemTime::now(),
            Duration::from_secs(60),
        ));
        send(store.put_pipeline(pipeline));
        send(store.pipeline("p"));
        send(store.list_pipelines(0));
        send(store.delete_pipeline("p"));
    }
}
