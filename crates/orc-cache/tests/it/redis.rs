use std::time::{Duration, Instant};

use orc_cache::{Backend, Cache, CacheOptions, Error, Stats};

use crate::support::{compressible, namespace, redis_cache, redis_url};

fn in_namespace(prefix: &str) -> CacheOptions {
    CacheOptions {
        namespace: namespace(prefix),
        ..CacheOptions::default()
    }
}

#[tokio::test]
async fn round_trip_replace_remove_and_stats() {
    let Some(cache) = redis_cache(in_namespace("redis-rt")).await else {
        return;
    };
    assert!(
        cache.describe().starts_with("redis redis://"),
        "{}",
        cache.describe()
    );
    assert_eq!(cache.get(b"k").await, None);
    cache.put(b"k", b"one").await;
    cache.put(b"k", b"two").await;
    assert_eq!(cache.get(b"k").await.as_deref(), Some(&b"two"[..]));
    let binary_key: Vec<u8> = (0..=255).collect();
    cache.put(&binary_key, &[0, 159, 146, 150]).await;
    assert_eq!(
        cache.get(&binary_key).await.as_deref(),
        Some(&[0, 159, 146, 150][..])
    );
    cache.remove(b"k").await;
    assert_eq!(cache.get(b"k").await, None);
    assert_eq!(
        cache.stats(),
        Stats {
            hits: 2,
            misses: 2,
            errors: 0,
            puts: 3
        }
    );
    assert_eq!(cache.clear().await.unwrap(), 1);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let Some(cache) = redis_cache(CacheOptions {
        ttl: Some(Duration::from_millis(200)),
        ..in_namespace("redis-ttl")
    })
    .await
    else {
        return;
    };
    cache.put(b"k", b"v").await;
    assert!(cache.get(b"k").await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get(b"k").await, None);
    assert_eq!(cache.usage().await.unwrap().entries, 0);
    cache.clear().await.unwrap();
}

