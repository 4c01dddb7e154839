//! What each worker records, and the one task that merges it: a worker keeps a histogram and
//! error counts per scenario for the current interval only, touched by no one else (no lock per
//! request), and hands them to the collector when the interval changes. The collector merges
//! them into the totals per scenario and the timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::report::{self, Point, Stats, Timeline};
use crate::transport::{ErrorKind, Failure};

/// One worker's figures of one scenario over one interval.
#[derive(Debug)]
pub(crate) struct Slice {
    interval: u32,
    scenario: usize,
    hist: Histogram<u64>,
    errors: ErrorCounts,
}

/// Error counts by kind, each with what the first error of its kind said: a few kinds,
/// searched in order.
type ErrorCounts = Vec<(ErrorKind, u64, String)>;

/// A worker's recorder.
#[derive(Debug)]
pub(crate) struct Recorder {
    t0: Instant,
    interval: Duration,
    current: u32,
    scenarios: Vec<(Histogram<u64>, ErrorCounts)>,
    tx: mpsc::Sender<Slice>,
}

impl Recorder {
    pub(crate) fn new(
        t0: Instant,
        interval: Duration,
        scenarios: usize,
        tx: mpsc::Sender<Slice>,
    ) -> Self {
        Recorder {
            t0,
            interval,
            current: 0,
            scenarios: (0..scenarios)
                .map(|_| (report::histogram(), Vec::new()))
                .collect(),
            tx,
        }
    }

    fn interval_of(&self, at: Instant) -> u32 {
        let n = at.saturating_duration_since(self.t0).as_nanos() / self.interval.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Records a request of `scenario` that ended at `at`: its response time, or how it failed.
    pub(crate) async fn record(
        &mut self,
        scenario: usize,
        at: Instant,
        outcome: Result<Duration, Failure>,
    ) {
        let interval = self.interval_of(at);
        if interval != self.current {
            self.flush().await;
            self.current = interval;
        }
        let Some((hist, errors)) = self.scenarios.get_mut(scenario) else {
            return;
        };
        match outcome {
            Ok(took) => {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                hist.saturating_record(us);
            }
            Err(failure) => match errors.iter_mut().find(|(k, ..)| *k == failure.kind) {
                Some((_, n, _)) => *n += 1,
                None => errors.push((failure.kind, 1, failure.detail)),
            },
        }
    }

    /// Hands the current interval's figures to the collector.
    pub(crate) async fn flush(&mut self) {
        for (scenario, (hist, errors)) in self.scenarios.iter_mut().enumerate() {
            if hist.is_empty() && errors.is_empty() {
                continue;
            }
            let slice = Slice {
                interval: self.current,
                scenario,
                hist: std::mem::replace(hist, report::histogram()),
                errors: std::mem::take(errors),
            };
            // The collector outlives every worker; if it is gone the figures have no reader.
            let _ = self.tx.send(slice).await;
        }
    }
}

#[derive(Debug)]
struct Interval {
    hist: Histogram<u64>,
    errors: u64,
}

/// Each kind's count and what its first error said.
type ErrorsByKind = BTreeMap<ErrorKind, (u64, String)>;

/// The merged figures, filled by the collector task.
#[derive(Debug)]
pub(crate) struct Collected {
    scenarios: Vec<(Histogram<u64>, ErrorsByKind)>,
    timeline: Vec<Interval>,
}

/// The collector: merges slices until every worker's sender is dropped.
pub(crate) async fn collect(mut rx: mpsc::Receiver<Slice>, scenarios: usize) -> Collected {
    let mut out = Collected {
        scenarios: (0..scenarios)
            .map(|_| (report::histogram(), BTreeMap::new()))
            .collect(),
        timeline: Vec::new(),
    };
    while let Some(slice) = rx.recv().await {
        let at = slice.interval as usize;
        while out.timeline.len() <= at {
            out.timeline.push(Interval {
                hist: report::histogram(),
                errors: 0,
            });
        }
        let errors: u64 = slice.errors.iter().map(|(_, n, _)| n).sum();
        if let Some(interval) = out.timeline.get_mut(at) {
            let _ = interval.hist.add(&slice.hist);
            interval.errors += errors;
        }
        if let Some((hist, by_kind)) = out.scenarios.get_mut(slice.scenario) {
            let _ = hist.add(&slice.hist);
            for (kind, n, detail) in slice.errors {
                by_kind.entry(kind).or_insert((0, detail)).0 += n;
            }
        }
    }
    out
}

/// The most points a timeline keeps: longer tests merge neighbouring intervals.
const MAX_POINTS: usize = 600;

impl Collected {
    /// Each scenario's figures and the total's, over `elapsed` seconds.
    pub(crate) fn stats(&self, elapsed: f64) -> (Vec<Stats>, Stats) {
        let mut total = report::histogram();
        let mut total_errors = BTreeMap::new();
        let per = self
            .scenarios
            .iter()
            .map(|(hist, by_kind)| {
                let _ = total.add(hist);
                let named: BTreeMap<String, (u64, String)> = by_kind
                    .iter()
                    .map(|(k, (n, detail))| (k.to_string(), (*n, detail.clone())))
                    .collect();
                for (kind, (n, detail)) in &named {
                    total_errors
                        .entry(kind.clone())
                        .or_insert((0, detail.clone()))
                        .0 += n;
                }
                Stats::new(hist.clone(), named, elapsed)
            })
            .collect();
        (per, Stats::new(total, total_errors, elapsed))
    }

    /// The timeline, intervals of `interval` each (merged when there are too many).
    pub(crate) fn timeline(&self, interval: Duration) -> Timeline {
        let group = self.timeline.len().div_ceil(MAX_POINTS).max(1);
        let width = interval.as_secs_f64() * group as f64;
        let points = self
            .timeline
            .chunks(group)
            .enumerate()
            .map(|(i, chunk)| {
                let mut hist = report::histogram();
                let mut errors = 0;
                for c in chunk {
                    let _ = hist.add(&c.hist);
                    errors += c.errors;
                }
                let requests = hist.len() + errors;
                let l = report::Latency::of(&hist);
                Point {
                    t: i as f64 * width,
                    requests,
                    errors,
                    requests_per_second: requests as f64 / width,
                    p50_ms: l.p50,
                    p95_ms: l.p95,
                    p99_ms: l.p99,
                    max_ms: l.max,
                }
            })
            .collect();
        Timeline {
            interval_seconds: width,
            points,
        }
    }
}
