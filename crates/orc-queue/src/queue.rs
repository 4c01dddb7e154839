//! The queue handle: streams, consumers, the plans stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;

use orc_pipeline::is_pool_name;

use crate::{Error, Result};

/// The stream that carries every pool's completions.
const DONE_STREAM: &str = "ORC_DONE";
/// How long completions are kept: long enough for a replacement coordinator to read them.
const DONE_KEPT: Duration = Duration::from_secs(24 * 3600);
/// The stream of compiled plans: the last message of `orc.plans.<key>` is the plan (JetStream's
/// key-value buckets are such streams; this one is made and read with the stream API, which NATS
/// 2.9's JetStream answers in the form this client reads).
const PLANS_STREAM: &str = "ORC_PLANS";
/// How long a plan is kept after it was put (a run's coordinator puts it again on resume).
const PLANS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The first pause before an operation that failed is tried again; it doubles up to
/// [`RETRY_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const RETRY_MOST: Duration = Duration::from_secs(2);
/// The durable consumer all workers of a pool share.
const WORKERS: &str = "workers";

/// How to reach the queue, and the limits of the pool this process serves.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    /// The NATS server (`nats://127.0.0.1:4222`).
    pub url: String,
    /// The pool this process publishes to (a coordinator) or pulls from (a worker).
    pub pool: String,
    /// How long a delivered step may go without an ack or an in-progress ack before it is
    /// delivered to another worker (default 30 s). Fixed when a pool's consumer is created.
    pub ack_wait: Duration,
    /// Most deliveries of one step message (default 5); past it the message is dropped.
    pub max_deliver: i64,
    /// How long the stream remembers a message id, so a repeated publish is dropped (default
    /// 2 min). A publish that fails while the server is away is tried again for as long.
    pub duplicate_window: Duration,
    /// How long a coordinator lets a published step wait for its first delivery to a worker
    /// before it fails the step and removes its message (default 5 min).
    pub claim_timeout: Duration,
}

impl QueueOptions {
    /// The defaults for `url` and `pool`.
    pub fn new(url: impl Into<String>, pool: impl Into<String>) -> QueueOptions {
        QueueOptions {
            url: url.into(),
            pool: pool.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            duplicate_window: Duration::from_secs(120),
            claim_timeout: Duration::from_secs(300),
        }
    }

    /// Checks the options, connects, and makes sure the pool's stream and consumer, the
    /// completions stream and the plans stream exist.
    pub async fn build(self) -> Result<Queue> {
        if !is_pool_name(&self.pool) {
            return Err(Error::Invalid {
                field: "queue.pool",
                message: format!(
                    "`{}` is not a pool name: 1 to 64 letters, digits, `-` and `_`",
                    self.pool
                ),
            });
        }
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            return Err(Error::Invalid {
                field: "queue.url",
                message: format!("`{}` is not a NATS URL (nats://host:port)", self.url),
            });
        }
        if self.ack_wait.is_zero()
            || self.max_deliver < 1
            || self.duplicate_window.is_zero()
            || self.claim_timeout.is_zero()
        {
            return Err(Error::Invalid {
                field: "queue",
                message:
                    "ack_wait, max_deliver, duplicate_window and claim_timeout must be more than 0"
                        .into(),
            });
        }
        let (connections, connected) = watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .name("orc")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let connections = connections.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        connections.send_modify(|n| *n += 1);
                    }
                }
            })
            .connect(self.url.as_str())
            .await
            .map_err(|e| Error::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: DONE_STREAM.into(),
            subjects: vec!["orc.done.>".into()],
            max_age: DONE_KEPT,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js("create the completions stream")(e.to_string()))?;
        let plans = js
            .get_or_create_stream(stream::Config {
                name: PLANS_STREAM.into(),
                subjects: vec!["orc.plans.>".into()],
                max_messages_per_subject: 1,
                max_age: PLANS_KEPT,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js("create the plans stream")(e.to_string()))?;
        let queue = Queue {
            inner: Arc::new(Inner {
                js,
                plans,
                options: self,
                pools: Mutex::default(),
                connected,
            }),
        };
        queue.pool_stream(&queue.inner.options.pool).await?;
        Ok(queue)
    }
}

