//! The pipeline registry (`orc serve`'s `/v1/pipelines`), on every backend (see the `backends!`
//! list in `main.rs`).

use std::time::{Duration, SystemTime};

use orc_state::{Error, NewPipeline, PipelineRow, StateOptions, Store};

use crate::support::{Harness, Kind, new_run, options};

/// A pipeline registered as `id`, whose text and hash say `revision`.
fn pipeline(id: &str, revision: u32) -> NewPipeline {
    let text = format!(
        "id: summarize\nname: Summarize\nsteps:\n  - id: fetch\n    prompt: revision {revision}\n"
    );
    NewPipeline {
        id: id.to_owned(),
        hash: format!("b3:{revision}"),
        text,
        pipeline_id: "summarize".to_owned(),
        name: Some(format!("Summarize r{revision}")),
        description: None,
        steps: revision,
    }
}

/// A text of about 2 MiB, non-ASCII throughout, that compresses only partly.
fn large_text() -> String {
    let mut rng = fastrand::Rng::with_seed(7);
    let words = [
        "résumé",
        "naïve",
        "東京",
        "Grüße",
        "🦀",
        "steps",
        "prompt",
        "ℤ≠ℕ",
    ];
    let mut text = String::from("id: big\nsteps:\n");
    while text.len() < 2 * 1024 * 1024 {
        text.push_str("  - prompt: ");
        for _ in 0..12 {
            text.push_str(words[rng.usize(..words.len())]);
            text.push(char::from_u32(0x4e00 + rng.u32(..2000)).unwrap());
            text.push(' ');
        }
        text.push('\n');
    }
    text
}

/// Waits until the clock has moved on by more than a microsecond, so that a later write gets a
/// later time.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

pub(crate) async fn pipelines_round_trip(h: &Harness) {
    let s = &h.store;
    assert!(s.pipeline("summarize").await.unwrap().is_none());
    let before = SystemTime::now() - Duration::from_secs(1);
    let mut p = pipeline("summarize", 1);
    p.description = Some("Fetches a page and summarizes it".to_owned());
    let row = s.put_pipeline(&p).await.unwrap();
    let after = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(row.id, "summarize");
    assert_eq!(row.pipeline_id, "summarize");
    assert_eq!(row.name.as_deref(), Some("Summarize r1"));
    assert_eq!(
        row.description.as_deref(),
        Some("Fetches a page and summarizes it")
    );
    assert_eq!(row.hash, "b3:1");
    assert_eq!(row.steps, 1);
    assert_eq!(row.version, 1);
    assert_eq!(row.created_at, row.updated_at);
    assert!(before < row.created_at && row.created_at < after);

    let got = s.pipeline("summarize").await.unwrap().unwrap();
    assert_eq!(got.row, row);
    assert_eq!(got.text, p.text);

    // `None` fields stay `None`, and an empty name is not mistaken for none.
    let mut bare = pipeline("bare", 1);
    bare.name = Some(String::new());
    let row = s.put_pipeline(&bare).await.unwrap();
    assert_eq!(row.name.as_deref(), Some(""));
    assert_eq!(row.description, None);
    assert_eq!(s.pipeline("bare").await.unwrap().unwrap().row, row);

    // An empty text is a text.
    let mut empty = pipeline("empty", 1);
    empty.text = String::new();
    s.put_pipeline(&empty).await.unwrap();
    assert_eq!(s.pipeline("empty").await.unwrap().unwrap().text, "");

    // Registered pipelines are apart from the pipelines runs record.
    s.create_run(&new_run("r1", "summarize", 1)).await.unwrap();
    assert_eq!(s.list_pipelines(0).await.unwrap().len(), 3);
    assert_eq!(s.pipeline("summarize").await.unwrap().unwrap().text, p.text);
}

