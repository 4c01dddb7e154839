//! The supervisor: a small process between orc and each command a step starts, so that the
//! command's whole process tree ends with its step, and with orc however orc ends (`kill -9`
//! included).
//!
//! orc starts `<supervisor program> __orc_supervise PROGRAM ARGS…` in a process group of its
//! own, with the step's stdout and stderr pipes, and with its stdin a pipe whose write end only
//! orc holds (close-on-exec, so no other child inherits it). The supervisor:
//!
//! 1. becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`): a descendant of the command whose
//!    parent exits is re-parented to the supervisor rather than to init, so it can still be found;
//! 2. reads a header from the pipe: the length of the command's standard input, which follows
//!    (python-executor's code; nothing for terminal);
//! 3. starts the command in a new process group, with that input on its stdin (else
//!    `/dev/null`) and the step's stdout and stderr, and the kernel set to SIGKILL it should the
//!    supervisor itself die;
//! 4. waits for the command. When the command exits, or when the pipe reads end-of-file (orc
//!    closed it to stop the step on a timeout or a cancel, or orc died: the kernel closes a dead
//!    process's descriptors, whatever killed it), it SIGKILLs the command's process group, then
//!    every process re-parented to it, round after round until it has no child left, and exits
//!    with the command's status (dying of the same signal when the command died of one).
//!
//! So a subshell, a background job (`sleep 5 &`), or a grandchild whose parent already exited
//! never outlives its step: the step ends when its command exits, and what the command left
//! running is killed then. A descendant that calls `setsid` or changes its process group escapes
//! the group kill, but is still caught once its parent is killed and it is re-parented to the
//! supervisor (a double fork's orphan too); only a process that is not a descendant (one a
//! service manager or another daemon starts on the command's behalf) escapes.
//!
//! The supervisor is orc's own binary re-executed (the binary's `main` calls
//! [`supervise_if_asked`] first and [`set_supervisor`] next). A program that embeds the engine
//! without setting a supervisor (its tests, the benches) runs commands directly, in their own
//! process group, killed with the group at the step's end; there the kernel kills only the
//! direct child if orc dies (`PR_SET_PDEATHSIG`), not its descendants.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The first argument that makes a binary act as the supervisor.
pub const SUPERVISE_ARG: &str = "__orc_supervise";

/// The exit code when the command could not be started (as a shell says it).
const CANNOT_RUN: u8 = 127;
/// The exit code when orc went away before it said what to run.
const NO_REQUEST: u8 = 125;
/// How long the supervisor waits for the processes it killed before it exits regardless
/// (a process in uninterruptible sleep dies only when it wakes).
const REAP_LIMIT: Duration = Duration::from_secs(2);

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Names the program orc starts as the supervisor of every command a step runs: a binary whose
/// `main` calls [`supervise_if_asked`] before anything else. `orc` passes `/proc/self/exe`, which
/// names the running binary even if its file was replaced since. Only the first call counts.
pub fn set_supervisor(program: impl Into<PathBuf>) {
    // A second call changes nothing: the supervisor is a property of the process.
    let _ = PROGRAM.set(program.into());
}

/// The supervisor program, if one was set.
pub(crate) fn program() -> Option<&'static Path> {
    PROGRAM.get().map(PathBuf::as_path)
}

/// Runs the supervisor when this process was started as one (its first argument is
/// [`SUPERVISE_ARG`]) and returns the exit code to end with; otherwise returns `None` at once.
/// Call it first thing in `main`, before threads, logging or a runtime exist.
pub fn supervise_if_asked() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    args.next();
    if args.next().as_deref() != Some(OsStr::new(SUPERVISE_ARG)) {
        return None;
    }
    Some(supervise(&args.collect::<Vec<_>>()))
}

