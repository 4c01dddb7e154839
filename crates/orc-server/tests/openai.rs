//! The OpenAI-compatible routes, called in-process (`tower::ServiceExt::oneshot`, no
//! socket) in front of a real gateway and the loopback fake provider.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{Rig, RigOptions, rig};
use orc_fake_provider::{Behaviour, Endpoint, ModelBehaviour};
use orc_models::{Budget, BudgetLimits, Gateway, HttpOptions, ModelClient, Registry};
use orc_server::openai::routes;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// One response: status, headers, body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The OpenAI error body, after checking the status.
    fn error(&self, status: StatusCode) -> Result<Value> {
        ensure!(
            self.status == status,
            "{} instead of {status}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json()?;
        let error = body.get("error").context("no `error`")?.clone();
        for key in ["message", "type", "param", "code"] {
            ensure!(error.get(key).is_some(), "no `{key}` in {error}");
        }
        ensure!(error["message"].is_string() && error["type"].is_string());
        Ok(error)
    }
}

async fn send(app: &Router, request: Request<Body>) -> Result<Reply> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn post(app: &Router, uri: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Reply> {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(Body::from(body.to_string()))?).await
}

async fn get(app: &Router, uri: &str) -> Result<Reply> {
    send(app, Request::get(uri).body(Body::empty())?).await
}

fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

async fn chat(app: &Router, model: &str, text: &str) -> Result<Reply> {
    post(app, "/v1/chat/completions", &chat_body(model, text), &[]).await
}

fn chat_requests(rig: &Rig) -> u64 {
    rig.fake.stats().requests_to(Endpoint::ChatCompletions)
}

