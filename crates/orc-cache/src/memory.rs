//! The memory backend: a moka cache of stored values (flag byte and payload), weighed in bytes.
//!
//! moka's synchronous cache: every operation is a few hundred nanoseconds of work on the
//! caller's thread (moka's upkeep included), with nothing to wait for, so the asynchronous
//! variant's per-key locks and futures would only add cost. Keys are BLAKE3 digests already,
//! hashed again by foldhash (seeded per process), not SipHash.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::codec::{self, decode, encode_async};
use crate::{Error, Key, Result, Usage};

/// Entries in this process's memory.
pub(crate) struct MemoryStore {
    entries: moka::sync::Cache<Key, Bytes, foldhash::fast::RandomState>,
    /// Values stored larger than this are not kept.
    max_value: u64,
    compression: bool,
}

impl MemoryStore {
    /// An empty store. moka's `max_capacity` is `max_bytes`; each entry weighs its stored length
    /// but at least `max_bytes / max_entries`, which bounds the entry count as well.
    pub(crate) fn new(
        max_entries: u64,
        max_bytes: u64,
        ttl: Option<Duration>,
        compression: bool,
        label: metrics::SharedString,
    ) -> Self {
        let floor = max_bytes / max_entries.max(1);
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_key: &Key, stored: &Bytes| {
                u32::try_from((stored.len() as u64).max(floor)).unwrap_or(u32::MAX)
            });
        // A listener makes moka lock each key on every write (to keep notifications in order),
        // which costs about as much as the rest of a store: counted only when metrics are.
        if orc_telemetry::recording() {
            builder = builder.eviction_listener(move |_key, _value, cause| {
                // Pushed out by the size bound or the TTL; not replaced or removed on purpose.
                if cause.was_evicted() {
                    metrics::counter!(
                        orc_telemetry::names::CACHE_EVICTIONS_TOTAL,
                        orc_telemetry::names::label::CACHE => label.clone()
                    )
                    .increment(1);
                }
            });
        }
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        MemoryStore {
            entries: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            max_value: max_bytes / 8,
            compression,
        }
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let Some(stored) = self.entries.get(key) else {
            return Ok(None);
        };
        let decoded = if stored.len() < codec::INLINE_LIMIT {
            decode(stored)
        } else {
            codec::decode_async(stored).await
        };
        decoded.map(Some).map_err(|reason| Error::Corrupt {
            entry: format!("memory:{}", key.hex()),
            reason,
        })
    }

    /// Stores `value`; returns false when it is too large to keep (any older entry is dropped then).
    pub(crate) async fn put(&self, key: Key, value: &[u8]) -> bool {
        let stored = encode_async(value, self.compression).await;
        if stored.len() as u64 > self.max_value {
            self.entries.invalidate(&key);
            return false;
        }
        self.entries.insert(key, Bytes::from(stored));
        true
    }

    pub(crate) async fn remove(&self, key: &Key) {
        self.entries.invalidate(key);
    }

    /// Drops every entry (lazily: moka frees them on its next maintenance pass).
    pub(crate) fn shrink(&self) {
        self.entries.invalidate_all();
    }

    /// Exact counts: pending evictions are applied first, expired entries are not counted.
    pub(crate) async fn usage(&self) -> Usage {
        self.entries.run_pending_tasks();
        let mut usage = Usage::default();
        for (_, stored) in self.entries.iter() {
            usage.entries += 1;
            usage.bytes += stored.len() as u64;
        }
        usage
    }

    pub(crate) async fn clear(&self) -> u64 {
        let keys: Vec<Arc<Key>> = self.entries.iter().map(|(key, _)| key).collect();
        let mut removed = 0;
        for key in keys {
            if self.entries.remove(&*key).is_some() {
                removed += 1;
            }
        }
        self.entries.run_pending_tasks();
        removed
    }
}
