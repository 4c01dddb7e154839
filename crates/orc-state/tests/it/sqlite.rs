//! What only the SQLite backend does: the file, its pragmas, damaged and foreign files, locks
//! held by other processes, migrations from an older schema.

use std::time::Duration;

use orc_state::{Checkpoint, Error, ModelMetric, NewPipeline, RunState, StateOptions, Store};
use proptest::prelude::*;
use sqlx::Connection;

use crate::support::{Harness, at, checkpoint, new_run, options};

#[tokio::test]
async fn the_file_is_in_wal_mode_with_the_schema_indexed() {
    let h = Harness::sqlite().await;
    assert!(
        h.store.describe().starts_with("sqlite:///"),
        "{}",
        h.store.describe()
    );
    assert!(h.store.describe().ends_with("/state.db"));
    let mut c = h.sqlite_connection().await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let indexes: Vec<String> = indexes.into_iter().map(|(n,)| n).collect();
    assert_eq!(
        indexes,
        [
            "model_metrics_at",
            "model_metrics_model_at",
            "runs_pipeline_started_at",
            "runs_started_at",
            "runs_status_started_at",
            "steps_run_step",
        ]
    );
}

#[tokio::test]
async fn relative_urls_and_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let target = dir.path().join("deep/er/state.db");
    let relative = format!(
        "{up}{}",
        target.display().to_string().trim_start_matches('/')
    );
    let store = Store::open(&format!("sqlite://{relative}"), options(None))
        .await
        .unwrap();
    assert!(target.exists());
    let described = store.describe();
    assert!(described.starts_with("sqlite:///"), "{described}");
    store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    drop(store);
    // The `sqlite:` form without slashes names the same file.
    let again = Store::open(&format!("sqlite:{relative}"), options(None))
        .await
        .unwrap();
    assert!(again.run("r1").await.unwrap().is_some());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, "this is a text file, not a database\n".repeat(100)).unwrap();
    let url = format!("sqlite://{}", path.display());
    let e = Store::open(&url, options(None)).await.unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::NotAStateDatabase { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("it is not a SQLite database"), "{message}");
    assert!(message.contains("hint: move the file away"), "{message}");
    // Nothing was written over it.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("this is a text file")
    );
}

#[tokio::test]
async fn a_truncated_database_is_an_error_not_a_panic() {
    let h = Harness::sqlite().await;
    for n in 0..200 {
        h.store
            .create_run(&new_run(&format!("r{n}"), "p", n))
            .await
            .unwrap();
        h.store
            .append(&format!("r{n}"), &[checkpoint("a", n)])
            .await
            .unwrap();
    }
    let path = h.dir.as_ref().unwrap().path().join("state.db");
    // Checkpoint the WAL into the file, then cut copies of it short.
    let mut c = h.sqlite_connection().await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let copy = h.dir.as_ref().unwrap().path().join("copy.db");
    for keep in [50u64, 4096, 3 * 4096] {
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&copy, &bytes[..keep as usize]).unwrap();
        let _ = std::fs::remove_file(copy.with_extension("db-wal"));
        let _ = std::fs::remove_file(copy.with_extension("db-shm"));
        let copy_url = format!("sqlite://{}", copy.display());
        let e = Store::open(&copy_url, options(None)).await.unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(e, Error::NotAStateDatabase { .. }),
            "{keep}: {message}"
        );
        assert!(message.contains("it is damaged"), "{keep}: {message}");
    }
}

#[tokio::test]
async fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let options_raw = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut c = sqlx::SqliteConnection::connect_with(&options_raw)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let e = Store::open(&format!("sqlite://{}", path.display()), options(None))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::NotAStateDatabase { .. }), "{message}");
    assert!(message.contains("the tables users"), "{message}");
}

#[tokio::test]
async fn a_directory_that_cannot_be_made_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let e = Store::open(
        &format!("sqlite://{}/sub/state.db", file.display()),
        options(None),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("plain-file/sub"), "{e}");
}

#[tokio::test]
async fn an_older_schema_is_migrated() {
    let h = Harness::sqlite().await;
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    h.store.append("r1", &[checkpoint("a", 1)]).await.unwrap();
    // Make it a version 1 store, as the first orc with a state store left it.
    let mut c = h.sqlite_connection().await;
    sqlx::query("DROP TABLE pipeline_registry")
        .execute(&mut c)
        .await
        .unwrap();
    crate::support::drop_rollup_tables()
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("DROP TABLE model_metrics")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE runs DROP COLUMN lease_generation")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("DELETE FROM orc_schema_migrations WHERE version >= 2")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let store = h.reopen(options(None)).await.unwrap();
    store
        .record_model_metric(&ModelMetric {
            model: "m".into(),
            provider: "openai".into(),
            at: at(1),
            latency_ms: 1.0,
            success: true,
            input_tokens: 1,
            output_tokens: 1,
            cost: 0.0,
            ..crate::support::upstream()
        })
        .await
        .unwrap();
    assert_eq!(store.model_metrics("m", at(0), 0).await.unwrap().len(), 1);
    assert_eq!(store.checkpoints("r1").await.unwrap(), [checkpoint("a", 1)]);
    // Version 3's lease generation: a takeover fences the owner before.
    let a = store
        .claim("r1", "a", Duration::from_millis(1))
        .await
        .unwrap()
        .lease()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = store
        .claim("r1", "b", Duration::from_secs(60))
        .await
        .unwrap()
        .lease()
        .unwrap();
    assert!(b.generation > a.generation);
    assert!(matches!(
        store.append_leased(&a, &[checkpoint("b", 2)]).await,
        Err(Error::LeaseLost { .. })
    ));
    // Version 4's pipeline registry.
    let registered = NewPipeline {
        id: "p".into(),
        text: "id: p\nsteps: []\n".into(),
        hash: "h".into(),
        pipeline_id: "p".into(),
        name: None,
        description: None,
        steps: 0,
    };
    let row = store.put_pipeline(&registered).await.unwrap();
    assert_eq!(store.list_pipelines(0).await.unwrap(), [row]);
}

