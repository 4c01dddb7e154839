//! `orc resume RUN_ID [--force]`: continue a run that was killed, crashed or interrupted.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use orc_runtime::{ResumeOptions, Resumed};

use crate::config::Config;
use crate::{Global, exit};

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
    queue: crate::queue_args::QueueArgs,
    #[command(flatten)]
    watch: crate::telemetry::WatchArgs,
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &ResumeArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let (tokio, runtime) = crate::run::runtime(global, config, &args.queue, &args.watch)?;
    let watch = crate::run::Watch::start(&tokio, global, &args.watch)?;
    let options = ResumeOptions {
        force: args.force,
        observers: watch.observers.clone(),
    };
    let id = &args.run_id;
    let handle = match tokio.block_on(runtime.resume(id, options)) {
        Ok(Resumed::Started(handle)) => handle,
        Ok(Resumed::Completed(doc)) => {
            if !global.quiet {
                eprintln!("run `{id}` already completed; nothing to resume");
            }
            if let Some(doc) = doc {
                let mut out = std::io::stdout().lock();
                out.write_all(&doc)?;
                writeln!(out)?;
            }
            return Ok(exit::OK);
        }
        Err(e) => return crate::run::refused(e),
    };
    if !global.quiet {
        eprintln!(
            "resuming run `{id}`: {} step(s) already done",
            handle.resumed_steps
        );
    }
    crate::run::finish(global, &tokio, &handle, watch, args.output.as_deref())
}