/// The queue. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    js: jetstream::Context,
    plans: stream::Stream,
    options: QueueOptions,
    /// Pools whose stream and consumer this process has made sure of.
    pools: Mutex<HashSet<String>>,
    /// Counts the client's (re)connections to the server.
    connected: watch::Receiver<u64>,
}

/// A plan's key is one subject token: letters and digits (a digest in hex).
fn plan_key_ok(key: &str) -> Result<()> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(Error::Invalid {
        field: "plan key",
        message: format!("`{key}` is not letters and digits"),
    })
}

fn stream_name(pool: &str) -> String {
    format!("ORC_STEPS_{pool}")
}

fn step_subject(pool: &str) -> String {
    format!("orc.steps.{pool}")
}

/// The completions subject of a run: a digest of its id, which may hold any character.
fn done_subject(run_id: &str) -> String {
    format!("orc.done.{}", blake3::hash(run_id.as_bytes()).to_hex())
}

impl Queue {
    /// The options the queue was built with.
    pub fn options(&self) -> &QueueOptions {
        &self.inner.options
    }

    /// Makes sure `pool`'s stream and its workers' consumer exist (once per process and pool).
    async fn pool_stream(&self, pool: &str) -> Result<()> {
        if !is_pool_name(pool) {
            return Err(Error::Invalid {
                field: "pool",
                message: format!("`{pool}` is not a pool name"),
            });
        }
        let known = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(pool);
        if known {
            return Ok(());
        }
        let o = &self.inner.options;
        let stream = self
            .inner
            .js
            .get_or_create_stream(stream::Config {
                name: stream_name(pool),
                subjects: vec![step_subject(pool)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: o.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js("create the pool's stream")(e.to_string()))?;
        stream
            .get_or_create_consumer(
                WORKERS,
                consumer::pull::Config {
                    durable_name: Some(WORKERS.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: o.ack_wait,
                    max_deliver: o.max_deliver,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::js("create the workers' consumer")(e.to_string()))?;
        self.inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pool.to_owned());
        Ok(())
    }

    /// Publishes a ready step to `pool` under `message_id`; returns the stream sequence of its
    /// message once the stream stored it (or dropped it as a duplicate of the same id: then the
    /// first one's).
    pub async fn publish_step(&self, pool: &str, message_id: &str, payload: Bytes) -> Result<u64> {
        self.pool_stream(pool).await?;
        self.publish_stored(
            "publish a step",
            step_subject(pool),
            Some(message_id),
            payload,
        )
        .await
    }

    /// Publishes a step's completion to its run's coordinator; returns once it is stored.
    pub async fn publish_completion(&self, run_id: &str, payload: Bytes) -> Result<()> {
        self.publish_stored("publish a completion", done_subject(run_id), None, payload)
            .await
            .map(drop)
    }

    /// Publishes `payload` and waits for the stream to store it; returns its stream sequence.
    /// A publish that fails (the server restarts, the connection is lost and found again) is
    /// tried again for up to the de-duplication window, the longest a retry under the same
    /// message id is sure to be dropped if the first one was stored after all.
    async fn publish_stored(
        &self,
        operation: &'static str,
        subject: String,
        message_id: Option<&str>,
        payload: Bytes,
    ) -> Result<u64> {
        let patience = self.inner.options.duplicate_window;
        let started = tokio::time::Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            let mut publish = jetstream::message::PublishMessage::build().payload(payload.clone());
            if let Some(id) = message_id {
                publish = publish.message_id(id);
            }
            let stored = match self.inner.js.send_publish(subject.clone(), publish).await {
                Ok(ack) => ack.await.map(|ack| ack.sequence),
                Err(e) => Err(e),
            };
            match stored {
                Ok(sequence) => return Ok(sequence),
                Err(e) if started.elapsed() + pause < patience => {
                    tracing::debug!("queue: {operation}: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MOST);
                }
                Err(e) => return Err(Error::js(operation)(e.to_string())),
            }
        }
    }

    /// Every completion of `run_id`, from the first ever published, then as they come.
    pub async fn completions(&self, run_id: &str) -> Result<Completions> {
        let mut completions = Completions {
            js: self.inner.js.clone(),
            subject: done_subject(run_id),
            connected: self.inner.connected.clone(),
            messages: None,
            last: 0,
        };
        completions.messages = Some(completions.follow().await?);
        completions.connected.mark_unchanged();
        Ok(completions)
    }

    /// Stores a compiled plan under `key` (its content hash: putting it again changes nothing
    /// but its age).
    pub async fn put_plan(&self, key: &str, plan: Bytes) -> Result<()> {
        plan_key_ok(key)?;
        self.inner
            .js
            .publish(format!("orc.plans.{key}"), plan)
            .await
            .map_err(|e| Error::js("store a plan")(e.to_string()))?
            .await
            .map_err(|e| Error::js("store a plan")(e.to_string()))?;
        Ok(())
    }

    /// The plan stored under `key`, if any.
    pub async fn plan(&self, key: &str) -> Result<Option<Bytes>> {
        plan_key_ok(key)?;
        match self
            .inner
            .plans
            .get_last_raw_message_by_subject(&format!("orc.plans.{key}"))
            .await
        {
            Ok(message) => Ok(Some(message.payload)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(Error::js("read a plan")(e.to_string())),
        }
    }

    /// The steps of this queue's pool, for a worker: pulls at most `max` at a time.
    pub async fn work(&self) -> Result<Work> {
        let pool = &self.inner.options.pool;
        self.pool_stream(pool).await?;
        let consumer: consumer::PullConsumer = self
            .inner
            .js
            .get_consumer_from_stream(WORKERS, stream_name(pool))
            .await
            .map_err(|e| Error::js("open the workers' consumer")(e.to_string()))?;
        Ok(Work {
            consumer,
            patience: self.inner.options.ack_wait,
        })
    }

    /// How many steps `pool` holds that no worker has finished (waiting for a worker, or
    /// delivered and not yet acked), and the stream sequence of the last step delivered for the
    /// first time: the workers' consumer delivers in order, so a step whose sequence is past it
    /// has not been taken yet.
    pub async fn pool_state(&self, pool: &str) -> Result<PoolState> {
        self.pool_stream(pool).await?;
        let mut consumer: consumer::PullConsumer = self
            .inner
            .js
            .get_consumer_from_stream(WORKERS, stream_name(pool))
            .await
            .map_err(|e| Error::js("read the workers' consumer")(e.to_string()))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| Error::js("read the workers' consumer")(e.to_string()))?;
        Ok(PoolState {
            steps: info.num_pending + info.num_ack_pending as u64,
            delivered_up_to: info.delivered.stream_sequence,
        })
    }

    /// The pools this process has used (published to or pulled from).
    pub fn pools(&self) -> Vec<String> {
        let mut pools: Vec<String> = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        pools.sort();
        pools
    }

    /// Removes the step message at `sequence` from `pool`'s stream, so no worker gets it; false
    /// when it is not there (a worker finished it, or it was removed before).
    pub async fn remove_step(&self, pool: &str, sequence: u64) -> Result<bool> {
        let stream = self
            .inner
            .js
            .get_stream(stream_name(pool))
            .await
            .map_err(|e| Error::js("open the pool's stream")(e.to_string()))?;
        match stream.delete_message(sequence).await {
            Ok(deleted) => Ok(deleted),
            // JetStream answers an error when there is no message at that sequence.
            Err(e) if matches!(e.kind(), stream::DeleteMessageErrorKind::JetStream(_)) => Ok(false),
            Err(e) => Err(Error::js("remove a step")(e.to_string())),
        }
    }

    /// The step messages of `pool` that reached `MaxDeliver` deliveries without an ack, as
    /// JetStream announces them from now on (its advisory; the server no longer delivers them).
    pub async fn exhausted(&self, pool: &str) -> Result<Exhausted> {
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{WORKERS}",
            stream_name(pool)
        );
        let subscriber = self
            .inner
            .js
            .client()
            .subscribe(subject)
            .await
            .map_err(|e| Error::js("follow a pool's undeliverable steps")(e.to_string()))?;
        Ok(Exhausted { subscriber })
    }

    /// Deletes `pool`'s stream and its consumer, with any step still in it (tearing a pool
    /// down; tests).
    pub async fn remove_pool(&self, pool: &str) -> Result<()> {
        self.inner
            .js
            .delete_stream(stream_name(pool))
            .await
            .map_err(|e| Error::js("delete a pool's stream")(e.to_string()))?;
        self.inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pool);
        Ok(())
    }
}

/// A run's completions, as its coordinator reads them. It follows them again from the last one
/// it handed over whenever the client connects to the server anew (the server restarted: the
/// ephemeral consumer it read through is gone) or the consumer fails, so none is missed or
/// handed over twice.
pub struct Completions {
    js: jetstream::Context,
    subject: String,
    connected: watch::Receiver<u64>,
    messages: Option<consumer::pull::Ordered>,
    /// The stream sequence of the last completion handed over (0: none yet).
    last: u64,
}

impl std::fmt::Debug for Completions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completions")
    }
}

