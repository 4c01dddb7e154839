//! The model-call metrics, read back from an in-memory recorder installed as the
//! process's global `metrics` recorder.
//!
//! The recorder is shared by every test of this binary (under `cargo test` they share
//! one process), so each test here uses model names of its own and reads only their
//! series; a snapshot drains the recorder, so every read goes through [`recorded`],
//! which keeps the running totals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::{Context as _, Result, anyhow, ensure};
use futures::StreamExt as _;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use orc_fake_provider::{Behaviour, FakeProvider, ModelBehaviour};
use orc_models::{
    ApiKey, BatchOptions, ChatRequest, Cost, CostConfig, Gateway, GatewayOptions, HttpOptions,
    Model, ModelClient, ModelSpec, ProviderKind, Registry, Router, RoutingConfig, Source,
};
use orc_telemetry::names::{self, label};

use super::{KEY, quick_retries};

/// A series: a metric's name and its labels, sorted by key.
type Series = (String, Vec<(String, String)>);

/// Every sample recorded in this process since the recorder was installed.
struct Recorded {
    snapshotter: Snapshotter,
    counters: HashMap<Series, u64>,
    /// Summed over snapshots: right for gauges that only go up by increments.
    gauges: HashMap<Series, f64>,
    histograms: HashMap<Series, Vec<f64>>,
}

/// The totals so far, after folding in what was recorded since the last read. Installs
/// the recorder on first use.
fn recorded() -> Result<MutexGuard<'static, Recorded>> {
    static RECORDED: OnceLock<Result<Mutex<Recorded>, String>> = OnceLock::new();
    let recorded = RECORDED
        .get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder
                .install()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            Ok(Mutex::new(Recorded {
                snapshotter,
                counters: HashMap::new(),
                gauges: HashMap::new(),
                histograms: HashMap::new(),
            }))
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))?;
    let mut recorded = recorded.lock().map_err(|_| anyhow!("poisoned"))?;
    for (key, _, _, value) in recorded.snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let series = (key.name().to_owned(), labels);
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                *recorded.counters.entry(series).or_default() += n;
            }
            (MetricKind::Gauge, DebugValue::Gauge(v)) => {
                *recorded.gauges.entry(series).or_default() += v.into_inner();
            }
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => recorded
                .histograms
                .entry(series)
                .or_default()
                .extend(samples.into_iter().map(|s| s.into_inner())),
            _ => {}
        }
    }
    Ok(recorded)
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl Recorded {
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.gauges
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0.0)
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> &[f64] {
        self.histograms
            .get(&series(name, labels))
            .map_or(&[], Vec::as_slice)
    }

    /// Every series of `name` whose labels include `label = value`.
    fn any_with(&self, name: &str, label: &str, value: &str) -> bool {
        let has = |(n, labels): &Series| {
            n == name && labels.iter().any(|(k, v)| k == label && v == value)
        };
        self.counters.keys().any(has)
            || self.gauges.keys().any(has)
            || self.histograms.keys().any(has)
    }
}

fn spec(fake: &FakeProvider, name: &str) -> ModelSpec {
    let mut spec = ModelSpec::new(name, ProviderKind::OpenAi);
    spec.base_url = fake.openai_base_url();
    spec.cost = Some(Cost {
        input_per_1k: 1.0,
        output_per_1k: 2.0,
    });
    spec
}

