//! YAML front end: parses text into a tree of nodes that remember where they were written.

/// A 1-based line and column in the pipeline text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    /// Line, from 1; 0 when unknown.
    pub line: u32,
    /// Column, from 1; 0 when unknown.
    pub col: u32,
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

/// A JSON value as a node, every part placed at `pos`.
pub(crate) fn from_json(v: &serde_json::Value, pos: Pos) -> Node {
    use serde_json::Value;
    let kind = match v {
        Value::Null => Kind::Null,
        Value::Bool(b) => Kind::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::Int(i),
            None => Kind::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Kind::Str(s.clone()),
        Value::Array(items) => Kind::Seq(items.iter().map(|i| from_json(i, pos)).collect()),
        Value::Object(map) => Kind::Map(
            map.iter()
                .map(|(k, v)| {
                    (
                        Key {
                            name: k.clone(),
                            pos,
                        },
                        from_json(v, pos),
                    )
                })
                .collect(),
        ),
    };
    Node { kind, pos }
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
///
/// The tree is built straight from the YAML parser's events (granit-parser, the parser under
/// serde-saphyr): going through serde's `Spanned` machinery for every value cost three times
/// as much on large pipelines. Scalars follow the YAML 1.2 core schema, so only `true` and
/// `false` are booleans and a key such as `n` or `y` stays a string.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    check_depth(text)?;
    Builder::default().run(text)
}

/// A key written twice in one mapping, which [`parse_lenient`] let through: the later value
/// replaced the earlier one, as PyYAML (py-orc's parser) did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Duplicate {
    /// The key.
    pub name: String,
    /// Where it was first written.
    pub first: Pos,
    /// Where it was written again (this value is kept).
    pub again: Pos,
}

/// Parses like [`parse`], except that a key repeated in one mapping is not an error: the later
/// value wins and each repetition is returned, for the caller to warn about.
pub(crate) fn parse_lenient(text: &str) -> Result<(Node, Vec<Duplicate>), SyntaxError> {
    check_depth(text)?;
    let mut builder = Builder {
        lenient: true,
        ..Builder::default()
    };
    let node = builder.build(text)?;
    Ok((node, builder.duplicates))
}

/// The most values that aliases may expand to, so an alias bomb cannot exhaust memory.
const MAX_ALIAS_NODES: usize = 1_000_000;

/// The most text (bytes of keys and scalars) that aliases may expand to: a few kilobytes of
/// anchors that repeat long strings must not grow into gigabytes.
const MAX_ALIAS_BYTES: usize = 16 * 1024 * 1024;

/// How much an anchored value weighs when an alias repeats it.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, (Node, Size)>,
    alias: Size,
    root: Option<Node>,
    documents: usize,
    /// Whether a repeated key replaces the earlier value (recorded in `duplicates`) instead of
    /// being an error.
    lenient: bool,
    duplicates: Vec<Duplicate>,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        /// Keys that came from a `<<` merge: an explicit key may replace them.
        merged: Vec<String>,
        pos: Pos,
        anchor: usize,
    },
}

fn pos_of(m: &granit_parser::Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
    }
}

fn error(message: impl Into<String>, pos: Pos) -> SyntaxError {
    SyntaxError {
        message: message.into(),
        pos,
    }
}

impl Builder {
    fn run(mut self, text: &str) -> Result<Node, SyntaxError> {
        self.build(text)
    }

