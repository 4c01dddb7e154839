//! py-orc's step and input keys and its model actions, through the real binary, on pipelines
//! shaped like py-orc's examples: `foreach` with `parallel`/`max_concurrent` and a per-item
//! condition, `while` on an action step, `max_iterations` as text, outputs as a list and
//! `enhanced_outputs`, input `choices`/`validation`/`range`, defaults that alias a spec, step
//! `inputs`/`outputs`, `llm_generate`/`llm_call`/`generate-structured`/`debug`, and prose
//! actions on tools.

use orc_fake_provider::{Behaviour, Endpoint};
use serde_json::json;

use crate::models::{Fake, KEY_VAR};
use crate::support::Sandbox;

/// As `examples/platform/cross_platform_compatibility.yaml` writes it: one action mapped over
/// the items, a condition on the item, parallel with a limit from an input.
const FANOUT: &str = r#"id: fanout
name: Fan out
parameters:
  platforms:
    type: array
    default: [linux, macos, windows, beos]
  limit:
    type: integer
    default: 2
steps:
  - id: per_platform
    tool: filesystem
    action: write
    foreach: "{{ platforms }}"
    parallel: true
    max_concurrent: "{{ limit }}"
    condition: "{{ item in ['linux', 'macos', 'windows'] }}"
    parameters:
      path: "{{ output_path }}/{{ item }}.txt"
      content: "{{ index }}:{{ item }}"
  - id: not_now
    action: echo
    foreach: [a, b]
    condition: "{{ limit > 5 }}"
    parameters:
      message: "{{ item }}"
  - id: summary
    action: echo
    parameters:
      message: "{{ per_platform.result | select | list | length }} written"
outputs:
  written: "{{ summary.result }}"
"#;

#[test]
fn foreach_maps_one_action_over_the_items_with_a_condition_per_item() {
    let sb = Sandbox::new();
    let p = sb.file("fanout.yaml", FANOUT);
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    for (i, name) in ["linux", "macos", "windows"].iter().enumerate() {
        assert_eq!(
            sb.read(&format!("outputs/fanout/{name}.txt")),
            format!("{i}:{name}")
        );
    }
    assert!(!sb.path("outputs/fanout/beos.txt").exists());
    // The item the condition refuses is skipped; the loop's result lists each iteration's.
    let steps = &doc["steps"];
    assert_eq!(steps["per_platform_3_per_platform"]["status"], "skipped");
    assert_eq!(
        steps["per_platform_3_per_platform"]["reason"],
        "condition_false"
    );
    let results = steps["per_platform"]["value"]["result"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0]["path"].as_str().unwrap().ends_with("linux.txt"));
    assert!(results[3].is_null());
    // A condition that reads no loop name guards the whole loop.
    assert_eq!(steps["not_now"]["status"], "skipped");
    assert!(steps.get("not_now_0_not_now").is_none());
    assert_eq!(doc["outputs"]["written"], "3 written");
}

#[test]
fn foreach_limit_from_a_template_is_checked_when_the_loop_starts() {
    let sb = Sandbox::new();
    let p = sb.file("fanout.yaml", FANOUT);
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "limit=0"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    let err = doc["steps"]["per_platform"]["error"].as_str().unwrap();
    assert!(
        err.contains("max_concurrent") && err.contains("`0` is not a whole number of at least 1"),
        "{err}"
    );
}

#[test]
fn foreach_and_loop_keys_in_error_are_placed() {
    let sb = Sandbox::new();
    let p = sb.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    action: echo\n    foreach: [1]\n    max_parallel: 2\n    max_concurrent: 3\n    parameters: { message: x }\n  - id: b\n    action: echo\n    max_concurrent: 2\n  - id: c\n    action: echo\n    parallel: true\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:7:21")
            && r.stderr
                .contains("both `max_parallel` and `max_concurrent`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bad.yaml:11:21")
            && r.stderr
                .contains("`max_concurrent` does not belong on this kind of step"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bad.yaml:14:15")
            && r.stderr
                .contains("`parallel` has no effect on a step that is not a loop"),
        "{}",
        r.stderr
    );
}

