//! The Redis backend: entries under `orc:<namespace>:<hash>`, one multiplexed connection
//! ([`ConnectionManager`]) made on first use, every operation bounded by the operation timeout, and
//! a pause after a connection failure so that a Redis that is down costs nothing but misses.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};
use tokio::sync::OnceCell;

use crate::codec::{decode_async, encode_async, ttl_ms};
use crate::{Error, Key, Result, Usage};
use orc_redact::{redact_url, scrub};

/// After a connection failure (or a timeout), operations fail at once for this long instead of
/// trying Redis again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Keys asked for per SCAN round trip.
const SCAN_COUNT: u64 = 1000;

/// Entries in a Redis server.
pub(crate) struct RedisStore {
    client: redis::Client,
    /// `orc:<namespace>:`
    prefix: String,
    ttl_ms: Option<u64>,
    op_timeout: Duration,
    compression: bool,
    /// Made by the first operation; it reconnects by itself after that.
    connection: OnceCell<ConnectionManager>,
    /// The origin of `paused_until_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` until which operations fail without trying Redis; 0 = not paused.
    paused_until_ms: AtomicU64,
}

impl RedisStore {
    /// Checks the URL; connects on first use, not here.
    pub(crate) fn open(
        url: &str,
        namespace: &str,
        ttl: Option<Duration>,
        op_timeout: Duration,
        compression: bool,
    ) -> Result<Self> {
        let parsed = redis::parse_redis_url(url);
        // Redis's messages do not quote the URL, but make sure no password slips through.
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact_url(url),
            reason: scrub(reason, url),
        };
        if parsed.is_none() {
            return Err(invalid(
                "not a URL with a redis://, rediss://, redis+unix:// or unix:// scheme".to_owned(),
            ));
        }
        let client = redis::Client::open(url).map_err(|e| invalid(e.to_string()))?;
        Ok(RedisStore {
            client,
            prefix: format!("orc:{namespace}:"),
            ttl_ms: ttl.map(ttl_ms),
            op_timeout,
            compression,
            connection: OnceCell::new(),
            epoch: Instant::now(),
            paused_until_ms: AtomicU64::new(0),
        })
    }

    fn key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.hex())
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let key = self.key(key);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let found: Option<Vec<u8>> = self
            .run(
                "GET",
                true,
                |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        let Some(stored) = found else {
            return Ok(None);
        };
        decode_async(Bytes::from(stored))
            .await
            .map(Some)
            .map_err(|reason| Error::Corrupt { entry: key, reason })
    }

    pub(crate) async fn put(&self, key: &Key, value: &[u8]) -> Result<()> {
        // Fail fast before spending time on compression.
        self.check_not_paused()?;
        let stored = encode_async(value, self.compression).await;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(stored);
        if let Some(ms) = self.ttl_ms {
            cmd.arg("PX").arg(ms);
        }
        self.run("SET", true, |mut c| async move {
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    pub(crate) async fn remove(&self, key: &Key) -> Result<()> {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.key(key));
        self.run("UNLINK", true, |mut c| async move {
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    /// The server answers `PING`.
    pub(crate) async fn check(&self) -> Result<()> {
        self.run("PING", false, |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(drop)
    }

    /// Entries of this namespace and their value lengths (STRLEN), found with SCAN.
    pub(crate) async fn usage(&self) -> Result<Usage> {
        let mut usage = Usage::default();
        self.scan(async |keys| {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("STRLEN").arg(key);
            }
            let lengths: Vec<u64> = self
                .run("STRLEN", false, |mut c| async move {
                    pipe.query_async(&mut c).await
                })
                .await?;
            for len in lengths.into_iter().filter(|&len| len > 0) {
                usage.entries += 1;
                usage.bytes += len;
            }
            Ok(())
        })
        .await?;
        Ok(usage)
    }

    /// Unlinks every key of this namespace (SCAN, then UNLINK per batch); other keys are untouched.
    pub(crate) async fn clear(&self) -> Result<u64> {
        let mut removed = 0;
        self.scan(async |keys| {
            let mut cmd = redis::cmd("UNLINK");
            cmd.arg(keys);
            removed += self
                .run("UNLINK", false, |mut c| async move {
                    cmd.query_async::<u64>(&mut c).await
                })
                .await?;
            Ok(())
        })
        .await?;
        Ok(removed)
    }

    /// Calls `batch` with each non-empty batch of this namespace's keys.
    async fn scan(&self, mut batch: impl AsyncFnMut(Vec<String>) -> Result<()>) -> Result<()> {
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.cursor_arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<String>) = self
                .run("SCAN", false, |mut c| async move {
                    cmd.query_async(&mut c).await
                })
                .await?;
            if !keys.is_empty() {
                batch(keys).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Runs `op` on the connection within the operation timeout. A timeout, or an error that says
    /// the connection is gone, pauses the store. `respect_pause` is false for the explicit
    /// operations (usage, clear), which always try.
    async fn run<T, F>(
        &self,
        what: &str,
        respect_pause: bool,
        op: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let connection = self.connection(respect_pause).await?;
        match tokio::time::timeout(self.op_timeout, op(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    self.pause();
                }
                Err(Error::Redis {
                    message: format!("{what}: {e}"),
                })
            }
            Err(_) => {
                self.pause();
                Err(Error::Redis {
                    message: format!("{what} took longer than {:?}", self.op_timeout),
                })
            }
        }
    }

    /// The connection, made on first use within the operation timeout.
    async fn connection(&self, respect_pause: bool) -> Result<ConnectionManager> {
        if respect_pause {
            self.check_not_paused()?;
        }
        let connection = self
            .connection
            .get_or_try_init(|| async {
                // Callers queued behind a failed attempt fail at once instead of each trying again.
                if respect_pause {
                    self.check_not_paused()?;
                }
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(self.op_timeout))
                    .set_response_timeout(Some(self.op_timeout));
                let connect = ConnectionManager::new_with_config(self.client.clone(), config);
                let result = match tokio::time::timeout(self.op_timeout, connect).await {
                    Ok(Ok(connection)) => Ok(connection),
                    Ok(Err(e)) => Err(Error::Redis {
                        message: format!("cannot connect: {e}"),
                    }),
                    Err(_) => Err(Error::Redis {
                        message: format!("connecting took longer than {:?}", self.op_timeout),
                    }),
                };
                if result.is_err() {
                    self.pause();
                }
                result
            })
            .await?;
        Ok(connection.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Stops operations from trying Redis for [`PAUSE_AFTER_FAILURE`].
    fn pause(&self) {
        let until = self.now_ms().saturating_add(ttl_ms(PAUSE_AFTER_FAILURE));
        self.paused_until_ms.store(until, Ordering::Relaxed);
    }

    fn check_not_paused(&self) -> Result<()> {
        let until = self.paused_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        if until > now {
            return Err(Error::Redis {
                message: format!(
                    "not trying Redis for another {} ms after a failure to reach it",
                    until - now
                ),
            });
        }
        Ok(())
    }
}

/// Whether `e` says that Redis cannot be reached (rather than that it refused one command).
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}
