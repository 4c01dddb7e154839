//! `orc run PIPELINE`: compile, run, print the result document, exit 0/1/2/130.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use orc_runtime::{RunHandle, RuntimeOptions, Source, StartOptions};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// An input value; VALUE is parsed as JSON when it parses, else taken as text. Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,
    /// A JSON file with an object of input values (applied before `-i`).
    #[arg(short = 'c', long = "context", value_name = "CONTEXT.json")]
    context: Option<PathBuf>,
    /// Write the result document to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// The run's id (default: `<pipeline>_<unix time>_<8 hex>`): 1 to 200 characters, no
    /// control characters, no surrounding spaces.
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    run_id: Option<String>,
    /// Most USD this run may spend on models; model steps that would pass it fail.
    #[arg(long, value_name = "USD")]
    budget: Option<f64>,
    #[command(flatten)]
    queue: crate::queue_args::QueueArgs,
    #[command(flatten)]
    watch: crate::telemetry::WatchArgs,
}

/// Parses `-i KEY=VALUE`: the value as JSON when it parses, else as text.
pub(crate) fn parse_input(raw: &str) -> Result<(String, Value), UserError> {
    let Some((key, value)) = raw.split_once('=') else {
        return Err(UserError(format!("-i `{raw}`: expected KEY=VALUE")));
    };
    let key = key.trim();
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(UserError(format!(
            "-i `{raw}`: `{key}` is not a valid input name (letters, digits and `_`, not starting with a digit)"
        )));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((key.to_string(), value))
}

/// Checks a run id given with `--run-id`: it names the run in the store, in `orc resume ID`
/// and in logs, so it must be printable and of a sane length.
fn parse_run_id(raw: &str) -> Result<String, String> {
    const MAX: usize = 200;
    if raw.trim().is_empty() {
        return Err("a run id cannot be empty".to_owned());
    }
    if raw.chars().count() > MAX {
        return Err(format!("a run id has at most {MAX} characters"));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(format!(
            "a run id cannot hold control characters (found {})",
            c.escape_unicode()
        ));
    }
    if raw.trim() != raw {
        return Err("a run id cannot start or end with spaces".to_owned());
    }
    Ok(raw.to_owned())
}

/// The largest context file (`-c`) orc reads.
const MAX_CONTEXT_BYTES: u64 = 64 << 20;

