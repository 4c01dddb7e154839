//! The fake provider over real sockets, as a model client would see it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider, ModelBehaviour, Reply, Stats};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    // reqwest takes its TLS crypto from the process default (the workspace builds it with
    // `rustls-no-provider`); installing it again is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Never route loopback traffic through a proxy from the environment.
    Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| Client::new())
}

async fn fake() -> Result<FakeProvider> {
    Ok(FakeProvider::start(Behaviour::default()).await?)
}

fn chat_body(prompt: &str) -> Value {
    json!({
        "model": "fake-gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": prompt},
        ],
    })
}

fn anthropic_body(prompt: &str) -> Value {
    json!({
        "model": "fake-claude",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    })
}

async fn post(client: &Client, url: String, body: &Value) -> Result<reqwest::Response> {
    Ok(client.post(url).json(body).send().await?)
}

async fn chat(client: &Client, fake: &FakeProvider, body: &Value) -> Result<reqwest::Response> {
    post(
        client,
        format!("{}/chat/completions", fake.openai_base_url()),
        body,
    )
    .await
}

async fn messages(client: &Client, fake: &FakeProvider, body: &Value) -> Result<reqwest::Response> {
    Ok(client
        .post(format!("{}/v1/messages", fake.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await?)
}

/// One server-sent event: its `event:` name (if any) and `data:` text.
#[derive(Debug)]
struct Event {
    name: Option<String>,
    data: String,
}

fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event {
                name: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                }
            }
            event
        })
        .collect()
}

fn json_of(event: &Event) -> Result<Value> {
    serde_json::from_str(&event.data).with_context(|| format!("event data: {}", event.data))
}

/// Reads a body chunk by chunk: the bytes that arrived and whether it ended in an error.
async fn read_all(response: reqwest::Response) -> (String, bool) {
    let mut response = response;
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8_lossy(&bytes).into_owned(), false),
            Err(_) => return (String::from_utf8_lossy(&bytes).into_owned(), true),
        }
    }
}

#[tokio::test]
async fn chat_plain_echoes_with_usage() -> Result<()> {
    let fake = fake().await?;
    let response = chat(&client(), &fake, &chat_body("hello there world")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fake-gpt");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there world"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "be brief" + "hello there world" = 5 words in; "echo: hello there world" = 4 out.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );

    // Deterministic: the same request gets the same bytes.
    let again: Value = chat(&client(), &fake, &chat_body("hello there world"))
        .await?
        .json()
        .await?;
    assert_eq!(again, body);
    Ok(())
}

#[tokio::test]
async fn chat_max_tokens_cuts_the_answer() -> Result<()> {
    let fake = fake().await?;
    let mut request = chat_body("one two three four five");
    request["max_tokens"] = json!(3);
    let body: Value = chat(&client(), &fake, &request).await?.json().await?;
    assert_eq!(body["choices"][0]["message"]["content"], "echo: one two");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    Ok(())
}

