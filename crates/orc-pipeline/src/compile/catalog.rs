//! What the compiler knows of the tools it compiles steps for: each tool's actions and, where
//! the tool declares them, each action's parameters (name, type, required, default, what it
//! does). `orc tools` prints the same declarations.

use serde::Serialize;

/// The type a parameter takes, as far as a literal value in the pipeline can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list.
    List,
    /// A mapping.
    Mapping,
    /// Several shapes (text, list or mapping): not checked.
    Any,
}

impl ParamType {
    /// The name `orc tools` prints.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::List => "list",
            ParamType::Mapping => "mapping",
            ParamType::Any => "any",
        }
    }

    /// Reads a type name (`string`, `number`, `integer`, `boolean`, `list`, `mapping`, `any`).
    pub fn parse(name: &str) -> Option<ParamType> {
        Some(match name {
            "string" => ParamType::String,
            "number" => ParamType::Number,
            "integer" => ParamType::Integer,
            "boolean" => ParamType::Boolean,
            "list" => ParamType::List,
            "mapping" => ParamType::Mapping,
            "any" => ParamType::Any,
            _ => return None,
        })
    }

    /// Whether a literal JSON value fits. Tools read text as any type (`"30"` as 30, `"yes"`
    /// as true, JSON text as a list or mapping), so text is never refused; a value of another
    /// shape than the type is.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, v) {
            (ParamType::Any, _) | (_, Value::Null | Value::String(_)) => true,
            (ParamType::String, Value::Number(_) | Value::Bool(_)) => true,
            (ParamType::Number, Value::Number(_)) => true,
            (ParamType::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            (ParamType::Boolean, Value::Bool(_) | Value::Number(_)) => true,
            (ParamType::List, Value::Array(_)) => true,
            (ParamType::Mapping, Value::Object(_)) => true,
            _ => false,
        }
    }
}

/// One parameter of an action.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    /// Its name under `parameters:`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether the action fails without it.
    pub required: bool,
    /// Its default, as text, when it has one.
    pub default: Option<String>,
    /// What it does, in one line.
    pub description: String,
}

/// One action of a tool.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSpec {
    /// Its name (`action:`).
    pub name: String,
    /// What it does, in one line.
    pub description: String,
    /// Its parameters; `None` when the tool does not declare them (nothing is checked).
    pub params: Option<Vec<ParamSpec>>,
    /// Groups of alternatives: at least one parameter of each group must be given (a
    /// parameter and its aliases, or two ways of saying what to do).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<Vec<String>>,
}

impl ActionSpec {
    /// An action whose parameters are not declared.
    pub fn undeclared(name: &str) -> ActionSpec {
        ActionSpec {
            name: name.to_owned(),
            description: String::new(),
            params: None,
            one_of: Vec::new(),
        }
    }

    /// The declared parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.as_ref()?.iter().find(|p| p.name == name)
    }
}

/// One tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// Its name (`tool:`).
    pub name: String,
    /// What it does, in one line.
    pub description: String,
    /// Its actions.
    pub actions: Vec<ActionSpec>,
}

impl ToolSpec {
    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }
}
