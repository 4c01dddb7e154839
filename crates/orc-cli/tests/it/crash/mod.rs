//! Crash testing: a pipeline with model calls, side effects, a data step and a loop is killed
//! (SIGKILL) at random moments and resumed until it completes, on SQLite, PostgreSQL and
//! Redis, and each trial is checked against an uninterrupted run: every side effect once (or
//! once more for each kill that caught its step between the side effect and the checkpoint), no
//! model call paid twice (but one in flight at a kill), the same outputs and files, and a
//! history that lists the run completed with every step once. Then split brain: a holder
//! stopped past its lease while another process resumes its run.
//!
//! `ORC_CRASH_TRIALS` (default 10) and `ORC_CRASH_SERVER_TRIALS` (default 3) set the number of
//! trials; `ORC_CRASH_SEED` replays the random moments of a run (trial `i` uses seed + `i`);
//! `scripts/crash` runs the nightly-sized mode.

mod backend;
mod check;
mod observe;
mod pipeline;
mod split_brain;
mod tally;
mod trial;

use std::panic::{AssertUnwindSafe, catch_unwind};

use backend::Backend;
use tally::Tally;
use trial::Clean;

/// `ORC_CRASH_SEED`, else a random seed; printed with the test's `name`, so that a failure can
/// be replayed.
fn seed(name: &str) -> u64 {
    let seed = match std::env::var("ORC_CRASH_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ORC_CRASH_SEED `{text}` is not a whole number")),
        Err(_) => fastrand::u64(..),
    };
    #[allow(clippy::print_stderr)]
    {
        eprintln!("crash seed {seed} for {name} (replay with ORC_CRASH_SEED={seed})");
    }
    seed
}

/// The number of trials `var` asks for, else `default`.
fn trials(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var} `{text}` is not a whole number")),
        Err(_) => default,
    }
}

/// A run id no other trial, test or earlier run on a shared server has.
fn run_id(tag: &str) -> String {
    format!("{tag}-{}-{:016x}", std::process::id(), fastrand::u64(..))
}

/// Runs the trials of one backend and prints the tally; fails, naming the seeds that failed,
/// when any trial did.
fn crash_trials(backend: &str, var: &str, default: u64) {
    let Some(backend) = Backend::open(backend, backend::REDIS_DB) else {
        return;
    };
    let n = trials(var, default);
    let seed = seed(backend.name());
    let fake = pipeline::provider();
    let clean = Clean::run(&backend, &fake);
    let mut tally = Tally::default();
    let mut failed = Vec::new();
    for i in 0..n {
        let trial_seed = seed.wrapping_add(i);
        match catch_unwind(AssertUnwindSafe(|| {
            trial::run(&backend, &fake, &clean, trial_seed)
        })) {
            Ok(outcome) => tally.add(&outcome),
            Err(_) => {
                tally.trials += 1;
                tally.failures += 1;
                failed.push(trial_seed);
            }
        }
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "crash tally ({}): {tally}; the uninterrupted run took {:?}",
            backend.name(),
            clean.took
        );
    }
    assert!(
        failed.is_empty(),
        "{} trial(s) failed (their panics are above); replay one with ORC_CRASH_TRIALS=1 ORC_CRASH_SEED=<seed>: {failed:?}",
        failed.len()
    );
}

#[test]
fn runs_killed_at_random_moments_end_as_an_uninterrupted_run_on_sqlite() {
    crash_trials("sqlite", "ORC_CRASH_TRIALS", 10);
}

#[test]
fn runs_killed_at_random_moments_end_as_an_uninterrupted_run_on_postgres() {
    crash_trials("postgres", "ORC_CRASH_SERVER_TRIALS", 3);
}

#[test]
fn runs_killed_at_random_moments_end_as_an_uninterrupted_run_on_redis() {
    crash_trials("redis", "ORC_CRASH_SERVER_TRIALS", 3);
}
