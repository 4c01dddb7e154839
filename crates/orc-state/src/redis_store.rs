//! The Redis backend (standalone Redis, not a cluster). Keys, under the prefix `orc:state:` (or
//! `orc:state:<namespace>:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `schema` | string | the schema version |
//! | `run:<id>` | hash | the run's fields, times in µs since the Unix epoch; `lease_owner` and `lease_generation` (schema 2) |
//! | `run:<id>:steps` | list | its checkpoints in append order |
//! | `run:<id>:result` | string | its result document (a flag byte, then the bytes) |
//! | `run:<id>:lease` | string | the lease holder while the lease is unexpired (`PX`) |
//! | `runs`, `runs:status:<s>`, `runs:pipeline:<id>` | sorted sets | run ids by start time |
//! | `pipeline:<id>` | hash | path, hash, first and last run of a pipeline |
//! | `metrics:<model>` | sorted set | one JSON member per call that went upstream, by time (µs): what the router and the hourly budget read |
//! | `requests` | sorted set | one JSON member per model request of any source (schema 4), by time (µs): what reports and series read |
//! | `registry:<id>` | hash | a registered pipeline (schema 3): `pipeline_id`, `name` and `description` (absent when `None`), `hash`, `steps`, `version`, `created_at`, `updated_at` (µs), `text_compressed` (`0`/`1`) and `text` (UTF-8, or its zstd frame) |
//! | `registry` | sorted set | the registered ids, all at score 0, so that they list in byte order (`ZRANGE … BYLEX`) |
//! | `rollup:hour:<h>` | hash | the requests of hour `h` (since the epoch) summed per report key (schema 5): fields `<key>\n<sum>`, the key a JSON object (`model`, `provider`, `pipeline_id`, `cache_hit`, `error_kind`, `success`), the sum `n`, `cost`, `latency`, `in`, `out` or `b<bucket>` (requests per latency bucket) |
//! | `rollup:minute:<m>` | hash | the requests of minute `m` summed (schema 5): `n`, `errors`, `hits`, `misses`, `cost`, `b<bucket>` |
//! | `rollup:runs:<h>` | set | the runs that made requests in hour `h` (schema 5) |
//! | `lookups:<m>` | hash | the lookups of orc's other caches in minute `m`: `hits:<cache>`, `misses:<cache>` |
//! | `lookups` | sorted set | the minutes that have a `lookups:<m>` hash, by minute |
//! | `rollup:rebuild` | string | held (`PX`) while a process builds the rollups of an older store |
//!
//! Every write that touches more than one key is one Lua script, so it applies whole or not at all.
//!
//! Schema 2 added the run hash's `lease_owner` (who holds the lease, expired or not, until it is
//! released or taken over) and `lease_generation` (raised at each change of owner; a missing one is
//! 0), which fence the writes made under a lease. A schema-1 store needs nothing rewritten: opening
//! it sets the version to 2, so that older orcs (whose writes are not fenced) refuse it.
//!
//! Schema 3 added the pipeline registry (`registry`, `registry:<id>`). A schema-2 store has none
//! of its keys and needs nothing rewritten: opening it sets the version to 3, so that older orcs,
//! which do not know the registry, refuse it as the SQL backends' older orcs refuse migration 4.
//!
//! Schema 4 records every model request in `requests`, with its source, cache lookup, error kind,
//! run and pipeline (members of `metrics:<model>` gained the same fields; older members read as
//! upstream calls without them). Nothing is rewritten: requests recorded before it are not in
//! reports.
//!
//! Schema 5 sums the requests per hour and per minute as they are recorded (`rollup:…`, in the
//! transaction that adds them to `requests`), so that a report reads 24 hashes a day and a
//! series a hash per minute. Opening an older store builds the rollups from `requests` first,
//! one process at a time (`rollup:rebuild`), before it raises the version; requests an older orc
//! records meanwhile are in `requests` but not in the rollups.
//!
//! The caches' lookups (`lookups`, `lookups:<m>`) need no new schema version: an older orc
//! neither reads nor writes them, and a store without them has no lookups recorded.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RetryMethod, Script};
use serde::{Deserialize, Serialize};

use crate::codec::{Packed, millis};
use crate::records::{
    Fence, LookupRecord, MetricGroup, MetricRecord, NewPipelineRecord, NewRunRecord, NewStep,
    RawClaim, SlotGroup, StoredPipeline, StoredRun, StoredStats, StoredStep,
};
use crate::rollup::{self, GroupKey, HOUR, MINUTE, MinuteSums, Rollup, Sums, busier};
use crate::stats;
use crate::url::scrub;
use crate::{Error, Result, RunState, StateOptions};

/// The newest schema version this binary knows.
pub(crate) const LATEST: i64 = 5;

/// Runs fetched per round trip while listing or pruning.
const BATCH: usize = 256;

/// Recorded requests fetched per round trip for a report or a series.
const PAGE: usize = 10_000;

/// How long a process may take to build an older store's rollups before another may start over.
const REBUILD_LEASE_MS: u64 = 600_000;

/// A hash's number.
fn parse<T: std::str::FromStr>(text: &str) -> std::result::Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("`{text}`: {e}"))
}

/// A minute's hash as its sums.
fn minute_sums(hash: &HashMap<String, String>) -> std::result::Result<MinuteSums, String> {
    let mut s = MinuteSums::default();
    for (field, value) in hash {
        match field.as_str() {
            "n" => s.requests = parse(value)?,
            "errors" => s.errors = parse(value)?,
            "hits" => s.cache_hits = parse(value)?,
            "misses" => s.cache_misses = parse(value)?,
            "cost" => s.cost = parse(value)?,
            _ => {
                let bucket = field
                    .strip_prefix('b')
                    .ok_or_else(|| format!("an unknown field `{field}`"))?;
                s.buckets.insert(parse(bucket)?, parse(value)?);
            }
        }
    }
    Ok(s)
}

/// `KEYS`: run, runs, runs:status:running, runs:pipeline:<id>, pipeline:<id>.
/// `ARGV`: run id, pipeline id, path, hash, inputs, started_at. Returns 0 when the run exists.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'pipeline_id', ARGV[2], 'pipeline_path', ARGV[3], 'pipeline_hash', ARGV[4],
    'inputs', ARGV[5], 'status', 'running', 'started_at', ARGV[6], 'steps_done', 0)
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('HSETNX', KEYS[5], 'created_at', ARGV[6])
local last = redis.call('HGET', KEYS[5], 'last_run_at')
if not last or tonumber(last) <= tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[5], 'pipeline_path', ARGV[3], 'pipeline_hash', ARGV[4], 'last_run_at', ARGV[6])
end
return 1
";

