//! Leases through the real binary: a killed run is taken over at once, a stopped one that lost
//! its lease stops when it wakes and its steps run once, two processes with the same pid (pid
//! namespaces) never both hold a run, a killed run shows as abandoned, and a run refused before
//! it starts is not left in the history.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Run, Sandbox, signal};
use crate::workers::Database;

/// `n` steps that each append their number to `log.txt`, each followed by a pause of `pause`
/// seconds before the next.
fn steps(name: &str, n: usize, pause: f64) -> String {
    let mut text = format!("name: {name}\nsteps:\n");
    for k in 1..=n {
        let after = if k == 1 {
            String::new()
        } else {
            format!("\n    dependencies: [pause{}]", k - 1)
        };
        text.push_str(&format!(
            "  - id: write{k}\n    tool: terminal\n    action: execute{after}\n    parameters: {{ command: \"echo {k} >> log.txt\" }}\n  - id: pause{k}\n    tool: terminal\n    action: execute\n    dependencies: [write{k}]\n    parameters: {{ command: \"sleep {pause}\" }}\n"
        ));
    }
    text
}

fn log(sb: &Sandbox) -> Vec<String> {
    sb.lines("log.txt")
}

/// Waits until `log.txt` has `lines` lines.
fn wait_for_lines(sb: &Sandbox, lines: usize) {
    let started = Instant::now();
    while log(sb).len() < lines {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run never got going: {:?}",
            log(sb)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `orc` with a lease of `secs` seconds.
fn orc_with_lease(sb: &Sandbox, secs: &str) -> Command {
    let mut c = sb.command();
    c.env("ORC_STATE__LEASE_SECONDS", secs);
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn listed(sb: &Sandbox, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["runs", "list", "--json"];
    all.extend_from_slice(args);
    let r = sb.orc(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<Value>(&r.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["run_id"].as_str().unwrap().to_owned(),
                row["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Where a test keeps its runs: SQLite in the sandbox (the default), or a real server.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

/// A test's store: its `--state` URL (`None`: the sandbox's SQLite), and the PostgreSQL
/// database of its own, dropped with it.
struct Store {
    url: Option<String>,
    _database: Option<Database>,
}

impl Backend {
    /// The test's store, or `None` (with the reason printed) when the server is unreachable.
    /// On PostgreSQL a database of the test's own, so that no other branch's schema on the
    /// shared database can get in its way.
    fn store(self) -> Option<Store> {
        let url = match self {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let database = Database::create("leases")?;
                return Some(Store {
                    url: Some(database.url.clone()),
                    _database: Some(database),
                });
            }
            // Database 1: the other tests' Redis runs are in database 0.
            Backend::Redis => {
                let url = format!("{}/1", crate::support::redis_url());
                crate::support::reachable("Redis", &url).then_some(())?;
                Some(url)
            }
        };
        Some(Store {
            url,
            _database: None,
        })
    }
}

/// `orc [--state URL] ARGS…` with a lease of `lease` seconds (or the default).
fn orc_at(sb: &Sandbox, state: Option<&str>, lease: Option<&str>, args: &[&str]) -> Command {
    let mut c = sb.command();
    if let Some(lease) = lease {
        c.env("ORC_STATE__LEASE_SECONDS", lease);
    }
    if let Some(url) = state {
        c.args(["--state", url]);
    }
    c.args(args);
    c
}

/// A run id no other test (or earlier run of this one) on a shared server has.
fn unique_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{name}-{}-{nanos:x}", std::process::id())
}

fn killed_run_is_resumed_at_once(backend: Backend) {
    let Some(store) = backend.store() else { return };
    let state = store.url.as_deref();
    let sb = Sandbox::new();
    sb.file("p.yaml", &steps("killed", 2, 2.0));
    let id = unique_id("killed");
    let mut child = spawn(orc_at(
        &sb,
        state,
        None,
        &["run", "p.yaml", "--run-id", &id, "-q"],
    ));
    wait_for_lines(&sb, 1);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // Its lease (10 s) has not run out, but its holder is provably dead: same host and boot,
    // and that process is gone.
    let started = Instant::now();
    let r: Run = orc_at(&sb, state, None, &["resume", &id])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "resumed at the first try: {}", r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(log(&sb), ["1", "2"], "every side effect once");
    assert_eq!(r.doc()["status"], "completed");
}

#[test]
fn a_killed_run_is_resumed_at_once() {
    killed_run_is_resumed_at_once(Backend::Sqlite);
}

#[test]
fn a_killed_run_is_resumed_at_once_on_postgres() {
    killed_run_is_resumed_at_once(Backend::Postgres);
}

#[test]
fn a_killed_run_is_resumed_at_once_on_redis() {
    killed_run_is_resumed_at_once(Backend::Redis);
}

fn stopped_run_stops_when_it_wakes(backend: Backend) {
    let Some(store) = backend.store() else { return };
    let state = store.url.as_deref();
    let sb = Sandbox::new();
    sb.file("p.yaml", &steps("stopped", 4, 0.6));
    let id = unique_id("stopped");
    let first = spawn(orc_at(
        &sb,
        state,
        Some("1"),
        &["run", "p.yaml", "--run-id", &id],
    ));
    // Stop it while it pauses after the first write (checkpointed by then).
    wait_for_lines(&sb, 1);
    std::thread::sleep(Duration::from_millis(200));
    signal(first.id(), "STOP");

    // Alive but stopped: not provably dead, so the run is refused until its 1 s lease lapses.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    let second: Run = loop {
        let r: Run = orc_at(&sb, state, Some("1"), &["resume", &id])
            .output()
            .unwrap()
            .into();
        if r.code != 2 {
            break r;
        }
        assert!(
            r.stderr.contains("held by another orc process (orc pid="),
            "{}",
            r.stderr
        );
        refused += 1;
        assert!(Instant::now() < deadline, "the lease never lapsed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.doc()["status"], "completed");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("resume refused {refused} time(s) before the lease lapsed");
    }

    // The first wakes: it finds its lease gone, starts nothing and says why.
    signal(first.id(), "CONT");
    let out: Run = first.wait_with_output().unwrap().into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = out.doc();
    assert_eq!(doc["error_type"], "LeaseLost", "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("lost the run's lease"),
        "{doc}"
    );
    assert!(
        out.stderr.contains("lost the run's lease"),
        "{}",
        out.stderr
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        log(&sb),
        ["1", "2", "3", "4"],
        "every side effect exactly once"
    );
    // What the second recorded stands.
    let shown: Run = orc_at(&sb, state, None, &["runs", "show", &id])
        .output()
        .unwrap()
        .into();
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["execution_id"], id.as_str());
}

#[test]
fn a_stopped_run_that_lost_its_lease_stops_when_it_wakes_and_every_step_runs_once() {
    stopped_run_stops_when_it_wakes(Backend::Sqlite);
}

#[test]
fn a_stopped_run_that_lost_its_lease_stops_when_it_wakes_on_postgres() {
    stopped_run_stops_when_it_wakes(Backend::Postgres);
}

#[test]
fn a_stopped_run_that_lost_its_lease_stops_when_it_wakes_on_redis() {
    stopped_run_stops_when_it_wakes(Backend::Redis);
}

#[test]
fn two_processes_with_the_same_pid_in_separate_pid_namespaces_never_both_hold_a_run() {
    let works = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIPPED: `unshare --pid --fork --mount-proc` is unavailable here (it needs util-linux and root or user namespaces)"
            );
        }
        return;
    }
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: ns\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: \"echo a $(cut -d' ' -f4 /proc/$PPID/stat) >> log.txt\" }\n  - id: slow\n    tool: terminal\n    action: execute\n    dependencies: [a]\n    parameters: { command: \"sleep 2; echo slow >> log.txt\" }\n  - id: b\n    tool: terminal\n    action: execute\n    dependencies: [slow]\n    parameters: { command: \"echo b >> log.txt\" }\n",
    );
    // Each orc is pid 1 of a pid namespace of its own. Step `a` logs its command's
    // grandparent: the command's parent is its supervisor, whose parent is orc.
    let in_namespace = |args: &[&str]| {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", env!("CARGO_BIN_EXE_orc")])
            .args(args)
            .env("ORC_HOME", sb.path("home"))
            .env_remove("ORC_CONFIG")
            .env_remove("ORC_LOG")
            .current_dir(sb.dir.path());
        c
    };
    let first = spawn(in_namespace(&["run", "p.yaml", "--run-id", "n1"]));
    wait_for_lines(&sb, 1);
    assert_eq!(log(&sb), ["a 1"], "the first orc is pid 1");
    let second: Run = in_namespace(&["resume", "n1"]).output().unwrap().into();
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("held by another orc process"),
        "{}",
        second.stderr
    );
    let out: Run = first.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(log(&sb), ["a 1", "slow", "b"], "every step once");
}

