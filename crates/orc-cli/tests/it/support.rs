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
}
