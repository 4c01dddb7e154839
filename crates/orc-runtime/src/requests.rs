//! Every model request the gateway ends, written to the state store: the gateway tells the
//! [`Recorder`] (a [`RequestSink`]) on the request's task, the recorder hands the record to a
//! bounded channel, and one writer task writes what has gathered in one store write (one
//! transaction), waiting up to [`LINGER`] for more records first, so that a busy service
//! writes a few large transactions a second rather than one per handful of requests. A record
//! that finds the channel full is dropped with a warning: metrics are measurements, and a slow
//! store must not slow the requests.
//!
//! The same task records the lookups of orc's other caches (the step-result cache, the compile
//! cache and the status-query cache; the response cache's are in the request records). A lookup
//! only adds one to an atomic counter where it happens (the cache's own, or a [`Lookups`]); the
//! writer reads the counters every [`SAMPLE`] and at each flush, and writes what they gained,
//! if anything, in one store write ([`Store::record_cache_lookups`]): at most one write a
//! second however many lookups there are, each counted in the minute it was read in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use orc_models::{RequestRecord, RequestSink, Source};
use orc_state::{CacheCounts, CacheLookups, CallSource, ModelMetric, Store};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::task::AbortOnDropHandle;

/// Records waiting to be written, at most.
const QUEUE: usize = 8192;

/// Records written in one store write, at most.
const BATCH: usize = 1024;

/// How long the writer gathers records after the first before it writes them (a flush writes
/// at once). Records are measurements: being a tenth of a second late costs nothing, and each
/// transaction saved is a WAL commit and a rollup update saved.
const LINGER: Duration = Duration::from_millis(100);

/// The model response cache's name in reports (`caches`).
pub const RESPONSE_CACHE: &str = "response";
/// The step-result cache's name in reports (`cache: true` on a tool step).
pub const STEP_CACHE: &str = "step";
/// The compile cache's name in reports: a hit when a pipeline compiled before is not compiled
/// again.
pub const COMPILE_CACHE: &str = "compile";
/// The state store's status-query cache's name in reports.
pub const STATUS_CACHE: &str = "status";

/// How often the caches' lookup counters are read (and what they gained written).
pub(crate) const SAMPLE: Duration = Duration::from_secs(1);

/// Lookups of a cache that keeps no counters of its own (the compile cache), counted where
/// they happen.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Lookups {
    /// Counts one lookup: a hit or a miss.
    pub(crate) fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// Where a cache's lookups are counted: totals since the process started, which only grow.
#[derive(Debug, Clone)]
pub(crate) enum Counter {
    /// A byte cache's own counters.
    Cache(orc_cache::Cache),
    /// Counted by the runtime.
    Lookups(Arc<Lookups>),
    /// The state store's status-query cache (none when query caching is off).
    Queries(Store),
}

impl Counter {
    fn counts(&self) -> CacheCounts {
        match self {
            Counter::Cache(cache) => {
                let stats = cache.stats();
                CacheCounts {
                    hits: stats.hits,
                    misses: stats.misses,
                }
            }
            Counter::Lookups(lookups) => lookups.counts(),
            Counter::Queries(store) => store.query_cache_counts().unwrap_or_default(),
        }
    }
}

