//! The run's inputs: the caller's values over the declared defaults, checked.

use std::collections::HashMap;

use orc_pipeline::Plan;
use serde_json::{Map, Value};

use super::{Error, Result};

/// The run's inputs: the caller's values over the declared defaults, checked.
///
/// An input the pipeline does not declare is an error unless the pipeline says
/// `extra_inputs: true`. Values given by the caller are data and are never rendered; a declared
/// default that is a template is rendered over the other inputs (`out: "{{ base }}/x"`), after
/// the defaults it reads, so a caller's value reaches it as data.
///
/// Every pipeline also takes `output_path`, the run's output directory, as py-orc's runner
/// gave it: declared or not, a caller may set it, and when neither the caller nor a declared
/// default gives it, it is `outputs/<pipeline id>` (relative to the working directory).
///
/// `orc run` calls this before it records the run, so a bad input runs and records nothing;
/// [`execute`] calls it again.
pub fn resolve_inputs(plan: &Plan, given: &Map<String, Value>) -> Result<Map<String, Value>> {
    if !plan.extra_inputs {
        check_declared(plan, given)?;
    }
    let mut inputs = Map::new();
    let mut templated: Vec<&str> = Vec::new();
    for input in &plan.inputs {
        match given.get(&input.name) {
            Some(v) => {
                if let Some(kind) = input.kind
                    && !kind.matches(v)
                {
                    return Err(Error::InputType {
                        name: input.name.clone(),
                        expected: kind.to_string(),
                        got: v.to_string(),
                    });
                }
                inputs.insert(input.name.clone(), v.clone());
            }
            None => match &input.default {
                Some(v) => {
                    if v.as_str().is_some_and(orc_pipeline::templates::is_template) {
                        templated.push(&input.name);
                    }
                    inputs.insert(input.name.clone(), v.clone());
                }
                None if input.required => return Err(Error::MissingInput(input.name.clone())),
                None => {
                    inputs.insert(input.name.clone(), Value::Null);
                }
            },
        }
    }
    for (k, v) in given {
        if !inputs.contains_key(k) {
            inputs.insert(k.clone(), v.clone());
        }
    }
    if inputs.get(OUTPUT_PATH).is_none_or(Value::is_null) {
        inputs.insert(
            OUTPUT_PATH.to_string(),
            Value::String(format!("outputs/{}", plan.id)),
        );
    }
    render_defaults(&mut inputs, templated)?;
    for input in &plan.inputs {
        if let Some(message) = inputs.get(&input.name).and_then(|v| input.refuses(v)) {
            return Err(Error::InputRefused {
                name: input.name.clone(),
                message,
            });
        }
    }
    Ok(inputs)
}

/// The input every pipeline takes: the directory the run writes its files to.
pub(crate) const OUTPUT_PATH: &str = "output_path";

/// Refuses inputs the pipeline does not declare, naming each and the closest declared name.
fn check_declared(plan: &Plan, given: &Map<String, Value>) -> Result<()> {
    let declared: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
    let unknown: Vec<String> = given
        .keys()
        .filter(|k| *k != OUTPUT_PATH && !declared.contains(&k.as_str()))
        .map(
            |k| match orc_pipeline::did_you_mean(k, declared.iter().copied()) {
                Some(s) => format!("`{k}` (did you mean `{s}`?)"),
                None => format!("`{k}`"),
            },
        )
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let declared = if declared.is_empty() {
        "the pipeline declares no inputs".to_string()
    } else {
        let shown: Vec<String> = declared.iter().take(20).map(|d| format!("`{d}`")).collect();
        let more = if declared.len() > shown.len() {
            ", …"
        } else {
            ""
        };
        format!("the pipeline declares {}{more}", shown.join(", "))
    };
    Err(Error::UndeclaredInput(format!(
        "the pipeline does not declare the input{} {}; {declared} (a pipeline that takes any input says `extra_inputs: true`)",
        if unknown.len() == 1 { "" } else { "s" },
        unknown.join(", "),
    )))
}

