//! `orc run PIPELINE`: compile, run, print the result document, exit 0/1/2/130.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plans::LoadError;
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
    watch: WatchArgs,
}

/// How to watch a run: metrics, profile, trace (`orc run` and `orc resume`).
#[derive(Debug, Args, Default)]
pub(crate) struct WatchArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9184).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Write a JSON profile (per-step queue wait, run and model time, critical path) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) profile: Option<PathBuf>,
    /// Write a Chrome trace (opens in Perfetto or chrome://tracing) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
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
    let file = args.pipeline.display().to_string();
    let runtime = runtime(&config)?;
    let store = runtime.block_on(crate::state::open(
        &crate::state::url(global.state.as_deref(), &config),
        &config,
    ))?;
    if let Some(usd) = args.budget {
        let registry = orc_models::Registry::new(config.models.clone()).map_err(UserError)?;
        orc_models::check_budget("--budget", usd)
            .and_then(|()| orc_models::require_prices(&registry, "--budget"))
            .map_err(|i| UserError(format!("{}: {}", i.key, i.message)))?;
    }
    crate::telemetry::install_recorder(&args.watch)?;
    let setup = runtime.block_on(crate::state::model_setup(&store, &config, args.budget))?;
    let (loaded, gateway) = crate::models::load(&args.pipeline, &config, &runtime, &setup)?;
    let loaded = match loaded {
        Ok(l) => l,
        Err(LoadError::Read(msg)) => return Err(UserError(msg).into()),
        Err(LoadError::Invalid { diags, text }) => {
            eprint!("{}", diags.render(&file, &text));
            return Ok(exit::INVALID);
        }
    };
    let gateway = with_pipeline_budget(
        gateway,
        loaded.compiled.plan.budget,
        args.budget,
        0.0,
        (&store, &config, &runtime),
        &file,
    )?;
    tracing::debug!(
        cache_hit = loaded.cache_hit,
        steps = loaded.compiled.plan.step_count(),
        "compiled"
    );
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => orc_engine::new_run_id(&loaded.compiled.plan.id),
    };
    // Everything that refuses a run before its first step (an undeclared, missing or mistyped
    // input, a model that cannot be used) is checked before the run is recorded: exit 2.
    let lease = crate::state::lease_length(&config);
    orc_engine::preflight(&loaded.compiled.plan, &inputs, gateway.as_ref())
        .map_err(|e| UserError(format!("{file}: {e}")))?;
    runtime
        .block_on(crate::state::create(
            &store,
            &run_id,
            &loaded.compiled.plan,
            &args.pipeline,
            &loaded.text,
            &inputs,
        ))
        .map_err(|e| UserError(format!("{file}: {e}")))?;
    let held = runtime
        .block_on(crate::state::Held::claim(&store, &run_id, lease))
        .map_err(|e| UserError(format!("state store: {e}")))?
        .map_err(|holder| {
            UserError(format!(
                "run `{run_id}` is held by another orc process ({holder})"
            ))
        })?;
    execute(Execution {
        global,
        config: &config,
        runtime,
        compiled: loaded.compiled,
        gateway,
        inputs,
        run_id,
        resume: Default::default(),
        held,
        output: args.output.as_deref(),
        file: &file,
        watch: &args.watch,
    })
}

/// The gateway a run uses once its pipeline is compiled: the pipeline's own `budget:` caps the
/// run too (the lower of it and `--budget` applies), less what an earlier attempt of the run
/// already `spent`.
pub(crate) fn with_pipeline_budget(
    gateway: Option<orc_models::Gateway>,
    pipeline: Option<f64>,
    flag: Option<f64>,
    spent: f64,
    (store, config, runtime): (&orc_state::Store, &Config, &tokio::runtime::Runtime),
    file: &str,
) -> anyhow::Result<Option<orc_models::Gateway>> {
    let Some(usd) = pipeline.filter(|_| gateway.is_some()) else {
        return Ok(gateway);
    };
    let per_run = (flag.map_or(usd, |flag| flag.min(usd)) - spent).max(0.0);
    let registry = orc_models::Registry::new(config.models.clone()).map_err(UserError)?;
    orc_models::require_prices(&registry, "budget")
        .map_err(|i| UserError(format!("{file}: budget: {}: {}", i.key, i.message)))?;
    let setup = runtime.block_on(crate::state::model_setup(store, config, Some(per_run)))?;
    Ok(crate::models::gateway(config, &setup)?)
}

/// The runtime a run executes on, as `performance.parallel_execution` describes.
pub(crate) fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let par = &config.performance.parallel_execution;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            par.max_workers.clamp(1, 512).min(
                std::thread::available_parallelism()
                    .map_or(4, |n| n.get())
                    .max(1),
            ),
        )
        // Filesystem and data tools run on the blocking pool; a few threads keep the cores busy
        // without paying for a thread (and a context switch) per concurrent step.
        .max_blocking_threads(blocking_threads())
        .enable_all()
        .build()
}

