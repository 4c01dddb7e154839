//! The one list of built-in tools. The catalog the compiler checks steps against and
//! `orc tools` prints is their declarations, and a call reaches a tool only for an action its
//! declaration names: no tool is callable without being declared, or declared without being
//! callable.

use std::sync::LazyLock;
use std::time::Duration;

use orc_pipeline::{Catalog, ToolSpec};
use serde_json::{Map, Value};

use super::Envelope;
use super::commands::Command;
use super::data::{DATA_PROCESSING, VALIDATION};
use super::echo::Echo;
use super::filesystem::Filesystem;
use super::http_client::HttpTool;
use super::pipeline::PipelineExecutor;
use super::tool::Tool;
use crate::resources::ToolLimits;

/// Every built-in tool, in the order `orc tools` lists them.
const TOOLS: &[&dyn Tool] = &[
    &Filesystem,
    &Command::Terminal,
    &Command::Python,
    &Echo,
    &DATA_PROCESSING,
    &VALIDATION,
    &PipelineExecutor,
    &HttpTool,
];

/// The built-in tools with their declarations, built once.
static BUILTIN: LazyLock<Registry> = LazyLock::new(|| Registry {
    entries: TOOLS
        .iter()
        .map(|&tool| Entry {
            spec: tool.spec(),
            tool,
        })
        .collect(),
});

/// The tools a step may name.
pub(crate) struct Registry {
    entries: Vec<Entry>,
}

/// One tool and its declaration.
pub(crate) struct Entry {
    spec: ToolSpec,
    tool: &'static dyn Tool,
}

impl Registry {
    /// orc's built-in tools.
    pub(crate) fn builtin() -> &'static Registry {
        &BUILTIN
    }

    /// The tool called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.spec.name == name)
    }

    /// Every tool, in order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The tools' declarations, for the compiler's checks and `orc tools`.
    pub(crate) fn catalog(&self) -> Catalog {
        self.entries()
            .iter()
            .fold(Catalog::new(), |c, e| c.with_spec(e.spec().clone()))
    }
}

impl Entry {
    /// What the tool declares.
    pub(crate) fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    /// Runs `action` if the tool declares it; any other action fails, as an unknown action.
    pub(crate) async fn call(
        &self,
        action: &str,
        params: Map<String, Value>,
        limits: &ToolLimits,
    ) -> Envelope {
        if self.spec.action(action).is_none() {
            let message = self
                .tool
                .unknown_action(action)
                .unwrap_or_else(|| format!("tool `{}` has no action `{action}`", self.spec.name));
            return Envelope::fail(message, Value::Null);
        }
        self.tool.call(action, params, limits).await
    }

