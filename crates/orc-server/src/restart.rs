//! The runs a stopped service was running, resumed when it starts again on the same store.
//!
//! While it serves, the service keeps the ids of its runs in progress in
//! `<data dir>/serve/<store>.json`, rewritten at most once a second when they change; on a
//! graceful shutdown it stops its runs (each is checkpointed and recorded as interrupted) and
//! writes exactly the ones it stopped. The next `orc serve` on the same store resumes the runs
//! the file names and removes it, so runs survive a killed service too (all but those started
//! in its last second, which `orc resume` continues). A run another process resumed meanwhile,
//! or one that ended, is skipped (its lease, or its completion, says so).

use std::path::{Path, PathBuf};
use std::time::Duration;

use orc_runtime::{Resumed, Runtime};
use tokio_util::sync::CancellationToken;

/// How often the record of the runs in progress may be rewritten.
const EVERY: Duration = Duration::from_secs(1);

/// The file of the runs stopped by a service on this runtime's store.
fn file(runtime: &Runtime) -> PathBuf {
    let store = blake3::hash(runtime.store().describe().as_bytes()).to_hex();
    runtime
        .data_dir()
        .join("serve")
        .join(format!("{}.json", &store[..16]))
}

/// Records the ids of the runs a shutdown stopped (none: the record is removed).
pub(crate) async fn remember(runtime: &Runtime, stopped: &[String]) {
    let path = file(runtime);
    match record(&path, stopped).await {
        Ok(()) if stopped.is_empty() => {}
        Ok(()) => tracing::info!(
            runs = stopped.len(),
            "stopped runs recorded; the next orc serve on this store resumes them"
        ),
        Err(e) => tracing::warn!(
            "could not record the stopped runs in {}: {e}; resume them with `orc resume`",
            path.display()
        ),
    }
}

/// Keeps the record of the runs in progress until `stop` is cancelled: rewritten at most once
/// every [`EVERY`], when the set changed.
pub(crate) async fn keep(runtime: Runtime, stop: CancellationToken) {
    let path = file(&runtime);
    let mut written: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = runtime.in_progress();
        if now == written {
            continue;
        }
        match record(&path, &now).await {
            Ok(()) => written = now,
            Err(e) => tracing::warn!(
                "could not record the runs in progress in {}: {e}",
                path.display()
            ),
        }
    }
}

/// Records `ids` in `path`: written atomically (a temporary file, then a rename), or the file
/// removed when there are none.
async fn record(path: &Path, ids: &[String]) -> std::io::Result<()> {
    if ids.is_empty() {
        return match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let body = serde_json::to_vec(ids).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Resumes the runs the last service on this store was running (stopped, or killed), and forgets
/// the list.
pub(crate) async fn resume_stopped(runtime: &Runtime) {
    let path = file(runtime);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return;
    };
    let ids: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
    for id in ids {
        let options = orc_runtime::ResumeOptions::default();
        match runtime.resume(&id, options).await {
            Ok(Resumed::Started(_)) => {
                tracing::info!(run_id = %id, "resumed a run the last orc serve stopped")
            }
            Ok(Resumed::Completed(_)) => {}
            Err(e) => tracing::warn!(run_id = %id, "not resumed: {e}"),
        }
    }
}
