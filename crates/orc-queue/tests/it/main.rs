//! The queue against the real NATS JetStream server, each test in a pool of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use orc_queue::{Error, Queue, QueueOptions};

/// The NATS server the tests use: `ORC_TEST_NATS_URL`, else the local one.
fn nats_url() -> String {
    std::env::var("ORC_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A pool no other test (or earlier run) uses.
fn unique_pool(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{tag}-{}-{:x}", std::process::id(), nanos % (1 << 40))
}

/// A queue on a fresh pool; `None` (said on stderr) when NATS is unreachable outside CI.
async fn queue(tag: &str, ack_wait: Duration) -> Option<Queue> {
    let options = QueueOptions {
        ack_wait,
        ..QueueOptions::new(nats_url(), unique_pool(tag))
    };
    match options.build().await {
        Ok(q) => Some(q),
        Err(e @ Error::Connect { .. }) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{e}; .ci/run starts NATS with JetStream"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: {e}");
            }
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The next completion, within a generous limit.
async fn next(done: &mut orc_queue::Completions) -> Bytes {
    tokio::time::timeout(Duration::from_secs(30), done.next())
        .await
        .expect("a completion within 30 s")
        .expect("the stream goes on")
        .unwrap()
}

async fn cleanup(q: &Queue) {
    q.remove_pool(&q.options().pool).await.unwrap();
}

#[tokio::test]
async fn a_step_published_twice_under_one_id_is_delivered_once() {
    let Some(q) = queue("dup", Duration::from_secs(30)).await else {
        return;
    };
    let pool = q.options().pool.clone();
    q.publish_step(&pool, "run/a/1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    q.publish_step(&pool, "run/a/1", Bytes::from_static(b"again"))
        .await
        .unwrap();
    q.publish_step(&pool, "run/a/2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    let work = q.work().await.unwrap();
    let mut pull = work.pull(10, Duration::from_secs(1)).await.unwrap();
    let mut got = Vec::new();
    while let Some(d) = pull.next().await {
        let d = d.unwrap();
        got.push(d.payload().clone());
        d.ack().await.unwrap();
    }
    assert_eq!(
        got,
        [Bytes::from_static(b"one"), Bytes::from_static(b"two")]
    );
    cleanup(&q).await;
}

#[tokio::test]
async fn a_step_not_acked_within_ack_wait_is_delivered_again() {
    let Some(q) = queue("redeliver", Duration::from_secs(1)).await else {
        return;
    };
    let pool = q.options().pool.clone();
    q.publish_step(&pool, "run/a/1", Bytes::from_static(b"step"))
        .await
        .unwrap();
    let work = q.work().await.unwrap();
    let mut first = work.pull(1, Duration::from_secs(5)).await.unwrap();
    let taken = first.next().await.unwrap().unwrap();
    assert_eq!(taken.delivered(), 1);
    // Never acked: the worker "died".
    drop(taken);
    let mut second = work.pull(1, Duration::from_secs(10)).await.unwrap();
    let again = second.next().await.unwrap().unwrap();
    assert_eq!(again.payload(), &Bytes::from_static(b"step"));
    assert_eq!(again.delivered(), 2);
    again.ack().await.unwrap();
    cleanup(&q).await;
}

#[tokio::test]
async fn in_progress_acks_keep_a_long_step_from_going_to_another_worker() {
    let Some(q) = queue("progress", Duration::from_secs(1)).await else {
        return;
    };
    let pool = q.options().pool.clone();
    q.publish_step(&pool, "run/a/1", Bytes::from_static(b"long"))
        .await
        .unwrap();
    let work = q.work().await.unwrap();
    let mut pull = work.pull(1, Duration::from_secs(5)).await.unwrap();
    let taken = pull.next().await.unwrap().unwrap();
    // Three AckWaits long, with a sign of life every third of one.
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(330)).await;
        taken.in_progress().await.unwrap();
    }
    let mut other = work.pull(1, Duration::from_millis(500)).await.unwrap();
    assert!(other.next().await.is_none(), "delivered to another worker");
    taken.ack().await.unwrap();
    cleanup(&q).await;
}

#[tokio::test]
async fn completions_published_before_anyone_follows_are_read_from_the_first() {
    let Some(q) = queue("done", Duration::from_secs(30)).await else {
        return;
    };
    let run = format!("run.with spaces*and>dots-{}", unique_pool("r"));
    q.publish_completion(&run, Bytes::from_static(b"a"))
        .await
        .unwrap();
    q.publish_completion(&run, Bytes::from_static(b"b"))
        .await
        .unwrap();
    q.publish_completion("another run", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let mut done = q.completions(&run).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(next(&mut done).await);
    }
    assert_eq!(got, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    q.publish_completion(&run, Bytes::from_static(b"c"))
        .await
        .unwrap();
    let c = next(&mut done).await;
    assert_eq!(c, Bytes::from_static(b"c"), "then as they come");
    cleanup(&q).await;
}

#[tokio::test]
async fn a_plan_put_is_read_back_by_its_key() {
    let Some(q) = queue("plans", Duration::from_secs(30)).await else {
        return;
    };
    let key = format!("k{}", unique_pool("p").replace('-', ""));
    assert_eq!(q.plan(&key).await.unwrap(), None);
    q.put_plan(&key, Bytes::from_static(b"{\"id\":\"p\"}"))
        .await
        .unwrap();
    assert_eq!(
        q.plan(&key).await.unwrap(),
        Some(Bytes::from_static(b"{\"id\":\"p\"}"))
    );
    cleanup(&q).await;
}

#[tokio::test]
async fn bad_options_are_refused_before_connecting() {
    let bad_pool = QueueOptions::new("nats://127.0.0.1:1", "a.b").build().await;
    assert!(
        matches!(
            &bad_pool,
            Err(Error::Invalid {
                field: "queue.pool",
                ..
            })
        ),
        "{bad_pool:?}"
    );
    let bad_url = QueueOptions::new("http://127.0.0.1:4222", "p")
        .build()
        .await;
    assert!(
        matches!(
            &bad_url,
            Err(Error::Invalid {
                field: "queue.url",
                ..
            })
        ),
        "{bad_url:?}"
    );
    let zero = QueueOptions {
        ack_wait: Duration::ZERO,
        ..QueueOptions::new("nats://127.0.0.1:1", "p")
    }
    .build()
    .await;
    assert!(matches!(&zero, Err(Error::Invalid { .. })), "{zero:?}");
    let down = QueueOptions::new("nats://127.0.0.1:1", "p").build().await;
    let Err(e @ Error::Connect { .. }) = down else {
        panic!("{down:?}")
    };
    assert!(e.to_string().contains("nats-server -js"), "{e}");
}

#[tokio::test]
async fn a_pools_state_counts_its_steps_and_a_removed_step_is_not_delivered() {
    let Some(q) = queue("state", Duration::from_secs(30)).await else {
        return;
    };
    let pool = q.options().pool.clone();
    let first = q
        .publish_step(&pool, "run/a/1", Bytes::from_static(b"a"))
        .await
        .unwrap();
    let again = q
        .publish_step(&pool, "run/a/1", Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(again, first, "a duplicate publish names the first message");
    let second = q
        .publish_step(&pool, "run/b/1", Bytes::from_static(b"b"))
        .await
        .unwrap();
    let state = q.pool_state(&pool).await.unwrap();
    assert_eq!((state.steps, state.delivered_up_to), (2, 0));
    assert!(q.remove_step(&pool, first).await.unwrap());
    assert!(!q.remove_step(&pool, first).await.unwrap(), "gone already");
    let work = q.work().await.unwrap();
    let mut pull = work.pull(10, Duration::from_secs(1)).await.unwrap();
    let d = pull.next().await.unwrap().unwrap();
    assert_eq!(d.payload(), &Bytes::from_static(b"b"));
    let state = q.pool_state(&pool).await.unwrap();
    assert_eq!(
        (state.steps, state.delivered_up_to),
        (1, second),
        "taken, not yet acked"
    );
    d.ack().await.unwrap();
    assert_eq!(q.pool_state(&pool).await.unwrap().steps, 0);
    assert!(!q.remove_step(&pool, second).await.unwrap(), "acked: gone");
    cleanup(&q).await;
}
