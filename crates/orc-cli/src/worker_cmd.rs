//! `orc worker [--queue URL] [--pool NAME] [--concurrency N]`: runs the steps coordinators hand
//! to the queue, until SIGTERM or Ctrl-C.

use clap::Args;
use orc_runtime::RuntimeOptions;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{Global, UserError, exit};

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The NATS server (default: the config's `queue.url`).
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
    /// The pool whose steps it runs (default: the config's `queue.pool`, `default`).
    #[arg(long, value_name = "NAME")]
    pool: Option<String>,
    /// Steps it runs at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Serve Prometheus metrics at http://ADDR/metrics while it runs (running steps, claim
    /// latency, redeliveries, the pool's depth; e.g. 127.0.0.1:9185).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[allow(clippy::print_stderr)]
pub(crate) fn main(global: &Global, args: &WorkerArgs) -> anyhow::Result<u8> {
    let (config, _) = Config::load(global.config.as_deref())?;
    if args.queue.is_none() && config.queue.url.is_none() {
        return Err(UserError(
            "orc worker needs a queue: give `--queue nats://HOST:PORT` or set `queue.url` in the config"
                .to_owned(),
        )
        .into());
    }
    let tokio = orc_runtime::tokio_runtime(&config)?;
    // Before the runtime is built, so that what it builds records too.
    let endpoint = match args.metrics_addr {
        Some(addr) => Some(tokio.block_on(crate::telemetry::Endpoint::start(addr))?),
        None => None,
    };
    let runtime = tokio.block_on(
        RuntimeOptions::new(config, global.state.as_deref())
            .with_queue(args.queue.as_deref(), args.pool.as_deref())
            .build(),
    )?;
    let stop = CancellationToken::new();
    let report = tokio.block_on(async {
        let signalled = stop.clone();
        let signals = tokio::spawn(async move {
            crate::run::interrupted().await;
            tracing::warn!("stopping: no new steps; running ones finish");
            signalled.cancel();
        });
        let signals = tokio_util::task::AbortOnDropHandle::new(signals);
        let report = runtime.work(usize::from(args.concurrency), stop).await;
        drop(signals);
        if let Some(endpoint) = endpoint {
            endpoint.stop().await;
        }
        report
    })?;
    if !global.quiet {
        eprintln!(
            "worker stopped: {} step(s) run, {} skipped (superseded or already done)",
            report.completed, report.skipped
        );
    }
    Ok(exit::OK)
}
