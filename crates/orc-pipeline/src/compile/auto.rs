//! AUTO tags answered: every tag in the parsed pipeline becomes its resolver's answer, typed
//! by the field it fills, before the pipeline is read. A tool-less step's `action` keeps its
//! tags: it is a prompt for the model at run time.

use std::collections::HashMap;

use serde_json::Value;

use crate::auto::{
    AutoRequest, AutoResolver, Expected, ModelPick, Part, Piece, Protected, Tag, parse_answer,
};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::templates::is_template;
use crate::yaml::{Kind, Node, Pos};

use super::Catalog;

/// Answers by (instruction, attributes, expected): each question is asked once per compile.
type Memo = HashMap<(String, Vec<(String, String)>, Expected), Result<String, String>>;

pub(super) struct Answerer<'a> {
    pub(super) protected: &'a Protected<'a>,
    /// The parameters of the model actions, whose other parameters are dropped (and their
    /// tags never asked).
    catalog: &'a Catalog,
    pub(super) resolver: Option<&'a dyn AutoResolver>,
    pub(super) diags: &'a mut Diagnostics,
    memo: Memo,
    /// Where values start whose tags got no answer (reported): the checks that follow would
    /// only complain about the tag text left there.
    pub(super) failed: Vec<Pos>,
    /// How deep in a tag's instruction the answering is (0: not inside a tag).
    nesting: u32,
    /// The run-time tags of the step being read, each to become a step of its own.
    asked: Vec<Asked>,
}

/// A tag over templates in a step's `parameters` or `condition`: it can only be answered when
/// the step is about to run. It becomes an `auto` step of its own just before the step (the
/// step depends on it, and reads its answer as `{{ <id>.result }}`), so the question is asked once
/// the values it reads exist, through the gateway like any model step: cached, under the
/// budget, checkpointed, and listed in the result document with what it cost.
struct Asked {
    id: String,
    question: String,
    expected: Expected,
    attributes: Vec<(String, String)>,
    path: String,
    /// Whether the tag is the step's condition (else a parameter: the `auto` step then takes
    /// the step's condition too, so a skipped step pays for no answer).
    in_condition: bool,
    pos: Pos,
}

/// Where a string is: the step (if any), the path of the step, and the field within it.
#[derive(Clone)]
struct Place {
    step: Option<String>,
    prefix: String,
    field: String,
}

impl Place {
    fn child(&self, key: &str) -> Place {
        Place {
            field: if self.field.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.field)
            },
            ..self.clone()
        }
    }

    fn index(&self, i: usize) -> Place {
        Place {
            field: format!("{}[{i}]", self.field),
            ..self.clone()
        }
    }

    /// The field as messages name it: `` `parameters.count` ``, or the document.
    fn named(&self) -> String {
        if self.field.is_empty() {
            "the document".to_string()
        } else {
            format!("`{}`", self.field)
        }
    }

    fn path(&self) -> String {
        if self.prefix.is_empty() {
            self.field.clone()
        } else {
            format!("{}.{}", self.prefix, self.field)
        }
    }
}

impl<'a> Answerer<'a> {
    pub(super) fn new(
        protected: &'a Protected<'a>,
        catalog: &'a Catalog,
        resolver: Option<&'a dyn AutoResolver>,
        diags: &'a mut Diagnostics,
    ) -> Self {
        Answerer {
            protected,
            catalog,
            resolver,
            diags,
            memo: HashMap::new(),
            failed: Vec::new(),
            nesting: 0,
            asked: Vec::new(),
        }
    }

    /// Answers every tag of the document in place.
    pub(super) fn run(&mut self, doc: &mut Node) {
        let top = Place {
            step: None,
            prefix: String::new(),
            field: String::new(),
        };
        let Kind::Map(entries) = &mut doc.kind else {
            self.value(doc, &top, Expected::Any);
            return;
        };
        for (k, v) in entries {
            let place = top.child(&k.name);
            match k.name.as_str() {
                "steps" => self.steps(v, ""),
                "metadata" => match &mut v.kind {
                    Kind::Map(meta) => {
                        for (mk, mv) in meta {
                            let expected = if mk.name == "default_timeout" {
                                Expected::Number
                            } else {
                                Expected::Any
                            };
                            self.value(mv, &place.child(&mk.name), expected);
                        }
                    }
                    _ => self.value(v, &place, Expected::Any),
                },
                _ => self.value(v, &place, Expected::Any),
            }
        }
    }

