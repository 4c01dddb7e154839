//! orc's byte cache: values stored under arbitrary byte keys (hashed with blake3) in one of three
//! backends: [`Backend::Memory`] (moka, bounded by entries and bytes), [`Backend::File`] (one file
//! per entry, written atomically) and [`Backend::Redis`] (shared between machines). Entries can
//! expire ([`CacheOptions::ttl`]) and be compressed with zstd ([`CacheOptions::compression`]).
//! The model response cache uses [`Cache`]; the compile cache uses the older, synchronous
//! [`FileCache`].
//!
//! Reads and writes never fail: a backend that errs or times out counts as a miss, shows in
//! [`Cache::stats`] and logs a (rate-limited) warning, so a broken cache slows nothing down.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use orc_cache::{Cache, CacheOptions};
//!
//! let cache = Cache::open(CacheOptions { namespace: "model".into(), ..CacheOptions::default() })?;
//! cache.put(b"key", b"value").await;
//! assert_eq!(cache.get(b"key").await.as_deref(), Some(&b"value"[..]));
//! assert_eq!(cache.stats().hits, 1);
//! # Ok::<(), orc_cache::Error>(())
//! # }).unwrap();
//! ```

mod cache;
mod codec;
mod entry;
mod error;
mod file;
mod file_cache;
mod memory;
mod options;
mod redact;
mod redis_store;

pub use cache::{Cache, Stats};
pub(crate) use entry::Key;
pub use entry::Usage;
pub use error::{Error, Result};
pub use file_cache::FileCache;
pub use options::{Backend, CacheOptions};
