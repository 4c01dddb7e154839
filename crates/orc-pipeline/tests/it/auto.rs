//! AUTO tags answered at compile time through a resolver that records what it is asked.

use std::collections::HashMap;
use std::sync::Mutex;

use orc_pipeline::{
    AutoRequest, AutoResolver, Code, Compiled, Condition, Diagnostics, Expected, Param, StepKind,
    compile, compile_with,
};
use serde_json::json;

use crate::common::{catalog, catalog_without_models};

/// Answers from a table keyed by instruction, recording every request in order.
#[derive(Default)]
struct Recorder {
    answers: HashMap<String, Result<String, String>>,
    calls: Mutex<Vec<AutoRequest>>,
}

impl Recorder {
    fn new(answers: &[(&str, &str)]) -> Self {
        Recorder {
            answers: answers
                .iter()
                .map(|(q, a)| (q.to_string(), Ok(a.to_string())))
                .collect(),
            calls: Mutex::default(),
        }
    }

    fn failing(mut self, instruction: &str, message: &str) -> Self {
        self.answers
            .insert(instruction.to_string(), Err(message.to_string()));
        self
    }

    fn calls(&self) -> Vec<AutoRequest> {
        self.calls.lock().unwrap().clone()
    }
}

impl AutoResolver for Recorder {
    fn resolve(&self, request: &AutoRequest) -> Result<String, String> {
        self.calls.lock().unwrap().push(request.clone());
        self.answers
            .get(&request.instruction)
            .cloned()
            .unwrap_or_else(|| Err(format!("no answer for `{}`", request.instruction)))
    }
}

fn ok(text: &str, resolver: &Recorder) -> Compiled {
    match compile_with(text, &catalog(), Some(resolver)) {
        Ok(c) => c,
        Err(d) => panic!("must compile:\n{}", d.render("t.yaml", text)),
    }
}

fn err(text: &str, resolver: Option<&Recorder>) -> Diagnostics {
    let resolver = resolver.map(|r| r as &dyn AutoResolver);
    match compile_with(text, &catalog(), resolver) {
        Ok(_) => panic!("must fail:\n{text}"),
        Err(d) => d,
    }
}

/// The 1-based column of the `n`th (from 0) `needle` on line `line` of `text`, in characters.
fn col(text: &str, line: u32, needle: &str, n: usize) -> u32 {
    let l = text.lines().nth(line as usize - 1).unwrap();
    let byte = l.match_indices(needle).nth(n).unwrap().0;
    u32::try_from(l[..byte].chars().count() + 1).unwrap()
}

/// (code, line, col) of each diagnostic.
fn places(d: &Diagnostics) -> Vec<(Code, u32, u32)> {
    d.0.iter()
        .map(|d| (d.code, d.pos.line, d.pos.col))
        .collect()
}

fn lit(p: &Param) -> serde_json::Value {
    match p {
        Param::Lit(v) => v.clone(),
        other => panic!("not a literal: {other:?}"),
    }
}

fn params(c: &Compiled, step: usize) -> serde_json::Value {
    match &c.plan.steps[step].kind {
        StepKind::Action(a) => lit(&a.params),
        other => panic!("not an action: {other:?}"),
    }
}

