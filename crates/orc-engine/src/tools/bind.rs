//! What a step's `tool:` resolves to in the registry, and the call through it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Envelope;
use super::echo::echo;
use super::registry::{Entry, Registry};
use crate::resources::ToolLimits;

/// What a step's `tool:` resolved to.
#[derive(Clone)]
pub(crate) enum Callee {
    /// A tool of the registry.
    Tool(&'static Entry),
    /// No `tool:`: the tool-less `echo`. (The scheduler evaluates `evaluate_condition`, and
    /// model actions go to the gateway; neither reaches a callee.)
    ToolLess,
    /// A tool the registry does not have (a plan compiled against another catalog): every
    /// call fails.
    Missing(Arc<str>),
}

impl Callee {
    /// Looks a step's tool up in the built-in registry.
    pub(crate) fn resolve(tool: Option<&str>) -> Callee {
        match tool {
            None => Callee::ToolLess,
            Some(name) => Registry::builtin()
                .get(name)
                .map_or_else(|| Callee::Missing(name.into()), Callee::Tool),
        }
    }

    /// Calls the tool under the run's limits (data tools take a slot of the CPU pool).
    pub(crate) async fn call(
        &self,
        action: &str,
        params: Map<String, Value>,
        limits: &ToolLimits,
    ) -> Envelope {
        match self {
            Callee::Tool(entry) => entry.call(action, params, limits).await,
            Callee::ToolLess if action == "echo" => echo(&params),
            Callee::ToolLess => Envelope::fail(format!("unknown action `{action}`"), Value::Null),
            Callee::Missing(tool) => Envelope::fail(
                format!("tool `{tool}` has no action `{action}`"),
                Value::Null,
            ),
        }
    }

    /// How long past its step's deadline the call may take to stop what it started.
    pub(crate) fn stop_grace(&self) -> Duration {
        match self {
            Callee::Tool(entry) => entry.stop_grace(),
            Callee::ToolLess | Callee::Missing(_) => Duration::ZERO,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tool_less_and_missing_tools_fail_as_before() {
        let limits = ToolLimits::new(&crate::Resources::default());
        let echo = Callee::resolve(None)
            .call(
                "echo",
                serde_json::json!({"text": "hi"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                &limits,
            )
            .await;
        assert_eq!(echo.result, Value::from("hi"));
        let unknown = Callee::resolve(None)
            .call("shout", Map::new(), &limits)
            .await;
        assert_eq!(unknown.error.as_deref(), Some("unknown action `shout`"));
        let missing = Callee::resolve(Some("teleport"));
        assert!(matches!(missing, Callee::Missing(_)));
        let failed = missing.call("go", Map::new(), &limits).await;
        assert_eq!(
            failed.error.as_deref(),
            Some("tool `teleport` has no action `go`")
        );
        assert_eq!(missing.stop_grace(), Duration::ZERO);
        assert_eq!(
            Callee::resolve(Some("terminal")).stop_grace(),
            Duration::from_secs(1)
        );
    }
}
