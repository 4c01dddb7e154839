//! What a new user meets: config mistakes listed at once, the state URL `config show` prints,
//! checked run ids and context files, quiet runs, the end-of-run summary on a terminal, and
//! shell completions.

use std::process::Command;

use crate::support::{Run, Sandbox};

const HELLO: &str = "name: hello\nparameters:\n  out_dir: ./out\nsteps:\n  - id: write\n    tool: filesystem\n    action: write\n    parameters: { path: \"{{ out_dir }}/greeting.txt\", content: hi }\n";

#[test]
fn every_config_mistake_is_listed_once_with_file_line_and_key() {
    let sb = Sandbox::new();
    let config = sb.file(
        "bad.yaml",
        "models:\n  - name: x\n    provider: opnai\nperformance:\n  parallel_execution:\n    max_workers: \"many\"\n    task_timeout: 1e20\n  caching:\n    model_cache: { backnd: file }\n",
    );
    let p = sb.file("p.yaml", HELLO);
    let r = sb.orc(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        p.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let file = config.display().to_string();
    let expected = [
        format!("{file}:3:5: models[0].provider: unknown variant `opnai`"),
        format!(
            "{file}:6:5: performance.parallel_execution.max_workers: invalid type: string \"many\""
        ),
        format!("{file}:9:20: performance.caching.model_cache.backnd: unknown field"),
        format!(
            "{file}:7:5: performance.parallel_execution.task_timeout: must be a positive number of seconds, at most 31536000"
        ),
    ];
    for line in &expected {
        assert_eq!(
            r.stderr.matches(line.as_str()).count(),
            1,
            "`{line}` once in:\n{}",
            r.stderr
        );
    }
    assert_eq!(r.stderr.lines().count(), expected.len(), "{}", r.stderr);
    assert!(!r.stderr.contains("error: line"), "{}", r.stderr);
    assert!(!sb.path("out").exists(), "nothing runs with a bad config");
}

#[test]
fn a_timeout_from_the_environment_too_long_for_a_timer_is_refused() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    for var in [
        "ORC_PERFORMANCE__PARALLEL_EXECUTION__TASK_TIMEOUT",
        "ORC_PERFORMANCE__DATABASE__QUERY_TIMEOUT",
    ] {
        let r: Run = sb
            .command()
            .env(var, "1e20")
            .args(["run", p.to_str().unwrap()])
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 2, "{var}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("environment variable {var}: performance.")),
            "{}",
            r.stderr
        );
    }
    assert!(!sb.path("out").exists());
}

