//! `orc-fake-provider`: the loopback fake model provider as a process, for
//! benchmarks. Prints `listening on 127.0.0.1:PORT` on stdout once it accepts
//! connections; stops on SIGINT, SIGTERM or after `--max-seconds`.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use orc_fake_provider::{Behaviour, FakeProvider};
use tokio::signal::unix::{SignalKind, signal};

/// A fake OpenAI-compatible and Anthropic model provider on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "orc-fake-provider", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    max_seconds: Option<u64>,
    /// Require this API key (OpenAI bearer token and Anthropic x-api-key).
    #[arg(long, env = "ORC_FAKE_PROVIDER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Model ids to list (repeat the flag); default: the built-in fake models.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Answer 404 for models not in the list.
    #[arg(long)]
    reject_unknown_models: bool,
}

#[tokio::main]
#[allow(clippy::print_stdout)] // the one line a benchmark waits for
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut behaviour = Behaviour::default().with_latency(Duration::from_millis(args.latency_ms));
    if let Some(key) = args.api_key {
        behaviour = behaviour.with_api_key(key);
    }
    if !args.models.is_empty() {
        behaviour = behaviour.with_models(args.models);
    }
    behaviour.reject_unknown_models = args.reject_unknown_models;

    let mut terminate = signal(SignalKind::terminate())?;
    let provider = FakeProvider::start_on(args.port, behaviour).await?;
    println!("listening on {}", provider.addr());
    std::io::stdout().flush()?;

    let deadline = async {
        match args.max_seconds {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
        () = deadline => {}
    }
    provider.shutdown().await;
    Ok(())
}
