//! The state store as `orc` uses it: where it is, a run's record and lease, and the journal
//! the engine writes each finished step (and each model call's measurements) to.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use orc_engine::{Journal, StepRecord, StepStatus};
use orc_state::{
    Checkpoint, Claim, Lease, LeaseOwner, ModelMetric, NewRun, RunState, StateOptions, Store,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::config::{Config, ConfigError};

/// How long a run's lease lasts without renewal, unless `state.lease_seconds` says otherwise. A
/// run whose process was killed on this machine is taken over at once; one on another machine
/// (or one whose process is stopped) can be resumed once its lease runs out.
pub const LEASE: Duration = Duration::from_secs(10);

/// The lease length: `state.lease_seconds` (or `ORC_STATE__LEASE_SECONDS`; checked when the
/// config was loaded), else [`LEASE`].
pub fn lease_length(config: &Config) -> Duration {
    config.state.lease_seconds.map_or(LEASE, |secs| {
        Duration::from_secs_f64(secs.clamp(crate::config::MIN_LEASE, crate::config::MAX_LEASE))
    })
}

/// The store's URL: `--state`, else the config's `state.url` (or `ORC_STATE__URL`), else
/// SQLite in the data directory ([`crate::dirs::data_dir`]).
pub fn url(flag: Option<&str>, config: &Config) -> String {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return url.to_owned();
    }
    if let Some(url) = config.state.url.as_deref().filter(|u| !u.is_empty()) {
        return url.to_owned();
    }
    format!(
        "sqlite://{}",
        crate::dirs::data_dir().join("state.db").display()
    )
}

/// Opens (and migrates) the store; a bad URL or an unusable database is a config error.
pub async fn open(url: &str, config: &Config) -> Result<Store, ConfigError> {
    let db = &config.performance.database;
    let options = StateOptions {
        pool_size: db.connection_pool_size.max(1),
        query_timeout: Duration::from_secs_f64(db.query_timeout.max(0.001)),
        query_cache_ttl: db.enable_query_caching.then_some(Duration::from_secs(1)),
        ..StateOptions::default()
    };
    Store::open(url, options)
        .await
        .map_err(|e| ConfigError(format!("state store: {e}")))
}

/// How a held run's lease was lost, shared by the renewer, the journal and the run.
#[derive(Debug, Default)]
struct Lost {
    /// Why, once it happened.
    reason: OnceLock<String>,
    /// Cancelled when the lease is lost (and on Ctrl-C): no step starts after it.
    stop: CancellationToken,
}

impl Lost {
    fn lose(&self, reason: String) {
        if self.reason.set(reason).is_ok() {
            tracing::error!(
                "{}; this process stops the run, the other one carries it on",
                self.reason.get().map_or("", String::as_str)
            );
        }
        self.stop.cancel();
    }
}

/// A run this process holds: its lease is renewed until it is released or dropped. When a
/// renewal finds that another process took the run over (or the store cannot be reached for
/// as long as the lease lasts), the run's stop token is cancelled so that no further step
/// starts, and the store refuses this process's checkpoints from then on.
pub struct Held {
    store: Store,
    lease: Lease,
    lost: Arc<Lost>,
    _renew: AbortOnDropHandle<()>,
}

impl Held {
    /// Takes the lease of `run_id` for `length`, under a new owner token for this process;
    /// `Ok(Err(holder))` when another live process holds it.
    pub async fn claim(
        store: &Store,
        run_id: &str,
        length: Duration,
    ) -> Result<Result<Held, String>, String> {
        let me = LeaseOwner::this_process().await.to_string();
        let lease = match store
            .claim(run_id, &me, length)
            .await
            .map_err(|e| e.to_string())?
        {
            Claim::Held(lease) => lease,
            Claim::Refused { holder } => return Ok(Err(holder)),
        };
        let lost = Arc::new(Lost::default());
        let renew = tokio::spawn(renew(
            store.clone(),
            lease.clone(),
            length,
            Arc::clone(&lost),
        ));
        Ok(Ok(Held {
            store: store.clone(),
            lease,
            lost,
            _renew: AbortOnDropHandle::new(renew),
        }))
    }

