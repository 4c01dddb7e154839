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
