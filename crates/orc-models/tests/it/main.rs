//! orc-models against a real HTTP server on 127.0.0.1: the loopback fake provider,
//! which speaks the OpenAI and Anthropic wire protocols and counts requests and
//! TCP connections.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use orc_models::{
    ApiKey, Backoff, ChatRequest, CompletionRequest, EmbeddingRequest, Error, FailureKind,
    HttpOptions, ModelClient, ModelSpec, ProviderKind, RetryPolicy,
};

const KEY: &str = "sk-orc-test-7f3a9c1e5b";

/// Retries as the default policy does, but with short back-offs.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            ..Backoff::default()
        },
        ..RetryPolicy::default()
    }
}

struct Setup {
    fake: FakeProvider,
    client: ModelClient,
    key: ApiKey,
}

impl Setup {
    async fn new() -> Result<Setup> {
        Setup::with_options(&HttpOptions::default()).await
    }

    async fn with_options(options: &HttpOptions) -> Result<Setup> {
        let fake = FakeProvider::start(Behaviour::default().with_api_key(KEY)).await?;
        let client = ModelClient::new(options)?.with_retry_policy(quick_retries());
        Ok(Setup {
            fake,
            client,
            key: ApiKey::new(KEY),
        })
    }

    fn spec(&self, provider: ProviderKind) -> ModelSpec {
        let (model, base_url) = match provider {
            ProviderKind::OpenAi => ("fake-gpt", self.fake.openai_base_url()),
            ProviderKind::Anthropic => ("fake-claude", self.fake.anthropic_base_url()),
        };
        let mut spec = ModelSpec::new(model, provider);
        spec.base_url = base_url;
        spec.api_key_env = Some("ORC_TEST_KEY".to_owned());
        spec
    }

    fn key(&self) -> Option<&ApiKey> {
        Some(&self.key)
    }

    fn requests(&self, endpoint: Endpoint) -> u64 {
        self.fake.stats().requests_to(endpoint)
    }
}

fn chat_endpoint(provider: ProviderKind) -> Endpoint {
    match provider {
        ProviderKind::OpenAi => Endpoint::ChatCompletions,
        ProviderKind::Anthropic => Endpoint::Messages,
    }
}

const PROVIDERS: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

/// Asserts that `error` names the provider, the model and the status, and never the key.
fn assert_names_call(error: &Error, provider: ProviderKind, model: &str, status: Option<u16>) {
    let text = error.to_string();
    assert!(text.contains(provider.as_str()), "{text}");
    assert!(text.contains(&format!("`{model}`")), "{text}");
    match status {
        Some(status) => assert!(text.contains(&format!("HTTP {status}")), "{text}"),
        None => assert!(text.contains("no HTTP status"), "{text}"),
    }
    assert_eq!(error.status(), status, "{text}");
    assert_no_key(error);
}

