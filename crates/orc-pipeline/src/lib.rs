//! orc's pipeline language: the YAML front end with positions, the compiler that turns a
//! pipeline into an immutable [`Plan`] while collecting every [`Diagnostic`], the templates
//! (minijinja with the filters users' pipelines rely on) and the condition language.
//!
//! Model steps compile when the [`Catalog`] lists the configured models
//! ([`Catalog::with_models`]); `<AUTO>…</AUTO>` tags are answered at compile time by an
//! [`AutoResolver`] given to [`compile_with`].
//!
//! ```
//! let catalog = orc_pipeline::Catalog::new().with_tool("filesystem", &["read", "write"]);
//! let text = "name: demo\nsteps:\n  - id: hi\n    action: echo\n    parameters: { message: hi }\n";
//! let compiled = orc_pipeline::compile(text, &catalog).expect("valid");
//! assert_eq!(compiled.plan.steps[0].id, "hi");
//! ```

mod auto;
mod compile;
mod diag;
pub mod expr;
mod graph;
mod input_check;
mod input_type;
mod plan;
pub mod templates;
mod yaml;

pub use auto::{AutoRequest, AutoResolver, Expected, ModelPick, parse_answer, system_prompt};
pub use compile::{
    ActionSpec, Catalog, Compiled, MAX_SOURCE_BYTES, MAX_TIMEOUT_SECS, ParamSpec, ParamType,
    TEMPLATE_GLOBALS, ToolSpec, compile, compile_bytes, compile_bytes_with, compile_with,
    has_template,
};
pub use diag::{Code, Diagnostic, Diagnostics, Severity, did_you_mean};
pub use graph::{ancestors, descendants, jumped_over, topo_order};
pub use input_type::{INPUT_TYPES, InputType};
pub use plan::{
    Action, Condition, DeclaredOutput, ERROR_BINDINGS, ExprId, ForEach, Handler, Input, InputRules,
    LOCAL_POOL, LogLevel, ModelChoice, ModelRequirements, OnFailure, OutputSpec, Param, Plan,
    Recovery, RetryBackoff, Step, StepKind, TemplateId, Then, While, is_pool_name,
};
pub use yaml::{Key, Kind, Node, Pos, SyntaxError, parse};

/// Reads a condition's rendered text as a boolean when it is a literal word (`true`, `no`, `1`, …).
pub fn literal_bool(text: &str) -> Option<bool> {
    compile::literal_bool(text.trim())
}
