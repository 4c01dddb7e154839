//! What only the PostgreSQL backend does: schemas as namespaces, indexes, migrations from an older
//! schema, permissions, a missing database, a server that goes away.

use std::time::Duration;

use orc_state::{Error, ModelMetric, NewPipeline, StateOptions, Store};
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;

use crate::support::{Harness, Proxy, at, checkpoint, namespace, new_run, options, postgres_url};

#[tokio::test]
async fn the_schema_is_indexed_and_the_url_redacted() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    let mut c = h.pg_connection().await;
    let ns = h.namespace.clone().unwrap();
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND indexname NOT LIKE '%_pkey' ORDER BY 1",
    )
    .bind(&ns)
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
    let (ours,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(&ns)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(ours, 11);

    // A password in the URL never shows (trust auth ignores it).
    let with_password = postgres_url().replacen("postgres@", "postgres:s3cret@", 1);
    if with_password.contains("s3cret") {
        let store = h.reopen(options(None)).await.unwrap();
        drop(store);
        let store = Store::open(&with_password, options(h.namespace.clone()))
            .await
            .unwrap();
        assert!(!store.describe().contains("s3cret"), "{}", store.describe());
        assert!(store.describe().contains(":***@"), "{}", store.describe());
    }
}

#[tokio::test]
async fn an_older_schema_is_migrated() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    h.store.append("r1", &[checkpoint("a", 1)]).await.unwrap();
    let mut c = h.pg_connection().await;
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
async fn a_missing_database_says_how_to_create_it() {
    if !crate::support::postgres_reachable().await {
        return;
    }
    let base: PgConnectOptions = postgres_url().parse().unwrap();
    let url = format!(
        "postgres://{}@{}:{}/orc_no_such_database_{:x}",
        base.get_username(),
        base.get_host(),
        base.get_port(),
        fastrand::u32(..)
    );
    let e = Store::open(&url, options(None)).await.unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{message}");
    assert!(
        message.contains("hint: the database does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn a_user_without_permissions_gets_a_clear_error() {
    if !crate::support::postgres_reachable().await {
        return;
    }
    let url = postgres_url();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let (superuser,): (bool,) =
        sqlx::query_as("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !superuser {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED: the test user cannot create roles");
        }
        return;
    }
    let role = namespace("role");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base: PgConnectOptions = url.parse().unwrap();
    let as_role = format!(
        "postgres://{role}:pw@{}:{}/{}",
        base.get_host(),
        base.get_port(),
        base.get_database().unwrap_or("test")
    );
    // In `public` (no CREATE there for PUBLIC since PostgreSQL 15) and in a schema of its own.
    let in_public = Store::open(&as_role, options(None)).await;
    let in_schema = Store::open(&as_role, options(Some(namespace("denied")))).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut admin)
        .await
        .unwrap();
    for result in [in_public, in_schema] {
        let e = result.unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(e, Error::Migrate { .. } | Error::Connect { .. }),
            "{message}"
        );
        assert!(message.contains("permission denied"), "{message}");
        assert!(message.contains("hint:"), "{message}");
        assert!(!message.contains(":pw@"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_fails_calls_and_loses_nothing() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    let base: PgConnectOptions = h.url.parse().unwrap();
    let proxy = Proxy::start(&format!("{}:{}", base.get_host(), base.get_port())).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        base.get_username(),
        proxy.port,
        base.get_database().unwrap_or("test")
    );
    let store = Store::open(
        &url,
        StateOptions {
            query_timeout: Duration::from_secs(1),
            ..options(h.namespace.clone())
        },
    )
    .await
    .unwrap();
    crate::conformance::backend_going_away_is_an_error(&store, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_schema_at_once_all_succeed() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    // A second, fresh namespace; dropped with the harness below.
    let ns = namespace("pg_race");
    let fresh = Harness {
        store: h.store.clone(),
        kind: h.kind,
        url: h.url.clone(),
        namespace: Some(ns.clone()),
        dir: None,
    };
    for store in crate::support::open_all(&h.url, options(Some(ns)), 4).await {
        assert!(store.unwrap().run("r").await.unwrap().is_none());
    }
    drop(fresh);
}
