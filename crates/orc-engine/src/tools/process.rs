//! Tools that run programs: `terminal` (a shell command) and `python-executor`.
//!
//! A step's command runs under the supervisor (`crate::supervisor`) when the binary set one:
//! its whole process tree is killed when the step ends, times out or is cancelled, and when
//! orc dies, however it dies. Without a supervisor (an embedder's tests, the benches) the
//! command runs directly in its own process group, killed at the same moments.
//!
//! The step ends when its command exits, not when its output pipes close: what the command left
//! running in the background is killed then, and what is already in the pipes is read at once,
//! without waiting (so stopping a command takes no time). Each of stdout and stderr keeps at most `max_output_bytes` (default
//! [`DEFAULT_MAX_OUTPUT`]); the rest is read and counted but not kept, and the text ends with a
//! marker saying how much there was. A command that times out keeps what it printed until then.

use std::future::Future;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt as _;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use super::{Envelope, bool_param, seconds_param, str_param};

/// What each of stdout and stderr keeps when the step sets no `max_output_bytes`: 1 MiB.
pub(crate) const DEFAULT_MAX_OUTPUT: usize = 1 << 20;
/// The most orc reads from a pipe once the command has ended: what the pipe buffer holds,
/// unless something the kill missed keeps writing.
const DRAIN_LIMIT: usize = 4 << 20;
/// The size of each read from a pipe.
const CHUNK: usize = 64 * 1024;

/// The time limit of the step a tool call belongs to, so that a command stopped at the step's
/// deadline still reports what it printed (see [`within_step_timeout`]).
#[derive(Debug, Clone, Copy)]
struct StepLimit {
    deadline: Instant,
    timeout: Duration,
}

tokio::task_local! {
    static STEP_LIMIT: StepLimit;
}

/// Runs a tool call under its step's time limit: the process tools stop their command at the
/// deadline themselves and keep what it printed. The caller's own timeout must allow the
/// tool's `stop_grace` beyond `timeout`.
pub(crate) async fn within_step_timeout<F: Future>(timeout: Duration, call: F) -> F::Output {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => {
            STEP_LIMIT
                .scope(StepLimit { deadline, timeout }, call)
                .await
        }
        None => call.await,
    }
}

/// What to run.
struct Spec<'a> {
    program: &'a str,
    args: Vec<&'a str>,
    working_dir: Option<&'a str>,
    /// The command's standard input; `/dev/null` when `None`.
    input: Option<Vec<u8>>,
    /// The tool's own `timeout` parameter.
    timeout: Duration,
    max_output: usize,
}

/// What a stream kept: the first `max_output` bytes, and how many there were in all.
struct Capture {
    kept: Vec<u8>,
    total: u64,
    max: usize,
}

impl Capture {
    fn new(max: usize) -> Self {
        Capture {
            kept: Vec::new(),
            total: 0,
            max,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.max.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.total = self.total.saturating_add(chunk.len() as u64);
    }

    fn truncated(&self) -> bool {
        self.total > self.kept.len() as u64
    }

    /// The text (invalid UTF-8 replaced), ending with a marker when bytes were dropped.
    fn text(mut self, stream: &str) -> String {
        if !self.truncated() {
            return String::from_utf8_lossy(&self.kept).into_owned();
        }
        // Do not show a character cut in half by the limit as a replacement character.
        if let Err(e) = std::str::from_utf8(&self.kept)
            && e.error_len().is_none()
        {
            self.kept.truncate(e.valid_up_to());
        }
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[orc: {stream} truncated: {} bytes in all, only the first {} kept (max_output_bytes)]\n",
            self.total, self.max
        ));
        text
    }
}

/// What a finished (or stopped) command said.
struct Output {
    stdout: Capture,
    stderr: Capture,
    status: Option<ExitStatus>,
    /// The limit the command ran into, in seconds.
    timed_out: Option<f64>,
}

/// Kills a process group when dropped (direct mode only).
struct GroupGuard(Pid);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // The group may already be gone; there is nothing to do about an error here.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// A started command.
struct Running {
    child: Child,
    /// Direct mode: the command's process group, killed when this is dropped.
    group: Option<GroupGuard>,
    /// Writes the command's input (and, supervised, the header before it); resolves to the
    /// control pipe to hold while the command runs (supervised) or to nothing.
    feed: Option<Pin<Box<dyn Future<Output = Option<ChildStdin>> + Send>>>,
}

