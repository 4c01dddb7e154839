//! The checkpoint workload: step checkpoints appended one call at a time to a SQLite state
//! store in the temp dir, as the engine appends them when steps finish.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use orc_state::{Checkpoint, NewRun, StateOptions, Store};
use serde_json::json;

/// A SQLite store with one run to append to.
#[derive(Debug)]
pub(crate) struct Appends {
    store: Store,
    run_id: String,
    next: AtomicU64,
}

impl Appends {
    /// Opens `<dir>/checkpoints.db` (compression on, as by default) and records a run.
    pub(crate) async fn new(dir: &Path) -> Result<Appends, String> {
        let url = format!("sqlite://{}", dir.join("checkpoints.db").display());
        let store = Store::open(&url, StateOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let run_id = "bench-checkpoints".to_owned();
        store
            .create_run(&NewRun {
                run_id: run_id.clone(),
                pipeline_id: "bench".to_owned(),
                pipeline_path: "bench.yaml".to_owned(),
                pipeline_hash: "bench".to_owned(),
                inputs: json!({}),
                started_at: SystemTime::now(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Appends {
            store,
            run_id,
            next: AtomicU64::new(0),
        })
    }

    /// `appends` appends of one checkpoint each, every one awaited before the next: seconds.
    pub(crate) async fn once(&self, appends: usize) -> Result<f64, String> {
        let batch: Vec<Checkpoint> = (0..appends)
            .map(|_| typical(self.next.fetch_add(1, Ordering::Relaxed)))
            .collect();
        let t0 = Instant::now();
        for checkpoint in &batch {
            self.store
                .append(&self.run_id, std::slice::from_ref(checkpoint))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(t0.elapsed().as_secs_f64())
    }
}

/// A typical tool step's checkpoint, for step `step_<n>`: about 300 bytes of JSON (a text, a
/// few rows, a path), a model, usage and cost.
pub fn typical(n: u64) -> Checkpoint {
    Checkpoint {
        step_id: format!("step_{n}"),
        status: "completed".to_owned(),
        envelope: json!({
            "result": {
                "content": "The quarterly numbers show revenue up 4% and costs flat; the summary follows.",
                "rows": [[1, "north", 1200.5], [2, "south", 980.25], [3, "east", 1410.0]],
                "path": "/tmp/orc/output/report.md"
            },
            "success": true,
            "error": null
        }),
        started_at: Some(SystemTime::now()),
        completed_at: Some(SystemTime::now()),
        attempts: 1,
        model: Some("small".to_owned()),
        usage: Some(json!({"input_tokens": 812, "output_tokens": 96})),
        cost: Some(0.000_18),
    }
}
