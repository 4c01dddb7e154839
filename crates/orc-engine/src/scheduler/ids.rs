//! Run ids, timestamps, and the `execution` namespace templates see.

use std::time::SystemTime;

use orc_pipeline::Plan;
use serde_json::{Value, json};

use crate::scope::{DATE_FORMAT, TIMESTAMP_FORMAT};

/// A new run's id: `<pipeline>_<unix seconds>_<8 hex>`.
pub fn new_run_id(pipeline_id: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{pipeline_id}_{secs}_{:08x}", fastrand::u32(..))
}

pub(super) fn execution_namespace(plan: &Plan, id: Option<&str>) -> (Value, SystemTime) {
    let started = SystemTime::now();
    let dt = chrono::DateTime::<chrono::Utc>::from(started);
    let id = id.map_or_else(|| new_run_id(&plan.id), str::to_string);
    (
        json!({
            "id": id,
            "started_at": dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "timestamp": dt.format(TIMESTAMP_FORMAT).to_string(),
            "date": dt.format(DATE_FORMAT).to_string(),
            "time": dt.format("%H:%M:%S").to_string(),
        }),
        started,
    )
}

pub(super) fn now_rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
