//! Split brain: the holder of a run is stopped (SIGSTOP) past its lease while another process
//! resumes the run, then woken (SIGCONT) while the other still runs it. Never two processes
//! running one run: the woken one finds its lease gone, starts nothing and records nothing, and
//! what the other recorded stands. The same with both processes pid 1 of pid namespaces of
//! their own (`unshare --pid`), so that their pids cannot tell them apart.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::Backend;
use super::trial::Clean;
use super::{observe, pipeline};
use crate::support::{Run, Sandbox, signal};

/// The lease both processes take: short, so the stopped one loses it soon.
const LEASE_SECONDS: &str = "1";

/// How one process of the pair is started: plainly, or as pid 1 of a new pid namespace.
#[derive(Clone, Copy)]
enum Start {
    Plain,
    Namespaced,
}

/// A child killed when the test ends, however it ends; `pid` is the `orc` process itself
/// (inside `unshare`, the child it forked). Its stdout and stderr go to `<name>.out` and
/// `<name>.err` in the sandbox.
struct Orc {
    child: Option<Child>,
    pid: u32,
    name: String,
}

impl Drop for Orc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Orc {
    fn stderr(&self, sb: &Sandbox) -> String {
        std::fs::read_to_string(sb.path(&format!("{}.err", self.name))).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1))
    }

    /// Waits for it to exit; its exit code, result document and stderr.
    fn finish(mut self, sb: &Sandbox) -> Run {
        let started = Instant::now();
        let code = loop {
            if let Some(code) = self.exited() {
                break code;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "an orc ran for 120 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.child = None;
        Run {
            code,
            stdout: std::fs::read_to_string(sb.path(&format!("{}.out", self.name)))
                .unwrap_or_default(),
            stderr: self.stderr(sb),
        }
    }
}

fn spawn(backend: &Backend, sb: &Sandbox, start: Start, name: &str, args: &[&str]) -> Orc {
    let mut c = match start {
        Start::Plain => backend.orc(sb),
        Start::Namespaced => {
            let plain = backend.orc(sb);
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc"])
                .arg(plain.get_program())
                .args(plain.get_args())
                .current_dir(sb.dir.path());
            for (k, v) in plain.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            c
        }
    };
    let out = std::fs::File::create(sb.path(&format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(sb.path(&format!("{name}.err"))).unwrap();
    let child = c
        .env("ORC_STATE__LEASE_SECONDS", LEASE_SECONDS)
        // A write the stopped holder's lock blocks fails soon (see `case`).
        .env("ORC_PERFORMANCE__DATABASE__QUERY_TIMEOUT", "2")
        .env("CRASH_WRITER", name)
        .args(args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let pid = match start {
        Start::Plain => child.id(),
        Start::Namespaced => {
            let pid = forked_child(child.id());
            assert_eq!(pid_inside(pid), "1", "orc is pid 1 of its namespace");
            pid
        }
    };
    Orc {
        child: Some(child),
        pid,
        name: name.to_owned(),
    }
}

/// The process `unshare --fork` (pid `parent`) started.
fn forked_child(parent: u32) -> u32 {
    let started = Instant::now();
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "unshare started no process"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A process's pid in its own pid namespace (the last field of `NSpid`).
fn pid_inside(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().last())
        .unwrap_or_default()
        .to_owned()
}

/// Lines of `effects.txt` by step, for one writer.
fn lines_by(sb: &Sandbox, writer: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for line in sb.lines("effects.txt") {
        if pipeline::writer_of(&line) == writer {
            *seen
                .entry(pipeline::effect_of(&line).to_owned())
                .or_insert(0) += 1;
        }
    }
    seen
}

/// Whether `unshare --pid --fork --mount-proc` works here (root, or user namespaces).
pub(super) fn namespaces_work() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One split-brain case on the backend called `store`; `seed` picks the moment the first
/// holder is stopped.
fn case(start: Start, store: &str, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let Some(backend) = Backend::open(store, super::backend::REDIS_SPLIT_DB) else {
        return;
    };
    let fake = pipeline::provider();
    let clean = Clean::run(&backend, &fake);
    fake.provider().reset();
    let sb = pipeline::sandbox(&fake);
    let id = super::run_id("split");

    let first = spawn(
        &backend,
        &sb,
        start,
        "first",
        &["run", "p.yaml", "--run-id", &id],
    );
    // Stop it at a random moment once it has done some work (the first side effect).
    let started = Instant::now();
    while sb.lines("effects.txt").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let span = clean.took.as_millis() as u64;
    std::thread::sleep(Duration::from_millis(rng.u64(0..=span / 2)));
    signal(first.pid, "STOP");
    // Its running commands are not stopped (only orc is): let them end.
    std::thread::sleep(Duration::from_millis(400));
    let mut before = lines_by(&sb, "first");

    // The second is refused while the lease lasts, then takes the run over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut refused, mut locked) = (0, 0);
    let second = loop {
        let mut second = spawn(&backend, &sb, start, "second", &["resume", &id]);
        let code = loop {
            if second.stderr(&sb).contains("resuming run") {
                break None;
            }
            if let Some(code) = second.exited() {
                break Some(code);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let Some(code) = code else { break second };
        let out = second.finish(&sb);
        assert!(Instant::now() < deadline, "the lease never lapsed");
        if out.stderr.contains("did not finish within") {
            // Stopped inside a write transaction, the first keeps SQLite's write lock (or
            // PostgreSQL's row locks): no other process can write until it wakes. Let it
            // finish the write, stop it again.
            locked += 1;
            signal(first.pid, "CONT");
            std::thread::sleep(Duration::from_millis(20));
            signal(first.pid, "STOP");
            std::thread::sleep(Duration::from_millis(400));
            before = lines_by(&sb, "first");
            continue;
        }
        assert_eq!(code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("held by another orc process"),
            "{}",
            out.stderr
        );
        refused += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    // Woken while the other runs the run.
    signal(first.pid, "CONT");
    let first = first.finish(&sb);
    let second = second.finish(&sb);
    observe::wait_until_quiet(&sb);
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "split brain: stopped after {before:?} of side effects; the resume refused {refused} time(s), and {locked} time(s) blocked by the stopped holder's write lock"
        );
    }

    assert_eq!(second.code, 0, "{}", second.stderr);
    let doc = second.doc();
    assert_eq!(doc["status"], "completed", "{doc}");
    if first.code == 0 {
        // It had finished its run before it was stopped (the second found it completed).
        assert!(
            second.stderr.contains("already completed"),
            "{}",
            second.stderr
        );
    } else {
        assert_eq!(first.code, 1, "{}", first.stderr);
        let lost = first.doc();
        assert_eq!(lost["error_type"], "LeaseLost", "{lost}");
        assert!(
            first.stderr.contains("lost the run's lease"),
            "{}",
            first.stderr
        );
    }

    // The woken process wrote nothing after it woke; the other ran each step at most once.
    assert_eq!(
        lines_by(&sb, "first"),
        before,
        "the first holder did work after it woke"
    );
    let by_second = lines_by(&sb, "second");
    assert!(by_second.values().all(|&n| n == 1), "{by_second:?}");
    let all = observe::effects(&sb);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        clean.effects.keys().collect::<Vec<_>>()
    );
    // Twice only where the first had done the side effect but not saved the step.
    let twice: Vec<_> = all
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| s)
        .collect();
    assert!(
        twice.len() <= 2,
        "more steps ran twice than the loop runs at once: {twice:?}"
    );
    assert!(all.values().all(|&n| n <= 2), "{all:?}");

    // No model call paid twice but one the first had in flight: at most one more per step.
    let requests = pipeline::requests_by_step(&fake.provider().stats());
    assert!(
        requests.iter().all(|(_, n)| (1..=2).contains(n)),
        "{requests:?}"
    );

    // The store holds the second's document, the outputs of an uninterrupted run.
    let shown: Value = observe::shown(&backend, &sb, &id).unwrap();
    assert_eq!(shown, doc, "the store holds the second process's result");
    assert_eq!(doc["outputs"], clean.doc["outputs"]);
    let saved = observe::saved_steps(&shown);
    assert_eq!(saved.len(), clean.doc["steps"].as_object().unwrap().len());
    assert_eq!(sb.read("out/report.txt"), clean.report);
    backend.clean_up(&sb);
}

#[test]
fn a_holder_stopped_past_its_lease_stops_when_it_wakes_and_never_runs_beside_the_new_one() {
    let seed = super::seed("split brain");
    case(Start::Plain, "sqlite", seed);
}

#[test]
fn a_holder_stopped_past_its_lease_never_runs_beside_the_new_one_on_postgres() {
    let seed = super::seed("split brain on PostgreSQL");
    case(Start::Plain, "postgres", seed);
}

#[test]
fn a_holder_stopped_past_its_lease_never_runs_beside_the_new_one_on_redis() {
    let seed = super::seed("split brain on Redis");
    case(Start::Plain, "redis", seed);
}

#[test]
fn holders_with_the_same_pid_in_separate_pid_namespaces_never_run_one_run_together() {
    if !namespaces_work() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIPPED: `unshare --pid --fork --mount-proc` is unavailable here (it needs util-linux and root or user namespaces)"
            );
        }
        return;
    }
    let seed = super::seed("split brain in pid namespaces");
    case(Start::Namespaced, "sqlite", seed);
}
