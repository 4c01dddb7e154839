//! `orc serve [--bind ADDR]`: the runs API, run event streams, the OpenAI-compatible gateway and
//! `/metrics` over one runtime, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use clap::Args;
use orc_runtime::RuntimeOptions;
use orc_server::ServerOptions;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (default: the config's `server.bind`, 127.0.0.1:8080). Port 0
    /// picks a free port; the address is printed on stderr.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    #[command(flatten)]
    queue: crate::queue_args::QueueArgs,
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &ServeArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let bind = match args.bind {
        Some(addr) => addr,
        None => config.server.bind.parse().map_err(|_| {
            UserError(format!(
                "server.bind: `{}` is not an address",
                config.server.bind
            ))
        })?,
    };
    let options =
        ServerOptions::from_settings(&config.server).map_err(|e| UserError(e.to_string()))?;
    options
        .check_bind(bind)
        .map_err(|e| UserError(e.to_string()))?;
    let tokio = orc_runtime::tokio_runtime(&config)?;
    // `/metrics` is always served: the recorder goes in before the caches are built.
    orc_telemetry::Exporter::global().map_err(|e| UserError(format!("metrics: {e}")))?;
    let runtime = tokio.block_on(
        args.queue
            .apply(RuntimeOptions::new(config, global.state.as_deref()))
            .confined()?
            .build(),
    )?;
    tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| UserError(format!("cannot listen on {bind}: {e}")))?;
        let addr = listener.local_addr()?;
        if !global.quiet {
            eprintln!("orc serve: listening on http://{addr}");
        }
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(stop_on_signal(shutdown.clone()));
        let served = orc_server::serve(listener, runtime, options, shutdown).await;
        signals.abort();
        served?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    crate::run::interrupted().await;
    tracing::warn!(
        "stopping: no new requests; in-flight ones and running runs get the grace period"
    );
    shutdown.cancel();
}