pub(crate) async fn large_and_non_ascii_texts_round_trip(h: &Harness) {
    let s = &h.store;
    let text = large_text();
    assert!(text.len() >= 2 * 1024 * 1024);
    let mut p = pipeline("big/ünïcode 名前", 1);
    p.text = text.clone();
    p.name = Some("Größe 🦀".to_owned());
    let row = s.put_pipeline(&p).await.unwrap();
    let got = s.pipeline("big/ünïcode 名前").await.unwrap().unwrap();
    assert_eq!(got.row, row);
    assert_eq!(got.row.name.as_deref(), Some("Größe 🦀"));
    assert!(got.text == text, "the 2 MiB text came back changed");

    // Stored compressed, and smaller.
    let (compressed, stored) = stored_text(h, "big/ünïcode 名前").await;
    assert!(compressed);
    assert!(stored < text.len() / 2, "{stored} bytes for {}", text.len());

    // A store without compression reads it, and what it writes reads back either way.
    let plain = h
        .reopen(StateOptions {
            compression: false,
            ..options(None)
        })
        .await
        .unwrap();
    assert!(
        plain
            .pipeline("big/ünïcode 名前")
            .await
            .unwrap()
            .unwrap()
            .text
            == text
    );
    let mut q = pipeline("plain", 1);
    q.text = text.clone();
    plain.put_pipeline(&q).await.unwrap();
    let (compressed, stored) = stored_text(h, "plain").await;
    assert!(!compressed);
    assert_eq!(stored, text.len());
    assert!(s.pipeline("plain").await.unwrap().unwrap().text == text);
}

/// Whether the backend holds the text of `id` compressed, and how many bytes it holds.
async fn stored_text(h: &Harness, id: &str) -> (bool, usize) {
    match h.kind {
        Kind::Sqlite => {
            let mut c = h.sqlite_connection().await;
            let (compressed, n): (bool, i64) = sqlx::query_as(
                "SELECT text_compressed, length(text) FROM pipeline_registry WHERE id = ?1",
            )
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
            (compressed, n as usize)
        }
        Kind::Postgres => {
            let mut c = h.pg_connection().await;
            let (compressed, n): (bool, i32) = sqlx::query_as(
                "SELECT text_compressed, octet_length(text) FROM pipeline_registry WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
            (compressed, n as usize)
        }
        Kind::Redis => {
            let mut c = h.redis_connection().await;
            let key = format!("{}registry:{id}", h.redis_prefix());
            let (compressed, n): (String, usize) = redis::pipe()
                .cmd("HGET")
                .arg(&key)
                .arg("text_compressed")
                .cmd("HSTRLEN")
                .arg(&key)
                .arg("text")
                .query_async(&mut c)
                .await
                .unwrap();
            (compressed == "1", n)
        }
    }
}

pub(crate) async fn a_replacement_raises_the_version(h: &Harness) {
    let s = &h.store;
    let first = s.put_pipeline(&pipeline("p", 1)).await.unwrap();
    tick().await;
    let mut second = pipeline("p", 2);
    second.pipeline_id = "renamed".to_owned();
    second.name = None;
    second.description = Some("now described".to_owned());
    let row = s.put_pipeline(&second).await.unwrap();
    assert_eq!(row.version, 2);
    assert_eq!(row.created_at, first.created_at, "created_at is kept");
    assert!(row.updated_at > first.updated_at);
    assert_eq!(row.hash, "b3:2");
    assert_eq!(row.steps, 2);
    assert_eq!(row.pipeline_id, "renamed");
    assert_eq!(row.name, None, "a name the new text lacks is gone");
    assert_eq!(row.description.as_deref(), Some("now described"));
    let got = s.pipeline("p").await.unwrap().unwrap();
    assert_eq!(got.row, row);
    assert_eq!(got.text, second.text);

    tick().await;
    let third = s.put_pipeline(&pipeline("p", 3)).await.unwrap();
    assert_eq!(third.version, 3);
    assert_eq!(third.created_at, first.created_at);
    assert!(third.updated_at > row.updated_at);
    // Back to an earlier text is still a change.
    tick().await;
    let fourth = s.put_pipeline(&pipeline("p", 1)).await.unwrap();
    assert_eq!(fourth.version, 4);
    assert_eq!(
        s.pipeline("p").await.unwrap().unwrap().text,
        pipeline("p", 1).text
    );
}

pub(crate) async fn an_identical_put_changes_nothing(h: &Harness) {
    let s = &h.store;
    s.put_pipeline(&pipeline("p", 1)).await.unwrap();
    tick().await;
    let replaced = s.put_pipeline(&pipeline("p", 2)).await.unwrap();
    tick().await;
    let again = s.put_pipeline(&pipeline("p", 2)).await.unwrap();
    assert_eq!(again, replaced, "same version, same updated_at");
    // The hash is what counts: other fields sent with the same hash are not stored.
    let mut same_hash = pipeline("p", 2);
    same_hash.text = "something else".to_owned();
    same_hash.name = Some("other".to_owned());
    same_hash.steps = 99;
    assert_eq!(s.put_pipeline(&same_hash).await.unwrap(), replaced);
    let got = s.pipeline("p").await.unwrap().unwrap();
    assert_eq!(got.row, replaced);
    assert_eq!(got.text, pipeline("p", 2).text);

    // Many identical puts at once: one version.
    let mut puts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = s.clone();
        puts.spawn(async move { s.put_pipeline(&pipeline("q", 5)).await.unwrap() });
    }
    let rows = puts.join_all().await;
    assert!(rows.iter().all(|r| *r == rows[0] && r.version == 1));
}