/// Everything a run (new or resumed) needs.
pub(crate) struct Execution<'a> {
    pub(crate) global: &'a Global,
    pub(crate) config: &'a Config,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) compiled: orc_pipeline::Compiled,
    pub(crate) gateway: Option<orc_models::Gateway>,
    pub(crate) inputs: Map<String, Value>,
    pub(crate) run_id: String,
    pub(crate) resume: std::collections::HashMap<String, orc_engine::StepRecord>,
    pub(crate) held: crate::state::Held,
    pub(crate) output: Option<&'a Path>,
    pub(crate) file: &'a str,
    pub(crate) watch: &'a WatchArgs,
}

/// Runs a compiled pipeline with checkpoints, prints its result document, and says the exit code.
#[allow(clippy::print_stderr)]
pub(crate) fn execute(x: Execution<'_>) -> anyhow::Result<u8> {
    let par = &x.config.performance.parallel_execution;
    // Cancelled on Ctrl-C, and when another process takes the run's lease.
    let cancel = x.held.stop_token();
    let endpoint = match x.watch.metrics_addr {
        Some(addr) => Some(
            x.runtime
                .block_on(crate::telemetry::Endpoint::start(addr))?,
        ),
        None => None,
    };
    let timeline = (x.watch.profile.is_some() || x.watch.trace.is_some())
        .then(|| Arc::new(crate::telemetry::Timeline::new()));
    let mut observers: Vec<Arc<dyn orc_engine::Observer>> = Vec::new();
    observers.extend(crate::progress::observer(x.global));
    if endpoint.is_some() {
        observers.push(Arc::new(crate::telemetry::StepMetrics::default()));
    }
    if let Some(t) = &timeline {
        observers.push(Arc::clone(t) as Arc<dyn orc_engine::Observer>);
    }
    let step_cache = crate::models::step_cache(x.config)?;
    let options = orc_engine::Options {
        inputs: x.inputs,
        execution_id: Some(x.run_id.clone()),
        max_concurrent: par.max_concurrent_tasks,
        task_timeout: Duration::from_secs_f64(par.task_timeout),
        cancel: cancel.clone(),
        observer: crate::telemetry::tee(observers),
        resources: resources(x.config, x.gateway.as_ref(), step_cache.as_ref()),
        models: x.gateway,
        journal: Some(x.held.journal()),
        step_cache,
        resume: Arc::new(x.resume),
        ..orc_engine::Options::default()
    };
    let held = x.held;
    let outcome = x.runtime.block_on(async {
        let signals = tokio::spawn(watch_signals(cancel.clone()));
        let mut result = orc_engine::run(x.compiled, options).await;
        signals.abort();
        let recorded = match &mut result {
            Ok(r) => held.finish(r).await,
            Err(e) => held.fail(&e.to_string()).await,
        };
        if let Ok(r) = &result
            && endpoint.is_some()
        {
            crate::telemetry::record_run(r);
        }
        if let Some(endpoint) = endpoint {
            endpoint.stop().await;
        }
        (result, recorded)
    });
    let result = match outcome.0 {
        Ok(r) => r,
        Err(e) => return Err(UserError(format!("{}: {e}", x.file)).into()),
    };
    if let Some(t) = &timeline
        && let Err(e) = crate::telemetry::write_reports(
            t,
            &result,
            x.watch.profile.as_ref(),
            x.watch.trace.as_ref(),
        )
    {
        tracing::error!("{e}");
    }
    if let Err(e) = outcome.1 {
        tracing::error!("state store: the run's end was not recorded: {e}");
    }
    let code = match result.status {
        orc_engine::RunStatus::Completed => exit::OK,
        orc_engine::RunStatus::Failed => exit::FAILED,
        orc_engine::RunStatus::Interrupted => exit::INTERRUPTED,
    };
    write_result(&result, x.output, x.global.quiet)?;
    if !x.global.quiet {
        let mut err = std::io::stderr().lock();
        // Best effort: stderr closing is no reason to change the exit code.
        let _ = tell_outcome(
            &mut err,
            &result,
            x.output,
            &resume_command(x.global, &x.run_id),
        );
    }
    drop(x.runtime);
    Ok(code)
}

/// The engine's resource limits from `performance.resource_limits`: memory admission (which
/// empties the in-memory caches when memory runs high) and the CPU pool's size.
fn resources(
    config: &Config,
    gateway: Option<&orc_models::Gateway>,
    step_cache: Option<&orc_cache::Cache>,
) -> orc_engine::Resources {
    let limits = &config.performance.resource_limits;
    let caches: Vec<orc_cache::Cache> = gateway
        .and_then(orc_models::Gateway::cache)
        .into_iter()
        .chain(step_cache)
        .cloned()
        .collect();
    orc_engine::Resources {
        cpu_slots: limits.max_cpu_cores,
        memory: Some(orc_engine::MemoryLimit {
            max_bytes: limits.max_memory_bytes(),
            threshold: limits.memory_cleanup_threshold,
            on_pressure: Some(Arc::new(move || {
                for cache in &caches {
                    cache.shrink();
                }
            })),
        }),
    }
}

/// Threads for blocking tool work: twice the cores, at least 4.
fn blocking_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .max(4)
}

async fn watch_signals(cancel: CancellationToken) {
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
    tracing::warn!("interrupted: stopping running steps");
    cancel.cancel();
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
