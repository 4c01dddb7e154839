//! Writing a tool's declaration briefly: a parameter as a tuple, an action, a tool.

use orc_pipeline::{ActionSpec, ParamSpec, ParamType, ToolSpec};

/// `(name, type, required, default, description)`.
pub(super) type Param = (
    &'static str,
    ParamType,
    bool,
    Option<&'static str>,
    &'static str,
);

/// An action whose parameters are declared.
pub(super) fn action(name: &str, description: &str, params: &[Param]) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        params: Some(
            params
                .iter()
                .map(|&(name, ty, required, default, description)| ParamSpec {
                    name: name.to_owned(),
                    ty,
                    required,
                    default: default.map(str::to_owned),
                    description: description.to_owned(),
                })
                .collect(),
        ),
        one_of: Vec::new(),
    }
}

/// A tool with its actions.
pub(super) fn tool(name: &str, description: &str, actions: Vec<ActionSpec>) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        actions,
    }
}