    fn steps(&mut self, node: &mut Node, prefix: &str) {
        let Kind::Seq(items) = &mut node.kind else {
            let place = Place {
                step: None,
                prefix: prefix.trim_end_matches('.').to_string(),
                field: "steps".into(),
            };
            self.value(node, &place, Expected::Any);
            return;
        };
        let mut inserted: Vec<(usize, Vec<Node>)> = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let outer = std::mem::take(&mut self.asked);
            self.step(item, i, prefix);
            let asked = std::mem::replace(&mut self.asked, outer);
            if !asked.is_empty() {
                inserted.push((i, ask_steps(item, asked)));
            }
        }
        for (i, steps) in inserted.into_iter().rev() {
            items.splice(i..i, steps);
        }
    }

    /// One step of a list: the tags of each of its fields.
    fn step(&mut self, item: &mut Node, i: usize, prefix: &str) {
        let id = item
            .get("id")
            .and_then(Node::as_str)
            .map(|s| self.protected.written(s));
        let tool_less = item.get("tool").is_none();
        let step_path = match &id {
            Some(id) => format!("{prefix}steps.{id}"),
            None => format!("{prefix}steps[{i}]"),
        };
        let step = Place {
            step: id,
            prefix: step_path.clone(),
            field: String::new(),
        };
        let takes = if tool_less {
            self.model_parameters(item)
        } else {
            None
        };
        let Kind::Map(entries) = &mut item.kind else {
            self.value(item, &step, Expected::Any);
            return;
        };
        for (k, v) in entries {
            let place = step.child(&k.name);
            let expected = match k.name.as_str() {
                "action" if tool_less => {
                    self.action(v, &place);
                    continue;
                }
                "parameters" if takes.is_some() => {
                    let takes = takes.unwrap_or_default();
                    match &mut v.kind {
                        Kind::Map(params) => {
                            for (pk, pv) in params {
                                // A parameter the model action does not take is dropped
                                // (a warning): its tags are not asked.
                                if takes.contains(&pk.name) {
                                    self.value(pv, &place.child(&pk.name), Expected::Any);
                                }
                            }
                        }
                        _ => self.value(v, &place, Expected::Any),
                    }
                    continue;
                }
                "steps" => {
                    self.steps(v, &format!("{step_path}."));
                    continue;
                }
                "timeout" => Expected::Number,
                "max_retries" | "max_parallel" | "max_iterations" => Expected::Integer,
                "for_each" => Expected::List,
                "condition" | "if" | "while" | "until" => Expected::Boolean,
                _ => Expected::Any,
            };
            self.value(v, &place, expected);
        }
    }

    /// The parameters a tool-less step's model action takes, when it is one (an `<AUTO>`
    /// action is `generate`).
    fn model_parameters(&self, step: &Node) -> Option<&'a [String]> {
        let action = step.get("action").and_then(Node::as_str)?;
        let action = if self.protected.has_tag(action) {
            "generate"
        } else {
            super::draft::normalize_action(action.trim())
        };
        self.catalog.model_action_parameters(action)
    }

    /// Answers the tags of a value; `expected` is what a whole-string tag at `node` must give.
    fn value(&mut self, node: &mut Node, place: &Place, expected: Expected) {
        match &mut node.kind {
            Kind::Str(s) if self.protected.has_tag(s) => {
                let s = std::mem::take(s);
                node.kind = self.string(&s, place, expected, node.pos);
            }
            Kind::Seq(items) => {
                for (i, n) in items.iter_mut().enumerate() {
                    self.value(n, &place.index(i), Expected::Any);
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    self.value(v, &place.child(&k.name), Expected::Any);
                }
            }
            _ => {}
        }
    }

    /// A string with tags: a whole-string tag gives a typed value, inline tags give text.
    fn string(&mut self, s: &str, place: &Place, expected: Expected, pos: Pos) -> Kind {
        let protected = self.protected;
        let pieces = protected.pieces(s);
        let tags: Vec<&Tag> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Tag(t) => Some(*t),
                Piece::Text(_) => None,
            })
            .collect();
        let whole = tags.len() == 1
            && pieces.iter().all(|p| {
                matches!(p, Piece::Tag(_)) || matches!(p, Piece::Text(t) if t.trim().is_empty())
            });
        if let ([tag], true) = (tags.as_slice(), whole) {
            if let Some(picked) = self.pick(tag, place) {
                return match picked {
                    Some(model) => Kind::Str(model),
                    None => {
                        self.failed.push(pos);
                        Kind::Str(protected.written(s))
                    }
                };
            }
            let answer = self
                .expected(tag, place, expected)
                .and_then(|e| self.answer(tag, place, e));
            return match answer {
                Some(v) => crate::yaml::from_json(&v, pos).kind,
                None => {
                    self.failed.push(pos);
                    Kind::Str(protected.written(s))
                }
            };
        }
        let mut out = String::with_capacity(s.len());
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Tag(tag) => {
                    let answer = self
                        .expected(tag, place, Expected::Text)
                        .and_then(|e| self.answer(tag, place, e));
                    match answer {
                        Some(v) => out.push_str(&text_of(&v)),
                        None => {
                            self.failed.push(pos);
                            out.push_str(&tag.text);
                        }
                    }
                }
            }
        }
        Kind::Str(out)
    }

    /// A tool-less step's `action`: its tags stay (the step becomes a model prompt), and the
    /// tags nested in them are answered.
    fn action(&mut self, node: &mut Node, place: &Place) {
        let Kind::Str(s) = &node.kind else {
            return self.value(node, place, Expected::Any);
        };
        if !self.protected.has_tag(s) {
            return;
        }
        let protected = self.protected;
        let mut out = String::with_capacity(s.len());
        for piece in protected.pieces(s) {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Tag(tag) => {
                    out.push_str(&tag.open);
                    for part in &tag.parts {
                        match part {
                            Part::Text(t) => out.push_str(t),
                            Part::Tag(inner) => match self.nested(inner, place) {
                                Some(text) => out.push_str(&text),
                                None => out.push_str(&inner.text),
                            },
                        }
                    }
                    out.push_str("</AUTO>");
                }
            }
        }
        node.kind = Kind::Str(out);
    }

    /// A whole-string tag in a model field, answered by the resolver's router without a
    /// model call: `None` when the tag is not one (or the resolver picks no model), else the
    /// model's name, or `Some(None)` when none could be picked (reported).
    fn pick(&mut self, tag: &Tag, place: &Place) -> Option<Option<String>> {
        let last = place.field.rsplit('.').next().unwrap_or_default();
        let typed = tag
            .type_attribute()
            .and_then(Expected::from_attribute)
            .is_some_and(|e| e != Expected::Text);
        if !last.to_ascii_lowercase().contains("model") || typed {
            return None;
        }
        let request = AutoRequest {
            instruction: written_parts(tag).trim().to_string(),
            attributes: tag.attributes.clone(),
            expected: Expected::Text,
            path: place.path(),
        };
        let picked = self.resolver?.pick_model(&request)?;
        Some(match picked {
            Ok(ModelPick { model, reason }) => {
                self.report(
                    place,
                    Diagnostic::new(
                        Code::I203,
                        tag.pos,
                        format!(
                            "AUTO tag `{}`: the router picks model `{model}` ({reason})",
                            tag.short()
                        ),
                    ),
                );
                Some(model)
            }
            Err(message) => {
                self.report(
                    place,
                    Diagnostic::new(
                        Code::E021,
                        tag.pos,
                        format!(
                            "AUTO tag `{}`: no model can be picked: {message}",
                            tag.short()
                        ),
                    )
                    .hint(
                        "configure a model the step can use, or name the model instead of the tag",
                    ),
                );
                None
            }
        })
    }

    /// The tag's `type` attribute, else what the field expects; `None` (reported) when the
    /// attribute is unknown or gives what the field cannot take.
    fn expected(&mut self, tag: &Tag, place: &Place, field: Expected) -> Option<Expected> {
        let Some(word) = tag.type_attribute() else {
            return Some(field);
        };
        let Some(e) = Expected::from_attribute(word) else {
            self.report(
                place,
                Diagnostic::new(
                    Code::E020,
                    tag.pos,
                    format!("AUTO tag `{}` has an unknown type `{word}`", tag.short()),
                )
                .hint("types are: text, integer, number, boolean, list, any"),
            );
            return None;
        };
        if !e.fits(field) {
            self.report(
                place,
                Diagnostic::new(
                    Code::E021,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` gives {}, and `{}` takes {}",
                        tag.short(),
                        e.describe(),
                        place.field,
                        field.describe()
                    ),
                )
                .hint("change the tag's `type`, or move the tag to a field of that type"),
            );
            return None;
        }
        Some(e)
    }

    fn report(&mut self, place: &Place, d: Diagnostic) {
        let d = if place.field.is_empty() {
            d
        } else {
            d.field(&place.field)
        };
        self.diags.push(match &place.step {
            Some(s) => d.step(s.clone()),
            None => d,
        });
    }

    /// The answer to a tag (nested tags first), checked against `expected`; `None` when
    /// there is none (reported).
    fn answer(&mut self, tag: &Tag, place: &Place, expected: Expected) -> Option<Value> {
        let own_text = tag
            .parts
            .iter()
            .any(|p| matches!(p, Part::Text(t) if is_template(t)));
        if own_text && self.nesting == 0 && asked_at_run_time(place) {
            return self.ask_at_run_time(tag, place, expected);
        }
        if own_text {
            self.report(
                place,
                Diagnostic::new(
                    Code::E019,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` uses a template, so it cannot be answered when the pipeline compiles",
                        tag.short()
                    ),
                )
                .hint("a tag over templates is asked when its step runs only in the step's `parameters` and `condition`; elsewhere ask a model step (`action: generate`) and read its answer"),
            );
            return None;
        }
        let Some(resolver) = self.resolver else {
            self.report(
                place,
                Diagnostic::new(
                    Code::E019,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` needs a model to answer it, and none is configured",
                        tag.short()
                    ),
                )
                .hint("configure a model (a `models:` entry in the config file), or write the value instead of the tag"),
            );
            return None;
        };
        if resolver.defers() {
            let field = place.named();
            self.report(
                place,
                Diagnostic::new(
                    Code::I202,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` needs a model: {} for {field}, asked when the pipeline runs",
                        tag.short(),
                        expected.describe()
                    ),
                )
                .hint("`orc validate --resolve` asks it now, and caches the answer for the run"),
            );
            return None;
        }
        let instruction = self.instruction(tag, place)?;
        let key = (
            instruction.trim().to_string(),
            tag.attributes.clone(),
            expected,
        );
        let reply = match self.memo.get(&key) {
            Some(r) => r.clone(),
            None => {
                let request = AutoRequest {
                    instruction: key.0.clone(),
                    attributes: key.1.clone(),
                    expected,
                    path: place.path(),
                };
                let r = resolver.resolve(&request);
                self.memo.insert(key, r.clone());
                r
            }
        };
        let text = match reply {
            Ok(t) => t,
            Err(message) => {
                self.report(
                    place,
                    Diagnostic::new(
                        Code::E021,
                        tag.pos,
                        format!("AUTO tag `{}` got no answer: {message}", tag.short()),
                    )
                    .hint("check the model configuration, or write the value instead of the tag"),
                );
                return None;
            }
        };
        let Some(value) = parse_answer(expected, &text) else {
            let field = place.named();
            self.report(
                place,
                Diagnostic::new(
                    Code::E021,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` must give {} for {field}, and the answer was `{}`",
                        tag.short(),
                        expected.describe(),
                        shorten(&text)
                    ),
                )
                .hint("make the instruction ask for exactly that, or write the value instead of the tag"),
            );
            return None;
        };
        if !holds_template(&value) {
            self.report(
                place,
                Diagnostic::new(
                    Code::I204,
                    tag.pos,
                    format!(
                        "AUTO tag `{}` answered: `{}`",
                        tag.short(),
                        shorten(&text_of(&value))
                    ),
                ),
            );
        }
        if holds_template(&value) {
            self.report(
                place,
                Diagnostic::new(
                    Code::E021,
                    tag.pos,
                    format!(
                        "the answer to AUTO tag `{}` holds template syntax (`{{{{`, `{{%` or `{{#`): `{}`",
                        tag.short(),
                        shorten(&text)
                    ),
                )
                .hint("an answer is a value, never a template; change the instruction"),
            );
            return None;
        }
        Some(value)
    }
}

impl Answerer<'_> {
    /// A tag's instruction, with the answers of the tags nested in it; `None` when one of
    /// them has none (reported).
    fn instruction(&mut self, tag: &Tag, place: &Place) -> Option<String> {
        let mut instruction = String::new();
        let mut complete = true;
        for part in &tag.parts {
            match part {
                Part::Text(t) => instruction.push_str(t),
                Part::Tag(inner) => match self.nested(inner, place) {
                    Some(text) => instruction.push_str(&text),
                    None => complete = false,
                },
            }
        }
        complete.then_some(instruction)
    }

    /// The answer to a tag nested in another, as text (it is part of an instruction: always
    /// answered when the pipeline compiles); `None` when it has none (reported).
    fn nested(&mut self, inner: &Tag, place: &Place) -> Option<String> {
        self.nesting += 1;
        let answer = self
            .expected(inner, place, Expected::Text)
            .and_then(|e| self.answer(inner, place, e));
        self.nesting -= 1;
        answer.map(|v| text_of(&v))
    }

    /// A tag over templates in a step's `parameters` or `condition`: an [`Asked`] of the
    /// step, and in its place the template that reads the answer.
    fn ask_at_run_time(&mut self, tag: &Tag, place: &Place, expected: Expected) -> Option<Value> {
        let step = place.step.clone()?;
        let question = self.instruction(tag, place)?;
        let id = format!("{step}__auto_{}", self.asked.len() + 1);
        self.report(
            place,
            Diagnostic::new(
                Code::I202,
                tag.pos,
                format!(
                    "AUTO tag `{}` reads templates: step `{id}` asks a model for {} for {} when step `{step}` is about to run",
                    tag.short(),
                    expected.describe(),
                    place.named()
                ),
            ),
        );
        let read = format!("{{{{ {id}.result }}}}");
        self.asked.push(Asked {
            id,
            question: question.trim().to_string(),
            expected,
            attributes: tag.attributes.clone(),
            path: place.path(),
            in_condition: !place.field.starts_with("parameters"),
            pos: tag.pos,
        });
        Some(Value::String(read))
    }
}

/// Whether a tag over templates at `place` is asked when its step runs: in a step's
/// `parameters` or its `condition` (`if`). Elsewhere (loop headers, `timeout`, the pipeline's
/// own fields) there is no step to ask it just before.
fn asked_at_run_time(place: &Place) -> bool {
    place.step.is_some()
        && (place.field == "parameters"
            || place.field.starts_with("parameters.")
            || place.field.starts_with("parameters[")
            || place.field == "condition"
            || place.field == "if")
}

/// The `auto` steps that ask a step's run-time tags, and the step made to depend on them.
fn ask_steps(step: &mut Node, asked: Vec<Asked>) -> Vec<Node> {
    let condition = step.get("condition").or_else(|| step.get("if")).cloned();
    let declared = ["dependencies", "depends_on"]
        .iter()
        .find_map(|k| step.get(k).map(|n| ((*k).to_string(), n.clone())));
    let mut made = Vec::with_capacity(asked.len());
    let mut ids = Vec::with_capacity(asked.len());
    for a in asked {
        let mut parameters = serde_json::json!({
            "question": a.question,
            "type": a.expected.word(),
            "field": a.path,
        });
        let mut attributes = serde_json::Map::new();
        for (k, v) in &a.attributes {
            if k == "model" {
                parameters["model"] = Value::String(v.clone());
            } else if k != "type" {
                attributes.insert(k.clone(), Value::String(v.clone()));
            }
        }
        if !attributes.is_empty() {
            parameters["attributes"] = Value::Object(attributes);
        }
        let mut node = crate::yaml::from_json(
            &serde_json::json!({"id": a.id, "action": "auto", "parameters": parameters}),
            a.pos,
        );
        if let Kind::Map(entries) = &mut node.kind {
            let key = |name: &str| crate::yaml::Key {
                name: name.to_string(),
                pos: a.pos,
            };
            if let Some((name, deps)) = &declared {
                entries.push((key(name), deps.clone()));
            }
            if let (Some(c), false) = (&condition, a.in_condition) {
                entries.push((key("condition"), c.clone()));
            }
        }
        ids.push((a.id, a.pos));
        made.push(node);
    }
    depend_on(step, ids);
    made
}

/// Adds `ids` to a step's `dependencies` (or `depends_on`), in whatever form it has them.
fn depend_on(step: &mut Node, ids: Vec<(String, Pos)>) {
    let Kind::Map(entries) = &mut step.kind else {
        return;
    };
    let new = ids.into_iter().map(|(id, pos)| Node {
        kind: Kind::Str(id),
        pos,
    });
    let at = entries
        .iter()
        .position(|(k, _)| k.name == "dependencies" || k.name == "depends_on");
    match at {
        Some(i) => {
            let deps = &mut entries[i].1;
            match &mut deps.kind {
                Kind::Seq(items) => items.extend(new),
                Kind::Null => deps.kind = Kind::Seq(new.collect()),
                // `dependencies: "a, b"`.
                Kind::Str(list) => {
                    for id in new {
                        if let Kind::Str(id) = id.kind {
                            list.push_str(", ");
                            list.push_str(&id);
                        }
                    }
                }
                // Of the wrong type: reported when the step is read.
                _ => {}
            }
        }
        None => {
            let pos = step.pos;
            if let Kind::Map(entries) = &mut step.kind {
                entries.push((
                    crate::yaml::Key {
                        name: "dependencies".into(),
                        pos,
                    },
                    Node {
                        kind: Kind::Seq(new.collect()),
                        pos,
                    },
                ));
            }
        }
    }
}

/// A tag's instruction as written, nested tags included.
fn written_parts(tag: &Tag) -> String {
    tag.parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.as_str(),
            Part::Tag(inner) => inner.text.as_str(),
        })
        .collect()
}

fn holds_template(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.iter().any(|(k, v)| is_template(k) || holds_template(v)),
        _ => false,
    }
}

/// An answer as text, for substitution into a longer string.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most 60 characters on one line.
fn shorten(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 60 {
        flat
    } else {
        format!("{}…", flat.chars().take(57).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_their_type() {
        use Expected::*;
        assert_eq!(parse_answer(Integer, " 3\n"), Some(Value::from(3)));
        assert_eq!(parse_answer(Integer, "\"4.\""), Some(Value::from(4)));
        assert_eq!(parse_answer(Integer, "3.0"), Some(Value::from(3)));
        assert_eq!(parse_answer(Integer, "three"), None);
        assert_eq!(parse_answer(Integer, "3.5"), None);
        assert_eq!(parse_answer(Number, "2.5"), Some(Value::from(2.5)));
        assert_eq!(parse_answer(Number, "inf"), None);
        assert_eq!(parse_answer(Boolean, "Yes."), Some(Value::Bool(true)));
        assert_eq!(parse_answer(Boolean, "maybe"), None);
        assert_eq!(
            parse_answer(List, "```json\n[\"a\", 2]\n```"),
            Some(serde_json::json!(["a", 2]))
        );
        assert_eq!(parse_answer(List, "a, b"), None);
        assert_eq!(
            parse_answer(Any, "{\"k\": 1}"),
            Some(serde_json::json!({"k": 1}))
        );
        assert_eq!(
            parse_answer(Any, "plain words"),
            Some(Value::from("plain words"))
        );
        assert_eq!(parse_answer(Text, " 42 "), Some(Value::from("42")));
    }
}
