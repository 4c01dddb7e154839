use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use orc_telemetry::names::{self, label};

use crate::file::FileStore;
use crate::memory::MemoryStore;
use crate::redact::describe_url;
use crate::redis_store::RedisStore;
use crate::{Backend, CacheOptions, Error, Key, Result, Usage};

/// TTLs are capped here (moka refuses more than 1000 years; nobody needs more than this).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// At most one warning about backend errors per cache in this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Namespaces are at most this long.
const MAX_NAMESPACE_LEN: usize = 64;

/// A byte cache over one backend. Reads and writes never fail: a backend error counts as a miss,
/// is counted in [`Stats::errors`] and logged (at most one warning per 10 s). Cloning is cheap and
/// clones share the store and the counters.
///
/// A Redis cache connects on first use and keeps that connection's tasks on the Tokio runtime of
/// that first use.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    description: String,
    /// The namespace, as the `cache` label of this cache's metrics.
    label: metrics::SharedString,
    counters: Counters,
    warnings: Mutex<Warnings>,
}

enum Store {
    Memory(MemoryStore),
    File(FileStore),
    /// Boxed: it is much larger than the others, and network time dwarfs the indirection.
    Redis(Box<RedisStore>),
}

/// Counters of one cache in this process since it was opened (clones share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that found an entry.
    pub hits: u64,
    /// Reads that found none, failed reads included.
    pub misses: u64,
    /// Operations the backend could not serve: failures, timeouts, corrupt entries, and calls
    /// skipped while a Redis that could not be reached is left alone.
    pub errors: u64,
    /// Values stored.
    pub puts: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    puts: AtomicU64,
}