/// The check a write under a lease makes first, with the fence's owner ('' = no fence) and
/// generation in `ARGV[a]` and `ARGV[a + 1]`, the run's hash in `KEYS[1]`: returns -2 when the
/// lease has moved on.
macro_rules! fence_check {
    ($owner:literal, $generation:literal) => {
        concat!(
            "if ARGV[",
            $owner,
            "] ~= '' then
    local f = redis.call('HMGET', KEYS[1], 'lease_owner', 'lease_generation')
    if f[1] ~= ARGV[",
            $owner,
            "] or (f[2] or '0') ~= ARGV[",
            $generation,
            "] then return -2 end
end
"
        )
    };
}

/// `KEYS`: run, run:<id>:steps. `ARGV`: the fence's owner ('' = none) and generation, then the
/// encoded checkpoints. Returns -1 when there is no run, -2 when the lease moved on.
const APPEND: &str = concat!(
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
",
    fence_check!("1", "2"),
    r"local n = 0
for i = 3, #ARGV, 512 do
    n = redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 511, #ARGV)))
end
redis.call('HSET', KEYS[1], 'steps_done', n)
return n
"
);

/// `KEYS`: run, run:<id>:result, then runs:status:<s> for running, completed, failed, interrupted.
/// `ARGV`: run id, new status, finished_at ('' = none), '1' + document or '0', then the fence's
/// owner ('' = none) and generation. Returns 0 when there is no run, -2 when the lease moved on.
const FINISH: &str = concat!(
    r"
local fields = redis.call('HMGET', KEYS[1], 'status', 'started_at')
if not fields[1] then return 0 end
",
    fence_check!("6", "7"),
    r"
local index = {running = 3, completed = 4, failed = 5, interrupted = 6}
if index[fields[1]] then redis.call('ZREM', KEYS[index[fields[1]]], ARGV[1]) end
redis.call('ZADD', KEYS[index[ARGV[2]]], fields[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'finished_at')
else
    redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
end
if ARGV[4] == '1' then
    redis.call('SET', KEYS[2], ARGV[5])
else
    redis.call('DEL', KEYS[2])
end
return 1
"
);

/// `KEYS`: run, run:<id>:lease. `ARGV`: owner, lease in ms, the holder to replace ('' = none).
/// Returns `{1, generation}` when claimed, `{0, holder}` when another owner holds an unexpired
/// lease, `{-1, ''}` when there is no run. The generation goes up when the owner changes.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return {0, holder} end
local f = redis.call('HMGET', KEYS[1], 'lease_owner', 'lease_generation')
local generation = tonumber(f[2] or '0')
if f[1] ~= ARGV[1] then generation = generation + 1 end
redis.call('HSET', KEYS[1], 'lease_owner', ARGV[1], 'lease_generation', generation)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, tostring(generation)}
";

/// `KEYS`: run, run:<id>:lease. `ARGV`: owner, generation, lease in ms. Returns `{1, ''}` when
/// renewed, `{0, holder or ''}` when the lease moved on, `{-1, ''}` when there is no run.
const RENEW: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local f = redis.call('HMGET', KEYS[1], 'lease_owner', 'lease_generation')
if f[1] ~= ARGV[1] or (f[2] or '0') ~= ARGV[2] then return {0, f[1] or ''} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return {1, ''}
";

/// `KEYS`: run, run:<id>:lease. `ARGV`: owner.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'lease_owner') == ARGV[1] then
    redis.call('HDEL', KEYS[1], 'lease_owner')
    redis.call('DEL', KEYS[2])
elseif redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
end
return 1
";

/// `KEYS`: schema. `ARGV`: the version this orc writes. Raises an older version to it.
const UPGRADE: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]))
if v and v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
";

/// `KEYS`: runs, then runs:status:<s> for running, completed, failed, interrupted.
/// `ARGV`: the key prefix, then run ids. Deletes each run nobody holds a lease on, with its
/// checkpoints, result and index entries; returns how many.
const PRUNE: &str = r"
local index = {running = 2, completed = 3, failed = 4, interrupted = 5}
local deleted = 0
for i = 2, #ARGV do
    local id = ARGV[i]
    local run = ARGV[1] .. 'run:' .. id
    if redis.call('EXISTS', run .. ':lease') == 0 then
        local fields = redis.call('HMGET', run, 'status', 'pipeline_id')
        if fields[1] and index[fields[1]] then redis.call('ZREM', KEYS[index[fields[1]]], id) end
        if fields[2] then redis.call('ZREM', ARGV[1] .. 'runs:pipeline:' .. fields[2], id) end
        redis.call('DEL', run, run .. ':steps', run .. ':result')
        redis.call('ZREM', KEYS[1], id)
        deleted = deleted + 1
    end
end
return deleted
";

/// `KEYS`: registry:<id>, registry. `ARGV`: id, pipeline id, whether there is a name ('0'/'1'),
/// the name, whether there is a description, the description, hash, steps, now, text_compressed,
/// text, then the row's field names ([`PIPELINE_FIELDS`]). A new id gets version 1; a known one
/// with another hash is replaced, its version raised and `created_at` kept; a known one with the
/// same hash is left as it is. Returns the row's fields as they are afterwards.
const PUT_PIPELINE: &str = r"
local old = redis.call('HMGET', KEYS[1], 'hash', 'version', 'created_at')
if old[1] ~= ARGV[7] then
    local version, created = 1, ARGV[9]
    if old[1] then
        version = tonumber(old[2] or '0') + 1
        created = old[3] or ARGV[9]
    end
    redis.call('HSET', KEYS[1], 'pipeline_id', ARGV[2], 'hash', ARGV[7], 'steps', ARGV[8],
        'version', version, 'created_at', created, 'updated_at', ARGV[9],
        'text_compressed', ARGV[10], 'text', ARGV[11])
    if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[4])
    else redis.call('HDEL', KEYS[1], 'name') end
    if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'description', ARGV[6])
    else redis.call('HDEL', KEYS[1], 'description') end
    redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 12))
";

/// `KEYS`: registry:<id>, registry. `ARGV`: id. Returns 1 when the pipeline existed.
const DELETE_PIPELINE: &str = r"
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
";

/// A checkpoint's fields; stored as a little-endian `u32` length, this JSON, then the payload.
#[derive(Debug, Serialize, Deserialize)]
struct StepHeader<'a> {
    #[serde(borrow)]
    step_id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    attempts: i64,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    usage: Option<Cow<'a, str>>,
    cost: Option<f64>,
    compressed: bool,
}

/// A model metric as a sorted-set member: the random id keeps two identical calls two members.
#[derive(Debug, Serialize, Deserialize)]
struct MetricMember {
    #[serde(flatten)]
    record: MetricRecord,
    id: u64,
}

