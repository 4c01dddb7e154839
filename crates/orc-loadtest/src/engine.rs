//! The load test: options → [`LoadTestOptions::build`] → a cheap-to-clone [`LoadTest`] whose
//! [`LoadTest::run`] drives the workers, one task per virtual user (closed model) or per
//! request in flight (open model), each with its own recorder, and returns the [`Report`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::options::{LoadTestOptions, Target, ThinkTime};
use crate::record::{self, Recorder};
use crate::report::{LoadModel, Overhead, Report, ScenarioStats};
use crate::template::Ctx;
use crate::transport::{ErrorKind, Failure, Prepared, Transport};
use crate::{Error, Result};

/// A load test ready to run. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoadTest {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    users: u32,
    ramp_up: Duration,
    duration: Option<Duration>,
    requests: Option<u64>,
    think_time: ThinkTime,
    timeout: Duration,
    max_duration: Duration,
    rate: Option<f64>,
    names: Vec<(String, u32)>,
    /// Running sums of the weights, for picking a scenario.
    cumulative: Vec<u64>,
    prepared: Vec<Prepared>,
    transport: Transport,
}

/// How far a test has got, sent about four times a second while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Since the start.
    pub elapsed: Duration,
    /// The test's planned length, when it has one.
    pub planned: Option<Duration>,
    /// Users started and not yet done (closed model), or workers (open model).
    pub active_users: u32,
    /// Requests ended so far.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
}

/// The counters every worker shares: one relaxed atomic add each per request, no lock.
#[derive(Debug, Default)]
struct Shared {
    /// Requests started (the next request's number).
    seq: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    active: AtomicU32,
    /// No request starts once set.
    stop: AtomicBool,
    /// Set by a worker that ended because the clock ran out (not because the requests did), so
    /// that a test whose workers all end at the cap itself is still reported as capped.
    out_of_time: AtomicBool,
}

/// The most workers (users, or requests in flight).
pub const MAX_USERS: u32 = 100_000;