    fn build(&mut self, text: &str) -> Result<Node, SyntaxError> {
        use granit_parser::Event;
        for event in granit_parser::Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| error(e.info(), pos_of(e.marker())))?;
            let pos = pos_of(&span.start);
            match event {
                Event::DocumentStart(..) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(error(
                            "a pipeline file holds one YAML document, not several",
                            pos,
                        ));
                    }
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let kind = scalar(&value, style, tag.as_deref());
                    if matches!(kind, Kind::Float(f) if !f.is_finite()) {
                        // No setting can use them, and JSON cannot hold them.
                        return Err(error(
                            format!("value `{value}` is not a finite number"),
                            pos,
                        ));
                    }
                    self.value(Node { kind, pos }, anchor)?;
                }
                Event::SequenceStart(_, anchor, _) => self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                }),
                Event::MappingStart(_, anchor, _) => self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    merged: Vec::new(),
                    pos,
                    anchor,
                }),
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match self.stack.pop() {
                        Some(Frame::Seq { items, pos, anchor }) => (
                            Node {
                                kind: Kind::Seq(items),
                                pos,
                            },
                            anchor,
                        ),
                        Some(Frame::Map {
                            entries,
                            pos,
                            anchor,
                            ..
                        }) => (
                            Node {
                                kind: Kind::Map(entries),
                                pos,
                            },
                            anchor,
                        ),
                        None => return Err(error("unbalanced collection", pos)),
                    };
                    self.value(node, anchor)?;
                }
                Event::Alias(id) => {
                    // Counted before the copy is made, so a bomb stops at the first alias too many.
                    let size = self
                        .anchors
                        .get(&id)
                        .map(|(_, size)| *size)
                        .ok_or_else(|| error("an alias refers to an unknown anchor", pos))?;
                    self.alias.nodes = self.alias.nodes.saturating_add(size.nodes);
                    self.alias.bytes = self.alias.bytes.saturating_add(size.bytes);
                    if self.alias.nodes > MAX_ALIAS_NODES {
                        return Err(error(
                            format!("aliases expand to more than {MAX_ALIAS_NODES} values"),
                            pos,
                        ));
                    }
                    if self.alias.bytes > MAX_ALIAS_BYTES {
                        return Err(error(
                            format!(
                                "aliases expand to more than {} MiB of text",
                                MAX_ALIAS_BYTES / (1024 * 1024)
                            ),
                            pos,
                        ));
                    }
                    let Some((node, _)) = self.anchors.get(&id).cloned() else {
                        return Err(error("an alias refers to an unknown anchor", pos));
                    };
                    self.value(
                        Node {
                            kind: node.kind,
                            pos,
                        },
                        0,
                    )?;
                }
                _ => {}
            }
        }
        Ok(self.root.take().unwrap_or(Node {
            kind: Kind::Null,
            pos: Pos { line: 1, col: 1 },
        }))
    }

    /// Places a finished value: in the collection being built, or as the document.
    fn value(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size(&node)));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merged,
                ..
            }) => match key.take() {
                None => {
                    let name = match &node.kind {
                        Kind::Str(s) => s.clone(),
                        Kind::Null => "null".to_string(),
                        Kind::Bool(b) => b.to_string(),
                        Kind::Int(i) => i.to_string(),
                        Kind::Float(f) => f.to_string(),
                        Kind::Seq(_) | Kind::Map(_) => {
                            return Err(error("a mapping key must be a scalar", node.pos));
                        }
                    };
                    let earlier = (name != "<<" && !merged.contains(&name))
                        .then(|| entries.iter().find(|(k, _)| k.name == name))
                        .flatten();
                    if let Some((first, _)) = earlier {
                        if !self.lenient {
                            return Err(error(
                                format!("duplicate mapping key `{name}` is not allowed here"),
                                node.pos,
                            ));
                        }
                        self.duplicates.push(Duplicate {
                            name: name.clone(),
                            first: first.pos,
                            again: node.pos,
                        });
                    }
                    *key = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(k) if k.name == "<<" => merge(entries, merged, node, k.pos)?,
                Some(k) => {
                    if let Some(i) = merged.iter().position(|m| *m == k.name) {
                        merged.swap_remove(i);
                        entries.retain(|(e, _)| e.name != k.name);
                    }
                    match entries.iter_mut().find(|(e, _)| e.name == k.name) {
                        // A repeated key (lenient parse only): the later value wins.
                        Some(entry) => *entry = (k, node),
                        None => entries.push((k, node)),
                    }
                }
            },
        }
        Ok(())
    }
}