/// The scripts, hashed once.
struct Scripts {
    create: Script,
    append: Script,
    finish: Script,
    claim: Script,
    renew: Script,
    release: Script,
    prune: Script,
    put_pipeline: Script,
    delete_pipeline: Script,
}

/// A Redis server (one key prefix of one logical database).
pub(crate) struct RedisStore {
    connection: ConnectionManager,
    /// `orc:state:` or `orc:state:<namespace>:`.
    prefix: String,
    scripts: Scripts,
    /// The URL for messages, password redacted.
    url: String,
    /// The URL as given, to scrub its password from messages.
    raw_url: String,
}

impl RedisStore {
    /// Connects, then checks (or sets) the schema version.
    pub(crate) async fn open(raw_url: &str, url: String, options: &StateOptions) -> Result<Self> {
        let client = redis::Client::open(raw_url).map_err(|e| Error::InvalidUrl {
            url: url.clone(),
            reason: scrub(e.to_string(), raw_url),
        })?;
        let timeout = options.query_timeout;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let where_ = client.get_connection_info().addr().to_string();
        let connect_error = |e: RedisError| {
            let hint = if e.kind() == redis::ErrorKind::AuthenticationFailed
                || e.code()
                    .is_some_and(|c| c == "WRONGPASS" || c == "NOPERM" || c == "NOAUTH")
            {
                "Redis refused the login: check the user and password in the URL".to_owned()
            } else {
                format!(
                    "is Redis running at {where_}? Start it (`redis-server --daemonize yes --port 6379`) or fix the URL"
                )
            };
            Error::Connect {
                url: url.clone(),
                message: scrub(e.to_string(), raw_url),
                hint,
            }
        };
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = match tokio::time::timeout(timeout, connect).await {
            Ok(connection) => connection.map_err(connect_error)?,
            Err(_) => {
                return Err(Error::Connect {
                    url: url.clone(),
                    message: format!("no answer within {timeout:?}"),
                    hint: format!(
                        "is Redis running at {where_}? Check the host and port in the URL"
                    ),
                });
            }
        };
        let prefix = match &options.namespace {
            Some(namespace) => format!("orc:state:{namespace}:"),
            None => "orc:state:".to_owned(),
        };
        let store = RedisStore {
            connection,
            prefix,
            scripts: Scripts {
                create: Script::new(CREATE),
                append: Script::new(APPEND),
                finish: Script::new(FINISH),
                claim: Script::new(CLAIM),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                prune: Script::new(PRUNE),
                put_pipeline: Script::new(PUT_PIPELINE),
                delete_pipeline: Script::new(DELETE_PIPELINE),
            },
            url: url.clone(),
            raw_url: raw_url.to_owned(),
        };
        store.check_schema().await.map_err(|e| match e {
            Error::Backend { message, .. } => Error::Connect {
                url: url.clone(),
                message,
                hint: "check that the URL names a Redis server this user may write to".to_owned(),
            },
            e => e,
        })?;
        Ok(store)
    }