#[test]
fn whole_string_tags_take_the_type_of_their_field() {
    let text = r#"name: typed
steps:
  - id: each
    for_each: <AUTO>list three colours</AUTO>
    max_parallel: <AUTO>how many at once</AUTO>
    steps:
      - id: say
        action: echo
        parameters: { message: "{{ item }}" }
  - id: analyze
    tool: terminal
    action: execute
    timeout: <AUTO>how many seconds</AUTO>
    max_retries: <AUTO>how many retries</AUTO>
    condition: <AUTO>should it run</AUTO>
    parameters:
      command: <AUTO>a command</AUTO>
      count: <AUTO>a count</AUTO>
      size: <AUTO type="integer">a size</AUTO>
      options: <AUTO>some options</AUTO>
"#;
    let r = Recorder::new(&[
        ("list three colours", "[\"red\", \"green\", \"blue\"]"),
        ("how many at once", "2"),
        ("how many seconds", "2.5"),
        ("how many retries", "3"),
        ("should it run", "yes"),
        ("a command", "ls -l"),
        ("a count", "7"),
        ("a size", " 12\n"),
        ("some options", "{\"verbose\": true}"),
    ]);
    let c = ok(text, &r);
    let StepKind::ForEach(f) = &c.plan.steps[0].kind else {
        panic!("not a loop")
    };
    assert_eq!(lit(&f.items), json!(["red", "green", "blue"]));
    assert_eq!(f.max_parallel, 2);
    let s = &c.plan.steps[1];
    assert_eq!(s.timeout, Some(2.5));
    assert_eq!(s.max_retries, 3);
    assert!(matches!(s.condition, Some(Condition::Literal(true))));
    assert_eq!(
        params(&c, 1),
        json!({"command": "ls -l", "count": 7, "size": 12, "options": {"verbose": true}})
    );
    let expected: Vec<(String, Expected, String)> = r
        .calls()
        .into_iter()
        .map(|c| (c.instruction, c.expected, c.path))
        .collect();
    let want = [
        ("list three colours", Expected::List, "steps.each.for_each"),
        (
            "how many at once",
            Expected::Integer,
            "steps.each.max_parallel",
        ),
        (
            "how many seconds",
            Expected::Number,
            "steps.analyze.timeout",
        ),
        (
            "how many retries",
            Expected::Integer,
            "steps.analyze.max_retries",
        ),
        (
            "should it run",
            Expected::Boolean,
            "steps.analyze.condition",
        ),
        (
            "a command",
            Expected::Any,
            "steps.analyze.parameters.command",
        ),
        ("a count", Expected::Any, "steps.analyze.parameters.count"),
        ("a size", Expected::Integer, "steps.analyze.parameters.size"),
        (
            "some options",
            Expected::Any,
            "steps.analyze.parameters.options",
        ),
    ];
    let want: Vec<(String, Expected, String)> = want
        .iter()
        .map(|(i, e, p)| (i.to_string(), *e, p.to_string()))
        .collect();
    assert_eq!(expected, want);
}

#[test]
fn inline_tags_are_substituted_as_text() {
    let text = r#"name: inline
steps:
  - id: greet
    action: echo
    parameters:
      message: "Hello <AUTO>a name</AUTO>, you are <AUTO type="integer">an age</AUTO> today; {{ inputs.x }}"
parameters:
  x: 1
"#;
    let r = Recorder::new(&[("a name", "Ada\n"), ("an age", "36")]);
    let c = ok(text, &r);
    let StepKind::Action(a) = &c.plan.steps[0].kind else {
        panic!()
    };
    let Param::Map(entries) = &a.params else {
        panic!("{:?}", a.params)
    };
    let Param::Tmpl(id) = &entries[0].1 else {
        panic!()
    };
    assert_eq!(
        c.plan.templates[id.0 as usize],
        "Hello Ada, you are 36 today; {{ inputs.x }}"
    );
    let kinds: Vec<Expected> = r.calls().iter().map(|c| c.expected).collect();
    assert_eq!(kinds, [Expected::Text, Expected::Integer]);
}

#[test]
fn nested_tags_are_answered_first_and_attributes_are_passed() {
    let text = r#"name: nested
steps:
  - id: pick
    action: echo
    parameters:
      message: <AUTO task="choose" tone='dry'>pick one of <AUTO>list two fruits</AUTO>, then say why</AUTO>
"#;
    let r = Recorder::new(&[
        ("list two fruits", "apple, pear"),
        ("pick one of apple, pear, then say why", "pear: it is ripe"),
    ]);
    let c = ok(text, &r);
    assert_eq!(params(&c, 0), json!({"message": "pear: it is ripe"}));
    let calls = r.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].instruction, "list two fruits");
    assert_eq!(calls[0].expected, Expected::Text);
    assert!(calls[0].attributes.is_empty());
    assert_eq!(calls[1].expected, Expected::Any);
    assert_eq!(
        calls[1].attributes,
        vec![
            ("task".to_string(), "choose".to_string()),
            ("tone".to_string(), "dry".to_string())
        ]
    );
    assert_eq!(calls[1].path, "steps.pick.parameters.message");
}

#[test]
fn each_question_is_asked_once() {
    let text = r#"name: memo
steps:
  - id: a
    action: echo
    parameters: { message: <AUTO>a word</AUTO>, again: <AUTO>a word</AUTO>, inline: "x <AUTO>a word</AUTO>" }
  - id: b
    action: echo
    max_retries: <AUTO>a word</AUTO>
    parameters: { message: <AUTO>a word</AUTO> }
"#;
    let r = Recorder::new(&[("a word", "5")]);
    let c = ok(text, &r);
    assert_eq!(
        params(&c, 0),
        json!({"message": 5, "again": 5, "inline": "x 5"})
    );
    assert_eq!(c.plan.steps[1].max_retries, 5);
    // Any, Text and Integer: three questions, each asked once.
    let mut kinds: Vec<String> = r
        .calls()
        .iter()
        .map(|c| format!("{:?}", c.expected))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["Any", "Integer", "Text"]);
}