impl LoadTestOptions {
    /// Checks the options and sets up the target: the HTTP client's pool, or the service's
    /// routes over the runtime for `inprocess`.
    pub async fn build(self) -> Result<LoadTest> {
        if self.scenarios.is_empty() {
            return Err(Error::Options("no scenario to run".into()));
        }
        if self.users == 0 || self.users > MAX_USERS {
            return Err(Error::Options(format!(
                "users: between 1 and {MAX_USERS}, not {}",
                self.users
            )));
        }
        if self.duration.is_none() && self.requests.is_none() {
            return Err(Error::Options(
                "give a duration or a number of requests: the test must end".into(),
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(Error::Options(format!(
                "rate: a positive number of requests per second, not {rate}"
            )));
        }
        if self.scenarios.iter().any(|s| s.weight == 0) {
            return Err(Error::Options(
                "every scenario's weight is at least 1".into(),
            ));
        }
        let transport = Transport::new(
            &self.target,
            self.token.as_ref(),
            self.runtime.as_ref(),
            self.users,
        )
        .await?;
        let base = match &self.target {
            Target::Url(url) => Some(url.as_str()),
            Target::InProcess => None,
        };
        let mut sum = 0;
        let cumulative = self
            .scenarios
            .iter()
            .map(|s| {
                sum += u64::from(s.weight);
                sum
            })
            .collect();
        Ok(LoadTest {
            inner: Arc::new(Inner {
                prepared: self
                    .scenarios
                    .iter()
                    .map(|s| Prepared::new(&s.action, base))
                    .collect(),
                names: self
                    .scenarios
                    .iter()
                    .map(|s| (s.name.clone(), s.weight))
                    .collect(),
                cumulative,
                target: self.target,
                users: self.users,
                ramp_up: self.ramp_up,
                duration: self.duration,
                requests: self.requests,
                think_time: self.think_time,
                timeout: self.timeout,
                max_duration: self.max_duration,
                rate: self.rate,
                transport,
            }),
        })
    }
}

/// When each of a worker's requests may go: the moments the test began, stops starting
/// requests, and abandons those in flight.
#[derive(Debug, Clone, Copy)]
struct Clock {
    t0: Instant,
    stop_at: Instant,
    hard_at: Instant,
    /// The planned length, when the test has one.
    planned: Option<Duration>,
    /// Whether the hard cap comes before the planned length (or there is none).
    capped: bool,
}

impl LoadTest {
    /// Runs the test until its duration, its request count, the hard cap or `cancel` (then no
    /// new request starts and those in flight finish), and reports. `progress`, when given,
    /// receives the counts as the test goes.
    pub async fn run(
        &self,
        cancel: CancellationToken,
        progress: Option<watch::Sender<Progress>>,
    ) -> Report {
        let inner = &self.inner;
        let span = tracing::info_span!("loadtest", target = %inner.target, users = inner.users);
        async move {
            let t0 = Instant::now();
            let planned = inner.duration.map(|d| d.min(inner.max_duration));
            let stop_at = t0 + planned.unwrap_or(inner.max_duration);
            let hard_at = (stop_at + inner.timeout).min(t0 + inner.max_duration);
            let clock = Clock {
                t0,
                stop_at,
                hard_at,
                planned,
                capped: inner.duration.is_none_or(|d| d > inner.max_duration),
            };
            // Short tests get finer intervals, so that their charts have a shape.
            let interval = planned
                .map_or(Duration::from_secs(1), |d| d / 100)
                .clamp(Duration::from_millis(100), Duration::from_secs(1));
            let shared = Arc::new(Shared::default());
            let (tx, rx) = mpsc::channel(1024);
            let collector = tokio::spawn(record::collect(rx, inner.prepared.len()));
            let cpu_before = cpu_time();
            let stop = CancellationToken::new();
            let mut workers = JoinSet::new();
            for user in 0..inner.users {
                let recorder = Recorder::new(t0, interval, inner.prepared.len(), tx.clone());
                let (inner, shared, stop) =
                    (Arc::clone(&self.inner), Arc::clone(&shared), stop.clone());
                workers.spawn(async move {
                    match inner.rate {
                        None => closed_user(&inner, &shared, user, recorder, &stop, clock).await,
                        Some(rate) => {
                            open_worker(&inner, &shared, user, rate, recorder, &stop, clock).await;
                        }
                    }
                });
            }
            drop(tx);
            let stopped = supervise(
                &mut workers,
                &shared,
                &stop,
                &cancel,
                clock,
                progress.as_ref(),
            )
            .await;
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu = (cpu_time() - cpu_before).max(0.0);
            let collected = match collector.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("the collector of figures ended: {e}");
                    record::collect(mpsc::channel(1).1, inner.prepared.len()).await
                }
            };
            let (per, total) = collected.stats(elapsed);
            let requests = total.requests.max(1) as f64;
            Report {
                target: inner.target.to_string(),
                model: match inner.rate {
                    None => LoadModel::Closed {
                        users: inner.users,
                        ramp_up_seconds: inner.ramp_up.as_secs_f64(),
                    },
                    Some(rate) => LoadModel::Open {
                        rate,
                        max_in_flight: inner.users,
                        ramp_up_seconds: inner.ramp_up.as_secs_f64(),
                    },
                },
                elapsed_seconds: elapsed,
                scenarios: per
                    .into_iter()
                    .zip(&inner.names)
                    .map(|(stats, (name, weight))| ScenarioStats {
                        name: name.clone(),
                        weight: *weight,
                        stats,
                    })
                    .collect(),
                total,
                timeline: collected.timeline(interval),
                overhead: Overhead {
                    cpu_seconds: cpu,
                    cpu_us_per_request: cpu * 1e6 / requests,
                    cores_busy: if elapsed > 0.0 { cpu / elapsed } else { 0.0 },
                    includes: match inner.target {
                        Target::Url(_) => "this process: the load generator alone".into(),
                        Target::InProcess => {
                            "this process: the load generator and the in-process service".into()
                        }
                    },
                },
                stopped,
            }
        }
        .instrument(span)
        .await
    }
}

