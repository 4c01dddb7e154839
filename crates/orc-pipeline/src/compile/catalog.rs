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

    /// Whether a literal JSON value fits. Text fits `number`, `integer` and `boolean` too when
    /// it reads as one, since tools take `"30"` for 30.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, v) {
            (ParamType::Any, _) | (_, Value::Null) => true,
            (ParamType::String, Value::String(_)) => true,
            // Numbers and booleans are written out as text where text is wanted.
            (ParamType::String, Value::Number(_) | Value::Bool(_)) => true,
            (ParamType::Number, Value::Number(_)) => true,
            (ParamType::Number, Value::String(s)) => s.trim().parse::<f64>().is_ok(),
            (ParamType::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            (ParamType::Integer, Value::String(s)) => s.trim().parse::<i64>().is_ok(),
            (ParamType::Boolean, Value::Bool(_)) => true,
            (ParamType::Boolean, Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "false")
            }
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
}

impl ActionSpec {
    /// An action whose parameters are not declared.
    pub fn undeclared(name: &str) -> ActionSpec {
        ActionSpec {
            name: name.to_owned(),
            description: String::new(),
            params: None,
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
