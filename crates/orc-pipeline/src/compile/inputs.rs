//! The declared inputs (`inputs:` and `parameters:`): a plain value that is the default, or a
//! spec with `type`, `default`, `description`, `required`, and py-orc's `choices` (`enum`),
//! `validation`, `range` and `example`. A default that is itself a spec (a YAML alias of the
//! spec under `parameters`, as py-orc's converter wrote its `inputs`) is read as that spec.

use crate::diag::{Code, Diagnostic};
use crate::input_type::{INPUT_TYPES, InputType};
use crate::plan::{Input, InputRules};
use crate::templates::is_template;
use crate::yaml::{Kind, Node};

use super::read::{Reader, valid_id};

/// Keys that make a mapping an input spec rather than a default value.
const SPEC_KEYS: &[&str] = &["type", "default", "description", "required"];

/// Reads the inputs under `key` into `inputs`; a name already read (from `inputs`, read
/// first) keeps its first declaration.
pub(super) fn read(r: &mut Reader<'_>, node: &Node, key: &str, inputs: &mut Vec<Input>) {
    let entries = match &node.kind {
        Kind::Map(entries) => entries,
        Kind::Null => return,
        _ => {
            r.wrong_type(node, key, "a mapping of input names to defaults");
            return;
        }
    };
    for (k, v) in entries {
        if inputs.iter().any(|i| i.name == k.name) {
            continue;
        }
        if !valid_id(&k.name) || k.name.contains('-') {
            r.report(
                Diagnostic::new(
                    Code::E005,
                    k.pos,
                    format!("input name `{}` is not a valid name", k.name),
                )
                .field(format!("{key}.{}", k.name))
                .hint("input names start with a letter and contain only letters, digits and `_`"),
            );
            continue;
        }
        let mut input = Input {
            name: k.name.clone(),
            default: None,
            required: false,
            kind: None,
            choices: None,
            rules: InputRules::default(),
        };
        if is_spec(v) {
            let field = format!("{key}.{}", k.name);
            let default = spec(r, v, &field, &mut input);
            check_default(r, &input, default, &field);
        } else {
            input.default = Some(v.to_json());
        }
        inputs.push(input);
    }
}

fn is_spec(v: &Node) -> bool {
    matches!(&v.kind, Kind::Map(e) if !e.is_empty() && e.iter().any(|(k, _)| SPEC_KEYS.contains(&k.name.as_str())))
}

/// Reads a spec into `input`; returns the node of the default it took, if any.
fn spec<'n>(r: &mut Reader<'_>, v: &'n Node, field: &str, input: &mut Input) -> Option<&'n Node> {
    let Kind::Map(entries) = &v.kind else {
        return None;
    };
    let mut default = None;
    for (sk, sv) in entries {
        let field = format!("{field}.{}", sk.name);
        match sk.name.as_str() {
            "default" => default = Some(sv),
            "description" | "example" => {}
            "required" => input.required = r.boolean(sv, &field).unwrap_or(false),
            "type" => {
                if let Some(t) = r.string(sv, &field) {
                    match InputType::parse(&t) {
                        Some(kind) => input.kind = Some(kind),
                        None => r.report(
                            Diagnostic::new(Code::E014, sv.pos, format!("unknown input type `{t}`"))
                                .field(field)
                                .hint(format!("use one of: {}", INPUT_TYPES.join(", "))),
                        ),
                    }
                }
            }
            "choices" | "enum" => input.choices = choices(r, sv, &field),
            "validation" => validation(r, sv, &field, input),
            "range" => range(r, sv, &field, &mut input.rules),
            other => r.report(
                Diagnostic::new(
                    Code::E013,
                    sk.pos,
                    format!("orc does not support `{other}` on an input"),
                )
                .field(field)
                .hint("an input takes `type`, `default`, `description`, `required`, `choices`, `validation`, `range` and `example`"),
            ),
        }
    }
    let default = default?;
    // A spec where the default goes (an alias of the input's other declaration): that spec
    // declares the input. A mapping default of a mapping type stays a value.
    let holds_mappings = matches!(
        input.kind,
        None | Some(InputType::Object | InputType::Dict | InputType::Any)
    );
    let aliased = !holds_mappings
        && default
            .get("type")
            .and_then(|t| match &t.kind {
                Kind::Str(t) => InputType::parse(t),
                _ => None,
            })
            .is_some();
    if aliased {
        return spec(r, default, &format!("{field}.default"), input);
    }
    input.default = Some(default.to_json());
    Some(default)
}

