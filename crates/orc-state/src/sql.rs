//! What the two SQL backends share: their migration table and turning sqlx's errors into ours
//! (and rusqlite's, which drives the SQLite writer).

use sqlx::migrate::MigrateError;

use crate::Error;
use crate::codec::Packed;
use crate::records::{
    LookupRecord, MetricGroup, MetricRecord, SlotGroup, StoredPipeline, StoredStats,
};
use crate::rollup::{self, MinuteSums, Sums};
use crate::url::scrub;

/// The table that records applied migrations. Not sqlx's default, so that a database some other
/// sqlx program migrated is told apart from an orc store.
pub(crate) const MIGRATIONS_TABLE: &str = "orc_schema_migrations";

/// Which database answered, for the SQLSTATE-style codes it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Extended result codes as decimal numbers.
    Sqlite,
    /// SQLSTATE codes.
    Postgres,
}

/// The error code of a database error, as the database reports it.
pub(crate) fn db_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// SQLite's primary result code (the low byte of the extended one).
pub(crate) fn sqlite_primary(e: &sqlx::Error) -> Option<i32> {
    db_code(e)?.parse::<i32>().ok().map(|c| c & 0xff)
}

/// SQLite's primary result code of a rusqlite error.
pub(crate) fn rusqlite_primary(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code & 0xff),
        _ => None,
    }
}

/// Whether a SQLite primary result code says another connection holds the lock (SQLITE_BUSY,
/// SQLITE_LOCKED): the same call may succeed later.
fn sqlite_contended(primary: Option<i32>) -> bool {
    matches!(primary, Some(5 | 6))
}

/// Whether rusqlite reports a PRIMARY KEY or UNIQUE constraint failing.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            )
    )
}

/// What went wrong, in the database's own words: its message without the source position
/// sqlx's formatting adds.
pub(crate) fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        e => e.to_string(),
    }
}

/// [`describe`] for rusqlite: the same words and code as sqlx gives for the same failure.
pub(crate) fn describe_rusqlite(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(failure, Some(message)) => {
            format!("{message} (code {})", failure.extended_code)
        }
        e => e.to_string(),
    }
}

/// [`describe`] for a migration error.
fn describe_migrate(e: &MigrateError) -> String {
    match e {
        MigrateError::Execute(e) => describe(e),
        MigrateError::ExecuteMigration(e, version) => {
            format!("migration {version}: {}", describe(e))
        }
        e => e.to_string(),
    }
}

/// Whether running the same call again may succeed.
pub(crate) fn is_retryable(e: &sqlx::Error, dialect: Dialect) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(_) => match dialect {
            Dialect::Sqlite => sqlite_contended(sqlite_primary(e)),
            Dialect::Postgres => db_code(e).is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(
                        code.as_str(),
                        "40001" | "40P01" | "55P03" | "57014" | "53300" | "53400"
                    )
            }),
        },
        _ => false,
    }
}

/// `e` from `operation` as this crate's error, the password scrubbed from its message.
pub(crate) fn query_error(
    url: &str,
    raw_url: &str,
    operation: &'static str,
    e: sqlx::Error,
    dialect: Dialect,
) -> Error {
    Error::Backend {
        url: url.to_owned(),
        operation,
        retryable: is_retryable(&e, dialect),
        message: scrub(describe(&e), raw_url),
    }
}

/// [`query_error`] for the SQLite writer, which rusqlite drives.
pub(crate) fn sqlite_write_error(url: &str, operation: &'static str, e: rusqlite::Error) -> Error {
    Error::Backend {
        url: url.to_owned(),
        operation,
        retryable: sqlite_contended(rusqlite_primary(&e)),
        message: scrub(describe_rusqlite(&e), url),
    }
}

/// A failed migration as this crate's error.
pub(crate) fn migrate_error(url: &str, raw_url: &str, e: MigrateError) -> Error {
    let hint = match &e {
        MigrateError::VersionMismatch(_) | MigrateError::VersionMissing(_) => {
            "the database's schema history does not match this orc's; point the state URL at another database"
        }
        MigrateError::Dirty(_) => {
            "a migration was interrupted; restore the database from a backup or start a new one"
        }
        _ if is_permission(&e) => {
            "the database user needs the right to create tables (PostgreSQL: GRANT CREATE ON SCHEMA …, or on the database to create a schema); for SQLite, make the file and its directory writable"
        }
        _ => "check that the database is reachable and writable, then try again",
    };
    Error::Migrate {
        url: url.to_owned(),
        message: scrub(describe_migrate(&e), raw_url),
        hint: hint.to_owned(),
    }
}

