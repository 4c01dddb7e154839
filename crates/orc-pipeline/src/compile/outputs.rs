//! The pipeline's outputs: `outputs` as a mapping of names to values, or as py-orc's list of
//! `{name, value}` entries, and py-orc's `enhanced_outputs` (each output's value with its
//! description and type), read into the values the run renders and the declarations the
//! result document lists.

use crate::diag::{Code, Diagnostic};
use crate::plan::{OutputSpec, Param};
use crate::yaml::{Kind, Node};

use super::draft::{Drafter, UseSite};
use super::read::Reader;

/// Keys of one entry of a list of outputs, or of `enhanced_outputs`.
const ENTRY_KEYS: &[&str] = &["name", "value", "description", "type", "format"];

/// The outputs (name and value, in document order), the places their templates read names,
/// and the declarations of `enhanced_outputs` and of a list's entries.
pub(super) fn read(
    r: &mut Reader<'_>,
    drafter: &mut Drafter<'_>,
    doc: &Node,
) -> (Vec<(String, Param)>, Vec<UseSite>, Vec<OutputSpec>) {
    let mut uses = Vec::new();
    let mut outputs: Vec<(String, Param)> = Vec::new();
    // Each output's value as written, to compare `enhanced_outputs` with.
    let mut written: Vec<(String, serde_json::Value)> = Vec::new();
    let mut specs = Vec::new();
    let mut add = |drafter: &mut Drafter<'_>,
                   uses: &mut Vec<UseSite>,
                   written: &mut Vec<(String, serde_json::Value)>,
                   name: &str,
                   v: &Node| {
        let field = format!("outputs.{name}");
        outputs.push((name.to_string(), drafter.param(v, None, &field, uses)));
        written.push((name.to_string(), v.to_json()));
    };
    if let Some(n) = doc.get("outputs") {
        match &n.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    add(drafter, &mut uses, &mut written, &k.name, v);
                }
            }
            Kind::Seq(items) => {
                for item in items {
                    if let Some((name, value, spec)) = entry(r, item, None, "outputs[]") {
                        add(drafter, &mut uses, &mut written, &name, value);
                        specs.extend(spec);
                    }
                }
            }
            Kind::Null => {}
            _ => r.wrong_type(
                n,
                "outputs",
                "a mapping of names to templates, or a list of `{name, value}`",
            ),
        }
    }
    if let Some(n) = doc.get("enhanced_outputs") {
        match &n.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let field = format!("enhanced_outputs.{}", k.name);
                    let Some((_, value, spec)) = entry(r, v, Some(&k.name), &field) else {
                        continue;
                    };
                    let same = written
                        .iter()
                        .find(|(w, _)| *w == k.name)
                        .map(|(_, w)| *w == value.to_json());
                    match same {
                        // The same output twice, as py-orc's converter wrote them: one value.
                        Some(true) => {}
                        Some(false) => r.report(
                            Diagnostic::new(
                                Code::W102,
                                value.pos,
                                format!(
                                    "`{field}.value` differs from `outputs.{}`, which gives the output",
                                    k.name
                                ),
                            )
                            .field(format!("{field}.value"))
                            .hint("keep one value for the output"),
                        ),
                        None => add(drafter, &mut uses, &mut written, &k.name, value),
                    }
                    specs.extend(spec);
                }
            }
            Kind::Null => {}
            _ => r.wrong_type(
                n,
                "enhanced_outputs",
                "a mapping of output names to `{value, description, type}`",
            ),
        }
    }
    (outputs, uses, specs)
}

/// One output entry: `{name, value, description, type}` (in `enhanced_outputs` the name is
/// the key, and a plain value is the value). A `value` that is itself such an entry (a YAML
/// alias of an entry of the `outputs` list, as py-orc's converter wrote) stands for its value.
fn entry<'n>(
    r: &mut Reader<'_>,
    node: &'n Node,
    key: Option<&str>,
    field: &str,
) -> Option<(String, &'n Node, Option<OutputSpec>)> {
    let Kind::Map(entries) = &node.kind else {
        return match key {
            Some(name) => Some((name.to_string(), node, None)),
            None => {
                r.wrong_type(node, field, "a mapping with `name` and `value`");
                None
            }
        };
    };
    for (k, _) in entries {
        if !ENTRY_KEYS.contains(&k.name.as_str()) {
            r.report(
                Diagnostic::new(
                    Code::E013,
                    k.pos,
                    format!("orc does not support `{}` on an output", k.name),
                )
                .field(format!("{field}.{}", k.name))
                .hint("an output takes `value`, `description` and `type`"),
            );
        }
    }
    let name = match (key, node.get("name")) {
        (Some(k), _) => k.to_string(),
        (None, Some(n)) => r.string(n, &format!("{field}.name"))?,
        (None, None) => {
            r.report(
                Diagnostic::new(Code::E002, node.pos, "an output has no `name`")
                    .field(format!("{field}.name")),
            );
            return None;
        }
    };
    let Some(mut value) = node.get("value") else {
        r.report(
            Diagnostic::new(
                Code::E002,
                node.pos,
                format!("output `{name}` has no `value`"),
            )
            .field(format!("{field}.value"))
            .hint("write the output's template under `value`"),
        );
        return None;
    };
    if let (Some(_), Some(inner)) = (value.get("name"), value.get("value")) {
        value = inner;
    }
    let mut text = |k: &str| {
        let n = node.get(k)?;
        match &n.kind {
            Kind::Null => None,
            _ => r.scalar_text(n, &format!("{field}.{k}")),
        }
    };
    let description = text("description");
    let kind = text("type").or_else(|| text("format"));
    let spec = (description.is_some() || kind.is_some()).then(|| OutputSpec {
        name: name.clone(),
        description,
        kind,
    });
    Some((name, value, spec))
}
