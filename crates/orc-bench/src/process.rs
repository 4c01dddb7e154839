//! The `orc` child processes the whole-process workloads start: isolated from the user's
//! environment and files.

use std::path::Path;
use std::process::Stdio;

/// `orc ARGS…` with the user's `ORC_…` variables removed (so no config, state URL or log level
/// of theirs applies), `ORC_HOME` in the bench's temp dir, errors only on stderr, the temp dir
/// as working directory (no `./orc.yaml` is picked up), killed when dropped.
pub(crate) fn orc(orc: &Path, home: &Path, cwd: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(orc);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORC_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ORC_HOME", home)
        .env("ORC_LOG", "error")
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The last lines of a child's stderr, for an error message.
pub(crate) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