fn spawn(spec: &Spec<'_>) -> std::io::Result<Running> {
    let supervisor = crate::supervisor::program();
    let mut std_cmd = match supervisor {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.arg(crate::supervisor::SUPERVISE_ARG).arg(spec.program);
            c
        }
        None => std::process::Command::new(spec.program),
    };
    std_cmd.args(&spec.args);
    // The supervisor (or, directly, the command) gets a process group of its own, so that a
    // Ctrl-C at the terminal reaches orc alone, which then stops its steps.
    std_cmd.process_group(0);
    if let Some(dir) = spec.working_dir {
        std_cmd.current_dir(dir);
    }
    if supervisor.is_none() {
        // Directly, this is all there is if orc dies. The supervisor does not get it: the
        // signal follows the death of the *thread* that started the child, not of orc, and the
        // supervisor learns of orc's death from its pipe.
        crate::supervisor::die_with_parent(&mut std_cmd);
    }
    let mut cmd = Command::from(std_cmd);
    if supervisor.is_some() {
        cmd.arg0("orc");
    }
    let piped_stdin = supervisor.is_some() || spec.input.is_some();
    cmd.stdin(if piped_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Supervised, the supervisor must be left to kill the tree when its pipe closes: killing it
    // first would leave the command's descendants behind.
    .kill_on_drop(supervisor.is_none());
    let mut child = cmd.spawn()?;
    let group = match supervisor {
        Some(_) => None,
        None => child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(|id| GroupGuard(Pid::from_raw(id))),
    };
    let input = spec.input.clone();
    let feed: Option<Pin<Box<dyn Future<Output = Option<ChildStdin>> + Send>>> =
        match (child.stdin.take(), supervisor.is_some()) {
            (Some(mut pipe), true) => Some(Box::pin(async move {
                let input = input.unwrap_or_default();
                let header = (input.len() as u64).to_le_bytes();
                // A write fails only when the supervisor is gone; its exit status tells why.
                if pipe.write_all(&header).await.is_ok() {
                    let _ = pipe.write_all(&input).await;
                }
                Some(pipe)
            })),
            (Some(mut pipe), false) => Some(Box::pin(async move {
                // A command that does not read its input: its exit status tells.
                let _ = pipe.write_all(&input.unwrap_or_default()).await;
                None
            })),
            (None, _) => None,
        };
    Ok(Running { child, group, feed })
}

/// Reads a chunk from a pipe that is still open; never resolves for a closed one.
async fn read_from<R: AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Keeps a chunk, or closes the pipe at its end (or on an error reading it).
fn take<R>(pipe: &mut Option<R>, capture: &mut Capture, buf: &[u8], read: std::io::Result<usize>) {
    match read {
        Ok(0) | Err(_) => *pipe = None,
        Ok(n) => capture.push(&buf[..n]),
    }
}