async fn app() -> Result<(Rig, Router)> {
    let rig = rig(RigOptions::default()).await?;
    let app = routes(Some(rig.gateway.clone()));
    Ok((rig, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_chat_answers_in_openai_shape() -> Result<()> {
    let (rig, app) = app().await?;
    let body = json!({
        "model": "fake-gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]}
        ],
        "max_tokens": 50,
        "temperature": 0.3,
    });
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    ensure!(reply.status == StatusCode::OK, "{}", reply.json()?);
    let answer = reply.json()?;
    ensure!(answer["object"] == "chat.completion");
    ensure!(
        answer["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    ensure!(
        answer["created"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    ensure!(answer["model"] == "fake-gpt");
    let choice = &answer["choices"][0];
    ensure!(choice["index"] == 0);
    ensure!(choice["message"]["role"] == "assistant");
    ensure!(
        choice["message"]["content"] == "echo: hello\nthere",
        "{answer}"
    );
    ensure!(choice["finish_reason"] == "stop");
    let usage = &answer["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().context("prompt_tokens")?,
        usage["completion_tokens"]
            .as_u64()
            .context("completion_tokens")?,
    );
    ensure!(prompt > 0 && completion > 0);
    ensure!(usage["total_tokens"].as_u64() == Some(prompt + completion));
    ensure!(reply.header("x-orc-cache") == Some("miss"));
    // fake-gpt costs $1 per 1k tokens in and $2 per 1k out.
    let cost: f64 = reply.header("x-orc-cost-usd").context("no cost")?.parse()?;
    let expected = (prompt as f64 + 2.0 * completion as f64) / 1000.0;
    ensure!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    // What reached the provider: the system message, the parameters.
    let stats = rig.fake.stats();
    let sent = stats
        .bodies_to(Endpoint::ChatCompletions)
        .next()
        .context("nothing sent")?;
    ensure!(sent["messages"][0] == json!({"role": "system", "content": "be brief"}));
    ensure!(
        sent["max_tokens"] == 50 && sent["temperature"] == 0.3,
        "{sent}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_identical_call_is_a_cache_hit() -> Result<()> {
    let (rig, app) = app().await?;
    let first = chat(&app, "fake-gpt", "cache me").await?;
    ensure!(first.status == StatusCode::OK);
    let second = chat(&app, "fake-gpt", "cache me").await?;
    ensure!(second.status == StatusCode::OK);
    ensure!(second.header("x-orc-cache") == Some("hit"));
    ensure!(second.header("x-orc-cost-usd") == Some("0"));
    let (a, b) = (first.json()?, second.json()?);
    ensure!(a["choices"] == b["choices"] && a["usage"] == b["usage"]);
    ensure!(
        chat_requests(&rig) == 1,
        "{} upstream calls",
        chat_requests(&rig)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_bypass_the_cache() -> Result<()> {
    let (rig, app) = app().await?;
    let body = chat_body("fake-gpt", "fresh please");
    let url = "/v1/chat/completions";
    ensure!(post(&app, url, &body, &[]).await?.header("x-orc-cache") == Some("miss"));
    for opt_out in [
        ("cache-control", "no-cache"),
        ("cache-control", "no-store"),
        ("x-orc-cache", "bypass"),
    ] {
        let reply = post(&app, url, &body, &[opt_out]).await?;
        ensure!(reply.status == StatusCode::OK);
        ensure!(
            reply.header("x-orc-cache") == Some("bypass"),
            "{opt_out:?}: {:?}",
            reply.header("x-orc-cache")
        );
    }
    ensure!(chat_requests(&rig) == 4, "{}", chat_requests(&rig));
    // Without the opt-out, the cache still answers.
    ensure!(post(&app, url, &body, &[]).await?.header("x-orc-cache") == Some("hit"));
    ensure!(chat_requests(&rig) == 4);
    Ok(())
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(body: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(body)?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.trim_start().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_speaks_openai_sse() -> Result<()> {
    let (rig, app) = app().await?;
    let body = json!({
        "model": "fake-gpt",
        "messages": [{"role": "user", "content": "one two three four five"}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    ensure!(reply.status == StatusCode::OK);
    ensure!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    ensure!(reply.header("x-orc-cache") == Some("miss"));
    let data = sse_data(&reply.body)?;
    ensure!(
        data.last().map(String::as_str) == Some("[DONE]"),
        "{data:?}"
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<_, _>>()?;
    ensure!(chunks.len() >= 4, "{chunks:?}");
    let id = &chunks[0]["id"];
    for chunk in &chunks {
        ensure!(chunk["object"] == "chat.completion.chunk" && &chunk["id"] == id);
        ensure!(chunk["model"] == "fake-gpt");
    }
    ensure!(chunks[0]["choices"][0]["delta"]["role"] == "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    ensure!(text == "echo: one two three four five", "{text:?}");
    // The last chunk with a choice finishes; the usage chunk has no choices.
    let usage = chunks.last().context("no chunks")?;
    ensure!(usage["choices"] == json!([]));
    ensure!(
        usage["usage"]["completion_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let finish = &chunks[chunks.len() - 2];
    ensure!(finish["choices"][0]["finish_reason"] == "stop", "{finish}");
    ensure!(
        chunks[..chunks.len() - 2]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null() && c["usage"].is_null())
    );
    ensure!(chat_requests(&rig) == 1);

    // Once read to its end, the stream is cached (the write is spawned) and replayed.
    let mut replayed = None;
    for _ in 0..50 {
        let again = post(&app, "/v1/chat/completions", &body, &[]).await?;
        if again.header("x-orc-cache") == Some("hit") {
            replayed = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replayed = replayed.context("the streamed answer never reached the cache")?;
    let data = sse_data(&replayed.body)?;
    ensure!(data.last().map(String::as_str) == Some("[DONE]"));
    let replayed_text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    ensure!(replayed_text == text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_include_usage_has_no_usage() -> Result<()> {
    let (_rig, app) = app().await?;
    let mut body = chat_body("fake-gpt", "short answer");
    body["stream"] = json!(true);
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    let data = sse_data(&reply.body)?;
    ensure!(data.last().map(String::as_str) == Some("[DONE]"));
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk)?;
        ensure!(chunk.get("usage").is_none(), "{chunk}");
        ensure!(chunk["choices"].as_array().is_some_and(|c| c.len() == 1));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_breaks_ends_with_an_error_event() -> Result<()> {
    let (_rig, app) = app().await?;
    let mut body = chat_body("fake-gpt", "[[fake:truncate]] one two three four five six");
    body["stream"] = json!(true);
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    ensure!(reply.status == StatusCode::OK);
    let data = sse_data(&reply.body)?;
    ensure!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().context("no events")?)?;
    ensure!(last["error"]["type"] == "upstream_error", "{last}");
    ensure!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fake-gpt")),
        "{last}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_lets_the_router_choose() -> Result<()> {
    let (rig, app) = app().await?;
    let reply = chat(&app, "auto", "whoever is best").await?;
    ensure!(reply.status == StatusCode::OK, "{}", reply.json()?);
    let answer = reply.json()?;
    let model = answer["model"].as_str().context("no model")?;
    let id = match model {
        "fake-gpt" => "fake-gpt",
        "small" => "fake-mini",
        "embedder" => "fake-embedding",
        other => bail!("auto answered as `{other}`"),
    };
    ensure!(rig.fake.stats().requests_for(id) == 1);
    ensure!(answer["choices"][0]["message"]["content"] == "echo: whoever is best");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_pick_the_configured_model() -> Result<()> {
    let (rig, app) = app().await?;
    for (i, alias) in ["small", "fake-mini", "openai:small", "openai:fake-mini"]
        .iter()
        .enumerate()
    {
        let reply = chat(&app, alias, &format!("via {i}")).await?;
        ensure!(reply.status == StatusCode::OK, "{alias}: {}", reply.json()?);
        ensure!(reply.json()?["model"] == "small", "{alias}");
    }
    ensure!(rig.fake.stats().requests_for("fake-mini") == 4);
    ensure!(rig.fake.stats().requests_for("fake-gpt") == 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_is_a_404_naming_the_models() -> Result<()> {
    let (rig, app) = app().await?;
    let error = chat(&app, "gpt-17", "hi")
        .await?
        .error(StatusCode::NOT_FOUND)?;
    ensure!(error["type"] == "invalid_request_error");
    ensure!(error["code"] == "model_not_found" && error["param"] == "model");
    let message = error["message"].as_str().context("message")?;
    for name in ["gpt-17", "fake-gpt", "small", "embedder", "auto"] {
        ensure!(message.contains(name), "{name} missing from {message}");
    }
    let error = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "nope", "input": "x"}),
        &[],
    )
    .await?
    .error(StatusCode::NOT_FOUND)?;
    ensure!(error["code"] == "model_not_found");
    ensure!(rig.fake.stats().total_requests == 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400s_naming_the_problem() -> Result<()> {
    let (rig, app) = app().await?;
    // Not JSON: the line and column.
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"model\": \"fake-gpt\",\n \"messages\": [}"))?;
    let error = send(&app, request).await?.error(StatusCode::BAD_REQUEST)?;
    let message = error["message"].as_str().context("message")?;
    ensure!(message.contains("line 2 column"), "{message}");
    ensure!(error["type"] == "invalid_request_error" && error["code"] == "invalid_json");

    // JSON of the wrong shape: the field.
    let body = json!({"model": "fake-gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"});
    let error = post(&app, "/v1/chat/completions", &body, &[])
        .await?
        .error(StatusCode::BAD_REQUEST)?;
    ensure!(error["param"] == "max_tokens", "{error}");
    let body = json!({"model": "fake-gpt", "messages": [{"content": "x"}]});
    let error = post(&app, "/v1/chat/completions", &body, &[])
        .await?
        .error(StatusCode::BAD_REQUEST)?;
    ensure!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("role")),
        "{error}"
    );
    let body = json!({"messages": [{"role": "user", "content": "x"}]});
    let error = post(&app, "/v1/chat/completions", &body, &[])
        .await?
        .error(StatusCode::BAD_REQUEST)?;
    ensure!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("model")),
        "{error}"
    );

    // No JSON content type.
    let request = Request::post("/v1/chat/completions")
        .body(Body::from(chat_body("fake-gpt", "x").to_string()))?;
    send(&app, request).await?.error(StatusCode::BAD_REQUEST)?;

    // What orc cannot do, by field.
    let refused = [
        ("n", json!(2), "n"),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}]),
            "tools",
        ),
        ("stop", json!(["END"]), "stop"),
        ("logprobs", json!(true), "logprobs"),
        (
            "messages",
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]),
            "messages[0].content[0].type",
        ),
        (
            "messages",
            json!([{"role": "tool", "content": "42", "tool_call_id": "c1"}]),
            "messages[0].role",
        ),
        ("made_up", json!(1), "made_up"),
    ];
    for (key, value, param) in refused {
        let mut body = chat_body("fake-gpt", "x");
        body[key] = value;
        let error = post(&app, "/v1/chat/completions", &body, &[])
            .await?
            .error(StatusCode::BAD_REQUEST)?;
        ensure!(error["param"] == param, "{key}: {error}");
        ensure!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(param.split('[').next().unwrap_or(param))),
            "{key}: {error}"
        );
    }
    ensure!(
        rig.fake.stats().total_requests == 0,
        "a bad request went upstream"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_in_float_and_base64_through_the_cache() -> Result<()> {
    let (rig, app) = app().await?;
    let body = json!({"model": "embedder", "input": ["alpha", "beta", "gamma"]});
    let reply = post(&app, "/v1/embeddings", &body, &[]).await?;
    ensure!(reply.status == StatusCode::OK, "{}", reply.json()?);
    ensure!(reply.header("x-orc-cache") == Some("miss"));
    let floats = reply.json()?;
    ensure!(floats["object"] == "list" && floats["model"] == "embedder");
    let data = floats["data"].as_array().context("data")?;
    ensure!(data.len() == 3);
    let mut vectors = Vec::new();
    for (i, item) in data.iter().enumerate() {
        ensure!(item["object"] == "embedding" && item["index"] == i);
        let v: Vec<f32> = serde_json::from_value(item["embedding"].clone())?;
        ensure!(!v.is_empty());
        vectors.push(v);
    }
    ensure!(vectors[0] != vectors[1]);
    ensure!(
        floats["usage"]["prompt_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let upstream = rig.fake.stats().requests_to(Endpoint::Embeddings);
    ensure!(upstream >= 1);

    // base64 of the same vectors (from the cache: no new upstream call).
    let body = json!({"model": "embedder", "input": ["alpha", "beta", "gamma"], "encoding_format": "base64"});
    let reply = post(&app, "/v1/embeddings", &body, &[]).await?;
    ensure!(reply.header("x-orc-cache") == Some("hit"));
    ensure!(rig.fake.stats().requests_to(Endpoint::Embeddings) == upstream);
    let encoded = reply.json()?;
    for (i, item) in encoded["data"]
        .as_array()
        .context("data")?
        .iter()
        .enumerate()
    {
        let text = item["embedding"].as_str().context("not base64 text")?;
        ensure!(decode_f32(text)? == vectors[i], "vector {i}");
    }

    // A single string; `auto` and `dimensions` are refused.
    let reply = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "embedder", "input": "alpha"}),
        &[],
    )
    .await?;
    ensure!(reply.json()?["data"][0]["embedding"] == data[0]["embedding"]);
    let error = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "auto", "input": "alpha"}),
        &[],
    )
    .await?
    .error(StatusCode::BAD_REQUEST)?;
    ensure!(error["param"] == "model");
    let error = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "embedder", "input": "a", "dimensions": 4}),
        &[],
    )
    .await?
    .error(StatusCode::BAD_REQUEST)?;
    ensure!(error["param"] == "dimensions");
    Ok(())
}

/// Standard base64 of little-endian `f32`s, decoded (the test's own decoder).
fn decode_f32(text: &str) -> Result<Vec<f32>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c}"),
        } as u32)
    };
    let mut bytes = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|c| **c == b'=').count();
        let mut n = 0u32;
        for &c in quad {
            n = (n << 6) | if c == b'=' { 0 } else { value(c)? };
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        bytes.extend_from_slice(&three[..3 - pad]);
    }
    ensure!(bytes.len() % 4 == 0);
    Ok(bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_and_found_by_any_name() -> Result<()> {
    let (rig, app) = app().await?;
    let reply = get(&app, "/v1/models").await?;
    ensure!(reply.status == StatusCode::OK);
    let list = reply.json()?;
    ensure!(list["object"] == "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    ensure!(ids == ["fake-gpt", "small", "embedder", "auto"], "{ids:?}");
    for model in list["data"].as_array().context("data")? {
        ensure!(
            model["object"] == "model"
                && model["created"].is_u64()
                && model["owned_by"].is_string()
        );
    }
    for (asked, id) in [
        ("small", "small"),
        ("fake-mini", "small"),
        ("openai:fake-gpt", "fake-gpt"),
        ("auto", "auto"),
    ] {
        let reply = get(&app, &format!("/v1/models/{asked}")).await?;
        ensure!(reply.status == StatusCode::OK, "{asked}");
        ensure!(reply.json()?["id"] == id, "{asked}");
    }
    let error = get(&app, "/v1/models/nope")
        .await?
        .error(StatusCode::NOT_FOUND)?;
    ensure!(error["code"] == "model_not_found");
    // Listing asks no provider.
    ensure!(rig.fake.stats().total_requests == 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_models_every_endpoint_is_503() -> Result<()> {
    let empty = Gateway::new(
        Registry::default(),
        ModelClient::new(&HttpOptions::default())?,
        orc_models::GatewayOptions::default(),
    );
    for app in [routes(None), routes(Some(empty))] {
        let replies = [
            chat(&app, "fake-gpt", "hi").await?,
            post(
                &app,
                "/v1/embeddings",
                &json!({"model": "e", "input": "x"}),
                &[],
            )
            .await?,
            get(&app, "/v1/models").await?,
            get(&app, "/v1/models/x").await?,
        ];
        for reply in replies {
            let error = reply.error(StatusCode::SERVICE_UNAVAILABLE)?;
            ensure!(
                error["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`models:` list is empty")),
                "{error}"
            );
            ensure!(reply.header("x-should-retry") == Some("false"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_their_statuses() -> Result<()> {
    let rig = rig(RigOptions {
        request_timeout: Some(Duration::from_millis(500)),
        ..RigOptions::default()
    })
    .await?;
    let app = routes(Some(rig.gateway.clone()));

    let error = chat(&app, "fake-gpt", "[[fake:status=503]] down")
        .await?
        .error(StatusCode::BAD_GATEWAY)?;
    ensure!(error["type"] == "upstream_error", "{error}");
    ensure!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 503") && m.contains("fake-gpt")),
        "{error}"
    );

    let reply = chat(&app, "fake-gpt", "[[fake:status=429,retry_after=7]] busy").await?;
    let error = reply.error(StatusCode::TOO_MANY_REQUESTS)?;
    ensure!(error["type"] == "rate_limit_exceeded", "{error}");
    ensure!(
        reply.header("retry-after") == Some("7"),
        "{:?}",
        reply.headers
    );

    let error = chat(&app, "fake-gpt", "[[fake:delay_ms=3000]] slow")
        .await?
        .error(StatusCode::GATEWAY_TIMEOUT)?;
    ensure!(error["type"] == "timeout", "{error}");

    let error = chat(&app, "fake-gpt", "[[fake:garbage]] nonsense")
        .await?
        .error(StatusCode::BAD_GATEWAY)?;
    ensure!(error["code"] == "upstream_failed", "{error}");

    // The provider refusing the request itself is the client's problem.
    let error = chat(&app, "fake-gpt", "[[fake:status=400]] refused")
        .await?
        .error(StatusCode::BAD_REQUEST)?;
    ensure!(error["code"] == "rejected_upstream", "{error}");

    // A stream that cannot open is a plain error response, not an event stream.
    let mut body = chat_body("fake-gpt", "[[fake:status=500]] no stream");
    body["stream"] = json!(true);
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    reply.error(StatusCode::BAD_GATEWAY)?;
    // Errors are not cached.
    let before = chat_requests(&rig);
    let again = chat(&app, "fake-gpt", "[[fake:status=503]] down").await?;
    again.error(StatusCode::BAD_GATEWAY)?;
    ensure!(chat_requests(&rig) == before + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_refusal_is_insufficient_quota() -> Result<()> {
    let rig = rig(RigOptions {
        budget: Some(Budget::new(BudgetLimits {
            per_run: Some(0.000_001),
            per_hour: None,
        })),
        ..RigOptions::default()
    })
    .await?;
    let app = routes(Some(rig.gateway.clone()));
    let reply = chat(&app, "fake-gpt", "this costs more than a micro-dollar").await?;
    let error = reply.error(StatusCode::TOO_MANY_REQUESTS)?;
    ensure!(error["type"] == "insufficient_quota" && error["code"] == "insufficient_quota");
    ensure!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("budget")),
        "{error}"
    );
    ensure!(reply.header("x-should-retry") == Some("false"));
    ensure!(chat_requests(&rig) == 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_model_falls_back_and_the_answer_says_which_model() -> Result<()> {
    let rig = rig(RigOptions {
        behaviour: Some(Behaviour::default().with_model(
            "fake-gpt",
            ModelBehaviour {
                failure_rate: 1.0,
                failure_status: Some(503),
                ..ModelBehaviour::default()
            },
        )),
        fallbacks: vec![("fake-gpt", vec!["small"])],
        ..RigOptions::default()
    })
    .await?;
    let app = routes(Some(rig.gateway.clone()));
    let reply = chat(&app, "fake-gpt", "anyone there").await?;
    ensure!(reply.status == StatusCode::OK, "{}", reply.json()?);
    ensure!(reply.json()?["model"] == "small");
    ensure!(reply.header("x-orc-fallbacks") == Some("1"));
    let mut body = chat_body("fake-gpt", "anyone streaming");
    body["stream"] = json!(true);
    let reply = post(&app, "/v1/chat/completions", &body, &[]).await?;
    ensure!(reply.status == StatusCode::OK);
    ensure!(reply.header("x-orc-fallbacks") == Some("1"));
    let data = sse_data(&reply.body)?;
    let first: Value = serde_json::from_str(data.first().context("no events")?)?;
    ensure!(first["model"] == "small", "{first}");
    let stats = rig.fake.stats();
    ensure!(stats.requests_for("fake-gpt") == 2 && stats.requests_for("fake-mini") == 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_in_flight_share_one_call() -> Result<()> {
    let (rig, app) = app().await?;
    let replies = futures::future::join_all(
        (0..6).map(|_| chat(&app, "fake-gpt", "[[fake:delay_ms=300]] slow and popular")),
    )
    .await;
    let mut labels = Vec::new();
    for reply in replies {
        let reply = reply?;
        ensure!(reply.status == StatusCode::OK);
        labels.push(reply.header("x-orc-cache").unwrap_or("none").to_owned());
    }
    ensure!(
        chat_requests(&rig) == 1,
        "{} calls: {labels:?}",
        chat_requests(&rig)
    );
    ensure!(
        labels.iter().filter(|l| *l == "miss").count() == 1,
        "{labels:?}"
    );
    ensure!(
        labels.iter().filter(|l| *l == "shared").count() == 5,
        "{labels:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_embedding_requests_are_batched() -> Result<()> {
    let (rig, app) = app().await?;
    let replies = futures::future::join_all((0..40).map(|i| {
        let body = json!({"model": "embedder", "input": format!("text number {i}"), "encoding_format": "float"});
        let app = app.clone();
        async move { post(&app, "/v1/embeddings", &body, &[]).await }
    }))
    .await;
    for reply in replies {
        let reply = reply?;
        ensure!(reply.status == StatusCode::OK, "{}", reply.json()?);
        ensure!(
            reply.json()?["data"]
                .as_array()
                .is_some_and(|d| d.len() == 1)
        );
    }
    // 40 one-input requests, batched 20 at a time (the gateway's default).
    let upstream = rig.fake.stats().requests_to(Endpoint::Embeddings);
    ensure!(upstream <= 4, "{upstream} upstream calls for 40 requests");
    Ok(())
}