fn choices(r: &mut Reader<'_>, v: &Node, field: &str) -> Option<Vec<serde_json::Value>> {
    let Kind::Seq(items) = &v.kind else {
        r.wrong_type(v, field, "a list of the values the input may take");
        return None;
    };
    if items.is_empty() {
        r.report(
            Diagnostic::new(Code::E014, v.pos, format!("`{field}` is empty"))
                .field(field)
                .hint("list the values the input may take, or remove the key"),
        );
        return None;
    }
    Some(items.iter().map(Node::to_json).collect())
}

/// `validation:` — `pattern`, `min_length`, `max_length`, `min`/`minimum`, `max`/`maximum`,
/// `allowed_values` (the input's choices).
fn validation(r: &mut Reader<'_>, v: &Node, field: &str, input: &mut Input) {
    let Kind::Map(entries) = &v.kind else {
        r.wrong_type(
            v,
            field,
            "a mapping such as `{min_length: 3, pattern: '[a-z]+'}`",
        );
        return;
    };
    for (k, n) in entries {
        let field = format!("{field}.{}", k.name);
        let rules = &mut input.rules;
        match k.name.as_str() {
            "pattern" => {
                if let Some(p) = r.string(n, &field) {
                    match regex::Regex::new(&p) {
                        Ok(_) => rules.pattern = Some(p),
                        Err(e) => r.report(
                            Diagnostic::new(
                                Code::E014,
                                n.pos,
                                format!("`{field}` is not a valid regular expression: {e}"),
                            )
                            .field(field),
                        ),
                    }
                }
            }
            "min_length" => rules.min_length = length(r, n, &field),
            "max_length" => rules.max_length = length(r, n, &field),
            "min" | "minimum" => rules.min = number(r, n, &field),
            "max" | "maximum" => rules.max = number(r, n, &field),
            "allowed_values" => input.choices = choices(r, n, &field),
            other => r.report(
                Diagnostic::new(
                    Code::E013,
                    k.pos,
                    format!("orc does not support the validation rule `{other}`"),
                )
                .field(field)
                .hint("`validation` takes `pattern`, `min_length`, `max_length`, `min`, `max` and `allowed_values`"),
            ),
        }
    }
}

/// `range: [min, max]`.
fn range(r: &mut Reader<'_>, v: &Node, field: &str, rules: &mut InputRules) {
    match &v.kind {
        Kind::Seq(items) if items.len() == 2 => {
            rules.min = number(r, &items[0], &format!("{field}[0]"));
            rules.max = number(r, &items[1], &format!("{field}[1]"));
        }
        _ => r.wrong_type(v, field, "a list `[min, max]`"),
    }
}

fn length(r: &mut Reader<'_>, n: &Node, field: &str) -> Option<u64> {
    match n.kind {
        Kind::Int(i) if i >= 0 => u64::try_from(i).ok(),
        _ => {
            r.wrong_type(n, field, "a whole number of at least 0");
            None
        }
    }
}

fn number(r: &mut Reader<'_>, n: &Node, field: &str) -> Option<f64> {
    match n.kind {
        #[allow(clippy::cast_precision_loss)]
        Kind::Int(i) => Some(i as f64),
        Kind::Float(f) if f.is_finite() => Some(f),
        _ => {
            r.wrong_type(n, field, "a number");
            None
        }
    }
}

/// The declared default against the declared type, choices and limits (a template is
/// rendered when the run starts, and not checked here).
fn check_default(r: &mut Reader<'_>, input: &Input, node: Option<&Node>, field: &str) {
    let (Some(d), Some(node)) = (&input.default, node) else {
        return;
    };
    if d.is_null() || d.as_str().is_some_and(is_template) {
        return;
    }
    let field = format!("{field}.default");
    if let Some(t) = &input.kind
        && !t.matches(d)
    {
        r.report(
            Diagnostic::new(
                Code::E003,
                node.pos,
                format!("the default of `{}` is not of type `{t}`", input.name),
            )
            .field(field),
        );
        return;
    }
    if let Some(why) = input.refuses(d) {
        r.report(
            Diagnostic::new(
                Code::E014,
                node.pos,
                format!("the default of `{}` is refused: {why}", input.name),
            )
            .field(field),
        );
    }
}