impl Completions {
    /// An ordered consumer of the run's completions after the last one handed over.
    fn follow(&self) -> impl Future<Output = Result<consumer::pull::Ordered>> + Send + use<> {
        follow(self.js.clone(), self.subject.clone(), self.last)
    }

    /// The next completion's payload; `None` when the queue's connection is closed for good.
    /// An `Err` says what went wrong on the way; the next call goes on.
    pub async fn next(&mut self) -> Option<Result<Bytes>> {
        let mut pause = RETRY_FIRST;
        loop {
            let Some(messages) = self.messages.as_mut() else {
                match self.follow().await {
                    Ok(messages) => {
                        self.messages = Some(messages);
                        pause = RETRY_FIRST;
                    }
                    Err(e) => {
                        tracing::debug!("queue: {e}; trying again in {pause:?}");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MOST);
                    }
                }
                continue;
            };
            let next = tokio::select! {
                next = messages.next() => Some(next?),
                changed = self.connected.changed() => {
                    changed.ok()?;
                    None
                }
            };
            match next {
                Some(Ok(message)) => {
                    if let Ok(info) = message.info() {
                        self.last = info.stream_sequence;
                    }
                    return Some(Ok(message.payload.clone()));
                }
                Some(Err(e)) => {
                    self.messages = None;
                    return Some(Err(Error::js("read a completion")(e.to_string())));
                }
                None => {
                    tracing::debug!("queue: connected anew; following the run's completions again");
                    self.messages = None;
                }
            }
        }
    }
}

