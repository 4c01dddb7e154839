//! What only the Redis backend does: a foreign schema key, a refused login, a server that goes away.

use std::time::Duration;

use orc_state::{Error, StateOptions, Store};

use crate::support::{Harness, Proxy, options, redis_url};

#[tokio::test]
async fn a_foreign_schema_key_is_refused() {
    let Some(h) = Harness::redis().await else {
        return;
    };
    let mut c = h.redis_connection().await;
    redis::cmd("SET")
        .arg(format!("{}schema", h.redis_prefix()))
        .arg("not a version")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let e = h.reopen(options(None)).await.unwrap_err();
    assert!(matches!(e, Error::NotAStateDatabase { .. }), "{e}");
}

#[tokio::test]
async fn a_version_1_store_is_upgraded_and_its_leases_fenced() {
    let Some(h) = Harness::redis().await else {
        return;
    };
    h.store
        .create_run(&crate::support::new_run("r1", "p", 1))
        .await
        .unwrap();
    let mut c = h.redis_connection().await;
    let key = format!("{}schema", h.redis_prefix());
    redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let store = h.reopen(options(None)).await.unwrap();
    let version: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        version, "5",
        "older orcs, whose writes are not fenced, now refuse it"
    );
    // A version-1 run has no lease fields: generation 0, nobody holds it.
    let a = store
        .claim("r1", "a", Duration::from_millis(1))
        .await
        .unwrap()
        .lease()
        .unwrap();
    assert_eq!(a.generation, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = store
        .claim("r1", "b", Duration::from_secs(60))
        .await
        .unwrap()
        .lease()
        .unwrap();
    assert_eq!(b.generation, 2);
    let e = store
        .append_leased(&a, &[crate::support::checkpoint("x", 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
}

#[tokio::test]
async fn a_refused_login_hides_the_password() {
    if !crate::support::redis_reachable().await {
        return;
    }
    let Some(url) = redis::parse_redis_url(&redis_url()) else {
        panic!("bad ORC_TEST_REDIS_URL");
    };
    let with_password = format!(
        "redis://nobody:s3cret@{}:{}/",
        url.host_str().unwrap(),
        url.port().unwrap_or(6379)
    );
    let e = Store::open(&with_password, options(Some("login".into())))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(message.contains("nobody:***@"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_fails_calls_and_loses_nothing() {
    let Some(h) = Harness::redis().await else {
        return;
    };
    let url = redis::parse_redis_url(&h.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(6379));
    let proxy = Proxy::start(&upstream).await;
    let store = Store::open(
        &format!("redis://127.0.0.1:{}{}", proxy.port, url.path()),
        StateOptions {
            query_timeout: Duration::from_secs(2),
            ..options(h.namespace.clone())
        },
    )
    .await
    .unwrap();
    crate::conformance::backend_going_away_is_an_error(&store, &proxy).await;
}
