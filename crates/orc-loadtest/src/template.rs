//! Values that vary per request: a JSON value whose strings may hold `{{ i }}` (the request's
//! number in the test, from 0), `{{ user }}` (the virtual user sending it) or `{{ random }}` (a
//! random integer), and whose `{one_of: [...]}` mappings pick one item at random. A string that
//! is nothing but one placeholder becomes a number. Compiled once; a value with nothing that
//! varies is kept as it is, so rendering it costs a clone.

use serde_json::{Map, Value};

/// What a request's values are rendered with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// The request's number in the test, from 0.
    pub(crate) i: u64,
    /// The virtual user (or open-model worker) sending it, from 0.
    pub(crate) user: u32,
}

/// A placeholder's variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    I,
    User,
    Random,
}

impl Var {
    const NAMES: &'static str = "`i`, `user` or `random`";

    fn parse(name: &str) -> Option<Var> {
        match name {
            "i" => Some(Var::I),
            "user" => Some(Var::User),
            "random" => Some(Var::Random),
            _ => None,
        }
    }

    fn value(self, ctx: Ctx, rng: &mut fastrand::Rng) -> u64 {
        match self {
            Var::I => ctx.i,
            Var::User => u64::from(ctx.user),
            Var::Random => rng.u64(0..1_000_000_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A JSON value that may vary per request. Build it with [`Template::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Nothing in it varies.
    Const(Value),
    /// A string with placeholders.
    Text(Vec<Piece>),
    /// A string that is one placeholder: a number.
    Number(Var),
    /// One of these, at random.
    OneOf(Vec<Node>),
    /// Item `i % len`.
    Cycle(Vec<Node>),
    /// The mappings merged in order, later keys winning.
    Merge(Vec<Node>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Template {
    /// Compiles `value`. An error names the path of the bad value (`body.messages[0].content`
    /// style, relative to `value`) and says what is wrong.
    pub fn new(value: &Value) -> Result<Template, (String, String)> {
        compile(value, "").map(Template)
    }

    /// A value that never varies.
    pub fn constant(value: Value) -> Template {
        Template(Node::Const(value))
    }

    /// The items of `list` in turn (request `i` takes item `i % len`), each merged with
    /// `fixed` (a mapping, whose keys win): a pipeline's inputs from a list.
    pub fn inputs(list: Vec<Template>, fixed: Template) -> Template {
        if list.is_empty() {
            return fixed;
        }
        let cycle = Node::Cycle(list.into_iter().map(|t| t.0).collect());
        Template(Node::Merge(vec![cycle, fixed.0]))
    }

    /// An object of `fields`, some of which may vary.
    pub(crate) fn object(fields: Vec<(String, Template)>) -> Template {
        let nodes: Vec<(String, Node)> = fields.into_iter().map(|(k, t)| (k, t.0)).collect();
        if nodes.iter().all(|(_, n)| matches!(n, Node::Const(_))) {
            let map = nodes
                .into_iter()
                .filter_map(|(k, n)| match n {
                    Node::Const(v) => Some((k, v)),
                    _ => None,
                })
                .collect();
            return Template(Node::Const(Value::Object(map)));
        }
        Template(Node::Object(nodes))
    }

    /// The value itself when nothing in it varies.
    pub(crate) fn as_const(&self) -> Option<&Value> {
        match &self.0 {
            Node::Const(v) => Some(v),
            _ => None,
        }
    }

    /// The value for one request.
    pub(crate) fn render(&self, ctx: Ctx, rng: &mut fastrand::Rng) -> Value {
        render(&self.0, ctx, rng)
    }
}

fn compile(value: &Value, path: &str) -> Result<Node, (String, String)> {
    let node = match value {
        Value::String(s) => compile_text(s).map_err(|m| (path.to_owned(), m))?,
        Value::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| compile(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) if map.contains_key("one_of") => {
            let at = join(path, "one_of");
            if map.len() != 1 {
                return Err((
                    path.to_owned(),
                    "a `one_of` mapping has no other key".to_owned(),
                ));
            }
            match map.get("one_of") {
                Some(Value::Array(items)) if !items.is_empty() => Node::OneOf(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| compile(v, &format!("{at}[{i}]")))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err((at, "must be a list of at least one value".to_owned())),
            }
        }
        Value::Object(map) => Node::Object(
            map.iter()
                .map(|(k, v)| compile(v, &join(path, k)).map(|n| (k.clone(), n)))
                .collect::<Result<_, _>>()?,
        ),
        other => Node::Const(other.clone()),
    };
    Ok(fold(node, value))
}

/// A node with nothing varying in it becomes the constant it was written as.
fn fold(node: Node, value: &Value) -> Node {
    let constant = match &node {
        Node::Const(_) => return node,
        Node::Array(items) => items.iter().all(|n| matches!(n, Node::Const(_))),
        Node::Object(fields) => fields.iter().all(|(_, n)| matches!(n, Node::Const(_))),
        _ => false,
    };
    if constant {
        Node::Const(value.clone())
    } else {
        node
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn compile_text(s: &str) -> Result<Node, String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            return Err(format!("`{{{{` without `}}}}` in {s:?}"));
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let name = rest[open + 2..open + close].trim();
        let var = Var::parse(name)
            .ok_or_else(|| format!("unknown placeholder `{{{{ {name} }}}}`: use {}", Var::NAMES))?;
        pieces.push(Piece::Var(var));
        rest = &rest[open + close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(match pieces.as_slice() {
        [] => Node::Const(Value::String(String::new())),
        [Piece::Text(t)] => Node::Const(Value::String(t.clone())),
        [Piece::Var(v)] => Node::Number(*v),
        _ => Node::Text(pieces),
    })
}

fn render(node: &Node, ctx: Ctx, rng: &mut fastrand::Rng) -> Value {
    match node {
        Node::Const(v) => v.clone(),
        Node::Number(var) => Value::from(var.value(ctx, rng)),
        Node::Text(pieces) => {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Var(var) => out.push_str(&var.value(ctx, rng).to_string()),
                }
            }
            Value::String(out)
        }
        Node::OneOf(items) => match items.get(rng.usize(..items.len())) {
            Some(item) => render(item, ctx, rng),
            None => Value::Null,
        },
        Node::Cycle(items) => {
            let len = items.len() as u64;
            let at = usize::try_from(ctx.i % len.max(1)).unwrap_or(0);
            items
                .get(at)
                .map_or(Value::Null, |item| render(item, ctx, rng))
        }
        Node::Merge(parts) => {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(map) = render(part, ctx, rng) {
                    merged.extend(map);
                }
            }
            Value::Object(merged)
        }
        Node::Array(items) => Value::Array(items.iter().map(|n| render(n, ctx, rng)).collect()),
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, n)| (k.clone(), render(n, ctx, rng)))
                .collect(),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(i: u64, user: u32) -> Ctx {
        Ctx { i, user }
    }

    #[test]
    fn placeholders_render_per_request_and_alone_become_numbers() {
        let t = Template::new(
            &json!({"topic": "item {{ i }} of user {{user}}", "n": "{{ i }}", "k": 3}),
        )
        .unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            t.render(ctx(7, 2), &mut rng),
            json!({"topic": "item 7 of user 2", "n": 7, "k": 3})
        );
        assert!(t.as_const().is_none());
    }

    #[test]
    fn values_without_placeholders_are_constants() {
        let t = Template::new(&json!({"a": [1, "x", {"b": null}]})).unwrap();
        assert_eq!(t.as_const(), Some(&json!({"a": [1, "x", {"b": null}]})));
    }

    #[test]
    fn one_of_picks_each_item_and_cycle_goes_in_turn() {
        let t = Template::new(&json!({"style": {"one_of": ["short", "long"]}})).unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        let seen: std::collections::HashSet<String> = (0..50)
            .map(|i| {
                t.render(ctx(i, 0), &mut rng)["style"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(seen.len(), 2);
        let list = vec![
            Template::new(&json!({"q": "a"})).unwrap(),
            Template::new(&json!({"q": "b"})).unwrap(),
        ];
        let inputs = Template::inputs(list, Template::new(&json!({"n": "{{ i }}"})).unwrap());
        assert_eq!(
            inputs.render(ctx(0, 0), &mut rng),
            json!({"q": "a", "n": 0})
        );
        assert_eq!(
            inputs.render(ctx(3, 0), &mut rng),
            json!({"q": "b", "n": 3})
        );
    }

    #[test]
    fn bad_placeholders_and_one_of_name_their_path() {
        let (path, message) = Template::new(&json!({"m": [{"content": "{{ id }}"}]})).unwrap_err();
        assert_eq!(path, "m[0].content");
        assert!(
            message.contains("unknown placeholder `{{ id }}`"),
            "{message}"
        );
        let (path, message) = Template::new(&json!({"s": {"one_of": []}})).unwrap_err();
        assert_eq!(path, "s.one_of");
        assert!(message.contains("at least one"), "{message}");
        let (_, message) = Template::new(&json!("{{ i")).unwrap_err();
        assert!(message.contains("without"), "{message}");
    }
}
