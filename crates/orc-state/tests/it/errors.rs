//! Bad URLs, bad options and unreachable servers give a clear error that names the store without
//! its password, and never panic.

use std::time::Duration;

use orc_state::{Error, StateOptions, Store};

fn quick() -> StateOptions {
    StateOptions {
        query_timeout: Duration::from_secs(3),
        ..StateOptions::default()
    }
}

async fn open_err(url: &str, options: StateOptions) -> Error {
    Store::open(url, options).await.unwrap_err()
}

#[tokio::test]
async fn unknown_schemes_and_malformed_urls() {
    for url in [
        "mysql://root:hunter2@db/orc",
        "state.db",
        "://user:hunter2@x",
        "sqlite://",
        "sqlite:///tmp/state.db?mode=ro",
        "postgres://root:hunter2@db:notaport/orc",
        "redis://:hunter2@[::1/0",
    ] {
        let e = open_err(url, quick()).await;
        let message = e.to_string();
        assert!(matches!(e, Error::InvalidUrl { .. }), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("hint: use sqlite:///"), "{message}");
    }
    let message = open_err("mysql://root:hunter2@db/orc", quick())
        .await
        .to_string();
    assert!(
        message.starts_with("invalid state URL `mysql://root:***@db/orc`: unknown scheme `mysql`"),
        "{message}"
    );
}

#[tokio::test]
async fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let cases = [
        StateOptions {
            pool_size: 0,
            ..quick()
        },
        StateOptions {
            query_timeout: Duration::ZERO,
            ..quick()
        },
        StateOptions {
            namespace: Some("Has-Dash".into()),
            ..quick()
        },
        StateOptions {
            namespace: Some("pg_catalog".into()),
            ..quick()
        },
        StateOptions {
            namespace: Some("x".repeat(49)),
            ..quick()
        },
        // A SQLite store is a file: it takes no namespace.
        StateOptions {
            namespace: Some("ok".into()),
            ..quick()
        },
    ];
    for options in cases {
        let e = open_err(&url, options.clone()).await;
        assert!(
            matches!(e, Error::InvalidOptions { .. }),
            "{options:?}: {e}"
        );
    }
}

#[tokio::test]
async fn unreachable_postgres_names_the_server_without_the_password() {
    let e = open_err("postgres://orc:s3cret@127.0.0.1:1/orc", quick()).await;
    let message = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{message}");
    assert!(
        message.starts_with("cannot open the state store postgres://orc:***@127.0.0.1:1/orc"),
        "{message}"
    );
    assert!(message.contains("hint: is PostgreSQL running"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn unreachable_redis_names_the_server_without_the_password() {
    let e = open_err("redis://:s3cret@127.0.0.1:1/0", quick()).await;
    let message = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{message}");
    assert!(
        message.starts_with("cannot open the state store redis://:***@127.0.0.1:1/0"),
        "{message}"
    );
    assert!(
        message.contains("hint: is Redis running at 127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
