//! `echo`: returns its message. A tool (`tool: echo`) and a tool-less action (`action: echo`);
//! the tool-less `debug` also logs it.

use orc_pipeline::ParamType::String as Text;
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value};

use super::Envelope;
use super::declare::{action, tool};
use super::tool::{Call, Tool};
use crate::resources::ToolLimits;

/// The `echo` tool.
pub(super) struct Echo;

impl Tool for Echo {
    fn spec(&self) -> ToolSpec {
        tool(
            "echo",
            "Returns its message (also a tool-less action)",
            vec![action(
                "echo",
                "The message, as the step's result",
                &[
                    ("message", Text, false, None, "the text to return"),
                    ("text", Text, false, None, "the same as `message`"),
                ],
            )],
        )
    }

    fn call<'a>(
        &'a self,
        _action: &'a str,
        params: Map<String, Value>,
        _limits: &'a ToolLimits,
    ) -> Call<'a> {
        Box::pin(std::future::ready(echo(&params)))
    }
}

/// The message (`message`, else `text`), as the step's result.
pub(super) fn echo(params: &Map<String, Value>) -> Envelope {
    match params.get("message").or_else(|| params.get("text")) {
        Some(m) => Envelope::ok(m.clone()),
        None => Envelope::fail("missing parameter `message`", Value::Null),
    }
}

/// py-orc's `debug` action: its message, logged (`orc run -v` shows it) and the step's result.
pub(super) fn debug(params: &Map<String, Value>) -> Envelope {
    let envelope = echo(params);
    if envelope.success {
        match &envelope.result {
            Value::String(m) => tracing::info!("debug: {m}"),
            other => tracing::info!("debug: {other}"),
        }
    }
    envelope
}