fn read_context(path: &Path) -> Result<Map<String, Value>, UserError> {
    let text = crate::config::layers::read_bounded(path, MAX_CONTEXT_BYTES, "context file")
        .map_err(UserError)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(UserError(format!(
            "{}: the context file must hold a JSON object",
            path.display()
        ))),
        Err(e) => Err(UserError(format!(
            "{}:{}:{}: invalid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        ))),
    }
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: RunArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let mut inputs = match &args.context {
        Some(p) => read_context(p)?,
        None => Map::new(),
    };
    for raw in &args.inputs {
        let (k, v) = parse_input(raw)?;
        inputs.insert(k, v);
    }
    let (tokio, runtime) = runtime(global, config, &args.queue, &args.watch)?;
    let watch = Watch::start(&tokio, global, &args.watch)?;
    let options = StartOptions {
        run_id: args.run_id.clone(),
        budget: args.budget,
        observers: watch.observers.clone(),
    };
    let source = Source::File(args.pipeline.clone());
    let started = tokio.block_on(runtime.start(source, inputs, options));
    let handle = match started {
        Ok(handle) => handle,
        Err(e) => return refused(e),
    };
    finish(global, &tokio, &handle, watch, args.output.as_deref())
}

/// What a refused run prints, and its exit code: the compiler's diagnostics, or the reason.
/// The tokio runtime and orc's [`Runtime`](orc_runtime::Runtime) a command-line run or resume
/// works in: the metrics recorder installed first, the queue flags applied, and confined when the
/// config confines command-line runs.
pub(crate) fn runtime(
    global: &Global,
    config: Config,
    queue: &crate::queue_args::QueueArgs,
    watch: &crate::telemetry::WatchArgs,
) -> anyhow::Result<(tokio::runtime::Runtime, orc_runtime::Runtime)> {
    let tokio = orc_runtime::tokio_runtime(&config)?;
    crate::telemetry::install_recorder(watch)?;
    let runtime = tokio.block_on(
        queue
            .apply(RuntimeOptions::new(config, global.state.as_deref()))
            .confined_if_cli()?
            .build(),
    )?;
    Ok((tokio, runtime))
}

#[allow(clippy::print_stderr)]
pub(crate) fn refused(e: orc_runtime::Error) -> anyhow::Result<u8> {
    match e {
        orc_runtime::Error::Invalid { file, text, diags } => {
            eprint!("{}", diags.render(&file, &text));
            Ok(exit::INVALID)
        }
        e => Err(e.into()),
    }
}

/// How a run is watched from the command line: progress, metrics, profile, trace.
pub(crate) struct Watch<'a> {
    args: &'a crate::telemetry::WatchArgs,
    endpoint: Option<crate::telemetry::Endpoint>,
    timeline: Option<Arc<crate::telemetry::Timeline>>,
    pub(crate) observers: Vec<Arc<dyn orc_engine::Observer>>,
}

impl<'a> Watch<'a> {
    /// Starts the metrics endpoint, if asked, and the observers of the run.
    pub(crate) fn start(
        tokio: &tokio::runtime::Runtime,
        global: &Global,
        args: &'a crate::telemetry::WatchArgs,
    ) -> anyhow::Result<Self> {
        let endpoint = match args.metrics_addr {
            Some(addr) => Some(tokio.block_on(crate::telemetry::Endpoint::start(addr))?),
            None => None,
        };
        let timeline = (args.profile.is_some() || args.trace.is_some())
            .then(|| Arc::new(crate::telemetry::Timeline::new()));
        let mut observers: Vec<Arc<dyn orc_engine::Observer>> = Vec::new();
        observers.extend(crate::progress::observer(global));
        if let Some(t) = &timeline {
            observers.push(Arc::clone(t) as Arc<dyn orc_engine::Observer>);
        }
        Ok(Watch {
            args,
            endpoint,
            timeline,
            observers,
        })
    }
}

/// Waits for a started run (stopping it on Ctrl-C or SIGTERM), prints its result document and
/// says the exit code.
#[allow(clippy::print_stderr)]
pub(crate) fn finish(
    global: &Global,
    tokio: &tokio::runtime::Runtime,
    handle: &RunHandle,
    watch: Watch<'_>,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let Watch {
        args,
        endpoint,
        timeline,
        observers,
    } = watch;
    drop(observers);
    let outcome = tokio.block_on(async {
        let signals = tokio::spawn(watch_signals(handle.clone()));
        let outcome = handle.wait().await;
        signals.abort();
        if let Some(endpoint) = endpoint {
            endpoint.stop().await;
        }
        outcome
    });
    let result = match outcome {
        Ok(r) => r,
        Err(e) => return Err(UserError(format!("{}: {e}", handle.file)).into()),
    };
    if let Some(t) = &timeline
        && let Err(e) =
            crate::telemetry::write_reports(t, &result, args.profile.as_ref(), args.trace.as_ref())
    {
        tracing::error!("{e}");
    }
    let code = match result.status {
        orc_engine::RunStatus::Completed => exit::OK,
        orc_engine::RunStatus::Failed => exit::FAILED,
        orc_engine::RunStatus::Interrupted => exit::INTERRUPTED,
    };
    write_result(&result, output, global.quiet)?;
    if !global.quiet {
        let mut err = std::io::stderr().lock();
        // Best effort: stderr closing is no reason to change the exit code.
        let _ = tell_outcome(
            &mut err,
            &result,
            output,
            &resume_command(global, handle.run_id()),
        );
    }
    Ok(code)
}

async fn watch_signals(run: RunHandle) {
    interrupted().await;
    tracing::warn!("interrupted: stopping running steps");
    run.cancel();
}