fn model(spec: &ModelSpec) -> Model {
    Model {
        spec: Arc::new(spec.clone()),
        key: Some(ApiKey::new(KEY)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_requests_retries_tokens_streams_and_batches_are_recorded() -> Result<()> {
    // Installed before any call of this test; earlier samples are drained here.
    drop(recorded()?);
    let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
    let mut chat = spec(&fake, "metrics-chat");
    // The provider's id of the model, which is not the label: the configured name is.
    chat.model = "metrics-chat-provider-id".to_owned();
    let embed = spec(&fake, "metrics-embed");
    let registry = Registry::new(vec![chat.clone(), embed.clone()]).map_err(anyhow::Error::msg)?;
    let cache = orc_cache::Cache::open(orc_cache::CacheOptions {
        namespace: "metrics-test".into(),
        ..orc_cache::CacheOptions::default()
    })?;
    let client = ModelClient::new(&HttpOptions::default())?.with_retry_policy(quick_retries());
    let gateway = Gateway::new(
        registry,
        client,
        GatewayOptions {
            cache: Some(cache),
            batch: BatchOptions::default(),
            ..GatewayOptions::default()
        },
    );
    let (chat_model, embed_model) = (model(&chat), model(&embed));

    // One success, then the same request from the cache: one upstream request.
    let req = ChatRequest::user("count me once");
    let first = gateway.chat(&chat_model, &req, true).await?;
    let again = gateway.chat(&chat_model, &req, true).await?;
    ensure!(first.source == Source::Upstream && again.source == Source::Cache);
    // A 500, retried, then a success: two upstream requests.
    let retried = gateway
        .chat(
            &chat_model,
            &ChatRequest::user("again [[fake:status=500,fail_times=1]]"),
            false,
        )
        .await?;
    // One streamed answer, read to its end.
    let (mut stream, source) = gateway
        .chat_stream(&chat_model, &ChatRequest::user("stream a few words"), false)
        .await?;
    ensure!(source == Source::Upstream);
    while let Some(delta) = stream.next().await {
        delta?;
    }
    ensure!(stream.time_to_first_token().is_some());
    let streamed = stream.usage();
    drop(stream);
    // Three inputs embedded together: one batch of three.
    let inputs = vec!["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()];
    let embedded = gateway.embed(&embed_model, inputs, false).await?;
    ensure!(embedded.value.len() == 3 && embedded.source == Source::Upstream);
    ensure!(gateway.stats().upstream_calls == 4, "{:?}", gateway.stats());

    let seen = recorded()?;
    let chat_labels = [(label::PROVIDER, "openai"), (label::MODEL, "metrics-chat")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = chat_labels.to_vec();
        labels.push(extra);
        labels
    };
    let requests = |outcome| {
        seen.counter(
            names::MODEL_REQUESTS_TOTAL,
            &with((label::OUTCOME, outcome)),
        )
    };
    ensure!(requests("ok") == 3, "ok requests: {}", requests("ok"));
    ensure!(
        requests("error") == 1,
        "failed requests: {}",
        requests("error")
    );
    let errors = seen.counter(
        names::MODEL_ERRORS_TOTAL,
        &with((label::KIND, "server_error")),
    );
    ensure!(errors == 1, "server errors: {errors}");
    let retries = seen.counter(names::MODEL_RETRIES_TOTAL, &chat_labels);
    ensure!(retries == 1, "retries: {retries}");
    let durations = seen.histogram(names::MODEL_REQUEST_DURATION_SECONDS, &chat_labels);
    ensure!(durations.len() == 4, "durations: {durations:?}");
    let ttft = seen.histogram(names::MODEL_TIME_TO_FIRST_TOKEN_SECONDS, &chat_labels);
    ensure!(
        ttft.len() == 1 && ttft[0] > 0.0,
        "time to first token: {ttft:?}"
    );

    // Tokens and cost: what the three answered requests billed, no more.
    let billed = first.usage + retried.usage + streamed;
    ensure!(billed.input_tokens > 0 && billed.output_tokens > 0);
    let input = seen.counter(names::MODEL_INPUT_TOKENS_TOTAL, &chat_labels);
    let output = seen.counter(names::MODEL_OUTPUT_TOKENS_TOTAL, &chat_labels);
    ensure!(
        (input, output) == (billed.input_tokens, billed.output_tokens),
        "tokens {input}/{output}, billed {billed:?}"
    );
    let per_request = seen.histogram(names::MODEL_REQUEST_INPUT_TOKENS, &chat_labels);
    ensure!(per_request.len() == 3, "{per_request:?}");
    ensure!(
        seen.histogram(names::MODEL_REQUEST_OUTPUT_TOKENS, &chat_labels)
            .len()
            == 3
    );
    let usd = seen.gauge(names::MODEL_COST_USD_TOTAL, &chat_labels);
    let expected = orc_models::price(&chat, billed).context("priced")?;
    ensure!((usd - expected).abs() < 1e-9, "cost {usd} vs {expected}");
    ensure!(
        seen.histogram(names::MODEL_REQUEST_COST_USD, &chat_labels)
            .len()
            == 3
    );

    // The batch: one upstream request of three inputs.
    let embed_labels = [(label::PROVIDER, "openai"), (label::MODEL, "metrics-embed")];
    let batches = seen.histogram(
        names::BATCH_SIZE,
        &[
            (label::PROVIDER, "openai"),
            (label::MODEL, "metrics-embed"),
            (label::KIND, "embeddings"),
        ],
    );
    ensure!(batches == [3.0], "batch sizes: {batches:?}");
    let embed_requests = seen.counter(
        names::MODEL_REQUESTS_TOTAL,
        &[
            (label::PROVIDER, "openai"),
            (label::MODEL, "metrics-embed"),
            (label::OUTCOME, "ok"),
        ],
    );
    ensure!(embed_requests == 1, "embedding requests: {embed_requests}");
    let embed_input = seen.counter(names::MODEL_INPUT_TOKENS_TOTAL, &embed_labels);
    ensure!(
        embed_input == embedded.usage.input_tokens && embed_input > 0,
        "{embed_input} vs {:?}",
        embedded.usage
    );

    // Labels carry names from the config, never a provider's model id, a prompt or the key.
    for value in [
        "metrics-chat-provider-id",
        "count me once",
        "stream a few words",
        KEY,
    ] {
        ensure!(
            !seen.any_with(names::MODEL_REQUESTS_TOTAL, label::MODEL, value),
            "{value} became a label"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_and_their_errors_are_recorded() -> Result<()> {
    drop(recorded()?);
    let down = ModelBehaviour {
        failure_rate: 1.0,
        failure_status: Some(503),
        ..ModelBehaviour::default()
    };
    // No key: the fallback is resolved from the registry, which reads none.
    let fake = FakeProvider::start(Behaviour::default().with_model("metrics-down", down)).await?;
    let (primary, backup) = (spec(&fake, "metrics-down"), spec(&fake, "metrics-backup"));
    let registry = Registry::new(vec![primary.clone(), backup]).map_err(anyhow::Error::msg)?;
    let routing = RoutingConfig {
        fallbacks: [("metrics-down".to_owned(), vec!["metrics-backup".to_owned()])].into(),
        ..RoutingConfig::default()
    };
    let router = Router::new(&registry, routing, CostConfig::default(), Vec::new())?;
    let client = ModelClient::new(&HttpOptions::default())?.with_retry_policy(quick_retries());
    let gateway = Gateway::new(
        registry,
        client,
        GatewayOptions {
            router: Some(router),
            ..GatewayOptions::default()
        },
    );
    let answer = gateway
        .chat(&model(&primary), &ChatRequest::user("anyone up?"), false)
        .await?;
    ensure!(
        answer.model.name == "metrics-backup",
        "{}",
        answer.model.name
    );

    let seen = recorded()?;
    let fallbacks = seen.counter(
        names::MODEL_FALLBACKS_TOTAL,
        &[(label::FROM, "metrics-down"), (label::TO, "metrics-backup")],
    );
    ensure!(fallbacks == 1, "fallbacks: {fallbacks}");
    // Every attempt on the model that is down failed, and all but the first were retries.
    let attempts = u64::from(quick_retries().max_attempts);
    let down = [(label::PROVIDER, "openai"), (label::MODEL, "metrics-down")];
    let failed = seen.counter(
        names::MODEL_REQUESTS_TOTAL,
        &[down[0], down[1], (label::OUTCOME, "error")],
    );
    let errors = seen.counter(
        names::MODEL_ERRORS_TOTAL,
        &[down[0], down[1], (label::KIND, "server_error")],
    );
    let retries = seen.counter(names::MODEL_RETRIES_TOTAL, &down);
    ensure!(
        (failed, errors, retries) == (attempts, attempts, attempts - 1),
        "failed {failed}, errors {errors}, retries {retries}"
    );
    let answered = seen.counter(
        names::MODEL_REQUESTS_TOTAL,
        &[
            (label::PROVIDER, "openai"),
            (label::MODEL, "metrics-backup"),
            (label::OUTCOME, "ok"),
        ],
    );
    ensure!(answered == 1, "backup requests: {answered}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_records_streams_read_whole_and_dropped() -> Result<()> {
    drop(recorded()?);
    let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
    let client = ModelClient::new(&HttpOptions::default())?.with_retry_policy(quick_retries());
    let key = ApiKey::new(KEY);
    let whole = spec(&fake, "metrics-stream-whole");
    let dropped = spec(&fake, "metrics-stream-dropped");

    // `chat` with `stream: true` streams and assembles: one answered request.
    let req = ChatRequest {
        stream: true,
        ..ChatRequest::user("one two three four")
    };
    let answer = client.chat(&whole, Some(&key), &req).await?;
    // A stream dropped after its first delta: counted, neither timed nor billed.
    let mut stream = client.chat_stream(&dropped, Some(&key), &req).await?;
    stream.next().await.context("no delta")??;
    drop(stream);

    let seen = recorded()?;
    let whole = [
        (label::PROVIDER, "openai"),
        (label::MODEL, "metrics-stream-whole"),
    ];
    let ok = seen.counter(
        names::MODEL_REQUESTS_TOTAL,
        &[whole[0], whole[1], (label::OUTCOME, "ok")],
    );
    ensure!(ok == 1, "answered: {ok}");
    ensure!(
        seen.histogram(names::MODEL_TIME_TO_FIRST_TOKEN_SECONDS, &whole)
            .len()
            == 1
    );
    ensure!(
        seen.histogram(names::MODEL_REQUEST_DURATION_SECONDS, &whole)
            .len()
            == 1
    );
    let output = seen.counter(names::MODEL_OUTPUT_TOKENS_TOTAL, &whole);
    ensure!(
        output == answer.usage.output_tokens && output > 0,
        "{output}"
    );

    let dropped = [
        (label::PROVIDER, "openai"),
        (label::MODEL, "metrics-stream-dropped"),
    ];
    let cancelled = seen.counter(
        names::MODEL_REQUESTS_TOTAL,
        &[dropped[0], dropped[1], (label::OUTCOME, "cancelled")],
    );
    ensure!(cancelled == 1, "cancelled: {cancelled}");
    ensure!(
        seen.histogram(names::MODEL_TIME_TO_FIRST_TOKEN_SECONDS, &dropped)
            .len()
            == 1
    );
    ensure!(
        seen.histogram(names::MODEL_REQUEST_DURATION_SECONDS, &dropped)
            .is_empty()
    );
    ensure!(seen.counter(names::MODEL_OUTPUT_TOKENS_TOTAL, &dropped) == 0);
    Ok(())
}