/// An ordered consumer of the completions on `subject` after stream sequence `last` (0: from the
/// first).
async fn follow(
    js: jetstream::Context,
    subject: String,
    last: u64,
) -> Result<consumer::pull::Ordered> {
    let deliver_policy = match last {
        0 => consumer::DeliverPolicy::All,
        last => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: last + 1,
        },
    };
    let stream = js
        .get_stream(DONE_STREAM)
        .await
        .map_err(|e| Error::js("open the completions stream")(e.to_string()))?;
    stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js("follow a run's completions")(e.to_string()))?
        .messages()
        .await
        .map_err(|e| Error::js("follow a run's completions")(e.to_string()))
}

/// What [`Queue::pool_state`] reads of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Steps in the pool's stream: not yet delivered, or delivered and not yet acked.
    pub steps: u64,
    /// The stream sequence of the last step message delivered for the first time.
    pub delivered_up_to: u64,
}

/// A step message JetStream stopped delivering: it reached `MaxDeliver` deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undeliverable {
    /// Its stream sequence, as [`Queue::publish_step`] returned it.
    pub sequence: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// The advisories of a pool's undeliverable steps ([`Queue::exhausted`]).
pub struct Exhausted {
    subscriber: async_nats::Subscriber,
}

impl std::fmt::Debug for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exhausted")
    }
}