    /// The token that stops the run: cancelled when the lease is lost; the caller cancels it
    /// on Ctrl-C too.
    pub fn stop_token(&self) -> CancellationToken {
        self.lost.stop.clone()
    }

    /// The journal the engine writes this run's finished steps to, fenced by the lease.
    pub fn journal(&self) -> Arc<dyn Journal> {
        Arc::new(StoreJournal {
            store: self.store.clone(),
            lease: self.lease.clone(),
            lost: Arc::clone(&self.lost),
        })
    }

    /// Marks the run running again (a resume), as the lease's holder.
    pub async fn reopen(&self) -> Result<(), String> {
        self.store
            .finish_leased(&self.lease, RunState::Running, None)
            .await
            .map_err(|e| e.to_string())
    }

    /// Records how the run ended, with its result document, and gives up the lease. When the
    /// lease was lost, records nothing (the run is another process's now): `result` says so
    /// (failed, `error_type` `LeaseLost`) and the error is the reason.
    pub async fn finish(self, result: &mut orc_engine::RunResult) -> Result<(), String> {
        if let Some(reason) = self.lost.reason.get() {
            result.status = orc_engine::RunStatus::Failed;
            result.success = false;
            result.error = Some(reason.clone());
            result.error_type = Some("LeaseLost".to_owned());
            return Err(reason.clone());
        }
        let state = match result.status {
            orc_engine::RunStatus::Completed => RunState::Completed,
            orc_engine::RunStatus::Failed => RunState::Failed,
            orc_engine::RunStatus::Interrupted => RunState::Interrupted,
        };
        let doc = serde_json::to_vec(&*result).map_err(|e| e.to_string())?;
        self.store
            .finish_leased(&self.lease, state, Some(&doc))
            .await
            .map_err(|e| e.to_string())?;
        self.release().await
    }

