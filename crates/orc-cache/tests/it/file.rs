use std::path::{Path, PathBuf};
use std::time::Duration;

use orc_cache::{Backend, Cache, CacheOptions, FileCache};

use crate::support::{compressible, namespace};

fn file_cache(dir: &Path, namespace: &str, options: CacheOptions) -> Cache {
    Cache::open(CacheOptions {
        backend: Backend::File {
            dir: dir.to_path_buf(),
        },
        namespace: namespace.to_owned(),
        ..options
    })
    .unwrap()
}

/// The files in `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn round_trip_replace_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = file_cache(tmp.path(), "model", CacheOptions::default());
    let dir = tmp.path().join("model");
    assert_eq!(cache.describe(), format!("file {}", dir.display()));
    assert_eq!(cache.get(b"k").await, None);
    cache.put(b"k", b"one").await;
    cache.put(b"k", b"two").await;
    assert_eq!(cache.get(b"k").await.as_deref(), Some(&b"two"[..]));
    let names: Vec<PathBuf> = files(&dir);
    assert_eq!(names.len(), 1, "one entry, no temporary files: {names:?}");
    assert_eq!(
        names[0].file_name().unwrap().to_str().unwrap(),
        blake3::hash(b"k").to_hex().as_str()
    );
    cache.remove(b"k").await;
    cache.remove(b"k").await;
    assert_eq!(cache.get(b"k").await, None);
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.puts, stats.errors),
        (1, 2, 2, 0)
    );
}

#[tokio::test]
async fn entries_expire_after_the_ttl_in_every_process() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = file_cache(
        tmp.path(),
        "m",
        CacheOptions {
            ttl: Some(Duration::from_millis(200)),
            ..CacheOptions::default()
        },
    );
    // Another process reading the same directory, without a TTL of its own.
    let other = file_cache(tmp.path(), "m", CacheOptions::default());
    cache.put(b"k", b"v").await;
    assert!(other.get(b"k").await.is_some());
    assert_eq!(other.usage().await.unwrap().entries, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        other.usage().await.unwrap().entries,
        0,
        "expired entries do not count"
    );
    assert_eq!(other.get(b"k").await, None);
    assert!(files(&tmp.path().join("m")).is_empty(), "removed on read");
    assert_eq!(other.stats().errors, 0);
}

#[tokio::test]
async fn compressed_entries_are_smaller_and_read_back_with_compression_off() {
    let tmp = tempfile::tempdir().unwrap();
    let value = compressible();
    let plain = file_cache(tmp.path(), "plain", CacheOptions::default());
    let packed = file_cache(
        tmp.path(),
        "packed",
        CacheOptions {
            compression: true,
            ..CacheOptions::default()
        },
    );
    plain.put(b"k", &value).await;
    packed.put(b"k", &value).await;
    assert_eq!(packed.get(b"k").await.as_deref(), Some(&value[..]));
    let (plain_bytes, packed_bytes) = (
        plain.usage().await.unwrap().bytes,
        packed.usage().await.unwrap().bytes,
    );
    assert!(
        packed_bytes * 10 < plain_bytes,
        "{packed_bytes} vs {plain_bytes}"
    );

    let unpacked = file_cache(tmp.path(), "packed", CacheOptions::default());
    assert_eq!(unpacked.get(b"k").await.as_deref(), Some(&value[..]));
}

/// Turns an entry file's bytes into damaged ones.
type Damage = fn(Vec<u8>) -> Vec<u8>;

#[tokio::test]
async fn corrupt_and_truncated_entries_are_misses() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = file_cache(
        tmp.path(),
        "m",
        CacheOptions {
            compression: true,
            ..CacheOptions::default()
        },
    );
    let value = compressible();
    let dir = tmp.path().join("m");
    let damages: [(&str, Damage); 5] = [
        ("truncated", |mut b| {
            b.truncate(b.len() - 3);
            b
        }),
        ("header only", |mut b| {
            b.truncate(20);
            b
        }),
        ("empty", |_| Vec::new()),
        ("flipped bit", |mut b| {
            let last = b.len() - 1;
            b[last] ^= 0x40;
            b
        }),
        ("garbage", |b| vec![0xAB; b.len()]),
    ];
    for (i, (what, damage)) in damages.into_iter().enumerate() {
        cache.put(b"k", &value).await;
        let path = files(&dir).pop().unwrap();
        std::fs::write(&path, damage(std::fs::read(&path).unwrap())).unwrap();
        assert_eq!(cache.get(b"k").await, None, "{what}");
        assert_eq!(cache.stats().errors, i as u64 + 1, "{what}");
        assert!(
            files(&dir).is_empty(),
            "{what}: the corrupt entry is removed"
        );
    }
    cache.put(b"k", &value).await;
    assert_eq!(cache.get(b"k").await.as_deref(), Some(&value[..]));
}

#[tokio::test]
async fn clear_and_usage_cover_only_the_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("file");
    let cache = file_cache(tmp.path(), &ns, CacheOptions::default());
    let neighbour = file_cache(tmp.path(), "neighbour", CacheOptions::default());
    assert_eq!(
        cache.usage().await.unwrap(),
        Default::default(),
        "no directory yet"
    );
    assert_eq!(cache.clear().await.unwrap(), 0);
    neighbour.put(b"a", b"stays").await;
    for key in [&b"a"[..], b"b", b"c"] {
        cache.put(key, b"12345").await;
    }
    // Not entries: a temporary file of a write in progress and a file a person left there.
    std::fs::write(tmp.path().join(&ns).join(".tmp-x"), b"partial").unwrap();
    std::fs::write(tmp.path().join(&ns).join("notes.txt"), b"mine").unwrap();
    let usage = cache.usage().await.unwrap();
    assert_eq!(usage.entries, 3);
    assert_eq!(
        usage.bytes,
        3 * (28 + 6),
        "header, flag byte and value per entry"
    );
    assert_eq!(cache.clear().await.unwrap(), 3);
    assert_eq!(cache.get(b"a").await, None);
    assert_eq!(neighbour.get(b"a").await.as_deref(), Some(&b"stays"[..]));
    assert!(tmp.path().join(&ns).join("notes.txt").exists());
}

#[tokio::test]
async fn an_unwritable_directory_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file-not-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = file_cache(&blocker, "m", CacheOptions::default());
    cache.put(b"k", b"v").await;
    assert_eq!(cache.get(b"k").await, None);
    assert_eq!(cache.stats().errors, 2);
    assert_eq!(cache.stats().puts, 0);
    assert!(cache.usage().await.is_err());
}

#[test]
fn the_synchronous_file_cache_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FileCache::new(tmp.path().join("plans"));
    cache.put(b"key", b"plan").unwrap();
    assert_eq!(cache.get(b"key").unwrap().as_deref(), Some(&b"plan"[..]));
    assert_eq!(cache.dir(), tmp.path().join("plans"));
    assert!(cache.path_of(b"key").exists());
    cache.remove(b"key").unwrap();
    assert_eq!(cache.get(b"key").unwrap(), None);
}

#[tokio::test]
async fn a_zero_ttl_or_a_huge_one_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    for ttl in [Duration::ZERO, Duration::MAX] {
        let cache = file_cache(
            tmp.path(),
            "m",
            CacheOptions {
                ttl: Some(ttl),
                ..CacheOptions::default()
            },
        );
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