/// `<<: *base` (or a list of them): copies the keys the mapping does not set itself.
fn merge(
    entries: &mut Vec<(Key, Node)>,
    merged: &mut Vec<String>,
    node: Node,
    pos: Pos,
) -> Result<(), SyntaxError> {
    let sources = match node.kind {
        Kind::Map(m) => vec![m],
        Kind::Seq(items) => items
            .into_iter()
            .map(|n| match n.kind {
                Kind::Map(m) => Ok(m),
                _ => Err(error("`<<` merges mappings only", n.pos)),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(error("`<<` merges mappings only", pos)),
    };
    for source in sources {
        for (k, v) in source {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                merged.push(k.name.clone());
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

/// Values and bytes of text in a node: keys and scalars, a number or a boolean as 8 bytes.
fn size(node: &Node) -> Size {
    let mut total = Size::default();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        total.nodes += 1;
        match &n.kind {
            Kind::Str(s) => total.bytes += s.len(),
            Kind::Seq(items) => stack.extend(items),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    total.nodes += 1;
                    total.bytes += k.name.len();
                    stack.push(v);
                }
            }
            Kind::Null | Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) => total.bytes += 8,
        }
    }
    total
}

/// A scalar's value under the YAML 1.2 core schema; quoted and block scalars are strings.
fn scalar(
    value: &str,
    style: granit_parser::ScalarStyle,
    tag: Option<&granit_parser::Tag>,
) -> Kind {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema_tag("str") {
            return Kind::Str(value.to_string());
        }
        if !tag.is_yaml_core_schema() {
            return Kind::Str(value.to_string());
        }
    } else if style != granit_parser::ScalarStyle::Plain {
        return Kind::Str(value.to_string());
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().map_or_else(
            |_| {
                value
                    .parse::<f64>()
                    .map_or_else(|_| Kind::Str(value.to_string()), Kind::Float)
            },
            Kind::Int,
        );
    }
    if let Some(hex) = value.strip_prefix("0x")
        && !hex.is_empty()
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Kind::Int(i);
    }
    if let Some(oct) = value.strip_prefix("0o")
        && !oct.is_empty()
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    if is_float(digits)
        && let Ok(f) = value.parse::<f64>()
    {
        return Kind::Float(f);
    }
    Kind::Str(value.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without its sign.
fn is_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exp_ok && (s.contains('.') || exp.is_some())
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

/// `true/false/yes/no/1/0`, any case.
pub(crate) fn literal_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
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
    fn a_repeated_key_is_an_error_or_the_later_value() {
        let text = "a:\n  mode: CSV\n  x: 1\n  mode: LENIENT\n";
        let err = parse(text).unwrap_err();
        assert!(
            err.message.contains("duplicate mapping key `mode`"),
            "{err:?}"
        );
        assert_eq!(err.pos.line, 4);
        let (doc, dups) = parse_lenient(text).unwrap();
        let a = doc.get("a").unwrap();
        assert_eq!(a.get("mode").unwrap().kind, Kind::Str("LENIENT".into()));
        let Kind::Map(entries) = &a.kind else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2, "the key is kept once");
        assert_eq!(
            dups,
            vec![Duplicate {
                name: "mode".into(),
                first: Pos { line: 2, col: 3 },
                again: Pos { line: 4, col: 3 },
            }]
        );
        // A key from a `<<` merge may still be set again without a warning.
        let (_, dups) = parse_lenient("b: &b {k: 1}\nc:\n  <<: *b\n  k: 2\n").unwrap();
        assert!(dups.is_empty());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("name: x\nsteps: [a, b\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
    }

    #[test]
    fn core_schema_scalars() {
        let doc = parse("a: 0x1f\nb: 0o17\nc: -3\nd: 1e3\ne: .5\nf: '12'\ng: !!str 12\nh: Null\ni: 1.2.3\nj: |\n  text\n").unwrap();
        let kinds: Vec<Kind> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
            .iter()
            .map(|k| doc.get(k).unwrap().kind.clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Int(31),
                Kind::Int(15),
                Kind::Int(-3),
                Kind::Float(1000.0),
                Kind::Float(0.5),
                Kind::Str("12".into()),
                Kind::Str("12".into()),
                Kind::Null,
                Kind::Str("1.2.3".into()),
                Kind::Str("text\n".into()),
            ]
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = parse("base: &b { x: 1, y: 2 }\nuse:\n  <<: *b\n  y: 3\nlist: [*b]\n").unwrap();
        let used = doc.get("use").unwrap();
        assert_eq!(used.get("x").unwrap().kind, Kind::Int(1));
        assert_eq!(used.get("y").unwrap().kind, Kind::Int(3));
        let Kind::Seq(items) = &doc.get("list").unwrap().kind else {
            panic!("not a list")
        };
        assert_eq!(items[0].get("y").unwrap().kind, Kind::Int(2));
    }

    #[test]
    fn alias_bombs_and_several_documents_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.message.contains("one YAML document"), "{err:?}");
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn aliases_of_long_strings_are_counted_in_bytes() {
        // 100 KB of anchors: ten aliases of ten aliases … of a 100 KB string is gigabytes.
        let mut text = format!("s0: &s0 \"{}\"\n", "x".repeat(100_000));
        for i in 1..6 {
            let prev = i - 1;
            let refs = vec![format!("*s{prev}"); 10].join(", ");
            text.push_str(&format!("s{i}: &s{i} [{refs}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("16 MiB of text"), "{err:?}");
        // At the alias that went over: `s3`'s list (10 × 10 × 10 × 100 KB > 16 MiB).
        assert_eq!(err.pos.line, 4, "{err:?}");
        // Well under the limit, the same shape parses.
        let small = text.replace(&"x".repeat(100_000), "xy");
        let doc = parse(&small).unwrap();
        assert!(doc.get("s5").is_some());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("nested"), "{err:?}");
    }
}
