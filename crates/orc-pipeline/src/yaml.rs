//! YAML front end: parses text into a tree of nodes that remember where they were written.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

/// A 1-based line and column in the pipeline text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    /// Line, from 1; 0 when unknown.
    pub line: u32,
    /// Column, from 1; 0 when unknown.
    pub col: u32,
}

impl Pos {
    fn of<T>(s: &Spanned<T>) -> Pos {
        Pos {
            line: u32::try_from(s.referenced.line()).unwrap_or(u32::MAX),
            col: u32::try_from(s.referenced.column()).unwrap_or(u32::MAX),
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Where the value starts.
    pub pos: Pos,
}

/// The shape of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order; keys are rendered as strings.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as text (`1`, `true` and `~` keys become `"1"`, `"true"`, `"null"`).
    pub name: String,
    /// Where the key is written.
    pub pos: Pos,
}

impl Node {
    /// The value of `key` when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// Converts to JSON, dropping positions.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What is wrong, as the YAML parser says it.
    pub message: String,
    /// Where, when known.
    pub pos: Pos,
}

/// Limits on the size and shape of a document, so a hostile file cannot exhaust memory or the stack.
const MAX_DEPTH: usize = 64;

/// Parses YAML text into a node tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    check_depth(text)?;
    // YAML 1.2 booleans: only `true`/`false`. Under YAML 1.1 rules a key such as `n` or `y`
    // would become a boolean, which no pipeline author means.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        // The default budget stops near 19,000 steps; orc's own limits are the file size
        // (`MAX_SOURCE_BYTES`) and the nesting depth, and the budget still bounds aliases.
        budget: serde_saphyr::budget! {
            max_events: 40_000_000,
            max_nodes: 20_000_000,
        },
    };
    let spanned: Spanned<Kind> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                    col: u32::try_from(l.column()).unwrap_or(u32::MAX),
                })
                .unwrap_or_default();
            // The user-facing formatter words the problem without the parser's location
            // (orc prints its own) or advice about the parser's options.
            let message = serde_saphyr::UserMessageFormatter.format_message(&e);
            SyntaxError {
                message: first_line(&message),
                pos,
            }
        })?;
    Ok(node(spanned))
}

fn first_line(message: &str) -> String {
    // A message could span lines; orc renders its own excerpt after the first.
    let line = message.lines().next().unwrap_or(message).trim();
    line.trim_end_matches(':').to_string()
}

/// Refuses documents nested deeper than [`MAX_DEPTH`] before the parser sees them,
/// counting flow brackets and indentation steps.
fn check_depth(text: &str) -> Result<(), SyntaxError> {
    let too_deep = |lineno: usize, col: usize| SyntaxError {
        message: format!("the document is nested more than {MAX_DEPTH} levels deep"),
        pos: Pos {
            line: u32::try_from(lineno + 1).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
        },
    };
    for (lineno, line) in text.lines().enumerate() {
        // Indentation is spaces and `-`, one byte a character.
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        if indent / 2 > MAX_DEPTH {
            // Point at what is written so deep, not at the indentation.
            return Err(too_deep(lineno, indent));
        }
        let mut flow = 0usize;
        for (col, ch) in line.chars().enumerate() {
            match ch {
                '[' | '{' => {
                    flow += 1;
                    if flow + indent / 2 > MAX_DEPTH {
                        return Err(too_deep(lineno, col));
                    }
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                '#' => break,
                _ => {}
            }
        }
    }
    Ok(())
}

fn node(s: Spanned<Kind>) -> Node {
    let pos = Pos::of(&s);
    Node { kind: s.value, pos }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Kind>>()? {
            items.push(node(item));
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Kind>>()? {
            let key = node(key);
            let name = match &key.kind {
                Kind::Str(s) => s.clone(),
                Kind::Null => "null".to_string(),
                Kind::Bool(b) => b.to_string(),
                Kind::Int(i) => i.to_string(),
                Kind::Float(f) => f.to_string(),
                Kind::Seq(_) | Kind::Map(_) => {
                    return Err(de::Error::custom("a mapping key must be a scalar"));
                }
            };
            let value = node(map.next_value::<Spanned<Kind>>()?);
            entries.push((Key { name, pos: key.pos }, value));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_recorded() {
        let doc = parse("name: x\nsteps:\n  - id: a\n    tool: filesystem\n").unwrap();
        let steps = doc.get("steps").unwrap();
        assert_eq!(steps.pos.line, 3);
        let Kind::Seq(items) = &steps.kind else {
            panic!("not a list")
        };
        let tool = items[0].get("tool").unwrap();
        assert_eq!((tool.pos.line, tool.pos.col), (4, 11));
        let Kind::Map(entries) = &items[0].kind else {
            panic!("not a map")
        };
        assert_eq!((entries[0].0.pos.line, entries[0].0.pos.col), (3, 5));
    }

    #[test]
    fn scalars_keep_their_types() {
        let doc = parse("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: 1.0.0\n").unwrap();
        assert_eq!(doc.get("a").unwrap().kind, Kind::Int(1));
        assert_eq!(doc.get("b").unwrap().kind, Kind::Float(1.5));
        assert_eq!(doc.get("c").unwrap().kind, Kind::Bool(true));
        assert_eq!(doc.get("d").unwrap().kind, Kind::Null);
        assert_eq!(doc.get("e").unwrap().kind, Kind::Str("1".into()));
        assert_eq!(doc.get("f").unwrap().kind, Kind::Str("1.0.0".into()));
        let doc = parse("n: 1\ny: no\n").unwrap();
        assert_eq!(doc.get("n").unwrap().kind, Kind::Int(1));
        assert_eq!(doc.get("y").unwrap().kind, Kind::Str("no".into()));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("name: x\nsteps: [a, b\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("nested"), "{err:?}");
    }
}
