//! orc's work queue for runs that span machines: ready steps go from a run's coordinator to
//! `orc worker` processes, and their completions come back, over NATS JetStream.
//!
//! - **Steps**: one work-queue stream per worker pool (`ORC_STEPS_<pool>`, subject
//!   `orc.steps.<pool>`), file-backed, with a de-duplication window, so a step published twice
//!   under the same message id (run + step + attempt) is stored once. Every worker of the pool
//!   pulls from one durable consumer (`workers`): explicit acks, `AckWait` (a worker of a long
//!   step sends in-progress acks), `MaxDeliver`. A message whose worker dies is delivered again
//!   to another one after `AckWait`.
//! - **Completions**: one stream for all pools (`ORC_DONE`, subjects `orc.done.<run token>`,
//!   kept a day), read by the run's coordinator from the first message, so completions that
//!   arrived while no coordinator listened (one died and `orc resume` took over) are not lost.
//! - **Plans**: a stream (`ORC_PLANS`, the last message of `orc.plans.<key>`) of compiled plans
//!   by key, put once per run by the coordinator and read once per plan by each worker.
//!
//! [`QueueOptions`] → [`QueueOptions::build`] → [`Queue`], a cheap `Clone` handle.
//!
//! ```no_run
//! # async fn demo() -> orc_queue::Result<()> {
//! let queue = orc_queue::QueueOptions::new("nats://127.0.0.1:4222", "default").build().await?;
//! queue.publish_step("default", "run-1/a/1", b"{}".to_vec().into()).await?;
//! # Ok(()) }
//! ```

mod error;
mod queue;

pub use error::{Error, Result};
pub use queue::{
    Completions, Delivery, Exhausted, PoolState, Pull, Queue, QueueOptions, Undeliverable, Work,
};
