//! Watching a run, fed by the scheduler's events: Prometheus metrics (`--metrics-addr`), the
//! profile (`--profile FILE`) and the Chrome trace (`--trace FILE`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use clap::Args;
use orc_engine::{Event, Observer, RunResult, StepRecord};
use orc_runtime::observe::outcome;
use orc_telemetry::{CacheUse, Exporter, MetricsServer, Profile, RunInfo, StepTiming};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::UserError;

/// When each step became ready, started and finished, for `--profile` and `--trace`; the rest
/// of each step's story comes from the result document.
#[derive(Debug)]
pub(crate) struct Timeline {
    start: Instant,
    clock: Mutex<Clock>,
}

#[derive(Debug, Default)]
struct Clock {
    steps: Vec<Timing>,
    index: HashMap<String, usize>,
}

#[derive(Debug)]
struct Timing {
    id: String,
    ready_ms: f64,
    started_ms: Option<f64>,
    finished_ms: Option<f64>,
}

impl Timeline {
    pub(crate) fn new() -> Self {
        Timeline {
            start: Instant::now(),
            clock: Mutex::new(Clock::default()),
        }
    }

    /// The timings, in the order the steps became ready (or settled without being ready).
    pub(crate) fn timings(&self, result: &RunResult) -> Vec<StepTiming> {
        let clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        clock
            .steps
            .iter()
            .map(|t| {
                let r = result.steps.get(&t.id);
                StepTiming {
                    id: t.id.clone(),
                    tool: r.and_then(|r| r.tool.clone()).unwrap_or_default(),
                    action: r.map(|r| r.action.clone()).unwrap_or_default(),
                    dependencies: r.map(|r| r.dependencies.clone()).unwrap_or_default(),
                    ready_at_ms: t.ready_ms,
                    started_at_ms: t.started_ms,
                    finished_at_ms: t.finished_ms,
                    status: r.map_or("not_run", |r| outcome(r.status)).to_owned(),
                    model_ms: r.and_then(|r| r.model_time).map(|s| s * 1e3),
                    cache: r.and_then(cache_use),
                }
            })
            .collect()
    }
}

/// How a step used a cache: a hit when its result came from one, a miss for a model step that
/// called its model, nothing for other steps.
fn cache_use(r: &StepRecord) -> Option<CacheUse> {
    match (r.cached, r.model.is_some()) {
        (true, _) => Some(CacheUse::Hit),
        (false, true) => Some(CacheUse::Miss),
        (false, false) => None,
    }
}

impl Observer for Timeline {
    fn event(&self, event: Event<'_>) {
        let id = match event {
            Event::StepsAdded { .. } | Event::ModelOutput { .. } => return,
            Event::StepReady { id }
            | Event::StepStarted { id, .. }
            | Event::StepFinished { id, .. } => id,
        };
        let now = self.start.elapsed().as_secs_f64() * 1e3;
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let Clock { steps, index } = &mut *clock;
        let i = *index.entry(id.to_owned()).or_insert_with(|| {
            steps.push(Timing {
                id: id.to_owned(),
                ready_ms: now,
                started_ms: None,
                finished_ms: None,
            });
            steps.len() - 1
        });
        let t = &mut steps[i];
        match event {
            Event::StepStarted { .. } => t.started_ms = Some(now),
            Event::StepFinished { .. } if t.started_ms.is_some() => t.finished_ms = Some(now),
            _ => {}
        }
    }
}

/// Writes the `--profile` report and the `--trace` file of a finished run.
pub(crate) fn write_reports(
    timeline: &Timeline,
    result: &RunResult,
    profile: Option<&PathBuf>,
    trace: Option<&PathBuf>,
) -> Result<(), orc_telemetry::Error> {
    let timings = timeline.timings(result);
    if let Some(path) = trace {
        orc_telemetry::write_trace(path, &result.pipeline_id, &timings)?;
    }
    if let Some(path) = profile {
        let run = RunInfo {
            pipeline: result.pipeline_id.clone(),
            run_id: result.execution_id.clone(),
            total_ms: result.duration * 1e3,
            peak_memory_bytes: orc_telemetry::process::peak_resident_memory_bytes(),
        };
        Profile::build(run, timings, 10).write(path)?;
    }
    Ok(())
}

/// The process's metrics exporter, installed on first use.
fn exporter() -> Result<Exporter, UserError> {
    Exporter::global().map_err(|e| UserError(format!("metrics: {e}")))
}

/// How to watch a run: metrics, profile, trace (`orc run` and `orc resume`).
#[derive(Debug, Args, Default)]
pub(crate) struct WatchArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9184).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Write a JSON profile (per-step queue wait, run and model time, critical path) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) profile: Option<PathBuf>,
    /// Write a Chrome trace (opens in Perfetto or chrome://tracing) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
}

/// Installs the metrics recorder before anything is built when the run will serve metrics, so
/// that what is built before the endpoint starts (the model caches) records as well.
pub(crate) fn install_recorder(watch: &WatchArgs) -> Result<(), UserError> {
    if watch.metrics_addr.is_some() {
        exporter()?;
    }
    Ok(())
}

/// The `/metrics` endpoint of a run (`--metrics-addr`), served until the run ends.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: AbortOnDropHandle<()>,
}

impl Endpoint {
    /// Installs the exporter and listens on `addr`; an address in use is an error at once.
    pub(crate) async fn start(addr: SocketAddr) -> Result<Endpoint, UserError> {
        let exporter = exporter()?;
        let server = MetricsServer::bind(addr, exporter)
            .await
            .map_err(|e| UserError(e.to_string()))?;
        let addr = server.local_addr();
        tracing::info!("metrics on http://{addr}/metrics");
        let cancel = CancellationToken::new();
        let task = AbortOnDropHandle::new(tokio::spawn(server.run(cancel.clone())));
        Ok(Endpoint { addr, cancel, task })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for open scrapes to finish.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}
