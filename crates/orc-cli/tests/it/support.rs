//! Running `orc` in a sandbox: its own ORC_HOME, a temporary output directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not a result document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A pipeline from this crate's fixtures (`tests/pipelines`, pipelines as py-orc users write them).
pub(crate) fn fixture_pipeline(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pipelines")
        .join(name);
    assert!(p.is_file(), "missing fixture pipeline {}", p.display());
    p
}

/// The Redis the tests use: `ORC_TEST_REDIS_URL`, else `redis://127.0.0.1:6379`.
pub(crate) fn redis_url() -> String {
    std::env::var("ORC_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        .trim_end_matches('/')
        .to_owned()
}

/// The PostgreSQL the tests use: `ORC_TEST_DATABASE_URL`, else the local `test` database.
pub(crate) fn postgres_url() -> String {
    std::env::var("ORC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The `host:port` of a server URL (`redis://127.0.0.1:6379/0`, `postgres://u@host:5432/db`).
pub(crate) fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// Whether the `server` at `url` takes connections. In CI one that does not fails the test,
/// saying how to start it; elsewhere the test is skipped with a line that says why.
pub(crate) fn reachable(server: &str, url: &str) -> bool {
    let addr = address(url);
    match std::net::TcpStream::connect(&addr) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{server} at {addr} is unreachable ({e}); start it with the command in the README's \"Tests\" section"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: {server} at {addr} is unreachable ({e})");
            }
            false
        }
    }
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn out(&self) -> String {
        self.path("out").display().to_string()
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// A file's lines; none when it does not exist (yet).
    pub(crate) fn lines(&self, rel: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Writes a file into the sandbox and returns its path.
    pub(crate) fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orc"));
        c.env("ORC_HOME", self.path("home"))
            .env_remove("ORC_CONFIG")
            .env_remove("ORC_LOG")
            .current_dir(self.dir.path());
        c
    }

    pub(crate) fn orc(&self, args: &[&str]) -> Run {
        self.command().args(args).output().unwrap().into()
    }

    /// `orc resume RUN_ID` of a run whose process was killed. Its holder is provably dead
    /// (this host, that process gone), so resume takes it over at once; a refusal (exit 2)
    /// could only last until the lease runs out.
    pub(crate) fn resume_killed(&self, run_id: &str) -> Run {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = self.orc(&["resume", run_id]);
            if r.code != 2 {
                return r;
            }
            assert!(
                r.stderr.contains("held by another orc process"),
                "{}",
                r.stderr
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the lease never expired"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Sends `kill -NAME` to a process (`INT`, `STOP`, `CONT`, …).
pub(crate) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
