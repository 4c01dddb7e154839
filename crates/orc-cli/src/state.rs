//! The state store as `orc` uses it: where it is, a run's record and lease, and the journal
//! the engine writes each finished step (and each model call's measurements) to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orc_engine::{Journal, StepRecord, StepStatus};
use orc_state::{Checkpoint, ModelMetric, NewRun, RunState, StateOptions, Store};
use tokio_util::task::AbortOnDropHandle;

use crate::config::{Config, ConfigError};

/// How long a run's lease lasts without renewal; a killed run can be resumed after it.
pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// The store's URL: `--state`, else the config's `state.url` (or `ORC_STATE__URL`), else
/// SQLite in the data directory.
pub(crate) fn url(flag: Option<&str>, config: &Config) -> String {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return url.to_owned();
    }
    if let Some(url) = config.state.url.as_deref().filter(|u| !u.is_empty()) {
        return url.to_owned();
    }
    format!("sqlite://{}", data_dir().join("state.db").display())
}

/// `ORC_HOME`, else `$XDG_DATA_HOME/orc`, else `~/.local/share/orc`.
fn data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("ORC_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(xdg).join("orc");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".orc"),
        |h| PathBuf::from(h).join(".local/share/orc"),
    )
}

/// Opens (and migrates) the store; a bad URL or an unusable database is a config error.
pub(crate) async fn open(url: &str, config: &Config) -> Result<Store, ConfigError> {
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

/// This process, as the owner of a lease.
fn owner() -> String {
    format!("pid {}", std::process::id())
}

/// A run this process holds: its lease is renewed until it is released or dropped.
pub(crate) struct Held {
    store: Store,
    run_id: String,
    _renew: AbortOnDropHandle<()>,
}

impl Held {
    /// Takes the lease of `run_id`; `Ok(None)` when another process holds it.
    pub(crate) async fn claim(store: &Store, run_id: &str) -> Result<Option<Held>, String> {
        let me = owner();
        if !store
            .claim(run_id, &me, LEASE)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(None);
        }
        let (renewer, id) = (store.clone(), run_id.to_owned());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = renewer.claim(&id, &me, LEASE).await {
                    tracing::warn!("state store: could not renew the run's lease: {e}");
                }
            }
        });
        Ok(Some(Held {
            store: store.clone(),
            run_id: run_id.to_owned(),
            _renew: AbortOnDropHandle::new(renew),
        }))
    }

    /// The journal the engine writes this run's finished steps to.
    pub(crate) fn journal(&self) -> Arc<dyn Journal> {
        Arc::new(StoreJournal {
            store: self.store.clone(),
            run_id: self.run_id.clone(),
        })
    }

    /// Records how the run ended, with its result document, and gives up the lease.
    pub(crate) async fn finish(self, result: &orc_engine::RunResult) -> Result<(), String> {
        let state = match result.status {
            orc_engine::RunStatus::Completed => RunState::Completed,
            orc_engine::RunStatus::Failed => RunState::Failed,
            orc_engine::RunStatus::Interrupted => RunState::Interrupted,
        };
        let doc = serde_json::to_vec(result).map_err(|e| e.to_string())?;
        self.store
            .finish_run(&self.run_id, state, Some(&doc))
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .release(&self.run_id, &owner())
            .await
            .map_err(|e| e.to_string())
    }
}

/// Creates the run's record.
pub(crate) async fn create(
    store: &Store,
    run_id: &str,
    plan: &orc_pipeline::Plan,
    path: &std::path::Path,
    text: &str,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
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
pub(crate) fn hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The records of the steps an earlier attempt completed, by id (later records win).
pub(crate) fn completed_steps(checkpoints: Vec<Checkpoint>) -> HashMap<String, StepRecord> {
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

/// Writes finished steps to the store as checkpoints.
#[derive(Debug)]
struct StoreJournal {
    store: Store,
    run_id: String,
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
            self.store
                .append(&self.run_id, &checkpoints)
                .await
                .map_err(|e| e.to_string())?;
            // Model calls that went upstream are measured for the router; a metric that
            // cannot be written costs the run nothing.
            for r in records.iter().filter(|r| !r.cached) {
                let (Some(model), Some(provider)) = (&r.model, &r.provider) else {
                    continue;
                };
                let usage = r.usage.unwrap_or_default();
                let metric = ModelMetric {
                    model: model.clone(),
                    provider: provider.clone(),
                    at: now,
                    latency_ms: r.model_time.or(r.duration).unwrap_or_default() * 1000.0,
                    success: r.success,
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cost: r.cost.unwrap_or_default(),
                };
                if let Err(e) = self.store.record_model_metric(&metric).await {
                    tracing::warn!("state store: model metric not recorded: {e}");
                }
            }
            Ok(())
        })
    }
}

/// What the store measured of one model's calls over a period.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ModelSummary {
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) calls: u64,
    pub(crate) successes: u64,
    pub(crate) success_rate: f64,
    pub(crate) latency_mean_ms: f64,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p95_ms: f64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost_usd: f64,
}

/// At most this many recent calls per model are read for a summary.
const SUMMARY_CALLS: u32 = 10_000;

/// A summary per configured model of its calls newer than `age` (models without calls are
/// listed with zero calls).
pub(crate) async fn model_summaries(
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

/// What a run's gateway starts from: each model's recent calls (so routing learns across
/// runs), and the budget with the last hour's spend already counted against
/// `cost.budget_per_hour`.
pub(crate) async fn model_setup(
    store: &Store,
    config: &Config,
    run_budget: Option<f64>,
) -> Result<crate::models::Setup, ConfigError> {
    let mut setup = crate::models::Setup::default();
    if config.models.is_empty() {
        return Ok(setup);
    }
    let now = SystemTime::now();
    let since = now
        .checked_sub(HISTORY_AGE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let per_hour = config.cost.budget_per_hour;
    let budget = (run_budget.is_some() || per_hour.is_some()).then(|| {
        orc_models::Budget::new(orc_models::BudgetLimits {
            per_run: run_budget,
            per_hour,
        })
    });
    for spec in &config.models {
        let calls = store
            .model_metrics(&spec.name, since, HISTORY_CALLS)
            .await
            .map_err(|e| ConfigError(format!("state store: {e}")))?;
        let mut stats = orc_models::ModelStats::new(spec.name.clone());
        for m in &calls {
            stats.add_call(m.latency_ms, m.success, m.cost);
            if let (Some(budget), Ok(ago)) = (&budget, now.duration_since(m.at)) {
                budget.record_past_spend(ago, m.cost);
            }
        }
        setup.history.push(stats);
    }
    setup.budget = budget;
    Ok(setup)
}
