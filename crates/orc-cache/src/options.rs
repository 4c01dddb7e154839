use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use orc_redact::redact_url;

/// Which store entries live in.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// In this process's memory (moka), bounded by entries and bytes; gone when the process ends.
    Memory,
    /// Files under `dir/<namespace>/`, one per entry, shared by every process that uses the directory.
    File {
        /// The cache directory; it is created on the first write.
        dir: PathBuf,
    },
    /// A Redis server, under the keys `orc:<namespace>:<hash>`, shared by every machine that uses it.
    Redis {
        /// `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS) or `unix:///path`.
        url: String,
    },
}

impl fmt::Debug for Backend {
    /// Prints the Redis URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Memory => f.write_str("Memory"),
            Backend::File { dir } => f.debug_struct("File").field("dir", dir).finish(),
            Backend::Redis { url } => f
                .debug_struct("Redis")
                .field("url", &redact_url(url))
                .finish(),
        }
    }
}

/// How a [`Cache`](crate::Cache) stores entries. Start from [`CacheOptions::default`] and set what differs.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Which store entries live in.
    pub backend: Backend,
    /// Keeps caches that share a store apart, e.g. `"model"`: the Redis key prefix `orc:<namespace>:`
    /// and the sub-directory of a file cache. Letters, digits, `-`, `_` and `.` (not first).
    pub namespace: String,
    /// Entries older than this are misses (and removed lazily). `None` keeps entries until evicted.
    pub ttl: Option<Duration>,
    /// Memory: the most entries kept. Enforced together with `max_bytes` by charging every entry at
    /// least `max_bytes / max_entries` bytes, so neither bound is exceeded; many small entries
    /// therefore hold fewer real bytes than `max_bytes`. Ignored by the file and Redis backends
    /// (bound those with the disk and Redis's `maxmemory`).
    pub max_entries: u64,
    /// Memory: the most bytes of stored values kept; least useful entries are evicted beyond it.
    /// A value larger than an eighth of it is not kept at all (so one value cannot flush the cache).
    /// Ignored by the file and Redis backends.
    pub max_bytes: u64,
    /// Compress stored values with zstd (level 3) when that saves space. Entries written either
    /// way read back whatever this is set to now.
    pub compression: bool,
    /// Redis: the longest one operation (and connecting) may take; past it the call is a miss.
    pub op_timeout: Duration,
}

impl Default for CacheOptions {
    /// Memory, namespace `default`, no TTL, 10 000 entries, 256 MiB, no compression, 250 ms.
    fn default() -> Self {
        CacheOptions {
            backend: Backend::Memory,
            namespace: "default".to_owned(),
            ttl: None,
            max_entries: 10_000,
            max_bytes: 256 * 1024 * 1024,
            compression: false,
            op_timeout: Duration::from_millis(250),
        }
    }
}
