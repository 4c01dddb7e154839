//! Properties of the `orc` binary over generated pipelines (issue 18): `orc validate` and
//! `orc run` agree on whether a pipeline is valid, and every run ends with 0, 1 or 2 — never
//! a panic (101), a signal or a hang. Pipelines use only the filesystem, data and echo steps,
//! loops, conditions and routing, under the case's own temporary directory; some are broken
//! on purpose (a dependency that does not exist, a template that does not parse, an unknown
//! action, a timeout out of range, a cut in the YAML).

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::support::{Run, Sandbox};

/// The most a generated case may take, per command.
const LIMIT: Duration = Duration::from_secs(60);

/// What a text field holds: plain text, an input, another step's result, or a template that
/// may not render or parse.
#[derive(Debug, Clone)]
enum Text {
    Plain(String),
    Input,
    /// An earlier step's result (the input, for the first step).
    Step(usize),
    /// The last step's result: a cycle when that step depends on this one.
    Last,
    Broken(&'static str),
}

#[derive(Debug, Clone)]
enum Body {
    Write { file: u8, content: Text },
    Read { file: u8 },
    Echo(Text),
    Filter { min: i64 },
    Aggregate,
    ForEach { items: Vec<String>, parallel: u8 },
    While { until: u8, max: u8 },
    UnknownAction,
}

#[derive(Debug, Clone)]
struct Step {
    body: Body,
    /// The earlier steps it depends on (an index taken modulo its own); `None` is a step
    /// that does not exist.
    deps: Vec<Option<usize>>,
    condition: Option<&'static str>,
    on_failure: Option<&'static str>,
    timeout: Option<i64>,
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        16 => "[ -~]{0,16}".prop_map(Text::Plain),
        8 => Just(Text::Input),
        12 => (0usize..8).prop_map(Text::Step),
        1 => Just(Text::Last),
        1 => prop::sample::select(vec![
            "{{ nope }}",
            "{{ greeting | no_such_filter }}",
            "{{ greeting",
            "{% if %}",
            "{{ greeting ~ 1 / 0 }}",
            "{{ range(10) | join(',') }}",
        ])
        .prop_map(Text::Broken),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => (0u8..3, text()).prop_map(|(file, content)| Body::Write { file, content }),
        4 => (0u8..3).prop_map(|file| Body::Read { file }),
        6 => text().prop_map(Body::Echo),
        2 => (-1i64..3).prop_map(|min| Body::Filter { min }),
        2 => Just(Body::Aggregate),
        2 => (0u8..4, 1u8..4).prop_map(|(until, max)| Body::While { until, max }),
        2 => (prop::collection::vec("[a-z]{1,5}", 0..4), 1u8..3)
            .prop_map(|(items, parallel)| Body::ForEach { items, parallel }),
        1 => Just(Body::UnknownAction),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        body(),
        prop::collection::vec(
            prop_oneof![39 => (0usize..8).prop_map(Some), 1 => Just(None)],
            0..3,
        ),
        prop::option::weighted(
            0.25,
            prop_oneof![
                8 => prop::sample::select(vec![
                    "{{ greeting | length > 3 }}",
                    "false",
                    "len(greeting) > 100",
                    "true",
                    "not s0.success",
                ]),
                1 => prop::sample::select(vec!["greeting ==", "{{ nope }}"]),
            ],
        ),
        prop::option::weighted(
            0.3,
            prop_oneof![
                12 => prop::sample::select(vec!["continue", "skip", "fail"]),
                1 => Just("explode"),
            ],
        ),
        prop::option::weighted(0.05, prop::sample::select(vec![0i64, -1, 5, 5, 40_000_000])),
    )
        .prop_map(|(body, deps, condition, on_failure, timeout)| Step {
            body,
            deps,
            condition,
            on_failure,
            timeout,
        })
}

/// A JSON string: also a YAML double-quoted scalar.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A text field of step `at` of `n`.
fn render(t: &Text, at: usize, n: usize) -> String {
    let step = |j: usize| q(&format!("got {{{{ s{j}.result }}}}"));
    match t {
        Text::Plain(s) => q(s),
        Text::Input | Text::Step(_) if at == 0 => q("{{ greeting }}!"),
        Text::Input => q("{{ greeting }}!"),
        Text::Step(j) => step(j % at),
        Text::Last => step(n - 1),
        Text::Broken(t) => q(t),
    }
}

