//! Tools that run programs: `terminal` (a shell command) and `python-executor`.
//! Each child runs in its own process group; a timeout, a cancelled step or a dropped
//! future kills the whole group, so no grandchild outlives its step.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::{Envelope, seconds_param, str_param};

/// Kills a process group when dropped, unless the group's leader was reaped first.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // The group may already be gone; there is nothing to do about an error here.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// What a finished child said.
struct Output {
    stdout: String,
    stderr: String,
    code: Option<i32>,
    timed_out: bool,
}

/// Has the kernel kill the child when orc dies, however it dies (SIGKILL included), so a
/// step that was running when orc crashed cannot finish its side effect behind the back of
/// a resumed run, which runs that step again.
#[allow(unsafe_code)]
fn die_with_orc(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, and only makes
    // async-signal-safe system calls (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // orc may have died before the line above took effect.
            if std::os::unix::process::parent_id() != parent {
                nix::libc::_exit(137);
            }
            Ok(())
        });
    }
}

async fn run_child(
    mut cmd: Command,
    stdin: Option<String>,
    timeout: Duration,
) -> std::io::Result<Output> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_orc(&mut cmd);
    let mut child = cmd.spawn()?;
    let guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
        drop(pipe);
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output()).await;
    // Kill the group either way: after a timeout it stops the command, after a normal exit
    // it stops whatever the command left running in the background.
    drop(guard);
    match out {
        Ok(Ok(out)) => Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
            timed_out: false,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Output {
            stdout: String::new(),
            stderr: String::new(),
            code: None,
            timed_out: true,
        }),
    }
}

/// `terminal.execute {command, working_dir = ".", timeout = 30}`.
pub(super) async fn terminal(params: Map<String, Value>) -> Envelope {
    let command = match str_param(&params, "command") {
        Ok(c) => c.trim().trim_start_matches('!').to_string(),
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let timeout = match seconds_param(&params, "timeout", 30.0) {
        Ok(t) => t,
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&command);
    if let Some(dir) = params.get("working_dir").and_then(Value::as_str) {
        cmd.current_dir(dir);
    }
    finish(
        run_child(cmd, None, Duration::from_secs_f64(timeout)).await,
        json!({ "command": command }),
        timeout,
    )
}

/// `python-executor.execute {code, timeout = 30}`: runs the code with `python3`, unsandboxed.
pub(super) async fn python(params: Map<String, Value>) -> Envelope {
    let code = match str_param(&params, "code") {
        Ok(c) => c.to_string(),
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let timeout = match seconds_param(&params, "timeout", 30.0) {
        Ok(t) => t,
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let mut cmd = Command::new("python3");
    cmd.arg("-");
    finish(
        run_child(cmd, Some(code), Duration::from_secs_f64(timeout)).await,
        json!({}),
        timeout,
    )
}

fn finish(out: std::io::Result<Output>, mut base: Value, timeout: f64) -> Envelope {
    match out {
        Err(e) => Envelope::fail(format!("could not start the command: {e}"), base),
        Ok(o) if o.timed_out => {
            base["timed_out"] = Value::Bool(true);
            Envelope::fail_retryable(
                format!("command timed out after {timeout} s and was killed"),
                base,
            )
        }
        Ok(o) => {
            let ok = o.code == Some(0);
            base["stdout"] = Value::String(o.stdout);
            base["stderr"] = Value::String(o.stderr);
            base["return_code"] = o.code.map_or(Value::Null, Value::from);
            base["success"] = Value::Bool(ok);
            if ok {
                Envelope::ok(base)
            } else {
                let code = o
                    .code
                    .map_or_else(|| "a signal".to_string(), |c| c.to_string());
                Envelope::fail_retryable(format!("command exited with {code}"), base)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn terminal_captures_output_and_code() {
        let e = terminal(params(json!({"command": "echo hi; echo err >&2; exit 3"}))).await;
        assert!(!e.success);
        assert_eq!(e.result["stdout"], "hi\n");
        assert_eq!(e.result["stderr"], "err\n");
        assert_eq!(e.result["return_code"], 3);
        let e = terminal(params(json!({"command": "!printf ok"}))).await;
        assert!(e.success);
        assert_eq!(e.result["stdout"], "ok");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let cmd = format!("(sleep 1; touch {}) & sleep 5", marker.display());
        let started = std::time::Instant::now();
        let e = terminal(params(json!({"command": cmd, "timeout": 0.3}))).await;
        assert!(!e.success);
        assert_eq!(e.result["timed_out"], true);
        assert!(started.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn python_runs_code() {
        let e = python(params(json!({"code": "print(6 * 7)"}))).await;
        assert!(e.success, "{e:?}");
        assert_eq!(e.result["stdout"], "42\n");
    }
}