fn assert_no_key(error: &Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(KEY), "the key leaked: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_chat_on_both_providers() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        let mut req = ChatRequest::user("hello there, model");
        req.system = Some("be brief".to_owned());
        req.max_tokens = Some(64);
        req.temperature = Some(0.2);
        let answer = setup.client.chat(&spec, setup.key(), &req).await?;
        assert_eq!(answer.text, "echo: hello there, model", "{provider}");
        assert_eq!(answer.model, spec.model);
        assert!(answer.usage.input_tokens >= 3, "{provider}: {answer:?}");
        assert!(answer.usage.output_tokens >= 3, "{provider}: {answer:?}");
        assert!(answer.finish_reason.is_some(), "{provider}: {answer:?}");
        assert_eq!(setup.requests(chat_endpoint(provider)), 1);
    }
    // What went over the wire: the system prompt, in each protocol's place.
    let stats = setup.fake.stats();
    let openai = stats
        .bodies_to(Endpoint::ChatCompletions)
        .next()
        .context("no chat body")?;
    assert_eq!(openai["messages"][0]["role"], "system");
    assert_eq!(openai["temperature"], 0.2);
    let anthropic = stats
        .bodies_to(Endpoint::Messages)
        .next()
        .context("no messages body")?;
    assert_eq!(anthropic["system"], "be brief");
    assert_eq!(anthropic["max_tokens"], 64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chat_on_both_providers() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        let req = ChatRequest::user("one two three four five six");
        let plain = setup.client.chat(&spec, setup.key(), &req).await?;

        // The deltas, one by one, then the assembled answer.
        let mut stream = setup.client.chat_stream(&spec, setup.key(), &req).await?;
        let mut deltas = Vec::new();
        while let Some(delta) = stream.next().await {
            deltas.push(delta?);
        }
        assert!(deltas.len() > 1, "{provider}: {deltas:?}");
        let streamed = stream.finish().await?;
        assert_eq!(deltas.concat(), streamed.text, "{provider}");
        assert_eq!(streamed.text, plain.text, "{provider}");
        assert_eq!(
            streamed.usage.output_tokens, plain.usage.output_tokens,
            "{provider}"
        );
        assert_eq!(
            streamed.usage.input_tokens, plain.usage.input_tokens,
            "{provider}"
        );
        assert!(streamed.finish_reason.is_some(), "{provider}");

        // `chat` with `stream: true` streams and assembles.
        let assembled = setup
            .client
            .chat(
                &spec,
                setup.key(),
                &ChatRequest {
                    stream: true,
                    ..req.clone()
                },
            )
            .await?;
        assert_eq!(assembled, streamed, "{provider}");

        // Half the deltas taken, then `finish` still gives the whole answer.
        let mut stream = setup.client.chat_stream(&spec, setup.key(), &req).await?;
        let first = stream.next().await.context("no delta")??;
        let rest = stream.finish().await?;
        assert!(rest.text.starts_with(&first));
        assert_eq!(rest.text, plain.text);
        assert_eq!(setup.requests(chat_endpoint(provider)), 4);
    }
    let stats = setup.fake.stats();
    let streamed = stats
        .bodies_to(Endpoint::ChatCompletions)
        .nth(1)
        .context("no streamed body")?;
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["stream_options"]["include_usage"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_answer_every_prompt_in_one_request() -> Result<()> {
    let setup = Setup::new().await?;
    let spec = setup.spec(ProviderKind::OpenAi);
    let req = CompletionRequest {
        prompts: vec![
            "first prompt".into(),
            "second".into(),
            "the third one".into(),
        ],
        max_tokens: Some(16),
        temperature: None,
    };
    let answer = setup.client.complete(&spec, setup.key(), &req).await?;
    assert_eq!(answer.texts.len(), 3);
    for (text, prompt) in answer.texts.iter().zip(&req.prompts) {
        assert!(text.contains(prompt.as_str()), "{text:?} for {prompt:?}");
    }
    assert!(answer.usage.output_tokens > 0);
    assert_eq!(setup.requests(Endpoint::Completions), 1);

    let anthropic = setup
        .client
        .complete(&setup.spec(ProviderKind::Anthropic), setup.key(), &req)
        .await;
    assert!(matches!(
        anthropic,
        Err(Error::Fatal {
            kind: FailureKind::InvalidRequest,
            ..
        })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_come_back_in_input_order() -> Result<()> {
    let setup = Setup::new().await?;
    let mut spec = setup.spec(ProviderKind::OpenAi);
    spec.model = "fake-embedding".into();
    let inputs: Vec<String> = vec!["alpha".into(), "beta".into(), "gamma".into()];
    let forward = setup
        .client
        .embed(
            &spec,
            setup.key(),
            &EmbeddingRequest {
                inputs: inputs.clone(),
            },
        )
        .await?;
    assert_eq!(forward.vectors.len(), 3);
    assert!(forward.vectors.iter().all(|v| v.len() == 8));
    assert_ne!(forward.vectors[0], forward.vectors[1]);
    let backward = setup
        .client
        .embed(
            &spec,
            setup.key(),
            &EmbeddingRequest {
                inputs: inputs.iter().rev().cloned().collect(),
            },
        )
        .await?;
    let reversed: Vec<Vec<f32>> = backward.vectors.into_iter().rev().collect();
    assert_eq!(reversed, forward.vectors);
    assert_eq!(forward.model, "fake-embedding");
    assert_eq!(setup.requests(Endpoint::Embeddings), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_lists_on_both_providers() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let models = setup
            .client
            .list_models(&setup.spec(provider), setup.key())
            .await?;
        let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        assert!(ids.contains(&"fake-gpt"), "{provider}: {ids:?}");
        assert!(ids.contains(&"fake-claude"), "{provider}: {ids:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_after_the_given_delay() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        let req = ChatRequest::user("patience [[fake:status=429,retry_after=1,fail_times=1]]");
        let started = Instant::now();
        let answer = setup.client.chat(&spec, setup.key(), &req).await?;
        let waited = started.elapsed();
        assert_eq!(answer.text, "echo: patience");
        assert!(
            waited >= Duration::from_secs(1),
            "{provider}: retried after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(3),
            "{provider}: retried after {waited:?}"
        );
        assert_eq!(setup.requests(chat_endpoint(provider)), 2, "{provider}");
    }
    // Without retries, the 429 says what it asked for.
    let once = setup.client.clone().with_retry_policy(RetryPolicy::none());
    let spec = setup.spec(ProviderKind::OpenAi);
    let error = once
        .chat(
            &spec,
            setup.key(),
            &ChatRequest::user("[[fake:status=429,retry_after=2]]"),
        )
        .await
        .err()
        .context("a 429 succeeded")?;
    assert!(error.is_retryable());
    assert_eq!(error.kind(), Some(FailureKind::RateLimited));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    assert_names_call(&error, ProviderKind::OpenAi, "fake-gpt", Some(429));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        let req = ChatRequest::user("again [[fake:status=500,fail_times=2]]");
        let answer = setup.client.chat(&spec, setup.key(), &req).await?;
        assert_eq!(answer.text, "echo: again");
        assert_eq!(setup.requests(chat_endpoint(provider)), 3, "{provider}");

        // A 500 that never stops: every attempt is made, then the error is returned.
        let before = setup.requests(chat_endpoint(provider));
        let req = ChatRequest::user("down [[fake:status=503]]");
        let error = setup
            .client
            .chat(&spec, setup.key(), &req)
            .await
            .err()
            .context("a 503 succeeded")?;
        assert!(error.is_retryable());
        assert_eq!(error.kind(), Some(FailureKind::Server));
        assert_names_call(&error, provider, spec.model.as_str(), Some(503));
        let attempts = setup.requests(chat_endpoint(provider)) - before;
        assert_eq!(
            attempts,
            u64::from(quick_retries().max_attempts),
            "{provider}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        let req = ChatRequest::user("[[fake:status=400]]");
        let error = setup
            .client
            .chat(&spec, setup.key(), &req)
            .await
            .err()
            .context("a 400 succeeded")?;
        assert!(!error.is_retryable());
        assert_eq!(error.kind(), Some(FailureKind::Rejected));
        assert_names_call(&error, provider, spec.model.as_str(), Some(400));
        assert_eq!(setup.requests(chat_endpoint(provider)), 1, "{provider}");
    }
    // The provider's own message comes through: a wrong key.
    let wrong = ApiKey::new("sk-wrong-key-000");
    let error = setup
        .client
        .chat(
            &setup.spec(ProviderKind::OpenAi),
            Some(&wrong),
            &ChatRequest::user("hi"),
        )
        .await
        .err()
        .context("a wrong key was accepted")?;
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("Incorrect API key provided"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("sk-wrong-key-000"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_clear_fatal_error() -> Result<()> {
    let setup = Setup::new().await?;
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        for stream in [false, true] {
            let req = ChatRequest {
                stream,
                ..ChatRequest::user("[[fake:garbage]]")
            };
            let error = setup
                .client
                .chat(&spec, setup.key(), &req)
                .await
                .err()
                .context("garbage was accepted")?;
            assert!(!error.is_retryable(), "{error}");
            assert_eq!(error.kind(), Some(FailureKind::InvalidResponse), "{error}");
            assert_names_call(&error, provider, spec.model.as_str(), Some(200));
        }
        assert_eq!(setup.requests(chat_endpoint(provider)), 2, "{provider}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answers_are_clear_retryable_errors() -> Result<()> {
    let setup = Setup::new().await?;
    let once = setup.client.clone().with_retry_policy(RetryPolicy::none());
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        for marker in ["truncate", "truncate=clean"] {
            // Streamed: the deltas come, then the error.
            let req = ChatRequest::user(format!(
                "a long enough answer to cut [[fake:{marker},chunk_delay_ms=1]]"
            ));
            let mut stream = once.chat_stream(&spec, setup.key(), &req).await?;
            let mut error = None;
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    error = Some(e);
                }
            }
            let Some(error) = error else {
                bail!("{provider} {marker}: a truncated stream ended without an error");
            };
            assert!(error.is_retryable(), "{error}");
            assert_eq!(error.kind(), Some(FailureKind::Truncated), "{error}");
            assert_names_call(&error, provider, spec.model.as_str(), Some(200));
            assert!(stream.finish().await.is_err());

            // Plain: the body is cut.
            let req = ChatRequest::user(format!("cut this [[fake:{marker}]]"));
            let error = once
                .chat(&spec, setup.key(), &req)
                .await
                .err()
                .context("a truncated body was accepted")?;
            assert!(error.is_retryable(), "{marker}: {error}");
            assert_eq!(
                error.kind(),
                Some(FailureKind::Truncated),
                "{marker}: {error}"
            );
            assert_names_call(&error, provider, spec.model.as_str(), Some(200));
        }
        // With retries, a stream truncated once is read again whole.
        let req = ChatRequest {
            stream: true,
            ..ChatRequest::user("second time lucky [[fake:truncate,fail_times=1]]")
        };
        let answer = setup.client.chat(&spec, setup.key(), &req).await?;
        assert_eq!(answer.text, "echo: second time lucky");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_and_timeouts_are_retryable() -> Result<()> {
    let options = HttpOptions {
        request_timeout: Some(Duration::from_millis(200)),
        ..HttpOptions::default()
    };
    let setup = Setup::with_options(&options).await?;
    let once = setup.client.clone().with_retry_policy(RetryPolicy::none());
    let spec = setup.spec(ProviderKind::OpenAi);

    let error = once
        .chat(
            &spec,
            setup.key(),
            &ChatRequest::user("slow [[fake:delay_ms=1000]]"),
        )
        .await
        .err()
        .context("a slow answer beat the timeout")?;
    assert_eq!(error.kind(), Some(FailureKind::Timeout), "{error}");
    assert!(error.is_retryable());
    assert_names_call(&error, ProviderKind::OpenAi, "fake-gpt", None);

    let error = once
        .chat(&spec, setup.key(), &ChatRequest::user("[[fake:close]]"))
        .await
        .err()
        .context("a closed connection gave an answer")?;
    assert!(error.is_retryable(), "{error}");
    assert_names_call(&error, ProviderKind::OpenAi, "fake-gpt", None);

    // Nobody listens on the port of a server that was shut down.
    let gone = FakeProvider::start(Behaviour::default()).await?;
    let mut dead = spec.clone();
    dead.base_url = gone.openai_base_url();
    gone.shutdown().await;
    let error = once
        .chat(&dead, setup.key(), &ChatRequest::user("anyone?"))
        .await
        .err()
        .context("a closed port answered")?;
    assert_eq!(error.kind(), Some(FailureKind::Connection), "{error}");
    assert_names_call(&error, ProviderKind::OpenAi, "fake-gpt", None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_errors() -> Result<()> {
    let setup = Setup::new().await?;
    let once = setup.client.clone().with_retry_policy(RetryPolicy::none());
    let mut errors = Vec::new();
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        for marker in [
            "status=400",
            "status=401",
            "status=429,retry_after=1",
            "status=500",
            "garbage",
            "truncate",
            "truncate=clean",
            "close",
        ] {
            for stream in [false, true] {
                let req = ChatRequest {
                    stream,
                    ..ChatRequest::user(format!("my key is {KEY} [[fake:{marker}]]"))
                };
                match once.chat(&spec, setup.key(), &req).await {
                    Ok(answer) => bail!("{provider} {marker}: succeeded with {answer:?}"),
                    Err(error) => errors.push(error),
                }
            }
        }
        let unsupported = once
            .embed(
                &spec,
                setup.key(),
                &EmbeddingRequest {
                    inputs: vec![KEY.into()],
                },
            )
            .await;
        errors.extend(unsupported.err());
    }
    // A provider that quotes the key back in its message (the fake quotes a marker it
    // cannot read): the message comes through with the key masked.
    let error = setup
        .client
        .chat(
            &setup.spec(ProviderKind::OpenAi),
            setup.key(),
            &ChatRequest::user(format!("[[fake:leak={KEY}]]")),
        )
        .await
        .err()
        .context("a bad marker was accepted")?;
    assert_eq!(error.status(), Some(400));
    assert!(error.to_string().contains("leak=***"), "{error}");
    errors.push(error);
    assert!(errors.len() >= 33);
    for error in &errors {
        assert_no_key(error);
    }
    Ok(())
}

/// The connect timeout covers the whole connect, TLS included: a server that accepts the TCP
/// connection and never answers the handshake fails the call after `connect_timeout`, not
/// after the much longer request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_times_out_at_the_connect_timeout() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Accepts and holds connections, never writing a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = ModelClient::new(&HttpOptions {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Some(Duration::from_secs(60)),
        ..HttpOptions::default()
    })?
    .with_retry_policy(RetryPolicy::none());
    let mut spec = ModelSpec::new("silent", ProviderKind::OpenAi);
    spec.base_url = format!("https://{addr}/v1");
    let started = Instant::now();
    let error = client
        .chat(&spec, None, &ChatRequest::user("hello?"))
        .await
        .err()
        .context("a silent server answered")?;
    let elapsed = started.elapsed();
    holder.abort();
    assert_eq!(error.kind(), Some(FailureKind::Timeout), "{error}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}: {error}");
    Ok(())
}

/// Sequential calls reuse their connections. hyper hands a connection back to the pool on
/// the connection's own task once the answer is read, so a call that starts at once may find
/// it not back yet and open another (on a busy machine, now and then a third). Each call here
/// starts a moment after the one before, as a sequential caller doing anything with the
/// answer does: then every call finds the connection idle, and at most two are ever opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_calls_reuse_connections() -> Result<()> {
    const PAUSE: Duration = Duration::from_millis(5);
    let setup = Setup::new().await?;
    let spec = setup.spec(ProviderKind::OpenAi);
    for i in 0..100 {
        let req = ChatRequest::user(format!("call number {i}"));
        let answer = setup.client.chat(&spec, setup.key(), &req).await?;
        assert_eq!(answer.text, format!("echo: call number {i}"));
        tokio::time::sleep(PAUSE).await;
    }
    let stats = setup.fake.stats();
    assert_eq!(stats.requests_to(Endpoint::ChatCompletions), 100);
    assert!(
        (1..=2).contains(&stats.connections_accepted),
        "keep-alive: {} connections for 100 calls",
        stats.connections_accepted
    );

    // Streams read to their end give their connection back too, on both protocols.
    for provider in PROVIDERS {
        let spec = setup.spec(provider);
        for i in 0..20 {
            let req = ChatRequest {
                stream: true,
                ..ChatRequest::user(format!("streamed call {i}"))
            };
            setup.client.chat(&spec, setup.key(), &req).await?;
            tokio::time::sleep(PAUSE).await;
        }
    }
    let stats = setup.fake.stats();
    assert!(
        stats.connections_accepted <= 2,
        "keep-alive for streams: {} connections for 140 calls",
        stats.connections_accepted
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_stay_within_the_pool() -> Result<()> {
    let options = HttpOptions {
        connection_pool_size: 4,
        ..HttpOptions::default()
    };
    let setup = Setup::with_options(&options).await?;
    let spec = setup.spec(ProviderKind::OpenAi);
    let started = Instant::now();
    let calls = (0..32).map(|i| {
        let client = setup.client.clone();
        let spec = spec.clone();
        let key = setup.key.clone();
        async move {
            let req = ChatRequest::user(format!("parallel {i} [[fake:delay_ms=50]]"));
            client.chat(&spec, Some(&key), &req).await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer?.text, format!("echo: parallel {i}"));
    }
    let stats = setup.fake.stats();
    assert_eq!(stats.requests_to(Endpoint::ChatCompletions), 32);
    assert!(stats.connections_accepted <= 4, "{stats:?}");
    // 32 calls of 50 ms, 4 at a time: about 8 rounds, so the pool was used in parallel.
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    Ok(())
}

mod faults;
mod gateway;
mod routing;
mod telemetry;
