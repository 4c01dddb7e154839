//! Cost of appending checkpoints, per backend: each append awaited before the next, as the engine
//! does when a step finishes (`cargo bench -p orc-bench --bench append`).
//!
//! - `sqlite 1/append`: one checkpoint per call, file in a temporary directory (target: median
//!   ≤ 100 µs).
//! - `sqlite 16/append`: sixteen checkpoints share one call (one transaction).
//! - PostgreSQL and Redis at `ORC_TEST_DATABASE_URL` / `ORC_TEST_REDIS_URL` (defaults as in the
//!   tests), each in a namespace of its own that is removed afterwards; skipped with a message
//!   when the server cannot be reached.
//!
//! - `sqlite lives ×64`: 64 tasks at once, each living whole runs as a service does (record the
//!   run, take its lease, append one checkpoint, record its end, give the lease up): runs per
//!   second, the figure that bounds `orc serve`'s runs throughput.
//!
//! The envelope is a typical tool result (~300 bytes of JSON); compression is on, as by default.
//! `ORC_BENCH_APPENDS` sets the number of timed calls per case (default 2000);
//! `ORC_BENCH_COMPRESSION=0` turns compression off.
//!
//! SQLite writes go to the store's writer thread, which commits the writes waiting at the time
//! in one transaction (see the backend's module doc); every figure still moves with how busy the
//! machine's cores are: run it on a quiet machine.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime};

use orc_state::{Checkpoint, Claim, NewRun, RunState, StateOptions, Store};
use serde_json::json;

fn checkpoint(n: usize) -> Checkpoint {
    orc_bench::checkpoint::typical(n as u64)
}

fn new_run(run_id: &str) -> NewRun {
    NewRun {
        run_id: run_id.to_owned(),
        pipeline_id: "bench".to_owned(),
        pipeline_path: "bench.yaml".to_owned(),
        pipeline_hash: "h".to_owned(),
        inputs: json!({}),
        started_at: SystemTime::now(),
    }
}

/// Median, p90 and p99 of `samples`, sorted in place.
fn summary(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9), at(0.99))
}

async fn case(name: &str, store: &Store, per_call: usize, calls: usize) {
    let run_id = format!("bench-{name}-{per_call}-{}", fastrand::u64(..));
    store.create_run(&new_run(&run_id)).await.unwrap();
    let groups: Vec<Vec<Checkpoint>> = (0..calls.min(64))
        .map(|g| {
            (0..per_call)
                .map(|i| checkpoint(g * per_call + i))
                .collect()
        })
        .collect();
    // Warm up: connections, statement caches, the compressor.
    for group in groups.iter().take(20) {
        store.append(&run_id, group).await.unwrap();
    }
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for i in 0..calls {
        let group = &groups[i % groups.len()];
        let t = Instant::now();
        store.append(&run_id, group).await.unwrap();
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    let (p50, p90, p99) = summary(&mut samples);
    println!(
        "{name:<10} {per_call:>2}/append  median {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  per checkpoint {:>7.1} µs  ({calls} calls, {:.0} checkpoints/s)",
        p50.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        p50.as_secs_f64() * 1e6 / per_call as f64,
        (calls * per_call) as f64 / total.as_secs_f64(),
    );
    let stored = store.run(&run_id).await.unwrap().unwrap().steps_done;
    assert_eq!(stored as usize, (calls + 20) * per_call);
}

/// `tasks` tasks at once, each living `runs / tasks` runs one after another.
async fn lives(name: &str, store: &Store, tasks: usize, runs: usize) {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let store = store.clone();
        let prefix = format!("life-{name}-{}-{t}", fastrand::u64(..));
        set.spawn(async move {
            for r in 0..runs / tasks {
                let run_id = format!("{prefix}-{r}");
                store.create_run(&new_run(&run_id)).await.unwrap();
                let Claim::Held(lease) = store
                    .claim(&run_id, "bench", Duration::from_secs(10))
                    .await
                    .unwrap()
                else {
                    panic!("a new run's lease was refused");
                };
                store.append_leased(&lease, &[checkpoint(r)]).await.unwrap();
                store
                    .finish_leased(&lease, RunState::Completed, Some(b"{}"))
                    .await
                    .unwrap();
                store.release(&run_id, "bench").await.unwrap();
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
    let total = started.elapsed();
    let lived = runs / tasks * tasks;
    println!(
        "{name:<10} lives ×{tasks}  {:.0} runs/s  ({lived} runs in {:.2} s)",
        lived as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
    );
}

/// Opens a server store in a fresh namespace, or says why not.
async fn server_store(url: &str, namespace: &str) -> Option<Store> {
    let options = StateOptions {
        namespace: Some(namespace.to_owned()),
        query_timeout: Duration::from_secs(5),
        ..StateOptions::default()
    };
    match Store::open(url, options).await {
        Ok(store) => Some(store),
        Err(e) => {
            println!("skipped {url}: {e}");
            None
        }
    }
}

fn main() {
    let calls: usize = std::env::var("ORC_BENCH_APPENDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/state.db", dir.path().display());
        let compression = std::env::var("ORC_BENCH_COMPRESSION").map_or(true, |v| v != "0");
        let sqlite = Store::open(
            &url,
            StateOptions {
                compression,
                ..StateOptions::default()
            },
        )
        .await
        .unwrap();
        case("sqlite", &sqlite, 1, calls).await;
        case("sqlite", &sqlite, 16, calls / 4).await;
        lives("sqlite", &sqlite, 64, calls * 2).await;

        let namespace = format!("bench_{:08x}", fastrand::u32(..));
        let pg_url = std::env::var("ORC_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        if let Some(pg) = server_store(&pg_url, &namespace).await {
            case("postgres", &pg, 1, calls / 2).await;
            case("postgres", &pg, 16, calls / 8).await;
            drop(pg);
            drop_schema(&pg_url, &namespace).await;
        }
        let redis_url = std::env::var("ORC_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        if let Some(redis) = server_store(&redis_url, &namespace).await {
            case("redis", &redis, 1, calls / 2).await;
            case("redis", &redis, 16, calls / 8).await;
            drop_keys(&redis_url, &namespace).await;
        }
    });
}

async fn drop_schema(url: &str, namespace: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{namespace}\" CASCADE"
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

async fn drop_keys(url: &str, namespace: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("orc:state:{namespace}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut c)
            .await
            .unwrap();
    }
}
