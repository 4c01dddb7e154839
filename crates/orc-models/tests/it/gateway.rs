//! The gateway against the fake provider: response cache, in-flight sharing,
//! batching, streamed answers replayed from the cache, usage and cost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use futures::StreamExt as _;
use orc_cache::{Cache, CacheOptions};
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use orc_models::{
    ApiKey, Attempts, Backoff, BatchOptions, Budget, BudgetLimits, ChatRequest, CompletionRequest,
    Cost, DEFAULT_MAX_OUTPUT_TOKENS, Gateway, GatewayOptions, HttpOptions, Model, ModelClient,
    ModelSpec, Origin, ProviderKind, Registry, RequestRecord, RequestSink, RetryPolicy, Source,
    actions,
};

use super::KEY;

struct Rig {
    fake: FakeProvider,
    gateway: Gateway,
    model: Model,
}

async fn rig(batch: BatchOptions) -> Result<Rig> {
    rig_with(batch, None).await
}

/// A rig whose gateway tells `requests` of every request.
async fn rig_with(batch: BatchOptions, requests: Option<Arc<dyn RequestSink>>) -> Result<Rig> {
    let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
    let mut spec = ModelSpec::new("fake-gpt", ProviderKind::OpenAi);
    spec.base_url = fake.openai_base_url();
    spec.cost = Some(Cost {
        input_per_1k: 1.0,
        output_per_1k: 2.0,
    });
    let registry = Registry::new(vec![spec.clone()]).map_err(anyhow::Error::msg)?;
    let cache = Cache::open(CacheOptions {
        namespace: "gateway-test".into(),
        ..CacheOptions::default()
    })?;
    let client = ModelClient::new(&HttpOptions::default())?;
    let gateway = Gateway::new(
        registry,
        client,
        GatewayOptions {
            cache: Some(cache),
            batch,
            requests,
            ..GatewayOptions::default()
        },
    );
    let model = Model {
        spec: Arc::new(spec),
        key: Some(ApiKey::new(KEY)),
    };
    Ok(Rig {
        fake,
        gateway,
        model,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_costs_nothing_and_errors_are_not_cached() -> Result<()> {
    let rig = rig(BatchOptions::default()).await?;
    let req = ChatRequest::user("hello there");
    let first = rig.gateway.chat(&rig.model, &req, true).await?;
    ensure!(first.source == Source::Upstream);
    ensure!(first.usage.input_tokens > 0 && first.usage.output_tokens > 0);
    let expected =
        (first.usage.input_tokens as f64 + 2.0 * first.usage.output_tokens as f64) / 1000.0;
    ensure!(
        first.cost == Some(expected),
        "{:?} vs {expected}",
        first.cost
    );

    let second = rig.gateway.chat(&rig.model, &req, true).await?;
    ensure!(second.source == Source::Cache);
    ensure!(second.value.text == first.value.text);
    ensure!(second.cost == Some(0.0) && second.usage.input_tokens == 0);

    // Any parameter change is another entry.
    let mut hotter = req.clone();
    hotter.temperature = Some(0.5);
    ensure!(rig.gateway.chat(&rig.model, &hotter, true).await?.source == Source::Upstream);
    // Opting out always goes upstream.
    ensure!(rig.gateway.chat(&rig.model, &req, false).await?.source == Source::Upstream);
    ensure!(rig.fake.stats().requests_to(Endpoint::ChatCompletions) == 3);

    let bad = ChatRequest::user("[[fake:status=400]] no");
    ensure!(rig.gateway.chat(&rig.model, &bad, true).await.is_err());
    ensure!(rig.gateway.chat(&rig.model, &bad, true).await.is_err());
    ensure!(
        rig.fake.stats().requests_to(Endpoint::ChatCompletions) == 5,
        "errors are not cached"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_in_flight_share_one_call() -> Result<()> {
    let rig = rig(BatchOptions::default()).await?;
    let req = ChatRequest::user("[[fake:delay_ms=200]] slow question");
    let calls = (0..8).map(|_| rig.gateway.chat(&rig.model, &req, false));
    let answers = futures::future::join_all(calls).await;
    let mut shared = 0;
    for answer in answers {
        shared += usize::from(answer?.source == Source::Shared);
    }
    ensure!(shared == 7, "{shared} shared");
    ensure!(rig.fake.stats().requests_to(Endpoint::ChatCompletions) == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_embeddings_are_batched() -> Result<()> {
    let rig = rig(BatchOptions {
        batch_size: 20,
        max_wait: Duration::from_millis(50),
        max_concurrent_batches: 5,
    })
    .await?;
    let calls = (0..100).map(|i| {
        rig.gateway
            .embed(&rig.model, vec![format!("text {i}")], true)
    });
    let answers = futures::future::join_all(calls).await;
    let mut dims = Vec::new();
    for answer in answers {
        let answer = answer?;
        ensure!(answer.value.len() == 1);
        dims.push(answer.value[0].len());
    }
    ensure!(dims.iter().all(|d| *d == dims[0] && *d > 0));
    let upstream = rig.fake.stats().requests_to(Endpoint::Embeddings);
    ensure!(
        upstream <= 5,
        "{upstream} upstream calls for 100 inputs at batch size 20"
    );
    // Every input is now cached on its own.
    let again = rig
        .gateway
        .embed(&rig.model, vec!["text 7".into(), "text 8".into()], true)
        .await?;
    ensure!(again.source == Source::Cache);
    ensure!(rig.fake.stats().requests_to(Endpoint::Embeddings) == upstream);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_cached_and_replayed_as_a_stream() -> Result<()> {
    let rig = rig(BatchOptions::default()).await?;
    let req = ChatRequest::user("stream me a few words please");
    let (mut stream, source) = rig.gateway.chat_stream(&rig.model, &req, true).await?;
    ensure!(source == Source::Upstream);
    let mut deltas = 0;
    while let Some(delta) = stream.next().await {
        delta?;
        deltas += 1;
    }
    ensure!(deltas > 1);
    let text = stream.text().to_owned();
    // The cache write is spawned when the stream completes.
    let mut replayed = None;
    for _ in 0..50 {
        let (stream, source) = rig.gateway.chat_stream(&rig.model, &req, true).await?;
        if source == Source::Cache {
            replayed = Some(stream);
            break;
        }
        drop(stream);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(replay) = replayed else {
        anyhow::bail!("the streamed answer never reached the cache");
    };
    let answer = replay.finish().await?;
    ensure!(answer.text == text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_answers_get_one_repair_attempt() -> Result<()> {
    let rig = rig(BatchOptions::default()).await?;
    rig.fake
        .add_answer("List the digits", "sure! here they are");
    rig.fake
        .add_answer("does not match the JSON Schema", r#"{"digits": [1, 2, 3]}"#);
    let params = serde_json::json!({
        "prompt": "List the digits",
        "schema": {"type": "object", "required": ["digits"],
                   "properties": {"digits": {"type": "array", "items": {"type": "integer"}}}}
    });
    let params = params.as_object().cloned().unwrap_or_default();
    let outcome = actions::run(
        &rig.gateway,
        &rig.model,
        "generate_structured",
        &params,
        false,
        None,
    )
    .await?;
    ensure!(outcome.result == serde_json::json!({"digits": [1, 2, 3]}));
    ensure!(rig.fake.stats().requests_to(Endpoint::ChatCompletions) == 2);

    // The repair answer lacks what this schema requires: the step fails, showing why.
    rig.fake.add_answer("Name the letters", "still not json");
    let mut params = params;
    params.insert("prompt".into(), "Name the letters".into());
    params.insert(
        "schema".into(),
        serde_json::json!({"type": "object", "required": ["letters"]}),
    );
    let err = actions::run(
        &rig.gateway,
        &rig.model,
        "generate_structured",
        &params,
        false,
        None,
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    ensure!(
        err.contains("after one repair attempt") && err.contains("letters"),
        "{err}"
    );
    Ok(())
}

/// Two gateways on one response cache, one under a budget: the budget sends a request
/// without `max_tokens` with the default bound, so its answer may be cut there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_at_a_budget_bound_never_answers_a_request_without_it() -> Result<()> {
    let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
    let mut spec = ModelSpec::new("fake-gpt", ProviderKind::OpenAi);
    spec.base_url = fake.openai_base_url();
    spec.cost = Some(Cost {
        input_per_1k: 0.001,
        output_per_1k: 0.001,
    });
    let registry = Registry::new(vec![spec.clone()]).map_err(anyhow::Error::msg)?;
    let cache = Cache::open(CacheOptions {
        namespace: "bound-test".into(),
        ..CacheOptions::default()
    })?;
    let client = ModelClient::new(&HttpOptions::default())?;
    let gateway = |budget: Option<Budget>| {
        Gateway::new(
            registry.clone(),
            client.clone(),
            GatewayOptions {
                cache: Some(cache.clone()),
                budget,
                ..GatewayOptions::default()
            },
        )
    };
    let budgeted = gateway(Some(Budget::new(BudgetLimits {
        per_run: Some(100.0),
        per_hour: None,
    })));
    let free = gateway(None);
    let model = Model {
        spec: Arc::new(spec),
        key: Some(ApiKey::new(KEY)),
    };
    // The fake echoes the prompt, cut to `max_tokens` words: longer than the bound.
    let bound = DEFAULT_MAX_OUTPUT_TOKENS as usize;
    let req = ChatRequest::user("word ".repeat(bound + 100));
    let words = |text: &str| text.split_whitespace().count();

    let cut = budgeted.chat(&model, &req, true).await?;
    ensure!(cut.source == Source::Upstream);
    ensure!(
        words(&cut.value.text) == bound,
        "{}",
        words(&cut.value.text)
    );
    ensure!(cut.value.finish_reason.as_deref() == Some("length"));
    let full = free.chat(&model, &req, true).await?;
    ensure!(
        full.source == Source::Upstream,
        "the unbudgeted request was answered from the budgeted one's entry"
    );
    ensure!(
        words(&full.value.text) == bound + 101,
        "{}",
        words(&full.value.text)
    );
    // Each is cached under the request it was sent as.
    let again = budgeted.chat(&model, &req, true).await?;
    ensure!(again.source == Source::Cache && again.value.text == cut.value.text);
    let again = free.chat(&model, &req, true).await?;
    ensure!(again.source == Source::Cache && again.value.text == full.value.text);
    ensure!(budgeted.is_cached(&model.spec, "chat", &req).await?);
    ensure!(fake.stats().requests_to(Endpoint::ChatCompletions) == 2);

    // Streamed: the same two entries (a stream is keyed as a streamed request).
    let streamed = |g: &Gateway| {
        let (g, model, req) = (g.clone(), model.clone(), req.clone());
        async move {
            let (stream, source) = g.chat_stream(&model, &req, true).await?;
            let text = stream.finish().await?.text;
            anyhow::Ok((text, source))
        }
    };
    let (text, source) = streamed(&budgeted).await?;
    ensure!(source == Source::Upstream && words(&text) == bound);
    let (text, source) = streamed(&free).await?;
    ensure!(source == Source::Upstream && words(&text) == bound + 101);
    ensure!(fake.stats().requests_to(Endpoint::ChatCompletions) == 4);

    // Completions: each prompt is keyed as sent, too.
    let completion = CompletionRequest {
        prompts: vec!["word ".repeat(bound + 100)],
        ..CompletionRequest::default()
    };
    let cut = budgeted.complete(&model, completion.clone(), true).await?;
    ensure!(cut.source == Source::Upstream && words(&cut.value[0]) == bound);
    let full = free.complete(&model, completion, true).await?;
    ensure!(full.source == Source::Upstream, "{:?}", full.source);
    ensure!(words(&full.value[0]) == bound + 101);
    ensure!(fake.stats().requests_to(Endpoint::Completions) == 2);
    Ok(())
}

/// Attempts are counted per piece of work: a 429 then an answer is two, a cached
/// answer none, a batched embedding its batch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_counted_for_the_work_that_made_them() -> Result<()> {
    let rig = rig(BatchOptions::default()).await?;
    let quick = ModelClient::new(&HttpOptions::default())?.with_retry_policy(RetryPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            ..Backoff::default()
        },
        ..RetryPolicy::default()
    });
    let gateway = Gateway::new(
        rig.gateway.registry().clone(),
        quick,
        GatewayOptions::default(),
    );
    let req = ChatRequest::user("[[fake:status=503,fail_times=2]] try me");
    let attempts = Attempts::default();
    let answer = attempts
        .scope(gateway.chat(&rig.model, &req, false))
        .await?;
    ensure!(answer.value.text.contains("try me"));
    ensure!(attempts.get() == 3, "{}", attempts.get());

    let cached = Attempts::default();
    let first = ChatRequest::user("cache me");
    rig.gateway.chat(&rig.model, &first, true).await?;
    cached
        .scope(rig.gateway.chat(&rig.model, &first, true))
        .await?;
    ensure!(cached.get() == 0);

    let embedded = Attempts::default();
    embedded
        .scope(
            rig.gateway
                .embed(&rig.model, vec!["a".into(), "b".into()], false),
        )
        .await?;
    ensure!(embedded.get() == 1, "{}", embedded.get());
    Ok(())
}

/// Keeps every record it is told of.
#[derive(Debug, Default)]
struct Kept(Mutex<Vec<RequestRecord>>);

impl RequestSink for Kept {
    fn record(&self, request: RequestRecord) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
    }
}

impl Kept {
    fn take(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_with_its_source_cache_lookup_and_run() -> Result<()> {
    let kept = Arc::new(Kept::default());
    let rig = rig_with(
        BatchOptions::default(),
        Some(kept.clone() as Arc<dyn RequestSink>),
    )
    .await?;
    let run = rig.gateway.with_origin(Origin {
        run_id: "r1".into(),
        pipeline_id: "summarize".into(),
    });
    let req = ChatRequest::user("record me");
    let first = run.chat(&rig.model, &req, true).await?;
    run.chat(&rig.model, &req, true).await?;
    rig.gateway.chat(&rig.model, &req, false).await?;
    let bad = ChatRequest::user("[[fake:status=400]] no");
    ensure!(rig.gateway.chat(&rig.model, &bad, true).await.is_err());
    let got = kept.take();
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.source, r.cache_hit, r.error_kind, r.origin.is_some()))
        .collect();
    ensure!(
        seen == [
            (Source::Upstream, Some(false), None, true),
            (Source::Cache, Some(true), None, true),
            (Source::Upstream, None, None, false),
            (Source::Upstream, Some(false), Some("rejected"), false),
        ],
        "{seen:?}"
    );
    let origin = got[0].origin.as_deref();
    ensure!(origin.is_some_and(|o| o.run_id == "r1" && o.pipeline_id == "summarize"));
    ensure!(got[0].model == "fake-gpt" && got[0].provider == "openai");
    ensure!(Some(got[0].cost) == first.cost && got[0].usage == first.usage);
    ensure!(got[1].cost == 0.0 && got[0].latency > Duration::ZERO);

    // A stream is recorded when it ends, with what it paid; a replay from the cache at once.
    let streamed = ChatRequest::user("stream and record me");
    let (mut stream, _) = rig.gateway.chat_stream(&rig.model, &streamed, true).await?;
    ensure!(kept.take().is_empty(), "recorded before its end");
    while let Some(delta) = stream.next().await {
        delta?;
    }
    let got = kept.take();
    ensure!(got.len() == 1 && got[0].source == Source::Upstream && got[0].cost > 0.0);
    // Embeddings: one record per request, not per input.
    rig.gateway
        .embed(&rig.model, vec!["a".into(), "b".into()], false)
        .await?;
    ensure!(kept.take().len() == 1);
    Ok(())
}
