use std::io;
use std::path::PathBuf;

/// Errors of the cache. [`Cache::get`](crate::Cache::get) and friends never return them (a failing
/// backend counts as a miss); they come from [`Cache::open`](crate::Cache::open),
/// [`Cache::usage`](crate::Cache::usage), [`Cache::clear`](crate::Cache::clear), [`Cache::check`](crate::Cache::check) and
/// [`FileCache`](crate::FileCache).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL does not parse. `url` has its password replaced by `***`.
    #[error(
        "invalid cache URL `{url}`: {reason}\nhint: use redis://[user:password@]host[:port][/db], rediss://… for TLS, or unix:///path/to/redis.sock"
    )]
    InvalidUrl {
        /// The URL as given, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The namespace cannot name a directory and a Redis key prefix.
    #[error(
        "invalid cache namespace `{namespace}`: {reason}\nhint: use letters, digits, `-`, `_` and `.` (not first), at most 64 characters"
    )]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing an entry or the cache directory failed.
    #[error("cache {path}: {source}", path = path.display())]
    Io {
        /// The entry or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Redis failed, timed out or could not be reached.
    #[error("redis cache: {message}")]
    Redis {
        /// What went wrong (never contains the password).
        message: String,
    },
    /// A stored entry could not be decoded; reads treat it as a miss and remove it.
    #[error("corrupt cache entry {entry}: {reason}")]
    Corrupt {
        /// Where the entry lives: a file path or a Redis key.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