pub(crate) async fn pipelines_list_by_id(h: &Harness) {
    let s = &h.store;
    assert!(s.list_pipelines(0).await.unwrap().is_empty());
    let ids = ["b", "a-2", "é", "Z", "a b", "a", "b/1", "10", "9"];
    for (n, id) in ids.iter().enumerate() {
        s.put_pipeline(&pipeline(id, n as u32)).await.unwrap();
    }
    let mut want: Vec<&str> = ids.to_vec();
    want.sort(); // byte order of the UTF-8
    assert_eq!(want, ["10", "9", "Z", "a", "a b", "a-2", "b", "b/1", "é"]);
    let all = s.list_pipelines(0).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), want);
    for row in &all {
        assert_eq!(s.pipeline(&row.id).await.unwrap().unwrap().row, *row);
    }
    let three = s.list_pipelines(3).await.unwrap();
    assert_eq!(three, all[..3]);
    assert_eq!(s.list_pipelines(100).await.unwrap(), all);
    assert_eq!(s.list_pipelines(1).await.unwrap(), all[..1]);
}

pub(crate) async fn delete_says_whether_it_existed(h: &Harness) {
    let s = &h.store;
    let first = s.put_pipeline(&pipeline("p", 1)).await.unwrap();
    s.put_pipeline(&pipeline("keep", 1)).await.unwrap();
    assert!(s.delete_pipeline("p").await.unwrap());
    assert!(s.pipeline("p").await.unwrap().is_none());
    assert!(!s.delete_pipeline("p").await.unwrap());
    assert!(!s.delete_pipeline("never").await.unwrap());
    let ids: Vec<String> = s
        .list_pipelines(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["keep"]);
    // Registered again, it starts over.
    tick().await;
    let again: PipelineRow = s.put_pipeline(&pipeline("p", 2)).await.unwrap();
    assert_eq!(again.version, 1);
    assert!(again.created_at > first.created_at);
}

pub(crate) async fn invalid_ids_are_refused(h: &Harness) {
    let s = &h.store;
    let long = "x".repeat(201);
    for id in [
        "", " p", "p ", "\tp", "a\nb", "a\u{7f}b", "a\u{0}b", "\u{85}", &long,
    ] {
        let refused = [
            s.put_pipeline(&pipeline(id, 1)).await.map(|_| ()),
            s.pipeline(id).await.map(|_| ()),
            s.delete_pipeline(id).await.map(|_| ()),
        ];
        for e in refused {
            let e = e.unwrap_err();
            assert!(
                matches!(&e, Error::InvalidValue { what, .. } if what.starts_with("pipeline id")),
                "{id:?}: {e}"
            );
        }
    }
    assert!(s.list_pipelines(0).await.unwrap().is_empty());
    // 200 characters (400 bytes), inner spaces and punctuation are fine.
    let widest = "é".repeat(200);
    for id in [widest.as_str(), "a b", "ns/p:1 (draft)", "x"] {
        s.put_pipeline(&pipeline(id, 1)).await.unwrap();
        assert_eq!(s.pipeline(id).await.unwrap().unwrap().row.id, id);
    }
}

/// The newest schema version each backend knows.
fn latest(kind: Kind) -> i64 {
    match kind {
        Kind::Sqlite => 7,
        // Migration 8: the steps handed to workers (`orc run --queue`), PostgreSQL only.
        Kind::Postgres => 8,
        Kind::Redis => 5,
    }
}

/// The schema version before the registry.
fn before_registry(kind: Kind) -> i64 {
    match kind {
        Kind::Sqlite | Kind::Postgres => 3,
        Kind::Redis => 2,
    }
}