/// As `examples/control_flow_while_loop.yaml` and `enhanced_until_conditions_demo.yaml` write
/// them: `max_iterations` from an input, a `while` step with its own action, outputs as a list
/// and `enhanced_outputs` beside them.
const LOOPS: &str = r#"id: loops
name: Loops
parameters:
  rounds:
    type: integer
    default: 3
steps:
  - id: tick
    action: echo
    while: "true"
    max_iterations: "{{ rounds }}"
    parameters:
      message: "tick {{ iteration }}"
  - id: counted
    while: "{{ iteration < 10 }}"
    max_iterations: "2"
    steps:
      - id: inner
        action: echo
        parameters: { message: "{{ iteration }}" }
outputs:
  - name: last
    value: "{{ tick.result }}"
    description: What the loop said
enhanced_outputs:
  last:
    description: What the loop said, last
    value: "{{ tick.result }}"
    type: auto-detect
  rounds_run:
    description: How many rounds
    value: "{{ rounds }}"
    type: integer
"#;

#[test]
fn while_on_an_action_step_with_max_iterations_as_text_and_outputs_as_a_list() {
    let sb = Sandbox::new();
    let p = sb.file("loops.yaml", LOOPS);
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", "rounds=4"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    let steps = &doc["steps"];
    for k in 0..4 {
        assert_eq!(
            steps[format!("tick_{k}_tick")]["value"]["result"],
            format!("tick {k}")
        );
    }
    assert!(steps.get("tick_4_tick").is_none());
    assert!(steps.get("counted_1_inner").is_some());
    assert!(steps.get("counted_2_inner").is_none());
    assert_eq!(doc["outputs"]["rounds_run"], 4);
    assert_eq!(
        doc["output_specs"],
        json!([
            { "name": "last", "description": "What the loop said", "type": null },
            { "name": "last", "description": "What the loop said, last", "type": "auto-detect" },
            { "name": "rounds_run", "description": "How many rounds", "type": "integer" }
        ])
    );
}

#[test]
fn enhanced_outputs_that_disagree_with_outputs_are_a_warning_and_a_bad_shape_an_error() {
    let sb = Sandbox::new();
    let p = sb.file(
        "eo.yaml",
        "name: eo\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: x }\noutputs:\n  r: \"{{ a.result }}\"\nenhanced_outputs:\n  r:\n    value: \"{{ a.success }}\"\n  s:\n    value: 1\n    colour: red\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("eo.yaml:10:12") && r.stderr.contains("differs from `outputs.r`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("eo.yaml:13:5") && r.stderr.contains("`colour` on an output"),
        "{}",
        r.stderr
    );
}

/// As py-orc's converted examples (`examples/enhanced/*`) declare inputs: the spec under
/// `parameters`, and under `inputs` a spec whose default is an alias of it.
const INPUTS: &str = r#"id: inputs
name: Inputs
parameters:
  mode: &mode
    type: string
    default: basic
    choices: [basic, full]
  topic: &topic
    type: string
    required: true
    example: "artificial intelligence"
    validation:
      min_length: 3
      pattern: "[a-z ]+"
  depth:
    type: integer
    default: 5
    range: [1, 10]
  ratio:
    type: float
    default: 0.5
  formats:
    type: array
    default: [markdown]
    validation:
      allowed_values: [markdown, pdf, html]
inputs:
  mode:
    type: string
    default: *mode
    description: "Parameter: mode"
    required: false
  topic:
    type: string
    default: *topic
    required: false
steps:
  - id: show
    action: echo
    parameters:
      message: "{{ mode }} {{ topic }} {{ depth }} {{ ratio }}"
outputs:
  said: "{{ show.result }}"
"#;