#[allow(clippy::print_stderr)]
fn supervise(args: &[OsString]) -> ExitCode {
    let Some((program, args)) = args.split_first() else {
        eprintln!("orc: {SUPERVISE_ARG} needs a program to run");
        return ExitCode::from(NO_REQUEST);
    };
    // Without it, orphans go to init and only the process group can be killed; go on.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut header = [0u8; 8];
    if io::stdin().read_exact(&mut header).is_err() {
        return ExitCode::from(NO_REQUEST);
    }
    let input_len = u64::from_le_bytes(header);
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0).stdin(if input_len > 0 {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("orc: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let Some(group) = i32::try_from(child.id()).ok().map(Pid::from_raw) else {
        let _ = child.kill();
        return ExitCode::from(CANNOT_RUN);
    };
    let input = child.stdin.take();
    // The watcher blocks on the control pipe for as long as the command runs; it is not joined:
    // this process exits as soon as the command's tree is gone, which ends the thread with it.
    let watcher = std::thread::Builder::new()
        .name("orc-supervise".into())
        .spawn(move || watch(input_len, input, group));
    if watcher.is_err() {
        // Without a watcher orc cannot stop the command: refuse to run it.
        let _ = killpg(group, Signal::SIGKILL);
    }
    let status = child.wait();
    kill_tree(group);
    match status {
        Ok(status) => exit_like(status),
        Err(_) => ExitCode::from(CANNOT_RUN),
    }
}

/// Forwards the command's input, then waits for orc to close the control pipe (or to die) and
/// kills the command's process group; the main thread then sees the command end and cleans up.
fn watch(input_len: u64, input: Option<std::process::ChildStdin>, group: Pid) {
    let mut control = io::stdin().lock();
    let mut payload = (&mut control).take(input_len);
    if let Some(mut input) = input {
        // A command that stops reading early leaves the rest to be discarded below.
        let _ = io::copy(&mut payload, &mut input);
    }
    let _ = io::copy(&mut payload, &mut io::sink());
    let mut buf = [0u8; 64];
    loop {
        match control.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// Kills the command's process group, then every child this process has (processes
/// re-parented to it included), until none is left or [`REAP_LIMIT`] has passed.
fn kill_tree(group: Pid) {
    let _ = killpg(group, Signal::SIGKILL);
    let until = Instant::now() + REAP_LIMIT;
    loop {
        let children = children();
        for &pid in &children {
            // A child stays ours (its pid cannot be reused) until we reap it below.
            let _ = kill(pid, Signal::SIGKILL);
        }
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if children.is_empty() || Instant::now() >= until {
                    // Children we cannot see, or that do not die: nothing more to do here.
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            // ECHILD: no child left.
            Err(_) => return,
        }
    }
}

/// The pids of this process's children, from `/proc/self/task/*/children` (an orphan is
/// re-parented to any thread of its subreaper), else from every process's `stat`.
fn children() -> Vec<Pid> {
    let mut pids = Vec::new();
    let mut listed = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                listed = true;
                pids.extend(
                    text.split_ascii_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .map(Pid::from_raw),
                );
            }
        }
    }
    if listed {
        return pids;
    }
    // Kernels built without CONFIG_PROC_CHILDREN: the parent is the 2nd field after the name.
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(1));
        if parent == Some(me.as_str()) {
            pids.push(Pid::from_raw(pid));
        }
    }
    pids
}

/// Ends this process the way the command ended: with its exit code, or by its signal.
fn exit_like(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let Some(number) = status.signal() else {
        return ExitCode::from(1);
    };
    if let Ok(signal) = Signal::try_from(number) {
        // Dying of the signal must not leave a core file of the supervisor behind.
        let _ = nix::sys::prctl::set_dumpable(false);
        let me = nix::unistd::getpid();
        // The second send is for signals the runtime handles once (SIGSEGV, SIGBUS: its handler
        // restores the default and returns) before the default applies.
        let _ = kill(me, signal);
        let _ = kill(me, signal);
    }
    // A signal this process ignores (SIGPIPE): the shell's convention.
    ExitCode::from(u8::try_from(128 + number).unwrap_or(1))
}

/// Has the kernel SIGKILL the child when its parent dies, however it dies. Only the child
/// itself: its descendants are the supervisor's business.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, and only makes
    // async-signal-safe system calls (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died before the line above took effect.
            if std::os::unix::process::parent_id() != parent {
                nix::libc::_exit(137);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn children_lists_this_process_s_children() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        assert!(children().contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!children().contains(&pid));
    }

    #[test]
    fn exit_codes_pass_through() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit_like(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
    }
}