#[tokio::test]
async fn a_lock_held_by_another_process_is_a_retryable_error() {
    let h = Harness::sqlite().await;
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let store = h
        .reopen(StateOptions {
            query_timeout: Duration::from_millis(300),
            ..options(None)
        })
        .await
        .unwrap();
    let mut other = h.sqlite_connection().await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let e = store.append("r1", &[checkpoint("a", 1)]).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        store
            .claim("r1", "me", Duration::from_secs(5))
            .await
            .is_err()
    );
    // Reads do not wait for the writer.
    assert_eq!(store.run("r1").await.unwrap().unwrap().steps_done, 0);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    store.append("r1", &[checkpoint("a", 1)]).await.unwrap();
    assert_eq!(store.checkpoints("r1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn memory_stores_are_private() {
    let a = Store::open("sqlite::memory:", options(None)).await.unwrap();
    let b = Store::open("sqlite::memory:", options(None)).await.unwrap();
    a.create_run(&new_run("r1", "p", 1)).await.unwrap();
    a.finish_run("r1", RunState::Completed, None).await.unwrap();
    assert!(a.run("r1").await.unwrap().is_some());
    assert!(b.run("r1").await.unwrap().is_none());
    assert_eq!(a.describe(), "sqlite::memory:");
}

/// Writes from many tasks share the writer thread's batches; an in-memory
/// store's two connections (sqlx reads, rusqlite writes, one shared cache) take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_store_serves_many_tasks_writing_and_reading() {
    let store = Store::open("sqlite::memory:", options(None)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..6u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let id = format!("r{t}");
            store.create_run(&new_run(&id, "p", t)).await.unwrap();
            let mut want = Vec::new();
            for n in 0..20 {
                let group = vec![checkpoint(&format!("{id}-{n}"), n); 1 + (n as usize % 3)];
                store.append(&id, &group).await.unwrap();
                want.extend(group);
                assert_eq!(store.checkpoints(&id).await.unwrap(), want);
            }
            store
                .finish_run(&id, RunState::Completed, None)
                .await
                .unwrap();
            want.len()
        });
    }
    // 20 appends of 1, 2 or 3 checkpoints each.
    assert_eq!(tasks.join_all().await, [39; 6]);
    for t in 0..6 {
        let run = store.run(&format!("r{t}")).await.unwrap().unwrap();
        assert_eq!((run.status, run.steps_done), (RunState::Completed, 39));
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        // Eighths: exact in binary, so they survive JSON text unchanged.
        (-4_000_000i64..4_000_000).prop_map(|n| serde_json::Value::from(n as f64 / 8.0)),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..6)
                .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn checkpoint_strategy() -> impl Strategy<Value = Checkpoint> {
    (
        ".{1,30}",
        "[a-z]{1,10}",
        json_value(),
        proptest::option::of(0u64..4_000_000_000_000_000),
        proptest::option::of(0u64..4_000_000_000_000_000),
        any::<u32>(),
        proptest::option::of(".{0,20}"),
        proptest::option::of(json_value()),
        proptest::option::of(0.0f64..1000.0),
    )
        .prop_map(
            |(step_id, status, envelope, started, completed, attempts, model, usage, cost)| {
                Checkpoint {
                    step_id,
                    status,
                    envelope,
                    started_at: started.map(|us| std::time::UNIX_EPOCH + Duration::from_micros(us)),
                    completed_at: completed
                        .map(|us| std::time::UNIX_EPOCH + Duration::from_micros(us)),
                    attempts,
                    model,
                    usage,
                    cost,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever is appended reads back equal, in order, compressed or not.
    #[test]
    fn checkpoints_round_trip(
        groups in prop::collection::vec(prop::collection::vec(checkpoint_strategy(), 1..4), 1..4),
        compression in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = Store::open(
                "sqlite::memory:",
                StateOptions { compression, ..options(None) },
            )
            .await
            .unwrap();
            store.create_run(&new_run("r", "p", 1)).await.unwrap();
            for group in &groups {
                store.append("r", group).await.unwrap();
            }
            let want: Vec<Checkpoint> = groups.into_iter().flatten().collect();
            prop_assert_eq!(store.checkpoints("r").await.unwrap(), want);
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/state.db", dir.path().display());
    for store in crate::support::open_all(&url, options(None), 8).await {
        assert!(store.unwrap().run("r").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn the_query_cache_forgets_this_stores_writes_and_keeps_others_for_its_ttl() {
    let h = Harness::sqlite().await;
    let cached = h
        .reopen(StateOptions {
            query_cache_ttl: Some(Duration::from_secs(60)),
            ..options(None)
        })
        .await
        .unwrap();
    cached.create_run(&new_run("q1", "p", 1)).await.unwrap();
    let status = |s: &Store| {
        let s = s.clone();
        async move { s.run("q1").await.unwrap().map(|r| r.status) }
    };
    assert_eq!(status(&cached).await, Some(RunState::Running));
    // Its own write is seen at once.
    cached
        .finish_run("q1", RunState::Failed, None)
        .await
        .unwrap();
    assert_eq!(status(&cached).await, Some(RunState::Failed));
    let listed = cached
        .list_runs(&orc_state::RunFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // Another process's write shows only after the TTL: the answer came from memory.
    h.store
        .finish_run("q1", RunState::Completed, None)
        .await
        .unwrap();
    assert_eq!(status(&cached).await, Some(RunState::Failed));
    assert_eq!(status(&h.store).await, Some(RunState::Completed));
}