#[test]
fn input_choices_validation_range_and_aliased_specs() {
    let sb = Sandbox::new();
    let p = sb.file("inputs.yaml", INPUTS);
    let path = p.to_str().unwrap();
    let ok = sb.orc(&["run", path, "-i", "topic=rust"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.doc()["outputs"]["said"], "basic rust 5 0.5");

    // The aliased spec declares the input: `topic` is required, `mode` has its choices.
    let missing = sb.orc(&["run", path]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("missing required input `topic`"),
        "{}",
        missing.stderr
    );
    for (arg, says) in [
        (
            "mode=fast",
            "input `mode`: `fast` is not one of its choices: `basic`, `full`",
        ),
        (
            "topic=ai",
            "input `topic`: it has 2 characters, fewer than `min_length` 3",
        ),
        (
            "topic=Rust!",
            "input `topic`: `Rust!` does not match the pattern `[a-z ]+`",
        ),
        ("depth=11", "input `depth`: 11 is more than the maximum 10"),
    ] {
        let r = sb.orc(&["run", path, "-i", "topic=rust", "-i", arg]);
        assert_eq!(r.code, 2, "{arg}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{arg}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{arg}: nothing runs");
    }
}

#[test]
fn an_input_default_outside_its_choices_is_placed() {
    let sb = Sandbox::new();
    let p = sb.file(
        "d.yaml",
        "name: d\nparameters:\n  mode:\n    type: string\n    default: fast\n    choices: [basic, full]\n  n:\n    type: integer\n    validation: { most: 3 }\nsteps:\n  - id: a\n    action: echo\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("d.yaml:5:14") && r.stderr.contains("the default of `mode` is refused"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("d.yaml:9:19") && r.stderr.contains("the validation rule `most`"),
        "{}",
        r.stderr
    );
}

#[test]
fn step_inputs_are_its_parameters_and_its_outputs_a_declaration() {
    let sb = Sandbox::new();
    let p = sb.file(
        "s.yaml",
        "id: s\nname: s\nsteps:\n  - id: save\n    tool: filesystem\n    action: write\n    inputs:\n      path: \"{{ output_path }}/x.txt\"\n      content: hi\n    outputs:\n      file: { type: string, description: the file }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("outputs/s/x.txt"), "hi");

    let both = sb.file(
        "both.yaml",
        "name: b\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: x }\n    inputs: { message: y }\n",
    );
    let r = sb.orc(&["validate", both.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("both.yaml:6:5") && r.stderr.contains("both `parameters` and `inputs`"),
        "{}",
        r.stderr
    );
}

/// As `examples/simple_timeout_test.yaml` and `minimal_error_test.yaml` write them: prose
/// where the tool's action goes.
#[test]
fn prose_actions_on_tools_run_the_action_they_stand_for() {
    let sb = Sandbox::new();
    let p = sb.file(
        "prose.yaml",
        "id: prose\nname: prose\nsteps:\n  - id: test_timeout\n    action: \"Sleep for 5 seconds to test timeout\"\n    tool: python-executor\n    parameters:\n      code: |\n        import time\n        time.sleep(5)\n    timeout: 1\n    on_failure: continue\n  - id: file_write_test\n    action: \"Write test file\"\n    tool: filesystem\n    parameters:\n      action: write\n      path: \"{{ output_path }}/test_output.txt\"\n      content: \"Error handling test successful\"\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let doc = r.doc();
    assert_eq!(doc["steps"]["test_timeout"]["action"], "execute");
    assert_eq!(
        doc["steps"]["test_timeout"]["timed_out"], true,
        "{}",
        r.stderr
    );
    assert_eq!(
        sb.read("outputs/prose/test_output.txt"),
        "Error handling test successful"
    );
    // A tool with several actions and none named: the prose cannot be told.
    let vague = sb.file(
        "vague.yaml",
        "name: v\nsteps:\n  - id: a\n    tool: filesystem\n    action: \"Tidy the files\"\n    parameters: { path: x }\n",
    );
    let r = sb.orc(&["validate", vague.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("vague.yaml:5:13")
            && r.stderr
                .contains("tool `filesystem` has no action `Tidy the files`"),
        "{}",
        r.stderr
    );
}

#[test]
fn py_orc_model_actions_and_debug() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer("Extract sources", r#"{"sources": ["a", "b"]}"#)
            .with_answer("Rate the quality", "0.9"),
    );
    let sb = Sandbox::new();
    let base = fake.provider().openai_base_url();
    let config = sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: fake-small\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n"
        ),
    );
    let p = sb.file(
        "actions.yaml",
        r#"id: actions
name: actions
steps:
  - id: initialize
    action: debug
    parameters:
      message: "Starting: value = {{ 1 * 2 }}"
  - id: draft
    action: llm_generate
    parameters:
      prompt: Write a short paragraph
      model: fake-small
      max_tokens: 50
  - id: rate
    action: llm_call
    parameters:
      prompt: "Rate the quality of {{ draft.result }}"
      temperature: 0
  - id: sources
    action: generate-structured
    parameters:
      prompt: Extract sources from the text
      schema:
        type: object
        properties:
          sources: { type: array, items: { type: string } }
        required: [sources]
      max_completion_tokens: 100
outputs:
  rating: "{{ rate.result }}"
  count: "{{ sources.result.sources | length }}"
  said: "{{ initialize.result }}"
"#,
    );
    let r = crate::models::orc(
        &sb,
        &[
            "-v",
            "--config",
            config.to_str().unwrap(),
            "run",
            p.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["rating"], 0.9);
    assert_eq!(doc["outputs"]["count"], 2);
    assert_eq!(doc["outputs"]["said"], "Starting: value = 2");
    assert_eq!(doc["steps"]["draft"]["action"], "generate");
    assert_eq!(doc["steps"]["sources"]["action"], "generate_structured");
    assert!(
        r.stderr.contains("debug: Starting: value = 2"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fake.provider()
            .stats()
            .requests_to(Endpoint::ChatCompletions),
        3
    );
}

/// As `examples/control_flow_for_loop.yaml` and `control_flow_while_loop.yaml` write them:
/// py-orc's `{{ $item }}` spellings in a `for_each` body, and `{{ <loop>.iteration }}` in a
/// `while` body, which py-orc replaces with the loop variable and the iteration's number.
const LOOP_SPELLINGS: &str = r#"id: spellings
name: Loop spellings
parameters:
  files: [a.txt, b.txt]
steps:
  - id: per_file
    for_each: "{{ files }}"
    steps:
      - id: write
        tool: filesystem
        action: write
        parameters:
          path: "{{ output_path }}/{{ $item }}"
          content: "{{$index}} {{ $is_first }} {{ $is_last }}"
  - id: rounds
    while: "{{ iteration < 2 }}"
    steps:
      - id: note
        action: echo
        parameters:
          message: "round {{ rounds.iteration }}/{{rounds.iteration}}"
outputs:
  last: "{{ rounds_1_note.result }}"
"#;

#[test]
fn dollar_loop_names_and_a_while_loops_own_iteration_render_as_py_orc_replaces_them() {
    let sb = Sandbox::new();
    let p = sb.file("spellings.yaml", LOOP_SPELLINGS);
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.read("outputs/spellings/a.txt"), "0 True False");
    assert_eq!(sb.read("outputs/spellings/b.txt"), "1 False True");
    let doc = r.doc();
    assert_eq!(
        doc["steps"]["rounds_0_note"]["value"]["result"],
        "round 0/0"
    );
    assert_eq!(doc["outputs"]["last"], "round 1/1");
}

#[test]
fn dollar_names_outside_py_orcs_forms_and_a_loop_named_outside_its_body_stay_errors() {
    let sb = Sandbox::new();
    let p = sb.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: l\n    for_each: [1]\n    steps:\n      - id: a\n        action: echo\n        parameters: { message: \"{{ $item | upper }}\" }\n  - id: w\n    while: \"{{ iteration < 1 }}\"\n    steps:\n      - id: b\n        action: echo\n        parameters: { message: \"{{ w.iteration + 1 }}\" }\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:8:")
            && r.stderr.contains("E010")
            && r.stderr.contains("refers to the loop itself"),
        "{}",
        r.stderr
    );
}

/// As `examples/validation_pipeline.yaml` writes it: `tool: validation`, `action:
/// extract_structured` asks the model for the text's data; the result is py-orc's
/// `{valid, data, errors, warnings, model_used}`, and data off the schema is `valid: false`.
#[test]
fn validation_extract_structured_asks_the_model_and_checks_the_answer() {
    let fake = Fake::start(
        Behaviour::default()
            .with_answer(
                "John Doe",
                r#"Here it is: {"name": "John Doe", "age": 30, "email": "john@example.com"} as asked"#,
            )
            .with_answer("Jane Roe", r#"{"name": "Jane Roe"}"#)
            .with_answer("Nobody", "I cannot find anything"),
    );
    let sb = Sandbox::new();
    let base = fake.provider().openai_base_url();
    let config = sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: gpt-4o-mini\n    provider: openai\n    model: fake-gpt\n    base_url: {base}\n    api_key_env: {KEY_VAR}\n"
        ),
    );
    let step = |id: &str, text: &str| {
        format!(
            "  - id: {id}\n    tool: validation\n    action: extract_structured\n    parameters:\n      text: \"{text}, age 30, email: someone@example.com\"\n      schema:\n        type: object\n        properties:\n          name: {{ type: string }}\n          age: {{ type: integer }}\n          email: {{ type: string }}\n        required: [\"name\", \"email\"]\n      model: \"gpt-4o-mini\"\n"
        )
    };
    let p = sb.file(
        "extract.yaml",
        &format!(
            "id: extract\nname: extract\nsteps:\n{}{}{}    on_error: continue\noutputs:\n  name: \"{{{{ john.result.data.name }}}}\"\n",
            step("john", "John Doe"),
            step("jane", "Jane Roe"),
            step("nobody", "Nobody")
        ),
    );
    let r = crate::models::orc(
        &sb,
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            p.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.doc();
    let john = &doc["steps"]["john"]["value"]["result"];
    assert_eq!(john["valid"], true, "{john}");
    assert_eq!(john["data"]["age"], 30);
    assert_eq!(john["errors"], serde_json::json!([]));
    assert_eq!(john["model_used"], "gpt-4o-mini");
    assert_eq!(doc["outputs"]["name"], "John Doe");
    let jane = &doc["steps"]["jane"];
    assert_eq!(jane["status"], "completed");
    assert_eq!(jane["value"]["result"]["valid"], false);
    assert!(
        jane["value"]["result"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("\"email\" is a required property"),
        "{jane}"
    );
    let nobody = &doc["steps"]["nobody"];
    assert_eq!(nobody["status"], "failed");
    assert!(
        nobody["error"]
            .as_str()
            .unwrap()
            .contains("could not read the answer of gpt-4o-mini as JSON"),
        "{nobody}"
    );
    assert_eq!(
        fake.provider()
            .stats()
            .requests_to(Endpoint::ChatCompletions),
        3
    );
}

/// As `examples/data_processing.yaml` writes it: `validation_level` (which py-orc's
/// validation tool never read) is a warning, and `transform` takes py-orc's `operation:
/// {transformations: [...]}` with its `{field, value}` filter and `{operation, field}` sum.
#[test]
fn py_orc_transform_operation_and_an_unread_validation_level() {
    let sb = Sandbox::new();
    sb.file(
        "sample.json",
        r#"{"records": [{"id": 1, "active": true, "value": 10.5}, {"id": 2, "active": false, "value": 4}, {"id": 3, "active": true, "value": 2}]}"#,
    );
    let p = sb.file(
        "dp.yaml",
        r#"id: dp
name: dp
steps:
  - id: load_data
    tool: filesystem
    action: read
    parameters:
      path: sample.json
  - id: validate_data
    tool: validation
    action: validate
    parameters:
      data: "{{ load_data.result.content }}"
      schema:
        type: object
        required: [records]
      validation_level: permissive
  - id: transform_data
    tool: data-processing
    action: transform
    parameters:
      data: "{{ load_data.result.content }}"
      operation:
        transformations:
          - type: filter
            field: active
            value: true
          - type: aggregate
            operation: sum
            field: value
outputs:
  total: "{{ transform_data.result.data[0].value_sum }}"
  valid: "{{ validate_data.result.valid }}"
"#,
    );
    let v = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stderr.contains("dp.yaml:17:7")
            && v.stderr.contains("W102")
            && v.stderr
                .contains("`parameters.validation_level` has no effect"),
        "{}",
        v.stderr
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["total"], 12.5);
    assert_eq!(doc["outputs"]["valid"], true);
}
