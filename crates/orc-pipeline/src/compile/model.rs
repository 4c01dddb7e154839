//! The model a step asks for: `model:` and `requires_model:`, checked against the catalog.

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::plan::{ModelChoice, ModelRequirements};
use crate::templates::is_template;
use crate::yaml::{Kind, Node, Pos};

use super::Catalog;
use super::read::Reader;

/// The requirement keys orc applies.
const REQUIREMENT_KEYS: &[&str] = &[
    "context_window",
    "expertise",
    "min_size",
    "max_size",
    "cost_limit",
];

/// Requirement keys the earlier Python system accepted; orc reads and ignores them.
const IGNORED_REQUIREMENT_KEYS: &[&str] = &[
    "tasks",
    "languages",
    "budget_period",
    "preferred",
    "excluded",
    "modalities",
    "capabilities",
    "max_latency_ms",
    "min_accuracy_score",
    "fallback_strategy",
    "supports_function_calling",
    "supports_structured_output",
    "min_tokens_per_second",
];

/// A step's model choice and where it is written.
pub(super) struct Choice {
    pub(super) choice: ModelChoice,
    /// The key that holds it (`model` or `requires_model`).
    pub(super) field: &'static str,
    /// Where the key is written.
    pub(super) key_pos: Pos,
    /// Where the value is written.
    pub(super) pos: Pos,
}

/// Reads `model` / `requires_model` from a step mapping; every problem is reported.
pub(super) fn step_choice(r: &mut Reader<'_>, step: &Node, catalog: &Catalog) -> Option<Choice> {
    let Kind::Map(entries) = &step.kind else {
        return None;
    };
    let find = |k: &str| entries.iter().find(|(key, _)| key.name == k);
    let (model, requires) = (find("model"), find("requires_model"));
    if let (Some(_), Some((key, _))) = (model, requires) {
        r.report(
            Diagnostic::new(
                Code::E003,
                key.pos,
                "a step has both `model` and `requires_model`",
            )
            .field("requires_model")
            .hint("`model: NAME` is the same as `requires_model: NAME`; keep one"),
        );
    }
    if let Some((key, value)) = model {
        let name = r.string(value, "model")?;
        let name = check_name(r, catalog, &name, value.pos, "model", true)?;
        return Some(Choice {
            choice: ModelChoice::Named(name),
            field: "model",
            key_pos: key.pos,
            pos: value.pos,
        });
    }
    let (key, value) = requires?;
    let field = "requires_model";
    let choice = match &value.kind {
        Kind::Null => ModelChoice::NoModel,
        Kind::Str(s) if s.trim().eq_ignore_ascii_case("none") => ModelChoice::NoModel,
        Kind::Str(s) => ModelChoice::Named(check_name(r, catalog, s, value.pos, field, true)?),
        Kind::Map(_) => ModelChoice::Requirements(requirements(r, value)?),
        _ => {
            r.wrong_type(
                value,
                field,
                "a model name, `none`, or a mapping of requirements",
            );
            return None;
        }
    };
    Some(Choice {
        choice,
        field,
        key_pos: key.pos,
        pos: value.pos,
    })
}

/// Checks a model reference written in `field`: the catalog must know it. Returns the name,
/// trimmed, when it can be used. With `needs_models`, a catalog without models is an error
/// (E016); without, as for the pipeline's `model:`, the name is then taken as written.
pub(super) fn check_name(
    r: &mut Reader<'_>,
    catalog: &Catalog,
    name: &str,
    pos: Pos,
    field: &str,
    needs_models: bool,
) -> Option<String> {
    let name = name.trim();
    if is_template(name) {
        r.report(
            Diagnostic::new(
                Code::E014,
                pos,
                format!("`{field}` must name a model; it is not rendered, so it cannot hold a template"),
            )
            .field(field)
            .hint("name the model here, or choose it at run time with a template in `parameters.model`"),
        );
        return None;
    }
    if name.is_empty() {
        r.report(
            Diagnostic::new(Code::E014, pos, format!("`{field}` is empty"))
                .field(field)
                .hint("name a model from the config file, or remove the key"),
        );
        return None;
    }
    let models = catalog.models();
    if models.is_empty() {
        if needs_models {
            r.report(
                Diagnostic::new(
                    Code::E016,
                    pos,
                    format!("`{field}` names model `{name}`, and no model is configured"),
                )
                .field(field)
                .hint("add a `models:` entry to the config file"),
            );
            return None;
        }
        return Some(name.to_string());
    }
    if !models.iter().any(|m| m == name) {
        let mut d =
            Diagnostic::new(Code::E018, pos, format!("unknown model `{name}`")).field(field);
        d = match did_you_mean(name, models.iter().map(String::as_str)) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint(format!("the configured models are: {}", list(models))),
        };
        r.report(d);
        return None;
    }
    Some(name.to_string())
}

/// At most a dozen names, then how many more.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

