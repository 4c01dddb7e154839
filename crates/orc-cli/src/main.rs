//! `orc`: compile and run AI pipelines written in YAML.

mod bench_cmd;
mod cache_cmd;
mod config_cmd;
mod loadtest_cmd;
mod metrics_cmd;
mod models_cmd;
mod plan_cmd;
mod progress;
mod queue_args;
mod report_cmd;
mod resume;
mod run;
mod runs_cmd;
mod serve_cmd;
mod telemetry;
mod tools_cmd;
mod validate;
mod worker_cmd;

use std::path::PathBuf;

use orc_runtime::{config, plans};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc's malloc: under `orc serve`'s load, glibc's allocator took a sixth
/// of the process's CPU time (`perf record` at 64 connections); in a first comparison on a busy
/// machine a chat completion through the gateway cost 28 µs of CPU instead of 37 (not yet
/// confirmed on a quiet one). Built without transparent huge pages (`no_thp`): with them an idle
/// `orc serve` was 32 MB resident instead of 23.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, as the README documents them.
pub(crate) mod exit {
    /// Every step succeeded.
    pub(crate) const OK: u8 = 0;
    /// A step failed.
    pub(crate) const FAILED: u8 = 1;
    /// Invalid pipeline, config or arguments; nothing ran.
    pub(crate) const INVALID: u8 = 2;
    /// Interrupted.
    pub(crate) const INTERRUPTED: u8 = 130;
    /// Standard output was closed before everything was written (128 + SIGPIPE).
    pub(crate) const BROKEN_PIPE: u8 = 141;
}

/// A problem with what the user gave orc: printed as is, exit code 2.
#[derive(Debug)]
pub(crate) struct UserError(pub(crate) String);

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

#[derive(Debug, Parser)]
#[command(
    name = "orc",
    version,
    about = "Compile and run AI pipelines written in YAML",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub(crate) struct Global {
    /// Config file (default: $ORC_CONFIG, else ./orc.yaml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The state store: sqlite://PATH, postgres://… or redis://… (default: SQLite in $ORC_HOME).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) state: Option<String>,
    /// Print nothing but the result and errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Log what every step does (repeat for more).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline and print its result document.
    Run(run::RunArgs),
    /// Continue a run that was killed, crashed or interrupted.
    Resume(resume::ResumeArgs),
    /// Check a pipeline without running it.
    Validate(validate::ValidateArgs),
    /// Dry run: the model each model step would use, its estimated tokens and cost, and
    /// whether its answer is cached. Makes no call.
    Plan(plan_cmd::PlanArgs),
    /// Serve the runs API, run event streams and an OpenAI-compatible gateway over HTTP.
    Serve(serve_cmd::ServeArgs),
    /// Run the steps that `orc run --queue` coordinators hand to a NATS JetStream pool.
    Worker(worker_cmd::WorkerArgs),
    /// Load-test `orc serve` (or an in-process runtime) as a scenario file describes.
    Loadtest(loadtest_cmd::LoadtestArgs),
    /// Past runs: list, show, prune.
    Runs(runs_cmd::RunsArgs),
    /// The models the config file offers.
    Models(models_cmd::ModelsArgs),
    /// The model response cache and the compile cache.
    Cache(cache_cmd::CacheArgs),
    /// The effective configuration.
    Config(config_cmd::ConfigArgs),
    /// Prometheus metrics.
    Metrics(metrics_cmd::MetricsArgs),
    /// The tools: each action and its parameters (type, required, default, what it does).
    Tools(tools_cmd::ToolsArgs),
    /// Benchmark orc's standard workloads; keep and compare baselines (exit 1 on a regression).
    Bench(bench_cmd::BenchArgs),
    /// Reports from the state store: `orc report daily`.
    Report(report_cmd::ReportArgs),
    /// Print a shell completion script: `orc completions bash > ~/.local/share/bash-completion/completions/orc`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn init_logging(global: &Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .init();
}

/// Writes the completion script for `shell` to stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "orc", &mut out);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(exit::OK)
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    // `orc __orc_supervise …` is the supervisor of a step's command (see orc_engine::set_supervisor);
    // every other run starts its steps' commands under this same binary.
    if let Some(code) = orc_engine::supervise_if_asked() {
        return code;
    }
    orc_engine::set_supervisor("/proc/self/exe");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::INVALID
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.global);
    let outcome = match cli.command {
        Command::Run(args) => run::main(&cli.global, args),
        Command::Validate(args) => validate::main(&cli.global, &args),
        Command::Plan(args) => plan_cmd::main(&cli.global, &args),
        Command::Resume(args) => resume::main(&cli.global, &args),
        Command::Serve(args) => serve_cmd::main(&cli.global, &args),
        Command::Worker(args) => worker_cmd::main(&cli.global, &args),
        Command::Loadtest(args) => loadtest_cmd::main(&cli.global, &args),
        Command::Runs(args) => runs_cmd::main(&cli.global, &args),
        Command::Models(args) => models_cmd::main(&cli.global, &args),
        Command::Cache(args) => cache_cmd::main(&cli.global, &args),
        Command::Config(args) => config_cmd::main(&cli.global, &args),
        Command::Metrics(args) => metrics_cmd::main(&cli.global, &args),
        Command::Tools(args) => tools_cmd::main(&cli.global, &args),
        Command::Bench(args) => bench_cmd::main(&cli.global, &args),
        Command::Report(args) => report_cmd::main(&cli.global, &args),
        Command::Completions { shell } => completions(shell),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e)
            if e.downcast_ref::<UserError>().is_some()
                || e.downcast_ref::<config::ConfigError>().is_some()
                || e.downcast_ref::<orc_runtime::Error>().is_some() =>
        {
            eprintln!("error: {e}");
            ExitCode::from(exit::INVALID)
        }
        // The reader of stdout went away (`orc config show | head`): nothing left to say, and
        // the status a process killed by SIGPIPE would have (a run's own outcome is in the
        // state store: `orc runs show`).
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::from(exit::BROKEN_PIPE)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}