    /// Records a run that could not start as failed, with the reason, and gives up the lease.
    pub async fn fail(self, reason: &str) -> Result<(), String> {
        let doc = serde_json::json!({
            "execution_id": self.lease.run_id,
            "status": "failed",
            "success": false,
            "error": reason,
            "error_type": "StartError",
        });
        self.store
            .finish_leased(
                &self.lease,
                RunState::Failed,
                Some(doc.to_string().as_bytes()),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.release().await
    }

    async fn release(&self) -> Result<(), String> {
        self.store
            .release(&self.lease.run_id, &self.lease.owner)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Renews `lease` every third of its `length` until it is lost: another owner has it, or no
/// renewal succeeded for so long that the lease may have run out before the next try.
async fn renew(store: Store, lease: Lease, length: Duration, lost: Arc<Lost>) {
    let every = length / 3;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store.renew(&lease, length).await {
            Ok(()) => renewed = tokio::time::Instant::now(),
            Err(e @ orc_state::Error::LeaseLost { .. }) => {
                lost.lose(e.to_string());
                return;
            }
            Err(e) if renewed.elapsed() + every >= length => {
                lost.lose(format!(
                    "run `{}`: lost the run's lease: it could not be renewed for {:.1} s ({e})",
                    lease.run_id,
                    renewed.elapsed().as_secs_f64()
                ));
                return;
            }
            Err(e) => tracing::warn!("state store: could not renew the run's lease: {e}"),
        }
    }
}

/// Creates the run's record.
pub async fn create(
    store: &Store,
    run_id: &str,
    plan: &orc_pipeline::Plan,
    path: &std::path::Path,
    text: &str,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let path = match path.is_absolute() {
        true => path.to_path_buf(),
        false => tokio::fs::canonicalize(path)
            .await
            .unwrap_or_else(|_| path.to_path_buf()),
    };
    store
        .create_run(&NewRun {
            run_id: run_id.to_owned(),
            pipeline_id: plan.id.clone(),
            pipeline_path: path.display().to_string(),
            pipeline_hash: hash(text),
            inputs: serde_json::Value::Object(inputs.clone()),
            started_at: SystemTime::now(),
        })
        .await
        .map_err(|e| e.to_string())
}

/// The hash a resumed run's pipeline text must still have.
pub fn hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The records of the steps an earlier attempt completed, by id (later records win).
pub fn completed_steps(checkpoints: Vec<Checkpoint>) -> HashMap<String, StepRecord> {
    let mut steps = HashMap::with_capacity(checkpoints.len());
    for c in checkpoints {
        match serde_json::from_value::<StepRecord>(c.envelope) {
            Ok(record) if record.status == StepStatus::Completed => {
                steps.insert(c.step_id, record);
            }
            Ok(_) => {
                steps.remove(&c.step_id);
            }
            Err(e) => tracing::warn!(step = %c.step_id, "unreadable checkpoint ignored: {e}"),
        }
    }
    steps
}

/// Writes finished steps to the store as checkpoints, fenced by the run's lease.
#[derive(Debug)]
struct StoreJournal {
    store: Store,
    lease: Lease,
    lost: Arc<Lost>,
}

impl Journal for StoreJournal {
    fn append<'a>(
        &'a self,
        records: &'a [StepRecord],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let now = SystemTime::now();
            let checkpoints: Vec<Checkpoint> = records
                .iter()
                .map(|r| Checkpoint {
                    step_id: r.id.clone(),
                    status: serde_json::to_value(r.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    envelope: serde_json::to_value(r).unwrap_or_default(),
                    started_at: r
                        .duration
                        .and_then(|d| now.checked_sub(Duration::from_secs_f64(d.max(0.0)))),
                    completed_at: Some(now),
                    attempts: r.retries + 1,
                    model: r.model.clone(),
                    usage: r.usage.and_then(|u| serde_json::to_value(u).ok()),
                    cost: r.cost,
                })
                .collect();
            match self.store.append_leased(&self.lease, &checkpoints).await {
                Ok(()) => {}
                Err(e @ orc_state::Error::LeaseLost { .. }) => {
                    self.lost.lose(e.to_string());
                    return Err(e.to_string());
                }
                Err(e) => return Err(e.to_string()),
            }
            // Each model request is recorded by the gateway as it ends (see `requests.rs`).
            Ok(())
        })
    }
}

/// What the store measured of one model's calls over a period.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSummary {
    /// The model's configured name.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Calls measured.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// `successes / calls` (0 without calls).
    pub success_rate: f64,
    /// Mean latency, milliseconds.
    pub latency_mean_ms: f64,
    /// Median latency, milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile latency, milliseconds.
    pub latency_p95_ms: f64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Spend, USD.
    pub cost_usd: f64,
}

/// At most this many recent calls per model are read for a summary.
const SUMMARY_CALLS: u32 = 10_000;

/// A summary per configured model of its calls newer than `age` (models without calls are
/// listed with zero calls).
pub async fn model_summaries(
    store: &Store,
    config: &Config,
    age: Duration,
) -> Result<Vec<ModelSummary>, ConfigError> {
    let since = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out = Vec::with_capacity(config.models.len());
    for spec in &config.models {
        let calls = store
            .model_metrics(&spec.name, since, SUMMARY_CALLS)
            .await
            .map_err(|e| ConfigError(format!("state store: {e}")))?;
        out.push(summarize(&spec.name, spec.provider.as_str(), &calls));
    }
    Ok(out)
}