/// Whether a migration failed for want of a permission.
fn is_permission(e: &MigrateError) -> bool {
    let inner = match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => e,
        _ => return false,
    };
    db_code(inner).is_some_and(|c| c == "42501")
        || matches!(sqlite_primary(inner), Some(3 | 8 | 23))
}

/// A registered pipeline's row as sqlx decodes it.
pub(crate) type PipelineTuple = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    i64,
);

pub(crate) fn stored_pipeline(t: PipelineTuple) -> StoredPipeline {
    StoredPipeline {
        id: t.0,
        pipeline_id: t.1,
        name: t.2,
        description: t.3,
        hash: t.4,
        steps: t.5,
        version: t.6,
        created_at: t.7,
        updated_at: t.8,
    }
}

/// A registered pipeline's row with its stored text, as sqlx decodes it.
pub(crate) type PipelineTextTuple = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    i64,
    bool,
    Vec<u8>,
);

pub(crate) fn stored_pipeline_text(t: PipelineTextTuple) -> (StoredPipeline, Packed) {
    let text = Packed {
        bytes: t.10,
        compressed: t.9,
    };
    let row = stored_pipeline((t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7, t.8));
    (row, text)
}

/// A model metric's row as sqlx decodes it.
pub(crate) type MetricTuple = (
    String,
    String,
    i64,
    f64,
    bool,
    i64,
    i64,
    f64,
    String,
    Option<bool>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn metric_record(t: MetricTuple) -> MetricRecord {
    MetricRecord {
        model: t.0,
        provider: t.1,
        at: t.2,
        latency_ms: t.3,
        success: t.4,
        input_tokens: t.5,
        output_tokens: t.6,
        cost: t.7,
        source: t.8,
        cache_hit: t.9,
        error_kind: t.10,
        run_id: t.11,
        pipeline_id: t.12,
    }
}

/// A row of the report's sums as sqlx decodes it: the keys, then the count and the sums.
pub(crate) type GroupTuple = (
    String,
    String,
    Option<String>,
    Option<bool>,
    Option<String>,
    bool,
    Option<i64>,
    i64,
    f64,
    f64,
    i64,
    i64,
);

/// A report's reads as a backend returns them: the sums, the busiest minute, the runs that made
/// requests, the runs started (pipeline, status, how many).
pub(crate) fn stored_stats(
    groups: Vec<MetricGroup>,
    peak_minute: Option<(i64, i64)>,
    runs_with_requests: i64,
    runs: Vec<(String, String, i64)>,
) -> StoredStats {
    StoredStats {
        groups,
        peak_minute,
        runs_with_requests,
        runs,
    }
}

pub(crate) fn metric_group(t: GroupTuple) -> MetricGroup {
    MetricGroup {
        model: t.0,
        provider: t.1,
        pipeline_id: t.2,
        cache_hit: t.3,
        error_kind: t.4,
        success: t.5,
        buckets: t.6.map(|b| vec![(b, t.7)]).unwrap_or_default(),
        requests: t.7,
        cost: t.8,
        latency_ms: t.9,
        input_tokens: t.10,
        output_tokens: t.11,
    }
}

/// A row of a series' sums as sqlx decodes it.
pub(crate) type SlotTuple = (i64, Option<bool>, bool, Option<i64>, i64, f64);

pub(crate) fn slot_group(t: SlotTuple) -> SlotGroup {
    let (slot, cache_hit, success, bucket, n, cost) = t;
    SlotGroup {
        slot,
        requests: n,
        errors: if success { 0 } else { n },
        cache_hits: if cache_hit == Some(true) { n } else { 0 },
        cache_misses: if cache_hit == Some(false) { n } else { 0 },
        cost,
        buckets: bucket.map(|b| vec![(b, n)]).unwrap_or_default(),
    }
}

/// A stored hour of the report's sums as sqlx decodes it: the key's columns (see
/// [`GroupKey::pipeline_column`](crate::rollup::GroupKey::pipeline_column)), the sums, the
/// latency histogram's text.
pub(crate) type HourTuple = (
    String,
    String,
    String,
    i64,
    String,
    bool,
    i64,
    f64,
    f64,
    i64,
    i64,
    String,
);

pub(crate) fn hour_group(t: HourTuple) -> std::result::Result<MetricGroup, String> {
    let key = rollup::key_of_columns(t.0, t.1, t.2, t.3, t.4, t.5);
    let sums = Sums {
        requests: t.6,
        cost: t.7,
        latency_ms: t.8,
        input_tokens: t.9,
        output_tokens: t.10,
        buckets: rollup::parse_hist(&t.11)?,
    };
    Ok(rollup::metric_group(key, sums))
}

/// A stored minute's sums as sqlx decodes it: the minute, requests, errors, cache hits and
/// misses, cost, the latency histogram's text.
pub(crate) type MinuteTuple = (i64, i64, i64, i64, i64, f64, String);

/// One cache's lookups of a period as read: its name, and its minutes packed as text,
/// `minute:hits:misses` joined by `,` (one row per cache: decoding a row costs far more than
/// parsing its numbers, and a day has 1,440 minutes per cache).
pub(crate) type PackedLookups = (String, String);

/// A cache's lookups summed over a period: its name, hits, misses.
pub(crate) type LookupTotals = (String, i64, i64);

/// The caches' packed minutes ([`PackedLookups`]) as records; `url` names the store when one
/// does not read back.
pub(crate) fn unpack_lookups(
    rows: Vec<PackedLookups>,
    url: &str,
) -> crate::Result<Vec<LookupRecord>> {
    let mut out = Vec::new();
    for row in rows {
        lookup_records(row, &mut out).map_err(|e| rollup::corrupt_lookups(url, e))?;
    }
    Ok(out)
}

/// The caches' sums ([`LookupTotals`]) as one record each, dated `minute`.
pub(crate) fn lookup_totals(rows: Vec<LookupTotals>, minute: i64) -> Vec<LookupRecord> {
    rows.into_iter()
        .map(|(cache, hits, misses)| LookupRecord {
            minute,
            cache: cache.into(),
            hits,
            misses,
        })
        .collect()
}

/// A cache's packed minutes ([`PackedLookups`]) as records.
fn lookup_records(
    (cache, packed): PackedLookups,
    out: &mut Vec<LookupRecord>,
) -> Result<(), String> {
    let name: std::sync::Arc<str> = cache.as_str().into();
    for item in packed.split(',').filter(|i| !i.is_empty()) {
        let mut numbers = item.splitn(3, ':').map(str::parse::<i64>);
        let (Some(Ok(minute)), Some(Ok(hits)), Some(Ok(misses))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return Err(format!(
                "the {cache} cache's lookups hold `{item}`, not minute:hits:misses"
            ));
        };
        out.push(LookupRecord {
            minute,
            cache: std::sync::Arc::clone(&name),
            hits,
            misses,
        });
    }
    Ok(())
}

pub(crate) fn minute_group(
    t: MinuteTuple,
    since: i64,
    step: i64,
) -> std::result::Result<SlotGroup, String> {
    let sums = MinuteSums {
        requests: t.1,
        errors: t.2,
        cache_hits: t.3,
        cache_misses: t.4,
        cost: t.5,
        buckets: rollup::parse_hist(&t.6)?,
    };
    Ok(rollup::slot_group(t.0, sums, since, step))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn rusqlite_errors_map_as_sqlx_ones_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let url = format!("sqlite://{}", path.display());
        let a = rusqlite::Connection::open(&path).unwrap();
        a.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE CHECK (v <> ''));
             INSERT INTO t (id, v) VALUES (1, 'x');",
        )
        .unwrap();
        let insert = |id: i64, v: &str| {
            a.execute("INSERT INTO t (id, v) VALUES (?1, ?2)", (id, v))
                .unwrap_err()
        };
        assert!(is_unique_violation(&insert(1, "y")));
        assert!(is_unique_violation(&insert(2, "x")));
        let check = insert(3, "");
        assert!(!is_unique_violation(&check));
        let e = sqlite_write_error(&url, "append", check);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            format!(
                "state store {url}: append failed: CHECK constraint failed: v <> '' (code 275)"
            )
        );

        // Another connection holds the write lock: retryable, in SQLite's words.
        let b = rusqlite::Connection::open(&path).unwrap();
        b.execute_batch("BEGIN IMMEDIATE").unwrap();
        a.busy_timeout(Duration::ZERO).unwrap();
        let busy = insert(4, "z");
        assert_eq!(rusqlite_primary(&busy), Some(5));
        let e = sqlite_write_error(&url, "append", busy);
        assert!(e.is_retryable());
        assert!(
            e.to_string()
                .ends_with("append failed: database is locked (code 5)"),
            "{e}"
        );
    }

    #[test]
    fn packed_lookups_read_back() {
        let mut out = Vec::new();
        lookup_records(("step".to_owned(), "10:2:1,11:0:3".to_owned()), &mut out).unwrap();
        lookup_records(("compile".to_owned(), String::new()), &mut out).unwrap();
        assert_eq!(
            out,
            [
                LookupRecord {
                    minute: 10,
                    cache: "step".into(),
                    hits: 2,
                    misses: 1
                },
                LookupRecord {
                    minute: 11,
                    cache: "step".into(),
                    hits: 0,
                    misses: 3
                },
            ]
        );
        for bad in ["10:2", "10:x:1", "10:2:1:4"] {
            let e = lookup_records(("step".to_owned(), bad.to_owned()), &mut out).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
