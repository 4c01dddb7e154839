//! What `orc` prints to a user, pinned with `insta` snapshots (`tests/it/snapshots/`): the
//! diagnostics of `orc validate` (file:line:col and carets), config mistakes, `orc config show`,
//! `orc tools`, `orc plan` of an example and the help of a few commands.
//!
//! A changed output fails the test with a diff. To accept a deliberate change, run the test
//! with `INSTA_UPDATE=always` (or `cargo insta review`) and commit the `.snap` files; under
//! `CI=true` insta never writes, so CI compares with what is committed.

use std::path::Path;
use std::process::Command;

use crate::support::{Run, Sandbox};

/// `orc ARGS` in the sandbox with nothing from the caller's environment but `PATH`, so that no
/// `ORC_…` override or terminal setting of the machine shows in the output.
fn orc_in(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orc"));
    c.env_clear()
        .env("ORC_HOME", sb.path("home"))
        .env("HOME", sb.path("user"))
        .current_dir(dir)
        .args(args);
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
    for (name, value) in env {
        c.env(name, value);
    }
    c.output().unwrap().into()
}

pub(crate) fn orc(sb: &Sandbox, args: &[&str]) -> Run {
    orc_in(sb, sb.dir.path(), args, &[])
}

/// What the user sees of a run: the exit code, then stdout and stderr, with the sandbox's
/// directory (a new temporary one each time) written as `[SANDBOX]`. An exact replacement
/// rather than insta's regex `filters`, which would add two crates to the build for this one
/// substitution.
pub(crate) fn shown(sb: &Sandbox, r: &Run) -> String {
    let mut text = format!("exit code: {}\n", r.code);
    if !r.stdout.is_empty() {
        text.push_str("--- stdout\n");
        text.push_str(&r.stdout);
    }
    if !r.stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&r.stderr);
    }
    text.replace(&sb.dir.path().display().to_string(), "[SANDBOX]")
}

/// Snapshots `$value` under `tests/it/snapshots/$name.snap`.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// Bad pipelines, one finding (or a few) each, validated by a relative path as a user types it.
const BAD_PIPELINES: [(&str, &str); 7] = [
    (
        "unknown_tool_duplicate_id_unknown_dependency",
        "name: t\nsteps:\n  - id: a\n    tool: filesytem\n    action: read\n  - id: b\n    action: echo\n    dependencies: [c]\n  - id: b\n    action: echo\n",
    ),
    (
        "malformed_yaml",
        "name: t\nsteps:\n  - id: a\n    action: [echo\n",
    ),
    (
        "unknown_action_and_parameter",
        "name: t\nsteps:\n  - id: a\n    tool: filesystem\n    action: raed\n    parameters: { path: x }\n  - id: b\n    tool: filesystem\n    action: read\n    parameters: { path: x, encodng: utf-8 }\n",
    ),
    (
        "template_syntax_and_unknown_reference",
        "name: t\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: \"{{ a.result \" }\n  - id: b\n    action: echo\n    parameters: { message: \"{{ nowhere.result }}\" }\n",
    ),
    (
        "bad_condition",
        "name: t\nsteps:\n  - id: a\n    action: echo\n  - id: b\n    action: echo\n    condition: \"a.result ==\"\n",
    ),
    (
        "dependency_cycle",
        "name: t\nsteps:\n  - id: a\n    action: echo\n    dependencies: [b]\n  - id: b\n    action: echo\n    dependencies: [a]\n",
    ),
    ("no_steps", "name: t\nsteps: []\n"),
];

#[test]
fn validate_diagnostics() {
    let sb = Sandbox::new();
    for (name, text) in BAD_PIPELINES {
        let file = format!("{name}.yaml");
        sb.file(&file, text);
        let r = orc(&sb, &["validate", &file]);
        snapshot!(format!("validate_{name}"), shown(&sb, &r));
    }
}

#[test]
fn validate_refuses_text_that_is_not_utf8() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("latin1.yaml"), b"name: caf\xe9\nsteps: []\n").unwrap();
    let r = orc(&sb, &["validate", "latin1.yaml"]);
    snapshot!("validate_latin1", shown(&sb, &r));
}

#[test]
fn config_mistakes() {
    let sb = Sandbox::new();
    sb.file(
        "bad.yaml",
        "models:\n  - name: x\n    provider: opnai\nperformance:\n  parallel_execution:\n    max_workers: \"many\"\n    task_timeout: 1e20\n  caching:\n    model_cache: { backnd: file }\n",
    );
    snapshot!(
        "config_mistakes_in_a_file",
        shown(&sb, &orc(&sb, &["--config", "bad.yaml", "config", "show"]))
    );
    snapshot!(
        "config_file_missing",
        shown(
            &sb,
            &orc(&sb, &["--config", "missing.yaml", "config", "show"])
        )
    );
    let r = orc_in(
        &sb,
        sb.dir.path(),
        &["config", "show"],
        &[("ORC_PERFORMANCE__PARALLEL_EXECUTION__TASK_TIMEOUT", "1e20")],
    );
    snapshot!("config_mistake_in_the_environment", shown(&sb, &r));
    snapshot!(
        "config_unknown_state_scheme_hides_the_password",
        shown(
            &sb,
            &orc(
                &sb,
                &["--state", "mysql://root:hunter2@db/x", "runs", "list"]
            )
        )
    );
}

#[test]
fn config_show() {
    let sb = Sandbox::new();
    snapshot!(
        "config_show_defaults",
        shown(&sb, &orc(&sb, &["config", "show"]))
    );
    sb.file(
        "orc.yaml",
        "routing:\n  strategy: cost\nperformance:\n  parallel_execution:\n    max_workers: 4\n",
    );
    let r = orc_in(
        &sb,
        sb.dir.path(),
        &[
            "--state",
            "postgres://orc:hunter2@127.0.0.1/db",
            "config",
            "show",
        ],
        &[("ORC_SERVER__BIND", "127.0.0.1:9000")],
    );
    snapshot!("config_show_file_environment_and_flag", shown(&sb, &r));
}

#[test]
fn tools_catalog() {
    let sb = Sandbox::new();
    snapshot!("tools", shown(&sb, &orc(&sb, &["tools"])));
}

#[test]
fn plan_of_an_example() {
    let sb = Sandbox::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let r = orc_in(
        &sb,
        &root,
        &[
            "plan",
            "examples/models/summarize.yaml",
            "--config",
            "examples/models/orc.yaml",
        ],
        &[],
    );
    snapshot!("plan_models_summarize", shown(&sb, &r));
    let r = orc_in(&sb, &root, &["plan", "examples/hello.yaml"], &[]);
    snapshot!("plan_hello", shown(&sb, &r));
}

#[test]
fn help() {
    let sb = Sandbox::new();
    for (name, args) in [
        ("help", &["--help"][..]),
        ("help_run", &["run", "--help"][..]),
        ("help_validate", &["validate", "--help"][..]),
        ("help_plan", &["plan", "--help"][..]),
        ("help_config", &["config", "--help"][..]),
        ("help_runs", &["runs", "--help"][..]),
    ] {
        snapshot!(name, shown(&sb, &orc(&sb, args)));
    }
}
