//! The `--queue`/`--pool` flags of `orc run`, `orc resume` and `orc serve`.

use clap::Args;
use orc_runtime::RuntimeOptions;

/// Where steps go instead of running in this process.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct QueueArgs {
    /// Hand the run's steps to `orc worker` processes through NATS JetStream at URL
    /// (`nats://127.0.0.1:4222`; default: the config's `queue.url`). Needs a PostgreSQL state
    /// store that every machine shares.
    #[arg(long, value_name = "URL")]
    pub(crate) queue: Option<String>,
    /// The worker pool (default: the config's `queue.pool`, `default`).
    #[arg(long, value_name = "NAME")]
    pub(crate) pool: Option<String>,
}

impl QueueArgs {
    /// The runtime's options with this queue, over the config's `queue:` section.
    pub(crate) fn apply(&self, options: RuntimeOptions) -> RuntimeOptions {
        options.with_queue(self.queue.as_deref(), self.pool.as_deref())
    }
}
