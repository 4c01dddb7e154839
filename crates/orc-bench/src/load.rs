//! Closed-loop load: a fixed number of operations, a fixed number in flight at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::task::JoinSet;

/// Runs `calls` operations, `concurrency` workers each taking the next one in turn, and
/// returns the wall time of all of them in seconds; the first failure ends the run.
pub(crate) async fn closed_loop<F, Fut>(
    concurrency: usize,
    calls: usize,
    call: F,
) -> Result<f64, String>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let taken = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (taken, call) = (Arc::clone(&taken), call.clone());
        workers.spawn(async move {
            loop {
                let n = taken.fetch_add(1, Ordering::Relaxed);
                if n >= calls {
                    return Ok(());
                }
                call(n).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("a worker died: {e}")),
        }
    }
    Ok(started.elapsed().as_secs_f64())
}