/// The caches whose lookups are recorded, each by its name in reports, and what their
/// counters held when last written.
struct Sampler {
    caches: Vec<(&'static str, Counter, CacheCounts)>,
}

impl Sampler {
    fn new(caches: Vec<(&'static str, Counter)>) -> Self {
        Sampler {
            caches: caches
                .into_iter()
                .map(|(name, counter)| {
                    let now = counter.counts();
                    (name, counter, now)
                })
                .collect(),
        }
    }

    /// Writes what the counters gained since the last write, if anything.
    async fn write(&mut self, store: &Store) {
        let at = SystemTime::now();
        let mut gained = Vec::new();
        for (name, counter, last) in &mut self.caches {
            let now = counter.counts();
            let (hits, misses) = (
                now.hits.saturating_sub(last.hits),
                now.misses.saturating_sub(last.misses),
            );
            *last = now;
            if hits > 0 || misses > 0 {
                gained.push(CacheLookups {
                    cache: (*name).to_owned(),
                    at,
                    hits,
                    misses,
                });
            }
        }
        if gained.is_empty() {
            return;
        }
        if let Err(e) = store.record_cache_lookups(&gained).await {
            tracing::warn!("state store: cache lookups not written: {e}");
        }
    }
}

enum Message {
    Record(RequestRecord),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Hands the gateway's request records to the writer task.
#[derive(Debug)]
pub(crate) struct Recorder {
    queue: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

impl Recorder {
    /// A recorder writing to `store` the requests it is told of and the lookups of `caches`
    /// (by name; their counters read every `sample`, [`SAMPLE`] but in tests), and its writer
    /// task (which ends when every handle on the recorder is gone, or is aborted when the
    /// returned handle is dropped).
    pub(crate) fn start(
        store: Store,
        caches: Vec<(&'static str, Counter)>,
        sample: Duration,
    ) -> (Arc<Recorder>, AbortOnDropHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let sampler = Sampler::new(caches);
        let task = AbortOnDropHandle::new(tokio::spawn(write(store, rx, sampler, sample)));
        let recorder = Arc::new(Recorder {
            queue,
            dropped: AtomicU64::new(0),
        });
        (recorder, task)
    }

    /// Waits until every record handed over, and every cache lookup made, before the call is
    /// written (or failed to be).
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl RequestSink for Recorder {
    fn record(&self, request: RequestRecord) {
        if self.queue.try_send(Message::Record(request)).is_err()
            && self
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
        {
            tracing::warn!(
                "state store: the request records' queue is full; records are dropped ({} so far)",
                self.dropped.load(Ordering::Relaxed)
            );
        }
    }
}

/// The writer task: gathers records for up to [`LINGER`] after the first (or until [`BATCH`] of
/// them, or a flush) and writes them, writes the caches' lookups at each flush and `every` so
/// often, then answers the flushes that came with the records.
async fn write(
    store: Store,
    mut rx: mpsc::Receiver<Message>,
    mut sampler: Sampler,
    every: Duration,
) {
    let mut batch: Vec<ModelMetric> = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    let mut sample = tokio::time::interval(every);
    sample.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            message = rx.recv() => message,
            _ = sample.tick() => {
                sampler.write(&store).await;
                continue;
            }
        };
        let Some(first) = first else {
            // Every handle is gone: what the counters gained last.
            sampler.write(&store).await;
            return;
        };
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Record(r) => batch.push(metric(r)),
                Message::Flush(done) => flushes.push(done),
            }
            next = if batch.len() >= BATCH || !flushes.is_empty() {
                None
            } else {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
        }
        if !batch.is_empty()
            && let Err(e) = store.record_model_metrics(&batch).await
        {
            tracing::warn!(
                "state store: {} request records not written: {e}",
                batch.len()
            );
        }
        batch.clear();
        if !flushes.is_empty() {
            sampler.write(&store).await;
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

fn metric(r: RequestRecord) -> ModelMetric {
    ModelMetric {
        model: r.model,
        provider: r.provider.to_owned(),
        at: r.at,
        latency_ms: r.latency.as_secs_f64() * 1000.0,
        success: r.error_kind.is_none(),
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        cost: r.cost,
        source: match r.source {
            Source::Upstream => CallSource::Upstream,
            Source::Cache => CallSource::Cache,
            Source::Shared => CallSource::Shared,
        },
        cache_hit: r.cache_hit,
        error_kind: r.error_kind.map(str::to_owned),
        run_id: r.origin.as_ref().map(|o| o.run_id.clone()),
        pipeline_id: r.origin.as_ref().map(|o| o.pipeline_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant, SystemTime};

    use orc_state::{CacheCounts, StateOptions, Store};

    use super::{Counter, Lookups, Recorder};

    /// The lookups of `cache` the store has for the last few minutes.
    async fn stored(store: &Store, cache: &str) -> CacheCounts {
        let now = SystemTime::now();
        let stats = store
            .request_stats(
                now - Duration::from_secs(300),
                now + Duration::from_secs(60),
            )
            .await
            .unwrap();
        stats.caches.get(cache).copied().unwrap_or_default()
    }

    #[tokio::test]
    async fn lookups_are_written_at_a_flush_and_by_the_clock() {
        let store = Store::open("sqlite::memory:", StateOptions::default())
            .await
            .unwrap();
        let lookups = std::sync::Arc::new(Lookups::default());
        // Counted before the recorder starts: not this recorder's to write.
        lookups.count(true);
        let counter = Counter::Lookups(std::sync::Arc::clone(&lookups));
        let (recorder, _task) = Recorder::start(
            store.clone(),
            vec![("compile", counter)],
            Duration::from_millis(20),
        );
        lookups.count(true);
        lookups.count(false);
        recorder.flush().await;
        assert_eq!(
            stored(&store, "compile").await,
            CacheCounts { hits: 1, misses: 1 }
        );
        // Without a flush, the next reading of the counters writes what they gained.
        lookups.count(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&store, "compile").await.hits < 2 {
            assert!(Instant::now() < deadline, "the lookup was never written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            stored(&store, "compile").await,
            CacheCounts { hits: 2, misses: 1 }
        );
        // Nothing moved: nothing more is written however often the counters are read.
        recorder.flush().await;
        assert_eq!(
            stored(&store, "compile").await,
            CacheCounts { hits: 2, misses: 1 }
        );
    }
}