#[test]
fn config_show_prints_the_store_it_would_open() {
    let sb = Sandbox::new();
    let r = sb.orc(&["config", "show", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let home = sb.path("home").join("state.db");
    assert_eq!(
        doc["state.url"]["value"],
        format!("sqlite://{}", home.display())
    );
    assert_eq!(doc["state.url"]["source"], "default");
    let r = sb.orc(&[
        "--state",
        "postgres://orc:hunter2@127.0.0.1/db",
        "config",
        "show",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["state.url"]["source"], "flag --state");
    assert!(!r.stdout.contains("hunter2"), "{}", r.stdout);
}

#[test]
fn run_ids_and_context_files_are_checked_before_anything_runs() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    for bad in ["", "a\nb", "x\u{1b}[31m"] {
        let r = sb.orc(&["run", p.to_str().unwrap(), "--run-id", bad]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("run id"), "{}", r.stderr);
    }
    // An endless context file is refused at its size cap, not read forever.
    let started = std::time::Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap(), "-c", "/dev/zero"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("/dev/zero: the context file is larger than"),
        "{}",
        r.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!sb.path("out").exists());
}

#[test]
fn quiet_runs_say_nothing_and_write_the_result_file() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let result = sb.path("result.json");
    let r = sb.orc(&[
        "run",
        p.to_str().unwrap(),
        "-q",
        "-o",
        result.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(r.stdout, "");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(doc["status"], "completed");
}

/// Runs `orc ARGS` with stderr (and stdin, stdout) on a pseudo-terminal, through `script`.
fn on_a_terminal(sb: &Sandbox, args: &str) -> String {
    let log = sb.path("typescript");
    let orc = env!("CARGO_BIN_EXE_orc");
    let out = Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("{orc} {args}"),
            log.to_str().unwrap(),
        ])
        .env("ORC_HOME", sb.path("home"))
        .env("NO_COLOR", "1")
        .env_remove("ORC_CONFIG")
        .current_dir(sb.dir.path())
        .output()
        .expect("`script` (util-linux) runs a command on a pseudo-terminal");
    let _ = out;
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn a_run_on_a_terminal_ends_with_a_summary() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let result = sb.path("r.json");
    let screen = on_a_terminal(&sb, &format!("run {} -o {}", p.display(), result.display()));
    assert!(
        screen.contains("completed: 1 completed, 0 failed, 0 cancelled, 0 skipped, 0 not run;"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("result: {}", result.display())),
        "{screen}"
    );
    let failing = sb.file(
        "f.yaml",
        "name: f\nsteps:\n  - id: boom\n    tool: filesystem\n    action: read\n    parameters: { path: /nonexistent/orc-test }\n",
    );
    let screen = on_a_terminal(
        &sb,
        &format!("run {} -o {}", failing.display(), result.display()),
    );
    assert!(screen.contains("failed: 0 completed, 1 failed"), "{screen}");
    assert!(screen.contains("1 step(s) failed: boom"), "{screen}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let sb = Sandbox::new();
    for (shell, marker) in [
        ("bash", "_orc()"),
        ("zsh", "#compdef orc"),
        ("fish", "complete -c orc"),
    ] {
        let r = sb.orc(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(marker), "{shell}: {}", r.stdout);
        assert!(r.stdout.contains("resume"), "{shell} completes subcommands");
    }
    let r = sb.orc(&["completions", "tcsh"]);
    assert_eq!(r.code, 2);
}

#[test]
fn the_run_error_names_the_step_that_stopped_it_and_stopped_steps_are_cancelled() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: optional\n    tool: filesystem\n    action: read\n    parameters: { path: /nonexistent/optional }\n    on_failure: continue\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 20', timeout: 60 }\n  - id: fatal\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 0.3; exit 3' }\n    dependencies: [optional]\n  - id: after\n    action: echo\n    parameters: { message: x }\n    dependencies: [fatal]\n",
    );
    let started = std::time::Instant::now();
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["status"], "failed");
    let error = doc["error"].as_str().unwrap();
    assert!(error.starts_with("step `fatal` failed:"), "{error}");
    assert_eq!(doc["steps"]["optional"]["status"], "failed");
    assert_eq!(doc["steps"]["slow"]["status"], "cancelled");
    assert_eq!(doc["steps"]["slow"]["error_type"], "Cancelled");
    assert_eq!(doc["steps"]["after"]["status"], "skipped");
    assert_eq!(doc["steps"]["after"]["reason"], "dependency_failed");
    assert!(
        r.stderr
            .contains("2 step(s) failed: optional, fatal\nrun stopped by: step `fatal` failed:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_run_whose_only_failures_continue_fails_with_the_first_of_them() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: optional\n    tool: filesystem\n    action: read\n    parameters: { path: /nonexistent/optional }\n    on_failure: continue\n  - id: after\n    action: echo\n    parameters: { message: x }\n    dependencies: [optional]\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["success"], false);
    assert_eq!(doc["steps"]["after"]["status"], "completed");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("step `optional` failed:")
    );
}

/// `orc ARGS` with its stdout closed before it writes: it must end quietly with 141.
fn with_stdout_closed(sb: &Sandbox, args: &[&str]) -> Run {
    // The pipe's read end is closed before the command starts, so its first write fails
    // (closing it after the spawn raced with a command quick enough to write first).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = sb
        .command()
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn run_history_shows_when_and_how_long_and_a_closed_pipe_ends_quietly() {
    let sb = Sandbox::new();
    let p = sb.file("p.yaml", HELLO);
    let r = sb.orc(&["run", p.to_str().unwrap(), "--run-id", "first", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = sb.orc(&["runs", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let mut lines = list.stdout.lines();
    let header = lines.next().unwrap();
    for column in [
        "RUN",
        "STATUS",
        "STARTED (UTC)",
        "DURATION",
        "STEPS",
        "PIPELINE",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[0], "first", "{row}");
    assert_eq!(fields[1], "completed", "{row}");
    assert!(
        fields[2].len() == 10 && fields[2].starts_with("20"),
        "date: {row}"
    );
    assert!(fields[4].ends_with('s'), "duration: {row}");
    // `orc runs show` prints the document as `orc run` does: pretty.
    let show = sb.orc(&["runs", "show", "first"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.starts_with("{\n  \""), "{}", show.stdout);
    assert_eq!(show.doc()["execution_id"], "first");
    for args in [
        &["runs", "list", "--json"][..],
        &["runs", "list"][..],
        &["runs", "show", "first"][..],
        &["config", "show"][..],
    ] {
        let r = with_stdout_closed(&sb, args);
        assert_eq!(r.code, 141, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr, "", "{args:?}");
    }
}