    /// How long past its step's deadline the tool may take to stop and report.
    pub(crate) fn stop_grace(&self) -> Duration {
        self.tool.stop_grace()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tool::Call;
    use super::*;

    fn limits() -> std::sync::Arc<ToolLimits> {
        ToolLimits::new(&crate::Resources::default())
    }

    #[test]
    fn the_catalog_is_the_registry_s_declarations() {
        let registry = Registry::builtin();
        let catalog = registry.catalog();
        let names: Vec<&str> = catalog.tool_names().collect();
        assert_eq!(
            names,
            [
                "filesystem",
                "terminal",
                "python-executor",
                "echo",
                "data-processing",
                "validation",
                "pipeline-executor",
                "http-client"
            ]
        );
        assert_eq!(names.len(), TOOLS.len(), "a tool declared twice");
        for (entry, spec) in registry.entries().iter().zip(catalog.tools()) {
            assert_eq!(
                serde_json::to_value(entry.spec()).unwrap(),
                serde_json::to_value(spec).unwrap()
            );
        }
    }

    #[test]
    fn every_action_the_tools_run_is_declared() {
        let c = Registry::builtin().catalog();
        assert_eq!(
            c.actions("filesystem").unwrap(),
            super::super::filesystem::ACTIONS
        );
        for (tool, actions) in [
            ("data-processing", orc_data::DATA_PROCESSING_ACTIONS),
            ("validation", orc_data::VALIDATION_ACTIONS),
            ("http-client", super::super::http_client::ACTIONS),
        ] {
            assert_eq!(c.actions(tool).unwrap(), actions, "{tool}");
        }
        for t in c.tools() {
            assert!(!t.description.is_empty(), "{}", t.name);
            for a in &t.actions {
                let params = a.params.as_ref().unwrap();
                assert!(!a.description.is_empty(), "{}.{}", t.name, a.name);
                let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(
                    names.len(),
                    params.len(),
                    "{}.{}: a name twice",
                    t.name,
                    a.name
                );
            }
        }
    }

    /// The message a tool gives an action it does not have.
    fn unknown(entry: &Entry, action: &str) -> String {
        entry
            .tool
            .unknown_action(action)
            .unwrap_or_else(|| format!("tool `{}` has no action `{action}`", entry.spec.name))
    }

    #[tokio::test]
    async fn every_declared_action_reaches_its_tool() {
        // Without parameters nothing runs: each action fails on what is missing, never as an
        // action its tool does not have.
        let limits = limits();
        for entry in Registry::builtin().entries() {
            for action in &entry.spec().actions {
                let e = entry.call(&action.name, Map::new(), &limits).await;
                assert!(!e.success, "{}.{}", entry.spec.name, action.name);
                let error = e.error.unwrap();
                assert_ne!(error, unknown(entry, &action.name));
                assert!(
                    !error.contains(&format!("action `{}`", action.name)),
                    "{}.{}: {error}",
                    entry.spec.name,
                    action.name
                );
            }
        }
    }

    #[tokio::test]
    async fn an_undeclared_action_fails_with_the_tool_s_message() {
        let limits = limits();
        let expected = [
            (
                "filesystem",
                "filesystem has no action `explode` (expected one of: read, write, copy, move, delete, list, exists, mkdir)",
            ),
            ("terminal", "tool `terminal` has no action `explode`"),
            (
                "python-executor",
                "tool `python-executor` has no action `explode`",
            ),
            ("echo", "tool `echo` has no action `explode`"),
            (
                "data-processing",
                "unknown action `explode` for data-processing (expected one of: convert, filter, aggregate, transform, profile, pivot, clean, merge)",
            ),
            (
                "validation",
                "unknown action `explode` for validation (expected one of: validate, infer_schema, quality_check)",
            ),
            (
                "pipeline-executor",
                "tool `pipeline-executor` has no action `explode`",
            ),
            ("http-client", "tool `http-client` has no action `explode`"),
        ];
        assert_eq!(expected.len(), Registry::builtin().entries().len());
        for (tool, message) in expected {
            let entry = Registry::builtin().get(tool).unwrap();
            let e = entry.call("explode", Map::new(), &limits).await;
            assert_eq!(e.error.as_deref(), Some(message), "{tool}");
            assert!(!e.success);
        }
    }

    /// A tool that counts its calls.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Tool for Counting {
        fn spec(&self) -> ToolSpec {
            super::super::declare::tool(
                "counting",
                "Counts",
                vec![super::super::declare::action("count", "Counts", &[])],
            )
        }

        fn call<'a>(
            &'a self,
            _action: &'a str,
            _params: Map<String, Value>,
            _limits: &'a ToolLimits,
        ) -> Call<'a> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(std::future::ready(Envelope::ok(Value::Null)))
        }
    }

    #[tokio::test]
    async fn a_tool_is_called_only_for_the_actions_it_declares() {
        static COUNTING: Counting = Counting(std::sync::atomic::AtomicUsize::new(0));
        let entry = Entry {
            spec: COUNTING.spec(),
            tool: &COUNTING,
        };
        let limits = limits();
        let undeclared = entry.call("other", Map::new(), &limits).await;
        assert_eq!(
            undeclared.error.as_deref(),
            Some("tool `counting` has no action `other`")
        );
        assert_eq!(COUNTING.0.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(entry.call("count", Map::new(), &limits).await.success);
        assert_eq!(COUNTING.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
