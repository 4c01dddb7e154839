//! `orc plan PIPELINE`: a dry run of the model steps: the model each would use, its estimated
//! tokens and cost, and whether its answer is already cached. Makes no model call.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::{Global, exit};

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// An input value, as with `orc run`; prompts that read only inputs are then known, and so
    /// is whether their answers are cached. Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,
    /// Print JSON: `{steps: [...], totals: {...}}`.
    #[arg(long)]
    json: bool,
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &PlanArgs) -> anyhow::Result<u8> {
    let file = args.pipeline.display().to_string();
    let (config, _) = Config::load(global.config.as_deref())?;
    let mut inputs = serde_json::Map::new();
    for raw in &args.inputs {
        let (k, v) = crate::run::parse_input(raw)?;
        inputs.insert(k, v);
    }
    let tokio = orc_runtime::tokio_runtime(&config)?;
    let runtime = tokio
        .block_on(orc_runtime::RuntimeOptions::new(config, global.state.as_deref()).build())?;
    let source = orc_runtime::Source::File(args.pipeline.clone());
    let loaded = match tokio.block_on(runtime.compile(&source, true)) {
        Ok(l) => l,
        Err(e) => return crate::run::refused(e),
    };
    let rows = match runtime.gateway() {
        Some(g) => tokio.block_on(orc_engine::plan_models(&loaded.compiled, g, &inputs)),
        None => Vec::new(),
    };
    let totals = orc_runtime::plans::PlanTotals::of(&rows);
    let (cached, expected, worst) = (totals.cached, totals.expected_usd, totals.worst_case_usd);
    // A step that cannot be planned would fail the run: the plan says so with its exit code.
    let code = if rows.iter().any(|r| r.error.is_some()) {
        exit::FAILED
    } else {
        exit::OK
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = orc_runtime::plans::plan_document(&loaded.compiled.plan.id, &rows);
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(code);
    }
    if rows.is_empty() {
        writeln!(out, "{file}: no model steps; running it calls no model.")?;
        return Ok(exit::OK);
    }
    let usd = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.6}"));
    for r in &rows {
        let id = if r.in_loop {
            format!("{} (each iteration)", r.step)
        } else {
            r.step.clone()
        };
        match &r.error {
            Some(e) => writeln!(out, "{id}: {}: cannot plan: {e}", r.action)?,
            None => writeln!(
                out,
                "{id}: {} on {} ({}); ~{} tokens in, ≤{} out; ${} expected, ${} worst case; {}",
                r.action,
                r.model.as_deref().unwrap_or("-"),
                r.chosen_by.as_deref().unwrap_or("-"),
                r.input_tokens.unwrap_or(0),
                r.max_output_tokens.unwrap_or(0),
                usd(r.expected_usd),
                usd(r.worst_case_usd),
                match r.cached {
                    Some(true) => "cached: costs nothing",
                    Some(false) => "not cached",
                    None => "cache unknown until the run (the prompt reads earlier steps)",
                },
            )?,
        }
    }
    writeln!(
        out,
        "{} model step(s), {cached} cached; expected ${expected:.6}, worst case ${worst:.6} (loop bodies counted once)",
        rows.len()
    )?;
    Ok(code)
}
