//! The declared type of a pipeline input (`type:` on an input), checked against the values a
//! run is given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A declared input type. Each spelling orc accepts is its own variant (`array` and `list`,
/// `object` and `dict`), so messages and the serialized plan keep the spelling the pipeline
/// wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// `string`.
    String,
    /// `integer`: a whole JSON number.
    Integer,
    /// `number`: any JSON number.
    Number,
    /// `float`: the same as `number` (py-orc's examples write it).
    Float,
    /// `boolean`.
    Boolean,
    /// `array`.
    Array,
    /// `list`: the same as `array`.
    List,
    /// `object`.
    Object,
    /// `dict`: the same as `object`.
    Dict,
    /// `any`: every value, null included.
    Any,
}

impl InputType {
    /// Every type, in the order messages list them.
    pub const ALL: [InputType; 10] = [
        InputType::String,
        InputType::Integer,
        InputType::Number,
        InputType::Float,
        InputType::Boolean,
        InputType::Array,
        InputType::List,
        InputType::Object,
        InputType::Dict,
        InputType::Any,
    ];

    /// The type spelled `name`, if orc knows it.
    pub fn parse(name: &str) -> Option<InputType> {
        InputType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The spelling, as a pipeline writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Float => "float",
            InputType::Boolean => "boolean",
            InputType::Array => "array",
            InputType::List => "list",
            InputType::Object => "object",
            InputType::Dict => "dict",
            InputType::Any => "any",
        }
    }

    /// Whether a value fits the type.
    pub fn matches(self, v: &serde_json::Value) -> bool {
        match self {
            InputType::String => v.is_string(),
            InputType::Integer => v.is_i64() || v.is_u64(),
            InputType::Number | InputType::Float => v.is_number(),
            InputType::Boolean => v.is_boolean(),
            InputType::Array | InputType::List => v.is_array(),
            InputType::Object | InputType::Dict => v.is_object(),
            InputType::Any => true,
        }
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The input types orc checks, as written.
pub const INPUT_TYPES: &[&str] = &{
    let mut names = [""; InputType::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = InputType::ALL[i].as_str();
        i += 1;
    }
    names
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_spelling_round_trips_through_parse_display_and_serde() {
        assert_eq!(
            INPUT_TYPES,
            &[
                "string", "integer", "number", "float", "boolean", "array", "list", "object",
                "dict", "any"
            ]
        );
        for t in InputType::ALL {
            assert_eq!(InputType::parse(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
            let written = serde_json::to_value(t).unwrap();
            assert_eq!(written, json!(t.as_str()));
            assert_eq!(serde_json::from_value::<InputType>(written).unwrap(), t);
        }
        assert_eq!(InputType::parse("str"), None);
        assert_eq!(InputType::parse("String"), None);
    }

    #[test]
    fn values_are_checked_as_before() {
        let cases = [
            (InputType::String, json!("x"), true),
            (InputType::String, json!(1), false),
            (InputType::Integer, json!(3), true),
            (InputType::Integer, json!(u64::MAX), true),
            (InputType::Integer, json!(1.5), false),
            (InputType::Number, json!(1.5), true),
            (InputType::Number, json!("1"), false),
            (InputType::Boolean, json!(false), true),
            (InputType::Array, json!([1]), true),
            (InputType::List, json!([]), true),
            (InputType::List, json!({}), false),
            (InputType::Object, json!({}), true),
            (InputType::Dict, json!({"a": 1}), true),
            (InputType::Dict, json!([]), false),
            (InputType::Any, json!(null), true),
            (InputType::Any, json!("x"), true),
            (InputType::String, json!(null), false),
        ];
        for (t, v, fits) in cases {
            assert_eq!(t.matches(&v), fits, "{t} {v}");
        }
    }
}
