//! Runs across machines, as separate processes: a coordinator (`orc run --queue`) and three
//! `orc worker`s over the real NATS JetStream and PostgreSQL, each test in a database and a pool
//! of its own.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Run, Sandbox};

/// How many steps the fan-out has.
const STEPS: usize = 300;
/// Steps each worker runs at once.
const CONCURRENCY: usize = 4;
/// Longest a test waits for its run: generous, the machine may be busy.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The NATS server the tests use: `ORC_TEST_NATS_URL`, else the local one.
fn nats_url() -> String {
    std::env::var("ORC_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A PostgreSQL database of the test's own, dropped at the end.
pub(crate) struct Database {
    name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) fn create(tag: &str) -> Option<Database> {
        let server = crate::support::postgres_url();
        if !crate::support::reachable("PostgreSQL", &server) {
            return None;
        }
        let name = format!("orc_{tag}_{}", unique());
        psql(&server, &format!("CREATE DATABASE {name}"));
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Some(Database {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let server = crate::support::postgres_url();
        let _ = Command::new("psql")
            .args([
                server.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (PostgreSQL's client) runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Letters and digits no other test process has (a pool name, a database name).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}_{:x}", std::process::id(), nanos % (1 << 40))
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test's machines: the sandbox, its database and pool, and the processes it started.
struct Cluster {
    sb: Sandbox,
    db: Database,
    pool: String,
    workers: Vec<Proc>,
}

impl Cluster {
    fn new(tag: &str) -> Option<Cluster> {
        if !crate::support::reachable("NATS", &nats_url()) {
            return None;
        }
        let db = Database::create(tag)?;
        let sb = Sandbox::new();
        sb.file("fanout.yaml", &fan_out(STEPS));
        Some(Cluster {
            sb,
            db,
            pool: format!("t{}", unique()),
            workers: Vec::new(),
        })
    }

    /// `orc` with the test's store, few connections each (PostgreSQL takes 100 in all, shared
    /// by every test), and a short `AckWait` (a killed worker's steps go to another one after
    /// 3 s).
    fn orc(&self) -> Command {
        let mut c = self.sb.command();
        c.env("ORC_QUEUE__ACK_WAIT", "3")
            .env("ORC_PERFORMANCE__DATABASE__CONNECTION_POOL_SIZE", "6")
            .args(["--state", &self.db.url]);
        c
    }

    /// Starts `n` workers, and makes the directory the steps write to.
    fn start_workers(&mut self, n: usize) {
        std::fs::create_dir_all(self.sb.path("out")).unwrap();
        for i in 0..n {
            self.start_worker(i);
        }
    }

    fn start_worker(&mut self, n: usize) {
        let log = std::fs::File::create(self.sb.path(&format!("worker{n}.log"))).unwrap();
        let child = self
            .orc()
            .env("ORC_LOG", "warn,orc_runtime=debug")
            .args(["worker", "--queue", &nats_url(), "--pool", &self.pool])
            .args(["--concurrency", &CONCURRENCY.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.push(Proc(child));
    }

    fn start_run(&self, run_id: &str) -> Proc {
        let out = std::fs::File::create(self.sb.path("result.json")).unwrap();
        let err = std::fs::File::create(self.sb.path("coordinator.log")).unwrap();
        let child = self
            .orc()
            .args(["run", "fanout.yaml", "-q", "--run-id", run_id])
            .args(["--queue", &nats_url(), "--pool", &self.pool])
            .args(["-i", &format!("out={}", self.sb.out())])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Proc(child)
    }

    /// Waits for the coordinator to exit; its exit code, result document and stderr.
    fn finish(&self, mut coordinator: Proc) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = coordinator.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the run did not end within {RUN_LIMIT:?}; {} lines written\ncoordinator:\n{}\n{}",
                self.lines().len(),
                self.sb.read("coordinator.log"),
                self.worker_logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.sb.read("result.json"),
            stderr: self.sb.read("coordinator.log"),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.sb.lines("out/lines.txt")
    }

    fn worker_logs(&self) -> String {
        (0..self.workers.len())
            .map(|n| format!("worker {n}:\n{}", self.sb.read(&format!("worker{n}.log"))))
            .collect()
    }

    /// Stops the workers that still run (SIGTERM) and returns how many steps each ran.
    fn stop_workers(&mut self) -> Vec<u64> {
        let mut counts = Vec::new();
        for (n, w) in self.workers.iter_mut().enumerate() {
            if w.0.try_wait().unwrap().is_some() {
                continue;
            }
            let pid = w.0.id().to_string();
            let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(killed.success());
            let started = Instant::now();
            while w.0.try_wait().unwrap().is_none() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "worker {n} did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = self.sb.read(&format!("worker{n}.log"));
            let ran = log
                .lines()
                .find_map(|l| l.strip_prefix("worker stopped: "))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("worker {n} did not say what it ran:\n{log}"));
            counts.push(ran);
        }
        counts
    }
}

/// A pipeline of `n` steps, each appending its number to a file and sleeping 50 ms.
fn fan_out(n: usize) -> String {
    format!(
        r#"id: fanout
name: Fan-out
parameters:
  out: {{ type: string }}
steps:
  - id: each
    for_each: "{{{{ range({n}) | list }}}}"
    max_parallel: {n}
    steps:
      - id: work
        tool: terminal
        action: execute
        parameters:
          command: "echo {{{{ item }}}} >> {{{{ out }}}}/lines.txt && sleep 0.05"
"#
    )
}

/// Every number 0..STEPS, with how many times each was written.
fn tally(lines: &[String]) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    for line in lines {
        let n: usize = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("line {line:?}"));
        *seen.entry(n).or_insert(0) += 1;
    }
    seen
}

/// The iteration steps of the result document that completed, by id.
fn completed_steps(doc: &Value) -> usize {
    doc["steps"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, s)| id.ends_with("_work") && s["status"] == "completed")
        .count()
}

#[test]
fn three_workers_run_a_fan_out_of_300_steps_each_once() {
    let Some(mut cluster) = Cluster::new("fanout") else {
        return;
    };
    cluster.start_workers(3);
    let run = cluster.finish(cluster.start_run("fanout-1"));
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, cluster.worker_logs());
    let doc = run.doc();
    assert_eq!(doc["status"], "completed");
    assert_eq!(completed_steps(&doc), STEPS);
    let seen = tally(&cluster.lines());
    assert_eq!(seen.len(), STEPS, "every step wrote its line");
    assert!(
        seen.values().all(|&times| times == 1),
        "a step ran twice: {:?}\n{}",
        seen.iter().filter(|(_, t)| **t > 1).collect::<Vec<_>>(),
        cluster.worker_logs()
    );
    let counts = cluster.stop_workers();
    assert_eq!(
        counts.iter().sum::<u64>(),
        STEPS as u64,
        "the workers ran every step, the coordinator none: {counts:?}"
    );
}

#[test]
fn a_worker_killed_mid_run_loses_no_step() {
    let Some(mut cluster) = Cluster::new("killed") else {
        return;
    };
    cluster.start_workers(3);
    let coordinator = cluster.start_run("killed-1");
    let started = Instant::now();
    while cluster.lines().len() < STEPS / 5 {
        assert!(started.elapsed() < RUN_LIMIT, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: the worker's steps in flight are neither acked nor stored.
    cluster.workers[0].0.kill().unwrap();
    cluster.workers[0].0.wait().unwrap();
    let run = cluster.finish(coordinator);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, cluster.worker_logs());
    let doc = run.doc();
    assert_eq!(doc["status"], "completed");
    assert_eq!(completed_steps(&doc), STEPS, "every step completed once");
    let seen = tally(&cluster.lines());
    assert_eq!(seen.len(), STEPS, "every step wrote its line");
    // A step the killed worker had started may have written its line before it died, and the
    // worker that got it again writes it once more: at most the killed worker's slots.
    let twice: Vec<_> = seen.iter().filter(|(_, t)| **t > 1).collect();
    assert!(twice.len() <= CONCURRENCY, "{twice:?}");
    assert!(seen.values().all(|&t| t <= 2), "{seen:?}");
    let logs = cluster.worker_logs();
    assert!(
        logs.contains("delivered again"),
        "the killed worker's steps went to another worker:\n{logs}"
    );
    let counts = cluster.stop_workers();
    assert_eq!(counts.len(), 2, "the two live workers stopped");
}

#[test]
fn a_queue_without_a_shared_store_or_a_worker_without_a_queue_is_refused() {
    let sb = Sandbox::new();
    sb.file("fanout.yaml", &fan_out(2));
    let run = sb.orc(&["run", "fanout.yaml", "--queue", "nats://127.0.0.1:4222"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("PostgreSQL"), "{}", run.stderr);
    let worker = sb.orc(&["worker"]);
    assert_eq!(worker.code, 2, "{}", worker.stderr);
    assert!(
        worker.stderr.contains("--queue nats://"),
        "{}",
        worker.stderr
    );
    // Checked before anything is reached (nothing listens on port 1).
    let bad_pool = sb.orc(&[
        "--state",
        "postgres://postgres@127.0.0.1:1/none",
        "worker",
        "--queue",
        "nats://127.0.0.1:1",
        "--pool",
        "a.b",
    ]);
    assert_eq!(bad_pool.code, 2, "{}", bad_pool.stderr);
    assert!(
        bad_pool.stderr.contains("queue.pool"),
        "{}",
        bad_pool.stderr
    );
}

#[test]
fn a_killed_coordinator_is_replaced_by_orc_resume_without_rerunning_finished_steps() {
    let Some(mut cluster) = Cluster::new("resume") else {
        return;
    };
    cluster.start_workers(3);
    let mut coordinator = cluster.start_run("resume-1");
    let started = Instant::now();
    while cluster.lines().len() < STEPS / 3 {
        assert!(started.elapsed() < RUN_LIMIT, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no chance to record anything; the workers go on with what they hold.
    coordinator.0.kill().unwrap();
    coordinator.0.wait().unwrap();
    let written = cluster.lines().len();
    let out = std::fs::File::create(cluster.sb.path("result.json")).unwrap();
    let err = std::fs::File::create(cluster.sb.path("coordinator.log")).unwrap();
    // The killed process is provably dead (same host): the lease is taken at once.
    let resumed = cluster
        .orc()
        .args(["resume", "resume-1", "-q"])
        .args(["--queue", &nats_url(), "--pool", &cluster.pool])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let run = cluster.finish(Proc(resumed));
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, cluster.worker_logs());
    let doc = run.doc();
    assert_eq!(doc["status"], "completed");
    assert_eq!(completed_steps(&doc), STEPS);
    let seen = tally(&cluster.lines());
    assert_eq!(seen.len(), STEPS, "every step wrote its line");
    // Only a step a worker was running when the coordinator died runs again (its attempt was
    // handed out anew, as a local resume runs a step that was running at the crash again).
    let twice: Vec<_> = seen.iter().filter(|(_, t)| **t > 1).collect();
    assert!(
        twice.len() <= 3 * CONCURRENCY,
        "{} lines before the kill; twice: {twice:?}",
        written
    );
    assert!(seen.values().all(|&t| t <= 2), "{seen:?}");
}
