//! Where a crash test keeps its runs: SQLite in each trial's sandbox, a PostgreSQL database of
//! the test's own, or a Redis logical database only the crash tests use.

use std::process::Command;

use crate::support::Sandbox;
use crate::workers::Database;

/// The Redis logical database of the crash trials (the other tests use 0, 1 and 11).
pub(super) const REDIS_DB: u32 = 6;
/// The Redis logical database of the split-brain case, whose run must not be pruned by the
/// trials' clean-up while its lease has lapsed.
pub(super) const REDIS_SPLIT_DB: u32 = 7;

/// A state store for the trials of one test.
pub(super) enum Backend {
    /// `$ORC_HOME/state.db` of each trial's sandbox.
    Sqlite,
    /// A database created for the test, dropped when it ends.
    Postgres(Database),
    /// A Redis logical database of the test's own ([`REDIS_DB`], [`REDIS_SPLIT_DB`]); run ids
    /// are unique, and the test prunes its runs.
    Redis(String),
}

impl Backend {
    /// The backend called `name` (`sqlite`, `postgres`, `redis`; Redis in logical database
    /// `redis_db`), or `None` (with a line saying why) when its server cannot be reached.
    pub(super) fn open(name: &str, redis_db: u32) -> Option<Backend> {
        match name {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" => Database::create("crash").map(Backend::Postgres),
            _ => {
                let url = crate::support::redis_url();
                crate::support::reachable("Redis", &url)
                    .then(|| Backend::Redis(format!("{url}/{redis_db}")))
            }
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
            Backend::Redis(_) => "Redis",
        }
    }

    /// `orc [--state URL]` in the sandbox, with the model's key.
    pub(super) fn orc(&self, sb: &Sandbox) -> Command {
        let mut c = sb.command();
        c.env(crate::models::KEY_VAR, crate::models::KEY)
            .env_remove("CRASH_WRITER")
            // Few connections: PostgreSQL takes 100 in all, shared by every test.
            .env("ORC_PERFORMANCE__DATABASE__CONNECTION_POOL_SIZE", "4");
        match self {
            Backend::Sqlite => {}
            Backend::Postgres(db) => {
                c.args(["--state", &db.url]);
            }
            Backend::Redis(url) => {
                c.args(["--state", url]);
            }
        }
        c
    }

    /// Removes the test's runs from a shared server (a PostgreSQL database is dropped whole).
    pub(super) fn clean_up(&self, sb: &Sandbox) {
        if let Backend::Redis(_) = self {
            let _ = self
                .orc(sb)
                .args(["runs", "prune", "--older-than", "0s"])
                .output();
        }
    }
}