/// Reads what a pipe holds right now, without waiting (the pipe is non-blocking), up to
/// [`DRAIN_LIMIT`] bytes in case a process the kill missed still writes to it.
fn take_available<R: AsFd>(pipe: &mut Option<R>, capture: &mut Capture, buf: &mut [u8]) {
    let Some(p) = pipe.take() else { return };
    let mut left = DRAIN_LIMIT;
    while left > 0 {
        match nix::unistd::read(&p, buf) {
            Ok(0) => break,
            Ok(n) => {
                capture.push(&buf[..n]);
                left = left.saturating_sub(n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            // EAGAIN: nothing more is there; any other error ends the stream as well.
            Err(_) => break,
        }
    }
}

async fn run_child(spec: Spec<'_>) -> std::io::Result<Output> {
    let started = Instant::now();
    let own = started.checked_add(spec.timeout);
    let step = STEP_LIMIT.try_with(|l| *l).ok();
    // Whichever limit comes first, and its length for the message.
    let (deadline, limit) = match (own, step) {
        (Some(own), Some(step)) if step.deadline < own => {
            (Some(step.deadline), step.timeout.as_secs_f64())
        }
        (None, Some(step)) => (Some(step.deadline), step.timeout.as_secs_f64()),
        (own, _) => (own, spec.timeout.as_secs_f64()),
    };
    let Running {
        mut child,
        group,
        mut feed,
    } = spawn(&spec)?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Capture::new(spec.max_output);
    let mut err = Capture::new(spec.max_output);
    let (mut out_buf, mut err_buf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    // Supervised: held while the command runs; closing it stops the command's tree.
    let mut control: Option<ChildStdin> = None;
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let status = loop {
        tokio::select! {
            status = child.wait() => break Some(status?),
            read = read_from(&mut stdout, &mut out_buf) => take(&mut stdout, &mut out, &out_buf, read),
            read = read_from(&mut stderr, &mut err_buf) => take(&mut stderr, &mut err, &err_buf, read),
            kept = async {
                match feed.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                feed = None;
                control = kept;
            }
            () = &mut sleep => break None,
        }
    };
    // Stop whatever is left: supervised, closing the control pipe has the supervisor kill the
    // command's tree (it did already if the command exited) and exit, reaped in the background
    // like a directly run command, whose group is killed here.
    drop(feed);
    drop(control);
    drop(group);
    // Everything the command printed before it ended (or before the deadline) is in the pipes
    // by now: take it without waiting for anything, so a stop takes no time.
    take_available(&mut stdout, &mut out, &mut out_buf);
    take_available(&mut stderr, &mut err, &mut err_buf);
    Ok(Output {
        stdout: out,
        stderr: err,
        timed_out: status.is_none().then_some(limit),
        status,
    })
}

/// `max_output_bytes`: how much of each of stdout and stderr a step keeps.
fn max_output_param(params: &Map<String, Value>) -> Result<usize, String> {
    match params.get("max_output_bytes") {
        None | Some(Value::Null) => Ok(DEFAULT_MAX_OUTPUT),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                "parameter `max_output_bytes` must be a whole number of bytes (0 or more)"
                    .to_string()
            }),
    }
}

/// `terminal.execute {command, working_dir = ".", timeout = 30, max_output_bytes = 1 MiB,
/// capture_output = true}`. Without `capture_output` (py-orc's flag), the command's output is
/// not in the result: it goes to orc's stderr (py-orc's went to its terminal; orc's stdout is
/// the result document).
pub(super) async fn terminal(params: Map<String, Value>) -> Envelope {
    let command = match str_param(&params, "command") {
        Ok(c) => c.trim().trim_start_matches('!').to_string(),
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let (timeout, max_output, capture) = match (
        seconds_param(&params, "timeout", 30.0),
        max_output_param(&params),
        bool_param(&params, "capture_output", true),
    ) {
        (Ok(t), Ok(m), Ok(c)) => (t, m, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Envelope::fail(e, Value::Null),
    };
    let spec = Spec {
        program: "sh",
        args: vec!["-c", &command],
        working_dir: params.get("working_dir").and_then(Value::as_str),
        input: None,
        timeout: Duration::from_secs_f64(timeout),
        max_output,
    };
    let mut envelope = finish(run_child(spec).await, json!({ "command": command }));
    if !capture {
        release_output(&mut envelope.result).await;
    }
    envelope
}

/// Takes `stdout` and `stderr` out of a command's result and writes them to orc's stderr.
async fn release_output(result: &mut Value) {
    let Some(fields) = result.as_object_mut() else {
        return;
    };
    let texts: Vec<String> = ["stdout", "stderr"]
        .into_iter()
        .filter_map(|key| match fields.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        })
        .collect();
    // A write to stderr may block (a full pipe), so it runs off the runtime's threads; it is
    // best effort, as a terminal is: a closed stderr loses the text, not the step.
    let _ = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        for text in texts {
            let _ = err.write_all(text.as_bytes());
        }
        let _ = err.flush();
    })
    .await;
}

/// `python-executor.execute {code, timeout = 30, max_output_bytes = 1 MiB}`: runs the code
/// with `python3` (given on its stdin), unsandboxed.
pub(super) async fn python(params: Map<String, Value>) -> Envelope {
    let code = match str_param(&params, "code") {
        Ok(c) => c.to_string(),
        Err(e) => return Envelope::fail(e, Value::Null),
    };
    let (timeout, max_output) = match (
        seconds_param(&params, "timeout", 30.0),
        max_output_param(&params),
    ) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return Envelope::fail(e, Value::Null),
    };
    let spec = Spec {
        program: "python3",
        args: vec!["-"],
        working_dir: None,
        input: Some(code.into_bytes()),
        timeout: Duration::from_secs_f64(timeout),
        max_output,
    };
    finish(run_child(spec).await, json!({}))
}