/// Waits for the workers, stopping them at the planned end, on `cancel` and at the hard cap,
/// and sends progress. Returns why the test stopped early, if it did.
async fn supervise(
    workers: &mut JoinSet<()>,
    shared: &Shared,
    stop: &CancellationToken,
    cancel: &CancellationToken,
    clock: Clock,
    progress: Option<&watch::Sender<Progress>>,
) -> Option<String> {
    let mut stopped = None;
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let report = |progress: Option<&watch::Sender<Progress>>| {
        if let Some(tx) = progress {
            tx.send_replace(Progress {
                elapsed: clock.t0.elapsed(),
                planned: clock.planned,
                active_users: shared.active.load(Relaxed),
                requests: shared.done.load(Relaxed),
                errors: shared.errors.load(Relaxed),
            });
        }
    };
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => tracing::error!("a load test worker panicked: {e}"),
                Some(_) => {}
            },
            () = cancel.cancelled(), if !stop.is_cancelled() => {
                shared.stop.store(true, Relaxed);
                stop.cancel();
                stopped = Some("cancelled".to_owned());
            }
            () = tokio::time::sleep_until(clock.stop_at), if !stop.is_cancelled() => {
                shared.stop.store(true, Relaxed);
                stop.cancel();
                if clock.capped {
                    stopped = Some("max_duration".to_owned());
                }
            }
            // Workers abandon their requests at the hard cap themselves; this is the backstop.
            () = tokio::time::sleep_until(clock.hard_at + Duration::from_secs(5)) => {
                tracing::warn!("workers still running past the hard cap: stopping them");
                workers.abort_all();
                stopped = Some("max_duration".to_owned());
            }
            _ = ticks.tick() => report(progress),
        }
    }
    report(progress);
    // The workers watch the clock too, and may all end at the cap before the timer above fires.
    if stopped.is_none() && clock.capped && shared.out_of_time.load(Relaxed) {
        stopped = Some("max_duration".to_owned());
    }
    stopped
}

impl Inner {
    fn pick(&self, rng: &mut fastrand::Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let r = rng.u64(0..total);
        self.cumulative.partition_point(|&c| c <= r)
    }

    fn out_of_requests(&self, i: u64) -> bool {
        self.requests.is_some_and(|n| i >= n)
    }

    /// Sends request `i` of scenario `s` by worker `user`, and tells how long it took from
    /// `since`, or how it failed; `None` when abandoned at the hard cap.
    async fn one(
        &self,
        s: usize,
        i: u64,
        user: u32,
        rng: &mut fastrand::Rng,
        since: Instant,
        clock: Clock,
    ) -> Option<(Instant, Result<Duration, Failure>)> {
        let req = self.prepared.get(s)?;
        let body = req.body(Ctx { i, user }, rng);
        let sent = Instant::now();
        let limit = (sent + self.timeout).min(clock.hard_at);
        let answer = tokio::time::timeout_at(limit, self.transport.send(req, body)).await;
        let end = Instant::now();
        let outcome = match answer {
            Ok(Ok(())) => Ok(end.saturating_duration_since(since)),
            Ok(Err(failure)) => Err(failure),
            Err(_) if end >= clock.hard_at => return None,
            Err(_) => Err(Failure::new(
                ErrorKind::Timeout,
                format!("no answer within {:?}", self.timeout),
            )),
        };
        Some((end, outcome))
    }
}

/// Sleeps until `at`, or until the test stops; `false` when it stopped.
async fn sleep_until(at: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at) => true,
        () = stop.cancelled() => false,
    }
}

fn count(shared: &Shared, outcome: &Result<Duration, Failure>) {
    shared.done.fetch_add(1, Relaxed);
    if outcome.is_err() {
        shared.errors.fetch_add(1, Relaxed);
    }
}