/// JetStream's `io.nats.jetstream.advisory.v1.max_deliver` advisory, the fields orc reads.
#[derive(serde::Deserialize)]
struct MaxDeliverAdvisory {
    stream_seq: u64,
    deliveries: u64,
}

impl Exhausted {
    /// The next undeliverable step; `None` when the connection is closed for good. An advisory
    /// that does not decode is skipped.
    pub async fn next(&mut self) -> Option<Undeliverable> {
        loop {
            let message = self.subscriber.next().await?;
            match serde_json::from_slice::<MaxDeliverAdvisory>(&message.payload) {
                Ok(a) => {
                    return Some(Undeliverable {
                        sequence: a.stream_seq,
                        deliveries: a.deliveries,
                    });
                }
                Err(e) => tracing::warn!("queue: a max-deliveries advisory does not decode: {e}"),
            }
        }
    }
}

/// A pool's steps, as a worker pulls them.
#[derive(Debug)]
pub struct Work {
    consumer: consumer::PullConsumer,
    /// How long an ack is tried: the step's `AckWait`, past which it is delivered again anyway.
    patience: Duration,
}

impl Work {
    /// Asks for at most `max` steps, for up to `wait`: [`Pull::next`] hands each over as it
    /// comes.
    pub async fn pull(&self, max: usize, wait: Duration) -> Result<Pull> {
        let batch = self
            .consumer
            .batch()
            .max_messages(max.max(1))
            .expires(wait)
            .messages()
            .await
            .map_err(|e| Error::js("pull steps")(e.to_string()))?;
        Ok(Pull {
            batch,
            patience: self.patience,
        })
    }
}

/// One request for steps, as its steps come.
pub struct Pull {
    batch: consumer::pull::Batch,
    patience: Duration,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pull")
    }
}

impl Pull {
    /// The next step of the request; `None` once it has them all or its wait is over.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        let message = self.batch.next().await?;
        Some(
            message
                .map(|message| Delivery {
                    message,
                    patience: self.patience,
                })
                .map_err(|e| Error::js("pull steps")(e.to_string())),
        )
    }
}

/// One delivered step: its payload, and the acks that settle it.
#[derive(Debug)]
pub struct Delivery {
    message: jetstream::Message,
    patience: Duration,
}

impl Delivery {
    /// The step, as published.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// How many times the message was delivered, this time included (1 the first time).
    pub fn delivered(&self) -> i64 {
        self.message.info().map_or(1, |i| i.delivered)
    }

    /// Says the step is done with: it is removed from the stream. An ack that gets no answer
    /// (the server restarts) is tried again until the step's `AckWait` is over, after which the
    /// step is delivered again anyway.
    pub async fn ack(&self) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            match self.message.double_ack().await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() + pause < self.patience => {
                    tracing::debug!("queue: ack a step: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MOST);
                }
                Err(e) => return Err(Error::js("ack a step")(e.to_string())),
            }
        }
    }

    /// Says the step is still being worked on: its `AckWait` starts again.
    pub async fn in_progress(&self) -> Result<()> {
        self.message
            .ack_with(jetstream::AckKind::Progress)
            .await
            .map_err(|e| Error::js("extend a step's ack wait")(e.to_string()))
    }

    /// Says the step can never be worked on (it does not decode): it is not delivered again.
    pub async fn reject(&self) -> Result<()> {
        self.message
            .ack_with(jetstream::AckKind::Term)
            .await
            .map_err(|e| Error::js("reject a step")(e.to_string()))
    }
}