#[test]
fn without_a_resolver_tags_are_errors_at_their_place() {
    let text = "name: none\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: \"x <AUTO>pick one: a, b, or maybe something else entirely, whichever</AUTO>\", n: <AUTO>a number</AUTO> }\n";
    let d = match compile(text, &catalog()) {
        Ok(_) => panic!("compiled"),
        Err(d) => d,
    };
    assert_eq!(
        places(&d),
        [
            (Code::E019, 5, col(text, 5, "<AUTO>", 0)),
            (Code::E019, 5, col(text, 5, "<AUTO>", 1))
        ],
        "{}",
        d.render("t.yaml", text)
    );
    let first = &d.0[0];
    assert_eq!(
        first.message,
        "AUTO tag `<AUTO>pick one: a, b, or maybe something else…</AUTO>` needs a model to answer it, and none is configured"
    );
    assert_eq!(first.step.as_deref(), Some("a"));
    assert_eq!(first.field.as_deref(), Some("parameters.message"));
    assert!(
        first
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("configure a model")
    );
}

#[test]
fn answers_that_do_not_fit_are_errors_naming_tag_field_and_answer() {
    let text = r#"name: bad
steps:
  - id: a
    action: echo
    max_retries: <AUTO>how many retries</AUTO>
    timeout: <AUTO>how long</AUTO>
    condition: <AUTO>whether</AUTO>
  - id: b
    for_each: <AUTO>the items</AUTO>
    steps:
      - id: c
        action: echo
        parameters: { message: <AUTO>broken</AUTO> }
"#;
    let r = Recorder::new(&[
        ("how many retries", "three"),
        ("how long", "-1"),
        ("whether", "perhaps"),
        ("the items", "a, b, c"),
    ])
    .failing("broken", "the model timed out");
    let d = err(text, Some(&r));
    let got: Vec<(Code, u32, String)> =
        d.0.iter()
            .map(|d| (d.code, d.pos.line, d.message.clone()))
            .collect();
    assert_eq!(
        got,
        [
            (
                Code::E021,
                5,
                "AUTO tag `<AUTO>how many retries</AUTO>` must give a whole number for `max_retries`, and the answer was `three`".to_string()
            ),
            // The answer is a number, out of range for the field.
            (
                Code::E014,
                6,
                "`timeout` must be a positive number of seconds, at most 31536000 (a year), not -1"
                    .to_string()
            ),
            (
                Code::E021,
                7,
                "AUTO tag `<AUTO>whether</AUTO>` must give true or false for `condition`, and the answer was `perhaps`".to_string()
            ),
            (
                Code::E021,
                9,
                "AUTO tag `<AUTO>the items</AUTO>` must give a JSON list for `for_each`, and the answer was `a, b, c`".to_string()
            ),
            (
                Code::E021,
                13,
                "AUTO tag `<AUTO>broken</AUTO>` got no answer: the model timed out".to_string()
            ),
        ],
        "{}",
        d.render("t.yaml", text)
    );
    assert_eq!(d.0[4].step.as_deref(), Some("c"));
    assert_eq!(d.0[4].field.as_deref(), Some("parameters.message"));
}

#[test]
fn templates_and_unknown_types_cannot_be_answered() {
    let text = r#"name: t
steps:
  - id: a
    action: echo
    timeout: <AUTO>seconds to summarise {{ inputs.text }}</AUTO>
    parameters:
      n: <AUTO type="colour">a colour</AUTO>
      m: <AUTO>answer with a template</AUTO>
parameters:
  text: hi
"#;
    let r = Recorder::new(&[("answer with a template", "{{ secrets }}")]);
    let d = err(text, Some(&r));
    assert_eq!(
        places(&d),
        [
            (Code::E019, 5, 14),
            (Code::E020, 7, 10),
            (Code::E021, 8, 10)
        ],
        "{}",
        d.render("t.yaml", text)
    );
    assert!(d.0[0].message.contains("uses a template"), "{:?}", d.0[0]);
    assert_eq!(r.calls().len(), 1);
}