#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Cache {
    /// A cache as `options` say. Cheap and synchronous: it checks the namespace and the Redis URL
    /// but connects to nothing and needs no runtime (Redis connects on first use).
    pub fn open(options: CacheOptions) -> Result<Cache> {
        check_namespace(&options.namespace)?;
        let ttl = options.ttl.map(|ttl| ttl.min(MAX_TTL));
        let (store, description) = match options.backend {
            Backend::Memory => (
                Store::Memory(MemoryStore::new(
                    options.max_entries,
                    options.max_bytes,
                    ttl,
                    options.compression,
                    label(&options.namespace),
                )),
                "memory".to_owned(),
            ),
            Backend::File { dir } => {
                let store = FileStore::new(dir.join(&options.namespace), ttl, options.compression);
                let description = format!("file {}", store.dir().display());
                (Store::File(store), description)
            }
            Backend::Redis { url } => (
                Store::Redis(Box::new(RedisStore::open(
                    &url,
                    &options.namespace,
                    ttl,
                    options.op_timeout,
                    options.compression,
                )?)),
                format!("redis {}", describe_url(&url)),
            ),
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                store,
                description,
                label: label(&options.namespace),
                counters: Counters::default(),
                warnings: Mutex::new(Warnings::default()),
            }),
        })
    }

    /// The value stored under `key`, or `None` when there is none, it expired, or the backend failed.
    pub async fn get(&self, key: &[u8]) -> Option<Bytes> {
        let key = Key::of(key);
        let found = match &self.inner.store {
            Store::Memory(store) => store.get(&key).await,
            Store::File(store) => store.get(&key).await,
            Store::Redis(store) => store.get(&key).await,
        };
        let counters = &self.inner.counters;
        match found {
            Ok(Some(value)) => {
                counters.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::CACHE_HITS_TOTAL, label::CACHE => self.inner.label.clone())
                    .increment(1);
                Some(value)
            }
            Ok(None) => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                self.count_miss();
                None
            }
            Err(e) => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                self.count_miss();
                self.failed("read", &e);
                if matches!(e, Error::Corrupt { .. }) {
                    self.remove_quietly(&key).await;
                }
                None
            }
        }
    }

    /// Stores `value` under `key`, replacing any entry. A failure is counted and logged, not returned.
    pub async fn put(&self, key: &[u8], value: &[u8]) {
        let key = Key::of(key);
        let stored = match &self.inner.store {
            Store::Memory(store) => Ok(store.put(key, value).await),
            Store::File(store) => store.put(&key, value).await.map(|()| true),
            Store::Redis(store) => store.put(&key, value).await.map(|()| true),
        };
        match stored {
            Ok(true) => {
                self.inner.counters.puts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => tracing::debug!(
                cache = %self.inner.description,
                bytes = value.len(),
                "value not cached: larger than an eighth of the memory cache"
            ),
            Err(e) => self.failed("write", &e),
        }
    }

    /// Removes the entry under `key`, if any. A failure is counted and logged, not returned.
    pub async fn remove(&self, key: &[u8]) {
        let key = Key::of(key);
        if let Err(e) = self.remove_key(&key).await {
            self.failed("remove", &e);
        }
    }

    /// This process's counters for this cache.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
        }
    }

    /// What the backend holds for this namespace now, across processes for file and Redis. It
    /// reads every entry's header or length, so it is meant for `orc cache stats`, not hot paths.
    pub async fn usage(&self) -> Result<Usage> {
        match &self.inner.store {
            Store::Memory(store) => Ok(store.usage().await),
            Store::File(store) => store.usage().await,
            Store::Redis(store) => store.usage().await,
        }
    }

    /// Whether the backend can be used now: Redis answers `PING` within the operation timeout
    /// (tried even while failed calls are being skipped); a file cache's directory is a
    /// directory, or not made yet (the first write makes it); memory always can.
    pub async fn check(&self) -> Result<()> {
        match &self.inner.store {
            Store::Memory(_) => Ok(()),
            Store::File(store) => store.check().await,
            Store::Redis(store) => store.check().await,
        }
    }

    /// Removes every entry of this namespace, and nothing else, returning how many there were.
    pub async fn clear(&self) -> Result<u64> {
        match &self.inner.store {
            Store::Memory(store) => Ok(store.clear().await),
            Store::File(store) => store.clear().await,
            Store::Redis(store) => store.clear().await,
        }
    }

    /// Where entries live, for people: `memory`, `file /path/namespace` or
    /// `redis redis://host:6379/0` (password redacted).
    pub fn describe(&self) -> String {
        self.inner.description.clone()
    }

    async fn remove_key(&self, key: &Key) -> Result<()> {
        match &self.inner.store {
            Store::Memory(store) => {
                store.remove(key).await;
                Ok(())
            }
            Store::File(store) => store.remove(key).await,
            Store::Redis(store) => store.remove(key).await,
        }
    }

    /// Drops a corrupt entry so the next write replaces it and reads stop tripping on it.
    async fn remove_quietly(&self, key: &Key) {
        if let Err(e) = self.remove_key(key).await {
            tracing::debug!(cache = %self.inner.description, "corrupt entry not removed: {e}");
        }
    }

    /// Empties what this cache keeps in this process's memory (the memory backend's entries),
    /// to give memory back when the process runs short; file and Redis entries stay.
    pub fn shrink(&self) {
        if let Store::Memory(store) = &self.inner.store {
            store.shrink();
        }
    }

    fn count_miss(&self) {
        metrics::counter!(names::CACHE_MISSES_TOTAL, label::CACHE => self.inner.label.clone())
            .increment(1);
    }

    /// Counts a backend failure and warns, at most once per [`WARN_INTERVAL`].
    fn failed(&self, operation: &str, error: &Error) {
        self.inner.counters.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::CACHE_ERRORS_TOTAL, label::CACHE => self.inner.label.clone())
            .increment(1);
        let suppressed = {
            let mut w = self
                .inner
                .warnings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if w.last
                .is_some_and(|last| now.duration_since(last) < WARN_INTERVAL)
            {
                w.suppressed += 1;
                return;
            }
            w.last = Some(now);
            std::mem::take(&mut w.suppressed)
        };
        let cache = &self.inner.description;
        if suppressed > 0 {
            tracing::warn!(
                %cache,
                suppressed,
                "cache {operation} failed, carrying on without the cache: {error} \
                 ({suppressed} more failures since the last warning)"
            );
        } else {
            tracing::warn!(%cache, "cache {operation} failed, carrying on without the cache: {error}");
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.description)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The `cache` label of a namespace's metrics.
fn label(namespace: &str) -> metrics::SharedString {
    metrics::SharedString::from_shared(Arc::from(namespace))
}

/// A namespace names a directory and sits in Redis keys and a SCAN pattern, so it is kept to
/// characters that are safe in all three.
fn check_namespace(namespace: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidNamespace {
            namespace: namespace.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if namespace.is_empty() {
        return invalid("it is empty");
    }
    if namespace.len() > MAX_NAMESPACE_LEN {
        return invalid("it is longer than 64 characters");
    }
    if namespace.starts_with('.') {
        return invalid("it starts with `.`");
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return invalid(&format!("`{c}` is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_checked() {
        for good in ["model", "step-results", "v2.model_cache", "a"] {
            assert!(check_namespace(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a:b",
            "a*",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(check_namespace(bad), Err(Error::InvalidNamespace { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_hash_to_hex_names() {
        let hex = Key::of(b"key").hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, blake3::hash(b"key").to_hex().as_str());
        assert_ne!(Key::of(b"key"), Key::of(b"key2"));
    }
}