#[tokio::test]
async fn chat_stream_sends_deltas_usage_and_done() -> Result<()> {
    let fake = fake().await?;
    let mut request = chat_body("stream me please");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = chat(&client(), &fake, &request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str()?,
        "text/event-stream"
    );
    let events = parse_sse(&response.text().await?);
    let Some((done, chunks)) = events.split_last() else {
        bail!("no events");
    };
    assert_eq!(done.data, "[DONE]");
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    for event in chunks {
        let chunk = json_of(event)?;
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "fake-gpt");
        if let Some(choice) = chunk["choices"].get(0) {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if !choice["finish_reason"].is_null() {
                finish = Some(choice["finish_reason"].clone());
            }
            assert!(chunk["usage"].is_null());
        } else {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert_eq!(text, "echo: stream me please");
    assert_eq!(finish, Some(json!("stop")));
    assert_eq!(
        usage,
        Some(json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}))
    );
    // Usage is the last chunk before [DONE].
    assert!(
        json_of(&chunks[chunks.len() - 1])?["choices"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    Ok(())
}

#[tokio::test]
async fn completions_answer_each_prompt_of_a_list() -> Result<()> {
    let fake = fake().await?;
    let request = json!({"model": "fake-gpt", "prompt": ["first prompt", "second one here"]});
    let response = post(
        &client(),
        format!("{}/completions", fake.openai_base_url()),
        &request,
    )
    .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["object"], "text_completion");
    let choices = body["choices"].as_array().context("choices")?;
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["text"], "echo: first prompt");
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["text"], "echo: second one here");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 7);

    let single: Value = post(
        &client(),
        format!("{}/completions", fake.openai_base_url()),
        &json!({"model": "fake-gpt", "prompt": "just one"}),
    )
    .await?
    .json()
    .await?;
    assert_eq!(single["choices"].as_array().map(Vec::len), Some(1));
    assert_eq!(single["choices"][0]["text"], "echo: just one");

    let streamed = post(
        &client(),
        format!("{}/completions", fake.openai_base_url()),
        &json!({"model": "fake-gpt", "prompt": ["a b", "c"], "stream": true,
                "stream_options": {"include_usage": true}}),
    )
    .await?
    .text()
    .await?;
    let events = parse_sse(&streamed);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let mut texts = [String::new(), String::new()];
    for event in &events[..events.len() - 1] {
        let chunk = json_of(event)?;
        if let Some(choice) = chunk["choices"].get(0) {
            let index = choice["index"].as_u64().context("index")? as usize;
            texts[index].push_str(choice["text"].as_str().unwrap_or(""));
        } else {
            assert_eq!(chunk["usage"]["completion_tokens"], 5);
        }
    }
    assert_eq!(texts, ["echo: a b", "echo: c"]);
    Ok(())
}

