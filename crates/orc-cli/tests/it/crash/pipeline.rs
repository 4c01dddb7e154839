//! The pipeline every crash trial runs, and what its steps leave behind: model calls on a
//! priced model, commands that append a line to `effects.txt` (the side effects), a data
//! step, a loop and a file written.

use std::time::Duration;

use orc_fake_provider::{Behaviour, Endpoint, Stats};

use crate::models::{Fake, KEY_VAR};
use crate::support::Sandbox;

/// The regions the loop runs over; iteration `i` asks about `REGIONS[i]`.
pub(super) const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

/// How long the fake provider takes to answer: model calls are in flight long enough for a
/// kill to land in one.
const MODEL_LATENCY: Duration = Duration::from_millis(150);

/// Each command appends a line that starts with its step's id (and ends with `$CRASH_WRITER`,
/// which names the process in the split-brain tests), then lingers (`sleep`), so a kill can
/// land after the side effect and before the step's checkpoint.
const PIPELINE: &str = r#"name: crash
steps:
  - id: ask
    action: generate
    model: priced
    parameters: { prompt: "Name a colour for the report", max_tokens: 20 }
  - id: note
    tool: terminal
    action: execute
    dependencies: [ask]
    parameters: { command: "echo 'note {{ ask.result }}' $CRASH_WRITER >> effects.txt; sleep 0.1" }
  - id: tally
    tool: data-processing
    action: aggregate
    dependencies: [note]
    parameters:
      data: '[{"region": "north", "units": 3}, {"region": "south", "units": 4}, {"region": "north", "units": 5}]'
      group_by: region
      aggregations: { units: "sum:units" }
  - id: regions
    for_each: ["north", "south", "east", "west"]
    max_parallel: 2
    dependencies: [tally]
    steps:
      - id: describe
        action: generate
        model: priced
        parameters: { prompt: "Describe the {{ item }} region in a few words", max_tokens: 20 }
      - id: record
        tool: terminal
        action: execute
        dependencies: [describe]
        parameters: { command: "echo 'regions_{{ index }}_record {{ describe.result }}' $CRASH_WRITER >> effects.txt; sleep 0.1" }
  - id: report
    tool: filesystem
    action: write
    dependencies: [regions]
    parameters:
      path: out/report.txt
      content: "{{ ask.result }} / {{ tally.result.data | tojson }} / {{ regions_3_describe.result }}"
  - id: final
    tool: terminal
    action: execute
    dependencies: [report]
    parameters: { command: "echo 'final {{ tally.result.groups }}' $CRASH_WRITER >> effects.txt; sleep 0.05" }
outputs:
  colour: "{{ ask.result }}"
  tally: "{{ tally.result }}"
  west: "{{ regions_3_describe.result }}"
"#;

/// The steps whose command appends a line to `effects.txt`.
pub(super) fn effect_steps() -> Vec<String> {
    let mut steps = vec!["note".to_owned(), "final".to_owned()];
    steps.extend((0..REGIONS.len()).map(|i| format!("regions_{i}_record")));
    steps
}

/// The model steps, each with the words only its prompt has.
pub(super) fn model_steps() -> Vec<(String, String)> {
    let mut steps = vec![("ask".to_owned(), "Name a colour".to_owned())];
    steps.extend(
        REGIONS
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("regions_{i}_describe"), format!("the {r} region"))),
    );
    steps
}

/// The fake provider, answering after [`MODEL_LATENCY`].
pub(super) fn provider() -> Fake {
    Fake::start(Behaviour::default().with_latency(MODEL_LATENCY))
}

/// A sandbox with the pipeline (`p.yaml`) and a config (`orc.yaml`) that prices the model,
/// so every answer has a cost.
pub(super) fn sandbox(fake: &Fake) -> Sandbox {
    let sb = Sandbox::new();
    sb.file(
        "orc.yaml",
        &format!(
            "models:\n  - name: priced\n    provider: openai\n    model: fake-gpt\n    base_url: {}\n    api_key_env: {KEY_VAR}\n    cost: {{ input_per_1k: 1.0, output_per_1k: 2.0 }}\n",
            fake.provider().openai_base_url()
        ),
    );
    sb.file("p.yaml", PIPELINE);
    std::fs::create_dir_all(sb.path("out")).unwrap();
    sb
}

/// The step whose line `line` of `effects.txt` is.
pub(super) fn effect_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or_default()
}

/// The `$CRASH_WRITER` that wrote line `line` of `effects.txt`: its last word.
pub(super) fn writer_of(line: &str) -> &str {
    line.rsplit(' ').next().unwrap_or_default()
}

/// How many chat requests the provider received for each model step, by step id.
pub(super) fn requests_by_step(stats: &Stats) -> Vec<(String, u64)> {
    let prompts: Vec<String> = stats
        .bodies_to(Endpoint::ChatCompletions)
        .map(|body| body["messages"].to_string())
        .collect();
    model_steps()
        .into_iter()
        .map(|(step, words)| {
            let n = prompts.iter().filter(|p| p.contains(&words)).count() as u64;
            (step, n)
        })
        .collect()
}
