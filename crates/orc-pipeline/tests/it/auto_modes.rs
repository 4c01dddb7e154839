//! AUTO tags checked without asking (`orc validate`), and tags in model fields answered by
//! the resolver's model pick instead of a question.

use std::sync::Mutex;

use orc_pipeline::{
    AutoRequest, AutoResolver, Code, Compiled, Diagnostics, Expected, ModelChoice, ModelPick,
    Param, StepKind, compile_with,
};

use crate::common::catalog;

/// Defers every question (or answers it: a list, or `7`), and picks `model` for model fields (or
/// fails with `refusal`), recording what it is asked.
struct Picker {
    defers: bool,
    model: Result<&'static str, &'static str>,
    asked: Mutex<Vec<String>>,
    picks: Mutex<Vec<AutoRequest>>,
}

impl Picker {
    fn new(defers: bool, model: Result<&'static str, &'static str>) -> Self {
        Picker {
            defers,
            model,
            asked: Mutex::default(),
            picks: Mutex::default(),
        }
    }
}

impl AutoResolver for Picker {
    fn resolve(&self, request: &AutoRequest) -> Result<String, String> {
        self.asked.lock().unwrap().push(request.instruction.clone());
        Ok(match request.expected {
            Expected::List => "[\"red\"]".to_owned(),
            _ => "7".to_owned(),
        })
    }

    fn pick_model(&self, request: &AutoRequest) -> Option<Result<ModelPick, String>> {
        self.picks.lock().unwrap().push(request.clone());
        Some(
            self.model
                .map(|m| ModelPick {
                    model: m.to_owned(),
                    reason: "cheapest".to_owned(),
                })
                .map_err(str::to_owned),
        )
    }

    fn defers(&self) -> bool {
        self.defers
    }
}

fn compile(text: &str, picker: &Picker) -> Result<Compiled, Diagnostics> {
    compile_with(text, &catalog(), Some(picker))
}

/// (code, field) of the findings with `code`s among `codes`.
fn found(d: &Diagnostics, codes: &[Code]) -> Vec<(Code, String)> {
    d.0.iter()
        .filter(|d| codes.contains(&d.code))
        .map(|d| (d.code, d.field.clone().unwrap_or_default()))
        .collect()
}

const TAGS: &str = r#"name: tags
steps:
  - id: each
    for_each: <AUTO>list three colours</AUTO>
    steps:
      - id: say
        action: echo
        parameters: { message: "<AUTO>a word</AUTO> {{ item }}" }
  - id: gen
    action: generate
    timeout: <AUTO type="integer">how long</AUTO>
    parameters:
      prompt: hi
      model: <AUTO task="analyze">Select a model for analysis</AUTO>
  - id: lone
    action: generate
    parameters:
      prompt: hi
      model: <AUTO>
  - id: req
    action: generate
    requires_model: '<AUTO task="summarize">quick</AUTO>'
    parameters: { prompt: hi }
"#;

#[test]
fn deferred_tags_are_listed_and_never_asked() {
    let picker = Picker::new(true, Ok("gpt-4o-mini"));
    let compiled = compile(TAGS, &picker).unwrap_or_else(|d| panic!("{}", d.render("t", TAGS)));
    assert!(picker.asked.lock().unwrap().is_empty(), "nothing asked");
    let listed = found(&compiled.findings, &[Code::I202]);
    assert_eq!(
        listed,
        vec![
            (Code::I202, "for_each".to_owned()),
            (Code::I202, "parameters.message".to_owned()),
            (Code::I202, "timeout".to_owned()),
        ]
    );
    let timeout = compiled
        .findings
        .0
        .iter()
        .find(|d| d.field.as_deref() == Some("timeout"))
        .unwrap();
    assert_eq!((timeout.pos.line, timeout.pos.col), (11, 14));
    assert!(
        timeout.message.contains("a whole number for `timeout`"),
        "{}",
        timeout.message
    );
    // The model fields are picked, even when the questions wait.
    assert_eq!(found(&compiled.findings, &[Code::I203]).len(), 3);
}

#[test]
fn model_fields_are_picked_not_asked() {
    let picker = Picker::new(false, Ok("llama3.2:1b"));
    let compiled = compile(TAGS, &picker).unwrap_or_else(|d| panic!("{}", d.render("t", TAGS)));
    let picks = picker.picks.lock().unwrap().clone();
    let paths: Vec<&str> = picks.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "steps.gen.parameters.model",
            "steps.lone.parameters.model",
            "steps.req.requires_model"
        ]
    );
    assert_eq!(picks[0].instruction, "Select a model for analysis");
    assert_eq!(
        picks[0].attributes,
        vec![("task".to_owned(), "analyze".to_owned())]
    );
    assert_eq!(picks[1].instruction, "");
    // Three questions (the list, the word, the timeout), none for a model.
    let asked = picker.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(!asked.iter().any(|q| q.contains("model")), "{asked:?}");
    let step = |id: &str| compiled.plan.steps.iter().find(|s| s.id == id).unwrap();
    let StepKind::Action(action) = &step("gen").kind else {
        panic!("not an action")
    };
    let Param::Lit(params) = &action.params else {
        panic!("not literal: {:?}", action.params)
    };
    assert_eq!(params["model"], "llama3.2:1b");
    assert_eq!(
        step("req").model,
        Some(ModelChoice::Named("llama3.2:1b".to_owned()))
    );
    assert_eq!(step("gen").timeout, Some(7.0));
    let picked = found(&compiled.findings, &[Code::I203]);
    assert_eq!(picked.len(), 3);
    assert!(compiled.findings.0.iter().any(|d| d.code == Code::I203
        && d.message
            == "AUTO tag `<AUTO task=\"analyze\">Select a model for analysis</AUTO>`: the router picks model `llama3.2:1b` (cheapest)"));
    assert_eq!(found(&compiled.findings, &[Code::I204]).len(), 3);
}

#[test]
fn a_pick_that_fails_or_a_type_the_field_cannot_take_is_an_error() {
    let picker = Picker::new(true, Err("no model has its key set"));
    let d = compile(TAGS, &picker).expect_err("must fail");
    let errors = found(&d, &[Code::E021]);
    assert_eq!(errors.len(), 3, "{}", d.render("t", TAGS));
    assert!(
        d.0.iter().any(|d| d
            .message
            .contains("no model can be picked: no model has its key set")),
        "{}",
        d.render("t", TAGS)
    );

    let text = "name: t\nsteps:\n  - id: each\n    for_each: <AUTO type=\"boolean\">which</AUTO>\n    steps:\n      - id: say\n        action: echo\n        parameters: { message: \"{{ item }}\" }\n";
    let picker = Picker::new(true, Ok("gpt-4o-mini"));
    let d = compile(text, &picker).expect_err("must fail");
    assert_eq!(
        found(&d, &[Code::E021]),
        vec![(Code::E021, "for_each".into())]
    );
    assert!(
        d.0[0]
            .message
            .ends_with("gives true or false, and `for_each` takes a JSON list"),
        "{}",
        d.0[0].message
    );
    // An integer fits a number; any type fits a field that takes any value.
    let text = "name: t\nsteps:\n  - id: s\n    action: echo\n    timeout: <AUTO type=\"integer\">t</AUTO>\n    parameters: { message: <AUTO type=\"list\">l</AUTO> }\n";
    compile(text, &picker).unwrap_or_else(|d| panic!("{}", d.render("t", text)));
}