fn finish(out: std::io::Result<Output>, mut base: Value) -> Envelope {
    let o = match out {
        Err(e) => return Envelope::fail(format!("could not start the command: {e}"), base),
        Ok(o) => o,
    };
    let code = o.status.and_then(|s| s.code());
    let ok = o.timed_out.is_none() && code == Some(0);
    base["truncated"] = Value::Bool(o.stdout.truncated() || o.stderr.truncated());
    base["stdout"] = Value::String(o.stdout.text("stdout"));
    base["stderr"] = Value::String(o.stderr.text("stderr"));
    base["return_code"] = code.map_or(Value::Null, Value::from);
    base["success"] = Value::Bool(ok);
    base["timed_out"] = Value::Bool(o.timed_out.is_some());
    if let Some(limit) = o.timed_out {
        return Envelope::fail_retryable(
            format!("command timed out after {limit} s and was killed"),
            base,
        );
    }
    if ok {
        Envelope::ok(base)
    } else {
        let code = code.map_or_else(|| "a signal".to_string(), |c| c.to_string());
        Envelope::fail_retryable(format!("command exited with {code}"), base)
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
        assert_eq!(e.result["timed_out"], false);
        assert_eq!(e.result["truncated"], false);
        let e = terminal(params(json!({"command": "!printf ok"}))).await;
        assert!(e.success);
        assert_eq!(e.result["stdout"], "ok");
    }

    #[tokio::test]
    async fn terminal_without_capture_output_keeps_the_output_out_of_the_result() {
        let e = terminal(params(
            json!({"command": "echo hi; echo err >&2", "capture_output": false}),
        ))
        .await;
        assert!(e.success);
        assert_eq!(e.result["return_code"], 0);
        assert!(e.result.get("stdout").is_none() && e.result.get("stderr").is_none());
        let e = terminal(params(
            json!({"command": "echo hi", "capture_output": "True"}),
        ))
        .await;
        assert_eq!(e.result["stdout"], "hi\n");
        let e = terminal(params(json!({"command": "true", "capture_output": "yes"}))).await;
        assert!(!e.success);
        assert!(
            e.error
                .unwrap()
                .contains("`capture_output` must be true or false")
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group_and_keeps_the_output() {
        assert!(
            crate::supervisor::program().is_none(),
            "unit tests run commands directly"
        );
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let cmd = format!(
            "echo before; echo oops >&2; (sleep 1; touch {}) & sleep 5",
            marker.display()
        );
        let started = std::time::Instant::now();
        let e = terminal(params(json!({"command": cmd, "timeout": 0.3}))).await;
        assert!(!e.success);
        assert_eq!(e.result["timed_out"], true);
        assert_eq!(e.result["stdout"], "before\n");
        assert_eq!(e.result["stderr"], "oops\n");
        assert_eq!(e.result["return_code"], Value::Null);
        assert_eq!(
            e.error.as_deref(),
            Some("command timed out after 0.3 s and was killed")
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn the_step_s_own_deadline_stops_the_command_and_keeps_the_output() {
        let e = within_step_timeout(
            Duration::from_millis(300),
            terminal(params(
                json!({"command": "echo before; sleep 5", "timeout": 60}),
            )),
        )
        .await;
        assert_eq!(e.result["timed_out"], true);
        assert_eq!(e.result["stdout"], "before\n");
        assert_eq!(
            e.error.as_deref(),
            Some("command timed out after 0.3 s and was killed")
        );
    }

    #[tokio::test]
    async fn a_step_ends_when_its_command_exits_and_leftovers_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let cmd = format!("(sleep 1; touch {}) & echo started", marker.display());
        let started = std::time::Instant::now();
        let e = terminal(params(json!({"command": cmd, "timeout": 20}))).await;
        assert!(e.success, "{e:?}");
        assert_eq!(e.result["stdout"], "started\n");
        assert!(started.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a background job outlived its step");
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_counted_not_kept() {
        let e = terminal(params(json!({
            "command": "head -c 300000 /dev/zero | tr '\\0' a; echo; echo small >&2",
            "max_output_bytes": 1000,
        })))
        .await;
        assert!(e.success, "{e:?}");
        assert_eq!(e.result["truncated"], true);
        let out = e.result["stdout"].as_str().unwrap();
        assert!(out.starts_with(&"a".repeat(1000)));
        assert!(out.ends_with(
            "\n[orc: stdout truncated: 300001 bytes in all, only the first 1000 kept (max_output_bytes)]\n"
        ));
        assert!(out.len() < 1200);
        assert_eq!(e.result["stderr"], "small\n");
        let e = terminal(params(json!({"command": "true", "max_output_bytes": -1}))).await;
        assert!(!e.success);
    }

    #[test]
    fn a_cut_character_is_dropped_not_replaced() {
        let mut c = Capture::new(3);
        c.push("aaé".as_bytes());
        c.push(b"bb");
        assert!(c.truncated());
        let text = c.text("stdout");
        assert!(
            text.starts_with("aa\n[orc: stdout truncated: 6 bytes in all"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn python_runs_code() {
        let e = python(params(json!({"code": "print(6 * 7)"}))).await;
        assert!(e.success, "{e:?}");
        assert_eq!(e.result["stdout"], "42\n");
    }
}