#[test]
fn a_killed_run_shows_as_abandoned_once_its_lease_lapsed() {
    let sb = Sandbox::new();
    sb.file("p.yaml", &steps("abandon", 2, 3.0));
    let mut child = spawn({
        let mut c = orc_with_lease(&sb, "0.5");
        c.args(["run", "p.yaml", "--run-id", "a1", "-q"]);
        c
    });
    wait_for_lines(&sb, 1);
    assert_eq!(listed(&sb, &[]), [("a1".to_owned(), "running".to_owned())]);
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let abandoned = [("a1".to_owned(), "abandoned".to_owned())];
    assert_eq!(listed(&sb, &[]), abandoned);
    assert_eq!(listed(&sb, &["--status", "abandoned"]), abandoned);
    assert!(listed(&sb, &["--status", "running"]).is_empty());
    let table = sb.orc(&["runs", "list"]);
    assert!(table.stdout.contains("abandoned"), "{}", table.stdout);
    let bad = sb.orc(&["runs", "list", "--status", "gone"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("abandoned"), "{}", bad.stderr);

    let r = sb.orc(&["resume", "a1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        listed(&sb, &[]),
        [("a1".to_owned(), "completed".to_owned())]
    );
}

#[test]
fn a_run_refused_before_it_starts_is_not_recorded() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "name: needs\ninputs:\n  topic: { required: true }\nsteps:\n  - id: e\n    action: echo\n    parameters: { message: \"{{ topic }}\" }\n",
    );
    let r = sb.orc(&["run", "p.yaml", "--run-id", "m1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("missing required input `topic`"),
        "{}",
        r.stderr
    );
    assert!(listed(&sb, &[]).is_empty(), "nothing recorded");
    // A bad config is refused before anything is recorded too.
    let r: Run = orc_at(&sb, None, Some("0"), &["run", "p.yaml", "-i", "topic=x"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("state.lease_seconds"), "{}", r.stderr);
    assert!(listed(&sb, &[]).is_empty(), "nothing recorded");
    let r = sb.orc(&["run", "p.yaml", "--run-id", "m1", "-i", "topic=tides"]);
    assert_eq!(r.code, 0, "the id was not taken: {}", r.stderr);
    assert_eq!(
        listed(&sb, &[]),
        [("m1".to_owned(), "completed".to_owned())]
    );
}
