//! The runs a stopped service was running, resumed when it starts again on the same store.
//!
//! On shutdown the service stops its runs (each is checkpointed and recorded as interrupted)
//! and writes their ids to `<data dir>/serve/<store>.json`; the next `orc serve` on the same
//! store resumes them and removes the file. A run another process resumed meanwhile is
//! skipped (its lease, or its completion, says so).

use std::path::PathBuf;

use orc_runtime::{Resumed, Runtime};

/// The file of the runs stopped by a service on this runtime's store.
fn file(runtime: &Runtime) -> PathBuf {
    let store = blake3::hash(runtime.store().describe().as_bytes()).to_hex();
    runtime
        .data_dir()
        .join("serve")
        .join(format!("{}.json", &store[..16]))
}

/// Records the ids of the runs a shutdown stopped.
pub(crate) async fn remember(runtime: &Runtime, stopped: &[String]) {
    if stopped.is_empty() {
        return;
    }
    let path = file(runtime);
    let write = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let body = serde_json::to_vec(stopped).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        tokio::fs::write(&tmp, body).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    match write.await {
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

/// Resumes the runs the last service on this store stopped, and forgets the list.
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
