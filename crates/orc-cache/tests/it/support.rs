use std::time::Duration;

use orc_cache::{Backend, Cache, CacheOptions};

/// A namespace no other test (or run) uses.
pub(crate) fn namespace(prefix: &str) -> String {
    format!("{prefix}-{:016x}", fastrand::u64(..))
}

/// Text that zstd shrinks a lot.
pub(crate) fn compressible() -> Vec<u8> {
    "The quick brown fox jumps over the lazy dog. "
        .repeat(200)
        .into_bytes()
}

/// The URL of the test Redis.
pub(crate) fn redis_url() -> String {
    std::env::var("ORC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis cache in a fresh namespace, or `None` (after saying why) when Redis cannot be reached
/// outside CI. In CI an unreachable Redis fails the test.
#[allow(clippy::print_stderr)]
pub(crate) async fn redis_cache(options: CacheOptions) -> Option<Cache> {
    let url = redis_url();
    let cache = Cache::open(CacheOptions {
        backend: Backend::Redis { url: url.clone() },
        op_timeout: Duration::from_secs(2),
        ..options
    })
    .unwrap();
    match cache.usage().await {
        Ok(_) => Some(cache),
        Err(e) => {
            let message = format!(
                "Redis at {url} cannot be reached ({e}). Start it with `redis-server --daemonize yes \
                 --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no` (see the README's \"Tests\" section) \
                 or point ORC_TEST_REDIS_URL at one."
            );
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}