/// Renders the declared defaults that are templates, each after the templated defaults it
/// reads; the values they read are data, never rendered again.
fn render_defaults(inputs: &mut Map<String, Value>, mut pending: Vec<&str>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let env = orc_pipeline::templates::environment();
    let template_error = |name: &str, e: &minijinja::Error| Error::InputTemplate {
        name: name.to_string(),
        message: e.detail().map_or_else(|| e.to_string(), str::to_string),
    };
    // What each default reads: names, and whether it reads `inputs`/`parameters` whole.
    let mut reads: HashMap<&str, (Vec<String>, bool)> = HashMap::new();
    for &name in &pending {
        let src = inputs[name].as_str().unwrap_or_default();
        let tmpl = env
            .template_from_str(src)
            .map_err(|e| template_error(name, &e))?;
        let mut names = Vec::new();
        let mut whole = false;
        for path in tmpl.undeclared_variables(true) {
            let mut parts = path.split('.');
            match (parts.next(), parts.next()) {
                (Some("inputs" | "parameters"), Some(n)) => names.push(n.to_string()),
                (Some("inputs" | "parameters"), None) => whole = true,
                (Some(n), _) => names.push(n.to_string()),
                (None, _) => {}
            }
        }
        reads.insert(name, (names, whole));
    }
    while !pending.is_empty() {
        let unblocked = |name: &str| {
            reads[name]
                .0
                .iter()
                .all(|r| r == name || !pending.contains(&r.as_str()))
        };
        // A default that reads every input waits for the others while it can.
        let ready = pending
            .iter()
            .position(|&n| unblocked(n) && (!reads[n].1 || pending.len() == 1))
            .or_else(|| pending.iter().position(|&n| unblocked(n)));
        let Some(i) = ready else {
            return Err(Error::InputTemplate {
                name: pending[0].to_string(),
                message: format!(
                    "the defaults of {} refer to each other",
                    pending
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let name = pending.remove(i);
        let src = inputs[name].as_str().unwrap_or_default().to_string();
        let mut ctx = inputs.clone();
        for ns in ["inputs", "parameters"] {
            if !ctx.contains_key(ns) {
                ctx.insert(ns.to_string(), Value::Object(inputs.clone()));
            }
        }
        let out = env
            .render_str(&src, orc_pipeline::templates::to_value(&ctx))
            .map_err(|e| template_error(name, &e))?;
        inputs.insert(name.to_string(), Value::String(out));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn plan(text: &str) -> Arc<Plan> {
        orc_pipeline::compile(text, &crate::tools::catalog())
            .unwrap()
            .plan
    }

    fn given(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    const STEP: &str = "steps:\n  - id: a\n    action: echo\n";

    #[test]
    fn undeclared_inputs_are_refused_unless_the_pipeline_takes_any() {
        let p = plan(&format!(
            "name: t\nparameters:\n  out_dir: ./out\n  greeting: hi\n{STEP}"
        ));
        let Err(Error::UndeclaredInput(msg)) =
            resolve_inputs(&p, &given(json!({"out_dirr": "/tmp/x", "zzz": 1})))
        else {
            panic!("undeclared inputs were accepted");
        };
        assert!(
            msg.contains("`out_dirr` (did you mean `out_dir`?)") && msg.contains("`zzz`"),
            "{msg}"
        );
        assert!(msg.contains("extra_inputs: true"), "{msg}");
        let p = plan(&format!("name: t\nextra_inputs: true\n{STEP}"));
        let inputs = resolve_inputs(&p, &given(json!({"anything": "{{ 7*7 }}"}))).unwrap();
        assert_eq!(inputs["anything"], "{{ 7*7 }}");
    }

    #[test]
    fn caller_values_are_data_and_defaults_render_over_them() {
        let p = plan(&format!(
            "name: t\nparameters:\n  full: \"{{{{ out }}}}/f\"\n  out: \"{{{{ base }}}}/x\"\n  base: ./b\n  x: 1\n  all: \"{{{{ inputs.base }}}}+{{{{ inputs.out }}}}\"\n{STEP}"
        ));
        let inputs = resolve_inputs(&p, &Map::new()).unwrap();
        assert_eq!(inputs["out"], "./b/x");
        assert_eq!(inputs["full"], "./b/x/f");
        assert_eq!(inputs["all"], "./b+./b/x");
        let inputs = resolve_inputs(
            &p,
            &given(json!({"base": "{{ 7*7 }}", "x": "{{ 'a' | file_exists }}"})),
        )
        .unwrap();
        assert_eq!(inputs["x"], "{{ 'a' | file_exists }}");
        assert_eq!(inputs["out"], "{{ 7*7 }}/x");
        assert_eq!(inputs["full"], "{{ 7*7 }}/x/f");
        // A caller's value replaces a templated default and is not rendered either.
        let inputs = resolve_inputs(&p, &given(json!({"out": "{{ base }}"}))).unwrap();
        assert_eq!(inputs["out"], "{{ base }}");
        assert_eq!(inputs["full"], "{{ base }}/f");
    }

    #[test]
    fn defaults_that_read_each_other_are_an_error() {
        let p = plan(&format!(
            "name: t\nparameters:\n  a: \"{{{{ b }}}}\"\n  b: \"{{{{ a }}}}\"\n{STEP}"
        ));
        let Err(Error::InputTemplate { message, .. }) = resolve_inputs(&p, &Map::new()) else {
            panic!("a cycle of defaults rendered");
        };
        assert!(message.contains("refer to each other"), "{message}");
        // Given one of them, the other renders over it.
        let inputs = resolve_inputs(&p, &given(json!({"a": "{{ b }}"}))).unwrap();
        assert_eq!(inputs["b"], "{{ b }}");
    }

    #[test]
    fn every_pipeline_takes_an_output_path() {
        let p = plan(&format!("id: maker\nname: t\n{STEP}"));
        let inputs = resolve_inputs(&p, &Map::new()).unwrap();
        assert_eq!(inputs["output_path"], "outputs/maker");
        // Undeclared, a caller may still set it.
        let inputs = resolve_inputs(&p, &given(json!({"output_path": "/tmp/o"}))).unwrap();
        assert_eq!(inputs["output_path"], "/tmp/o");
        // A declared default wins over orc's, and other defaults can read it.
        let p = plan(&format!(
            "id: maker\nname: t\ninputs:\n  output_path: {{ type: string, default: out }}\n  report: \"{{{{ output_path }}}}/r.md\"\n{STEP}"
        ));
        let inputs = resolve_inputs(&p, &Map::new()).unwrap();
        assert_eq!(inputs["output_path"], "out");
        assert_eq!(inputs["report"], "out/r.md");
    }
}
