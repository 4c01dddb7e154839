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

/// A test's machines: the sandbox, its database and pool, the NATS server it uses and the
/// processes it started.
struct Cluster {
    sb: Sandbox,
    db: Database,
    pool: String,
    nats: String,
    workers: Vec<Proc>,
}

impl Cluster {
    /// A cluster on the shared NATS server.
    fn new(tag: &str) -> Option<Cluster> {
        if !crate::support::reachable("NATS", &nats_url()) {
            return None;
        }
        Cluster::on(tag, Sandbox::new(), nats_url())
    }

    /// A cluster on the shared NATS server whose `fanout.yaml` has `steps` steps, all at once,
    /// with the directory they write to.
    fn small(tag: &str, steps: usize) -> Option<Cluster> {
        let cluster = Cluster::new(tag)?;
        cluster.sb.file("fanout.yaml", &fan_out(steps, steps));
        std::fs::create_dir_all(cluster.sb.path("out")).unwrap();
        Some(cluster)
    }

    /// A cluster in `sb` on the NATS server at `nats`.
    fn on(tag: &str, sb: Sandbox, nats: String) -> Option<Cluster> {
        let db = Database::create(tag)?;
        sb.file("fanout.yaml", &fan_out(STEPS, STEPS));
        Some(Cluster {
            sb,
            db,
            pool: format!("t{}", unique()),
            nats,
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
        self.start_worker_with(n, &[], &[]);
    }

    /// Starts worker `n` with more environment variables and arguments.
    fn start_worker_with(&mut self, n: usize, env: &[(&str, &str)], args: &[&str]) {
        let log = std::fs::File::create(self.sb.path(&format!("worker{n}.log"))).unwrap();
        let child = self
            .orc()
            .envs(env.iter().copied())
            .env("ORC_LOG", "warn,orc_runtime=debug")
            .args(["worker", "--queue", &self.nats, "--pool", &self.pool])
            .args(["--concurrency", &CONCURRENCY.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.push(Proc(child));
    }

    fn start_run(&self, run_id: &str) -> Proc {
        Proc(self.run_command(run_id).spawn().unwrap())
    }

    /// The coordinator of `run_id`, running `fanout.yaml`, not yet started.
    fn run_command(&self, run_id: &str) -> Command {
        let out = std::fs::File::create(self.sb.path("result.json")).unwrap();
        let err = std::fs::File::create(self.sb.path("coordinator.log")).unwrap();
        let mut c = self.orc();
        c.args(["run", "fanout.yaml", "-q", "--run-id", run_id])
            .args(["--queue", &self.nats, "--pool", &self.pool])
            .args(["-i", &format!("out={}", self.sb.out())])
            .stdout(out)
            .stderr(err);
        c
    }

    /// Waits for the coordinator to exit; its exit code, result document and stderr.
    fn finish(&self, coordinator: Proc) -> Run {
        self.finish_within(coordinator, RUN_LIMIT)
    }

    /// [`Cluster::finish`], failing the test past `limit`.
    fn finish_within(&self, mut coordinator: Proc, limit: Duration) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = coordinator.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < limit,
                "the run did not end within {limit:?}; {} lines written\ncoordinator:\n{}\n{}",
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

    /// Checks that the run completed every step once and each wrote its line, at most `twice`
    /// of them twice (steps a lost worker or server had in flight).
    fn completed_each_once_but(&self, run: &Run, twice: usize) {
        assert_eq!(run.code, 0, "{}\n{}", run.stderr, self.worker_logs());
        let doc = run.doc();
        assert_eq!(doc["status"], "completed");
        assert_eq!(completed_steps(&doc), STEPS, "every step completed once");
        let seen = tally(&self.lines());
        assert_eq!(seen.len(), STEPS, "every step wrote its line");
        let again: Vec<_> = seen.iter().filter(|(_, t)| **t > 1).collect();
        assert!(again.len() <= twice, "{again:?}");
        assert!(seen.values().all(|&t| t <= 2), "{seen:?}");
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

/// A pipeline of `n` steps, each appending its number to a file and sleeping 50 ms, at most
/// `parallel` at once.
fn fan_out(n: usize, parallel: usize) -> String {
    format!(
        r#"id: fanout
name: Fan-out
parameters:
  out: {{ type: string }}
steps:
  - id: each
    for_each: "{{{{ range({n}) | list }}}}"
    max_parallel: {parallel}
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
    // A step the killed worker had started may have written its line before it died, and the
    // worker that got it again writes it once more: at most the killed worker's slots.
    cluster.completed_each_once_but(&run, CONCURRENCY);
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
    sb.file("fanout.yaml", &fan_out(2, 2));
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
        .args(["--queue", &cluster.nats, "--pool", &cluster.pool])
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

/// A NATS server of the test's own (JetStream, its store in the sandbox) on a free loopback
/// port, which the test can stop and start again on the same port and store.
struct NatsServer {
    port: u16,
    store: std::path::PathBuf,
    log: std::path::PathBuf,
    process: Option<Proc>,
}

impl NatsServer {
    /// Starts one, or `None` (the test is skipped) where `nats-server` is not installed.
    fn start(sb: &Sandbox) -> Option<NatsServer> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{NATS_SERVER} is not installed (`apt-get install nats-server`)"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: {NATS_SERVER} is not installed");
            }
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = NatsServer {
            port,
            store: sb.path("nats-store"),
            log: sb.path("nats.log"),
            process: None,
        };
        server.up();
        Some(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it takes connections.
    fn up(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .arg("-l")
            .arg(&self.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(Proc(child));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not listen on {}:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to its clients, nothing flushed on the way out).
    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.0.kill().unwrap();
            p.0.wait().unwrap();
        }
    }
}

/// Where Debian's package puts the NATS server.
const NATS_SERVER: &str = "/usr/sbin/nats-server";

#[test]
fn a_nats_restart_mid_run_loses_no_step() {
    let sb = Sandbox::new();
    let Some(mut nats) = NatsServer::start(&sb) else {
        return;
    };
    let Some(mut cluster) = Cluster::on("natsrestart", sb, nats.url()) else {
        return;
    };
    // As many steps out at once as the workers take: the coordinator keeps publishing
    // throughout, so the outage meets publishes, pulls, acks and completions in flight.
    let in_flight = 3 * CONCURRENCY;
    cluster.sb.file("fanout.yaml", &fan_out(STEPS, in_flight));
    cluster.start_workers(3);
    let coordinator = cluster.start_run("natsrestart-1");
    let started = Instant::now();
    while cluster.lines().len() < STEPS / 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress\n{}",
            cluster.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nats.kill();
    let at_kill = cluster.lines().len();
    std::thread::sleep(Duration::from_secs(3));
    nats.up();
    // The clients find the server again within seconds; an orc that waited for its ordered
    // consumer's missed heartbeats took over a minute.
    let run = cluster.finish_within(coordinator, Duration::from_secs(45));
    assert!(at_kill < STEPS, "the server was killed mid-run");
    // At most the steps in flight when the server went away run twice.
    cluster.completed_each_once_but(&run, in_flight);
    let counts = cluster.stop_workers();
    assert_eq!(counts.len(), 3, "every worker outlived the outage");
}

/// The step's error in the result document, or the coordinator's stderr if it has none.
fn failure(run: &Run) -> String {
    serde_json::from_str::<Value>(&run.stdout)
        .map(|doc| doc.to_string())
        .unwrap_or_default()
        + &run.stderr
}

#[test]
fn a_step_no_worker_takes_fails_after_the_claim_timeout_naming_the_pool() {
    let Some(mut cluster) = Cluster::small("claim", 2) else {
        return;
    };
    // No worker serves the pool.
    let started = Instant::now();
    let coordinator = cluster
        .run_command("claim-1")
        .env("ORC_QUEUE__CLAIM_TIMEOUT", "2")
        .spawn()
        .unwrap();
    let run = cluster.finish_within(Proc(coordinator), Duration::from_secs(60));
    assert_ne!(run.code, 0, "{}", run.stderr);
    let said = failure(&run);
    let pool = &cluster.pool;
    assert!(
        said.contains(&format!(
            "no worker of pool `{pool}` took the step within 2 s"
        )),
        "{said}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "failed before the claim timeout"
    );
    // The steps' messages are gone: a worker that comes now runs nothing.
    cluster.start_workers(1);
    let started = Instant::now();
    while !cluster.sb.read("worker0.log").contains("waiting for steps") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker did not start:\n{}",
            cluster.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cluster.stop_workers(), vec![0], "{}", cluster.worker_logs());
    assert!(cluster.lines().is_empty());
}

#[test]
fn a_step_delivered_max_deliver_times_without_completing_fails_saying_so() {
    let Some(mut cluster) = Cluster::new("maxdeliver") else {
        return;
    };
    // One step that runs long enough for its worker to be killed in the middle.
    cluster.sb.file(
        "fanout.yaml",
        "id: slow\nname: Slow\nparameters:\n  out: { type: string }\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters:\n      command: \"sleep 30\"\n",
    );
    let env = [
        ("ORC_QUEUE__ACK_WAIT", "1"),
        ("ORC_QUEUE__MAX_DELIVER", "2"),
    ];
    let coordinator = Proc(
        cluster
            .run_command("maxdeliver-1")
            .envs(env)
            .spawn()
            .unwrap(),
    );
    // Every worker that takes the step is killed (SIGKILL) while it runs it, twice; a third
    // one keeps asking for steps, so the server gets to see the step is out of deliveries.
    for n in 0..2 {
        cluster.start_worker_with(n, &env, &[]);
        let started = Instant::now();
        while !cluster
            .sb
            .read(&format!("worker{n}.log"))
            .contains("step taken")
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "worker {n} never took the step\n{}\n{}",
                cluster.worker_logs(),
                cluster.sb.read("coordinator.log")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster.workers[n].0.kill().unwrap();
        cluster.workers[n].0.wait().unwrap();
    }
    cluster.start_worker_with(2, &env, &[]);
    let run = cluster.finish_within(coordinator, Duration::from_secs(60));
    assert_ne!(run.code, 0, "{}", run.stderr);
    let said = failure(&run);
    let pool = &cluster.pool;
    assert!(
        said.contains(&format!(
            "delivered to workers of pool `{pool}` 2 times (queue.max_deliver) and none completed it"
        )),
        "{said}\n{}",
        cluster.worker_logs()
    );
    let logs = cluster.sb.read("worker2.log");
    assert!(!logs.contains("step taken"), "a third delivery:\n{logs}");
}

#[test]
fn coordinator_and_worker_report_the_depth_of_their_pool() {
    use crate::telemetry::{free_addr, get, sample};
    let Some(mut cluster) = Cluster::small("depth", 3) else {
        return;
    };
    let addr = free_addr();
    let coordinator = cluster
        .run_command("depth-1")
        .args(["--metrics-addr", &addr.to_string()])
        .spawn()
        .unwrap();
    let mut coordinator = Proc(coordinator);
    // No worker yet: the three steps wait in the pool's stream.
    let series = format!("orc_queue_depth{{pool=\"{}\"}}", cluster.pool);
    let started = Instant::now();
    loop {
        let scraped = get(addr, "/metrics");
        if scraped
            .as_ref()
            .is_some_and(|(_, body)| sample(body, &series) == Some(3.0))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no {series} 3 in {scraped:?}; coordinator {:?}:\n{}",
            coordinator.0.try_wait(),
            cluster.sb.read("coordinator.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A worker comes, serving metrics of its own: the steps run, and it sees the pool empty.
    let worker = free_addr();
    cluster.start_worker_with(0, &[], &["--metrics-addr", &worker.to_string()]);
    let run = cluster.finish_within(coordinator, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, cluster.worker_logs());
    assert_eq!(tally(&cluster.lines()).len(), 3);
    let started = Instant::now();
    loop {
        let scraped = get(worker, "/metrics");
        if scraped.as_ref().is_some_and(|(_, body)| {
            sample(body, &series) == Some(0.0)
                && sample(body, "orc_worker_running_steps") == Some(0.0)
        }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker's metrics: {scraped:?}\n{}",
            cluster.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cluster.stop_workers(), vec![3]);
}

#[test]
fn a_run_id_used_again_does_not_take_the_old_runs_completions() {
    // Two databases on one NATS server: the run id, so its completions subject, is the same.
    let Some(mut first) = Cluster::small("reuse", 3) else {
        return;
    };
    first.start_workers(1);
    let run = first.finish_within(first.start_run("reuse-1"), Duration::from_secs(60));
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, first.worker_logs());
    let Some(second) = Cluster::small("reuse", 3) else {
        return;
    };
    // No worker serves the second run's pool: its steps cannot complete.
    let coordinator = second
        .run_command("reuse-1")
        .env("ORC_QUEUE__CLAIM_TIMEOUT", "2")
        .spawn()
        .unwrap();
    let run = second.finish_within(Proc(coordinator), Duration::from_secs(60));
    assert_ne!(
        run.code, 0,
        "the old run's completions completed the new run's steps"
    );
    assert!(
        failure(&run).contains("queue.claim_timeout"),
        "{}",
        failure(&run)
    );
}