    /// Sets the schema version of a new store; refuses a newer one.
    async fn check_schema(&self) -> Result<()> {
        let key = self.key("schema");
        let mut c = self.connection.clone();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(LATEST)
            .arg("NX")
            .query_async(&mut c)
            .await
            .map_err(self.error("open"))?;
        let stored: String = c.get(&key).await.map_err(self.error("open"))?;
        let found: i64 = stored.parse().map_err(|_| Error::NotAStateDatabase {
            url: self.url.clone(),
            reason: format!("its key {key} holds `{stored}`, not a schema version"),
        })?;
        if found > LATEST {
            return Err(Error::SchemaTooNew {
                url: self.url.clone(),
                found,
                supported: LATEST,
            });
        }
        if found < LATEST {
            // Version 1 lacks only the lease fields, which read as "none" when missing; version 2
            // only the registry's keys; version 4 the rollups, built here.
            if !self.build_rollups().await? {
                return Ok(());
            }
            let mut c = self.connection.clone();
            let _: i64 = Script::new(UPGRADE)
                .key(&key)
                .arg(LATEST)
                .invoke_async(&mut c)
                .await
                .map_err(self.error("open"))?;
        }
        Ok(())
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn run_key(&self, run_id: &str) -> String {
        format!("{}run:{run_id}", self.prefix)
    }

    fn status_key(&self, status: RunState) -> String {
        format!("{}runs:status:{}", self.prefix, status.as_str())
    }

    fn status_keys(&self) -> [String; 4] {
        RunState::ALL.map(|s| self.status_key(s))
    }

    fn pipeline_index(&self, pipeline_id: &str) -> String {
        format!("{}runs:pipeline:{pipeline_id}", self.prefix)
    }

    fn error(&self, operation: &'static str) -> impl Fn(RedisError) -> Error + '_ {
        move |e| Error::Backend {
            url: self.url.clone(),
            operation,
            retryable: e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || !matches!(e.retry_method(), RetryMethod::NoRetry),
            message: scrub(e.to_string(), &self.raw_url),
        }
    }

    fn corrupt(&self, what: String, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            url: self.url.clone(),
            what,
            reason: reason.into(),
        }
    }

    pub(crate) async fn create_run(&self, run: &NewRunRecord<'_>) -> Result<()> {
        let mut c = self.connection.clone();
        let created: i64 = self
            .scripts
            .create
            .key(self.run_key(run.run_id))
            .key(self.key("runs"))
            .key(self.status_key(RunState::Running))
            .key(self.pipeline_index(run.pipeline_id))
            .key(self.key(&format!("pipeline:{}", run.pipeline_id)))
            .arg(run.run_id)
            .arg(run.pipeline_id)
            .arg(run.pipeline_path)
            .arg(run.pipeline_hash)
            .arg(&run.inputs)
            .arg(run.started_at)
            .invoke_async(&mut c)
            .await
            .map_err(self.error("create_run"))?;
        if created == 0 {
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
        let run = self.run_key(run_id);
        let mut invocation = self.scripts.append.key(&run);
        invocation.key(format!("{run}:steps"));
        fence_args(&mut invocation, fence);
        for step in &steps {
            invocation.arg(encode_step(step));
        }
        let mut c = self.connection.clone();
        let n: i64 = invocation
            .invoke_async(&mut c)
            .await
            .map_err(self.error("append"))?;
        match n {
            -2 => Err(self.lost(run_id, "append").await),
            n if n < 0 => Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            }),
            _ => Ok(()),
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
        let run = self.run_key(run_id);
        let mut invocation = self.scripts.finish.key(&run);
        invocation.key(format!("{run}:result"));
        for key in self.status_keys() {
            invocation.key(key);
        }
        invocation
            .arg(run_id)
            .arg(status.as_str())
            .arg(finished_at.map(|t| t.to_string()).unwrap_or_default());
        match result {
            Some(packed) => {
                let mut stored = Vec::with_capacity(packed.bytes.len() + 1);
                stored.push(u8::from(packed.compressed));
                stored.extend_from_slice(&packed.bytes);
                invocation.arg("1").arg(stored);
            }
            None => {
                invocation.arg("0").arg("");
            }
        }
        fence_args(&mut invocation, fence);
        let mut c = self.connection.clone();
        let updated: i64 = invocation
            .invoke_async(&mut c)
            .await
            .map_err(self.error("finish_run"))?;
        match updated {
            0 => Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            }),
            -2 => Err(self.lost(run_id, "finish_run").await),
            _ => Ok(()),
        }
    }

    pub(crate) async fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
        let mut c = self.connection.clone();
        let run = self.run_key(run_id);
        let (fields, held): (Vec<Option<String>>, bool) = redis::pipe()
            .cmd("HMGET")
            .arg(&run)
            .arg(&RUN_FIELDS)
            .cmd("EXISTS")
            .arg(format!("{run}:lease"))
            .query_async(&mut c)
            .await
            .map_err(self.error("run"))?;
        self.stored_run(run_id, fields, held)
    }

    /// Who holds the run's lease now, for [`Error::LeaseLost`].
    async fn lost(&self, run_id: &str, operation: &'static str) -> Error {
        let mut c = self.connection.clone();
        let holder: Result<Option<String>, _> = c.hget(self.run_key(run_id), "lease_owner").await;
        match holder {
            Ok(holder) => Error::LeaseLost {
                run_id: run_id.to_owned(),
                holder,
            },
            Err(e) => self.error(operation)(e),
        }
    }

    /// A run from its hash's [`RUN_FIELDS`] and whether its lease key exists; `None` when the
    /// hash does not exist.
    fn stored_run(
        &self,
        run_id: &str,
        fields: Vec<Option<String>>,
        held: bool,
    ) -> Result<Option<StoredRun>> {
        let what = || format!("run {run_id}");
        let mut fields = fields.into_iter();
        let mut next = || fields.next().flatten();
        let Some(pipeline_id) = next() else {
            return Ok(None);
        };
        let mut text =
            |name: &str| next().ok_or_else(|| self.corrupt(what(), format!("no {name}")));
        let pipeline_path = text("pipeline_path")?;
        let pipeline_hash = text("pipeline_hash")?;
        let inputs = text("inputs")?;
        let status = text("status")?;
        let started_at = text("started_at")?;
        let steps_done = text("steps_done")?;
        let finished_at = next();
        let number = |name: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| self.corrupt(what(), format!("{name} is `{v}`, not a number")))
        };
        Ok(Some(StoredRun {
            run_id: run_id.to_owned(),
            pipeline_id,
            pipeline_path,
            pipeline_hash,
            inputs,
            status,
            started_at: number("started_at", &started_at)?,
            finished_at: finished_at.map(|v| number("finished_at", &v)).transpose()?,
            steps_done: number("steps_done", &steps_done)?,
            held,
        }))
    }

    pub(crate) async fn result_document(&self, run_id: &str) -> Result<Option<Packed>> {
        let key = format!("{}:result", self.run_key(run_id));
        let mut c = self.connection.clone();
        let stored: Option<Vec<u8>> = c.get(&key).await.map_err(self.error("result_document"))?;
        match stored.as_deref() {
            None => Ok(None),
            Some([flag @ (0 | 1), bytes @ ..]) => Ok(Some(Packed {
                bytes: bytes.to_vec(),
                compressed: *flag == 1,
            })),
            Some(_) => Err(self.corrupt(
                format!("result document of run {run_id}"),
                "unknown encoding",
            )),
        }
    }

    pub(crate) async fn checkpoints(&self, run_id: &str) -> Result<Vec<StoredStep>> {
        let key = format!("{}:steps", self.run_key(run_id));
        let mut c = self.connection.clone();
        let items: Vec<Vec<u8>> = c
            .lrange(&key, 0, -1)
            .await
            .map_err(self.error("checkpoints"))?;
        items
            .iter()
            .enumerate()
            .map(|(seq, item)| {
                decode_step(seq as i64, item).map_err(|reason| {
                    self.corrupt(format!("checkpoint {seq} of run {run_id}"), reason)
                })
            })
            .collect()
    }

    pub(crate) async fn run_costs(&self, run_ids: &[String]) -> Result<HashMap<String, f64>> {
        let mut costs = HashMap::with_capacity(run_ids.len());
        for id in run_ids {
            let steps = self.checkpoints(id).await?;
            let priced: Vec<f64> = steps.iter().filter_map(|s| s.cost).collect();
            if !priced.is_empty() {
                costs.insert(id.clone(), priced.iter().sum());
            }
        }
        Ok(costs)
    }

    pub(crate) async fn list_runs(
        &self,
        status: Option<RunState>,
        pipeline_id: Option<&str>,
        limit: u32,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<StoredRun>> {
        // Walk the narrowest index newest first; filter on the other criterion.
        let index = match (pipeline_id, status) {
            (Some(pipeline_id), _) => self.pipeline_index(pipeline_id),
            (None, Some(status)) => self.status_key(status),
            (None, None) => self.key("runs"),
        };
        let want = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let mut runs = Vec::new();
        let mut c = self.connection.clone();
        // The index is scored by start time; at one score its members are in id order, which
        // ZREVRANGE reverses: the list's order. A page after a run starts past the runs that
        // started later and those that started at the same time with an id not below it.
        let mut start: isize = match after {
            None => 0,
            Some((at, id)) => {
                let later: isize = c
                    .zcount(&index, format!("({at}"), "+inf")
                    .await
                    .map_err(self.error("list_runs"))?;
                let same: Vec<String> = c
                    .zrangebyscore(&index, at, at)
                    .await
                    .map_err(self.error("list_runs"))?;
                later + same.iter().filter(|other| other.as_str() >= id).count() as isize
            }
        };
        while runs.len() < want {
            // With both filters some runs are skipped: fetch whole batches.
            let batch = if status.is_some() && pipeline_id.is_some() {
                BATCH
            } else {
                BATCH.min(want - runs.len())
            };
            let stop = start + batch as isize - 1;
            let ids: Vec<String> = c
                .zrevrange(&index, start, stop)
                .await
                .map_err(self.error("list_runs"))?;
            if ids.is_empty() {
                break;
            }
            start += ids.len() as isize;
            let mut pipe = redis::pipe();
            for id in &ids {
                let run = self.run_key(id);
                pipe.cmd("HMGET")
                    .arg(&run)
                    .arg(&RUN_FIELDS)
                    .cmd("EXISTS")
                    .arg(format!("{run}:lease"));
            }
            let rows: Vec<(Vec<Option<String>>, bool)> = pipe
                .query_async(&mut c)
                .await
                .map_err(self.error("list_runs"))?;
            for (id, (fields, held)) in ids.iter().zip(rows) {
                // A run pruned between the two round trips is simply gone.
                let Some(run) = self.stored_run(id, fields, held)? else {
                    continue;
                };
                if status.is_some_and(|s| run.status != s.as_str()) {
                    continue;
                }
                runs.push(run);
                if runs.len() == want {
                    break;
                }
            }
        }
        Ok(runs)
    }

    pub(crate) async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        lease: Duration,
        replace: Option<&str>,
    ) -> Result<RawClaim> {
        let run = self.run_key(run_id);
        let mut c = self.connection.clone();
        let (code, text): (i64, String) = self
            .scripts
            .claim
            .key(&run)
            .key(format!("{run}:lease"))
            .arg(owner)
            .arg(millis(lease))
            .arg(replace.unwrap_or_default())
            .invoke_async(&mut c)
            .await
            .map_err(self.error("claim"))?;
        match code {
            1 => text.parse().map(RawClaim::Held).map_err(|_| {
                self.corrupt(
                    format!("lease of run {run_id}"),
                    format!("generation `{text}`"),
                )
            }),
            0 => Ok(RawClaim::Refused(text)),
            _ => Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            }),
        }
    }

    pub(crate) async fn renew(
        &self,
        run_id: &str,
        fence: Fence<'_>,
        lease: Duration,
    ) -> Result<()> {
        let run = self.run_key(run_id);
        let mut c = self.connection.clone();
        let (code, holder): (i64, String) = self
            .scripts
            .renew
            .key(&run)
            .key(format!("{run}:lease"))
            .arg(fence.owner)
            .arg(fence.generation)
            .arg(millis(lease))
            .invoke_async(&mut c)
            .await
            .map_err(self.error("renew"))?;
        match code {
            1 => Ok(()),
            0 => Err(Error::LeaseLost {
                run_id: run_id.to_owned(),
                holder: (!holder.is_empty()).then_some(holder),
            }),
            _ => Err(Error::RunNotFound {
                run_id: run_id.to_owned(),
            }),
        }
    }

    pub(crate) async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        let run = self.run_key(run_id);
        let mut c = self.connection.clone();
        let _: i64 = self
            .scripts
            .release
            .key(&run)
            .key(format!("{run}:lease"))
            .arg(owner)
            .invoke_async(&mut c)
            .await
            .map_err(self.error("release"))?;
        Ok(())
    }

    pub(crate) async fn prune(&self, older_than: i64) -> Result<u64> {
        let runs = self.key("runs");
        let status_keys = self.status_keys();
        let mut c = self.connection.clone();
        let mut deleted = 0u64;
        // Runs kept (leased) stay in the range, so the next batch starts after them.
        let mut kept = 0isize;
        loop {
            let ids: Vec<String> = c
                .zrangebyscore_limit(
                    &runs,
                    "-inf",
                    format!("({older_than}"),
                    kept,
                    BATCH as isize,
                )
                .await
                .map_err(self.error("prune"))?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            let mut invocation = self.scripts.prune.key(&runs);
            for key in &status_keys {
                invocation.key(key);
            }
            invocation.arg(&self.prefix);
            for id in &ids {
                invocation.arg(id);
            }
            let n: u64 = invocation
                .invoke_async(&mut c)
                .await
                .map_err(self.error("prune"))?;
            deleted += n;
            kept += ids.len() as isize - n as isize;
        }
    }

    pub(crate) async fn record_model_metrics(&self, metrics: &[MetricRecord]) -> Result<()> {
        // One transaction: one round trip for every metric and what it adds to the rollups.
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_rollup(&mut pipe, &Rollup::of(metrics));
        let requests = self.key("requests");
        for m in metrics {
            let member = MetricMember {
                record: m.clone(),
                id: fastrand::u64(..),
            };
            let member = serde_json::to_string(&member).map_err(|e| Error::InvalidValue {
                what: format!("a metric of model {}", m.model),
                reason: e.to_string(),
            })?;
            if m.source == "upstream" {
                pipe.zadd(self.key(&format!("metrics:{}", m.model)), &member, m.at)
                    .ignore();
            }
            pipe.zadd(&requests, member, m.at).ignore();
        }
        let mut c = self.connection.clone();
        let () = pipe
            .query_async(&mut c)
            .await
            .map_err(self.error("record_model_metrics"))?;
        Ok(())
    }

    /// The requests recorded in `[since, until)`, read in pages from the time-ordered set.
    async fn requests(
        &self,
        since: i64,
        until: i64,
        operation: &'static str,
    ) -> Result<Vec<MetricRecord>> {
        let mut out = Vec::new();
        loop {
            let page = self
                .requests_page(since, until, out.len(), operation)
                .await?;
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// The [`PAGE`] requests of `[since, until)` from the `offset`th on.
    async fn requests_page(
        &self,
        since: i64,
        until: i64,
        offset: usize,
        operation: &'static str,
    ) -> Result<Vec<MetricRecord>> {
        let mut c = self.connection.clone();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("requests"))
            .arg(since)
            .arg(format!("({until}"))
            .arg("LIMIT")
            .arg(offset)
            .arg(PAGE)
            .query_async(&mut c)
            .await
            .map_err(self.error(operation))?;
        members
            .iter()
            .map(|member| {
                serde_json::from_str::<MetricMember>(member)
                    .map(|m| m.record)
                    .map_err(|e| self.corrupt("a recorded request".to_owned(), e.to_string()))
            })
            .collect()
    }

    pub(crate) async fn request_stats(&self, since: i64, until: i64) -> Result<StoredStats> {
        let op = "request_stats";
        let hours = rollup::split(since, until, HOUR);
        let mut records = Vec::new();
        for &(a, b) in &hours.edges {
            records.extend(self.requests(a, b, op).await?);
        }
        let mut stats = stats::fold_records(&records);
        let mut runs: HashSet<String> = records.iter().filter_map(|r| r.run_id.clone()).collect();
        let mut c = self.connection.clone();
        if let Some((lo, hi)) = hours.whole {
            let hashes: Vec<HashMap<String, String>> = self
                .each(
                    lo..hi,
                    |h| redis::cmd("HGETALL").arg(self.hour_key(h)).clone(),
                    op,
                )
                .await?;
            for hash in hashes {
                stats.groups.extend(self.hour_groups(hash)?);
            }
            let members: Vec<Vec<String>> = self
                .each(
                    lo..hi,
                    |h| redis::cmd("SMEMBERS").arg(self.runs_key(h)).clone(),
                    op,
                )
                .await?;
            runs.extend(members.into_iter().flatten());
        }
        stats.runs_with_requests = i64::try_from(runs.len()).unwrap_or(i64::MAX);
        // The busiest minute: whole minutes from their sums, partial ones from the edges' rows.
        let minutes = rollup::split(since, until, MINUTE);
        let mut peak = None;
        if let Some((lo, hi)) = minutes.whole {
            let counts: Vec<Option<i64>> = self
                .each(
                    lo..hi,
                    |m| redis::cmd("HGET").arg(self.minute_key(m)).arg("n").clone(),
                    op,
                )
                .await?;
            for (m, n) in (lo..hi).zip(counts) {
                peak = busier(peak, n.map(|n| (m, n)));
            }
        }
        for &(a, b) in &minutes.edges {
            let inside: Vec<MetricRecord> = records
                .iter()
                .filter(|r| r.at >= a && r.at < b)
                .cloned()
                .collect();
            peak = busier(peak, stats::fold_records(&inside).peak_minute);
        }
        stats.peak_minute = peak;
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("runs"))
            .arg(since)
            .arg(format!("({until}"))
            .query_async(&mut c)
            .await
            .map_err(self.error("request_stats"))?;
        let mut runs: std::collections::HashMap<(String, String), i64> =
            std::collections::HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET")
                    .arg(self.run_key(id))
                    .arg("pipeline_id")
                    .arg("status");
            }
            let rows: Vec<(Option<String>, Option<String>)> = pipe
                .query_async(&mut c)
                .await
                .map_err(self.error("request_stats"))?;
            // A run pruned between the two round trips is simply gone.
            for (pipeline, status) in rows {
                if let (Some(pipeline), Some(status)) = (pipeline, status) {
                    *runs.entry((pipeline, status)).or_default() += 1;
                }
            }
        }
        stats.runs = runs.into_iter().map(|((p, s), n)| (p, s, n)).collect();
        Ok(stats)
    }

    pub(crate) async fn request_series(
        &self,
        since: i64,
        until: i64,
        step: i64,
    ) -> Result<Vec<SlotGroup>> {
        let op = "request_series";
        // Whole minutes from their sums when each falls in one step; the rest from the rows.
        let minutes = rollup::series_split(since, until, step);
        let mut groups = Vec::new();
        if let Some((lo, hi)) = minutes.whole {
            let hashes: Vec<HashMap<String, String>> = self
                .each(
                    lo..hi,
                    |m| redis::cmd("HGETALL").arg(self.minute_key(m)).clone(),
                    op,
                )
                .await?;
            for (m, hash) in (lo..hi).zip(hashes) {
                if !hash.is_empty() {
                    let sums = minute_sums(&hash).map_err(|e| self.rollup_corrupt(e))?;
                    groups.push(rollup::slot_group(m, sums, since, step));
                }
            }
        }
        for &(a, b) in &minutes.edges {
            let records = self.requests(a, b, op).await?;
            groups.extend(stats::fold_slots(&records, since, step));
        }
        Ok(groups)
    }

    pub(crate) async fn record_cache_lookups(&self, lookups: &[LookupRecord]) -> Result<()> {
        // One transaction: the minutes' counts and the index of the minutes.
        let mut pipe = redis::pipe();
        pipe.atomic();
        let index = self.key("lookups");
        for l in lookups {
            let key = self.lookups_key(l.minute);
            pipe.hincr(&key, format!("hits:{}", l.cache), l.hits)
                .ignore();
            pipe.hincr(&key, format!("misses:{}", l.cache), l.misses)
                .ignore();
            pipe.zadd(&index, l.minute, l.minute).ignore();
        }
        let mut c = self.connection.clone();
        let () = pipe
            .query_async(&mut c)
            .await
            .map_err(self.error("record_cache_lookups"))?;
        Ok(())
    }

    /// Each cache's lookups of the minutes `[lo, hi)`, summed (one record per cache).
    pub(crate) async fn cache_totals(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let mut totals: BTreeMap<std::sync::Arc<str>, (i64, i64)> = BTreeMap::new();
        for l in self.cache_lookups(lo, hi).await? {
            let total = totals.entry(l.cache).or_default();
            total.0 += l.hits;
            total.1 += l.misses;
        }
        Ok(totals
            .into_iter()
            .map(|(cache, (hits, misses))| LookupRecord {
                minute: lo,
                cache,
                hits,
                misses,
            })
            .collect())
    }

    pub(crate) async fn cache_lookups(&self, lo: i64, hi: i64) -> Result<Vec<LookupRecord>> {
        let op = "cache_lookups";
        let mut c = self.connection.clone();
        let minutes: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("lookups"))
            .arg(lo)
            .arg(format!("({hi}"))
            .query_async(&mut c)
            .await
            .map_err(self.error(op))?;
        let mut out = Vec::new();
        for chunk in minutes.chunks(PAGE) {
            let mut pipe = redis::pipe();
            for m in chunk {
                pipe.cmd("HGETALL").arg(self.lookups_key(*m));
            }
            let hashes: Vec<HashMap<String, i64>> =
                pipe.query_async(&mut c).await.map_err(self.error(op))?;
            for (m, hash) in chunk.iter().zip(hashes) {
                let mut caches: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                for (field, n) in hash {
                    match field.split_once(':') {
                        Some(("hits", cache)) => caches.entry(cache.to_owned()).or_default().0 += n,
                        Some(("misses", cache)) => {
                            caches.entry(cache.to_owned()).or_default().1 += n;
                        }
                        _ => {
                            return Err(self.corrupt(
                                format!("the cache lookups of minute {m}"),
                                format!("a field `{field}`"),
                            ));
                        }
                    }
                }
                out.extend(
                    caches
                        .into_iter()
                        .map(|(cache, (hits, misses))| LookupRecord {
                            minute: *m,
                            cache: cache.into(),
                            hits,
                            misses,
                        }),
                );
            }
        }
        Ok(out)
    }

    fn lookups_key(&self, minute: i64) -> String {
        self.key(&format!("lookups:{minute}"))
    }

    fn hour_key(&self, hour: i64) -> String {
        self.key(&format!("rollup:hour:{hour}"))
    }

    fn minute_key(&self, minute: i64) -> String {
        self.key(&format!("rollup:minute:{minute}"))
    }

    fn runs_key(&self, hour: i64) -> String {
        self.key(&format!("rollup:runs:{hour}"))
    }

    fn rollup_corrupt(&self, reason: String) -> Error {
        rollup::corrupt(&self.url, reason)
    }

    /// One command per unit of `units`, pipelined [`PAGE`] at a time; their answers in order.
    async fn each<T: redis::FromRedisValue>(
        &self,
        units: std::ops::Range<i64>,
        command: impl Fn(i64) -> redis::Cmd,
        operation: &'static str,
    ) -> Result<Vec<T>> {
        let mut c = self.connection.clone();
        let mut out = Vec::new();
        let mut start = units.start;
        while start < units.end {
            let end = units.end.min(start.saturating_add(PAGE as i64));
            let mut pipe = redis::pipe();
            for unit in start..end {
                pipe.add_command(command(unit));
            }
            let answers: Vec<T> = pipe
                .query_async(&mut c)
                .await
                .map_err(self.error(operation))?;
            out.extend(answers);
            start = end;
        }
        Ok(out)
    }

    /// The report's groups of an hour's hash.
    fn hour_groups(&self, hash: HashMap<String, String>) -> Result<Vec<MetricGroup>> {
        let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
        for (field, value) in hash {
            let (key, sum) = field
                .rsplit_once('\n')
                .ok_or_else(|| self.rollup_corrupt(format!("a field `{field}` without a sum")))?;
            let s = sums.entry(key.to_owned()).or_default();
            let bad = |e: String| self.rollup_corrupt(format!("field `{field}`: {e}"));
            match sum {
                "n" => s.requests = parse(&value).map_err(bad)?,
                "cost" => s.cost = parse(&value).map_err(bad)?,
                "latency" => s.latency_ms = parse(&value).map_err(bad)?,
                "in" => s.input_tokens = parse(&value).map_err(bad)?,
                "out" => s.output_tokens = parse(&value).map_err(bad)?,
                _ => {
                    let bucket = sum
                        .strip_prefix('b')
                        .ok_or_else(|| bad("an unknown sum".to_owned()))?;
                    s.buckets
                        .insert(parse(bucket).map_err(bad)?, parse(&value).map_err(bad)?);
                }
            }
        }
        sums.into_iter()
            .map(|(key, sums)| {
                let key: GroupKey = serde_json::from_str(&key)
                    .map_err(|e| self.rollup_corrupt(format!("a key `{key}`: {e}")))?;
                Ok(rollup::metric_group(key, sums))
            })
            .collect()
    }

    /// Adds a batch's sums to the rollups' hashes and sets, in `pipe`.
    fn add_rollup(&self, pipe: &mut redis::Pipeline, rollup: &Rollup) {
        for ((hour, key), sums) in &rollup.hours {
            let hash = self.hour_key(*hour);
            // JSON text holds no raw newline.
            let key = serde_json::to_string(key).unwrap_or_default();
            pipe.hincr(&hash, format!("{key}\nn"), sums.requests)
                .ignore();
            for (name, value) in [("cost", sums.cost), ("latency", sums.latency_ms)] {
                if value != 0.0 {
                    pipe.cmd("HINCRBYFLOAT")
                        .arg(&hash)
                        .arg(format!("{key}\n{name}"))
                        .arg(value)
                        .ignore();
                }
            }
            for (name, value) in [("in", sums.input_tokens), ("out", sums.output_tokens)] {
                if value != 0 {
                    pipe.hincr(&hash, format!("{key}\n{name}"), value).ignore();
                }
            }
            for (bucket, n) in &sums.buckets {
                pipe.hincr(&hash, format!("{key}\nb{bucket}"), *n).ignore();
            }
        }
        for (minute, sums) in &rollup.minutes {
            let hash = self.minute_key(*minute);
            pipe.hincr(&hash, "n", sums.requests).ignore();
            for (name, value) in [
                ("errors", sums.errors),
                ("hits", sums.cache_hits),
                ("misses", sums.cache_misses),
            ] {
                if value != 0 {
                    pipe.hincr(&hash, name, value).ignore();
                }
            }
            if sums.cost != 0.0 {
                pipe.cmd("HINCRBYFLOAT")
                    .arg(&hash)
                    .arg("cost")
                    .arg(sums.cost)
                    .ignore();
            }
            for (bucket, n) in &sums.buckets {
                pipe.hincr(&hash, format!("b{bucket}"), *n).ignore();
            }
        }
        for (hour, run) in &rollup.runs {
            pipe.sadd(self.runs_key(*hour), run).ignore();
        }
    }

    /// Builds the rollups of a store from before schema 5 out of its `requests`, unless another
    /// process is at it; then this one waits until the version is raised. Whether this process
    /// should raise it.
    async fn build_rollups(&self) -> Result<bool> {
        let lock = self.key("rollup:rebuild");
        let mut c = self.connection.clone();
        loop {
            let took: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(std::process::id())
                .arg("NX")
                .arg("PX")
                .arg(REBUILD_LEASE_MS)
                .query_async(&mut c)
                .await
                .map_err(self.error("open"))?;
            if took.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let version: Option<i64> = c
                .get(self.key("schema"))
                .await
                .map_err(self.error("open"))?;
            if version.is_some_and(|v| v >= LATEST) {
                return Ok(false);
            }
        }
        // What an interrupted build left, then every recorded request a page at a time.
        let pattern = format!("{}rollup:*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .map_err(self.error("open"))?;
            let keys: Vec<String> = keys.into_iter().filter(|k| *k != lock).collect();
            if !keys.is_empty() {
                let () = c.del(keys).await.map_err(self.error("open"))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut offset = 0;
        loop {
            let page = self
                .requests_page(i64::MIN, i64::MAX, offset, "open")
                .await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.add_rollup(&mut pipe, &Rollup::of(&page));
            let () = pipe.query_async(&mut c).await.map_err(self.error("open"))?;
            if page.len() < PAGE {
                break;
            }
            offset += page.len();
        }
        let () = c.del(&lock).await.map_err(self.error("open"))?;
        Ok(true)
    }

    pub(crate) async fn model_metrics(
        &self,
        model: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<MetricRecord>> {
        let key = self.key(&format!("metrics:{model}"));
        let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
        cmd.arg(&key).arg("+inf").arg(since);
        if limit != 0 {
            cmd.arg("LIMIT").arg(0).arg(limit);
        }
        let mut c = self.connection.clone();
        let members: Vec<String> = cmd
            .query_async(&mut c)
            .await
            .map_err(self.error("model_metrics"))?;
        members
            .iter()
            .map(|member| {
                serde_json::from_str::<MetricMember>(member)
                    .map(|m| m.record)
                    .map_err(|e| self.corrupt(format!("a metric of model {model}"), e.to_string()))
            })
            .collect()
    }

    fn registry_key(&self, id: &str) -> String {
        format!("{}registry:{id}", self.prefix)
    }

    pub(crate) async fn put_pipeline(&self, p: NewPipelineRecord<'_>) -> Result<StoredPipeline> {
        let mut invocation = self.scripts.put_pipeline.key(self.registry_key(p.id));
        invocation
            .key(self.key("registry"))
            .arg(p.id)
            .arg(p.pipeline_id)
            .arg(if p.name.is_some() { "1" } else { "0" })
            .arg(p.name.unwrap_or_default())
            .arg(if p.description.is_some() { "1" } else { "0" })
            .arg(p.description.unwrap_or_default())
            .arg(p.hash)
            .arg(p.steps)
            .arg(p.now)
            .arg(if p.text.compressed { "1" } else { "0" })
            .arg(p.text.bytes)
            .arg(&PIPELINE_FIELDS);
        let mut c = self.connection.clone();
        let fields: Vec<Option<String>> = invocation
            .invoke_async(&mut c)
            .await
            .map_err(self.error("put_pipeline"))?;
        self.stored_pipeline(p.id, fields)?.ok_or_else(|| {
            self.corrupt(
                format!("pipeline {}", p.id),
                "missing right after it was written",
            )
        })
    }

    pub(crate) async fn pipeline(&self, id: &str) -> Result<Option<(StoredPipeline, Packed)>> {
        let mut c = self.connection.clone();
        // One transaction: the row and the text of the same put.
        type Stored = (Vec<Option<String>>, (Option<String>, Option<Vec<u8>>));
        let (fields, (compressed, text)): Stored = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(self.registry_key(id))
            .arg(&PIPELINE_FIELDS)
            .cmd("HMGET")
            .arg(self.registry_key(id))
            .arg("text_compressed")
            .arg("text")
            .query_async(&mut c)
            .await
            .map_err(self.error("pipeline"))?;
        let Some(row) = self.stored_pipeline(id, fields)? else {
            return Ok(None);
        };
        let what = || format!("pipeline {id}");
        let compressed = match compressed.as_deref() {
            Some("0") => false,
            Some("1") => true,
            _ => return Err(self.corrupt(what(), "no text_compressed flag")),
        };
        let bytes = text.ok_or_else(|| self.corrupt(what(), "no text"))?;
        Ok(Some((row, Packed { bytes, compressed })))
    }

    pub(crate) async fn list_pipelines(&self, limit: u32) -> Result<Vec<StoredPipeline>> {
        let want = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let index = self.key("registry");
        let mut rows = Vec::new();
        let mut offset = 0usize;
        let mut c = self.connection.clone();
        while rows.len() < want {
            let batch = BATCH.min(want - rows.len());
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg("-")
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(offset)
                .arg(batch)
                .query_async(&mut c)
                .await
                .map_err(self.error("list_pipelines"))?;
            if ids.is_empty() {
                break;
            }
            offset += ids.len();
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET")
                    .arg(self.registry_key(id))
                    .arg(&PIPELINE_FIELDS);
            }
            let found: Vec<Vec<Option<String>>> = pipe
                .query_async(&mut c)
                .await
                .map_err(self.error("list_pipelines"))?;
            for (id, fields) in ids.iter().zip(found) {
                // A pipeline deleted between the two round trips is simply gone.
                if let Some(row) = self.stored_pipeline(id, fields)? {
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    pub(crate) async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let mut c = self.connection.clone();
        let deleted: i64 = self
            .scripts
            .delete_pipeline
            .key(self.registry_key(id))
            .key(self.key("registry"))
            .arg(id)
            .invoke_async(&mut c)
            .await
            .map_err(self.error("delete_pipeline"))?;
        Ok(deleted > 0)
    }

    /// A registered pipeline from its hash's [`PIPELINE_FIELDS`]; `None` when the hash does not
    /// exist.
    fn stored_pipeline(
        &self,
        id: &str,
        fields: Vec<Option<String>>,
    ) -> Result<Option<StoredPipeline>> {
        let what = || format!("pipeline {id}");
        let mut fields = fields.into_iter();
        let mut next = || fields.next().flatten();
        let Some(pipeline_id) = next() else {
            return Ok(None);
        };
        let name = next();
        let description = next();
        let mut text =
            |field: &str| next().ok_or_else(|| self.corrupt(what(), format!("no {field}")));
        let hash = text("hash")?;
        let steps = text("steps")?;
        let version = text("version")?;
        let created_at = text("created_at")?;
        let updated_at = text("updated_at")?;
        let number = |field: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| self.corrupt(what(), format!("{field} is `{v}`, not a number")))
        };
        Ok(Some(StoredPipeline {
            id: id.to_owned(),
            pipeline_id,
            name,
            description,
            hash,
            steps: number("steps", &steps)?,
            version: number("version", &version)?,
            created_at: number("created_at", &created_at)?,
            updated_at: number("updated_at", &updated_at)?,
        }))
    }
}

/// The hash fields of a registered pipeline's row, in the order
/// [`RedisStore::stored_pipeline`] reads them.
const PIPELINE_FIELDS: [&str; 8] = [
    "pipeline_id",
    "name",
    "description",
    "hash",
    "steps",
    "version",
    "created_at",
    "updated_at",
];

/// A write's fence as two script arguments: the owner ('' = none) and the generation.
fn fence_args(invocation: &mut redis::ScriptInvocation<'_>, fence: Option<Fence<'_>>) {
    match fence {
        Some(f) => invocation.arg(f.owner).arg(f.generation),
        None => invocation.arg("").arg(0),
    };
}

/// The hash fields of a run, in the order [`RedisStore::stored_run`] reads them.
const RUN_FIELDS: [&str; 8] = [
    "pipeline_id",
    "pipeline_path",
    "pipeline_hash",
    "inputs",
    "status",
    "started_at",
    "steps_done",
    "finished_at",
];

/// A checkpoint as one list element.
fn encode_step(step: &NewStep<'_>) -> Vec<u8> {
    let header = StepHeader {
        step_id: Cow::Borrowed(step.step_id),
        status: Cow::Borrowed(step.status),
        started_at: step.started_at,
        completed_at: step.completed_at,
        attempts: step.attempts,
        model: step.model.map(Cow::Borrowed),
        usage: step.usage.as_deref().map(Cow::Borrowed),
        cost: step.cost,
        compressed: step.compressed,
    };
    // Serializing plain fields cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + header.len() + step.payload.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&step.payload);
    out
}

/// The checkpoint at position `seq` from its list element.
fn decode_step(seq: i64, item: &[u8]) -> Result<StoredStep, String> {
    let (len, rest) = item
        .split_first_chunk::<4>()
        .ok_or("shorter than its header")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("shorter than its header".to_owned());
    }
    let (header, payload) = rest.split_at(len);
    let h: StepHeader<'_> = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    Ok(StoredStep {
        seq,
        step_id: h.step_id.into_owned(),
        status: h.status.into_owned(),
        started_at: h.started_at,
        completed_at: h.completed_at,
        attempts: h.attempts,
        model: h.model.map(Cow::into_owned),
        usage: h.usage.map(Cow::into_owned),
        cost: h.cost,
        compressed: h.compressed,
        payload: payload.to_vec(),
    })
}
