//! Integration tests of orc-state: one conformance suite run against every backend on the real
//! servers (PostgreSQL at `ORC_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; Redis at `ORC_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), each test in its own namespace, plus each backend's own cases.
//! With `CI` set an unreachable server fails the test; elsewhere the test says it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod conformance;
mod dispatched;
mod errors;
mod pipelines;
mod postgres;
mod redis;
mod requests;
mod rollups;
mod sqlite;
mod support;

/// One test per case of `$module` and backend: `conformance_sqlite::runs_round_trip`,
/// `conformance_postgres::runs_round_trip`, `conformance_redis::runs_round_trip`, …
macro_rules! backends {
    ($module:ident => $sqlite:ident, $postgres:ident, $redis:ident: $($case:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::support::Harness::sqlite().await;
                    crate::$module::$case(&h).await;
                }
            )*
        }
        mod $postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::support::Harness::postgres().await else { return };
                    crate::$module::$case(&h).await;
                }
            )*
        }
        mod $redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::support::Harness::redis().await else { return };
                    crate::$module::$case(&h).await;
                }
            )*
        }
    };
}

backends!(
    conformance => conformance_sqlite, conformance_postgres, conformance_redis:
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
    run_costs_sum_each_runs_checkpoints,
);

backends!(
    pipelines => pipelines_sqlite, pipelines_postgres, pipelines_redis:
    pipelines_round_trip,
    large_and_non_ascii_texts_round_trip,
    a_replacement_raises_the_version,
    an_identical_put_changes_nothing,
    pipelines_list_by_id,
    delete_says_whether_it_existed,
    invalid_ids_are_refused,
    a_store_of_the_previous_schema_gains_the_registry,
    the_newest_schema_plus_one_is_refused,
);

backends!(
    requests => requests_sqlite, requests_postgres, requests_redis:
    stats_sum_the_period,
    series_have_a_point_per_step,
    bad_periods_are_refused,
    cache_lookups_add_up_per_minute,
);

backends!(
    rollups => rollups_sqlite, rollups_postgres, rollups_redis:
    rollups_give_the_rows_figures,
    an_older_store_gets_rollups_of_its_requests,
);
