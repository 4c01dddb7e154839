use std::time::Duration;

use orc_cache::{Cache, CacheOptions, Stats};

use crate::support::compressible;

fn memory(options: CacheOptions) -> Cache {
    Cache::open(options).unwrap()
}

#[tokio::test]
async fn round_trip_replace_remove_and_stats() {
    let cache = memory(CacheOptions::default());
    assert_eq!(cache.describe(), "memory");
    assert_eq!(cache.get(b"k").await, None);
    cache.put(b"k", b"one").await;
    cache.put(b"k", b"two").await;
    assert_eq!(cache.get(b"k").await.as_deref(), Some(&b"two"[..]));
    assert_eq!(cache.get(b"k").await.as_deref(), Some(&b"two"[..]));
    cache.put(b"", b"").await;
    assert_eq!(cache.get(b"").await.as_deref(), Some(&b""[..]));
    cache.remove(b"k").await;
    assert_eq!(cache.get(b"k").await, None);
    assert_eq!(
        cache.stats(),
        Stats {
            hits: 3,
            misses: 2,
            errors: 0,
            puts: 3
        }
    );
    let clone = cache.clone();
    clone.get(b"").await;
    assert_eq!(cache.stats().hits, 4, "clones share the counters");
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let cache = memory(CacheOptions {
        ttl: Some(Duration::from_millis(200)),
        ..CacheOptions::default()
    });
    cache.put(b"k", b"v").await;
    assert!(cache.get(b"k").await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get(b"k").await, None);
    assert_eq!(cache.usage().await.unwrap().entries, 0);
}

#[tokio::test]
async fn the_byte_bound_evicts() {
    let cache = memory(CacheOptions {
        max_bytes: 4096,
        ..CacheOptions::default()
    });
    for i in 0..50u32 {
        cache.put(&i.to_le_bytes(), &[7; 400]).await;
    }
    let usage = cache.usage().await.unwrap();
    assert!(usage.bytes <= 4096, "{usage:?}");
    assert!(usage.entries > 0 && usage.entries <= 10, "{usage:?}");
}

#[tokio::test]
async fn the_entry_bound_holds_for_small_values() {
    let cache = memory(CacheOptions {
        max_entries: 4,
        max_bytes: 1 << 20,
        ..CacheOptions::default()
    });
    for i in 0..40u32 {
        cache.put(&i.to_le_bytes(), b"tiny").await;
    }
    let usage = cache.usage().await.unwrap();
    assert!(usage.entries > 0 && usage.entries <= 4, "{usage:?}");
}

#[tokio::test]
async fn a_value_over_an_eighth_of_the_bound_is_not_kept() {
    let cache = memory(CacheOptions {
        max_bytes: 8000,
        ..CacheOptions::default()
    });
    cache.put(b"k", b"small").await;
    cache.put(b"k", &[1; 2000]).await;
    assert_eq!(cache.get(b"k").await, None, "the older value is gone too");
    assert_eq!(cache.stats().puts, 1);
    assert_eq!(cache.stats().errors, 0);
}

#[tokio::test]
async fn compression_round_trips_and_stores_fewer_bytes() {
    let value = compressible();
    let mut bytes = Vec::new();
    for compression in [false, true] {
        let cache = memory(CacheOptions {
            compression,
            ..CacheOptions::default()
        });
        cache.put(b"k", &value).await;
        assert_eq!(cache.get(b"k").await.as_deref(), Some(&value[..]));
        bytes.push(cache.usage().await.unwrap().bytes);
    }
    assert_eq!(bytes[0], value.len() as u64 + 1, "one flag byte");
    assert!(bytes[1] * 10 < bytes[0], "{bytes:?}");
}

#[tokio::test]
async fn large_values_round_trip_through_the_blocking_pool() {
    let value: Vec<u8> = compressible().repeat(20);
    assert!(value.len() > 128 * 1024);
    let cache = memory(CacheOptions {
        compression: true,
        ..CacheOptions::default()
    });
    cache.put(b"big", &value).await;
    assert_eq!(cache.get(b"big").await.as_deref(), Some(&value[..]));
}

#[tokio::test]
async fn usage_and_clear_count_entries() {
    let cache = memory(CacheOptions::default());
    for key in [&b"a"[..], b"b", b"c"] {
        cache.put(key, b"12345").await;
    }
    let usage = cache.usage().await.unwrap();
    assert_eq!((usage.entries, usage.bytes), (3, 18));
    assert_eq!(cache.clear().await.unwrap(), 3);
    assert_eq!(cache.get(b"a").await, None);
    assert_eq!(cache.usage().await.unwrap().entries, 0);
    assert_eq!(cache.clear().await.unwrap(), 0);
}

#[test]
fn open_needs_no_runtime_and_checks_the_namespace() {
    assert!(Cache::open(CacheOptions::default()).is_ok());
    let err = Cache::open(CacheOptions {
        namespace: "../escape".into(),
        ..CacheOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, orc_cache::Error::InvalidNamespace { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_zero_ttl_or_a_huge_one_is_accepted() {
    for ttl in [Duration::ZERO, Duration::MAX] {
        let cache = memory(CacheOptions {
            ttl: Some(ttl),
            ..CacheOptions::default()
        });
        cache.put(b"k", b"v").await;
        // A zero TTL counts as the shortest one, a millisecond.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            cache.get(b"k").await.is_some(),
            ttl == Duration::MAX,
            "{ttl:?}"
        );
    }
}

/// Evictions are counted in `orc_cache_evictions_total` for caches built while the process
/// records metrics (counting them makes moka lock keys on every write, so it is skipped when
/// nothing records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_are_counted_when_metrics_are_recorded() {
    let exporter = orc_telemetry::Exporter::global().unwrap();
    assert!(orc_telemetry::recording());
    let cache = memory(CacheOptions {
        namespace: "evictions-test".into(),
        max_bytes: 4096,
        ..CacheOptions::default()
    });
    for i in 0..50u32 {
        cache.put(&i.to_le_bytes(), &[7; 400]).await;
    }
    let kept = cache.usage().await.unwrap().entries;
    let text = exporter.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("orc_cache_evictions_total{") && l.contains("evictions-test"))
        .unwrap_or_else(|| panic!("no eviction counter for the cache:\n{text}"));
    let evicted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(evicted, 50 - kept, "{line}");
}