#[tokio::test]
async fn compressed_values_are_smaller_and_read_back_with_compression_off() {
    let ns = namespace("redis-zstd");
    let Some(packed) = redis_cache(CacheOptions {
        namespace: ns.clone(),
        compression: true,
        ..CacheOptions::default()
    })
    .await
    else {
        return;
    };
    let plain = redis_cache(in_namespace("redis-plain")).await.unwrap();
    let value = compressible();
    packed.put(b"k", &value).await;
    plain.put(b"k", &value).await;
    assert_eq!(packed.get(b"k").await.as_deref(), Some(&value[..]));
    let (packed_bytes, plain_bytes) = (
        packed.usage().await.unwrap().bytes,
        plain.usage().await.unwrap().bytes,
    );
    assert_eq!(plain_bytes, value.len() as u64 + 1);
    assert!(
        packed_bytes * 10 < plain_bytes,
        "{packed_bytes} vs {plain_bytes}"
    );

    let unpacked = redis_cache(CacheOptions {
        namespace: ns,
        ..CacheOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(unpacked.get(b"k").await.as_deref(), Some(&value[..]));
    packed.clear().await.unwrap();
    plain.clear().await.unwrap();
}

#[tokio::test]
async fn clear_and_usage_cover_only_the_namespace() {
    let Some(cache) = redis_cache(in_namespace("redis-clear")).await else {
        return;
    };
    let neighbour = redis_cache(in_namespace("redis-neighbour")).await.unwrap();
    neighbour.put(b"a", b"stays").await;
    for i in 0..25u32 {
        cache.put(&i.to_le_bytes(), b"12345").await;
    }
    let usage = cache.usage().await.unwrap();
    assert_eq!((usage.entries, usage.bytes), (25, 25 * 6));
    assert_eq!(cache.clear().await.unwrap(), 25);
    assert_eq!(cache.usage().await.unwrap().entries, 0);
    assert_eq!(cache.get(&0u32.to_le_bytes()).await, None);
    assert_eq!(neighbour.get(b"a").await.as_deref(), Some(&b"stays"[..]));
    assert_eq!(neighbour.clear().await.unwrap(), 1);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_fast_miss() {
    let op_timeout = Duration::from_millis(250);
    let cache = Cache::open(CacheOptions {
        backend: Backend::Redis {
            url: "redis://127.0.0.1:1".to_owned(),
        },
        op_timeout,
        ..CacheOptions::default()
    })
    .unwrap();
    assert_eq!(cache.get(b"k").await, None);
    cache.put(b"k", b"v").await;
    let started = Instant::now();
    assert_eq!(cache.get(b"k").await, None);
    let took = started.elapsed();
    assert!(
        took < op_timeout,
        "the second read tried Redis again: {took:?}"
    );
    assert_eq!(
        cache.stats(),
        Stats {
            hits: 0,
            misses: 2,
            errors: 3,
            puts: 0
        }
    );
    let err = cache.usage().await.unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err}");
}

#[tokio::test]
async fn a_black_hole_costs_at_most_the_timeout_once() {
    // 192.0.2.0/24 is reserved for documentation: connecting hangs (or fails at once offline).
    let op_timeout = Duration::from_millis(200);
    let cache = Cache::open(CacheOptions {
        backend: Backend::Redis {
            url: "redis://192.0.2.1:6379".to_owned(),
        },
        op_timeout,
        ..CacheOptions::default()
    })
    .unwrap();
    let started = Instant::now();
    assert_eq!(cache.get(b"k").await, None);
    assert!(
        started.elapsed() < op_timeout * 4,
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(cache.get(b"k").await, None);
    }
    assert!(started.elapsed() < op_timeout, "{:?}", started.elapsed());
    assert_eq!(cache.stats().errors, 11);
}

#[test]
fn invalid_urls_are_errors_that_hide_the_password() {
    for url in [
        "http://user:secret@host",
        "redis://user:secret@host:99999",
        "redis://user:secret@",
        "user:secret@host:6379",
        "redis+unix://user:secret@/ run?pass=secret",
    ] {
        let err = Cache::open(CacheOptions {
            backend: Backend::Redis {
                url: url.to_owned(),
            },
            ..CacheOptions::default()
        })
        .err()
        .unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        let message = err.to_string();
        assert!(message.contains("invalid cache URL"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
    }
}

#[test]
fn valid_urls_open_without_a_runtime_and_never_show_the_password() {
    for (url, described) in [
        (
            "redis://user:secret@host",
            "redis redis://user:***@host:6379/0",
        ),
        (
            "rediss://:secret@host:6380/2",
            "redis rediss://:***@host:6380/2",
        ),
        (
            "unix:///run/redis.sock?pass=secret",
            "redis unix:///run/redis.sock?pass=***",
        ),
        (redis_url().as_str(), ""),
    ] {
        let options = CacheOptions {
            backend: Backend::Redis {
                url: url.to_owned(),
            },
            ..CacheOptions::default()
        };
        assert!(!format!("{options:?}").contains("secret"), "{options:?}");
        let cache = Cache::open(options).unwrap();
        if !described.is_empty() {
            assert_eq!(cache.describe(), described);
        }
        assert!(!format!("{cache:?}").contains("secret"));
    }
}

#[tokio::test]
async fn failures_warn_once_per_interval() {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cache = Cache::open(CacheOptions {
        backend: Backend::Redis {
            url: "redis://user:secret@127.0.0.1:1".to_owned(),
        },
        ..CacheOptions::default()
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(cache.get(b"k").await, None);
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(logs.contains("cache read failed"), "{logs}");
    assert!(logs.contains("redis://user:***@127.0.0.1:1/0"), "{logs}");
    assert!(!logs.contains("secret"), "{logs}");
    assert_eq!(cache.stats().errors, 3);
}
