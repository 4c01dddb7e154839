//! The Prometheus exporter: the process's one `metrics` recorder and the text it renders.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::names;
use crate::process::update_process_metrics;
use crate::{Error, Result};

/// How often [`Exporter::run`] and [`MetricsServer::run`](crate::MetricsServer::run) fold recorded
/// histogram samples into their buckets.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Durations (`*_seconds`): half a millisecond to ten minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0,
];
/// Token counts of one request (`*_tokens`).
const TOKEN_BUCKETS: &[f64] = &[
    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0,
];
/// US dollars of one request (`*_usd`): a hundredth of a cent to ten dollars.
const COST_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];
/// Requests in one batch ([`names::BATCH_SIZE`]).
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Any other histogram: powers of ten, so that every histogram renders as buckets, never as a
/// summary.
const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0,
];

/// A handle to the Prometheus recorder installed as the process's global `metrics` recorder.
/// Cheap to clone; every clone renders the same metrics.
///
/// Histograms keep their samples until upkeep folds them into buckets. [`Exporter::render`] and
/// a running [`MetricsServer`](crate::MetricsServer) do that; a process that records metrics
/// without serving them runs [`Exporter::run`] so that samples do not pile up.
#[derive(Clone, Debug)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl Exporter {
    /// The process's exporter. The first call installs the Prometheus recorder as the global
    /// `metrics` recorder, with buckets per unit (seconds, tokens, US dollars, batch sizes), and
    /// registers every metric's description ([`names::describe_all`]); later calls return the same
    /// exporter.
    ///
    /// # Errors
    ///
    /// [`Error::Install`] when another `metrics` recorder was installed first (every call then
    /// returns that error: a process has one global recorder).
    pub fn global() -> Result<Exporter> {
        static GLOBAL: OnceLock<Result<Exporter, String>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| install().map_err(|error| error.to_string()))
            .clone()
            .map_err(|message| Error::Install { message })
    }

    /// The current metrics in the Prometheus text format (version 0.0.4), after refreshing the
    /// process metrics and folding recorded histogram samples into their buckets.
    pub fn render(&self) -> String {
        update_process_metrics();
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets, so that they do not pile up between
    /// scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs upkeep every few seconds until `cancel` fires. Needed only where metrics are recorded
    /// but no [`MetricsServer`](crate::MetricsServer) runs, which does the same.
    pub async fn run(self, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = interval.tick() => self.run_upkeep(),
            }
        }
    }
}

fn install() -> Result<Exporter, BuildError> {
    let handle = builder()?.install_recorder()?;
    names::describe_all();
    RECORDING.store(true, Ordering::Release);
    Ok(Exporter { handle })
}

/// Set once [`Exporter::global`] has installed the recorder.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Whether this process records metrics (its [`Exporter::global`] is installed). Parts whose
/// bookkeeping exists only for a metric (the memory cache's eviction count, say) can skip it
/// when nothing records; build them after installing the exporter.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Acquire)
}

/// The recorder's configuration: real histograms everywhere, with buckets chosen by the metric
/// name's unit suffix (a full-name match wins over a suffix match).
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets(DEFAULT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_tokens".to_owned()), TOKEN_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_usd".to_owned()), COST_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_SIZE.to_owned()),
            BATCH_SIZE_BUCKETS,
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::names::{Kind, label};

    fn is_sorted(buckets: &[f64]) -> bool {
        buckets.windows(2).all(|pair| pair[0] < pair[1])
    }

    #[test]
    fn buckets_are_increasing() {
        for buckets in [
            SECONDS_BUCKETS,
            TOKEN_BUCKETS,
            COST_BUCKETS,
            BATCH_SIZE_BUCKETS,
            DEFAULT_BUCKETS,
        ] {
            assert!(is_sorted(buckets), "{buckets:?}");
        }
    }

    #[test]
    fn every_histogram_has_buckets_for_its_unit() {
        for metric in names::ALL.iter().filter(|m| m.kind == Kind::Histogram) {
            let name = metric.name;
            let own = name == names::BATCH_SIZE
                || ["_seconds", "_tokens", "_usd"]
                    .iter()
                    .any(|unit| name.ends_with(unit));
            assert!(
                own,
                "{name}: a histogram that falls back to the default buckets"
            );
        }
    }

    #[test]
    fn global_is_installed_once_and_renders_histograms() {
        let exporter = Exporter::global().unwrap();
        let again = Exporter::global().unwrap();

        // A label value of its own, so that other tests in this process cannot interfere.
        metrics::histogram!(names::STEP_QUEUE_WAIT_SECONDS,
            label::TOOL => "unit-exporter", label::ACTION => "wait")
        .record(0.003);
        metrics::histogram!(names::BATCH_SIZE,
            label::PROVIDER => "unit-exporter", label::MODEL => "m", label::KIND => "embeddings")
        .record(3.0);

        let text = again.render();
        let series = r#"orc_step_queue_wait_seconds_bucket{tool="unit-exporter",action="wait","#;
        assert!(
            text.contains(&format!(r#"{series}le="0.0025"}} 0"#)),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"{series}le="0.005"}} 1"#)),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"{series}le="+Inf"}} 1"#)),
            "{text}"
        );
        assert!(
            text.contains(
                r#"orc_step_queue_wait_seconds_count{tool="unit-exporter",action="wait"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE orc_step_queue_wait_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("quantile="), "{text}");
        let batch =
            r#"orc_batch_size_bucket{provider="unit-exporter",model="m",kind="embeddings","#;
        assert!(text.contains(&format!(r#"{batch}le="2"}} 0"#)), "{text}");
        assert!(text.contains(&format!(r#"{batch}le="4"}} 1"#)), "{text}");
        assert!(text.contains(&format!(r#"{batch}le="256"}} 1"#)), "{text}");
        assert!(
            text.contains("# HELP orc_batch_size Requests sent together in one batch."),
            "{text}"
        );
        assert!(
            exporter
                .render()
                .contains("orc_process_resident_memory_bytes")
        );
    }
}
