//! `orc metrics serve`: a standalone `/metrics` endpoint (until `orc serve` exists).

use std::net::SocketAddr;

use crate::config::Config;
use crate::{Global, exit};
use clap::{Args, Subcommand};

/// `orc metrics …`.
#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Debug, Subcommand)]
enum MetricsCommand {
    /// Serve Prometheus metrics at http://ADDR/metrics until interrupted.
    Serve {
        /// The address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9184")]
        bind: SocketAddr,
    },
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &MetricsArgs) -> anyhow::Result<u8> {
    let MetricsCommand::Serve { bind } = args.command;
    let (config, _) = Config::load(global.config.as_deref())?;
    let runtime = orc_runtime::tokio_runtime(&config)?;
    runtime.block_on(async {
        let endpoint = crate::telemetry::Endpoint::start(bind).await?;
        // What the command is doing, not a warning: said plainly (unless --quiet), and logged at
        // INFO for `-v`.
        if !global.quiet {
            eprintln!(
                "serving metrics on http://{}/metrics (Ctrl-C stops)",
                endpoint.addr()
            );
        }
        tracing::info!(addr = %endpoint.addr(), "metrics endpoint started");
        let interrupted = tokio::signal::ctrl_c().await;
        endpoint.stop().await;
        interrupted?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
