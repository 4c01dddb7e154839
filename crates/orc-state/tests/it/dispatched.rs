//! Steps handed to workers (`orc run --queue`): attempts numbered by the store, a worker's result
//! stored once and only under the current attempt. PostgreSQL only.

use orc_state::{AttemptState, Error, Store};
use serde_json::json;

use crate::support::{Harness, new_run};

#[tokio::test]
async fn a_result_is_stored_once_under_the_current_attempt() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let first = s.dispatch_step("r1", "a").await.unwrap();
    assert_eq!((first.attempt, first.outcome.clone()), (1, None));
    assert_eq!(
        s.attempt_state("r1", "a", 1).await.unwrap(),
        AttemptState::Current
    );
    // The coordinator died; the next one hands the step out again: attempt 1 is superseded.
    let second = s.dispatch_step("r1", "a").await.unwrap();
    assert_eq!((second.attempt, second.outcome.clone()), (2, None));
    assert_eq!(
        s.attempt_state("r1", "a", 1).await.unwrap(),
        AttemptState::Superseded
    );
    assert!(
        !s.finish_dispatched("r1", "a", 1, &json!({"late": true}))
            .await
            .unwrap(),
        "a superseded attempt writes nothing"
    );
    assert!(
        s.finish_dispatched("r1", "a", 2, &json!({"ok": 2}))
            .await
            .unwrap()
    );
    assert!(
        !s.finish_dispatched("r1", "a", 2, &json!({"again": 2}))
            .await
            .unwrap(),
        "once"
    );
    // Delivered again after its result was stored (its worker died before it told the
    // coordinator): the stored result, to hand back once more.
    assert_eq!(
        s.attempt_state("r1", "a", 2).await.unwrap(),
        AttemptState::Finished(json!({"ok": 2}))
    );
    assert_eq!(
        s.attempt_state("r1", "a", 1).await.unwrap(),
        AttemptState::Superseded
    );
    // Handed out again after that (a coordinator that died before its checkpoint): the stored
    // result, and the same attempt.
    let third = s.dispatch_step("r1", "a").await.unwrap();
    assert_eq!((third.attempt, third.outcome), (2, Some(json!({"ok": 2}))));
    // Other steps and runs are apart.
    assert_eq!(s.dispatch_step("r1", "b").await.unwrap().attempt, 1);
    assert_eq!(
        s.attempt_state("r1", "c", 1).await.unwrap(),
        AttemptState::Superseded
    );
}

#[tokio::test]
async fn a_step_of_an_unknown_run_is_refused() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    let e = h.store.dispatch_step("nope", "a").await.unwrap_err();
    assert!(matches!(e, Error::RunNotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn other_backends_say_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/state.db", dir.path().display());
    let s = Store::open(&url, crate::support::options(None))
        .await
        .unwrap();
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let e = s.dispatch_step("r1", "a").await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
}