/// Sets the store's schema back to the one before the registry (dropping the registry's table
/// or keys), or forward to `version` when it is given.
async fn set_schema(h: &Harness, version: Option<i64>) {
    match h.kind {
        Kind::Sqlite => {
            let mut c = h.sqlite_connection().await;
            match version {
                None => {
                    sqlx::query("DROP TABLE pipeline_registry")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    sqlx::query("DELETE FROM orc_schema_migrations WHERE version >= 4")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    drop_request_columns().execute(&mut c).await.unwrap();
                    crate::support::drop_rollup_tables()
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO orc_schema_migrations (version, description, success, checksum, execution_time)
                         VALUES (?1, 'from the future', TRUE, x'00', 0)",
                    )
                    .bind(v)
                    .execute(&mut c)
                    .await
                    .unwrap();
                }
            }
            sqlx::Connection::close(c).await.unwrap();
        }
        Kind::Postgres => {
            let mut c = h.pg_connection().await;
            match version {
                None => {
                    sqlx::query("DROP TABLE pipeline_registry")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    sqlx::query("DELETE FROM orc_schema_migrations WHERE version >= 4")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    drop_request_columns().execute(&mut c).await.unwrap();
                    crate::support::drop_rollup_tables()
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO orc_schema_migrations (version, description, success, checksum, execution_time)
                         VALUES ($1, 'from the future', TRUE, '\\x00', 0)",
                    )
                    .bind(v)
                    .execute(&mut c)
                    .await
                    .unwrap();
                }
            }
        }
        Kind::Redis => {
            let mut c = h.redis_connection().await;
            let prefix = h.redis_prefix();
            if version.is_none() {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{prefix}registry"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                for id in ids {
                    redis::cmd("DEL")
                        .arg(format!("{prefix}registry:{id}"))
                        .query_async::<()>(&mut c)
                        .await
                        .unwrap();
                }
                redis::cmd("DEL")
                    .arg(format!("{prefix}registry"))
                    .query_async::<()>(&mut c)
                    .await
                    .unwrap();
            }
            redis::cmd("SET")
                .arg(format!("{prefix}schema"))
                .arg(version.unwrap_or(2))
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        }
    }
}

/// Statements that take migration 5's columns out of `model_metrics`.
fn drop_request_columns() -> sqlx::RawSql {
    let statements: Vec<String> = crate::support::REQUEST_COLUMNS
        .iter()
        .map(|column| format!("ALTER TABLE model_metrics DROP COLUMN {column};"))
        .collect();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements.concat()))
}

/// The schema version the store records.
async fn schema_version(h: &Harness) -> i64 {
    match h.kind {
        Kind::Sqlite => {
            let mut c = h.sqlite_connection().await;
            let (v,): (i64,) =
                sqlx::query_as("SELECT MAX(version) FROM orc_schema_migrations WHERE success")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            v
        }
        Kind::Postgres => {
            let mut c = h.pg_connection().await;
            let (v,): (i64,) =
                sqlx::query_as("SELECT MAX(version) FROM orc_schema_migrations WHERE success")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            v
        }
        Kind::Redis => {
            let mut c = h.redis_connection().await;
            let v: String = redis::cmd("GET")
                .arg(format!("{}schema", h.redis_prefix()))
                .query_async(&mut c)
                .await
                .unwrap();
            v.parse().unwrap()
        }
    }
}

pub(crate) async fn a_store_of_the_previous_schema_gains_the_registry(h: &Harness) {
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    h.store.put_pipeline(&pipeline("gone", 1)).await.unwrap();
    set_schema(h, None).await;
    // The schema before the registry; the request metrics, their rollups, (SQL) the cache
    // lookups and (PostgreSQL) the dispatched steps came after it.
    assert_eq!(schema_version(h).await, before_registry(h.kind));

    let store: Store = h.reopen(options(None)).await.unwrap();
    assert_eq!(schema_version(h).await, latest(h.kind));
    // What the older schema held is still there; the registry starts empty and works.
    assert_eq!(store.run("r1").await.unwrap().unwrap().pipeline_id, "p");
    assert!(store.list_pipelines(0).await.unwrap().is_empty());
    let row = store.put_pipeline(&pipeline("p", 1)).await.unwrap();
    assert_eq!(row.version, 1);
    assert_eq!(
        store.pipeline("p").await.unwrap().unwrap().text,
        pipeline("p", 1).text
    );
    // Opening it again migrates nothing more.
    let again = h.reopen(options(None)).await.unwrap();
    assert_eq!(again.list_pipelines(0).await.unwrap(), [row]);
    assert_eq!(schema_version(h).await, latest(h.kind));
}

pub(crate) async fn the_newest_schema_plus_one_is_refused(h: &Harness) {
    let newer = latest(h.kind) + 1;
    set_schema(h, Some(newer)).await;
    let e = h.reopen(options(None)).await.unwrap_err();
    assert!(
        matches!(&e, Error::SchemaTooNew { found, supported, .. }
            if *found == newer && *supported == latest(h.kind)),
        "{e}"
    );
}
