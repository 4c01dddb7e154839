//! The processes steps start, through the real binary: their whole tree dies with a killed orc
//! and ends with its step, timed-out steps keep their output, output is capped, and files the
//! filesystem tool writes get the umask's mode.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Run, Sandbox};

fn wait_for(path: &std::path::Path, what: &str) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_orc_takes_its_steps_whole_process_tree_with_it() {
    let sb = Sandbox::new();
    // A subshell, a grandchild shell, and one that left the process group (`setsid`): each
    // would append to `late` two seconds in, long after orc is gone.
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters:\n      command: \"(sleep 2; echo subshell >> late) & sh -c 'sleep 2; echo grandchild >> late' & setsid sh -c 'sleep 2; echo setsid >> late' & touch started; sleep 30\"\n      timeout: 60\n",
    );
    let mut orc = sb
        .command()
        .args(["run", p.to_str().unwrap(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&sb.path("started"), "the step's start");
    orc.kill().unwrap(); // SIGKILL: orc gets no chance to clean up.
    orc.wait().unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        !sb.path("late").exists(),
        "a process of the killed run's step lived on and wrote: {:?}",
        std::fs::read_to_string(sb.path("late"))
    );
}

#[test]
fn a_step_ends_when_its_command_exits_though_a_background_child_holds_its_output() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: bg\n    tool: terminal\n    action: execute\n    parameters: { command: \"(sleep 2; touch survived) & sleep 5 & echo started\", timeout: 20 }\n",
    );
    let started = Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(took < Duration::from_secs(4), "the run took {took:?}");
    let step = &r.doc()["steps"]["bg"];
    assert_eq!(step["status"], "completed");
    assert_eq!(step["value"]["result"]["stdout"], "started\n");
    assert_eq!(step["value"]["result"]["return_code"], 0);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !sb.path("survived").exists(),
        "the command's background job outlived its step"
    );
}

#[test]
fn a_timed_out_step_keeps_what_its_command_printed() {
    let sb = Sandbox::new();
    // One step runs into the step's `timeout`, the other into the tool's own.
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: step_limit\n    tool: terminal\n    action: execute\n    timeout: 1\n    on_failure: continue\n    parameters: { command: \"echo before; echo warning >&2; sleep 20\" }\n  - id: tool_limit\n    tool: terminal\n    action: execute\n    on_failure: continue\n    parameters: { command: \"echo partial; sleep 20\", timeout: 1 }\n",
    );
    let started = Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the run took {took:?}");
    let doc = r.doc();
    let step = &doc["steps"]["step_limit"];
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(step["timed_out"], true);
    assert_eq!(step["error_type"], "Timeout");
    assert_eq!(step["error"], "command timed out after 1 s and was killed");
    assert_eq!(step["value"]["result"]["stdout"], "before\n");
    assert_eq!(step["value"]["result"]["stderr"], "warning\n");
    assert_eq!(step["value"]["result"]["return_code"], Value::Null);
    let step = &doc["steps"]["tool_limit"];
    assert_eq!(step["timed_out"], true);
    assert_eq!(step["error_type"], "Timeout");
    assert_eq!(step["value"]["result"]["stdout"], "partial\n");
}

#[test]
fn output_beyond_the_cap_is_dropped_with_a_marker_and_memory_stays_bounded() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: loud\n    tool: terminal\n    action: execute\n    parameters: { command: \"head -c 64000000 /dev/zero | tr '\\\\0' x\", max_output_bytes: 1048576 }\n  - id: default_cap\n    tool: terminal\n    action: execute\n    parameters: { command: \"head -c 3000000 /dev/zero | tr '\\\\0' y; echo done >&2\" }\n  - id: small_cap\n    tool: python-executor\n    action: execute\n    parameters: { code: \"print('z' * 100)\", max_output_bytes: 10 }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap(), "--profile", "profile.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let loud = &doc["steps"]["loud"]["value"]["result"];
    assert_eq!(loud["truncated"], true);
    let out = loud["stdout"].as_str().unwrap();
    assert!(out.starts_with(&"x".repeat(1 << 20)));
    assert_eq!(
        &out[1 << 20..],
        "\n[orc: stdout truncated: 64000000 bytes in all, only the first 1048576 kept (max_output_bytes)]\n"
    );
    let default_cap = &doc["steps"]["default_cap"]["value"]["result"];
    assert_eq!(default_cap["truncated"], true);
    assert!(
        default_cap["stdout"]
            .as_str()
            .unwrap()
            .ends_with("3000000 bytes in all, only the first 1048576 kept (max_output_bytes)]\n")
    );
    assert_eq!(default_cap["stderr"], "done\n");
    let small = &doc["steps"]["small_cap"]["value"]["result"];
    assert_eq!(
        small["stdout"],
        "zzzzzzzzzz\n[orc: stdout truncated: 101 bytes in all, only the first 10 kept (max_output_bytes)]\n"
    );
    let profile: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("profile.json")).unwrap()).unwrap();
    let peak = profile["peak_memory_bytes"].as_u64().unwrap();
    assert!(
        peak < 60 << 20,
        "peak resident memory {peak} bytes for 64 MB of output"
    );
}

#[test]
fn python_code_larger_than_a_pipe_reaches_python_through_the_supervisor() {
    let sb = Sandbox::new();
    let filler = "#".repeat(200_000);
    let p = sb.file(
        "p.yaml",
        &format!(
            "name: t\nsteps:\n  - id: py\n    tool: python-executor\n    action: execute\n    parameters:\n      code: |\n        import sys\n        # {filler}\n        print(6 * 7)\n        print('err', file=sys.stderr)\n"
        ),
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let result = &r.doc()["steps"]["py"]["value"]["result"];
    assert_eq!(result["stdout"], "42\n");
    assert_eq!(result["stderr"], "err\n");
}

/// Runs orc under a shell that sets the umask first.
fn orc_with_umask(sb: &Sandbox, umask: &str, args: &[&str]) -> Run {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_orc"))
        .args(args)
        .env("ORC_HOME", sb.path("home"))
        .env_remove("ORC_CONFIG")
        .env_remove("ORC_LOG")
        .current_dir(sb.dir.path())
        .output()
        .unwrap()
        .into()
}

#[test]
fn files_the_filesystem_tool_writes_get_the_umask_s_mode() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nparameters: { name: x }\nsteps:\n  - id: w\n    tool: filesystem\n    action: write\n    parameters: { path: \"out/{{ name }}.txt\", content: hello }\n",
    );
    for (umask, name, mode) in [("022", "a", 0o644), ("007", "b", 0o660)] {
        let r = orc_with_umask(
            &sb,
            umask,
            &["run", p.to_str().unwrap(), "-i", &format!("name={name}")],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let path = sb.path(&format!("out/{name}.txt"));
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "umask {umask}: mode {got:o}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
    }
}