#[test]
fn tag_content_never_breaks_the_yaml() {
    let text = "name: yaml\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: <AUTO>pick one: a, b}, [c] # not a comment</AUTO>, other: <AUTO>x: 'y\"</AUTO> }\n  - id: b\n    action: echo\n    parameters:\n      message: <AUTO>a tag\n  over: three\n    lines</AUTO>\n";
    let r = Recorder::new(&[
        ("pick one: a, b}, [c] # not a comment", "b"),
        ("x: 'y\"", "z"),
        ("a tag\n  over: three\n    lines", "done"),
    ]);
    let c = ok(text, &r);
    assert_eq!(params(&c, 0), json!({"message": "b", "other": "z"}));
    assert_eq!(params(&c, 1), json!({"message": "done"}));
}

#[test]
fn positions_after_tags_are_where_they_are_written() {
    // A template error after a tag on the same line, and an unknown key after a tag over
    // several lines: both at their place in the file as written.
    let text = "name: pos\nsteps:\n  - id: a\n    action: echo\n    parameters: { m: <AUTO>a long instruction, with commas</AUTO>, n: \"{{ nope }}\" }\n  - id: b\n    action: echo\n    parameters:\n      m: <AUTO>one\n        two\n        three</AUTO>\n    colour: red\n";
    let r = Recorder::new(&[
        ("a long instruction, with commas", "x"),
        ("one\n        two\n        three", "y"),
    ]);
    let d = err(text, Some(&r));
    assert_eq!(
        places(&d),
        [
            (Code::E011, 5, col(text, 5, "nope", 0)),
            (Code::E013, 12, 5)
        ],
        "{}",
        d.render("t.yaml", text)
    );
    // And a YAML error after a tag.
    let text = "name: pos\nsteps: [ <AUTO>a, b</AUTO>, [ ]\n";
    let d = err(text, Some(&r));
    assert_eq!(d.0.len(), 1, "{d:?}");
    assert_eq!(d.0[0].code, Code::E001);
    assert_eq!(d.0[0].pos.line, 2, "{d:?}");
}

#[test]
fn an_auto_action_is_a_prompt_and_only_its_nested_tags_are_asked() {
    let text = r#"name: prompt
steps:
  - id: write
    action: <AUTO>Write a poem about <AUTO>a subject</AUTO> for {{ inputs.who }}</AUTO>
parameters:
  who: Ada
"#;
    let r = Recorder::new(&[("a subject", "the sea")]);
    let c = ok(text, &r);
    let StepKind::Action(a) = &c.plan.steps[0].kind else {
        panic!()
    };
    assert!(a.tool.is_none());
    assert_eq!(lit(&a.action), json!("generate"));
    let Param::Map(entries) = &a.params else {
        panic!("{:?}", a.params)
    };
    assert_eq!(entries[0].0, "prompt");
    let Param::Tmpl(id) = &entries[0].1 else {
        panic!()
    };
    assert_eq!(
        c.plan.templates[id.0 as usize],
        "Write a poem about the sea for {{ inputs.who }}"
    );
    assert_eq!(r.calls().len(), 1);
    // It is a model step: without models it does not compile, resolver or not.
    let d = match compile_with(text, &catalog_without_models(), Some(&r)) {
        Ok(_) => panic!("compiled without models"),
        Err(d) => d,
    };
    assert_eq!(places(&d), [(Code::E016, 4, 13)]);
}

#[test]
fn tags_outside_steps_are_answered_too() {
    let text = r#"name: <AUTO>a name</AUTO>
metadata:
  default_timeout: <AUTO>seconds</AUTO>
outputs:
  summary: "<AUTO>a word</AUTO> {{ a.result }}"
steps:
  - id: a
    action: echo
    parameters: { message: hi }
"#;
    let r = Recorder::new(&[
        ("a name", "Named"),
        ("seconds", "30"),
        ("a word", "Result:"),
    ]);
    let c = ok(text, &r);
    assert_eq!(c.plan.name, "Named");
    assert_eq!(c.plan.default_timeout, Some(30.0));
    let (_, Param::Tmpl(id)) = &c.plan.outputs[0] else {
        panic!()
    };
    assert_eq!(c.plan.templates[id.0 as usize], "Result: {{ a.result }}");
    let paths: Vec<String> = r.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        ["name", "metadata.default_timeout", "outputs.summary"]
    );
}

#[test]
fn a_broken_tag_is_reported_once_with_its_place() {
    let text = "name: t\nsteps:\n  - id: a\n    action: echo\n    max_retries: <AUTO>how many\n";
    let r = Recorder::new(&[]);
    let d = err(text, Some(&r));
    assert_eq!(
        places(&d),
        [(Code::E020, 5, 18)],
        "{}",
        d.render("t.yaml", text)
    );
    assert!(r.calls().is_empty());
}