#[tokio::test]
async fn embeddings_are_deterministic() -> Result<()> {
    let fake = fake().await?;
    let url = format!("{}/embeddings", fake.openai_base_url());
    let request = json!({"model": "fake-embedding", "input": ["alpha", "beta"]});
    let first: Value = post(&client(), url.clone(), &request).await?.json().await?;
    let second: Value = post(&client(), url.clone(), &request).await?.json().await?;
    assert_eq!(first, second);
    assert_eq!(first["object"], "list");
    assert_eq!(first["model"], "fake-embedding");
    let data = first["data"].as_array().context("data")?;
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let alpha = data[0]["embedding"].as_array().context("vector")?;
    assert_eq!(alpha.len(), 8);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(
        first["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );

    // A single string gives the same vector as that string in a list.
    let single: Value = post(
        &client(),
        url.clone(),
        &json!({"model": "m", "input": "alpha"}),
    )
    .await?
    .json()
    .await?;
    assert_eq!(single["data"][0]["embedding"], data[0]["embedding"]);

    let wide: Value = post(
        &client(),
        url,
        &json!({"model": "m", "input": "alpha", "dimensions": 3}),
    )
    .await?
    .json()
    .await?;
    assert_eq!(
        wide["data"][0]["embedding"].as_array().map(Vec::len),
        Some(3)
    );
    Ok(())
}

#[tokio::test]
async fn models_are_listed_in_both_shapes() -> Result<()> {
    let behaviour = Behaviour::default().with_models(["m-one", "llama3.2:1b"]);
    let fake = FakeProvider::start(behaviour).await?;
    let openai: Value = client()
        .get(format!("{}/models", fake.openai_base_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][1]["id"], "llama3.2:1b");
    assert_eq!(openai["data"][1]["object"], "model");

    let anthropic: Value = client()
        .get(format!("{}/v1/models", fake.anthropic_base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(fake.stats().requests_to(Endpoint::Models), 2);
    Ok(())
}

#[tokio::test]
async fn unknown_models_can_be_refused() -> Result<()> {
    let behaviour = Behaviour {
        reject_unknown_models: true,
        ..Behaviour::default().with_models(["known"])
    };
    let fake = FakeProvider::start(behaviour).await?;
    let response = chat(&client(), &fake, &chat_body("hi")).await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fake-gpt"))
    );

    let mut known = chat_body("hi");
    known["model"] = json!("known");
    assert_eq!(
        chat(&client(), &fake, &known).await?.status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn anthropic_plain_message_with_usage() -> Result<()> {
    let fake = fake().await?;
    let response = messages(&client(), &fake, &anthropic_body("how are you")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "fake-claude");
    assert_eq!(
        body["content"][0],
        json!({"type": "text", "text": "echo: how are you"})
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "output_tokens": 4})
    );
    Ok(())
}

#[tokio::test]
async fn anthropic_stream_follows_the_event_sequence() -> Result<()> {
    let fake = fake().await?;
    let mut request = anthropic_body("tell me more");
    request["stream"] = json!(true);
    request["max_tokens"] = json!(3);
    let response = messages(&client(), &fake, &request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let events = parse_sse(&response.text().await?);
    let names: Vec<&str> = events.iter().filter_map(|e| e.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let mut text = String::new();
    for event in &events {
        let data = json_of(event)?;
        assert_eq!(
            Some(data["type"].as_str().unwrap_or("")),
            event.name.as_deref()
        );
        match event.name.as_deref() {
            Some("message_start") => {
                assert_eq!(data["message"]["model"], "fake-claude");
                assert_eq!(data["message"]["usage"]["input_tokens"], 5);
            }
            Some("content_block_delta") => {
                assert_eq!(data["delta"]["type"], "text_delta");
                text.push_str(data["delta"]["text"].as_str().unwrap_or(""));
            }
            Some("message_delta") => {
                assert_eq!(data["usage"]["output_tokens"], 3);
                assert_eq!(data["delta"]["stop_reason"], "max_tokens");
            }
            _ => {}
        }
    }
    assert_eq!(text, "echo: tell me");
    Ok(())
}

#[tokio::test]
async fn anthropic_requires_its_headers() -> Result<()> {
    let fake = fake().await?;
    let url = format!("{}/v1/messages", fake.anthropic_base_url());
    let request = anthropic_body("hi");

    let no_key = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&request)
        .send()
        .await?;
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_key.json().await?;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(body["error"]["message"].is_string());

    let no_version = client()
        .post(&url)
        .header("x-api-key", "k")
        .json(&request)
        .send()
        .await?;
    assert_eq!(no_version.status(), StatusCode::BAD_REQUEST);
    let body: Value = no_version.json().await?;
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let mut no_max = request.clone();
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    let response = messages(&client(), &fake, &no_max).await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn openai_auth_is_checked_when_a_key_is_expected() -> Result<()> {
    let fake = FakeProvider::start(Behaviour::default().with_api_key("sk-right")).await?;
    let url = format!("{}/chat/completions", fake.openai_base_url());
    let request = chat_body("hi");

    let missing = client().post(&url).json(&request).send().await?;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await?;
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("API key"))
    );

    let wrong = client()
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&request)
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await?;
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let right = client()
        .post(&url)
        .bearer_auth("sk-right")
        .json(&request)
        .send()
        .await?;
    assert_eq!(right.status(), StatusCode::OK);

    let anthropic_wrong = messages(&client(), &fake, &anthropic_body("hi")).await?;
    assert_eq!(anthropic_wrong.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn rate_limit_carries_retry_after_in_both_shapes() -> Result<()> {
    let fake = fake().await?;
    let response = chat(
        &client(),
        &fake,
        &chat_body("hi [[fake:status=429,retry_after=3]]"),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"].to_str()?, "3");
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["type"].is_string());

    let response = messages(&client(), &fake, &anthropic_body("hi [[fake:status=429]]")).await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"].to_str()?, "1");
    let body: Value = response.json().await?;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    Ok(())
}

#[tokio::test]
async fn server_errors_use_the_provider_shapes() -> Result<()> {
    let fake = fake().await?;
    let response = chat(&client(), &fake, &chat_body("[[fake:status=500]] hi")).await?;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["type"], "server_error");

    let response = messages(&client(), &fake, &anthropic_body("[[fake:status=529]] hi")).await?;
    assert_eq!(response.status().as_u16(), 529);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["type"], "overloaded_error");

    let response = chat(&client(), &fake, &chat_body("[[fake:stauts=500]]")).await?;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "a misspelt marker is refused"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_is_a_200_that_is_not_json() -> Result<()> {
    let fake = fake().await?;
    let response = chat(&client(), &fake, &chat_body("[[fake:garbage]]")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.json::<Value>().await.is_err());

    let mut request = chat_body("[[fake:garbage]]");
    request["stream"] = json!(true);
    let text = chat(&client(), &fake, &request).await?.text().await?;
    let events = parse_sse(&text);
    assert!(json_of(&events[0]).is_err());
    Ok(())
}

#[tokio::test]
async fn truncation_is_detectable() -> Result<()> {
    let fake = fake().await?;

    // Plain: the connection closes before Content-Length bytes arrived.
    let response = chat(
        &client(),
        &fake,
        &chat_body("[[fake:truncate]] a long answer"),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let (text, failed) = read_all(response).await;
    assert!(failed, "reading a truncated body must fail");
    assert!(serde_json::from_str::<Value>(&text).is_err());

    // Streaming: some events, then the connection closes without [DONE].
    let mut request = chat_body("[[fake:truncate]] a long streamed answer");
    request["stream"] = json!(true);
    let response = chat(&client(), &fake, &request).await?;
    let (text, failed) = read_all(response).await;
    assert!(failed);
    assert!(
        text.starts_with("data: {"),
        "some events arrive first: {text:?}"
    );
    assert!(!text.contains("[DONE]"));

    // Clean truncation: the HTTP body ends normally, the SSE terminator never comes.
    let mut request = anthropic_body("[[fake:truncate=clean]] a long streamed answer");
    request["stream"] = json!(true);
    let response = messages(&client(), &fake, &request).await?;
    let (text, failed) = read_all(response).await;
    assert!(!failed);
    assert!(text.contains("message_start"));
    assert!(!text.contains("message_stop"));
    Ok(())
}

#[tokio::test]
async fn close_drops_the_connection_without_an_answer() -> Result<()> {
    let fake = fake().await?;
    let result = chat(&client(), &fake, &chat_body("[[fake:close]]")).await;
    assert!(result.is_err());
    Ok(())
}

#[tokio::test]
async fn fail_times_fails_then_succeeds() -> Result<()> {
    let fake = fake().await?;
    let client = client();
    let request = chat_body("flaky [[fake:fail_times=2]]");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(chat(&client, &fake, &request).await?.status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 200]);

    // Another request has its own count; key order does not make it another request.
    let reordered = json!({
        "messages": [{"role": "user", "content": "flaky [[fake:fail_times=1,status=503]]"}],
        "model": "fake-gpt",
    });
    assert_eq!(
        chat(&client, &fake, &reordered).await?.status().as_u16(),
        503
    );
    let same = json!({
        "model": "fake-gpt",
        "messages": [{"content": "flaky [[fake:fail_times=1,status=503]]", "role": "user"}],
    });
    let response = chat(&client, &fake, &same).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["choices"][0]["message"]["content"], "echo: flaky");
    assert_eq!(fake.stats().requests_to(Endpoint::ChatCompletions), 5);
    Ok(())
}

#[tokio::test]
async fn delay_holds_the_answer() -> Result<()> {
    let fake =
        FakeProvider::start(Behaviour::default().with_latency(Duration::from_millis(50))).await?;
    let started = Instant::now();
    chat(&client(), &fake, &chat_body("[[fake:delay_ms=200]]"))
        .await?
        .bytes()
        .await?;
    assert!(started.elapsed() >= Duration::from_millis(200));
    let started = Instant::now();
    chat(&client(), &fake, &chat_body("default latency"))
        .await?
        .bytes()
        .await?;
    assert!(started.elapsed() >= Duration::from_millis(50));
    Ok(())
}

#[tokio::test]
async fn connections_are_counted_exactly() -> Result<()> {
    let fake = fake().await?;
    let keep_alive = client();
    for i in 0..10 {
        let body: Value = chat(&keep_alive, &fake, &chat_body(&format!("request {i}")))
            .await?
            .json()
            .await?;
        assert!(body["choices"].is_array());
    }
    let stats = fake.stats();
    assert_eq!(stats.total_requests, 10);
    assert_eq!(
        stats.connections_accepted, 1,
        "one keep-alive client, one connection"
    );

    chat(&client(), &fake, &chat_body("from a new client"))
        .await?
        .bytes()
        .await?;
    assert_eq!(fake.stats().connections_accepted, 2);

    fake.reset();
    let stats = fake.stats();
    assert_eq!(stats.connections_accepted, 0);
    assert_eq!(stats.total_requests, 0);
    assert!(stats.recent_requests.is_empty());
    chat(&keep_alive, &fake, &chat_body("after reset"))
        .await?
        .bytes()
        .await?;
    assert_eq!(
        fake.stats().connections_accepted,
        0,
        "the pooled connection is reused"
    );
    Ok(())
}

#[tokio::test]
async fn script_and_answer_overrides_shape_the_answers() -> Result<()> {
    let behaviour = Behaviour::default()
        .with_answer("capital of France", "Paris")
        .then(Reply::rate_limited(2))
        .then(Reply::answer("{\"ok\": true}"));
    let fake = FakeProvider::start(behaviour).await?;
    let client = client();
    let request = chat_body("what is the capital of France?");

    let first = chat(&client, &fake, &request).await?;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.headers()["retry-after"].to_str()?, "2");
    first.bytes().await?;
    let second: Value = chat(&client, &fake, &request).await?.json().await?;
    assert_eq!(second["choices"][0]["message"]["content"], "{\"ok\": true}");
    let third: Value = chat(&client, &fake, &request).await?.json().await?;
    assert_eq!(third["choices"][0]["message"]["content"], "Paris");

    fake.push_reply(Reply::error(502));
    assert_eq!(chat(&client, &fake, &request).await?.status().as_u16(), 502);

    let marked: Value = chat(
        &client,
        &fake,
        &chat_body("x [[fake:answer={\"a\": 1, \"b\": [2]}]]"),
    )
    .await?
    .json()
    .await?;
    assert_eq!(
        marked["choices"][0]["message"]["content"],
        "{\"a\": 1, \"b\": [2]}"
    );
    Ok(())
}

#[tokio::test]
async fn recent_bodies_are_bounded_and_recorded() -> Result<()> {
    let behaviour = Behaviour {
        recent_bodies: 3,
        ..Behaviour::default()
    };
    let fake = FakeProvider::start(behaviour).await?;
    let client = client();
    for i in 0..5 {
        chat(&client, &fake, &chat_body(&format!("body {i}")))
            .await?
            .bytes()
            .await?;
    }
    let stats = fake.stats();
    assert_eq!(stats.total_requests, 5);
    let prompts: Vec<&str> = stats
        .bodies_to(Endpoint::ChatCompletions)
        .filter_map(|b| b["messages"][1]["content"].as_str())
        .collect();
    assert_eq!(prompts, ["body 2", "body 3", "body 4"]);
    Ok(())
}

#[tokio::test]
async fn stats_and_reset_over_http() -> Result<()> {
    let fake = fake().await?;
    let client = client();
    chat(&client, &fake, &chat_body("counted"))
        .await?
        .bytes()
        .await?;
    client
        .get(format!("{}/nowhere", fake.openai_base_url()))
        .send()
        .await?
        .bytes()
        .await?;
    let stats: Stats = client
        .get(format!("{}/_fake/stats", fake.anthropic_base_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats.total_requests, 2, "control endpoints are not counted");
    assert_eq!(stats.requests_to(Endpoint::ChatCompletions), 1);
    assert_eq!(stats.requests_to(Endpoint::Other), 1);
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.recent_requests.len(), 2);

    let reset = client
        .post(format!("{}/_fake/reset", fake.anthropic_base_url()))
        .send()
        .await?;
    assert_eq!(reset.status(), StatusCode::OK);
    reset.bytes().await?;
    assert_eq!(fake.stats().total_requests, 0);
    Ok(())
}

#[tokio::test]
async fn control_paths_with_another_method_are_provider_requests() -> Result<()> {
    let fake = fake().await?;
    let client = client();
    for (method, path) in [
        (reqwest::Method::POST, "/_fake/stats"),
        (reqwest::Method::HEAD, "/_fake/stats"),
        (reqwest::Method::GET, "/_fake/reset"),
    ] {
        let response = client
            .request(
                method.clone(),
                format!("{}{path}", fake.anthropic_base_url()),
            )
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        response.bytes().await?;
    }
    let stats = fake.stats();
    assert_eq!(stats.requests_to(Endpoint::Other), 3);
    assert_eq!(stats.total_requests, 3);
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_the_server() -> Result<()> {
    let fake = fake().await?;
    let addr = fake.addr();
    chat(&client(), &fake, &chat_body("hi"))
        .await?
        .bytes()
        .await?;
    fake.shutdown().await;
    let refused = client()
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await;
    assert!(refused.is_err());
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() -> Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orc-fake-provider"))
        .args(["--port", "0", "--max-seconds", "60"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await??;
    let addr = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .with_context(|| format!("unexpected first line {line:?}"))?;
    let base = format!("http://127.0.0.1:{addr}");

    let client = client();
    let body: Value = post(
        &client,
        format!("{base}/v1/chat/completions"),
        &chat_body("from the binary"),
    )
    .await?
    .json()
    .await?;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: from the binary"
    );
    let stats: Stats = client
        .get(format!("{base}/_fake/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats.total_requests, 1);

    let pid = i32::try_from(child.id().context("pid")?)?;
    kill(Pid::from_raw(pid), Signal::SIGTERM)?;
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(exit.success(), "exit status {exit}");
    Ok(())
}

#[tokio::test]
async fn per_model_latency_failures_and_context_window() -> Result<()> {
    let fake = FakeProvider::start(
        Behaviour::default()
            .with_model(
                "slow-flaky",
                ModelBehaviour {
                    latency: Some(Duration::from_millis(150)),
                    failure_rate: 0.5,
                    failure_status: Some(503),
                    ..ModelBehaviour::default()
                },
            )
            .with_model(
                "tiny",
                ModelBehaviour {
                    context_window: Some(4),
                    ..ModelBehaviour::default()
                },
            ),
    )
    .await?;
    let client = client();
    let body = |model: &str, prompt: &str| json!({"model": model, "messages": [{"role": "user", "content": prompt}]});

    // Every second request to the flaky model fails, after its own latency.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let started = Instant::now();
        let response = chat(&client, &fake, &body("slow-flaky", &format!("q{i}"))).await?;
        assert!(started.elapsed() >= Duration::from_millis(150));
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503]);
    // Other models are not affected, and a marker still wins.
    let response = chat(&client, &fake, &body("fake-gpt", "hello")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let response = chat(
        &client,
        &fake,
        &body("slow-flaky", "[[fake:delay_ms=0,status=418]] x"),
    )
    .await?;
    assert_eq!(response.status().as_u16(), 418);

    // A prompt over the context window gets the provider's own 400.
    let response = chat(&client, &fake, &body("tiny", "one two three four five")).await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await?;
    assert_eq!(error["error"]["code"], "context_length_exceeded");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("maximum context length is 4 tokens"),
        "{message}"
    );
    let response = messages(
        &client,
        &fake,
        &json!({"model": "tiny", "max_tokens": 10,
                "messages": [{"role": "user", "content": "one two three four five"}]}),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await?;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("prompt is too long: 5 tokens > 4 maximum"),
        "{message}"
    );
    assert_eq!(
        chat(&client, &fake, &body("tiny", "one two"))
            .await?
            .status(),
        StatusCode::OK
    );

    let stats = fake.stats();
    assert_eq!(stats.requests_for("slow-flaky"), 5);
    assert_eq!(stats.requests_for("tiny"), 3);
    assert_eq!(stats.requests_for("fake-gpt"), 1);
    fake.reset();
    assert_eq!(fake.stats().requests_for("tiny"), 0);
    Ok(())
}