// Token counts and call counts fit an f64 well enough for averages.
#[allow(clippy::cast_precision_loss)]
fn summarize(model: &str, provider: &str, calls: &[ModelMetric]) -> ModelSummary {
    let mut latencies: Vec<f64> = calls.iter().map(|m| m.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        // Nearest rank: an index within the list.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[i.min(latencies.len() - 1)]
    };
    let n = calls.len() as u64;
    let successes = calls.iter().filter(|m| m.success).count() as u64;
    ModelSummary {
        model: model.to_owned(),
        provider: provider.to_owned(),
        calls: n,
        successes,
        success_rate: if n == 0 {
            0.0
        } else {
            successes as f64 / n as f64
        },
        latency_mean_ms: if n == 0 {
            0.0
        } else {
            latencies.iter().sum::<f64>() / n as f64
        },
        latency_p50_ms: pick(0.5),
        latency_p95_ms: pick(0.95),
        input_tokens: calls.iter().map(|m| m.input_tokens).sum(),
        output_tokens: calls.iter().map(|m| m.output_tokens).sum(),
        cost_usd: calls.iter().map(|m| m.cost).sum(),
    }
}

/// How far back the router's history reaches, and how many calls per model it reads.
const HISTORY_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const HISTORY_CALLS: u32 = 1_000;

/// Each configured model's recent calls, for the router to start from (so routing learns across
/// runs).
pub async fn model_history(
    store: &Store,
    config: &Config,
) -> Result<Vec<orc_models::ModelStats>, ConfigError> {
    let since = SystemTime::now()
        .checked_sub(HISTORY_AGE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut history = Vec::with_capacity(config.models.len());
    for spec in &config.models {
        let calls = store
            .model_metrics(&spec.name, since, HISTORY_CALLS)
            .await
            .map_err(|e| ConfigError(format!("state store: {e}")))?;
        let mut stats = orc_models::ModelStats::new(spec.name.clone());
        for m in &calls {
            stats.add_call(m.latency_ms, m.success, m.cost);
        }
        history.push(stats);
    }
    Ok(history)
}

/// A run's budget: `per_run` USD (`--budget`, the pipeline's `budget:`) and
/// `cost.budget_per_hour`, with the last hour's recorded spend already counted against the
/// latter; `None` when neither limits the run.
pub async fn budget(
    store: &Store,
    config: &Config,
    per_run: Option<f64>,
) -> Result<Option<orc_models::Budget>, ConfigError> {
    let per_hour = config.cost.budget_per_hour;
    if config.models.is_empty() || (per_run.is_none() && per_hour.is_none()) {
        return Ok(None);
    }
    let budget = orc_models::Budget::new(orc_models::BudgetLimits { per_run, per_hour });
    if per_hour.is_some() {
        let now = SystemTime::now();
        let since = now
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for spec in &config.models {
            let calls = store
                .model_metrics(&spec.name, since, HISTORY_CALLS)
                .await
                .map_err(|e| ConfigError(format!("state store: {e}")))?;
            for m in &calls {
                if let Ok(ago) = now.duration_since(m.at) {
                    budget.record_past_spend(ago, m.cost);
                }
            }
        }
    }
    Ok(Some(budget))
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The status a run is shown with: a run recorded as running whose lease nobody holds any more
/// is `abandoned`: its process died (or lost the store) without recording how the run ended,
/// and resuming continues it.
pub fn shown_status(r: &orc_state::RunRow) -> &'static str {
    if r.status == RunState::Running && !r.held {
        ABANDONED
    } else {
        r.status.as_str()
    }
}

/// The status of a run whose process is gone without recording its end.
pub const ABANDONED: &str = "abandoned";

/// A run's record as `orc runs list --json` prints it (and the service answers with).
pub fn row_json(r: &orc_state::RunRow) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.run_id,
        "pipeline_id": r.pipeline_id,
        "pipeline_path": r.pipeline_path,
        "status": shown_status(r),
        "started_at": secs(r.started_at),
        "finished_at": r.finished_at.map(secs),
        "steps_done": r.steps_done,
    })
}
