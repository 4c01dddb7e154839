//! The queue handle: streams, consumers, the plans stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt as _;

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
    /// 2 min).
    pub duplicate_window: Duration,
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
        if self.ack_wait.is_zero() || self.max_deliver < 1 || self.duplicate_window.is_zero() {
            return Err(Error::Invalid {
                field: "queue",
                message: "ack_wait, max_deliver and duplicate_window must be more than 0".into(),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .name("orc")
            .connection_timeout(Duration::from_secs(5))
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

    /// Publishes a ready step to `pool` under `message_id`; returns once the stream stored it
    /// (or dropped it as a duplicate of the same id).
    pub async fn publish_step(&self, pool: &str, message_id: &str, payload: Bytes) -> Result<()> {
        self.pool_stream(pool).await?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(message_id);
        self.inner
            .js
            .send_publish(step_subject(pool), publish)
            .await
            .map_err(|e| Error::js("publish a step")(e.to_string()))?
            .await
            .map_err(|e| Error::js("publish a step")(e.to_string()))?;
        Ok(())
    }

    /// Publishes a step's completion to its run's coordinator; returns once it is stored.
    pub async fn publish_completion(&self, run_id: &str, payload: Bytes) -> Result<()> {
        self.inner
            .js
            .publish(done_subject(run_id), payload)
            .await
            .map_err(|e| Error::js("publish a completion")(e.to_string()))?
            .await
            .map_err(|e| Error::js("publish a completion")(e.to_string()))?;
        Ok(())
    }

    /// Every completion of `run_id`, from the first ever published, then as they come.
    pub async fn completions(&self, run_id: &str) -> Result<Completions> {
        let stream = self
            .inner
            .js
            .get_stream(DONE_STREAM)
            .await
            .map_err(|e| Error::js("open the completions stream")(e.to_string()))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: done_subject(run_id),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js("follow a run's completions")(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| Error::js("follow a run's completions")(e.to_string()))?;
        Ok(Completions { messages })
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
        Ok(Work { consumer })
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

/// A run's completions, as its coordinator reads them.
pub struct Completions {
    messages: consumer::pull::Ordered,
}

impl std::fmt::Debug for Completions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completions")
    }
}

impl Completions {
    /// The next completion's payload; `None` when the queue's connection is closed for good.
    pub async fn next(&mut self) -> Option<Result<Bytes>> {
        let message = self.messages.next().await?;
        Some(
            message
                .map(|m| m.payload.clone())
                .map_err(|e| Error::js("read a completion")(e.to_string())),
        )
    }
}

/// A pool's steps, as a worker pulls them.
#[derive(Debug)]
pub struct Work {
    consumer: consumer::PullConsumer,
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
        Ok(Pull { batch })
    }
}

/// One request for steps, as its steps come.
pub struct Pull {
    batch: consumer::pull::Batch,
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
                .map(|message| Delivery { message })
                .map_err(|e| Error::js("pull steps")(e.to_string())),
        )
    }
}

/// One delivered step: its payload, and the acks that settle it.
#[derive(Debug)]
pub struct Delivery {
    message: jetstream::Message,
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

    /// Says the step is done with: it is removed from the stream.
    pub async fn ack(&self) -> Result<()> {
        self.message
            .double_ack()
            .await
            .map_err(|e| Error::js("ack a step")(e.to_string()))
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
