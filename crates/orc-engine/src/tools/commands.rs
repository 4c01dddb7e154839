//! The tools that run a program, declared: `terminal` (a shell command) and `python-executor`.
//! How they run it is `super::process`.

use std::time::Duration;

use orc_pipeline::ParamType::{Boolean, Integer, Number, String as Text};
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value};

use super::Envelope;
use super::declare::{Param, action, tool};
use super::process;
use super::tool::{Call, Tool};
use crate::resources::ToolLimits;

const TIMEOUT: Param = (
    "timeout",
    Number,
    false,
    Some("30"),
    "seconds before the command's whole process tree is killed",
);

const MAX_OUTPUT: Param = (
    "max_output_bytes",
    Integer,
    false,
    Some("1048576"),
    "bytes of stdout and of stderr kept; the rest is counted and dropped",
);

/// How long past the step's deadline a command tool may take: they stop without waiting for
/// anything, so this only covers a slow machine.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A tool that runs a program: which one.
#[derive(Clone, Copy)]
pub(super) enum Command {
    /// `terminal`: `sh -c COMMAND`.
    Terminal,
    /// `python-executor`: `python3 -` with the code on its stdin.
    Python,
}

impl Tool for Command {
    fn spec(&self) -> ToolSpec {
        match self {
            Command::Terminal => terminal(),
            Command::Python => python(),
        }
    }

    fn call<'a>(
        &'a self,
        _action: &'a str,
        params: Map<String, Value>,
        limits: &'a ToolLimits,
    ) -> Call<'a> {
        if limits.sandbox.as_ref().is_some_and(|s| !s.allow_commands) {
            // The compiler refuses such a pipeline before it runs; this holds for any plan.
            let name = self.spec().name;
            return Box::pin(std::future::ready(Envelope::fail(
                format!(
                    "`{name}` is off for pipelines posted to orc serve (server.sandbox.allow_commands)"
                ),
                Value::Null,
            )));
        }
        match self {
            Command::Terminal => Box::pin(process::terminal(params)),
            Command::Python => Box::pin(process::python(params)),
        }
    }

    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }
}

fn terminal() -> ToolSpec {
    tool(
        "terminal",
        "Runs a shell command",
        vec![action(
            "execute",
            "`sh -c COMMAND`: {stdout, stderr, return_code, timed_out, truncated}",
            &[
                ("command", Text, true, None, "the shell command"),
                (
                    "working_dir",
                    Text,
                    false,
                    Some("\".\""),
                    "the directory it runs in",
                ),
                TIMEOUT,
                MAX_OUTPUT,
                (
                    "capture_output",
                    Boolean,
                    false,
                    Some("true"),
                    "false: stdout and stderr go to orc's stderr, not into the result",
                ),
            ],
        )],
    )
}

fn python() -> ToolSpec {
    let params: &[Param] = &[
        (
            "code",
            Text,
            true,
            None,
            "Python source, run by `python3 -`",
        ),
        TIMEOUT,
        MAX_OUTPUT,
    ];
    tool(
        "python-executor",
        "Runs Python code with python3 (not sandboxed)",
        vec![
            action(
                "execute",
                "Runs the code: {stdout, stderr, return_code, timed_out, truncated}",
                params,
            ),
            action("run", "The same as `execute`", params),
        ],
    )
}