/// A closed-model user: starts at its place in the ramp-up, then sends a request, waits for the
/// answer, thinks, and again, until the test stops.
async fn closed_user(
    inner: &Inner,
    shared: &Shared,
    user: u32,
    mut recorder: Recorder,
    stop: &CancellationToken,
    clock: Clock,
) {
    let start = clock.t0
        + inner
            .ramp_up
            .mul_f64(f64::from(user) / f64::from(inner.users));
    if start > Instant::now() && !sleep_until(start.min(clock.stop_at), stop).await {
        return;
    }
    shared.active.fetch_add(1, Relaxed);
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + u64::from(user));
    loop {
        let now = Instant::now();
        if shared.stop.load(Relaxed) {
            break;
        }
        if now >= clock.stop_at {
            shared.out_of_time.store(true, Relaxed);
            break;
        }
        let i = shared.seq.fetch_add(1, Relaxed);
        if inner.out_of_requests(i) {
            break;
        }
        let s = inner.pick(&mut rng);
        let Some((end, outcome)) = inner.one(s, i, user, &mut rng, now, clock).await else {
            shared.out_of_time.store(true, Relaxed);
            break;
        };
        count(shared, &outcome);
        recorder.record(s, end, outcome).await;
        if let Some(think) = inner.think_time.pick(&mut rng)
            && !sleep_until((end + think).min(clock.stop_at), stop).await
        {
            break;
        }
    }
    shared.active.fetch_sub(1, Relaxed);
    recorder.flush().await;
}

/// When request `k` of an open-model test is due, from the start: at `rate` per second, the
/// rate rising linearly from 0 over `ramp_up` (so `k` requests are due by
/// `rate·t²/(2·ramp_up)` during it).
fn due(k: u64, rate: f64, ramp_up: Duration) -> Duration {
    let ramp = ramp_up.as_secs_f64();
    let k = k as f64;
    let in_ramp = rate * ramp / 2.0;
    let secs = if k < in_ramp {
        (2.0 * ramp * k / rate).sqrt()
    } else {
        ramp + (k - in_ramp) / rate
    };
    Duration::from_secs_f64(secs.min(1e9))
}

/// The timer's resolution: a request due sooner than this goes at once.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// An open-model worker: takes the next request number, waits for the time it is due, sends it
/// and counts its response time from when it was due, so that a slow answer that held the
/// worker back shows in the latency of the requests it delayed (coordinated omission).
async fn open_worker(
    inner: &Inner,
    shared: &Shared,
    worker: u32,
    rate: f64,
    mut recorder: Recorder,
    stop: &CancellationToken,
    clock: Clock,
) {
    shared.active.fetch_add(1, Relaxed);
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + u64::from(worker));
    loop {
        if shared.stop.load(Relaxed) {
            break;
        }
        let i = shared.seq.fetch_add(1, Relaxed);
        if inner.out_of_requests(i) {
            break;
        }
        let due = clock.t0 + due(i, rate, inner.ramp_up);
        if due >= clock.stop_at {
            shared.out_of_time.store(true, Relaxed);
            break;
        }
        let now = Instant::now();
        if due > now + TIMER_SLACK && !sleep_until(due - TIMER_SLACK, stop).await {
            break;
        }
        // A request that leaves early (within the timer's resolution) counts from when it left.
        let since = due.min(Instant::now());
        let s = inner.pick(&mut rng);
        let Some((end, outcome)) = inner.one(s, i, worker, &mut rng, since, clock).await else {
            shared.out_of_time.store(true, Relaxed);
            break;
        };
        count(shared, &outcome);
        recorder.record(s, end, outcome).await;
    }
    shared.active.fetch_sub(1, Relaxed);
    recorder.flush().await;
}

/// CPU seconds (user and system) this process has used.
fn cpu_time() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(usage.user_time()) + secs(usage.system_time())
        }
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_model_schedule_ramps_linearly_then_holds_the_rate() {
        let ramp = Duration::from_secs(10);
        // 100/s ramping over 10 s: 500 requests are due during the ramp-up.
        assert_eq!(due(0, 100.0, ramp), Duration::ZERO);
        let at_ramp_end = due(500, 100.0, ramp).as_secs_f64();
        assert!((at_ramp_end - 10.0).abs() < 1e-9, "{at_ramp_end}");
        let later = due(600, 100.0, ramp).as_secs_f64();
        assert!((later - 11.0).abs() < 1e-9, "{later}");
        // Half the ramp-up's requests are due by 1/√2 of it.
        let half = due(250, 100.0, ramp).as_secs_f64();
        assert!((half - 10.0 / 2f64.sqrt()).abs() < 1e-9, "{half}");
        assert_eq!(due(3, 2.0, Duration::ZERO), Duration::from_millis(1500));
    }
}
