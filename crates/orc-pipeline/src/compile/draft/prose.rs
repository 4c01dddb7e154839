//! A step whose `action` is not one of its tool's: prose (`tool: python-executor` with
//! `action: "Sleep for 5 seconds"`) or py-orc's generic `execute` (`tool: filesystem`,
//! `action: execute`, `parameters: {action: write, …}`). py-orc ran the tool with its
//! parameters and the action was only a label. orc reads such a step as the action
//! `parameters.action` names (py-orc's filesystem read it there), else, for prose, the tool's
//! only action or its `execute`; anything else stays an error (E009).

use crate::templates::is_template;
use crate::yaml::{Key, Kind, Node};

use super::super::Catalog;

/// The step node with its prose action replaced by the action it stands for, or `None` when
/// the action is not prose on a known tool or names no action that can be told.
pub(super) fn on_tool(catalog: &Catalog, node: &Node) -> Option<Node> {
    let Some(Kind::Str(tool)) = node.get("tool").map(|n| &n.kind) else {
        return None;
    };
    let action = node.get("action")?;
    let Kind::Str(text) = &action.kind else {
        return None;
    };
    let actions = catalog.actions(tool)?;
    if is_template(text) || actions.contains(&text.as_str()) {
        return None;
    }
    let prose = text.trim().contains(char::is_whitespace);
    let named = node
        .get("parameters")
        .and_then(|p| p.get("action"))
        .and_then(|a| match &a.kind {
            Kind::Str(a) if actions.contains(&a.as_str()) => Some(a.clone()),
            _ => None,
        });
    let chosen = match (&named, actions.as_slice()) {
        (Some(a), _) => a.clone(),
        (None, [only]) if prose => (*only).to_string(),
        (None, _) if prose && actions.contains(&"execute") => "execute".to_string(),
        _ => return None,
    };
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let entries = entries
        .iter()
        .map(|(k, v)| match k.name.as_str() {
            "action" => (
                k.clone(),
                Node {
                    kind: Kind::Str(chosen.clone()),
                    pos: v.pos,
                },
            ),
            "parameters" if named.is_some() => (k.clone(), without_action(v)),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    Some(Node {
        kind: Kind::Map(entries),
        pos: node.pos,
    })
}

/// py-orc's tool actions that are model calls: `tool: validation`, `action:
/// extract_structured` asks a model for the text's data. Such a step is the tool-less model
/// action of the same name, so the model is chosen, checked and paid for as every model
/// step's is.
const MODEL_TOOL_ACTIONS: &[(&str, &str)] = &[("validation", "extract_structured")];

/// The step node without its `tool` when its tool's action is a model call.
pub(super) fn model_on_tool(node: &Node) -> Option<Node> {
    let text = |key: &str| match node.get(key).map(|n| &n.kind) {
        Some(Kind::Str(s)) => Some(s.trim()),
        _ => None,
    };
    let (tool, action) = (text("tool")?, text("action")?);
    if !MODEL_TOOL_ACTIONS.contains(&(tool, action)) {
        return None;
    }
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    Some(Node {
        kind: Kind::Map(
            entries
                .iter()
                .filter(|(k, _)| k.name != "tool")
                .cloned()
                .collect(),
        ),
        pos: node.pos,
    })
}

fn without_action(params: &Node) -> Node {
    let Kind::Map(entries) = &params.kind else {
        return params.clone();
    };
    let kept: Vec<(Key, Node)> = entries
        .iter()
        .filter(|(k, _)| k.name != "action")
        .cloned()
        .collect();
    Node {
        kind: Kind::Map(kept),
        pos: params.pos,
    }
}
