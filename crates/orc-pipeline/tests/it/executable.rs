//! The executable form of a plan: condition expressions parsed once into `Compiled::exprs`,
//! template conditions' shape decided when the templates are compiled, and the same form
//! rebuilt from the serialized plan (what the compile cache stores).

use orc_pipeline::{Compiled, Condition, InputType, Plan, Step, StepKind};
use serde_json::{Map, json};

use crate::common::catalog;

const PIPELINE: &str = r#"
name: conditions
inputs:
  n: 3
  word: "yes"
  items: { type: list, default: [1, 2] }
steps:
  - id: a
    action: echo
    parameters: { message: a }
    condition: n > 2
  - id: b
    action: echo
    parameters: { message: b }
    condition: "{{ word }}"
  - id: c
    action: echo
    parameters: { message: c }
    condition: "{% if n > 2 %}yes{% else %}no{% endif %}"
  - id: d
    action: echo
    parameters: { message: d }
    condition: "  n > 2 "
  - id: e
    action: echo
    parameters: { message: e }
    condition: "len(items) >= n or word == 'yes'"
  - id: loop
    while: "len(items) > n"
    until: "n > 10"
    max_iterations: 2
    steps:
      - id: inner
        action: echo
        parameters: { message: inner }
"#;

fn compiled() -> Compiled {
    orc_pipeline::compile(PIPELINE, &catalog()).expect("compiles")
}

/// Every condition of the plan, in document order.
fn conditions(steps: &[Step]) -> Vec<Condition> {
    let mut out = Vec::new();
    for s in steps {
        out.extend(s.condition.clone());
        if let StepKind::While(w) = &s.kind {
            out.push(w.condition.clone());
            out.extend(w.until.clone());
        }
        out.extend(conditions(s.body().unwrap_or(&[])));
    }
    out
}

fn reloaded(compiled: &Compiled) -> Compiled {
    let text = serde_json::to_vec(&*compiled.plan).unwrap();
    let plan: Plan = serde_json::from_slice(&text).unwrap();
    Compiled::from_plan(plan, compiled.findings.clone()).expect("rebuilds")
}

#[test]
fn each_condition_expression_is_parsed_once_into_the_table() {
    let c = compiled();
    // `n > 2` is written twice (once with spaces around it) and stored once.
    assert_eq!(
        c.plan.exprs,
        [
            "n > 2",
            "len(items) >= n or word == 'yes'",
            "len(items) > n",
            "n > 10"
        ]
    );
    assert_eq!(c.exprs.len(), c.plan.exprs.len());
    let ids: Vec<u32> = conditions(&c.plan.steps)
        .iter()
        .filter_map(|cond| match cond {
            Condition::Expr(id) => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [0, 0, 1, 2, 3]);
    let mut scope = Map::new();
    scope.insert("n".into(), json!(3));
    scope.insert("word".into(), json!("yes"));
    scope.insert("items".into(), json!([1, 2]));
    let expected = [json!(true), json!(true), json!(false), json!(false)];
    for _ in 0..50 {
        for (i, want) in expected.iter().enumerate() {
            let id = orc_pipeline::ExprId(u32::try_from(i).unwrap());
            assert_eq!(
                &c.exprs.get(id).unwrap().eval(&scope).unwrap(),
                want,
                "expr {i}"
            );
        }
    }
}

#[test]
fn template_conditions_know_their_shape_from_the_compiled_templates() {
    let c = compiled();
    let shapes: Vec<(String, bool)> = conditions(&c.plan.steps)
        .iter()
        .filter_map(|cond| match cond {
            Condition::Template(id) => Some((
                c.templates.source(*id).to_string(),
                c.templates.is_single_expression(*id),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("{{ word }}".to_string(), true),
            (
                "{% if n > 2 %}yes{% else %}no{% endif %}".to_string(),
                false
            ),
        ]
    );
}

#[test]
fn a_plan_from_the_compile_cache_has_the_same_executable_form() {
    let fresh = compiled();
    let loaded = reloaded(&fresh);
    assert_eq!(loaded.plan.exprs, fresh.plan.exprs);
    assert_eq!(loaded.exprs.len(), fresh.exprs.len());
    for (a, b) in conditions(&fresh.plan.steps)
        .iter()
        .zip(conditions(&loaded.plan.steps).iter())
    {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        if let Condition::Template(id) = a {
            assert_eq!(
                fresh.templates.is_single_expression(*id),
                loaded.templates.is_single_expression(*id)
            );
        }
    }
    let mut scope = Map::new();
    for n in [0, 1, 2, 3, 11] {
        scope.insert("n".into(), json!(n));
        scope.insert("word".into(), json!("no"));
        scope.insert("items".into(), json!([1, 2]));
        for i in 0..fresh.exprs.len() {
            let id = orc_pipeline::ExprId(u32::try_from(i).unwrap());
            assert_eq!(
                fresh.exprs.get(id).unwrap().eval(&scope),
                loaded.exprs.get(id).unwrap().eval(&scope),
            );
        }
    }
}

#[test]
fn a_stored_expression_that_does_not_parse_is_not_loaded() {
    let fresh = compiled();
    let mut plan = (*fresh.plan).clone();
    plan.exprs[0] = "n >".into();
    assert!(Compiled::from_plan(plan, fresh.findings.clone()).is_none());
}

#[test]
fn input_types_are_stored_as_written() {
    let c = compiled();
    let items = c.plan.inputs.iter().find(|i| i.name == "items").unwrap();
    assert_eq!(items.kind, Some(InputType::List));
    let stored = serde_json::to_value(&*c.plan).unwrap();
    let kinds: Vec<_> = stored["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!(null), json!(null), json!("list")]);
}