/// The pipeline's YAML text.
fn pipeline(steps: &[Step]) -> String {
    let n = steps.len();
    let mut y = String::from(
        "id: generated\nname: Generated\nparameters:\n  greeting: { type: string, default: \"hello\" }\nsteps:\n",
    );
    let path = |file: u8| q(&format!("{{{{ output_path }}}}/f{file}.txt"));
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(y, "  - id: s{i}");
        match &s.body {
            Body::Write { file, content } => {
                let _ = writeln!(
                    y,
                    "    tool: filesystem\n    action: write\n    parameters: {{ path: {}, content: {} }}",
                    path(*file),
                    render(content, i, n)
                );
            }
            Body::Read { file } => {
                let _ = writeln!(
                    y,
                    "    tool: filesystem\n    action: read\n    parameters: {{ path: {} }}",
                    path(*file)
                );
            }
            Body::Echo(t) => {
                let _ = writeln!(
                    y,
                    "    action: echo\n    parameters: {{ message: {} }}",
                    render(t, i, n)
                );
            }
            Body::Filter { min } => {
                let _ = writeln!(
                    y,
                    "    tool: data-processing\n    action: filter\n    parameters:\n      data: \"region,units\\nnorth,2\\nsouth,0\\n\"\n      criteria: {{ units: {{ gt: {min} }} }}"
                );
            }
            Body::Aggregate => {
                let _ = writeln!(
                    y,
                    "    tool: data-processing\n    action: aggregate\n    parameters:\n      data: '[{{\"r\": \"a\", \"u\": 1}}, {{\"r\": \"a\", \"u\": 2}}]'\n      group_by: r\n      aggregations: {{ u: \"sum:u\" }}"
                );
            }
            Body::ForEach { items, parallel } => {
                let list: Vec<String> = items.iter().map(|s| q(s)).collect();
                let _ = writeln!(
                    y,
                    "    for_each: [{}]\n    max_parallel: {parallel}\n    steps:\n      - id: s{i}_w\n        tool: filesystem\n        action: write\n        parameters: {{ path: {}, content: \"{{{{ item }}}}\" }}",
                    list.join(", "),
                    q(&format!(
                        "{{{{ output_path }}}}/loop{i}_{{{{ index }}}}.txt"
                    )),
                );
            }
            Body::While { until, max } => {
                let _ = writeln!(
                    y,
                    "    while: \"{{{{ iteration < {until} }}}}\"\n    max_iterations: {max}\n    steps:\n      - id: s{i}_tick\n        action: echo\n        parameters: {{ message: \"{{{{ iteration }}}}\" }}"
                );
            }
            Body::UnknownAction => {
                let _ = writeln!(
                    y,
                    "    tool: filesystem\n    action: explode\n    parameters: {{}}"
                );
            }
        }
        let deps: Vec<String> = s
            .deps
            .iter()
            .filter_map(|d| match d {
                Some(_) if i == 0 => None,
                Some(d) => Some(format!("s{}", d % i)),
                None => Some("ghost".to_owned()),
            })
            .collect();
        if !deps.is_empty() {
            let _ = writeln!(y, "    dependencies: [{}]", deps.join(", "));
        }
        if let Some(c) = s.condition {
            let _ = writeln!(y, "    condition: {}", q(c));
        }
        if let Some(p) = s.on_failure {
            let _ = writeln!(y, "    on_failure: {p}");
        }
        if let Some(t) = s.timeout {
            let _ = writeln!(y, "    timeout: {t}");
        }
    }
    y.push_str("outputs:\n  last: \"{{ greeting }}\"\n");
    y
}

/// A generated pipeline, and sometimes a cut at a fraction of its length.
fn case() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(step(), 1..7),
        prop::option::weighted(0.1, 0.0f64..1.0),
    )
        .prop_map(|(steps, cut)| {
            let text = pipeline(&steps);
            match cut {
                Some(f) => {
                    let mut at = (f * text.len() as f64) as usize;
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    text[..at].to_owned()
                }
                None => text,
            }
        })
}

/// Runs `command` to its end within [`LIMIT`]; a command still running then is killed and
/// the case fails.
fn finish(mut command: Command) -> Result<Run, TestCaseError> {
    let mut child: Child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestCaseError::fail(format!("cannot start orc: {e}")))?;
    let started = Instant::now();
    loop {
        if child
            .try_wait()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .is_some()
        {
            break;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestCaseError::fail(format!("orc ran past {LIMIT:?}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child
        .wait_with_output()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(output.into())
}

proptest! {
    // 64 cases, each two runs of the binary: `PROPTEST_CASES=1000` searches harder.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validate_and_run_agree_and_exit_0_1_or_2(text in case()) {
        let sandbox = Sandbox::new();
        let file = sandbox.file("p.yaml", &text);
        let file = file.to_str().unwrap_or_default();
        let mut validate = sandbox.command();
        validate.args(["validate", file]);
        let validated = finish(validate)?;
        prop_assert!(
            matches!(validated.code, 0 | 2),
            "orc validate exited {}:\n{text}\nstderr:\n{}", validated.code, validated.stderr
        );
        let mut run = sandbox.command();
        run.args(["run", file, "--quiet"]);
        let ran = finish(run)?;
        prop_assert!(
            matches!(ran.code, 0..=2),
            "orc run exited {}:\n{text}\nstderr:\n{}", ran.code, ran.stderr
        );
        prop_assert_eq!(
            validated.code == 2,
            ran.code == 2,
            "validate exited {} and run {}:\n{}\nvalidate said:\n{}\nrun said:\n{}",
            validated.code, ran.code, text, validated.stderr, ran.stderr
        );
        if ran.code != 2 {
            let doc = ran.doc();
            prop_assert_eq!(doc["success"].as_bool(), Some(ran.code == 0), "{}", ran.stdout);
        }
    }
}
