//! Integration tests of orc-state: one conformance suite run against every backend on the real
//! servers (PostgreSQL at `ORC_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; Redis at `ORC_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), each test in its own namespace, plus each backend's own cases.
//! With `CI` set an unreachable server fails the test; elsewhere the test says it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod conformance;
mod errors;
mod postgres;
mod redis;
mod sqlite;
mod support;

/// One test per conformance case and backend: `sqlite::runs_round_trip`,
/// `postgres::runs_round_trip`, `redis::runs_round_trip`, …
macro_rules! backends {
    ($($case:ident),* $(,)?) => {
        mod conformance_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::support::Harness::sqlite().await;
                    crate::conformance::$case(&h).await;
                }
            )*
        }
        mod conformance_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::support::Harness::postgres().await else { return };
                    crate::conformance::$case(&h).await;
                }
            )*
        }
        mod conformance_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::support::Harness::redis().await else { return };
                    crate::conformance::$case(&h).await;
                }
            )*
        }
    };
}

backends!(
    runs_round_trip,
    checkpoints_append_in_order,
    compression_is_per_record,
    finish_and_reopen,
    history_lists_newest_first,
    leases_exclude_other_owners,
    fenced_writes_are_refused_after_a_takeover,
    a_dead_holders_lease_is_taken_over_at_once,
    a_live_or_unknown_holders_lease_is_refused,
    only_one_concurrent_claim_wins,
    concurrent_appends_keep_every_checkpoint,
    prune_deletes_old_unleased_runs,
    model_metrics_round_trip,
    newer_schema_is_refused,
);