fn requirements(r: &mut Reader<'_>, node: &Node) -> Option<ModelRequirements> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let mut req = ModelRequirements::default();
    let mut ok = true;
    for (key, value) in entries {
        let field = format!("requires_model.{}", key.name);
        if matches!(value.kind, Kind::Null) && REQUIREMENT_KEYS.contains(&key.name.as_str()) {
            continue;
        }
        match key.name.as_str() {
            "context_window" => match value.kind {
                Kind::Int(i) if i >= 1 => req.context_window = u64::try_from(i).ok(),
                Kind::Int(i) => {
                    ok = false;
                    r.report(
                        Diagnostic::new(
                            Code::E014,
                            value.pos,
                            format!("`{field}` must be a positive number of tokens, not {i}"),
                        )
                        .field(field),
                    );
                }
                _ => {
                    ok = false;
                    r.wrong_type(value, &field, "a whole number of tokens");
                }
            },
            "expertise" => match &value.kind {
                Kind::Str(s) => req.expertise = vec![s.trim().to_string()],
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match r.string(item, &format!("{field}[{i}]")) {
                            Some(s) => req.expertise.push(s.trim().to_string()),
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    ok = false;
                    r.wrong_type(value, &field, "a tag or a list of tags");
                }
            },
            "min_size" | "max_size" => {
                let size = match &value.kind {
                    Kind::Str(s) => parse_size(s),
                    Kind::Int(i) => (*i >= 0).then_some(*i as f64),
                    Kind::Float(f) => (*f >= 0.0).then_some(*f),
                    _ => {
                        ok = false;
                        r.wrong_type(value, &field, "a size such as \"7b\"");
                        continue;
                    }
                };
                match size {
                    Some(b) if key.name == "min_size" => req.min_size = Some(b),
                    Some(b) => req.max_size = Some(b),
                    None => {
                        ok = false;
                        r.report(
                            Diagnostic::new(
                                Code::E014,
                                value.pos,
                                format!("`{field}` is not a model size"),
                            )
                            .field(field)
                            .hint("write billions of parameters with a unit: `7b`, `1.5b`, `500m`, `2t`"),
                        );
                    }
                }
            }
            "cost_limit" => {
                let v = match value.kind {
                    Kind::Int(i) => i as f64,
                    Kind::Float(f) => f,
                    _ => {
                        ok = false;
                        r.wrong_type(value, &field, "a number of US dollars");
                        continue;
                    }
                };
                if v >= 0.0 {
                    req.cost_limit = Some(v);
                } else {
                    ok = false;
                    r.report(
                        Diagnostic::new(
                            Code::E014,
                            value.pos,
                            format!("`{field}` must not be negative, not {v}"),
                        )
                        .field(field),
                    );
                }
            }
            k if IGNORED_REQUIREMENT_KEYS.contains(&k) => r.report(
                Diagnostic::new(
                    Code::W102,
                    key.pos,
                    format!("orc ignores the model requirement `{k}`"),
                )
                .field(field)
                .hint(format!(
                    "orc chooses models by {}; remove the key",
                    REQUIREMENT_KEYS
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            k => {
                ok = false;
                let mut d = Diagnostic::new(
                    Code::E013,
                    key.pos,
                    format!("orc does not support the model requirement `{k}`"),
                )
                .field(field);
                d = match did_you_mean(
                    k,
                    REQUIREMENT_KEYS
                        .iter()
                        .chain(IGNORED_REQUIREMENT_KEYS)
                        .copied(),
                ) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint(format!(
                        "the requirements are: {}",
                        REQUIREMENT_KEYS.join(", ")
                    )),
                };
                r.report(d);
            }
        }
    }
    if let (Some(min), Some(max)) = (req.min_size, req.max_size)
        && min > max
    {
        ok = false;
        let pos = node.get("max_size").map_or(node.pos, |n| n.pos);
        r.report(
            Diagnostic::new(
                Code::E014,
                pos,
                format!("`requires_model.max_size` ({max}b) is below `min_size` ({min}b)"),
            )
            .field("requires_model.max_size"),
        );
    }
    ok.then_some(req)
}

/// A model size in billions of parameters: `7b`, `1.5B`, `500m`, `2t`, `300k`, or a bare number of billions.
pub(crate) fn parse_size(text: &str) -> Option<f64> {
    let t = text.trim().to_ascii_lowercase();
    // Divided, not multiplied, so that `300k` is exactly `0.0003`.
    let (number, times, per) = match t.char_indices().last()? {
        (i, 'b') => (&t[..i], 1.0, 1.0),
        (i, 'm') => (&t[..i], 1.0, 1e3),
        (i, 'k') => (&t[..i], 1.0, 1e6),
        (i, 't') => (&t[..i], 1e3, 1.0),
        _ => (t.as_str(), 1.0, 1.0),
    };
    let number = number.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let v: f64 = number.parse().ok()?;
    let v = v * times / per;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_billions() {
        assert_eq!(parse_size("7b"), Some(7.0));
        assert_eq!(parse_size(" 1.5B "), Some(1.5));
        assert_eq!(parse_size("500m"), Some(0.5));
        assert_eq!(parse_size("300k"), Some(0.0003));
        assert_eq!(parse_size("2t"), Some(2000.0));
        assert_eq!(parse_size("13"), Some(13.0));
        for bad in ["", "b", "-1b", "7 gb", "abc", "1e3b", ".", "1.2.3b"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