/// Returns on SIGTERM or Ctrl-C.
pub(crate) async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// What a person reads on stderr when a run ends: on a terminal a short summary (status, steps
/// by outcome, duration, cost, where the result went); elsewhere only what went wrong. After an
/// interruption, how to resume.
fn tell_outcome(
    err: &mut impl std::io::Write,
    result: &orc_engine::RunResult,
    output: Option<&Path>,
    resume: &str,
) -> std::io::Result<()> {
    use orc_engine::{RunStatus, StepStatus};
    let count = |status: StepStatus| result.steps.values().filter(|s| s.status == status).count();
    let failed: Vec<&str> = result
        .steps
        .values()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| s.id.as_str())
        .collect();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let word = match result.status {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        };
        writeln!(
            err,
            "run {} {word}: {} completed, {} failed, {} cancelled, {} skipped, {} not run; {:.2} s, ${:.4}; result: {}",
            result.execution_id,
            count(StepStatus::Completed),
            failed.len(),
            count(StepStatus::Cancelled),
            count(StepStatus::Skipped),
            count(StepStatus::Pending),
            result.duration,
            result.cost,
            output.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
        )?;
    }
    match result.status {
        RunStatus::Failed if failed.is_empty() => writeln!(
            err,
            "run failed: {}",
            result
                .error
                .as_deref()
                .unwrap_or("no step failed, but the run could not finish")
        )?,
        RunStatus::Failed => writeln!(
            err,
            "{} step(s) failed: {}{}",
            failed.len(),
            failed.join(", "),
            result
                .error
                .as_deref()
                .map(|e| format!("\nrun stopped by: {e}"))
                .unwrap_or_default()
        )?,
        RunStatus::Interrupted => writeln!(
            err,
            "interrupted: run {} can be resumed with\n  {resume}",
            result.execution_id
        )?,
        RunStatus::Completed => {}
    }
    Ok(())
}

/// The exact command that resumes `run_id` with the same config and store.
pub(crate) fn resume_command(global: &Global, run_id: &str) -> String {
    let mut cmd = String::from("orc");
    if let Some(config) = &global.config {
        cmd.push_str(&format!(
            " --config {}",
            shell_quote(&config.display().to_string())
        ));
    }
    if let Some(state) = global.state.as_deref().filter(|s| !s.is_empty()) {
        cmd.push_str(&format!(
            " --state {}",
            shell_quote(&orc_state::redact_url(state))
        ));
    }
    cmd.push_str(&format!(" resume {}", shell_quote(run_id)));
    cmd
}

/// `word` as one shell word: unchanged when it is plain, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[allow(clippy::print_stderr)]
pub(crate) fn write_result(
    result: &orc_engine::RunResult,
    output: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(result)?;
    bytes.push(b'\n');
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(&bytes)?;
            tmp.persist(path)?;
            if !quiet && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("Results written to {}", path.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_as_json_when_they_can() {
        assert_eq!(parse_input("n=3").unwrap(), ("n".into(), Value::from(3)));
        assert_eq!(
            parse_input("s=hello").unwrap(),
            ("s".into(), Value::from("hello"))
        );
        assert_eq!(
            parse_input("q=\"3\"").unwrap(),
            ("q".into(), Value::from("3"))
        );
        assert_eq!(parse_input("l=[1,2]").unwrap().1, serde_json::json!([1, 2]));
        assert_eq!(parse_input("e=").unwrap().1, Value::from(""));
        assert!(parse_input("novalue").is_err());
        assert!(parse_input("=x").is_err());
        assert!(parse_input("1a=x").is_err());
    }

    #[test]
    fn run_ids_are_printable_and_bounded() {
        assert_eq!(parse_run_id("nightly-1").unwrap(), "nightly-1");
        assert!(parse_run_id("a b").is_ok());
        for bad in ["", "  ", "a\nb", "x\u{1b}[31m", " lead", &"x".repeat(201)] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
