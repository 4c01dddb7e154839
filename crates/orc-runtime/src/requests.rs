//! Every model request the gateway ends, written to the state store: the gateway tells the
//! [`Recorder`] (a [`RequestSink`]) on the request's task, the recorder hands the record to a
//! bounded channel, and one writer task writes what has gathered in one store write (one
//! transaction), waiting up to [`LINGER`] for more records first, so that a busy service
//! writes a few large transactions a second rather than one per handful of requests. A record that finds the channel full is dropped with a warning: metrics are
//! measurements, and a slow store must not slow the requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orc_models::{RequestRecord, RequestSink, Source};
use orc_state::{CallSource, ModelMetric, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

/// Records waiting to be written, at most.
const QUEUE: usize = 8192;

/// Records written in one store write, at most.
const BATCH: usize = 1024;

/// How long the writer gathers records after the first before it writes them (a flush writes
/// at once). Records are measurements: being a tenth of a second late costs nothing, and each
/// transaction saved is a WAL commit and a rollup update saved.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// A recorder writing to `store`, and its writer task (which ends when every handle on the
    /// recorder is gone, or is aborted when the returned handle is dropped).
    pub(crate) fn start(store: Store) -> (Arc<Recorder>, AbortOnDropHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = AbortOnDropHandle::new(tokio::spawn(write(store, rx)));
        let recorder = Arc::new(Recorder {
            queue,
            dropped: AtomicU64::new(0),
        });
        (recorder, task)
    }

    /// Waits until every record handed over before the call is written (or failed to be).
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

/// The writer task: gathers records for up to [`LINGER`] (or until [`BATCH`] of them, or a
/// flush), writes them, then answers the flushes that came with them.
async fn write(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch: Vec<ModelMetric> = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
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
