//! `orc resume RUN_ID [--force]`: continue a run that was killed, crashed or interrupted.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use orc_state::RunState;

use crate::config::Config;
use crate::plans::LoadError;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The run's id (`orc runs list` shows them).
    run_id: String,
    /// Resume even if the pipeline file has changed since the run started.
    #[arg(long)]
    force: bool,
    /// Write the result document to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    watch: crate::run::WatchArgs,
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &ResumeArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let runtime = crate::run::runtime(&config)?;
    let store = runtime.block_on(crate::state::open(
        &crate::state::url(global.state.as_deref(), &config),
        &config,
    ))?;
    let id = &args.run_id;
    let row = runtime
        .block_on(store.run(id))
        .map_err(|e| UserError(format!("state store: {e}")))?
        .ok_or_else(|| UserError(format!("no run `{id}` in {}", store.describe())))?;
    if row.status == RunState::Completed {
        if !global.quiet {
            eprintln!("run `{id}` already completed; nothing to resume");
        }
        if let Some(doc) = runtime
            .block_on(store.result_document(id))
            .map_err(|e| UserError(format!("state store: {e}")))?
        {
            let mut out = std::io::stdout().lock();
            out.write_all(&doc)?;
            writeln!(out)?;
        }
        return Ok(exit::OK);
    }
    let path = PathBuf::from(&row.pipeline_path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UserError(format!(
            "run `{id}`: cannot read its pipeline {}: {e}",
            path.display()
        ))
    })?;
    if crate::state::hash(&text) != row.pipeline_hash && !args.force {
        return Err(UserError(format!(
            "run `{id}`: {} has changed since the run started; resume with --force to run the new text",
            path.display()
        ))
        .into());
    }
    let file = path.display().to_string();
    crate::telemetry::install_recorder(&args.watch)?;
    let setup = runtime.block_on(crate::state::model_setup(&store, &config, None))?;
    let (loaded, gateway) = crate::models::load(&path, &config, &runtime, &setup)?;
    let loaded = match loaded {
        Ok(l) => l,
        Err(LoadError::Read(msg)) => return Err(UserError(msg).into()),
        Err(LoadError::Invalid { diags, text }) => {
            eprint!("{}", diags.render(&file, &text));
            return Ok(exit::INVALID);
        }
    };
    let lease = crate::state::lease_length(&config);
    let held = runtime
        .block_on(crate::state::Held::claim(&store, id, lease))
        .map_err(|e| UserError(format!("state store: {e}")))?
        .map_err(|holder| {
            UserError(format!(
                "run `{id}` is held by another orc process ({holder}); if that process is gone (killed on another machine, or stopped), the run can be resumed once its lease expires (within {:.1} s)",
                lease.as_secs_f64()
            ))
        })?;
    // Running again: `orc runs list` says so until it ends.
    runtime
        .block_on(held.reopen())
        .map_err(|e| UserError(format!("state store: {e}")))?;
    let checkpoints = runtime
        .block_on(store.checkpoints(id))
        .map_err(|e| UserError(format!("state store: {e}")))?;
    let resume = crate::state::completed_steps(checkpoints);
    // The pipeline's `budget:` covers the whole run: what the first attempt spent counts.
    let spent: f64 = resume.values().filter_map(|r| r.cost).sum();
    let gateway = crate::run::with_pipeline_budget(
        gateway,
        loaded.compiled.plan.budget,
        None,
        spent,
        (&store, &config, &runtime),
        &file,
    )?;
    if !global.quiet {
        eprintln!("resuming run `{id}`: {} step(s) already done", resume.len());
    }
    let inputs = match row.inputs {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    crate::run::execute(crate::run::Execution {
        global,
        config: &config,
        runtime,
        compiled: loaded.compiled,
        gateway,
        inputs,
        run_id: id.clone(),
        resume,
        held,
        output: args.output.as_deref(),
        file: &file,
        watch: &args.watch,
    })
}
