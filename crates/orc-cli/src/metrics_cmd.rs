//! `orc metrics serve`: a standalone `/metrics` endpoint (until `orc serve` exists).

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{Global, UserError, exit};

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

pub(crate) fn main(global: &Global, args: &MetricsArgs) -> anyhow::Result<u8> {
    let MetricsCommand::Serve { bind } = args.command;
    let (config, _) = Config::load(global.config.as_deref())?;
    let runtime = crate::run::runtime(&config)?;
    runtime.block_on(async {
        let exporter =
            orc_telemetry::Exporter::global().map_err(|e| UserError(format!("metrics: {e}")))?;
        let server = orc_telemetry::MetricsServer::bind(bind, exporter)
            .await
            .map_err(|e| UserError(e.to_string()))?;
        tracing::warn!("serving metrics on http://{}/metrics", server.local_addr());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let serving = server.run(cancel);
        tokio::pin!(serving);
        tokio::select! {
            () = &mut serving => {}
            _ = tokio::signal::ctrl_c() => {
                stop.cancel();
                serving.await;
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
